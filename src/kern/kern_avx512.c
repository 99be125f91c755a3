/* kern_avx512.c - AVX-512 backend (F/BW/VL/DQ + VNNI + BF16). Float weights:
 * converted to f32 in registers (f16 by vcvtph2ps, bf16 by a 16-bit shift)
 * and FMA'd with f32 activations, in tiles of rows x tokens so one weight
 * load serves several tokens. Q8/Q4 weights: vpdpbusd (u8 x s8) against int8
 * activations, one zmm = two 32-blocks; Q8 weights get their sign bit
 * flipped (w + 128 as u8) and Q4 nibbles are already u8, so the block dot is
 * sum(w' a) - K sum(a) with K = 128 or 8, the K term applied in float via the
 * activations' per-block d * sum(q). Only called after cpu_detect saw AVX-512. */
#include <immintrin.h>
#include <string.h>

#include "kern/kern_impl.h"
#include "util/half.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- float weights ---- */

INLINE __m512 load_w16(const void *base, size_t i, DType t)
{
    if (t == DT_F32) return _mm512_loadu_ps((const float *)base + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i));
    if (t == DT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

INLINE __m512 load_w16_mask(const void *base, size_t i, DType t, __mmask16 m)
{
    if (t == DT_F32) return _mm512_maskz_loadu_ps(m, (const float *)base + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)base + i);
    if (t == DT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Y for rows r..r+NR-1 and tokens t..t+NT-1. */
INLINE void ftile(const MMArgs *a, int r, int t, const int NR, const int NT, const DType T)
{
    const QMat *W = a->W;
    int cols = W->cols;
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) acc[i][j] = _mm512_setzero_ps();
    const float *x0 = a->X + (size_t)t * cols;
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
        __m512 w[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) w[i] = load_w16(W->data, (size_t)(r + i) * cols + c, T);
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            __m512 x = _mm512_loadu_ps(x0 + (size_t)j * cols + c);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) acc[i][j] = _mm512_fmadd_ps(w[i], x, acc[i][j]);
        }
    }
    if (c < cols) {
        __mmask16 m = (__mmask16)((1u << (cols - c)) - 1);
        __m512 w[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) w[i] = load_w16_mask(W->data, (size_t)(r + i) * cols + c, T, m);
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            __m512 x = _mm512_maskz_loadu_ps(m, x0 + (size_t)j * cols + c);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) acc[i][j] = _mm512_fmadd_ps(w[i], x, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++)
            a->Y[(size_t)(t + j) * W->rows + r + i] = _mm512_reduce_add_ps(acc[i][j]);
}

enum { TOK_BLOCK = 32 }; /* tokens whose activations stay in L2 while a row tile is reused */

INLINE void mm_float(const MMArgs *a, int r0, int r1, const DType T)
{
    for (int tb = 0; tb < a->n; tb += TOK_BLOCK) {
        int te = tb + TOK_BLOCK < a->n ? tb + TOK_BLOCK : a->n;
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int t = tb;
            for (; t + 4 <= te; t += 4) ftile(a, r, t, 4, 4, T);
            for (; t < te; t++) ftile(a, r, t, 4, 1, T);
        }
        for (; r < r1; r++) {
            int t = tb;
            for (; t + 4 <= te; t += 4) ftile(a, r, t, 1, 4, T);
            for (; t < te; t++) ftile(a, r, t, 1, 1, T);
        }
    }
}

static void mm_f32(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_F32); }
static void mm_f16(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_F16); }
static void mm_bf16(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_BF16); }

/* ---- Q8 / Q4 weights ---- */

/* Pair p (blocks 2p, 2p+1 of a group of 8) of one weight row as 64 u8. Q4:
 * [b0 lo nibbles, b1 lo, b0 hi, b1 hi], matching act_layout's permutation. */
INLINE __m512i load_wpair(const void *row, int pair, const int Q4)
{
    if (Q4) {
        __m256i v = _mm256_loadu_si256((const __m256i *)((const uint8_t *)row + (size_t)pair * 32));
        __m512i z = _mm512_broadcast_i64x4(v);
        z = _mm512_mask_srli_epi16(z, 0xFFFF0000u, z, 4);
        return _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
    }
    __m512i z = _mm512_loadu_si512((const int8_t *)row + (size_t)pair * 64);
    return _mm512_xor_si512(z, _mm512_set1_epi8((char)0x80));
}

/* Lane -> block-in-group index for pair p: which of the two blocks each
 * int32 lane of the vpdpbusd result belongs to. */
INLINE __m512i lane_blocks(int p, const int Q4)
{
    __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i second = Q4 ? _mm512_and_si512(_mm512_srli_epi32(lane, 2), _mm512_set1_epi32(1))
                        : _mm512_srli_epi32(lane, 3);
    return _mm512_add_epi32(second, _mm512_set1_epi32(2 * p));
}

INLINE void qtile(const MMArgs *a, int r, int t, const int NR, const int NT, const int Q4)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    int nb = A->nb, ng = nb / 8;
    size_t wrow = (size_t)nb * (Q4 ? 16 : 32);
    const uint8_t *wd = (const uint8_t *)W->data;
    __m512 acc[4][8];
    __m256 off[4][8];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            acc[i][j] = _mm512_setzero_ps();
            off[i][j] = _mm256_setzero_ps();
        }
    __m512i idx[4];
    for (int p = 0; p < 4; p++) idx[p] = lane_blocks(p, Q4);
    for (int g = 0; g < ng; g++) {
        __m512 s8[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
            s8[i] = _mm512_castps256_ps512(_mm256_cvtph_ps(
                _mm_loadu_si128((const __m128i *)(W->scales + (size_t)(r + i) * nb + 8 * g))));
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            __m512i wv[4];
            __m512 ws[4];
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) {
                wv[i] = load_wpair(wd + (size_t)(r + i) * wrow + (size_t)g * 4 * (Q4 ? 32 : 64), p, Q4);
                ws[i] = _mm512_permutexvar_ps(idx[p], s8[i]);
            }
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                const int8_t *q = A->q + (size_t)(t + j) * nb * 32 + (size_t)(8 * g + 2 * p) * 32;
                __m512i av = _mm512_loadu_si512(q);
                __m512 ap = _mm512_loadu_ps(A->pat + ((size_t)(t + j) * ng + g) * 64 + p * 16);
#pragma GCC unroll 4
                for (int i = 0; i < NR; i++) {
                    __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[i], av);
                    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), ws[i]);
                    acc[i][j] = _mm512_fmadd_ps(f, ap, acc[i][j]);
                }
            }
        }
    }
    /* offset term: K * sum_b dw_b * d_b * sum(a_b) */
    for (int g = 0; g < ng; g++) {
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            __m256 s = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(W->scales + (size_t)(r + i) * nb + 8 * g)));
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++)
                off[i][j] = _mm256_fmadd_ps(s, _mm256_loadu_ps(A->m + (size_t)(t + j) * nb + 8 * g), off[i][j]);
        }
    }
    const float K = Q4 ? 8.0f : 128.0f;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            __m256 o = off[i][j];
            __m128 o4 = _mm_add_ps(_mm256_castps256_ps128(o), _mm256_extractf128_ps(o, 1));
            o4 = _mm_add_ps(o4, _mm_movehl_ps(o4, o4));
            o4 = _mm_add_ss(o4, _mm_movehdup_ps(o4));
            float y = _mm512_reduce_add_ps(acc[i][j]) - K * _mm_cvtss_f32(o4);
            /* blocks past the last full group: natural order, plain C */
            const int8_t *x = A->q + (size_t)(t + j) * nb * 32;
            for (int b = 8 * ng; b < nb; b++) {
                int s = 0;
                if (Q4) {
                    const uint8_t *wb = wd + (size_t)(r + i) * wrow + (size_t)b * 16;
                    for (int k = 0; k < 16; k++)
                        s += ((wb[k] & 15) - 8) * x[b * 32 + k] + ((wb[k] >> 4) - 8) * x[b * 32 + 16 + k];
                } else {
                    const int8_t *wb = (const int8_t *)wd + (size_t)(r + i) * wrow + (size_t)b * 32;
                    for (int k = 0; k < 32; k++) s += wb[k] * x[b * 32 + k];
                }
                y += f16_to_f32(W->scales[(size_t)(r + i) * nb + b]) * A->d[(size_t)(t + j) * nb + b] * (float)s;
            }
            a->Y[(size_t)(t + j) * W->rows + r + i] = y;
        }
}

enum { QTOK_BLOCK = 64 };

INLINE void mm_quant(const MMArgs *a, int r0, int r1, const int Q4)
{
    for (int tb = 0; tb < a->n; tb += QTOK_BLOCK) {
        int te = tb + QTOK_BLOCK < a->n ? tb + QTOK_BLOCK : a->n;
        if (te - tb >= 8) {
            int r = r0;
            for (; r + 2 <= r1; r += 2) {
                int t = tb;
                for (; t + 8 <= te; t += 8) qtile(a, r, t, 2, 8, Q4);
                for (; t < te; t++) qtile(a, r, t, 2, 1, Q4);
            }
            for (; r < r1; r++) {
                int t = tb;
                for (; t + 8 <= te; t += 8) qtile(a, r, t, 1, 8, Q4);
                for (; t < te; t++) qtile(a, r, t, 1, 1, Q4);
            }
        } else {
            int r = r0;
            for (; r + 4 <= r1; r += 4)
                for (int t = tb; t < te; t++) qtile(a, r, t, 4, 1, Q4);
            for (; r < r1; r++)
                for (int t = tb; t < te; t++) qtile(a, r, t, 1, 1, Q4);
        }
    }
}

static void mm_q8(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, 0); }
static void mm_q4(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, 1); }

/* Permutes token t's full groups for Q4 (see load_wpair) and writes the
 * per-lane activation scale patterns for both quantized types. */
static void act_layout(ActQ *A, int t, DType wt)
{
    int nb = A->nb, ng = nb / 8, q4 = wt == DT_Q4;
    int8_t *q = A->q + (size_t)t * nb * 32;
    const float *d = A->d + (size_t)t * nb;
    for (int g = 0; g < ng; g++)
        for (int p = 0; p < 4; p++) {
            int b0 = 8 * g + 2 * p;
            float *pat = A->pat + ((size_t)t * ng + g) * 64 + p * 16;
            for (int l = 0; l < 16; l++) pat[l] = d[b0 + (q4 ? (l >> 2) & 1 : l >> 3)];
            if (q4) {
                int8_t tmp[64], *src = q + (size_t)b0 * 32;
                memcpy(tmp, src, 16);            /* b0 0..15 */
                memcpy(tmp + 16, src + 32, 16);  /* b1 0..15 */
                memcpy(tmp + 32, src + 16, 16);  /* b0 16..31 */
                memcpy(tmp + 48, src + 48, 16);  /* b1 16..31 */
                memcpy(src, tmp, 64);
            }
        }
}

static float read_sum(const float *p, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(p + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(p + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(p + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(p + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    for (; i < n; i++) s += p[i];
    return s;
}

const KernOps kern_ops_avx512 = {
    .name = "avx512",
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_q4},
    .act_layout = act_layout,
    .read_sum = read_sum,
};
