/* avx2.h - inline helpers the AVX2 kernel files share (kern_avx2.c,
 * attn_avx2.c): f16 / bf16 / f32 rows as f32 vectors, a horizontal sum. Included only by
 * files built with the AVX2 flags. */
#ifndef DUET_KERN_AVX2_H
#define DUET_KERN_AVX2_H

#include <immintrin.h>
#include <stddef.h>

#include "kern/kern_impl.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m256 load_w8(const void *base, size_t i, DType t)
{
    if (t == DT_F32) return _mm256_loadu_ps((const float *)base + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)base + i));
    if (t == DT_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif
