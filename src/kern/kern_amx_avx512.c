/* kern_amx_avx512.c - the AMX backend: the AVX-512 backend, except that
 * products of Q8/Q4 weights with KERN_TILE_MIN_N or more tokens (prefill)
 * run on AMX tiles. Per block of 32 columns, tdpbssd multiplies 16 weight
 * rows (int8: Q8 as stored, Q4 nibbles unpacked to nibble - 8) by the block
 * of 16 tokens' int8 activations into 16 x 16 int32, which the vector units
 * scale by weight scale x activation scale and add up in float. Only used
 * after cpu_detect saw AMX and cpu_amx_request succeeded. */
#include <immintrin.h>
#include <string.h>

#include "kern/kern_impl.h"

#pragma GCC target("amx-tile,amx-int8,amx-bf16")

#define INLINE static inline __attribute__((always_inline))

/* The LDTILECFG operand (palette 1). */
typedef struct TileCfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];   /* bytes per row of tmm0..15 */
    uint8_t rows[16];
} TileCfg;

/* tmm0, tmm1: C, 16 weight rows x 16 tokens of int32, two so that one
 * block's tdpbssd overlaps the float work on the previous block's;
 * tmm2 / tmm4: A, 16 weight rows x 32 int8 (one block), for tmm0 / tmm1;
 * tmm3 / tmm5: B, the block's int8 activations of 16 tokens in the VNNI
 * order (8 rows: 4 consecutive columns x 16 tokens). */
static void tiles_int8(void)
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

/* ---- activations: int8 in the B-tile order ---- */

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
    if (A->n >= KERN_TILE_MIN_N) act_quant_tiles(A, t, x, in_scale, cols);
    else kern_ops_avx512.act_quant(A, t, x, in_scale, cols, wt);
}

/* ---- Q8 / Q4 weights on tiles ---- */

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

/* ws[b * 16 + i] = scale of row r + i, block kb + b (0 for rows >= nr). */
static void panel_scales(float *ws, const QMat *W, int r, int nr, int kb, int kn)
{
    int nb = kern_nblocks(W->cols);
    for (int i = 0; i < 16; i++) {
        const uint16_t *s = W->scales + (size_t)(r + i) * nb + kb;
        for (int b = 0; b < kn; b++) ws[b * 16 + i] = i < nr ? _cvtsh_ss(s[b]) : 0.0f;
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
static void mm_tiles(const MMArgs *a, int r0, int r1, const int Q4)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    int n = a->n, nb = A->nb, ntg = (n + 15) / 16;
    size_t wrow = (size_t)nb * (Q4 ? 16 : 32);
    _Alignas(64) int8_t wbuf[16 * KC * 32];
    _Alignas(64) int32_t cbuf[2][256];
    _Alignas(64) float wsf[KC * 16];
    _Alignas(64) float part[TG][256];
    tiles_int8();
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

static void mm_q8(const MMArgs *a, int r0, int r1)
{
    if (a->n >= KERN_TILE_MIN_N) mm_tiles(a, r0, r1, 0);
    else kern_ops_avx512.mm[DT_Q8](a, r0, r1);
}

static void mm_q4(const MMArgs *a, int r0, int r1)
{
    if (a->n >= KERN_TILE_MIN_N) mm_tiles(a, r0, r1, 1);
    else kern_ops_avx512.mm[DT_Q4](a, r0, r1);
}

/* ---- everything else as the AVX-512 backend ---- */

static void mm_f32(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[DT_F32](a, r0, r1); }
static void mm_f16(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[DT_F16](a, r0, r1); }
static void mm_bf16(const MMArgs *a, int r0, int r1) { kern_ops_avx512.mm[DT_BF16](a, r0, r1); }
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
};
