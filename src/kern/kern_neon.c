/* kern_neon.c - aarch64 NEON + dot-product backend (Cortex-A76 / Raspberry Pi
 * 5). Float weights: converted to f32 in registers (f16 by fcvtl, bf16 by a
 * 16-bit shift) and FMA'd in tiles of rows x tokens. Q8/Q4 weights: SDOT
 * (s8 x s8 -> s32) per 32-block against int8 activations; Q4/Q6/Q5 levels
 * are re-centred first and IQ4/IQ3 looked up in their grid (tbl), so no
 * offset term is needed. Only called after
 * cpu_detect saw asimddp. */
#include <math.h>
#include <string.h>

#include "kern/neon.h"
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
    if (t == DT_F16) {
        __fp16 v;
        memcpy(&v, &h, 2);
        return (float)v;
    }
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

INLINE void ftile(const MMArgs *a, int r, int t, const int NR, const int NT, const DType T)
{
    const QMat *W = a->W;
    int cols = W->cols;
    float32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) acc[i][j] = vdupq_n_f32(0);
    const float *x0 = a->X + (size_t)t * cols;
    int c = 0;
    for (; c + 4 <= cols; c += 4) {
        float32x4_t w[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) w[i] = load_w4(W->data, (size_t)(r + i) * cols + c, T);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            float32x4_t x = vld1q_f32(x0 + (size_t)j * cols + c);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) acc[i][j] = vfmaq_f32(acc[i][j], w[i], x);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            float y = vaddvq_f32(acc[i][j]);
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
            for (; t + 4 <= te; t += 4) ftile(a, r, t, 4, 4, T);
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

/* 32 elements' 2-bit fields (8 bytes at p: byte i, bits 2k..2k+1 = element
 * 8k+i) as two u8 vectors (elements 0..15, 16..31) of 0..3. */
INLINE void load_2bit(uint8x16_t *h0, uint8x16_t *h1, const uint8_t *p)
{
    uint8x8_t v = vld1_u8(p);
    uint64x2_t x = vreinterpretq_u64_u8(vcombine_u8(v, v));
    const int64_t s01[2] = {0, -2}, s23[2] = {-4, -6};
    uint8x16_t three = vdupq_n_u8(3);
    *h0 = vandq_u8(vreinterpretq_u8_u64(vshlq_u64(x, vld1q_s64(s01))), three);
    *h1 = vandq_u8(vreinterpretq_u8_u64(vshlq_u64(x, vld1q_s64(s23))), three);
}

/* 32 elements' 1-bit fields (little-endian u32 at p) as two u8 vectors of
 * 0 / `one`. */
INLINE void load_1bit(uint8x16_t *h0, uint8x16_t *h1, const uint8_t *p, uint8_t one)
{
    uint8x16_t v = vreinterpretq_u8_u32(vdupq_n_u32((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                                    (uint32_t)p[3] << 24));
    static const uint8_t i0[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t i1[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint8x16_t bits = vld1q_u8(bit), o = vdupq_n_u8(one);
    *h0 = vandq_u8(vtstq_u8(vqtbl1q_u8(v, vld1q_u8(i0)), bits), o);
    *h1 = vandq_u8(vtstq_u8(vqtbl1q_u8(v, vld1q_u8(i1)), bits), o);
}

/* Block b of a weight row (nb blocks, planes of qblock.h) as two s8
 * vectors of values (elements 0..15, 16..31): levels re-centred by their
 * offset, or looked up in the grid (tbl). */
INLINE void load_wblock(int8x16_t *w0, int8x16_t *w1, const uint8_t *row, int nb, int b, const DType F, int8x16_t tbl)
{
    if (F == DT_Q8) {
        *w0 = vld1q_s8((const int8_t *)row + (size_t)b * 32);
        *w1 = vld1q_s8((const int8_t *)row + (size_t)b * 32 + 16);
        return;
    }
    uint8x16_t l0, l1, h0, h1;
    if (F == DT_IQ3) {
        load_2bit(&l0, &l1, row + (size_t)b * 8);
        load_1bit(&h0, &h1, row + (size_t)nb * 8 + (size_t)b * 4, 4);
        *w0 = vqtbl1q_s8(tbl, vorrq_u8(l0, h0));
        *w1 = vqtbl1q_s8(tbl, vorrq_u8(l1, h1));
        return;
    }
    uint8x16_t x = vld1q_u8(row + (size_t)b * 16);
    l0 = vandq_u8(x, vdupq_n_u8(0x0F));
    l1 = vshrq_n_u8(x, 4);
    if (F == DT_IQ4) {
        *w0 = vqtbl1q_s8(tbl, l0);
        *w1 = vqtbl1q_s8(tbl, l1);
        return;
    }
    if (F == DT_Q6) {
        load_2bit(&h0, &h1, row + (size_t)nb * 16 + (size_t)b * 8);
        l0 = vorrq_u8(l0, vshlq_n_u8(h0, 4));
        l1 = vorrq_u8(l1, vshlq_n_u8(h1, 4));
    } else if (F == DT_Q5) {
        load_1bit(&h0, &h1, row + (size_t)nb * 16 + (size_t)b * 4, 16);
        l0 = vorrq_u8(l0, h0);
        l1 = vorrq_u8(l1, h1);
    }
    int8x16_t k = vdupq_n_s8((int8_t)qb_offset(F));
    *w0 = vsubq_s8(vreinterpretq_s8_u8(l0), k);
    *w1 = vsubq_s8(vreinterpretq_s8_u8(l1), k);
}

/* A grid (IQ4 16 / IQ3 8 entries, zeros after) for vqtbl1q. */
INLINE int8x16_t grid_table(DType F)
{
    int8_t t[16] = {0};
    for (int i = 0; i < (F == DT_IQ4 ? 16 : 8); i++) t[i] = F == DT_IQ4 ? kern_grid_iq4[i] : kern_grid_iq3[i];
    return vld1q_s8(t);
}

INLINE float f16_scale(const uint16_t *s, size_t i)
{
    __fp16 v;
    memcpy(&v, s + i, 2);
    return (float)v;
}

/* Y for rows r..r+NR-1, tokens t..t+NT-1. Per group of 4 blocks the
 * combined scales dw * d are formed 4 at a time (fcvtl + fmul), then each
 * block's SDOT result is scaled by one of them. */
/* The 4 f32 block scales of one half (0: blocks 0-3, 1: blocks 4-7) of the
 * super-block at sb (kern.h): bits 24 * half .. of its 48-bit field, shifted
 * per lane and sign-extended from 6 bits; D * k is exact in f32 and rounds
 * to f16 as qb_super_scale does. */
INLINE float32x4_t super4(const uint16_t *sb, int half)
{
    static const int32_t shv[4] = {0, -6, -12, -18};
    uint64_t v;
    memcpy(&v, sb, 8);
    int32x4_t k = vreinterpretq_s32_u32(vshlq_u32(vdupq_n_u32((uint32_t)(v >> (16 + 24 * half))), vld1q_s32(shv)));
    k = vshrq_n_s32(vshlq_n_s32(k, 26), 26);
    float32x4_t f = vmulq_n_f32(vcvtq_f32_s32(k), f16_scale(sb, 0));
    return vcvt_f32_f16(vcvt_f16_f32(f));
}

INLINE void qtile(const MMArgs *a, int r, int t, const int NR, const int NT, const DType FS)
{
    const QMat *W = a->W;
    const ActQ *A = a->A;
    const DType F = dtype_base(FS); /* the levels' type; FS a super-block type: scales per 8 blocks */
    const int S = dtype_is_super(FS);
    int nb = A->nb, ng = nb / 4;
    const size_t sw = S ? qb_scale_words(FS, nb) : (size_t)nb; /* scale words per row */
    size_t wrow = (size_t)nb * qb_bytes(F);
    const uint8_t *wd = (const uint8_t *)W->data;
    const int8x16_t tbl = F == DT_IQ4 || F == DT_IQ3 ? grid_table(F) : vdupq_n_s8(0);
    float32x4_t acc[4][4];
    float sc[4][4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) acc[i][j] = vdupq_n_f32(0);
    for (int g = 0; g <= ng; g++) {
        int b0 = 4 * g, nk = g < ng ? 4 : nb - 4 * ng;
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const uint16_t *ws = W->scales + (size_t)(r + i) * sw + (S ? (size_t)b0 / QSUPER * QSUPER_WORDS : (size_t)b0);
            if (nk == 4) {
                float32x4_t s4 = S ? super4(ws, g & 1) : vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(ws)));
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++)
                    vst1q_f32(sc[i][j], vmulq_f32(s4, vld1q_f32(A->d + (size_t)(t + j) * nb + b0)));
            } else {
                for (int j = 0; j < NT; j++)
                    for (int k = 0; k < nk; k++) {
                        uint16_t h = qb_block_scale(FS, W->scales + (size_t)(r + i) * sw, b0 + k);
                        sc[i][j][k] = f16_scale(&h, 0) * A->d[(size_t)(t + j) * nb + b0 + k];
                    }
            }
        }
        for (int k = 0; k < nk; k++) {
            int b = b0 + k;
            int8x16_t w0[4], w1[4];
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) load_wblock(&w0[i], &w1[i], wd + (size_t)(r + i) * wrow, nb, b, F, tbl);
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) {
                const int8_t *q = A->q + ((size_t)(t + j) * nb + b) * 32;
                int8x16_t a0 = vld1q_s8(q), a1 = vld1q_s8(q + 16);
#pragma GCC unroll 4
                for (int i = 0; i < NR; i++) {
                    int32x4_t s = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0[i], a0), w1[i], a1);
                    acc[i][j] = vfmaq_n_f32(acc[i][j], vcvtq_f32_s32(s), sc[i][j][k]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) a->Y[(size_t)(t + j) * W->rows + r + i] = vaddvq_f32(acc[i][j]);
}

INLINE void mm_quant(const MMArgs *a, int r0, int r1, const DType F)
{
    enum { TB = 64 };
    for (int tb = 0; tb < a->n; tb += TB) {
        int te = tb + TB < a->n ? tb + TB : a->n;
        int r = r0;
        if (te - tb >= 4) {
            for (; r + 2 <= r1; r += 2) {
                int t = tb;
                for (; t + 4 <= te; t += 4) qtile(a, r, t, 2, 4, F);
                for (; t < te; t++) qtile(a, r, t, 2, 1, F);
            }
        } else if (te - tb == 1) {
            for (; r + 4 <= r1; r += 4) qtile(a, r, tb, 4, 1, F);
        } else { /* 2 or 3 sessions decoding together: each weight block loaded once for all */
            for (; r + 2 <= r1; r += 2) {
                if (te - tb == 2) qtile(a, r, tb, 2, 2, F);
                else qtile(a, r, tb, 2, 3, F);
            }
        }
        for (; r < r1; r++)
            for (int t = tb; t < te; t++) qtile(a, r, t, 1, 1, F);
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
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), load_w4(h, (size_t)i, DT_F16), alpha));
    for (; i < n; i++) y[i] += alpha * load_w1(h, (size_t)i, DT_F16);
}

static float read_sum(const float *p, size_t n)
{
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vaddq_f32(s0, vld1q_f32(p + i));
        s1 = vaddq_f32(s1, vld1q_f32(p + i + 4));
        s2 = vaddq_f32(s2, vld1q_f32(p + i + 8));
        s3 = vaddq_f32(s3, vld1q_f32(p + i + 12));
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; i < n; i++) s += p[i];
    return s;
}

/* kern_impl.h's lora_b: 4 rows at a time, 4 columns per step, the 4 rows'
 * sums by pairwise adds; the rank's last r % 4 columns and the rows past
 * the last 4 in plain C. */
INLINE void lora_b_t(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n, const DType T)
{
    int r = B->cols, kv = r & ~3, j = j0;
    for (; j + 4 <= j1; j += 4)
        for (int i = 0; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            float32x4_t v0 = vdupq_n_f32(0), v1 = v0, v2 = v0, v3 = v0;
            for (int c = 0; c < kv; c += 4) {
                float32x4_t tv = vld1q_f32(ti + c);
                v0 = vfmaq_f32(v0, load_w4(B->data, (size_t)j * r + c, T), tv);
                v1 = vfmaq_f32(v1, load_w4(B->data, (size_t)(j + 1) * r + c, T), tv);
                v2 = vfmaq_f32(v2, load_w4(B->data, (size_t)(j + 2) * r + c, T), tv);
                v3 = vfmaq_f32(v3, load_w4(B->data, (size_t)(j + 3) * r + c, T), tv);
            }
            float32x4_t s = vpaddq_f32(vpaddq_f32(v0, v1), vpaddq_f32(v2, v3));
            if (kv < r) {
                float tail[4];
                for (int jj = 0; jj < 4; jj++) {
                    float x = 0;
                    for (int c = kv; c < r; c++) x += load_w1(B->data, (size_t)(j + jj) * r + c, T) * ti[c];
                    tail[jj] = x;
                }
                s = vaddq_f32(s, vld1q_f32(tail));
            }
            vst1q_f32(u + (size_t)i * ldu + (j - j0), s);
        }
    for (; j < j1; j++)
        for (int i = 0; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            float32x4_t v = vdupq_n_f32(0);
            for (int c = 0; c < kv; c += 4) v = vfmaq_f32(v, load_w4(B->data, (size_t)j * r + c, T), vld1q_f32(ti + c));
            float x = vaddvq_f32(v), tail = 0;
            for (int c = kv; c < r; c++) tail += load_w1(B->data, (size_t)j * r + c, T) * ti[c];
            u[(size_t)i * ldu + (j - j0)] = x + tail;
        }
}

/* kern_impl.h's lora_b for a batch (n >= LORA_B_BATCH), as kern_avx512.c's
 * with blocks of 4 rows: the block's rows converted into tmp (zero past the
 * rank), transposed 4 columns at a time into bt (bt[k] = column k), then
 * each token's 4 sums in rank order (fused multiply-adds), 4 tokens at a
 * time; the rows past the last 4 in the same order with fmaf. */
INLINE void lora_bn_t(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n, const DType T)
{
    int r = B->cols, kv = r & ~3, r4 = (r + 3) & ~3, j = j0;
    float tmp[4][KERN_LORA_MAX_RANK];
    float32x4_t bt[KERN_LORA_MAX_RANK];
    for (; j + 4 <= j1; j += 4) {
        for (int jj = 0; jj < 4; jj++) {
            for (int c = 0; c < kv; c += 4) vst1q_f32(&tmp[jj][c], load_w4(B->data, (size_t)(j + jj) * r + c, T));
            for (int c = kv; c < r4; c++) tmp[jj][c] = c < r ? load_w1(B->data, (size_t)(j + jj) * r + c, T) : 0;
        }
        for (int c = 0; c < r4; c += 4) {
            float32x4_t a0 = vtrn1q_f32(vld1q_f32(&tmp[0][c]), vld1q_f32(&tmp[1][c]));
            float32x4_t a1 = vtrn2q_f32(vld1q_f32(&tmp[0][c]), vld1q_f32(&tmp[1][c]));
            float32x4_t a2 = vtrn1q_f32(vld1q_f32(&tmp[2][c]), vld1q_f32(&tmp[3][c]));
            float32x4_t a3 = vtrn2q_f32(vld1q_f32(&tmp[2][c]), vld1q_f32(&tmp[3][c]));
            float64x2_t d0 = vreinterpretq_f64_f32(a0), d1 = vreinterpretq_f64_f32(a1);
            float64x2_t d2 = vreinterpretq_f64_f32(a2), d3 = vreinterpretq_f64_f32(a3);
            bt[c] = vreinterpretq_f32_f64(vtrn1q_f64(d0, d2));
            bt[c + 1] = vreinterpretq_f32_f64(vtrn1q_f64(d1, d3));
            bt[c + 2] = vreinterpretq_f32_f64(vtrn2q_f64(d0, d2));
            bt[c + 3] = vreinterpretq_f32_f64(vtrn2q_f64(d1, d3));
        }
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            const float *t0 = t + (size_t)i * r;
            float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < r; k++) {
                a0 = vfmaq_n_f32(a0, bt[k], t0[k]);
                a1 = vfmaq_n_f32(a1, bt[k], t0[r + k]);
                a2 = vfmaq_n_f32(a2, bt[k], t0[2 * r + k]);
                a3 = vfmaq_n_f32(a3, bt[k], t0[3 * r + k]);
            }
            float *ui = u + (size_t)i * ldu + (j - j0);
            vst1q_f32(ui, a0);
            vst1q_f32(ui + ldu, a1);
            vst1q_f32(ui + 2 * (size_t)ldu, a2);
            vst1q_f32(ui + 3 * (size_t)ldu, a3);
        }
        for (; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            float32x4_t a0 = vdupq_n_f32(0);
            for (int k = 0; k < r; k++) a0 = vfmaq_n_f32(a0, bt[k], ti[k]);
            vst1q_f32(u + (size_t)i * ldu + (j - j0), a0);
        }
    }
    for (; j < j1; j++)
        for (int i = 0; i < n; i++) {
            const float *ti = t + (size_t)i * r;
            float x = 0;
            for (int k = 0; k < r; k++) x = fmaf(load_w1(B->data, (size_t)j * r + k, T), ti[k], x);
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

const KernOps kern_ops_neon = {
    .name = "neon",
    .mm = {mm_f32, mm_f16, mm_bf16, mm_q8, mm_q4, mm_q6, mm_q5, mm_iq4, mm_iq3, mm_q6k, mm_q5k, mm_iq4k, mm_iq3k},
    .act_layout = NULL,
    .axpy_f16 = axpy_f16,
    .lora_b = lora_b,
    .lora8_a = lora8_a_neon,
    .lora8_b = lora8_b_neon,
    .attn_f16 = attn_f16_neon,
    .attn_prefill_f16 = attn_prefill_f16_neon,
    .silu_mul = silu_mul_neon,
    .read_sum = read_sum,
};
