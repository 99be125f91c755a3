/* attention.h - causal softmax attention of a batch of rows over their own
 * KV caches (one layer), the part of forward() between the q/k/v and the o
 * projections.
 *
 * Work is split in tasks of (a run of consecutive rows of one sequence, one
 * KV head): the query heads that share that KV head (GQA) and the rows of a
 * prefill chunk all read the same keys and values, so each block of cached
 * positions is converted to f32 once and used by every query of the task:
 * over an f16 cache through kern_attn_prefill_f16 (keys transposed once per
 * block, scores and weighted values in registers) where the backend takes
 * the head size, otherwise as two small matrix products (scores = Q K^T,
 * out += P V) on the calling thread's kernels, with an online softmax
 * across blocks. Decode rows (runs
 * of fewer than 4) over an f16 cache go per (row, KV head) through
 * kern_attn_f16, which converts each cached row once for the group's
 * queries; long rows are split over positions (so every thread has work)
 * and the splits' partial softmaxes merged. Over an f32 cache: per (row,
 * query head), position by position. */
#ifndef DUET_ATTENTION_H
#define DUET_ATTENTION_H

#include "run/forward.h"

/* out (n, n_heads * head_dim) = for each row r and head h: softmax over
 * positions 0..rows[r].pos of q_h . k_p / sqrt(head_dim), times v_p, with k/v
 * read from rows[r].kv at `layer` (already holding the rows' own positions).
 * q is (n, n_heads * head_dim), roped. Runs on the Kern's pool. Rows of one
 * sequence must come in increasing position order. -1 with *e set when out
 * of memory. */
int attention(const ModelConfig *c, Kern *k, const BatchRow *rows, int n, int layer, const float *q, float *out,
              Err *e);

/* The same result computed position by position in double precision on the
 * calling thread: the oracle tests compare attention() to. */
void attention_ref(const ModelConfig *c, const BatchRow *rows, int n, int layer, const float *q, float *out);

#endif
