/* kern_amx_avx512.c - the AMX backend: the AVX-512 backend, except that
 * products of KERN_TILE_MIN_N or more tokens (prefill) with BF16, Q8 or Q4
 * weights run on AMX tiles.
 *
 * BF16 weights: tdpbf16ps (bf16 pairs summed in f32), weights as the A
 * operand straight from the matrix, 16 rows x 32 columns per tile; the
 * activations, the B operand, packed once per product by tile_pack as three
 * bf16 sets hi + mid + lo that together hold all 24 bits of each f32, so the
 * products keep f32-level accuracy (three tdpbf16ps per step).
 *
 * Q8 / Q4 weights: tdpbssd (int8 x int8 -> int32) per block of 32 columns,
 * 16 weight rows (Q8 as stored, Q4 nibbles unpacked to nibble - 8) x 16
 * tokens' int8 activations (act_quant, the other backends' quantization),
 * then scaled by weight scale x activation scale and summed in float by the
 * vector units. Only used after cpu_detect saw AMX and cpu_amx_request
 * succeeded. */
#include <immintrin.h>
#include <string.h>

#include "kern/kern_impl.h"

/* the Makefile's AVX-512 flags, plus AMX for this file only */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-int8,amx-bf16"))), apply_to = function)
#else
#pragma GCC target("amx-tile,amx-int8,amx-bf16")
#endif

#define INLINE static inline __attribute__((always_inline))

enum {
    KS = 32,        /* columns per tile step: 16 rows x 32 bf16 = 1 KiB */
    KCH = 16,       /* steps per chunk of copied weights: 2 panels x 16 KiB */
    TOKB = 256,     /* tokens per pass over the weights: partial sums 32 KiB */
    XSETS = 3,      /* bf16 sets of activation tiles: hi, mid, lo */
};

/* The LDTILECFG operand (palette 1). */
typedef struct TileCfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];   /* bytes per row of tmm0..15 */
    uint8_t rows[16];
} TileCfg;

/* All 8 tiles 16 rows x 64 bytes. tmm0..3: C, f32 sums of (panel p, token
 * group g) = tmm(2p + g); tmm4, tmm5: A, the two panels' weights of one
 * step; tmm6, tmm7: B, the two token groups' activations of one step, 16
 * rows of (column pair, 16 tokens). */
static void tiles_config_bf16(void)
{
    TileCfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
}

static int uses_tiles(DType wt, int n) { return n >= KERN_TILE_MIN_N && wt == DT_BF16; }
static int steps_of(int cols) { return (cols + KS - 1) / KS; }

/* ---- BF16 weights on bf16 tiles: the activations ---- */

static size_t tile_bytes(DType wt, int n, int cols)
{
    if (!uses_tiles(wt, n)) return 0;
    return (size_t)kern_tile_groups(n) * steps_of(cols) * 1024 * XSETS;
}

/* r[j] <- column j of the 16 x 16 dword matrix whose rows are r[0..15]. */
INLINE void transpose16(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* now r[4a + b] lane k (128-bit) holds rows 4a..4a+3 of column 4k + b' */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);      /* lanes 0, 2 of each */
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xDD);  /* lanes 1, 3 */
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

/* Token group g: for each step s the B tile at dst + (g * steps + s) KiB,
 * row k = columns 32s + 2k, 32s + 2k + 1 of the 16 tokens (bf16 pairs);
 * the mid and lo sets follow all groups' hi set, each holding what the
 * sets before it left out of x. */
static void tile_pack(void *dst, int g, const float *X, int n, int cols, const float *in_scale, DType wt)
{
    (void)wt; /* only BF16 weights use tiles packed here */
    int steps = steps_of(cols), sets = XSETS;
    size_t all = (size_t)kern_tile_groups(n) * steps * 512; /* bf16 per set */
    uint16_t *base = (uint16_t *)dst + (size_t)g * steps * 512;
    for (int s = 0; s < steps; s++) {
        int c = s * KS, left = cols - c;
        __mmask16 m0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __mmask16 m1 = left >= 32 ? (__mmask16)0xFFFF : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
        __m512 v0[16], v1[16];
        for (int i = 0; i < 16; i++) {
            int t = g * 16 + i;
            v0[i] = v1[i] = _mm512_setzero_ps();
            if (t < n) {
                const float *x = X + (size_t)t * cols + c;
                v0[i] = _mm512_maskz_loadu_ps(m0, x);
                v1[i] = _mm512_maskz_loadu_ps(m1, x + 16);
                if (in_scale) {
                    v0[i] = _mm512_mul_ps(v0[i], _mm512_maskz_loadu_ps(m0, in_scale + c));
                    v1[i] = _mm512_mul_ps(v1[i], _mm512_maskz_loadu_ps(m1, in_scale + c + 16));
                }
            }
        }
        for (int k = 0; k < sets; k++) {
            __m512i h[16];
            for (int i = 0; i < 16; i++) {
                h[i] = (__m512i)_mm512_cvtne2ps_pbh(v1[i], v0[i]); /* columns 0..31 in order */
                if (k + 1 < sets) { /* what this set leaves for the next */
                    v0[i] = _mm512_sub_ps(v0[i], _mm512_cvtpbh_ps((__m256bh)_mm512_castsi512_si256(h[i])));
                    v1[i] = _mm512_sub_ps(v1[i], _mm512_cvtpbh_ps((__m256bh)_mm512_extracti64x4_epi64(h[i], 1)));
                }
            }
            transpose16(h);
            uint16_t *o = base + k * all + (size_t)s * 512;
            for (int j = 0; j < 16; j++) _mm512_storeu_si512(o + j * 32, h[j]);
        }
    }
}

/* ---- BF16 weights: the weights ---- */

/* Same for BF16 weights that cannot be tile-loaded in place (a panel of
 * fewer than 16 rows, or cols not a multiple of 32): copied, zero-padded. */
static void copy_bf16(uint16_t *out, const QMat *W, int r, int nr, int s0, int ns)
{
    int cols = W->cols;
    for (int i = 0; i < 16; i++)
        for (int s = 0; s < ns; s++) {
            uint16_t *o = out + (size_t)s * 512 + i * 32;
            int c = (s0 + s) * KS, len = i < nr ? (cols - c < KS ? cols - c : KS) : 0;
            if (len > 0) memcpy(o, (const uint16_t *)W->data + (size_t)(r + i) * cols + c, (size_t)len * 2);
            if (len < KS) memset(o + (len > 0 ? len : 0), 0, (size_t)(KS - (len > 0 ? len : 0)) * 2);
        }
}

/* ---- BF16 weights: the product ---- */

/* C (2 panels x 2 token groups) += A . B over steps [0, ns): A tiles at a0 /
 * a1 + s * astep with row stride astride; B tiles at b0 / b1 + s KiB, then
 * the mid and lo sets, every bx bytes on. */
INLINE void run_steps(const char *a0, const char *a1, size_t astep, size_t astride, const char *b0, const char *b1,
                      size_t bx, int ns)
{
    for (int s = 0; s < ns; s++) {
        _tile_loadd(4, a0 + s * astep, astride);
        _tile_loadd(5, a1 + s * astep, astride);
        for (int k = 0; k < XSETS; k++) {
            _tile_loadd(6, b0 + k * bx + (size_t)s * 1024, 64);
            _tile_loadd(7, b1 + k * bx + (size_t)s * 1024, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
}

/* Rows r0..r1-1 (r0 a multiple of 32, or of 16 at the matrix's end) for all
 * tokens: per TOKB tokens, per pair of 16-row panels, per KCH steps: the
 * weights' tiles once, then every pair of token groups over them, partial
 * sums kept in part[] between chunks. */
static void mm_tiles_bf16(const MMArgs *a, int r0, int r1)
{
    const QMat *W = a->W;
    int n = a->n, cols = W->cols, steps = steps_of(cols), ngrp = kern_tile_groups(n);
    int direct = W->type == DT_BF16 && cols % KS == 0;
    size_t bx = (size_t)ngrp * steps * 1024; /* bytes from one set of B tiles to the next */
    _Alignas(64) uint16_t wbuf[2][KCH * 512]; /* [panel][step] tiles */
    _Alignas(64) float part[TOKB / 32][4][256];
    const char *xt = a->Xt;
    tiles_config_bf16();
    for (int g0 = 0; g0 < ngrp; g0 += TOKB / 16) {
        int ge = g0 + TOKB / 16 < ngrp ? g0 + TOKB / 16 : ngrp;
        for (int r = r0; r < r1; r += 32) {
            int nr0 = r1 - r < 16 ? r1 - r : 16, nr1 = r1 - r - 16 < 16 ? r1 - r - 16 : 16;
            if (nr1 < 0) nr1 = 0;
            /* BF16 in place needs no buffer: all steps at once, so the sums
             * stay in the tiles (each chunk ends in a stall on them) */
            int kch = direct && nr0 == 16 && nr1 == 16 ? steps : KCH;
            for (int s0 = 0; s0 < steps; s0 += kch) {
                int ns = steps - s0 < kch ? steps - s0 : kch;
                const char *a0, *a1;
                size_t astep = 1024, astride = 64;
                if (direct && nr0 == 16 && nr1 == 16) {
                    astride = (size_t)cols * 2;
                    astep = KS * 2;
                    a0 = (const char *)W->data + (size_t)r * astride + (size_t)s0 * astep;
                    a1 = a0 + 16 * astride;
                } else {
                    for (int p = 0; p < 2; p++) {
                        int rp = r + 16 * p, nrp = p ? nr1 : nr0;
                        copy_bf16(wbuf[p], W, rp, nrp, s0, ns);
                    }
                    a0 = (const char *)wbuf[0];
                    a1 = (const char *)wbuf[1];
                }
                for (int g = g0; g < ge; g += 2) {
                    float(*pp)[256] = part[(g - g0) / 2];
                    if (s0 == 0) {
                        _tile_zero(0);
                        _tile_zero(1);
                        _tile_zero(2);
                        _tile_zero(3);
                    } else {
                        _tile_loadd(0, pp[0], 64);
                        _tile_loadd(1, pp[1], 64);
                        _tile_loadd(2, pp[2], 64);
                        _tile_loadd(3, pp[3], 64);
                    }
                    const char *b0 = xt + ((size_t)g * steps + s0) * 1024, *b1 = b0 + (size_t)steps * 1024;
                    run_steps(a0, a1, astep, astride, b0, b1, bx, ns);
                    _tile_stored(0, pp[0], 64);
                    _tile_stored(1, pp[1], 64);
                    _tile_stored(2, pp[2], 64);
                    _tile_stored(3, pp[3], 64);
                }
            }
            for (int g = g0; g < ge; g++) { /* C is [row][token]: Y wants [token][row] */
                int nt = n - g * 16 < 16 ? n - g * 16 : 16;
                for (int p = 0; p < 2; p++) {
                    const float *c = part[(g - g0) / 2][2 * p + (g - g0) % 2];
                    int nrp = p ? nr1 : nr0;
                    for (int t = 0; t < nt; t++) {
                        float *y = a->Y + (size_t)(g * 16 + t) * W->rows + r + 16 * p;
                        for (int i = 0; i < nrp; i++) y[i] = c[16 * i + t];
                    }
                }
            }
        }
    }
    _tile_release();
}

/* ---- Q8 / Q4 weights on int8 tiles ----
 *
 * Per block of 32 columns, tdpbssd multiplies 16 weight rows (int8: Q8 as
 * stored, Q4 nibbles unpacked to nibble - 8) by the block of 16 tokens'
 * int8 activations into 16 x 16 int32, which the vector units scale by
 * weight scale x activation scale and add up in float. */

/* tmm0, tmm1: C, 16 weight rows x 16 tokens of int32, two so that one
 * block's tdpbssd overlaps the float work on the previous block's;
 * tmm2 / tmm4: A, 16 weight rows x 32 int8 (one block), for tmm0 / tmm1;
 * tmm3 / tmm5: B, the block's int8 activations of 16 tokens in the VNNI
 * order (8 rows: 4 consecutive columns x 16 tokens). */
static void tiles_config_int8(void)
{
    TileCfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 6; t++) {
        c.rows[t] = t == 3 || t == 5 ? 8 : 16;
        c.colsb[t] = t == 2 || t == 4 ? 32 : 64;
    }
    _tile_loadconfig(&c);
}

/* act_quantize_row's arithmetic for token t, stored for tiles: block b of
 * token group g = t / 16 is 512 bytes at q + (g * nb + b) * 512, row k (0..7)
 * holding columns 4k..4k+3 of the 16 tokens; its scales at
 * d + (g * nb + b) * 16. The padding tokens stay as kern_matmul zeroed them. */
static void act_quant_tiles(ActQ *A, int t, const float *x, const float *in_scale, int cols)
{
    int nb = A->nb, g = t / 16, tt = t % 16;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m256i rows = _mm256_set_epi32(7 * 64, 6 * 64, 5 * 64, 4 * 64, 3 * 64, 2 * 64, 64, 0);
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
        size_t gb = (size_t)g * nb + b;
        __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(q0)),
                                            _mm512_cvtepi32_epi8(q1), 1);
        _mm256_i32scatter_epi32(A->q + gb * 512 + tt * 4, rows, v, 1);
        A->d[gb * 16 + tt] = amax / 127.0f;
    }
}


static void act_quant(ActQ *A, int t, const float *x, const float *in_scale, int cols, DType wt)
{
    if (A->n >= KERN_TILE_MIN_N && (wt == DT_Q8 || wt == DT_Q4)) act_quant_tiles(A, t, x, in_scale, cols);
    else kern_ops_avx512.act_quant(A, t, x, in_scale, cols, wt);
}

enum {
    KC = 64, /* blocks per pass over a panel of 16 rows: 32 KiB of int8 weights */
    TG = 8,  /* token groups of 16 per pass: their partial sums stay in L1 */
};

/* Rows r..r+nr-1, blocks kb..kb+kn-1 as int8 in natural order, 16 rows of
 * kn * 32 bytes (rows nr..15 zero). */
static void panel_unpack(int8_t *out, const QMat *W, int r, int nr, int kb, int kn, int Q4)
{
    int nb = kern_nblocks(W->cols);
    size_t wrow = (size_t)nb * (Q4 ? 16 : 32), len = (size_t)kn * 32;
    for (int i = 0; i < 16; i++) {
        int8_t *o = out + (size_t)i * len;
        if (i >= nr) {
            memset(o, 0, len);
            continue;
        }
        const uint8_t *src = (const uint8_t *)W->data + (size_t)(r + i) * wrow + (size_t)kb * (Q4 ? 16 : 32);
        if (!Q4) {
            memcpy(o, src, len);
            continue;
        }
        const __m512i m = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
        const __m512i i0 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
        const __m512i i1 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
        int b = 0;
        for (; b + 4 <= kn; b += 4) { /* 4 blocks: 64 bytes of nibbles -> 128 bytes */
            __m512i z = _mm512_loadu_si512(src + (size_t)b * 16);
            __m512i lo = _mm512_sub_epi8(_mm512_and_si512(z, m), eight);
            __m512i hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(z, 4), m), eight);
            _mm512_storeu_si512(o + (size_t)b * 32, _mm512_permutex2var_epi64(lo, i0, hi));
            _mm512_storeu_si512(o + (size_t)b * 32 + 64, _mm512_permutex2var_epi64(lo, i1, hi));
        }
        for (; b < kn; b++) {
            __m128i z = _mm_loadu_si128((const __m128i *)(src + (size_t)b * 16));
            __m128i m1 = _mm_set1_epi8(0x0F), e1 = _mm_set1_epi8(8);
            _mm_storeu_si128((__m128i *)(o + (size_t)b * 32), _mm_sub_epi8(_mm_and_si128(z, m1), e1));
            _mm_storeu_si128((__m128i *)(o + (size_t)b * 32 + 16),
                             _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(z, 4), m1), e1));
        }
    }
}

/* ws[b * 16 + i] = scale of row r + i, block kb + b (0 for rows >= nr):
 * 16 rows x 16 blocks converted, then transposed. */
static void panel_scales(float *ws, const QMat *W, int r, int nr, int kb, int kn)
{
    int nb = kern_nblocks(W->cols);
    for (int b0 = 0; b0 < kn; b0 += 16) {
        int m = kn - b0 < 16 ? kn - b0 : 16;
        __m512i v[16];
        for (int i = 0; i < 16; i++)
            v[i] = i < nr ? _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                                (__mmask16)((1u << m) - 1), W->scales + (size_t)(r + i) * nb + kb + b0)))
                          : _mm512_setzero_si512();
        transpose16(v);
        for (int j = 0; j < m; j++) _mm512_store_si512(ws + (size_t)(b0 + j) * 16, v[j]);
    }
}

/* acc[i] (row i, lanes = 16 tokens) += C[i] * ws[i] * ad. */
INLINE void block_sums(__m512 acc[16], const int32_t *c, const float *ws, __m512 ad)
{
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        __m512 f = _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * i));
        acc[i] = _mm512_fmadd_ps(f, _mm512_mul_ps(_mm512_set1_ps(ws[i]), ad), acc[i]);
    }
}

/* C tile 0 (or 1) = weights of block b x activations of block b; the
 * tile numbers must be literals (GCC's macros paste them into the asm). */
#define TDP0(b)                                                       \
    do {                                                              \
        _tile_zero(0);                                                \
        _tile_loadd(2, src + (size_t)(b) * 32, stride);               \
        _tile_loadd(3, bt + (size_t)(b) * 512, 64);                   \
        _tile_dpbssd(0, 2, 3);                                        \
    } while (0)
#define TDP1(b)                                                       \
    do {                                                              \
        _tile_zero(1);                                                \
        _tile_loadd(4, src + (size_t)(b) * 32, stride);               \
        _tile_loadd(5, bt + (size_t)(b) * 512, 64);                   \
        _tile_dpbssd(1, 4, 5);                                        \
    } while (0)

/* Rows r0..r1-1 (r0 a multiple of 16 or the matrix's last rows) for all
 * tokens: for each 128 tokens, each panel of 16 rows, each KC blocks of it:
 * the weights once (Q8 straight from the matrix, Q4 unpacked), then every
 * token group over them. */
static void mm_tiles_int8(const MMArgs *a, int r0, int r1, const int Q4)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    int n = a->n, nb = A->nb, ntg = (n + 15) / 16;
    size_t wrow = (size_t)nb * (Q4 ? 16 : 32);
    _Alignas(64) int8_t wbuf[16 * KC * 32];
    _Alignas(64) int32_t cbuf[2][256];
    _Alignas(64) float wsf[KC * 16];
    _Alignas(64) float part[TG][256];
    tiles_config_int8();
    for (int g0 = 0; g0 < ntg; g0 += TG) {
        int ge = g0 + TG < ntg ? g0 + TG : ntg;
        for (int r = r0; r < r1; r += 16) {
            int nr = r1 - r < 16 ? r1 - r : 16;
            for (int kb = 0; kb < nb; kb += KC) {
                int kn = nb - kb < KC ? nb - kb : KC;
                const int8_t *src = wbuf;
                size_t stride = (size_t)kn * 32;
                if (!Q4 && nr == 16) {
                    src = (const int8_t *)W->data + (size_t)r * wrow + (size_t)kb * 32;
                    stride = wrow;
                } else {
                    panel_unpack(wbuf, W, r, nr, kb, kn, Q4);
                }
                panel_scales(wsf, W, r, nr, kb, kn);
                for (int g = g0; g < ge; g++) {
                    __m512 acc[16];
                    float *pp = part[g - g0];
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++) acc[i] = kb ? _mm512_load_ps(pp + 16 * i) : _mm512_setzero_ps();
                    const int8_t *bt = A->q + ((size_t)g * nb + kb) * 512;
                    const float *dt = A->d + ((size_t)g * nb + kb) * 16;
                    int b = 0;
                    for (; b + 2 <= kn; b += 2) {
                        TDP0(b);
                        if (b) {
                            _tile_stored(1, cbuf[1], 64);
                            block_sums(acc, cbuf[1], wsf + (b - 1) * 16, _mm512_loadu_ps(dt + (b - 1) * 16));
                        }
                        TDP1(b + 1);
                        _tile_stored(0, cbuf[0], 64);
                        block_sums(acc, cbuf[0], wsf + b * 16, _mm512_loadu_ps(dt + b * 16));
                    }
                    if (b < kn) TDP0(b);
                    if (b) {
                        _tile_stored(1, cbuf[1], 64);
                        block_sums(acc, cbuf[1], wsf + (b - 1) * 16, _mm512_loadu_ps(dt + (b - 1) * 16));
                    }
                    if (b < kn) {
                        _tile_stored(0, cbuf[0], 64);
                        block_sums(acc, cbuf[0], wsf + b * 16, _mm512_loadu_ps(dt + b * 16));
                    }
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++) _mm512_store_ps(pp + 16 * i, acc[i]);
                }
            }
            for (int g = g0; g < ge; g++) { /* part is [row][token]: Y wants [token][row] */
                const float *pp = part[g - g0];
                int nt = n - g * 16 < 16 ? n - g * 16 : 16;
                for (int t = 0; t < nt; t++) {
                    float *y = a->Y + (size_t)(g * 16 + t) * W->rows + r;
                    for (int i = 0; i < nr; i++) y[i] = pp[16 * i + t];
                }
            }
        }
    }
    _tile_release();
}

static void mm_bf16(const MMArgs *a, int r0, int r1)
{
    if (a->Xt) mm_tiles_bf16(a, r0, r1);
    else kern_ops_avx512.mm[DT_BF16](a, r0, r1);
}

static void mm_q8(const MMArgs *a, int r0, int r1)
{
    if (a->A && a->n >= KERN_TILE_MIN_N) mm_tiles_int8(a, r0, r1, 0);
    else kern_ops_avx512.mm[DT_Q8](a, r0, r1);
}

static void mm_q4(const MMArgs *a, int r0, int r1)
{
    if (a->A && a->n >= KERN_TILE_MIN_N) mm_tiles_int8(a, r0, r1, 1);
    else kern_ops_avx512.mm[DT_Q4](a, r0, r1);
}

/* ---- everything else as the AVX-512 backend ---- */

static void mm_f32(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[DT_F32](a, r0, r1); }
/* Q6, Q5, IQ4, IQ3: no tile kernels, the activations in AVX-512's layout */
static void mm_other(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[a->W->type](a, r0, r1); }
static void mm_f16(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[DT_F16](a, r0, r1); }
static void axpy_f16(float *y, float alpha, const uint16_t *h, int n) { kern_ops_avx512.axpy_f16(y, alpha, h, n); }
static void lora_b(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n)
{
    kern_ops_avx512.lora_b(u, ldu, B, j0, j1, t, n);
}
static void silu_mul(float *y, const float *g, const float *u, size_t n) { kern_ops_avx512.silu_mul(y, g, u, n); }
static int attn_f16(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K, const uint16_t *V,
                    size_t stride, int n)
{
    return kern_ops_avx512.attn_f16(acc, m, l, q, G, hd, K, V, stride, n);
}
static int attn_prefill_f16(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                            const uint16_t *V, size_t stride, const int *vis)
{
    return kern_ops_avx512.attn_prefill_f16(acc, m, l, Q, nq, hd, K, V, stride, vis);
}
static float read_sum(const float *p, size_t n) { return kern_ops_avx512.read_sum(p, n); }

#if defined(__clang__)
#pragma clang attribute pop
#endif

const KernOps kern_ops_amx = {
    .name = "amx",
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_q4, mm_other, mm_other, mm_other, mm_other, mm_other, mm_other, mm_other,
           mm_other},
    .act_quant = act_quant,
    .axpy_f16 = axpy_f16,
    .lora_b = lora_b,
    .lora8_a = lora8_a_avx512,
    .lora8_b = lora8_b_avx512,
    .attn_f16 = attn_f16,
    .attn_prefill_f16 = attn_prefill_f16,
    .silu_mul = silu_mul,
    .read_sum = read_sum,
    .tile_bytes = tile_bytes,
    .tile_pack = tile_pack,
};
