/* forward.h - the transformer forward pass over a batch of rows.
 * A row is one token at one position of one sequence (its own KV cache and
 * adapter). Prefill = many consecutive rows of one sequence, run as
 * matrix-matrix products; decode = one row per sequence, matrix-vector (or a
 * small matrix when the scheduler batches several sequences). The base
 * weights are shared by all rows; each row's LoRA product is added for the
 * rows that chose that adapter. */
#ifndef DUET_FORWARD_H
#define DUET_FORWARD_H

#include "run/model.h"

typedef enum KvType { KV_F32 = 0, KV_F16 = 1 } KvType;

/* Keys and values of one sequence: (n_layers, n_ctx, kv_dim) each. */
typedef struct KVCache {
    KvType type;
    int n_ctx;          /* capacity in positions */
    int n_layers, kv_dim;
    void *k, *v;
} KVCache;

/* Bytes a cache of n_ctx positions needs for model config c. */
size_t kv_bytes(const ModelConfig *c, int n_ctx, KvType type);
int kv_init(KVCache *kv, const ModelConfig *c, int n_ctx, KvType type, Err *e);
void kv_free(KVCache *kv); /* safe on zeroed */

typedef struct BatchRow {
    int token;
    int pos;                  /* position in its sequence, < kv->n_ctx */
    KVCache *kv;
    const Adapter *lora;      /* NULL: base model */
    float *logits;            /* (vocab) to fill, or NULL when not needed */
} BatchRow;

/* Scratch buffers of a forward pass, grown on demand; one per thread that
 * calls forward(). */
typedef struct Scratch {
    int cap_rows;
    float *x, *xn, *q, *k, *v, *att;
    float *rope;        /* (n, head_dim) each row's rotary cos and sin (rope_table in forward.c) */
    float *h1, *h2;     /* (n, hidden) each, one allocation of n * max(2 * hidden, q + k + v rows)
                           floats with h2 = h1 + n * hidden: a stacked product's output spans both */
    int *lrows, *ltok;  /* (n) row indices: the rows that want logits; the rows of each adapter */
    KernLora *lseg;     /* (3 * n) the LoRA products of one stacked projection */
    /* optional (calibration): called with the input of every projection
     * (layer, proj, n x cols floats) and of the lm_head (layer -1, proj P_COUNT);
     * kept when the buffers grow */
    void (*on_input)(void *ctx, int layer, int proj, const float *x, int n, int cols);
    void *on_input_ctx;
} Scratch;

void scratch_free(Scratch *s); /* safe on zeroed */

/* Runs rows through the model: writes each row's K/V into its cache at its
 * position, attends over positions 0..pos of that cache, and fills the
 * logits the rows asked for. Rows of one sequence must be in increasing
 * position order. -1 with *e set on a bad token or position. */
int forward(const Model *m, Kern *k, Scratch *s, const BatchRow *rows, int n, Err *e);

#endif
