/* quantize.c - the base weights into the file's type: plain conversion for
 * f32/f16/bf16, round-to-nearest Q8/Q4 blocks, or (with calibration
 * statistics) activation-aware Q8/Q4: each projection's input channels are
 * scaled by s_j = mean|x_j|^alpha before quantization (alpha grid-searched per
 * matrix to minimise the output error on the kept calibration activations,
 * 1/s stored as the matrix's in_scale) and Q4 block scales are chosen to
 * minimise the error weighted by the channels' mean x^2. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compile/compile_int.h"
#include "kern/quant.h"

static void *qalloc(QModel *q, size_t bytes)
{
    if (q->n_bufs == q->cap_bufs) {
        int cap = q->cap_bufs ? 2 * q->cap_bufs : 64;
        void **nb = realloc(q->bufs, (size_t)cap * sizeof *nb);
        if (!nb) return NULL;
        q->bufs = nb;
        q->cap_bufs = cap;
    }
    /* 64-byte aligned like the file, so the kernels see what a reader sees */
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p) q->bufs[q->n_bufs++] = p;
    return p;
}

void qmodel_free(QModel *q)
{
    if (!q) return;
    for (int i = 0; i < q->n_bufs; i++) free(q->bufs[i]);
    free(q->bufs);
    free(q->m.layers);
    memset(q, 0, sizeof *q);
}

typedef struct QuantJob {
    void *data;
    uint16_t *scales;
    DType t;
    const QMat *src;
    const float *s, *imp;
} QuantJob;

/* Rows per task of the parallel quantization. */
#define QUANT_ROWS 64

static void quant_task(void *ctx, int task)
{
    const QuantJob *j = ctx;
    int cols = j->src->cols, r1 = (task + 1) * QUANT_ROWS;
    if (r1 > j->src->rows) r1 = j->src->rows;
    size_t rb = qmat_data_bytes(j->t, 1, cols), sb = qmat_scale_bytes(j->t, 1, cols) / 2;
    float row[cols];
    for (int r = task * QUANT_ROWS; r < r1; r++) {
        qmat_row_f32(row, j->src, r);
        if (j->s)
            for (int c = 0; c < cols; c++) row[c] *= j->s[c];
        char *d = (char *)j->data + (size_t)r * rb;
        uint16_t *sc = j->scales ? j->scales + (size_t)r * sb : NULL;
        switch (j->t) {
        case DT_F32: memcpy(d, row, (size_t)cols * 4); break;
        case DT_F16: quant_f32_to_f16((uint16_t *)d, row, (size_t)cols); break;
        case DT_BF16: quant_f32_to_bf16((uint16_t *)d, row, (size_t)cols); break;
        case DT_Q8: quant_row_q8((int8_t *)d, sc, row, cols); break;
        case DT_Q4:
            if (j->imp) quant_row_q4_weighted((uint8_t *)d, sc, row, cols, j->imp);
            else quant_row_q4((uint8_t *)d, sc, row, cols);
            break;
        }
    }
}

/* Quantizes rows x cols of src into (data, scales) of type t, multiplying
 * column j by s[j] first (s NULL: 1) and weighting Q4 block errors by imp.
 * Rows are split over k's threads. */
static void quant_into(Kern *k, void *data, uint16_t *scales, DType t, const QMat *src, const float *s,
                       const float *imp)
{
    QuantJob j = {data, scales, t, src, s, imp};
    kern_parallel(k, (src->rows + QUANT_ROWS - 1) / QUANT_ROWS, quant_task, &j);
}

/* Sum of squared differences between W's and V's products with X (n rows). */
static double out_error(Kern *k, const QMat *W, const QMat *V, const float *X, int n, float *y1, float *y2)
{
    kern_matmul(k, y1, W, X, n);
    kern_matmul(k, y2, V, X, n);
    double err = 0;
    for (size_t i = 0; i < (size_t)n * W->rows; i++) {
        double d = (double)y1[i] - y2[i];
        err += d * d;
    }
    return err;
}

/* One matrix: dst = src in type t. st (may be NULL) holds its input's
 * statistics; awq: search per-channel scales (projections only). */
static int quant_mat(QModel *q, QMat *dst, const QMat *src, DType t, const LinStats *st, int awq, Kern *k, Err *e)
{
    int rows = src->rows, cols = src->cols;
    size_t db = qmat_data_bytes(t, rows, cols), sb = qmat_scale_bytes(t, rows, cols);
    void *data = qalloc(q, db);
    uint16_t *scales = sb ? qalloc(q, sb) : NULL;
    if (!data || (sb && !scales)) {
        return err_set(e, "out of memory quantizing a %d x %d matrix", rows, cols);
    }
    memset(dst, 0, sizeof *dst);
    *dst = (QMat){.type = t, .rows = rows, .cols = cols, .data = data, .scales = sb ? scales : NULL};
    int quantized = t == DT_Q8 || t == DT_Q4;
    if (!quantized || !st || st->count == 0) {
        quant_into(k, data, scales, t, src, NULL, NULL);
        return 0;
    }
    float *imp = malloc((size_t)cols * sizeof *imp), *s = malloc((size_t)cols * sizeof *s);
    float *simp = malloc((size_t)cols * sizeof *simp);
    if (!imp || !s || !simp) {
        free(imp), free(s), free(simp);
        return err_set(e, "out of memory");
    }
    for (int j = 0; j < cols; j++) imp[j] = (float)(st->sum_sq[j] / st->count) + 1e-12f;
    if (!awq || st->n_x == 0) {
        quant_into(k, data, scales, t, src, NULL, imp);
        free(imp), free(s), free(simp);
        return 0;
    }
    /* alpha grid search: candidate quantized into (cdata, cscales, cin) */
    int n = st->n_x;
    void *cdata = malloc(db);
    uint16_t *cscales = malloc(sb);
    float *cin = malloc((size_t)cols * sizeof *cin), *bin = qalloc(q, (size_t)cols * sizeof *bin);
    float *y1 = malloc((size_t)n * rows * sizeof *y1), *y2 = malloc((size_t)n * rows * sizeof *y2);
    int rc = 0;
    if (!cdata || !cscales || !cin || !bin || !y1 || !y2) {
        rc = err_set(e, "out of memory searching the scales of a %d x %d matrix", rows, cols);
        goto out;
    }
    double best = INFINITY;
    int best_alpha = -1;
    for (int ai = 0; ai <= 10; ai++) {
        double alpha = ai / 10.0, lo = INFINITY, hi = 0;
        for (int j = 0; j < cols; j++) {
            double a = st->sum_abs[j] / st->count;
            s[j] = (float)pow(a > 1e-8 ? a : 1e-8, alpha);
            lo = fmin(lo, s[j]);
            hi = fmax(hi, s[j]);
        }
        float norm = (float)sqrt(lo * hi);
        for (int j = 0; j < cols; j++) {
            s[j] /= norm;
            cin[j] = 1.0f / s[j];
            simp[j] = imp[j] * cin[j] * cin[j]; /* the stored matrix sees x / s */
        }
        quant_into(k, cdata, cscales, t, src, ai ? s : NULL, simp);
        QMat cand = {.type = t, .rows = rows, .cols = cols, .data = cdata, .scales = cscales, .in_scale = ai ? cin : NULL};
        double err = out_error(k, src, &cand, st->x, n, y1, y2);
        if (err < best) {
            best = err;
            best_alpha = ai;
            memcpy(data, cdata, db);
            memcpy(scales, cscales, sb);
            memcpy(bin, cin, (size_t)cols * sizeof *bin);
        }
    }
    dst->in_scale = best_alpha > 0 ? bin : NULL;
out:
    free(imp), free(s), free(simp), free(cdata), free(cscales), free(cin), free(y1), free(y2);
    return rc;
}

/* One LoRA matrix (f32 from the loader) as f16 in q's storage. */
static int lora_f16(QModel *q, QMat *m)
{
    size_t n = (size_t)m->rows * m->cols;
    uint16_t *h = qalloc(q, n * sizeof *h);
    if (!h) return -1;
    for (int r = 0; r < m->rows; r++) qmat_row_f32_to_f16(h + (size_t)r * m->cols, m, r);
    m->type = DT_F16;
    m->data = h;
    return 0;
}

/* For q8/q4 builds the adapters' A and B are stored in f16 ("16-bit or
 * better"): they are read for every token, so halving them halves what an
 * unmerged adapter adds to decode's memory traffic. The copies live in q. */
static int adapters_f16(QModel *q, const Model *src, Err *e)
{
    if (!src->n_adapters) return 0;
    Adapter *ads = qalloc(q, (size_t)src->n_adapters * sizeof *ads);
    if (!ads) return err_set(e, "out of memory");
    size_t np = (size_t)src->cfg.n_layers * P_COUNT;
    for (int i = 0; i < src->n_adapters; i++) {
        ads[i] = src->adapters[i];
        ads[i].owned = NULL;
        LoraPair *pairs = qalloc(q, np * sizeof *pairs);
        if (!pairs) return err_set(e, "out of memory");
        memcpy(pairs, src->adapters[i].pairs, np * sizeof *pairs);
        for (size_t j = 0; j < np; j++)
            if (pairs[j].r && (lora_f16(q, &pairs[j].A) || lora_f16(q, &pairs[j].B))) return err_set(e, "out of memory");
        ads[i].pairs = pairs;
    }
    q->m.adapters = ads;
    return 0;
}

int qmodel_build(QModel *q, const Model *src, DType t, const CalibStats *stats, Kern *k,
                 void (*progress)(void *, const char *, int, int), void *pctx, Err *e)
{
    memset(q, 0, sizeof *q);
    q->m = *src;
    q->m.layers = calloc((size_t)src->cfg.n_layers, sizeof *q->m.layers);
    if (!q->m.layers) return err_set(e, "out of memory");
    /* borrowed: the source's storage must not be freed through the copy */
    memset(&q->m.ckpt, 0, sizeof q->m.ckpt);
    q->m.floats = NULL;
    q->m.owned = NULL;
    q->m.n_owned = 0;
    q->m.file_map = NULL;
    q->m.duet = NULL;
    const char *stage = stats ? "calibrated quantization" : "quantization";
    int total = src->cfg.n_layers + 1;
    const LinStats *hs = stats ? &stats->head : NULL;
    if (quant_mat(q, &q->m.embed, &src->embed, t, hs, 0, k, e)) goto fail;
    if (src->cfg.tie_embeddings) q->m.lm_head = q->m.embed;
    else if (quant_mat(q, &q->m.lm_head, &src->lm_head, t, hs, 0, k, e)) goto fail;
    if (progress) progress(pctx, stage, 1, total);
    for (int l = 0; l < src->cfg.n_layers; l++) {
        q->m.layers[l] = src->layers[l];
        for (int p = 0; p < P_COUNT; p++) {
            const LinStats *ls = stats ? &stats->lin[l * P_COUNT + p] : NULL;
            if (quant_mat(q, &q->m.layers[l].w[p], &src->layers[l].w[p], t, ls, 1, k, e)) goto fail;
        }
        if (progress) progress(pctx, stage, l + 2, total);
    }
    if ((t == DT_Q8 || t == DT_Q4) && adapters_f16(q, src, e)) goto fail;
    return 0;
fail:
    qmodel_free(q);
    return -1;
}
