/* quant.c - see quant.h. Scalar and simple: it runs once, at compile time. */
#include "kern/quant.h"

#include <math.h>
#include <string.h>

#include "util/half.h"

static int nblocks(int cols) { return (cols + QBLOCK - 1) / QBLOCK; }

/* Copies block b of x (zero-padded) into v; returns max |v|. */
static float block_load(float v[QBLOCK], const float *x, int cols, int b)
{
    float amax = 0;
    for (int i = 0; i < QBLOCK; i++) {
        int j = b * QBLOCK + i;
        v[i] = j < cols ? x[j] : 0.0f;
        if (fabsf(v[i]) > amax) amax = fabsf(v[i]);
    }
    return amax;
}

void quant_row_q8(int8_t *q, uint16_t *scales, const float *x, int cols)
{
    for (int b = 0; b < nblocks(cols); b++) {
        float v[QBLOCK];
        float amax = block_load(v, x, cols, b);
        uint16_t h = f32_to_f16(amax / 127.0f);
        float d = f16_to_f32(h), inv = d > 0 ? 1.0f / d : 0.0f;
        for (int i = 0; i < QBLOCK; i++) {
            long qi = lrintf(v[i] * inv);
            q[b * QBLOCK + i] = (int8_t)(qi > 127 ? 127 : qi < -127 ? -127 : qi);
        }
        scales[b] = h;
    }
}

static int q4_level(float v, float inv)
{
    long n = lrintf(v * inv) + 8;
    return n < 0 ? 0 : n > 15 ? 15 : (int)n;
}

void quant_row_q4_weighted(uint8_t *q, uint16_t *scales, const float *x, int cols,
                           const float *importance)
{
    for (int b = 0; b < nblocks(cols); b++) {
        float v[QBLOCK], imp[QBLOCK], big = 0;
        float amax = block_load(v, x, cols, b);
        for (int i = 0; i < QBLOCK; i++) {
            int j = b * QBLOCK + i;
            imp[i] = importance && j < cols ? importance[j] : 1.0f;
            if (fabsf(v[i]) == amax) big = v[i];
        }
        uint16_t best_h = 0;
        double best_err = INFINITY;
        /* the largest element lands on level +7 (d = big / s) or -8
         * (d = -big / s') for s over a grid; f16 rounding of d included */
        for (int k = 0; k <= 16 && amax > 0; k++) {
            float s = 6.0f + 0.125f * (float)k;
            for (int sign = 0; sign < 2; sign++) {
                float d = sign ? -big / s : big / s;
                if (!(d > 0)) d = -d;
                uint16_t h = f32_to_f16(d);
                float dq = f16_to_f32(h), inv = dq > 0 ? 1.0f / dq : 0.0f;
                double err = 0;
                for (int i = 0; i < QBLOCK; i++) {
                    float e = v[i] - (float)(q4_level(v[i], inv) - 8) * dq;
                    err += (double)imp[i] * e * e;
                }
                if (err < best_err) {
                    best_err = err;
                    best_h = h;
                }
            }
        }
        float dq = f16_to_f32(best_h), inv = dq > 0 ? 1.0f / dq : 0.0f;
        for (int i = 0; i < 16; i++) {
            int lo = q4_level(v[i], inv), hi = q4_level(v[16 + i], inv);
            q[b * 16 + i] = (uint8_t)(lo | hi << 4);
        }
        scales[b] = best_h;
    }
}

void quant_row_q4(uint8_t *q, uint16_t *scales, const float *x, int cols)
{
    quant_row_q4_weighted(q, scales, x, cols, NULL);
}

void quant_f32_to_f16(uint16_t *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = f32_to_f16(in[i]);
}

void quant_f32_to_bf16(uint16_t *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

int quant_matrix(DType t, void *data, uint16_t *scales, const float *w, int rows, int cols)
{
    size_t n = (size_t)rows * cols, nb = (size_t)nblocks(cols);
    switch (t) {
    case DT_F32: memcpy(data, w, n * sizeof(float)); return 0;
    case DT_F16: quant_f32_to_f16(data, w, n); return 0;
    case DT_BF16: quant_f32_to_bf16(data, w, n); return 0;
    case DT_Q8:
        for (int r = 0; r < rows; r++)
            quant_row_q8((int8_t *)data + r * nb * QBLOCK, scales + r * nb, w + (size_t)r * cols, cols);
        return 0;
    case DT_Q4:
        for (int r = 0; r < rows; r++)
            quant_row_q4((uint8_t *)data + r * nb * 16, scales + r * nb, w + (size_t)r * cols, cols);
        return 0;
    }
    return -1;
}
