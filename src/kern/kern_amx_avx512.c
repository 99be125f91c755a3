/* kern_amx_avx512.c - the AMX backend: the AVX-512 backend, except that
 * products of KERN_TILE_MIN_N or more tokens (prefill) with BF16, Q8 or Q4
 * weights run on AMX-BF16 tiles: tdpbf16ps, bf16 x bf16 pairs summed in f32.
 *
 * Weights are the A operand, 16 rows x 32 columns per tile: BF16 straight
 * from the matrix; Q8 / Q4 dequantized (q x scale, exact in f32) into a
 * buffer as two bf16 tiles, hi + lo (the rest), which hold the product
 * exactly (Q4) or to 2^-17 (Q8); a chunk of columns of two 16-row panels at
 * a time, once for up to 256 tokens. Activations are the B operand, packed
 * once per product by tile_pack: with BF16 weights as hi + mid + lo, all 24
 * bits of each f32 (three tdpbf16ps per step), with Q8 / Q4 as hi only
 * (two per step): its rounding (at most 2^-8 relative) is within the int8
 * activation quantization the other backends use, half a step of
 * max|x_block| / 127. Only used after cpu_detect saw AMX and
 * cpu_amx_request succeeded. */
#include <immintrin.h>
#include <string.h>

#include "kern/kern_impl.h"

#pragma GCC target("amx-tile,amx-int8,amx-bf16")

#define INLINE static inline __attribute__((always_inline))

enum {
    KS = 32,        /* columns per tile step: 16 rows x 32 bf16 = 1 KiB */
    KCH = 16,       /* steps per chunk of weights: 2 panels x hi, lo x 16 KiB */
    TOKB = 256,     /* tokens per pass over the weights: partial sums 32 KiB */
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
static void tiles_config(void)
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

static int uses_tiles(DType wt, int n) { return n >= KERN_TILE_MIN_N && (wt == DT_BF16 || wt == DT_Q8 || wt == DT_Q4); }
/* Sets of B tiles: BF16 weights, the activations as hi + mid + lo (bf16 each,
 * together all 24 bits of an f32); Q8 / Q4, hi only. */
static int x_sets(DType wt) { return wt == DT_BF16 ? 3 : 1; }
static int steps_of(int cols) { return (cols + KS - 1) / KS; }

/* ---- activations ---- */

static size_t tile_bytes(DType wt, int n, int cols)
{
    if (!uses_tiles(wt, n)) return 0;
    return (size_t)kern_tile_groups(n) * steps_of(cols) * 1024 * x_sets(wt);
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
 * further sets (x_sets) follow all groups' first set, each holding what the
 * sets before it left out of x. */
static void tile_pack(void *dst, int g, const float *X, int n, int cols, const float *in_scale, DType wt)
{
    int steps = steps_of(cols), sets = x_sets(wt);
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

/* ---- weights ---- */

/* Panel rows r..r+nr-1 (nr <= 16, the rest zero), steps s0..s0+ns-1: tile
 * (step s0 + i) at hi + i KiB, 16 rows of 32 bf16 = q x scale rounded, and
 * at lo + i KiB what that rounding left out, rounded. */
static void dequant(uint16_t *hi, uint16_t *lo, const QMat *W, int r, int nr, int s0, int ns)
{
    int nb = kern_nblocks(W->cols), q4 = W->type == DT_Q4;
    size_t wrow = (size_t)nb * (q4 ? 16 : 32);
    for (int i = 0; i < 16; i++) {
        if (i >= nr) {
            for (int s = 0; s < ns; s++) {
                memset(hi + (size_t)s * 512 + i * 32, 0, 64);
                memset(lo + (size_t)s * 512 + i * 32, 0, 64);
            }
            continue;
        }
        const uint8_t *src = (const uint8_t *)W->data + (size_t)(r + i) * wrow;
        const uint16_t *sc = W->scales + (size_t)(r + i) * nb;
        for (int s = 0; s < ns; s++) {
            int b = s0 + s; /* a step is a block */
            __m512 scale = _mm512_set1_ps(_cvtsh_ss(sc[b]));
            __m512 f0, f1;
            if (q4) {
                __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(src + (size_t)b * 16)));
                __m512i eight = _mm512_set1_epi32(8);
                f0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, _mm512_set1_epi32(15)), eight));
                f1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
            } else {
                const __m128i *p = (const __m128i *)(src + (size_t)b * 32);
                f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p)));
                f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p + 1)));
            }
            f0 = _mm512_mul_ps(f0, scale);
            f1 = _mm512_mul_ps(f1, scale);
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(f1, f0);
            __m512 r0 = _mm512_sub_ps(f0, _mm512_cvtpbh_ps((__m256bh)_mm512_castsi512_si256(h)));
            __m512 r1 = _mm512_sub_ps(f1, _mm512_cvtpbh_ps((__m256bh)_mm512_extracti64x4_epi64(h, 1)));
            _mm512_storeu_si512(hi + (size_t)s * 512 + i * 32, h);
            _mm512_storeu_si512(lo + (size_t)s * 512 + i * 32, (__m512i)_mm512_cvtne2ps_pbh(r1, r0));
        }
    }
}

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

/* ---- the product ---- */

/* C (2 panels x 2 token groups) += A . B over steps [0, ns): A tiles at a0 /
 * a1 + s * astep with row stride astride, B tiles at b0 / b1 + s KiB. Then,
 * for each further set of B tiles (NB - 1 of them, every bx bytes on), A .
 * that set; or (NA = 2) A's second set (at + ax bytes) . B. */
INLINE void run_steps(const char *a0, const char *a1, size_t astep, size_t astride, const char *b0, const char *b1,
                      size_t bx, size_t ax, int ns, const int NA, const int NB)
{
    for (int s = 0; s < ns; s++) {
        _tile_loadd(4, a0 + s * astep, astride);
        _tile_loadd(5, a1 + s * astep, astride);
        for (int k = 0; k < NB; k++) {
            _tile_loadd(6, b0 + k * bx + (size_t)s * 1024, 64);
            _tile_loadd(7, b1 + k * bx + (size_t)s * 1024, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        if (NA == 2) {
            _tile_loadd(4, a0 + ax + s * astep, astride);
            _tile_loadd(5, a1 + ax + s * astep, astride);
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
static void mm_tiles(const MMArgs *a, int r0, int r1)
{
    const QMat *W = a->W;
    int n = a->n, cols = W->cols, steps = steps_of(cols), ngrp = kern_tile_groups(n);
    int xsets = x_sets(W->type);
    int direct = W->type == DT_BF16 && cols % KS == 0;
    size_t bx = (size_t)ngrp * steps * 1024; /* bytes from one set of B tiles to the next */
    _Alignas(64) uint16_t wbuf[2][2][KCH * 512]; /* [panel][hi, lo] */
    _Alignas(64) float part[TOKB / 32][4][256];
    const char *xt = a->Xt;
    tiles_config();
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
                        if (W->type == DT_BF16) copy_bf16(wbuf[p][0], W, rp, nrp, s0, ns);
                        else dequant(wbuf[p][0], wbuf[p][1], W, rp, nrp, s0, ns);
                    }
                    a0 = (const char *)wbuf[0][0];
                    a1 = (const char *)wbuf[1][0];
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
                    if (xsets == 3) run_steps(a0, a1, astep, astride, b0, b1, bx, 0, ns, 1, 3);
                    else run_steps(a0, a1, astep, astride, b0, b1, 0, sizeof wbuf[0][0], ns, 2, 1);
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

static void mm_bf16(const MMArgs *a, int r0, int r1)
{
    if (a->Xt) mm_tiles(a, r0, r1);
    else kern_ops_avx512.mm[DT_BF16](a, r0, r1);
}

static void mm_q8(const MMArgs *a, int r0, int r1)
{
    if (a->Xt) mm_tiles(a, r0, r1);
    else kern_ops_avx512.mm[DT_Q8](a, r0, r1);
}

static void mm_q4(const MMArgs *a, int r0, int r1)
{
    if (a->Xt) mm_tiles(a, r0, r1);
    else kern_ops_avx512.mm[DT_Q4](a, r0, r1);
}

/* ---- everything else as the AVX-512 backend ---- */

static void mm_f32(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[DT_F32](a, r0, r1); }
static void mm_f16(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[DT_F16](a, r0, r1); }
static void act_quant(ActQ *A, int t, const float *x, const float *in_scale, int cols, DType wt)
{
    kern_ops_avx512.act_quant(A, t, x, in_scale, cols, wt);
}
static float dot_f16(const uint16_t *h, const float *x, int n) { return kern_ops_avx512.dot_f16(h, x, n); }
static void axpy_f16(float *y, float alpha, const uint16_t *h, int n) { kern_ops_avx512.axpy_f16(y, alpha, h, n); }
static float read_sum(const float *p, size_t n) { return kern_ops_avx512.read_sum(p, n); }

const KernOps kern_ops_amx = {
    .name = "amx",
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_q4},
    .act_quant = act_quant,
    .dot_f16 = dot_f16,
    .axpy_f16 = axpy_f16,
    .read_sum = read_sum,
    .tile_bytes = tile_bytes,
    .tile_pack = tile_pack,
};
