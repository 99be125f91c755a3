/* kern_scalar.c - the portable backend: plain C row kernels with the same
 * structure as the SIMD ones (float weights times f32 activations; Q8/Q4
 * weights times int8-quantized activations, integer dot per block). Runs
 * anywhere and is what the SIMD backends are compared with besides the ref. */
#include "kern/kern_impl.h"

#include <string.h>

#include "kern/qblock.h"
#include "util/half.h"

enum { CHUNK = 256 }; /* columns converted to f32 at a time */

static float load_w(const void *data, DType t, size_t i)
{
    uint16_t h;
    switch (t) {
    case DT_F16: memcpy(&h, (const char *)data + 2 * i, 2); return f16_to_f32(h);
    case DT_BF16: memcpy(&h, (const char *)data + 2 * i, 2); return bf16_to_f32(h);
    default: { /* the mapping may leave f32 data only 2-byte aligned */
        float f;
        memcpy(&f, (const char *)data + 4 * i, 4);
        return f;
    }
    }
}

static void mm_float(const MMArgs *a, int r0, int r1)
{
    const QMat *W = a->W;
    int cols = W->cols;
    for (int r = r0; r < r1; r++) {
        for (int t = 0; t < a->n; t++) a->Y[(size_t)t * W->rows + r] = 0;
        for (int c0 = 0; c0 < cols; c0 += CHUNK) {
            int len = cols - c0 < CHUNK ? cols - c0 : CHUNK;
            float w[CHUNK];
            for (int i = 0; i < len; i++) w[i] = load_w(W->data, W->type, (size_t)r * cols + c0 + i);
            for (int t = 0; t < a->n; t++) {
                const float *x = a->X + (size_t)t * cols + c0;
                float s = 0;
                for (int i = 0; i < len; i++) s += w[i] * x[i];
                a->Y[(size_t)t * W->rows + r] += s;
            }
        }
    }
}

static void mm_q8(const MMArgs *a, int r0, int r1)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    int nb = A->nb;
    for (int r = r0; r < r1; r++) {
        const int8_t *w = (const int8_t *)W->data + (size_t)r * nb * QBLOCK;
        for (int t = 0; t < a->n; t++) {
            const int8_t *x = A->q + (size_t)t * nb * QBLOCK;
            const float *d = A->d + (size_t)t * nb;
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                int s = 0;
                for (int i = 0; i < QBLOCK; i++) s += w[b * QBLOCK + i] * x[b * QBLOCK + i];
                acc += f16_to_f32(W->scales[(size_t)r * nb + b]) * d[b] * (float)s;
            }
            a->Y[(size_t)t * W->rows + r] = acc;
        }
    }
}

static void mm_q4(const MMArgs *a, int r0, int r1)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    int nb = A->nb;
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = (const uint8_t *)W->data + (size_t)r * nb * (QBLOCK / 2);
        for (int t = 0; t < a->n; t++) {
            const int8_t *x = A->q + (size_t)t * nb * QBLOCK;
            const float *d = A->d + (size_t)t * nb;
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *wb = w + b * 16;
                const int8_t *xb = x + b * QBLOCK;
                int s = 0;
                for (int i = 0; i < 16; i++)
                    s += ((wb[i] & 15) - 8) * xb[i] + ((wb[i] >> 4) - 8) * xb[16 + i];
                acc += f16_to_f32(W->scales[(size_t)r * nb + b]) * d[b] * (float)s;
            }
            a->Y[(size_t)t * W->rows + r] = acc;
        }
    }
}

/* The other block types (super-block ones too): each block's signed values
 * and scale decoded once per row and token set (qblock.h), then the same
 * integer dot as Q8. */
static void mm_qgen(const MMArgs *a, int r0, int r1)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    int nb = A->nb;
    size_t wrow = (size_t)nb * qb_bytes(W->type), sw = qb_scale_words(W->type, nb);
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = (const uint8_t *)W->data + (size_t)r * wrow;
        const uint16_t *sc = W->scales + (size_t)r * sw;
        for (int t = 0; t < a->n; t++) a->Y[(size_t)t * W->rows + r] = 0;
        for (int b = 0; b < nb; b++) {
            int v[QBLOCK];
            qb_values(W->type, w, nb, b, v);
            float dw = f16_to_f32(qb_block_scale(W->type, sc, b));
            for (int t = 0; t < a->n; t++) {
                const int8_t *xb = A->q + ((size_t)t * nb + b) * QBLOCK;
                int s = 0;
                for (int i = 0; i < QBLOCK; i++) s += v[i] * xb[i];
                a->Y[(size_t)t * W->rows + r] += dw * A->d[(size_t)t * nb + b] * (float)s;
            }
        }
    }
}

static void axpy_f16(float *y, float alpha, const uint16_t *h, int n)
{
    for (int i = 0; i < n; i++) y[i] += alpha * load_w(h, DT_F16, (size_t)i);
}

static float read_sum(const float *p, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    for (; i < n; i++) s[0] += p[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

const KernOps kern_ops_scalar = {
    .name = "scalar",
    .mm = {mm_float, mm_float, mm_float, mm_q8, mm_q4, mm_qgen, mm_qgen, mm_qgen, mm_qgen, mm_qgen, mm_qgen, mm_qgen,
           mm_qgen},
    .act_layout = NULL,
    .axpy_f16 = axpy_f16,
    .lora8_a = lora8_a_portable,
    .lora8_b = lora8_b_portable,
    .read_sum = read_sum,
};
