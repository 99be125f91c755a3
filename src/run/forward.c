#include "run/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run/attention.h"
#include "util/half.h"

/* LoRA ranks above this are refused when the adapter is loaded as well */
#define LORA_MAX_RANK 256

size_t kv_bytes(const ModelConfig *c, int n_ctx, KvType type)
{
    return 2 * (size_t)c->n_layers * n_ctx * c->n_kv_heads * c->head_dim * (type == KV_F16 ? 2 : 4);
}

int kv_init(KVCache *kv, const ModelConfig *c, int n_ctx, KvType type, Err *e)
{
    memset(kv, 0, sizeof *kv);
    if (n_ctx <= 0) return err_set(e, "context length must be positive, got %d", n_ctx);
    if (n_ctx > c->max_pos) /* the one rule for the CLI and the API: no positions the model was not trained for */
        return err_set(e, "a context of %d positions exceeds the model's max_position_embeddings (%d)", n_ctx, c->max_pos);
    size_t half = kv_bytes(c, n_ctx, type) / 2;
    kv->k = malloc(half);
    kv->v = malloc(half);
    if (!kv->k || !kv->v) {
        kv_free(kv);
        return err_set(e, "out of memory for a KV cache of %d positions (%zu MB)", n_ctx, 2 * half >> 20);
    }
    kv->type = type;
    kv->n_ctx = n_ctx;
    kv->n_layers = c->n_layers;
    kv->kv_dim = c->n_kv_heads * c->head_dim;
    return 0;
}

void kv_free(KVCache *kv)
{
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

void scratch_free(Scratch *s)
{
    if (!s) return;
    float **bufs[] = {&s->x, &s->xn, &s->q, &s->k, &s->v, &s->att, &s->h1, &s->rope};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]); /* h2 lies inside h1 */
    free(s->lrows);
    free(s->ltok);
    free(s->lseg);
    memset(s, 0, sizeof *s);
}

static int scratch_reserve(Scratch *s, const ModelConfig *c, int n, Err *e)
{
    if (n <= s->cap_rows) return 0;
    void (*hook)(void *, int, int, const float *, int, int) = s->on_input;
    void *hook_ctx = s->on_input_ctx;
    scratch_free(s);
    s->on_input = hook;
    s->on_input_ctx = hook_ctx;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t wide = (size_t)c->hidden_dim > qd ? (size_t)c->hidden_dim : qd;
    if ((size_t)c->dim > wide) wide = (size_t)c->dim;
    s->x = malloc(n * c->dim * sizeof(float));
    s->xn = malloc(n * wide * sizeof(float));
    s->q = malloc(n * qd * sizeof(float));
    s->k = malloc(n * kvd * sizeof(float));
    s->v = malloc(n * kvd * sizeof(float));
    s->att = malloc(n * qd * sizeof(float));
    size_t stack = 2 * (size_t)c->hidden_dim > qd + 2 * kvd ? 2 * (size_t)c->hidden_dim : qd + 2 * kvd;
    s->h1 = malloc(n * stack * sizeof(float));
    s->h2 = s->h1 ? s->h1 + n * (size_t)c->hidden_dim : NULL;
    s->rope = malloc(n * (size_t)c->head_dim * sizeof(float));
    s->lrows = malloc(n * sizeof(int));
    s->ltok = malloc(n * sizeof(int));
    s->lseg = malloc(3 * (size_t)n * sizeof *s->lseg);
    if (!s->x || !s->xn || !s->q || !s->k || !s->v || !s->att || !s->h1 || !s->rope || !s->lrows || !s->ltok || !s->lseg) {
        scratch_free(s);
        return err_set(e, "out of memory for the scratch of a %d-row batch", n);
    }
    s->cap_rows = n;
    return 0;
}

/* out = x / rms(x) * w over n values (HF Qwen2RMSNorm, float32). */
static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    float ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

/* HF rotary embedding (rotate_half) at position pos: the cos (cs[0 .. hd/2))
 * and sin (cs[hd/2 .. hd)) of each pair's angle, once per row for all heads
 * and layers. inv_freq and the angle are float32 as in transformers. */
static void rope_table(float *cs, const ModelConfig *c, int pos)
{
    int hd = c->head_dim, half = hd / 2;
    for (int i = 0; i < half; i++) {
        float inv = config_rope_freq(c, i);
        float ang = (float)pos * inv;
        cs[i] = cosf(ang);
        cs[half + i] = sinf(ang);
    }
}

/* Rotates one head of size hd by a row's rope_table. */
static void rope(float *x, const float *cs, int hd)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float c = cs[i], s = cs[half + i], x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c - x2 * s;
        x[i + half] = x2 * c + x1 * s;
    }
}

/* y (n x W->rows) = x W^T plus each row's LoRA, where W is the projections
 * ps[0..np) of the layer stacked by rows (np = 1: W is that projection; np > 1:
 * a fused view, Layer.qkv or Layer.gate_up). The LoRA products run inside the
 * base product's pool job (kern_matmul_lora): at decode they are too small to
 * be worth a pool job each, and at prefill they are split over the pool by
 * tokens, not by their few rows. */
static int project(const Model *m, Kern *k, Scratch *s, const BatchRow *rows, int n, int layer, const Proj *ps,
                   int np, const QMat *W, const float *x, float *y, Err *e)
{
    if (s->on_input)
        for (int pi = 0; pi < np; pi++) s->on_input(s->on_input_ctx, layer, ps[pi], x, n, W->cols);
    /* one KernLora per (adapter in the batch, projection it has a pair on);
     * the token lists of the adapters share ltok (n entries in all) */
    int n_seg = 0, used = 0;
    for (int ai = 0; ai < m->n_adapters; ai++) {
        const Adapter *a = &m->adapters[ai];
        if (ai == m->merged) continue;
        int *tok = s->ltok + used, g = 0;
        for (int i = 0; i < n; i++)
            if (rows[i].lora == a) tok[g++] = i;
        if (!g) continue;
        used += g;
        for (int pi = 0, off = 0; pi < np; off += m->layers[layer].w[ps[pi]].rows, pi++) {
            const LoraPair *lp = adapter_pair(a, layer, ps[pi]);
            if (!lp) continue;
            if (lp->r > LORA_MAX_RANK)
                return err_set(e, "adapter \"%s\": rank %d above the supported %d", a->name, lp->r, LORA_MAX_RANK);
            s->lseg[n_seg++] = (KernLora){.r0 = off, .r1 = off + m->layers[layer].w[ps[pi]].rows, .A = &lp->A,
                                          .B = &lp->B, .scale = lp->scale, .dora = lp->dora, .tok = tok, .n_tok = g};
        }
    }
    if (n_seg) kern_matmul_lora(k, y, W, x, n, s->lseg, n_seg);
    else kern_matmul(k, y, W, x, n); /* no adapter rows: the base product's own split */
    return 0;
}

static void kv_store(KVCache *kv, void *base, int layer, int pos, const float *src)
{
    size_t off = ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim;
    if (kv->type == KV_F32) {
        memcpy((float *)base + off, src, kv->kv_dim * sizeof(float));
    } else {
        uint16_t *h = (uint16_t *)base + off;
        for (int i = 0; i < kv->kv_dim; i++) h[i] = f32_to_f16(src[i]);
    }
}

int forward(const Model *m, Kern *k, Scratch *s, const BatchRow *rows, int n, Err *e)
{
    const ModelConfig *c = &m->cfg;
    if (n <= 0) return 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].token < 0 || rows[i].token >= c->vocab_size)
            return err_set(e, "token id %d is outside the vocabulary (0 .. %d)", rows[i].token, c->vocab_size - 1);
        if (rows[i].pos < 0 || rows[i].pos >= rows[i].kv->n_ctx)
            return err_set(e, "position %d is beyond the context length %d", rows[i].pos, rows[i].kv->n_ctx);
    }
    if (scratch_reserve(s, c, n, e)) return -1;
    int dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, hid = c->hidden_dim;
    static const Proj qkv_ps[3] = {P_Q, P_K, P_V}, o_ps[1] = {P_O}, gu_ps[2] = {P_GATE, P_UP}, down_ps[1] = {P_DOWN};
    for (int i = 0; i < n; i++) {
        qmat_row_f32(s->x + (size_t)i * dim, &m->embed, rows[i].token);
        rope_table(s->rope + (size_t)i * hd, c, rows[i].pos);
    }

    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m->layers[l];
        for (int i = 0; i < n; i++) rmsnorm(s->xn + (size_t)i * dim, s->x + (size_t)i * dim, L->attn_norm, dim, c->norm_eps);
        /* q, k, v: one product over the stacked weights when the file allows
         * it (k and v alone are too small to stream at full bandwidth) */
        int qkvd = qd + 2 * kvd;
        if (L->qkv.rows) {
            if (project(m, k, s, rows, n, l, qkv_ps, 3, &L->qkv, s->xn, s->h1, e)) return -1;
        } else if (project(m, k, s, rows, n, l, qkv_ps, 1, &L->w[P_Q], s->xn, s->q, e) ||
                   project(m, k, s, rows, n, l, qkv_ps + 1, 1, &L->w[P_K], s->xn, s->k, e) ||
                   project(m, k, s, rows, n, l, qkv_ps + 2, 1, &L->w[P_V], s->xn, s->v, e)) {
            return -1;
        }
        for (int i = 0; i < n; i++) {
            float *q = s->q + (size_t)i * qd, *kk = s->k + (size_t)i * kvd, *v = s->v + (size_t)i * kvd;
            if (L->qkv.rows) { /* attention reads q from s->q; k and v go to the cache from here */
                const float *f = s->h1 + (size_t)i * qkvd;
                memcpy(q, f, qd * sizeof(float));
                kk = s->h1 + (size_t)i * qkvd + qd;
                v = kk + kvd;
            }
            if (L->bq) {
                for (int j = 0; j < qd; j++) q[j] += L->bq[j];
                for (int j = 0; j < kvd; j++) kk[j] += L->bk[j];
                for (int j = 0; j < kvd; j++) v[j] += L->bv[j];
            }
            for (int h = 0; h < c->n_heads; h++) {
                if (L->q_norm) rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, c->norm_eps);
                rope(q + h * hd, s->rope + (size_t)i * hd, hd);
            }
            for (int h = 0; h < c->n_kv_heads; h++) {
                if (L->k_norm) rmsnorm(kk + h * hd, kk + h * hd, L->k_norm, hd, c->norm_eps);
                rope(kk + h * hd, s->rope + (size_t)i * hd, hd);
            }
            kv_store(rows[i].kv, rows[i].kv->k, l, rows[i].pos, kk);
            kv_store(rows[i].kv, rows[i].kv->v, l, rows[i].pos, v);
        }
        if (attention(c, k, rows, n, l, s->q, s->att, e)) return -1;
        if (project(m, k, s, rows, n, l, o_ps, 1, &L->w[P_O], s->att, s->xn, e)) return -1;
        for (size_t i = 0; i < (size_t)n * dim; i++) s->x[i] += s->xn[i];

        for (int i = 0; i < n; i++) rmsnorm(s->xn + (size_t)i * dim, s->x + (size_t)i * dim, L->ffn_norm, dim, c->norm_eps);
        if (L->gate_up.rows) {
            /* (n, 2 * hid) across h1 and h2, gate then up in each row; silu(g) * u is
             * written to row i of h1 in place: it overwrites only values of rows
             * before i, or the very gate value just read */
            if (project(m, k, s, rows, n, l, gu_ps, 2, &L->gate_up, s->xn, s->h1, e)) return -1;
            for (size_t i = 0; i < (size_t)n; i++) {
                const float *g = s->h1 + i * 2 * hid;
                kern_silu_mul(k, s->h1 + i * hid, g, g + hid, (size_t)hid);
            }
        } else {
            if (project(m, k, s, rows, n, l, gu_ps, 1, &L->w[P_GATE], s->xn, s->h1, e) ||
                project(m, k, s, rows, n, l, gu_ps + 1, 1, &L->w[P_UP], s->xn, s->h2, e))
                return -1;
            kern_silu_mul(k, s->h1, s->h1, s->h2, (size_t)n * hid);
        }
        if (project(m, k, s, rows, n, l, down_ps, 1, &L->w[P_DOWN], s->h1, s->xn, e)) return -1;
        for (size_t i = 0; i < (size_t)n * dim; i++) s->x[i] += s->xn[i];
    }
    /* logits only for the rows that want them: the lm_head is the biggest matrix */
    int g = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].logits) continue;
        rmsnorm(s->xn + (size_t)g * dim, s->x + (size_t)i * dim, m->final_norm, dim, c->norm_eps);
        s->lrows[g++] = i;
    }
    if (s->on_input) s->on_input(s->on_input_ctx, -1, P_COUNT, s->xn, g, dim);
    if (g == 1) {
        kern_matmul(k, rows[s->lrows[0]].logits, &m->lm_head, s->xn, 1);
        return 0;
    }
    /* one pass over the lm_head for all rows, then scatter */
    float *tmp = malloc((size_t)g * c->vocab_size * sizeof(float));
    if (!tmp) return err_set(e, "out of memory for %d rows of logits", g);
    kern_matmul(k, tmp, &m->lm_head, s->xn, g);
    for (int i = 0; i < g; i++)
        memcpy(rows[s->lrows[i]].logits, tmp + (size_t)i * c->vocab_size, c->vocab_size * sizeof(float));
    free(tmp);
    return 0;
}
