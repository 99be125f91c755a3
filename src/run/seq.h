/* seq.h - one token sequence being run: its KV cache, its position, its
 * adapter, and the two passes over it. prefill() feeds prompt tokens in
 * chunks (matrix-matrix products); decode() feeds one token (matrix-vector).
 * A Seq belongs to one thread at a time; many Seqs share one Model. */
#ifndef DUET_SEQ_H
#define DUET_SEQ_H

#include "run/forward.h"

typedef struct Seq {
    const Model *m;
    KVCache kv;
    int n_past;               /* tokens in the cache */
    const Adapter *lora;      /* NULL: base */
    Scratch s;
} Seq;

int seq_init(Seq *q, const Model *m, int n_ctx, KvType kv_type, const Adapter *lora, Err *e);
void seq_free(Seq *q); /* safe on zeroed */

/* Feeds n tokens, `chunk` at a time (0 = all at once). logits_last (vocab)
 * receives the last token's logits if non-NULL; logits_all (n x vocab)
 * every token's if non-NULL. Fails without side effects on the cache if the
 * tokens do not fit the context. */
int seq_prefill(Seq *q, Kern *k, const int *tokens, int n, int chunk, float *logits_last, float *logits_all, Err *e);

/* Feeds one token and writes its logits (vocab). */
int seq_decode(Seq *q, Kern *k, int token, float *logits, Err *e);

/* Forgets every token (the cache memory is kept). */
void seq_reset(Seq *q);

#endif
