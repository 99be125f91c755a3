/* lora8_avx512.c - kern_impl.h's lora8_a and lora8_b with AVX-512: 8-bit
 * weights widened to f32 in registers (vpmovsxbd, vcvtdq2ps) and times
 * their block scale, which is exact, then FMA'd with float activations.
 * lora8_b walks B's transposed rows 64 outputs at a time, one cache line
 * of each rank's row per step, and leaves rows not aligned to 16 to the
 * portable kernel, which computes the same bits. */
#include <immintrin.h>

#include "kern/kern_impl.h"
#include "util/half.h"

#define INLINE static inline __attribute__((always_inline))

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
        __m512 s = _mm512_set1_ps(f16_to_f32(sc[b]));
        __m512 w0 = w16(q + 32 * b, s), w1 = w16(q + 32 * b + 16, s);
        for (int m = 0; m < M; m++) {
            const float *xm = xi + (size_t)m * cols + 32 * b;
            acc[m] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xm), acc[m]);
            acc[m] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xm + 16), acc[m]);
        }
    }
    if (rest) { /* the row's padding weights are 0; x stops at cols */
        __m512 s = _mm512_set1_ps(f16_to_f32(sc[full]));
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

/* Outputs j .. j + 16V - 1 (j a multiple of 16) for tokens i .. i + M - 1. */
INLINE void b_cols(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int i, const int V, const int M)
{
    __m512 acc[4][4];
    for (int m = 0; m < M; m++)
        for (int v = 0; v < V; v++) acc[m][v] = _mm512_setzero_ps();
    for (int k = 0; k < r; k++) {
        __m512 w[4];
        for (int v = 0; v < V; v++) { /* 16 outputs inside one block of 32 */
            size_t row = lora8_row(r, j + 16 * v, k);
            w[v] = w16((const int8_t *)B->data + row * 32 + (j + 16 * v) % 32, _mm512_set1_ps(f16_to_f32(B->scales[row])));
        }
        for (int m = 0; m < M; m++) {
            __m512 tk = _mm512_set1_ps(t[(size_t)(i + m) * r + k]);
            for (int v = 0; v < V; v++) acc[m][v] = _mm512_fmadd_ps(tk, w[v], acc[m][v]);
        }
    }
    for (int m = 0; m < M; m++)
        for (int v = 0; v < V; v++) _mm512_storeu_ps(u + (size_t)(i + m) * ldu + (j - j0) + 16 * v, acc[m][v]);
}

INLINE void b_step(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int n, const int V)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) b_cols(u, ldu, B, r, j, j0, t, i, V, 4);
    switch (n - i) {
    case 3: b_cols(u, ldu, B, r, j, j0, t, i, V, 3); break;
    case 2: b_cols(u, ldu, B, r, j, j0, t, i, V, 2); break;
    case 1: b_cols(u, ldu, B, r, j, j0, t, i, V, 1); break;
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
    for (; j + 64 <= j1; j += 64) b_step(u, ldu, B, r, j, j0, t, n, 4);
    for (; j + 16 <= j1; j += 16) b_step(u, ldu, B, r, j, j0, t, n, 1);
    if (j < j1) lora8_b_portable(u + (j - j0), ldu, B, r, j, j1, t, n);
}
