/* kern_avx2.c - AVX2 + FMA + F16C backend. Float weights: converted to f32 in
 * registers and FMA'd in tiles of rows x tokens. Block-type weights: one ymm
 * per 32-block, vpmaddubsw (u8 x s8 -> s16 pairs) then vpmaddwd to int32: Q8
 * and the grid types (IQ4 / IQ3 values by vpshufb) by the sign trick |w| x
 * sign(a, w); Q4 / Q6 / Q5 levels are u8 already, their offset applied in
 * float through the activations' per-block d * sum(q). Only called
 * after cpu_detect saw AVX2, FMA and F16C. */
#include <math.h>
#include <string.h>

#include "kern/avx2.h"
#include "kern/qblock.h"

/* ---- float weights ---- */


INLINE float load_w1(const void *base, size_t i, DType t)
{
    if (t == DT_F32) { /* the mapping may leave f32 data only 2-byte aligned */
        float f;
        memcpy(&f, (const char *)base + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const uint16_t *)base + i, 2);
    if (t == DT_F16) return _cvtsh_ss(h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}


INLINE void ftile(const MMArgs *a, int r, int t, const int NR, const int NT, const DType T)
{
    const QMat *W = a->W;
    int cols = W->cols;
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    const float *x0 = a->X + (size_t)t * cols;
    int c = 0;
    for (; c + 8 <= cols; c += 8) {
        __m256 w[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) w[i] = load_w8(W->data, (size_t)(r + i) * cols + c, T);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            __m256 x = _mm256_loadu_ps(x0 + (size_t)j * cols + c);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) acc[i][j] = _mm256_fmadd_ps(w[i], x, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            float y = hsum8(acc[i][j]);
            for (int k = c; k < cols; k++)
                y += load_w1(W->data, (size_t)(r + i) * cols + k, T) * x0[(size_t)j * cols + k];
            a->Y[(size_t)(t + j) * W->rows + r + i] = y;
        }
}

enum { TOK_BLOCK = 32 };

INLINE void mm_float(const MMArgs *a, int r0, int r1, const DType T)
{
    for (int tb = 0; tb < a->n; tb += TOK_BLOCK) {
        int te = tb + TOK_BLOCK < a->n ? tb + TOK_BLOCK : a->n;
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int t = tb;
            for (; t + 2 <= te; t += 2) ftile(a, r, t, 4, 2, T);
            for (; t < te; t++) ftile(a, r, t, 4, 1, T);
        }
        for (; r < r1; r++)
            for (int t = tb; t < te; t++) ftile(a, r, t, 1, 1, T);
    }
}

static void mm_f32(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_F32); }
static void mm_f16(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_F16); }
static void mm_bf16(const MMArgs *a, int r0, int r1) { mm_float(a, r0, r1, DT_BF16); }

/* ---- block-type weights (Q8, Q4, Q6, Q5, IQ4, IQ3) ---- */

/* Unsigned types (Q4, Q6, Q5): u8 levels, value = level - K, the K term
 * applied in float through the activations' d * sum(q); the others (Q8 as
 * stored, IQ4 / IQ3 looked up in their grid) are s8 values. */
INLINE int unsigned_type(DType F) { return F == DT_Q4 || F == DT_Q6 || F == DT_Q5; }

/* 32 elements' 2-bit fields (8 bytes at p: byte i, bits 2k..2k+1 = element
 * 8k+i) as bytes 0..3 in natural order. */
INLINE __m256i load_2bit(const uint8_t *p)
{
    long long v;
    memcpy(&v, p, 8);
    return _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(v), _mm256_set_epi64x(6, 4, 2, 0)), _mm256_set1_epi8(3));
}

/* 32 elements' 1-bit fields (a little-endian u32 at p) as bytes 0 / `one`. */
INLINE __m256i load_1bit(const uint8_t *p, char one)
{
    int v;
    memcpy(&v, p, 4);
    __m256i x = _mm256_shuffle_epi8(_mm256_set1_epi32(v), _mm256_set_epi64x(0x0303030303030303ll, 0x0202020202020202ll,
                                                                              0x0101010101010101ll, 0));
    __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(x, bit), bit), _mm256_set1_epi8(one));
}

/* A grid (IQ4 16 / IQ3 8 entries) in both 128-bit lanes, for vpshufb. */
INLINE __m256i grid_table(DType F)
{
    int8_t t[16] = {0};
    for (int i = 0; i < (F == DT_IQ4 ? 16 : 8); i++) t[i] = F == DT_IQ4 ? kern_grid_iq4[i] : kern_grid_iq3[i];
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

/* Block b of a weight row (nb blocks, planes of qblock.h) as 32 bytes in
 * natural order: unsigned levels or s8 values (see unsigned_type). */
INLINE __m256i load_wblock(const uint8_t *row, int nb, int b, const DType F, __m256i tbl)
{
    if (F == DT_Q8) return _mm256_loadu_si256((const __m256i *)(row + (size_t)b * 32));
    if (F == DT_IQ3)
        return _mm256_shuffle_epi8(tbl, _mm256_or_si256(load_2bit(row + (size_t)b * 8),
                                                        load_1bit(row + (size_t)nb * 8 + (size_t)b * 4, 4)));
    __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row + (size_t)b * 16)));
    x = _mm256_srlv_epi32(x, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
    x = _mm256_and_si256(x, _mm256_set1_epi8(0x0F));
    if (F == DT_IQ4) return _mm256_shuffle_epi8(tbl, x);
    if (F == DT_Q6) return _mm256_or_si256(x, _mm256_slli_epi16(load_2bit(row + (size_t)nb * 16 + (size_t)b * 8), 4));
    if (F == DT_Q5) return _mm256_or_si256(x, load_1bit(row + (size_t)nb * 16 + (size_t)b * 4, 16));
    return x;
}

/* int32 partial dots (8 lanes) of one block: w (see load_wblock) x a (s8). */
INLINE __m256i block_dot(__m256i w, __m256i a, const DType F)
{
    __m256i p = unsigned_type(F) ? _mm256_maddubs_epi16(w, a)
                                 : _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Decode streams each weight row once from DRAM: software prefetch runs
 * PF_DIST bytes ahead in every row of a tile, into L2; past a row's end it
 * continues in the same row of the next tile, which this thread reads next
 * (see kern_avx512.c, where T1 and the distance were measured). */
#ifndef PF_DIST
#define PF_DIST 4096
#endif

/* Y for rows r..r+NR-1, tokens t..t+NT-1. Per group of 8 blocks the
 * combined scales dw * d are formed 8 at a time and read back with
 * broadcast loads; the Q4 offset term is summed in a second vector pass.
 * PF: prefetch (decode). */
/* The 8 f32 block scales of the super-block at sb (kern.h): sub-scales 0-3
 * are bits 0-23 of its 48-bit field, 4-7 bits 24-47, so one variable shift
 * per 32-bit lane isolates each (then sign-extended from 6 bits); D * k is
 * exact in f32 and rounds to f16 as qb_super_scale does. */
INLINE __m256 super8(const uint16_t *sb)
{
    uint64_t v;
    memcpy(&v, sb, 8);
    int lo = (int)(uint32_t)(v >> 16), hi = (int)(uint32_t)(v >> 40);
    __m256i k = _mm256_srlv_epi32(_mm256_setr_epi32(lo, lo, lo, lo, hi, hi, hi, hi), _mm256_setr_epi32(0, 6, 12, 18, 0, 6, 12, 18));
    k = _mm256_srai_epi32(_mm256_slli_epi32(k, 26), 26);
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(k), _mm256_set1_ps(_cvtsh_ss(sb[0])));
    return _mm256_cvtph_ps(_mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

INLINE void qtile(const MMArgs *a, int r, int t, const int NR, const int NT, const DType FS, const int PF)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    const DType F = dtype_base(FS); /* the levels' type; FS a super-block type: one super-block per group */
    const int S = dtype_is_super(FS);
    int nb = A->nb, ng = nb / 8;
    const size_t sw = S ? qb_scale_words(FS, nb) : (size_t)nb; /* scale words per row */
    const int P0 = qb_plane0(F), P1 = qb_plane1(F), K = unsigned_type(F) ? qb_offset(F) : 0;
    size_t wrow = (size_t)nb * (P0 + P1);
    const uint8_t *wd = (const uint8_t *)W->data;
    const __m256i tbl = F == DT_IQ4 || F == DT_IQ3 ? grid_table(F) : _mm256_setzero_si256();
    __m256 acc[4][4];
    float sc[4][4][8] __attribute__((aligned(32)));
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    for (int g = 0; g <= ng; g++) {
        int b0 = 8 * g, nk = g < ng ? 8 : nb - 8 * ng;
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const uint16_t *ws = W->scales + (size_t)(r + i) * sw + (S ? (size_t)g * QSUPER_WORDS : (size_t)b0);
            if (nk == 8) {
                __m256 s8 = S ? super8(ws) : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)ws));
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++)
                    _mm256_store_ps(sc[i][j], _mm256_mul_ps(s8, _mm256_loadu_ps(A->d + (size_t)(t + j) * nb + b0)));
            } else {
                for (int j = 0; j < NT; j++)
                    for (int k = 0; k < nk; k++)
                        sc[i][j][k] = _cvtsh_ss(qb_block_scale(FS, W->scales + (size_t)(r + i) * sw, b0 + k)) *
                                      A->d[(size_t)(t + j) * nb + b0 + k];
            }
        }
        for (int k = 0; k < nk; k++) {
            int b = b0 + k;
            __m256i w[4];
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) {
                const uint8_t *row = wd + (size_t)(r + i) * wrow;
                if (PF && (b * P0) % 64 == 0) { /* one prefetch per 64-byte line */
                    size_t ahead = (size_t)b * P0 + PF_DIST;
                    _mm_prefetch((const char *)row + ahead + (ahead >= wrow ? (size_t)(NR - 1) * wrow : 0), _MM_HINT_T1);
                }
                if (PF && P1 && (b * P1) % 64 == 0) { /* plane 1, as far ahead in proportion */
                    size_t ahead = (size_t)nb * P0 + (size_t)b * P1 + PF_DIST * P1 / P0;
                    _mm_prefetch((const char *)row + ahead + (ahead >= wrow ? (size_t)(NR - 1) * wrow : 0), _MM_HINT_T1);
                }
                w[i] = load_wblock(row, nb, b, F, tbl);
            }
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) {
                __m256i av = _mm256_loadu_si256((const __m256i *)(A->q + ((size_t)(t + j) * nb + b) * 32));
#pragma GCC unroll 4
                for (int i = 0; i < NR; i++) {
                    __m256 f = _mm256_cvtepi32_ps(block_dot(w[i], av, F));
                    acc[i][j] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(&sc[i][j][k]), acc[i][j]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            float off = 0;
            if (K) { /* sum_b dw_b * d_b * sum(a_b) */
                const uint16_t *ws = W->scales + (size_t)(r + i) * sw;
                const float *m = A->m + (size_t)(t + j) * nb;
                __m256 o = _mm256_setzero_ps();
                int b = 0;
                for (; b + 8 <= nb; b += 8)
                    o = _mm256_fmadd_ps(S ? super8(ws + (size_t)b / QSUPER * QSUPER_WORDS)
                                          : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ws + b))),
                                        _mm256_loadu_ps(m + b), o);
                off = hsum8(o);
                for (; b < nb; b++) off += _cvtsh_ss(qb_block_scale(FS, ws, b)) * m[b];
            }
            a->Y[(size_t)(t + j) * W->rows + r + i] = hsum8(acc[i][j]) - (float)K * off;
        }
}

/* Decode (n < 8): up to 4 tokens in one tile, so each weight block is
 * loaded once for all of them; 2 rows at a time. */
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
    enum { TB = 64 };
    for (int tb = 0; tb < a->n; tb += TB) {
        int te = tb + TB < a->n ? tb + TB : a->n;
        int r = r0;
        for (; r + 2 <= r1; r += 2) {
            int t = tb;
            for (; t + 4 <= te; t += 4) qtile(a, r, t, 2, 4, F, 0);
            for (; t < te; t++) qtile(a, r, t, 2, 1, F, 0);
        }
        for (; r < r1; r++) {
            int t = tb;
            for (; t + 4 <= te; t += 4) qtile(a, r, t, 1, 4, F, 0);
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

static void axpy_f16(float *y, float alpha, const uint16_t *h, int n)
{
    __m256 a = _mm256_set1_ps(alpha);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, load_w8(h, (size_t)i, DT_F16), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * load_w1(h, (size_t)i, DT_F16);
}

static float read_sum(const float *p, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
    }
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += p[i];
    return s;
}

/* The lane sums of 8 vectors, in order (three rounds of hadd, then the
 * 128-bit halves). */
INLINE __m256 sum8x8(const __m256 *v)
{
    __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

/* kern_impl.h's lora_b: 8 rows at a time, 8 columns per step; the rank's
 * last r % 8 columns in plain C; the last rows as a block padded with zero
 * rows, so each row's sum is the same wherever a block starts. */
INLINE void lora_b_t(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n, const DType T)
{
    int r = B->cols, kv = r & ~7;
    for (int j = j0; j < j1; j += 8) {
        int nr = j1 - j < 8 ? j1 - j : 8;
        for (int i = 0; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            __m256 v[8];
#pragma GCC unroll 8
            for (int jj = 0; jj < 8; jj++) v[jj] = _mm256_setzero_ps();
            for (int c = 0; c < kv; c += 8) {
                __m256 tv = _mm256_loadu_ps(ti + c);
                if (nr == 8) {
#pragma GCC unroll 8
                    for (int jj = 0; jj < 8; jj++)
                        v[jj] = _mm256_fmadd_ps(load_w8(B->data, (size_t)(j + jj) * r + c, T), tv, v[jj]);
                } else {
                    for (int jj = 0; jj < nr; jj++)
                        v[jj] = _mm256_fmadd_ps(load_w8(B->data, (size_t)(j + jj) * r + c, T), tv, v[jj]);
                }
            }
            float s[8];
            _mm256_storeu_ps(s, sum8x8(v));
            for (int jj = 0; jj < nr; jj++) {
                float x = 0;
                for (int c = kv; c < r; c++) x += load_w1(B->data, (size_t)(j + jj) * r + c, T) * ti[c];
                u[(size_t)i * ldu + (j - j0) + jj] = s[jj] + x;
            }
        }
    }
}

/* In place: v[i] lane j <- v[j] lane i. */
INLINE void transpose8(__m256 *v)
{
    __m256 a[8], b[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        a[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
        a[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
        b[i] = _mm256_shuffle_ps(a[i], a[i + 2], 0x44);
        b[i + 1] = _mm256_shuffle_ps(a[i], a[i + 2], 0xEE);
        b[i + 2] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0x44);
        b[i + 3] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_permute2f128_ps(b[i], b[i + 4], 0x20);
        v[i + 4] = _mm256_permute2f128_ps(b[i], b[i + 4], 0x31);
    }
}

/* kern_impl.h's lora_b for a batch (n >= LORA_B_BATCH), as kern_avx512.c's
 * with blocks of 8 rows: the block's rows converted into tmp (zero past the
 * rank), transposed 8 columns at a time into bt (bt[k] = column k), then
 * each token's 8 sums in rank order, 4 tokens at a time; the rows past the
 * last 8 in the same order with fmaf. */
INLINE void lora_bn_t(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n, const DType T)
{
    int r = B->cols, kv = r & ~7, r8 = (r + 7) & ~7, j = j0;
    float tmp[8][KERN_LORA_MAX_RANK];
    __m256 bt[KERN_LORA_MAX_RANK];
    for (; j + 8 <= j1; j += 8) {
        for (int jj = 0; jj < 8; jj++) {
            for (int c = 0; c < kv; c += 8) _mm256_storeu_ps(&tmp[jj][c], load_w8(B->data, (size_t)(j + jj) * r + c, T));
            for (int c = kv; c < r8; c++) tmp[jj][c] = c < r ? load_w1(B->data, (size_t)(j + jj) * r + c, T) : 0;
        }
        for (int c = 0; c < r8; c += 8) {
#pragma GCC unroll 8
            for (int jj = 0; jj < 8; jj++) bt[c + jj] = _mm256_loadu_ps(&tmp[jj][c]);
            transpose8(bt + c);
        }
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            const float *t0 = t + (size_t)i * r;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < r; k++) {
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(t0[k]), bt[k], a0);
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(t0[r + k]), bt[k], a1);
                a2 = _mm256_fmadd_ps(_mm256_set1_ps(t0[2 * r + k]), bt[k], a2);
                a3 = _mm256_fmadd_ps(_mm256_set1_ps(t0[3 * r + k]), bt[k], a3);
            }
            float *ui = u + (size_t)i * ldu + (j - j0);
            _mm256_storeu_ps(ui, a0);
            _mm256_storeu_ps(ui + ldu, a1);
            _mm256_storeu_ps(ui + 2 * (size_t)ldu, a2);
            _mm256_storeu_ps(ui + 3 * (size_t)ldu, a3);
        }
        for (; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            __m256 a0 = _mm256_setzero_ps();
            for (int k = 0; k < r; k++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(ti[k]), bt[k], a0);
            _mm256_storeu_ps(u + (size_t)i * ldu + (j - j0), a0);
        }
    }
    for (; j < j1; j++)
        for (int i = 0; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            float x = 0;
            for (int k = 0; k < r; k++) x = fmaf(ti[k], load_w1(B->data, (size_t)j * r + k, T), x);
            u[(size_t)i * ldu + (j - j0)] = x;
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

const KernOps kern_ops_avx2 = {
    .name = "avx2",
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_q4, mm_q6, mm_q5, mm_iq4, mm_iq3, mm_q6k, mm_q5k, mm_iq4k, mm_iq3k},
    .act_layout = NULL,
    .axpy_f16 = axpy_f16,
    .lora_b = lora_b,
    .lora8_a = lora8_a_avx2,
    .lora8_b = lora8_b_avx2,
    .attn_f16 = attn_f16_avx2,
    .attn_prefill_f16 = attn_prefill_f16_avx2,
    .silu_mul = silu_mul_avx2,
    .read_sum = read_sum,
};
