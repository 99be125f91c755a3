/* lora8_avx512.c - kern_impl.h's lora8_a and lora8_b with AVX-512: 8-bit
 * weights widened to f32 in registers (vpmovsxbd, vcvtdq2ps) and times
 * their block scale, which is exact, then FMA'd with float activations.
 * lora8_b walks B's blocks of 32 outputs (kern.h: each r rows of 32
 * weights in a row) two blocks at a time, and leaves rows not aligned to
 * 16 to the portable kernel, which computes the same bits. */
#include <immintrin.h>

#include "kern/kern_impl.h"

#define INLINE static inline __attribute__((always_inline))

/* An f16 scale as f32 with F16C (the portable f16_to_f32 branches). */
INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 int8 weights at q as f32 times s. */
INLINE __m512 w16(const int8_t *q, __m512 s)
{
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q))), s);
}

/* Row k of A against tokens i .. i + M - 1 of x. */
INLINE void a_row(float *t, const QMat *A, int k, const float *x, int i, const int M)
{
    int cols = A->cols, nb = (cols + 31) / 32, full = cols / 32, rest = cols % 32;
    const int8_t *q = (const int8_t *)A->data + (size_t)k * nb * 32;
    const uint16_t *sc = A->scales + (size_t)k * nb;
    const float *xi = x + (size_t)i * cols;
    __m512 acc[4];
    for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
    for (int b = 0; b < full; b++) {
        if (!(b & 1)) _mm_prefetch((const char *)q + 32 * b + 2048, _MM_HINT_T0); /* read once, from DRAM */
        if (!(b & 31)) _mm_prefetch((const char *)(sc + b + 64), _MM_HINT_T0);
        __m512 s = _mm512_set1_ps(h2f(sc[b]));
        __m512 w0 = w16(q + 32 * b, s), w1 = w16(q + 32 * b + 16, s);
        for (int m = 0; m < M; m++) {
            const float *xm = xi + (size_t)m * cols + 32 * b;
            acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xm), acc[m]);
            acc[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xm + 16), acc[m]);
        }
    }
    if (rest) { /* the row's padding weights are 0; x stops at cols */
        __m512 s = _mm512_set1_ps(h2f(sc[full]));
        __m512 w0 = w16(q + 32 * full, s), w1 = w16(q + 32 * full + 16, s);
        __mmask16 m0 = rest >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rest) - 1);
        __mmask16 m1 = rest > 16 ? (__mmask16)((1u << (rest - 16)) - 1) : 0;
        for (int m = 0; m < M; m++) {
            const float *xm = xi + (size_t)m * cols + 32 * full;
            acc[m] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m0, xm), acc[m]);
            acc[m] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, xm + 16), acc[m]);
        }
    }
    for (int m = 0; m < M; m++) t[(size_t)(i + m) * A->rows + k] = _mm512_reduce_add_ps(acc[m]);
}

void lora8_a_avx512(float *t, const QMat *A, int k0, int k1, const float *x, int n)
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

/* Outputs j .. j + 15 (j a multiple of 16) for tokens i .. i + M - 1. */
INLINE void b_vec(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int i, const int M)
{
    __m512 acc[4];
    for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
    for (int k = 0; k < r; k++) {
        size_t row = lora8_row(r, j, k);
        __m512 w = w16((const int8_t *)B->data + row * 32 + j % 32, _mm512_set1_ps(h2f(B->scales[row])));
        for (int m = 0; m < M; m++) acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(t[(size_t)(i + m) * r + k]), w, acc[m]);
    }
    for (int m = 0; m < M; m++) _mm512_storeu_ps(u + (size_t)(i + m) * ldu + (j - j0), acc[m]);
}

/* Outputs j .. j + 63 (j a multiple of 32: two whole blocks, each r rows
 * of 32 weights in a row) for tokens i .. i + M - 1. */
INLINE void b_pair(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int i, const int M)
{
    const int8_t *q = (const int8_t *)B->data + (size_t)(j / 32) * r * 32;
    const uint16_t *sc = B->scales + (size_t)(j / 32) * r;
    __m512 acc[4][4];
    for (int m = 0; m < M; m++)
        for (int v = 0; v < 4; v++) acc[m][v] = _mm512_setzero_ps();
    for (int k = 0; k < r; k++) {
        __m512 s0 = _mm512_set1_ps(h2f(sc[k])), s1 = _mm512_set1_ps(h2f(sc[r + k]));
        const int8_t *q0 = q + (size_t)k * 32, *q1 = q + (size_t)(r + k) * 32;
        __m512 w0 = w16(q0, s0), w1 = w16(q0 + 16, s0), w2 = w16(q1, s1), w3 = w16(q1 + 16, s1);
        for (int m = 0; m < M; m++) {
            __m512 tk = _mm512_set1_ps(t[(size_t)(i + m) * r + k]);
            acc[m][0] = _mm512_fmadd_ps(tk, w0, acc[m][0]);
            acc[m][1] = _mm512_fmadd_ps(tk, w1, acc[m][1]);
            acc[m][2] = _mm512_fmadd_ps(tk, w2, acc[m][2]);
            acc[m][3] = _mm512_fmadd_ps(tk, w3, acc[m][3]);
        }
    }
    for (int m = 0; m < M; m++)
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(u + (size_t)(i + m) * ldu + (j - j0) + 16 * v, acc[m][v]);
}

enum { PF_BLOCKS = 8 }; /* blocks of 32 outputs prefetched ahead: B is read once per token, from DRAM */

INLINE void b_step(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int n, const int PAIR)
{
    if (PAIR) { /* the weights and scales PF_BLOCKS blocks ahead (harmless past the end) */
        const char *q = (const char *)B->data + (size_t)(j / 32 + PF_BLOCKS) * r * 32;
        for (int l = 0; l < 2 * r * 32; l += 64) _mm_prefetch(q + l, _MM_HINT_T0);
        _mm_prefetch((const char *)(B->scales + (size_t)(j / 32 + PF_BLOCKS) * r), _MM_HINT_T0);
    }
    int i = 0;
    for (; i + 4 <= n; i += 4) PAIR ? b_pair(u, ldu, B, r, j, j0, t, i, 4) : b_vec(u, ldu, B, r, j, j0, t, i, 4);
    switch (n - i) {
    case 3: PAIR ? b_pair(u, ldu, B, r, j, j0, t, i, 3) : b_vec(u, ldu, B, r, j, j0, t, i, 3); break;
    case 2: PAIR ? b_pair(u, ldu, B, r, j, j0, t, i, 2) : b_vec(u, ldu, B, r, j, j0, t, i, 2); break;
    case 1: PAIR ? b_pair(u, ldu, B, r, j, j0, t, i, 1) : b_vec(u, ldu, B, r, j, j0, t, i, 1); break;
    default: break;
    }
}

void lora8_b_avx512(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n)
{
    int j = (j0 + 15) & ~15;
    if (j >= j1) {
        lora8_b_portable(u, ldu, B, r, j0, j1, t, n);
        return;
    }
    if (j > j0) lora8_b_portable(u, ldu, B, r, j0, j, t, n);
    if (j % 32 && j + 16 <= j1) { /* to a block's start */
        b_step(u, ldu, B, r, j, j0, t, n, 0);
        j += 16;
    }
    for (; j + 64 <= j1; j += 64) b_step(u, ldu, B, r, j, j0, t, n, 1);
    for (; j + 16 <= j1; j += 16) b_step(u, ldu, B, r, j, j0, t, n, 0);
    if (j < j1) lora8_b_portable(u + (j - j0), ldu, B, r, j, j1, t, n);
}
