/* lora8_neon.c - kern_impl.h's lora8_a and lora8_b with NEON: 8-bit
 * weights widened to f32 in registers and times their block scale, which
 * is exact, then fused-multiply-added with float activations. lora8_b
 * walks B's blocks of 32 outputs (kern.h: each r rows of 32 weights in a
 * row) a block at a time and leaves rows not aligned to 4 to the portable
 * kernel, which computes the same bits. */
#include <arm_neon.h>

#include "kern/kern_impl.h"
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* An f16 scale as f32 in one instruction (the portable f16_to_f32 branches). */
INLINE float h2f(uint16_t h)
{
    __fp16 x;
    memcpy(&x, &h, 2);
    return (float)x;
}

/* 8 int8 weights at q as two f32 vectors times s. */
INLINE void w8(float32x4_t w[2], const int8_t *q, float s)
{
    int16x8_t h = vmovl_s8(vld1_s8(q));
    w[0] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), s);
    w[1] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(h))), s);
}

/* Row k of A against tokens i .. i + M - 1 of x. */
INLINE void a_row(float *t, const QMat *A, int k, const float *x, int i, const int M)
{
    int cols = A->cols, nb = (cols + 31) / 32, full = cols / 32;
    const int8_t *q = (const int8_t *)A->data + (size_t)k * nb * 32;
    const uint16_t *sc = A->scales + (size_t)k * nb;
    const float *xi = x + (size_t)i * cols;
    float32x4_t acc[4][2];
    for (int m = 0; m < M; m++) acc[m][0] = acc[m][1] = vdupq_n_f32(0);
    for (int b = 0; b < full; b++) {
        if (!(b & 1)) __builtin_prefetch(q + 32 * b + 2048); /* read once, from DRAM */
        if (!(b & 31)) __builtin_prefetch(sc + b + 64);
        float s = h2f(sc[b]);
        float32x4_t w[8];
        for (int v = 0; v < 4; v++) w8(w + 2 * v, q + 32 * b + 8 * v, s);
        for (int m = 0; m < M; m++) {
            const float *xm = xi + (size_t)m * cols + 32 * b;
            for (int v = 0; v < 8; v++) acc[m][v & 1] = vfmaq_f32(acc[m][v & 1], w[v], vld1q_f32(xm + 4 * v));
        }
    }
    for (int m = 0; m < M; m++) {
        float s = vaddvq_f32(vaddq_f32(acc[m][0], acc[m][1]));
        if (full < nb) { /* the last, partial block */
            const float *xm = xi + (size_t)m * cols;
            float p = 0;
            for (int c = 32 * full; c < cols; c++) p += (float)q[c] * xm[c];
            s += p * h2f(sc[full]);
        }
        t[(size_t)(i + m) * A->rows + k] = s;
    }
}

void lora8_a_neon(float *t, const QMat *A, int k0, int k1, const float *x, int n)
{
    for (int k = k0; k < k1; k++) {
        int i = 0;
        for (; i + 4 <= n; i += 4) a_row(t, A, k, x, i, 4);
        switch (n - i) {
        case 3: a_row(t, A, k, x, i, 3); break;
        case 2: a_row(t, A, k, x, i, 2); break;
        case 1: a_row(t, A, k, x, i, 1); break;
        default: break;
        }
    }
}

/* Outputs j .. j + 4V - 1 for tokens i .. i + M - 1; V is 8 (j a multiple
 * of 32: one block) or 1 (j a multiple of 4). */
INLINE void b_cols(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int i, const int V, const int M)
{
    float32x4_t acc[2][8];
    for (int m = 0; m < M; m++)
        for (int v = 0; v < V; v++) acc[m][v] = vdupq_n_f32(0);
    for (int k = 0; k < r; k++) {
        float32x4_t w[8];
        if (V == 8) {
            for (int v = 0; v < 4; v++) {
                size_t row = lora8_row(r, j + 8 * v, k);
                w8(w + 2 * v, (const int8_t *)B->data + row * 32 + (j + 8 * v) % 32, h2f(B->scales[row]));
            }
        } else {
            size_t row = lora8_row(r, j, k);
            const int8_t *q = (const int8_t *)B->data + row * 32 + j % 32;
            int8_t b4[8] = {q[0], q[1], q[2], q[3], 0, 0, 0, 0};
            float32x4_t w2[2];
            w8(w2, b4, h2f(B->scales[row]));
            w[0] = w2[0];
        }
        for (int m = 0; m < M; m++) {
            float tk = t[(size_t)(i + m) * r + k];
            for (int v = 0; v < V; v++) acc[m][v] = vfmaq_n_f32(acc[m][v], w[v], tk);
        }
    }
    for (int m = 0; m < M; m++)
        for (int v = 0; v < V; v++) vst1q_f32(u + (size_t)(i + m) * ldu + (j - j0) + 4 * v, acc[m][v]);
}

enum { PF_BLOCKS = 8 }; /* blocks of 32 outputs prefetched ahead: B is read once per token, from DRAM */

INLINE void b_step(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int n, const int V)
{
    if (V == 8) { /* a whole block (j a multiple of 32): the weights and scales PF_BLOCKS ahead (harmless past the end) */
        const char *q = (const char *)B->data + (size_t)(j / 32 + PF_BLOCKS) * r * 32;
        for (int l = 0; l < r * 32; l += 64) __builtin_prefetch(q + l);
        __builtin_prefetch(B->scales + (size_t)(j / 32 + PF_BLOCKS) * r);
    }
    int i = 0;
    for (; i + 2 <= n; i += 2) b_cols(u, ldu, B, r, j, j0, t, i, V, 2);
    if (i < n) b_cols(u, ldu, B, r, j, j0, t, i, V, 1);
}

void lora8_b_neon(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n)
{
    int j = (j0 + 3) & ~3;
    if (j >= j1) {
        lora8_b_portable(u, ldu, B, r, j0, j1, t, n);
        return;
    }
    if (j > j0) lora8_b_portable(u, ldu, B, r, j0, j, t, n);
    for (; j % 32 && j + 4 <= j1; j += 4) b_step(u, ldu, B, r, j, j0, t, n, 1); /* to a block's start */
    for (; j + 32 <= j1; j += 32) b_step(u, ldu, B, r, j, j0, t, n, 8);
    for (; j + 4 <= j1; j += 4) b_step(u, ldu, B, r, j, j0, t, n, 1);
    if (j < j1) lora8_b_portable(u + (j - j0), ldu, B, r, j, j1, t, n);
}
