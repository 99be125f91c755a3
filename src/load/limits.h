/* limits.h - every bound duet puts on what comes from outside (model
 * configs, adapters, adapter names, API options), in one place, so that
 * loading a checkpoint folder, `duet compile` and opening a .duet apply the
 * same rules with the same message. docs/LIMITS.md lists them for users. */
#ifndef DUET_LIMITS_H
#define DUET_LIMITS_H

#include <stddef.h>

#include "kern/kern.h"
#include "util/err.h"

/* model shapes (config.json / a .duet's meta "config") */
#define LIMIT_DIM (1 << 16)          /* hidden_size */
#define LIMIT_LAYERS 1024            /* num_hidden_layers */
#define LIMIT_HEADS 1024             /* num_attention_heads */
#define LIMIT_HEAD_DIM 512           /* head_dim: bounds the attention kernels' stack tiles */
#define LIMIT_GQA_GROUP 64           /* num_attention_heads / num_key_value_heads */
#define LIMIT_HIDDEN (1 << 20)       /* intermediate_size */
#define LIMIT_VOCAB (1 << 24)        /* vocab_size */
#define LIMIT_MAX_POS (1 << 30)      /* max_position_embeddings */
#define LIMIT_ROPE_THETA 1e30        /* rope_theta: positive and below this */
#define LIMIT_ROPE_FACTOR 1e4        /* rope_type llama3: factor and high_freq_factor at most this */

/* adapters */
#define LIMIT_LORA_RANK 256          /* r, rank_pattern: the LoRA kernels' tile (KERN_LORA_MAX_RANK) */
#define LIMIT_LORA_SCALE 1e6         /* |lora_alpha / r| (or / sqrt(r)): larger overflows activations */
#define LIMIT_ADAPTER_NAME 63        /* bytes; characters A-Z a-z 0-9 . _ - */

/* regular expressions from outside (PEFT target_modules / rank_pattern /
 * alpha_pattern, `duet compile --tensor-type`): names are short, so these
 * only stop pathological backtracking and the cost of compiling a hostile
 * pattern */
#define LIMIT_RE_PATTERN 4096        /* bytes of one pattern */
#define LIMIT_RE_MATCH 200000        /* pcre2_set_match_limit */
#define LIMIT_RE_DEPTH 10000         /* pcre2_set_depth_limit */
#define LIMIT_RE_HEAP_KIB 65536      /* pcre2_set_heap_limit */

/* API / CLI options */
#define LIMIT_THREADS 1024           /* n_threads, --threads */
#define LIMIT_PREFILL_CHUNK 4096     /* prefill_chunk, --chunk: rows of one forward batch (its scratch grows with it) */
#define LIMIT_TEMPERATURE 100.0      /* temperature */
#define LIMIT_PENALTY 100.0          /* repetition_penalty <= this; |frequency|, |presence| <= this */
#define LIMIT_STOP_BYTES 1024        /* one stop string */

/* Checks an adapter name: 1 .. LIMIT_ADAPTER_NAME bytes of [A-Za-z0-9._-]
 * (names reach terminals, file names and JSON). `where` prefixes the
 * message ("--lora", "FILE: adapter"). 0, or -1 with *e set. */
int limit_adapter_name(const char *name, const char *where, Err *e);

/* Copies s into out (cap bytes, NUL-terminated) with every byte outside
 * printable ASCII written as \xHH, for printing names and text taken from
 * files on a terminal. Returns out. */
char *limit_escape(char *out, size_t cap, const char *s);

/* Index of the first value of x[0..n) that is inf or NaN, or n when all
 * are finite. */
size_t limit_first_nonfinite(const float *x, size_t n);
/* The same for n IEEE half floats (a KV cache in f16). */
size_t limit_first_nonfinite_f16(const uint16_t *x, size_t n);

/* Checks that every value of q is finite (the data of f32 / f16 / bf16
 * weights, the scales of q8 / q4 ones, in_scale): weights holding inf or
 * NaN (an fp16 overflow in training, a damaged file) turn every logit into
 * NaN. The message names `file` and tensor `name` and the element.
 * 0, or -1 with *e set. */
int limit_finite_qmat(const QMat *q, const char *file, const char *name, Err *e);

#endif
