/* lora_store.c - how a compile stores the adapters' A and B (compile_int.h's
 * qmodel_adapters): f16, or q8 with B transposed so that its blocks of 32
 * run along the output rows (kern.h's KernLora). Whether q8 keeps a pair is
 * measured on the pair itself: the relative change of its product B A,
 * computed through r x r Gram matrices, never the out x in product. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compile/compile_int.h"
#include "kern/quant.h"
#include "util/half.h"

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

/* An f32 LoRA matrix as q8 (round to nearest) in q's storage: A (r x in)
 * row by row; B (out x r) in kern.h's blocks of 32 output rows, stored row
 * b * r + k = B[32b .. 32b + 31][k]. *m becomes the stored matrix. */
static int lora_q8(QModel *q, QMat *m, int is_b)
{
    int r = is_b ? m->cols : m->rows, nbo = (m->rows + QBLOCK - 1) / QBLOCK;
    int rows = is_b ? nbo * r : m->rows, cols = is_b ? QBLOCK : m->cols;
    int8_t *d = qalloc(q, qmat_data_bytes(DT_Q8, rows, cols));
    uint16_t *sc = qalloc(q, qmat_scale_bytes(DT_Q8, rows, cols));
    float *row = malloc((size_t)cols * sizeof *row);
    if (!d || !sc || !row) {
        free(row);
        return -1;
    }
    const float *f = m->data;
    size_t nb = ((size_t)cols + QBLOCK - 1) / QBLOCK;
    for (int i = 0; i < rows; i++) {
        if (is_b) {
            int b = i / r, k = i % r;
            for (int c = 0; c < QBLOCK; c++) row[c] = b * QBLOCK + c < m->rows ? f[(size_t)(b * QBLOCK + c) * r + k] : 0;
        } else {
            memcpy(row, f + (size_t)i * cols, (size_t)cols * sizeof *row);
        }
        quant_row_q8(d + (size_t)i * nb * QBLOCK, sc + (size_t)i * nb, row, cols);
    }
    free(row);
    *m = (QMat){.type = DT_Q8, .rows = rows, .cols = cols, .data = d, .scales = sc};
    return 0;
}

/* G (k x k) = M^T M for an f32 n x k matrix M given column by column as
 * cols[0..k) with stride ld (elements between consecutive rows). */
static void gram(double *G, const float *const *cols, const int *ld, int n, int k)
{
    for (int a = 0; a < k; a++)
        for (int b = a; b < k; b++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (double)cols[a][(size_t)i * ld[a]] * cols[b][(size_t)i * ld[b]];
            G[a * k + b] = G[b * k + a] = s;
        }
}

/* ||B' A' - B A|| / ||B A|| (Frobenius) for a pair and its round trip
 * through q8 (Ad: r x in, Bd: out x r, both f32 and dequantized):
 * B' A' - B A = [B', B] [A'; -A], whose squared norm is the trace of the
 * product of the two 2r x 2r Gram matrices. */
static double pair_err(const LoraPair *lp, const float *Ad, const float *Bd)
{
    int r = lp->r, in = lp->A.cols, out = lp->B.rows, k = 2 * r;
    const float *A = lp->A.data, *B = lp->B.data;
    double *GB = malloc((size_t)k * k * sizeof *GB), *GA = malloc((size_t)k * k * sizeof *GA);
    const float **cb = malloc((size_t)k * sizeof *cb), **ca = malloc((size_t)k * sizeof *ca);
    int *lb = malloc((size_t)k * sizeof *lb), *la = malloc((size_t)k * sizeof *la);
    double e = INFINITY;
    if (GB && GA && cb && ca && lb && la) {
        for (int j = 0; j < r; j++) { /* B's column j: stride r; A's row j: stride 1 */
            cb[j] = Bd + j, cb[r + j] = B + j, lb[j] = lb[r + j] = r;
            ca[j] = Ad + (size_t)j * in, ca[r + j] = A + (size_t)j * in, la[j] = la[r + j] = 1;
        }
        gram(GB, cb, lb, out, k);
        gram(GA, ca, la, in, k);
        double d = 0, n = 0; /* the sign of -A flips the cross blocks */
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) {
                double s = (a < r) == (b < r) ? 1 : -1;
                d += s * GB[a * k + b] * GA[b * k + a];
                if (a >= r && b >= r) n += GB[a * k + b] * GA[b * k + a];
            }
        e = n > 0 ? sqrt(fmax(d, 0) / n) : 0;
    }
    free(GB), free(GA), free(cb), free(ca), free(lb), free(la);
    return e;
}

/* pairs (np entries) = adapter sa's (f32 from the loader) with A and B in
 * q8 in t's storage; returns the largest relative change q8 makes to a
 * pair's product, or -1 if out of memory. */
static double adapter_q8(QModel *t, LoraPair *pairs, const Adapter *sa, int np)
{
    double worst = 0;
    memcpy(pairs, sa->pairs, (size_t)np * sizeof *pairs);
    for (int j = 0; j < np; j++) {
        const LoraPair *lp = &sa->pairs[j];
        LoraPair *q = &pairs[j];
        if (!lp->r) continue;
        if (lp->A.type != DT_F32 || lp->B.type != DT_F32 || lora_q8(t, &q->A, 0) || lora_q8(t, &q->B, 1)) return -1;
        float *Ad = malloc((size_t)lp->A.rows * lp->A.cols * sizeof *Ad), *Bd = malloc((size_t)lp->B.rows * lp->B.cols * sizeof *Bd);
        if (!Ad || !Bd) {
            free(Ad), free(Bd);
            return -1;
        }
        for (int i = 0; i < lp->A.rows; i++) qmat_row_f32(Ad + (size_t)i * lp->A.cols, &q->A, i);
        for (int i = 0; i < lp->B.rows; i++) kern_lora_b_row(Bd + (size_t)i * lp->r, &q->B, lp->r, i);
        double e = pair_err(lp, Ad, Bd);
        free(Ad), free(Bd);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

int qmodel_adapters(QModel *q, const Model *src, const QuantCfg *cfg, Err *e)
{
    if (!src->n_adapters) return 0;
    Adapter *ads = qalloc(q, (size_t)src->n_adapters * sizeof *ads);
    if (!ads) return err_set(e, "out of memory");
    int np = src->cfg.n_layers * P_COUNT;
    int want_q8 = cfg->lora == QLORA_Q8 || (cfg->lora == QLORA_AUTO && dtype_bits(cfg->t) <= QLORA_AUTO_BITS);
    for (int i = 0; i < src->n_adapters; i++) {
        const Adapter *sa = &src->adapters[i];
        LoraPair *pairs = qalloc(q, (size_t)np * sizeof *pairs);
        if (!pairs) return err_set(e, "out of memory");
        QModel t8 = {0}; /* the q8 form, measured; moved into q if kept */
        double err = adapter_q8(&t8, pairs, sa, np);
        int q8 = err >= 0 && (cfg->lora == QLORA_Q8 || (want_q8 && err <= QLORA_MAX_ERR));
        if (q8 && qmodel_take(q, &t8)) err = -1;
        qmodel_free(&t8);
        if (err < 0) return err_set(e, "adapter \"%s\": out of memory storing its 8-bit form", sa->name);
        if (cfg->lora_out) cfg->lora_out[i] = (QLoraChoice){q8 ? DT_Q8 : DT_F16, err};
        ads[i] = *sa;
        ads[i].owned = NULL;
        ads[i].pairs = pairs;
        if (q8) continue;
        memcpy(pairs, sa->pairs, (size_t)np * sizeof *pairs);
        for (int j = 0; j < np; j++)
            if (pairs[j].r && (lora_f16(q, &pairs[j].A) || lora_f16(q, &pairs[j].B))) return err_set(e, "out of memory");
    }
    q->m.adapters = ads;
    return 0;
}
