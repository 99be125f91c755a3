/* kern_lora_avx512.c - AVX-512 twin of LoRA's B product for f16 B
 * (kern_impl.h: lora_b_f16_avx512; the portable path is the backend's
 * mm[DT_F16] on B's rows). B has few columns (the rank, 8 .. 64 typically),
 * so a plain row kernel spends more time summing each row's vector across
 * lanes than loading it: here 16 rows are multiplied at once and their 16
 * vectors are summed across lanes together by one transpose-and-add tree,
 * which writes the 16 results as one vector. Only called after cpu_detect
 * saw AVX-512. */
#include <immintrin.h>

#include "kern/kern_impl.h"

#define INLINE static inline __attribute__((always_inline))

#ifndef LORA_PREFETCH
#define LORA_PREFETCH 4096 /* bytes ahead in B: decode streams it from DRAM */
#endif

/* Lane i of the result = the sum of the 16 lanes of v[i]. */
INLINE __m512 sum16(const __m512 v[16])
{
    __m512 x[8], y[4];
    /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] for a = v[2i], b = v[2i+1] */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        x[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    /* per 128-bit lane: the lane's sums of v[4i] .. v[4i+3] */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512d p = _mm512_castps_pd(x[2 * i]), q = _mm512_castps_pd(x[2 * i + 1]);
        y[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p, q)), _mm512_castpd_ps(_mm512_unpackhi_pd(p, q)));
    }
    /* add the four 128-bit lanes, keeping v[4i] .. v[4i+3] in lane i */
    __m512 z0 = _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], 0x88), _mm512_shuffle_f32x4(y[0], y[1], 0xDD));
    __m512 z1 = _mm512_add_ps(_mm512_shuffle_f32x4(y[2], y[3], 0x88), _mm512_shuffle_f32x4(y[2], y[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(z0, z1, 0x88), _mm512_shuffle_f32x4(z0, z1, 0xDD));
}

INLINE __mmask16 mask_of(int left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

void lora_b_f16_avx512(float *u, const uint16_t *B, int r, const float *t, int j0, int j1)
{
    int j = j0;
    for (; j + 16 <= j1; j += 16) {
        const char *ahead = (const char *)(B + (size_t)j * r) + LORA_PREFETCH;
        for (int b = 0; b < 32 * r; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0); /* the 16 rows' bytes */
        __m512 v[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) v[i] = _mm512_setzero_ps();
        for (int c = 0; c < r; c += 16) {
            __mmask16 m = mask_of(r - c);
            __m512 tv = _mm512_maskz_loadu_ps(m, t + c);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) {
                __m256i h = _mm256_maskz_loadu_epi16(m, B + (size_t)(j + i) * r + c);
                v[i] = _mm512_fmadd_ps(_mm512_cvtph_ps(h), tv, v[i]);
            }
        }
        _mm512_storeu_ps(u + j, sum16(v));
    }
    for (; j < j1; j++) {
        __m512 s = _mm512_setzero_ps();
        for (int c = 0; c < r; c += 16) {
            __mmask16 m = mask_of(r - c);
            __m256i h = _mm256_maskz_loadu_epi16(m, B + (size_t)j * r + c);
            s = _mm512_fmadd_ps(_mm512_cvtph_ps(h), _mm512_maskz_loadu_ps(m, t + c), s);
        }
        u[j] = _mm512_reduce_add_ps(s);
    }
}
