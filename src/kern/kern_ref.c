/* kern_ref.c - scalar reference kernels: obviously correct, slow, the oracle. */
#include "kern/kern.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern/qblock.h"
#include "util/half.h"

static const char *names[] = {"f32", "f16", "bf16", "q8", "q4", "q6", "q5", "iq4", "iq3", "q6k", "q5k", "iq4k", "iq3k"};

/* IQ4: llama.cpp's IQ4_NL values (a grid fitted to weight blocks scaled by
 * their largest element); IQ3: 8 levels, symmetric, denser near zero. */
const int8_t kern_grid_iq4[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
const int8_t kern_grid_iq3[8] = {-127, -80, -46, -15, 15, 46, 80, 127};

double dtype_bits(DType t)
{
    switch (t) {
    case DT_F32: return 32;
    case DT_F16:
    case DT_BF16: return 16;
    default:
        if (dtype_is_super(t)) return 8.0 * qb_bytes(t) / QBLOCK + 8.0 * 2 * QSUPER_WORDS / (QBLOCK * QSUPER);
        return dtype_is_block(t) ? 8.0 * (qb_bytes(t) + 2) / QBLOCK : 0;
    }
}

const char *dtype_name(DType t)
{
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

int dtype_from_name(const char *s)
{
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static size_t nblocks(int cols) { return ((size_t)cols + QBLOCK - 1) / QBLOCK; }

size_t qmat_data_bytes(DType t, int rows, int cols)
{
    switch (t) {
    case DT_F32: return (size_t)rows * cols * 4;
    case DT_F16:
    case DT_BF16: return (size_t)rows * cols * 2;
    default: return dtype_is_block(t) ? (size_t)rows * nblocks(cols) * qb_bytes(t) : 0;
    }
}

size_t qmat_scale_bytes(DType t, int rows, int cols)
{
    return dtype_is_block(t) ? (size_t)rows * qb_scale_words(t, (int)nblocks(cols)) * 2 : 0;
}

void qmat_block_scales(uint16_t *out, const QMat *W, int row)
{
    int nb = (int)nblocks(W->cols);
    const uint16_t *s = W->scales + (size_t)row * qb_scale_words(W->type, nb);
    for (int b = 0; b < nb; b++) out[b] = qb_block_scale(W->type, s, b);
}

static uint16_t load_u16(const void *p, size_t i)
{
    uint16_t v;
    memcpy(&v, (const char *)p + 2 * i, 2);
    return v;
}

/* Values j0 .. j0+n-1 of row `row` of W as float32 into out[0..n). */
static void row_part(float *out, const QMat *W, int row, size_t j0, size_t n)
{
    size_t c = (size_t)W->cols, nb = nblocks(W->cols), base = (size_t)row * c;
    switch (W->type) {
    case DT_F32: memcpy(out, (const float *)W->data + base + j0, n * 4); break;
    case DT_F16:
        for (size_t j = 0; j < n; j++) out[j] = f16_to_f32(load_u16(W->data, base + j0 + j));
        break;
    case DT_BF16:
        for (size_t j = 0; j < n; j++) out[j] = bf16_to_f32(load_u16(W->data, base + j0 + j));
        break;
    case DT_Q8: {
        const int8_t *q = (const int8_t *)W->data + (size_t)row * nb * QBLOCK;
        for (size_t j = j0; j < j0 + n; j++)
            out[j - j0] = q[j] * f16_to_f32(W->scales[(size_t)row * nb + j / QBLOCK]);
        break;
    }
    case DT_Q4: {
        const uint8_t *q = (const uint8_t *)W->data + (size_t)row * nb * (QBLOCK / 2);
        for (size_t j = j0; j < j0 + n; j++) {
            size_t b = j / QBLOCK, i = j % QBLOCK;
            uint8_t byte = q[b * 16 + (i & 15)];
            int nib = i < 16 ? (byte & 15) : (byte >> 4);
            out[j - j0] = (float)(nib - 8) * f16_to_f32(W->scales[(size_t)row * nb + b]);
        }
        break;
    }
    default: { /* the other block types, block by block */
        const uint8_t *q = (const uint8_t *)W->data + (size_t)row * nb * qb_bytes(W->type);
        const uint16_t *sc = W->scales + (size_t)row * qb_scale_words(W->type, (int)nb);
        for (size_t b = j0 / QBLOCK; b * QBLOCK < j0 + n; b++) {
            int v[QBLOCK];
            qb_values(W->type, q, (int)nb, (int)b, v);
            float d = f16_to_f32(qb_block_scale(W->type, sc, (int)b));
            for (size_t i = 0; i < QBLOCK; i++) {
                size_t j = b * QBLOCK + i;
                if (j >= j0 && j < j0 + n) out[j - j0] = (float)v[i] * d;
            }
        }
        break;
    }
    }
    if (W->in_scale)
        for (size_t j = 0; j < n; j++) out[j] *= W->in_scale[j0 + j];
}

void qmat_row_f32(float *out, const QMat *W, int row)
{
    row_part(out, W, row, 0, (size_t)W->cols);
}

void kern_matmul_ref(float *Y, const QMat *W, const float *X, int n)
{
    /* f32 rows are read in place when they are aligned floats (a matrix may
     * start at any byte); others converted into a heap row (cols reaches
     * 2^20: no stack array). Without memory every output is NaN, which the
     * run checks stop at. */
    int direct = W->type == DT_F32 && !W->in_scale && (uintptr_t)W->data % _Alignof(float) == 0;
    float *buf = direct ? NULL : malloc((size_t)(W->cols > 0 ? W->cols : 1) * sizeof *buf);
    if (!direct && !buf) {
        for (size_t i = 0; i < (size_t)n * W->rows; i++) Y[i] = NAN;
        return;
    }
    for (int r = 0; r < W->rows; r++) {
        const float *row = direct ? (const float *)W->data + (size_t)r * W->cols : buf;
        if (!direct) qmat_row_f32(buf, W, r);
        for (int t = 0; t < n; t++) {
            const float *x = X + (size_t)t * W->cols;
            double acc = 0;
            for (int j = 0; j < W->cols; j++) acc += (double)row[j] * x[j];
            Y[(size_t)t * W->rows + r] = (float)acc;
        }
    }
    free(buf);
}

void qmat_row_f32_to_f16(uint16_t *out, const QMat *W, int row)
{
    float tmp[256]; /* the row 256 values at a time (no stack array sized by cols) */
    for (int j0 = 0; j0 < W->cols; j0 += 256) {
        int n = W->cols - j0 < 256 ? W->cols - j0 : 256;
        row_part(tmp, W, row, (size_t)j0, (size_t)n);
        for (int j = 0; j < n; j++) out[j0 + j] = f32_to_f16(tmp[j]);
    }
}

void kern_silu_mul_ref(float *y, const float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = g[i];
        y[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

void kern_attn_prefill_f16_ref(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                               const uint16_t *V, size_t stride, const int *vis)
{
    for (int i = 0; i < nq; i++)
        kern_attn_f16_ref(acc + (size_t)i * hd, m + i, l + i, Q + (size_t)i * hd, 1, hd, K, V, stride, vis[i]);
}

void kern_attn_f16_ref(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                       const uint16_t *V, size_t stride, int n)
{
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY;
        l[g] = 0;
        for (int d = 0; d < hd; d++) acc[(size_t)g * hd + d] = 0;
    }
    for (int p = 0; p < n; p++) {
        const uint16_t *kr = K + (size_t)p * stride, *vr = V + (size_t)p * stride;
        for (int g = 0; g < G; g++) {
            float s = 0, *a = acc + (size_t)g * hd;
            for (int d = 0; d < hd; d++) s += q[(size_t)g * hd + d] * f16_to_f32(kr[d]);
            if (s > m[g]) {
                float c = expf(m[g] - s);
                l[g] *= c;
                for (int d = 0; d < hd; d++) a[d] *= c;
                m[g] = s;
            }
            float w = expf(s - m[g]);
            l[g] += w;
            for (int d = 0; d < hd; d++) a[d] += w * f16_to_f32(vr[d]);
        }
    }
}
