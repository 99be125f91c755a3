/* lora8_avx2.c - kern_impl.h's lora8_a and lora8_b with AVX2 + FMA: 8-bit
 * weights widened to f32 in registers (vpmovsxbd, vcvtdq2ps) and times
 * their block scale, which is exact, then FMA'd with float activations.
 * lora8_b walks B's blocks of 32 outputs (kern.h: each r rows of 32
 * weights in a row) a block at a time and leaves rows not aligned to 8 to
 * the portable kernel, which computes the same bits. */
#include <immintrin.h>

#include "kern/kern_impl.h"

#define INLINE static inline __attribute__((always_inline))

/* An f16 scale as f32 with F16C (the portable f16_to_f32 branches). */
INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 8 int8 weights at q as f32 times s. */
INLINE __m256 w8(const int8_t *q, __m256 s)
{
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))), s);
}

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Row k of A against tokens i .. i + M - 1 of x. */
INLINE void a_row(float *t, const QMat *A, int k, const float *x, int i, const int M)
{
    int cols = A->cols, nb = (cols + 31) / 32, full = cols / 32;
    const int8_t *q = (const int8_t *)A->data + (size_t)k * nb * 32;
    const uint16_t *sc = A->scales + (size_t)k * nb;
    const float *xi = x + (size_t)i * cols;
    __m256 acc[4];
    for (int m = 0; m < M; m++) acc[m] = _mm256_setzero_ps();
    for (int b = 0; b < full; b++) {
        if (!(b & 1)) _mm_prefetch((const char *)q + 32 * b + 2048, _MM_HINT_T0); /* read once, from DRAM */
        if (!(b & 31)) _mm_prefetch((const char *)(sc + b + 64), _MM_HINT_T0);
        __m256 s = _mm256_set1_ps(h2f(sc[b]));
        __m256 w[4];
        for (int v = 0; v < 4; v++) w[v] = w8(q + 32 * b + 8 * v, s);
        for (int m = 0; m < M; m++) {
            const float *xm = xi + (size_t)m * cols + 32 * b;
            for (int v = 0; v < 4; v++) acc[m] = _mm256_fmadd_ps(w[v], _mm256_loadu_ps(xm + 8 * v), acc[m]);
        }
    }
    for (int m = 0; m < M; m++) {
        float s = hsum8(acc[m]);
        if (full < nb) { /* the last, partial block */
            const float *xm = xi + (size_t)m * cols;
            float p = 0;
            for (int c = 32 * full; c < cols; c++) p += (float)q[c] * xm[c];
            s += p * h2f(sc[full]);
        }
        t[(size_t)(i + m) * A->rows + k] = s;
    }
}

void lora8_a_avx2(float *t, const QMat *A, int k0, int k1, const float *x, int n)
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

/* Outputs j .. j + 8V - 1 (j a multiple of 8; of 32 when V is 4) for
 * tokens i .. i + M - 1. */
INLINE void b_cols(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int i, const int V, const int M)
{
    __m256 acc[2][4];
    for (int m = 0; m < M; m++)
        for (int v = 0; v < V; v++) acc[m][v] = _mm256_setzero_ps();
    for (int k = 0; k < r; k++) {
        __m256 w[4];
        for (int v = 0; v < V; v++) { /* 8 outputs inside one block of 32 */
            size_t row = lora8_row(r, j + 8 * v, k);
            w[v] = w8((const int8_t *)B->data + row * 32 + (j + 8 * v) % 32, _mm256_set1_ps(h2f(B->scales[row])));
        }
        for (int m = 0; m < M; m++) {
            __m256 tk = _mm256_set1_ps(t[(size_t)(i + m) * r + k]);
            for (int v = 0; v < V; v++) acc[m][v] = _mm256_fmadd_ps(tk, w[v], acc[m][v]);
        }
    }
    for (int m = 0; m < M; m++)
        for (int v = 0; v < V; v++) _mm256_storeu_ps(u + (size_t)(i + m) * ldu + (j - j0) + 8 * v, acc[m][v]);
}

enum { PF_BLOCKS = 8 }; /* blocks of 32 outputs prefetched ahead: B is read once per token, from DRAM */

INLINE void b_step(float *u, int ldu, const QMat *B, int r, int j, int j0, const float *t, int n, const int V)
{
    if (V == 4) { /* a whole block (j a multiple of 32): the weights and scales PF_BLOCKS ahead (harmless past the end) */
        const char *q = (const char *)B->data + (size_t)(j / 32 + PF_BLOCKS) * r * 32;
        for (int l = 0; l < r * 32; l += 64) _mm_prefetch(q + l, _MM_HINT_T0);
        _mm_prefetch((const char *)(B->scales + (size_t)(j / 32 + PF_BLOCKS) * r), _MM_HINT_T0);
    }
    int i = 0;
    for (; i + 2 <= n; i += 2) b_cols(u, ldu, B, r, j, j0, t, i, V, 2);
    if (i < n) b_cols(u, ldu, B, r, j, j0, t, i, V, 1);
}

void lora8_b_avx2(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n)
{
    int j = (j0 + 7) & ~7;
    if (j >= j1) {
        lora8_b_portable(u, ldu, B, r, j0, j1, t, n);
        return;
    }
    if (j > j0) lora8_b_portable(u, ldu, B, r, j0, j, t, n);
    for (; j % 32 && j + 8 <= j1; j += 8) b_step(u, ldu, B, r, j, j0, t, n, 1); /* to a block's start */
    for (; j + 32 <= j1; j += 32) b_step(u, ldu, B, r, j, j0, t, n, 4);
    for (; j + 8 <= j1; j += 8) b_step(u, ldu, B, r, j, j0, t, n, 1);
    if (j < j1) lora8_b_portable(u + (j - j0), ldu, B, r, j, j1, t, n);
}
