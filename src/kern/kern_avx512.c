/* kern_avx512.c - AVX-512 backend (F/BW/VL/DQ + VNNI + BF16). Float weights:
 * converted to f32 in registers (f16 by vcvtph2ps, bf16 by a 16-bit shift)
 * and FMA'd with f32 activations, in tiles of rows x tokens so one weight
 * load serves several tokens. Block-type weights: vpdpbusd (u8 x s8) against
 * int8 activations (see load_wunit for the lane layout); Q8 weights get their
 * sign bit flipped (w + 128 as u8), Q4/Q6/Q5 levels are already u8 and the
 * grid types are looked up as grid + 128, so the block dot is
 * sum(w' a) - K sum(a) with K = qoff(type), the K term folded into the
 * dot's starting value. Decode (fewer than 8 tokens) streams the weights
 * from DRAM with software prefetch into L2. Attention and SiLU are
 * attn_avx512.c's, 8-bit LoRA lora8_avx512.c's. Only called after
 * cpu_detect saw AVX-512. */
#include <math.h>
#include <string.h>

#include "kern/avx512.h"
#include "kern/qblock.h"

#ifndef PREFETCH
#define PREFETCH 4096 /* bytes ahead of read_sum's loads */
#endif

/* ---- float weights ---- */

#ifndef PF_FLOAT
#define PF_FLOAT 4096
#endif

/* Y for rows r..r+NR-1 and tokens t..t+NT-1. PF: decode, prefetch PF_FLOAT
 * bytes ahead in each row, once per line, following each row into the next
 * tile (see PF_Q4). */
INLINE void ftile(const MMArgs *a, int r, int t, const int NR, const int NT, const DType T, const int PF)
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
        for (int i = 0; i < NR; i++) {
            size_t at = (size_t)(r + i) * cols + c;
            if (PF && (T == DT_F32 || (c & 31) == 0)) {
                const size_t es = T == DT_F32 ? 4 : 2, rowb = (size_t)cols * es, ahead = c * es + PF_FLOAT;
                _mm_prefetch((const char *)W->data + at * es + PF_FLOAT + (ahead >= rowb ? (NR - 1) * rowb : 0), _MM_HINT_T1);
            }
            w[i] = load_w16(W->data, at, T);
        }
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

/* Decode (n < 8): up to 4 tokens in one tile, each weight row read once; 4
 * rows a tile (measured ahead of 2 for float weights, unlike Q8/Q4). */
INLINE void mm_fdecode(const MMArgs *a, int r0, int r1, const DType T)
{
    for (int tb = 0; tb < a->n; tb += 4) {
        int nt = a->n - tb < 4 ? a->n - tb : 4, r = r0;
        for (; r + 4 <= r1; r += 4) {
            if (nt == 1) ftile(a, r, tb, 4, 1, T, 1);
            else if (nt == 2) ftile(a, r, tb, 4, 2, T, 1);
            else if (nt == 3) ftile(a, r, tb, 4, 3, T, 1);
            else ftile(a, r, tb, 4, 4, T, 1);
        }
        for (; r < r1; r++) {
            if (nt == 1) ftile(a, r, tb, 1, 1, T, 1);
            else if (nt == 2) ftile(a, r, tb, 1, 2, T, 1);
            else if (nt == 3) ftile(a, r, tb, 1, 3, T, 1);
            else ftile(a, r, tb, 1, 4, T, 1);
        }
    }
}

INLINE void mm_float(const MMArgs *a, int r0, int r1, const DType T)
{
    if (a->n < 8) {
        mm_fdecode(a, r0, r1, T);
        return;
    }
    for (int tb = 0; tb < a->n; tb += TOK_BLOCK) {
        int te = tb + TOK_BLOCK < a->n ? tb + TOK_BLOCK : a->n;
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int t = tb;
            for (; t + 4 <= te; t += 4) ftile(a, r, t, 4, 4, T, 0);
            for (; t < te; t++) ftile(a, r, t, 4, 1, T, 0);
        }
        for (; r < r1; r++) {
            int t = tb;
            for (; t + 4 <= te; t += 4) ftile(a, r, t, 1, 4, T, 0);
            for (; t < te; t++) ftile(a, r, t, 1, 1, T, 0);
        }
    }
}

static void mm_f32(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_F32); }
static void mm_f16(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_F16); }
static void mm_bf16(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_BF16); }

/* ---- block-type weights (Q8, Q4, Q6, Q5, IQ4, IQ3) ---- */

/* The kernels walk a row in units of 4 blocks, each giving two zmm of u8
 * weights: w0 lane k (16 bytes) = block k elements
 * 0..15, w1 lane k = elements 16..31. Q4: 64 bytes of nibbles -> low / high
 * nibbles. Q8: 128 bytes -> two qword permutes, then the sign flip. Q6 / Q5
 * add plane 1's top bits to the nibbles (level 0..63 / 0..31); IQ4 / IQ3
 * look their levels up in the grid plus 128 (one vpshufb). So every type is
 * u8 = value + K with K = qoff(F).
 * act_quant arranges the activations to match, so int32 lane l of
 * dpbusd(dpbusd(off, w0, a0), w1, a1) belongs to block l / 4 of the unit: one
 * float conversion and scaling serves 4 blocks. `off` (per token and unit,
 * from act_quant) starts each lane at -K times the sum of the 8 activations
 * that lane multiplies, so the dot comes out signed and exact. */
INLINE int qoff(DType F) { return F == DT_Q4 ? 8 : F == DT_Q6 ? 32 : F == DT_Q5 ? 16 : 128; }

/* Four blocks' 2-bit fields (32 bytes at p, qblock.h's layout: byte i, bits
 * 2k..2k+1 = element 8k+i) as the w0 / w1 lanes, values 0..3. */
INLINE void load_2bit(__m512i *h0, __m512i *h1, const uint8_t *p)
{
    __m512i x = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0),
                                         _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)));
    __m512i three = _mm512_set1_epi8(3);
    *h0 = _mm512_and_si512(_mm512_srlv_epi64(x, _mm512_set_epi64(2, 0, 2, 0, 2, 0, 2, 0)), three);
    *h1 = _mm512_and_si512(_mm512_srlv_epi64(x, _mm512_set_epi64(6, 4, 6, 4, 6, 4, 6, 4)), three);
}

/* Four blocks' 1-bit fields (4 little-endian u32 at p, bit e = element e)
 * as byte masks of the w0 / w1 lanes. */
INLINE void load_1bit(__mmask64 *m0, __mmask64 *m1, const uint8_t *p)
{
    __m128i g = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p),
                                 _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
    *m0 = (__mmask64)_mm_cvtsi128_si64(g);
    *m1 = (__mmask64)_mm_extract_epi64(g, 1);
}

/* A 16-entry table in every 128-bit lane: grid + 128 as u8 (vpshufb). */
INLINE __m512i grid_table(DType F)
{
    int8_t t[16] = {0};
    for (int i = 0; i < (F == DT_IQ4 ? 16 : 8); i++) t[i] = (int8_t)((F == DT_IQ4 ? kern_grid_iq4[i] : kern_grid_iq3[i]) + 128);
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)t));
}

/* Unit u's weights: p0 / p1 = the row's planes (p1 unused for Q8/Q4/IQ4). */
INLINE void load_wunit(__m512i *w0, __m512i *w1, const uint8_t *p0, const uint8_t *p1, const DType F, __m512i tbl)
{
    if (F == DT_Q8) {
        __m512i a = _mm512_loadu_si512(p0);
        __m512i b = _mm512_loadu_si512(p0 + 64);
        __m512i flip = _mm512_set1_epi8((char)0x80);
        *w0 = _mm512_xor_si512(_mm512_permutex2var_epi64(a, _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0), b), flip);
        *w1 = _mm512_xor_si512(_mm512_permutex2var_epi64(a, _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2), b), flip);
        return;
    }
    __mmask64 m0, m1;
    if (F == DT_IQ3) {
        load_2bit(w0, w1, p0);
        load_1bit(&m0, &m1, p1);
        __m512i four = _mm512_set1_epi8(4);
        *w0 = _mm512_shuffle_epi8(tbl, _mm512_mask_add_epi8(*w0, m0, *w0, four));
        *w1 = _mm512_shuffle_epi8(tbl, _mm512_mask_add_epi8(*w1, m1, *w1, four));
        return;
    }
    __m512i z = _mm512_loadu_si512(p0);
    __m512i m = _mm512_set1_epi8(0x0F);
    *w0 = _mm512_and_si512(z, m);
    *w1 = _mm512_and_si512(_mm512_srli_epi16(z, 4), m);
    if (F == DT_IQ4) {
        *w0 = _mm512_shuffle_epi8(tbl, *w0);
        *w1 = _mm512_shuffle_epi8(tbl, *w1);
    } else if (F == DT_Q6) {
        __m512i h0, h1;
        load_2bit(&h0, &h1, p1);
        *w0 = _mm512_or_si512(*w0, _mm512_slli_epi16(h0, 4));
        *w1 = _mm512_or_si512(*w1, _mm512_slli_epi16(h1, 4));
    } else if (F == DT_Q5) {
        __m512i sixteen = _mm512_set1_epi8(16);
        load_1bit(&m0, &m1, p1);
        *w0 = _mm512_mask_add_epi8(*w0, m0, *w0, sixteen);
        *w1 = _mm512_mask_add_epi8(*w1, m1, *w1, sixteen);
    }
}

INLINE float f16_scalar(const uint16_t *s, size_t i) { return _cvtsh_ss(s[i]); }

/* Decode streams each weight row once from DRAM: software prefetch runs
 * PF_Q4 / PF_Q8 bytes ahead in every row of a tile (plane 1 as far ahead in
 * proportion), into L2 (T1 measured ahead of T0 and NTA here); past a
 * row's end it continues in the same row of the next tile, which is where
 * this thread reads next. */
#ifndef PF_Q4
#define PF_Q4 4096
#endif
#ifndef PF_Q8
#define PF_Q8 8192
#endif

/* Y for rows r..r+NR-1, tokens t..t+NT-1. Units go in groups of 4, whose 16
 * scales per row are converted at once; the last nb % 4 blocks (natural
 * order) in plain C. PF: prefetch (decode). NT = 1 keeps two accumulators
 * per row, so the float adds of consecutive units do not wait on each other. */
/* The 16 f32 block scales of two super-blocks (kern.h) at sp, the second
 * only when `two` (else its lanes are 0): lanes 0-3 / 4-7 take bits 0-23 /
 * 24-47 of the first one's 48-bit field, 8-15 the second's, shifted per lane
 * and sign-extended from 6 bits; D * k is exact in f32 and rounds to f16 as
 * qb_super_scale does. */
INLINE __m512 super16(const uint16_t *sp, int two)
{
    __m128i q = two ? _mm_loadu_si128((const __m128i *)sp) : _mm_loadl_epi64((const __m128i *)sp);
    /* dwords at bytes 2, 5 (bits 0-23 and 24-47 of the first field), 10, 13 */
    __m128i parts = _mm_shuffle_epi8(q, _mm_setr_epi8(2, 3, 4, 5, 5, 6, 7, -1, 10, 11, 12, 13, 13, 14, 15, -1));
    __m512i k = _mm512_permutexvar_epi32(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                                         _mm512_castsi128_si512(parts));
    k = _mm512_srlv_epi32(k, _mm512_set_epi32(18, 12, 6, 0, 18, 12, 6, 0, 18, 12, 6, 0, 18, 12, 6, 0));
    k = _mm512_srai_epi32(_mm512_slli_epi32(k, 26), 26);
    /* D of the first super-block in halves 0-7, of the second in 8-15 */
    __m256i dd = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(q),
                                     _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 8, 9, 8, 9, 8, 9, 8,
                                                      9, 8, 9, 8, 9, 8, 9, 8, 9));
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(k), _mm512_cvtph_ps(dd));
    return _mm512_cvtph_ps(_mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

INLINE void qtile(const MMArgs *a, int r, int t, const int NR, const int NT, const DType FS, const int PF)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    const DType F = dtype_base(FS); /* the levels' type; FS a super-block type: scales per 8 blocks */
    const int S = dtype_is_super(FS);
    int nb = A->nb, nu = nb / 4;
    const int P0 = qb_plane0(F), P1 = qb_plane1(F);
    size_t wrow = (size_t)nb * (P0 + P1), wunit = 4 * (size_t)P0, wunit1 = 4 * (size_t)P1, plane1 = (size_t)nb * P0;
    const size_t dist = F == DT_Q8 ? PF_Q8 : PF_Q4, dist1 = dist * P1 / P0;
    const uint8_t *wd = (const uint8_t *)W->data + (size_t)r * wrow;
    const size_t sw = S ? qb_scale_words(FS, nb) : (size_t)nb; /* scale words per row */
    const uint16_t *sd = W->scales + (size_t)r * sw;
    const __m512i lane4 = _mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 2);
    const __m512i tbl = F == DT_IQ4 || F == DT_IQ3 ? grid_table(F) : _mm512_setzero_si512();
    const int NA = NT;
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NA; j++) acc[i][j] = _mm512_setzero_ps();
    for (int u0 = 0; u0 < nu; u0 += 4) {
        int left = nu - u0;
        __m512 s16[4];
        __mmask16 lm = left >= 4 ? (__mmask16)0xFFFF : (__mmask16)((1u << (4 * left)) - 1);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            if (S) { /* blocks 4 u0 .. 4 u0 + 15: super-blocks u0 / 2 and the next, if the row has it */
                s16[i] = super16(sd + (size_t)i * sw + (size_t)u0 / 2 * QSUPER_WORDS, left > 2);
            } else {
                const uint16_t *sp = sd + (size_t)i * nb + 4 * u0;
                s16[i] = _mm512_cvtph_ps(left >= 4 ? _mm256_loadu_si256((const __m256i *)sp) : _mm256_maskz_loadu_epi16(lm, sp));
            }
            if (NT == 1) /* one token: fold its block scales in, one multiply per 16 blocks */
                s16[i] = _mm512_mul_ps(s16[i], _mm512_maskz_loadu_ps(lm, A->d + (size_t)t * nb + 4 * u0));
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            if (k >= left) break;
            int u = u0 + k;
            __m512i w0[4], w1[4];
            __m512 ws[4];
            __m512i idx = _mm512_add_epi32(lane4, _mm512_set1_epi32(4 * k));
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) {
                const uint8_t *rp = wd + (size_t)i * wrow, *wp = rp + (size_t)u * wunit;
                const uint8_t *wp1 = rp + plane1 + (size_t)u * wunit1;
                if (PF) {
                    size_t ahead = (size_t)u * wunit + dist;
                    const char *pf = (const char *)wp + dist + (ahead >= wrow ? (size_t)(NR - 1) * wrow : 0);
                    _mm_prefetch(pf, _MM_HINT_T1);
                    if (F == DT_Q8) _mm_prefetch(pf + 64, _MM_HINT_T1);
                    if (P1) {
                        size_t ahead1 = plane1 + (size_t)u * wunit1 + dist1;
                        _mm_prefetch((const char *)wp1 + dist1 + (ahead1 >= wrow ? (size_t)(NR - 1) * wrow : 0), _MM_HINT_T1);
                    }
                }
                load_wunit(&w0[i], &w1[i], wp, wp1, F, tbl);
                ws[i] = _mm512_permutexvar_ps(idx, s16[i]);
            }
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                size_t tu = (size_t)(t + j) * nu + u;
                const int8_t *q = A->q + (size_t)(t + j) * nb * 32 + (size_t)u * 128;
                __m512i a0 = _mm512_loadu_si512(q), a1 = _mm512_loadu_si512(q + 64);
                __m512i off = _mm512_loadu_si512(A->off + tu * 16);
#pragma GCC unroll 4
                for (int i = 0; i < NR; i++) {
                    __m512i dot = _mm512_dpbusd_epi32(off, w0[i], a0);
                    dot = _mm512_dpbusd_epi32(dot, w1[i], a1);
                    /* the same operations for a token whatever NT is (its
                     * result does not depend on the batch it rides in):
                     * acc += dot * (w_scale * x_scale); NT == 1 folded
                     * x_scale into s16 above, the same products */
                    if (NT == 1)
                        acc[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), ws[i], acc[i][0]);
                    else
                        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                                    _mm512_mul_ps(ws[i], _mm512_loadu_ps(A->pat + tu * 16)), acc[i][j]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            float y = _mm512_reduce_add_ps(acc[i][j]);
            const int8_t *x = A->q + (size_t)(t + j) * nb * 32;
            for (int b = 4 * nu; b < nb; b++) {
                int s = 0, wv[32];
                qb_values(F, wd + (size_t)i * wrow, nb, b, wv);
                for (int k = 0; k < 32; k++) s += wv[k] * x[b * 32 + k];
                y += _cvtsh_ss(qb_block_scale(FS, sd + (size_t)i * sw, b)) * A->d[(size_t)(t + j) * nb + b] * (float)s;
            }
            a->Y[(size_t)(t + j) * W->rows + r + i] = y;
        }
}

enum { QTOK_BLOCK = 64 };

/* Decode (n < 8: one token per session): all tokens (up to 4) in one tile,
 * so each weight unit is loaded and unpacked once, 2 rows at a time (more
 * rows per tile are more DRAM streams at once, measured slower). */
INLINE void mm_qdecode(const MMArgs *a, int r0, int r1, const DType F)
{
    for (int tb = 0; tb < a->n; tb += 4) {
        int nt = a->n - tb < 4 ? a->n - tb : 4, r = r0;
        for (; r + 2 <= r1; r += 2) {
            if (nt == 1) qtile(a, r, tb, 2, 1, F, 1);
            else if (nt == 2) qtile(a, r, tb, 2, 2, F, 1);
            else if (nt == 3) qtile(a, r, tb, 2, 3, F, 1);
            else qtile(a, r, tb, 2, 4, F, 1);
        }
        if (r < r1) {
            if (nt == 1) qtile(a, r, tb, 1, 1, F, 1);
            else if (nt == 2) qtile(a, r, tb, 1, 2, F, 1);
            else if (nt == 3) qtile(a, r, tb, 1, 3, F, 1);
            else qtile(a, r, tb, 1, 4, F, 1);
        }
    }
}

INLINE void mm_quant(const MMArgs *a, int r0, int r1, const DType F)
{
    if (a->n < 8) {
        mm_qdecode(a, r0, r1, F);
        return;
    }
    for (int tb = 0; tb < a->n; tb += QTOK_BLOCK) {
        int te = tb + QTOK_BLOCK < a->n ? tb + QTOK_BLOCK : a->n;
        int r = r0;
        for (; r + 2 <= r1; r += 2) {
            int t = tb;
            for (; t + 8 <= te; t += 8) qtile(a, r, t, 2, 8, F, 0);
            for (; t < te; t++) qtile(a, r, t, 2, 1, F, 0);
        }
        for (; r < r1; r++) {
            int t = tb;
            for (; t + 8 <= te; t += 8) qtile(a, r, t, 1, 8, F, 0);
            for (; t < te; t++) qtile(a, r, t, 1, 1, F, 0);
        }
    }
}

static void mm_q8(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_Q8); }
static void mm_q4(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_Q4); }
static void mm_q6(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_Q6); }
static void mm_q5(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_Q5); }
static void mm_iq4(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_IQ4); }
static void mm_iq3(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_IQ3); }
static void mm_q6k(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_Q6K); }
static void mm_q5k(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_Q5K); }
static void mm_iq4k(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_IQ4K); }
static void mm_iq3k(const MMArgs *a, int r0, int r1) { mm_quant(a, r0, r1, DT_IQ3K); }

/* act_quantize_row's arithmetic (x * (127 / amax), round to nearest even,
 * clamp), so the same int8 values, stored in load_wunit's order: per unit
 * of 4 blocks all first halves, then all second halves; the last nb % 4
 * blocks in natural order. Also the per-lane scale patterns and the dot
 * offsets (K = qoff(wt): 8 for Q4 nibbles, 128 for sign-flipped Q8, ...). */
static void act_quant(ActQ *A, int t, const float *x, const float *in_scale, int cols, DType wt)
{
    int nb = A->nb, nu = nb / 4;
    int8_t *q = A->q + (size_t)t * nb * 32;
    float *d = A->d + (size_t)t * nb, *m = A->m + (size_t)t * nb;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512i negk = _mm512_set1_epi32(-qoff(wt));
    for (int b = 0; b < nb; b++) {
        int c = b * 32, left = cols - c;
        __mmask16 m0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __mmask16 m1 = left >= 32 ? (__mmask16)0xFFFF : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
        __m512 v0 = _mm512_maskz_loadu_ps(m0, x + c), v1 = _mm512_maskz_loadu_ps(m1, x + c + 16);
        if (in_scale) {
            v0 = _mm512_mul_ps(v0, _mm512_maskz_loadu_ps(m0, in_scale + c));
            v1 = _mm512_mul_ps(v1, _mm512_maskz_loadu_ps(m1, in_scale + c + 16));
        }
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1)));
        float inv = amax > 0 ? 127.0f / amax : 0.0f;
        __m512 vi = _mm512_set1_ps(inv);
        __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vi)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vi));
        q0 = _mm512_max_epi32(_mm512_min_epi32(q0, lim), nlim);
        q1 = _mm512_max_epi32(_mm512_min_epi32(q1, lim), nlim);
        __m512i s = _mm512_add_epi32(q0, q1);
        d[b] = amax / 127.0f;
        m[b] = d[b] * (float)_mm512_reduce_add_epi32(s);
        int8_t *lo, *hi;
        if (b < 4 * nu) { /* see load_wunit: per 4 blocks, first halves then second halves */
            size_t tu = (size_t)t * nu + b / 4;
            lo = q + (size_t)(b / 4) * 128 + (b % 4) * 16;
            hi = lo + 64;
            _mm_storeu_ps(A->pat + tu * 16 + (b % 4) * 4, _mm_set1_ps(d[b]));
            /* lane j of this block's 4 multiplies elements 4j..4j+3 of both halves */
            s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, _MM_PERM_BADC));
            s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, _MM_PERM_CDAB));
            __m512i o = _mm512_mullo_epi32(s, negk); /* every lane of group j holds group j's sum */
            o = _mm512_permutexvar_epi32(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), o);
            _mm_storeu_si128((__m128i *)(A->off + tu * 16 + (b % 4) * 4), _mm512_castsi512_si128(o));
        } else {
            lo = q + (size_t)b * 32;
            hi = lo + 16;
        }
        _mm_storeu_si128((__m128i *)lo, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)hi, _mm512_cvtepi32_epi8(q1));
    }
}

static void axpy_f16(float *y, float alpha, const uint16_t *h, int n)
{
    __m512 a = _mm512_set1_ps(alpha);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_fmadd_ps(a, load_w16_mask(h, (size_t)i, DT_F16, m), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

/* The lane sums of 16 vectors, in order: 4 rounds of pairwise combines
 * (unpack, in-lane shuffle, two 128-bit lane shuffles) instead of 16
 * separate reductions. */
INLINE __m512 sum16x16(const __m512 *v)
{
    __m512 a[8], b[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 c0 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], 0x44), _mm512_shuffle_f32x4(b[0], b[1], 0xEE));
    __m512 c1 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], 0x44), _mm512_shuffle_f32x4(b[2], b[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(c0, c1, 0x88), _mm512_shuffle_f32x4(c0, c1, 0xDD));
}

/* kern_impl.h's lora_b: 16 rows at a time, 16 columns per step, masked at
 * the rank's end; the last rows as a block padded with zero rows. */
INLINE void lora_b_t(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n, const DType T)
{
    int r = B->cols, nk = (r + 15) / 16;
    __mmask16 last = r % 16 ? (__mmask16)((1u << (r % 16)) - 1) : (__mmask16)0xFFFF;
    for (int j = j0; j < j1; j += 16) {
        /* past j1 the block's rows are zero: each row's sum is its own */
        int nr = j1 - j < 16 ? j1 - j : 16;
        for (int i = 0; i < n; i++) {
            __m512 v[16];
#pragma GCC unroll 16
            for (int jj = 0; jj < 16; jj++) v[jj] = _mm512_setzero_ps();
            for (int c = 0; c < nk; c++) {
                __mmask16 m = c == nk - 1 ? last : (__mmask16)0xFFFF;
                __m512 tv = _mm512_maskz_loadu_ps(m, t + (size_t)i * r + 16 * c);
                if (nr == 16) {
#pragma GCC unroll 16
                    for (int jj = 0; jj < 16; jj++)
                        v[jj] = _mm512_fmadd_ps(load_w16_mask(B->data, (size_t)(j + jj) * r + 16 * c, T, m), tv, v[jj]);
                } else {
                    for (int jj = 0; jj < nr; jj++)
                        v[jj] = _mm512_fmadd_ps(load_w16_mask(B->data, (size_t)(j + jj) * r + 16 * c, T, m), tv, v[jj]);
                }
            }
            _mm512_mask_storeu_ps(u + (size_t)i * ldu + (j - j0), (__mmask16)((1u << nr) - 1), sum16x16(v));
        }
    }
}

/* kern_impl.h's lora_b for a batch (n >= LORA_B_BATCH): per block of 16
 * rows, B's block is converted and transposed once into bt (bt[k] = column
 * k of the 16 rows), then each token's 16 sums run in rank order, one fused
 * multiply-add per rank, 4 tokens at a time; the rows past the last 16 in
 * the same order with fmaf, so every row's sum is the same whatever j0, j1. */
INLINE void lora_bn_t(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n, const DType T)
{
    int r = B->cols, r16 = (r + 15) & ~15, j = j0;
    __m512 bt[KERN_LORA_MAX_RANK];
    for (; j + 16 <= j1; j += 16) {
        for (int c = 0; c < r16; c += 16) {
            __mmask16 m = r - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (r - c)) - 1);
#pragma GCC unroll 16
            for (int jj = 0; jj < 16; jj++) bt[c + jj] = load_w16_mask(B->data, (size_t)(j + jj) * r + c, T, m);
            transpose16(bt + c);
        }
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            const float *t0 = t + (size_t)i * r;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < r; k++) {
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(t0[k]), bt[k], a0);
                a1 = _mm512_fmadd_ps(_mm512_set1_ps(t0[r + k]), bt[k], a1);
                a2 = _mm512_fmadd_ps(_mm512_set1_ps(t0[2 * r + k]), bt[k], a2);
                a3 = _mm512_fmadd_ps(_mm512_set1_ps(t0[3 * r + k]), bt[k], a3);
            }
            float *ui = u + (size_t)i * ldu + (j - j0);
            _mm512_storeu_ps(ui, a0);
            _mm512_storeu_ps(ui + ldu, a1);
            _mm512_storeu_ps(ui + 2 * (size_t)ldu, a2);
            _mm512_storeu_ps(ui + 3 * (size_t)ldu, a3);
        }
        for (; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            __m512 a0 = _mm512_setzero_ps();
            for (int k = 0; k < r; k++) a0 = _mm512_fmadd_ps(_mm512_set1_ps(ti[k]), bt[k], a0);
            _mm512_storeu_ps(u + (size_t)i * ldu + (j - j0), a0);
        }
    }
    for (; j < j1; j++) {
        float br[KERN_LORA_MAX_RANK];
        for (int c = 0; c < r; c += 16) {
            __mmask16 m = r - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (r - c)) - 1);
            _mm512_mask_storeu_ps(br + c, m, load_w16_mask(B->data, (size_t)j * r + c, T, m));
        }
        for (int i = 0; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            float x = 0;
            for (int k = 0; k < r; k++) x = fmaf(ti[k], br[k], x);
            u[(size_t)i * ldu + (j - j0)] = x;
        }
    }
}

static void lora_b(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n)
{
    if (n >= LORA_B_BATCH) {
        if (B->type == DT_F16) lora_bn_t(u, ldu, B, j0, j1, t, n, DT_F16);
        else if (B->type == DT_BF16) lora_bn_t(u, ldu, B, j0, j1, t, n, DT_BF16);
        else lora_bn_t(u, ldu, B, j0, j1, t, n, DT_F32);
    } else if (B->type == DT_F16) {
        lora_b_t(u, ldu, B, j0, j1, t, n, DT_F16);
    } else if (B->type == DT_BF16) {
        lora_b_t(u, ldu, B, j0, j1, t, n, DT_BF16);
    } else {
        lora_b_t(u, ldu, B, j0, j1, t, n, DT_F32);
    }
}

static float read_sum(const float *p, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        _mm_prefetch((const char *)(p + i) + PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i) + PREFETCH + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i) + PREFETCH + 128, _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i) + PREFETCH + 192, _MM_HINT_T0);
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
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_q4, mm_q6, mm_q5, mm_iq4, mm_iq3, mm_q6k, mm_q5k, mm_iq4k, mm_iq3k},
    .act_quant = act_quant,
    .axpy_f16 = axpy_f16,
    .lora_b = lora_b,
    .lora8_a = lora8_a_avx512,
    .lora8_b = lora8_b_avx512,
    .attn_f16 = attn_f16_avx512,
    .attn_prefill_f16 = attn_prefill_f16_avx512,
    .silu_mul = silu_mul_avx512,
    .read_sum = read_sum,
};
