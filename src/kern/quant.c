/* quant.c - see quant.h. Scalar and simple: it runs once, at compile time. */
#include "kern/quant.h"

#include <math.h>
#include <string.h>

#include "kern/qblock.h"
#include "util/half.h"

static int nblocks(int cols) { return (cols + QBLOCK - 1) / QBLOCK; }

/* Copies block b of x (zero-padded) into v; returns max |v|. */
static float block_load(float v[QBLOCK], const float *x, int cols, int b)
{
    float amax = 0;
    for (int i = 0; i < QBLOCK; i++) {
        int j = b * QBLOCK + i;
        v[i] = j < cols ? x[j] : 0.0f;
        if (fabsf(v[i]) > amax) amax = fabsf(v[i]);
    }
    return amax;
}

void quant_row_q8(int8_t *q, uint16_t *scales, const float *x, int cols)
{
    for (int b = 0; b < nblocks(cols); b++) {
        float v[QBLOCK];
        float amax = block_load(v, x, cols, b);
        uint16_t h = f32_to_f16(amax / 127.0f);
        float d = f16_to_f32(h), inv = d > 0 ? 1.0f / d : 0.0f;
        for (int i = 0; i < QBLOCK; i++) {
            long qi = lrintf(v[i] * inv);
            q[b * QBLOCK + i] = (int8_t)(qi > 127 ? 127 : qi < -127 ? -127 : qi);
        }
        scales[b] = h;
    }
}

static int q4_level(float v, float inv)
{
    long n = lrintf(v * inv) + 8;
    return n < 0 ? 0 : n > 15 ? 15 : (int)n;
}

void quant_row_q4_weighted(uint8_t *q, uint16_t *scales, const float *x, int cols,
                           const float *importance)
{
    for (int b = 0; b < nblocks(cols); b++) {
        float v[QBLOCK], imp[QBLOCK], big = 0;
        float amax = block_load(v, x, cols, b);
        for (int i = 0; i < QBLOCK; i++) {
            int j = b * QBLOCK + i;
            imp[i] = importance && j < cols ? importance[j] : 1.0f;
            if (fabsf(v[i]) == amax) big = v[i];
        }
        uint16_t best_h = 0;
        double best_err = INFINITY;
        /* the largest element lands on level +7 (d = big / s) or -8
         * (d = -big / s') for s over a grid; f16 rounding of d included */
        for (int k = 0; k <= 16 && amax > 0; k++) {
            float s = 6.0f + 0.125f * (float)k;
            for (int sign = 0; sign < 2; sign++) {
                float d = sign ? -big / s : big / s;
                if (!(d > 0)) d = -d;
                uint16_t h = f32_to_f16(d);
                float dq = f16_to_f32(h), inv = dq > 0 ? 1.0f / dq : 0.0f;
                double err = 0;
                for (int i = 0; i < QBLOCK; i++) {
                    float e = v[i] - (float)(q4_level(v[i], inv) - 8) * dq;
                    err += (double)imp[i] * e * e;
                }
                if (err < best_err) {
                    best_err = err;
                    best_h = h;
                }
            }
        }
        float dq = f16_to_f32(best_h), inv = dq > 0 ? 1.0f / dq : 0.0f;
        for (int i = 0; i < 16; i++) {
            int lo = q4_level(v[i], inv), hi = q4_level(v[16 + i], inv);
            q[b * 16 + i] = (uint8_t)(lo | hi << 4);
        }
        scales[b] = best_h;
    }
}

void quant_row_q4(uint8_t *q, uint16_t *scales, const float *x, int cols)
{
    quant_row_q4_weighted(q, scales, x, cols, NULL);
}

int quant_nlevels(DType t)
{
    switch (dtype_base(t)) {
    case DT_Q8: return 255;
    case DT_Q4:
    case DT_IQ4: return 16;
    case DT_Q6: return 64;
    case DT_Q5: return 32;
    case DT_IQ3: return 8;
    default: return 0;
    }
}

int quant_level_value(DType t, int l) { return t == DT_Q8 ? l - 127 : qb_value(t, l); }

/* The midpoints between consecutive grid values (kern_ref.c's grids). */
static const float MID_IQ4[15] = {-115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f,
                                  7.0f,    19.0f,  31.5f,  45.5f,  61.0f,  79.0f,  101.0f};
static const float MID_IQ3[7] = {-103.5f, -63.0f, -30.5f, 0.0f, 30.5f, 63.0f, 103.5f};

/* BELOW_x[i + 128]: the number of midpoints of grid x below i, for i =
 * -128 .. 127 (generated from the midpoints above). A value v in [i, i+1)
 * is past those and past at most one more (midpoints are more than 1
 * apart), which one comparison settles. */
static const int8_t BELOW_IQ4[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8,
    8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10,
    11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13,
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14,
    14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
};
static const int8_t BELOW_IQ3[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
};

static inline int nearest_grid(const int8_t *below, const float *mid, int n, float v)
{
    if (!(v >= -128.0f)) return 0; /* and NaN */
    if (v >= 128.0f) return n;
    int i = (int)(v + 128.0f); /* v + 128 >= 0: truncation is floor, but the sum may round up */
    int c = below[i < 255 ? i : 255];
    return c + (c < n && v > mid[c]);
}

/* quant_nearest for a base type (the compile's inner loop). */
static inline int nearest(DType t, float v)
{
    if (t == DT_IQ4) return nearest_grid(BELOW_IQ4, MID_IQ4, 15, v); /* ties go down */
    if (t == DT_IQ3) return nearest_grid(BELOW_IQ3, MID_IQ3, 7, v);
    int n = t == DT_Q8 ? 255 : t == DT_Q6 ? 64 : t == DT_Q5 ? 32 : 16;
    long l = lrintf(v) + (t == DT_Q8 ? 127 : qb_offset(t));
    return l < 0 ? 0 : l >= n ? n - 1 : (int)l;
}

int quant_nearest(DType t, float v) { return nearest(dtype_base(t), v); }

/* Weighted squared error of block x at f16 scale h; the levels into lv
 * (may be NULL). */
static double block_err(DType t, const float *x, const float *imp, int n, uint16_t h, int *lv)
{
    float d = f16_to_f32(h), inv = d != 0 ? 1.0f / d : 0.0f;
    double err = 0;
    t = dtype_base(t);
    const int8_t *grid = t == DT_IQ4 ? kern_grid_iq4 : t == DT_IQ3 ? kern_grid_iq3 : NULL;
    int off = t == DT_Q8 ? 127 : grid ? 0 : qb_offset(t);
    for (int i = 0; i < n; i++) {
        int l = nearest(t, x[i] * inv);
        float e = x[i] - (float)(grid ? grid[l] : l - off) * d;
        err += (double)(imp ? imp[i] : 1.0f) * e * e;
        if (lv) lv[i] = l;
    }
    return err;
}

enum { SCALE_STEPS = 8 }; /* candidates 1 +- k/64 times an extreme-value scale */

uint16_t quant_block_scale(DType t, const float *x, const float *imp, int n)
{
    t = dtype_base(t);
    float amax = 0, big = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), big = x[i];
    if (!(amax > 0)) return 0;
    int nl = quant_nlevels(t);
    float gmin = (float)quant_level_value(t, 0), gmax = (float)quant_level_value(t, nl - 1);
    /* the largest element on the end level of its sign (d > 0) or, the
     * grid mirrored by a negative scale, on the other end (d < 0: an
     * asymmetric grid fits a block either way round); then smaller and
     * larger steps around each (clipping it a little may fit the rest
     * better) */
    float d0[2] = {big > 0 ? big / gmax : big / gmin, big > 0 ? big / gmin : big / gmax};
    uint16_t best = f32_to_f16(d0[0]);
    int lv[QBLOCK], blv[QBLOCK];
    double best_err = block_err(t, x, imp, n, best, blv);
    for (int sgn = 0; sgn < (t == DT_Q8 ? 1 : 2); sgn++)
        for (int k = -SCALE_STEPS; k <= SCALE_STEPS; k++) {
            if (!k && !sgn) continue;
            uint16_t h = f32_to_f16(d0[sgn] * (1.0f + (float)k / 64.0f));
            double err = block_err(t, x, imp, n, h, lv);
            if (err < best_err) best_err = err, best = h, memcpy(blv, lv, sizeof lv);
        }
    /* least squares on the best rounding, twice: d = sum w x v / sum w v^2 */
    for (int it = 0; it < 2; it++) {
        double num = 0, den = 0;
        for (int i = 0; i < n; i++) {
            double w = imp ? imp[i] : 1.0, v = quant_level_value(t, blv[i]);
            num += w * x[i] * v, den += w * v * v;
        }
        if (!(den > 0) || num == 0) break;
        uint16_t h = f32_to_f16((float)(num / den));
        double err = block_err(t, x, imp, n, h, lv);
        if (!(err < best_err)) break;
        best_err = err, best = h, memcpy(blv, lv, sizeof lv);
    }
    return best;
}

void quant_block_pack(DType t, void *row, int cols, int b, const int lv[32])
{
    t = dtype_base(t);
    int nb = nblocks(cols);
    uint8_t *r = row;
    if (t == DT_Q8) {
        for (int e = 0; e < 32; e++) ((int8_t *)r)[(size_t)b * 32 + e] = (int8_t)(lv[e] - 127);
        return;
    }
    if (t == DT_IQ3) {
        uint8_t *p0 = r + (size_t)b * 8, *p1 = r + (size_t)nb * 8 + (size_t)b * 4;
        memset(p0, 0, 8), memset(p1, 0, 4);
        for (int e = 0; e < 32; e++) {
            p0[e & 7] |= (uint8_t)((lv[e] & 3) << (2 * (e >> 3)));
            p1[e >> 3] |= (uint8_t)((lv[e] >> 2 & 1) << (e & 7));
        }
        return;
    }
    uint8_t *nib = r + (size_t)b * 16;
    for (int i = 0; i < 16; i++) nib[i] = (uint8_t)((lv[i] & 15) | (lv[16 + i] & 15) << 4);
    if (t == DT_Q6) {
        uint8_t *p1 = r + (size_t)nb * 16 + (size_t)b * 8;
        memset(p1, 0, 8);
        for (int e = 0; e < 32; e++) p1[e & 7] |= (uint8_t)((lv[e] >> 4 & 3) << (2 * (e >> 3)));
    } else if (t == DT_Q5) {
        uint8_t *p1 = r + (size_t)nb * 16 + (size_t)b * 4;
        memset(p1, 0, 4);
        for (int e = 0; e < 32; e++) p1[e >> 3] |= (uint8_t)((lv[e] >> 4 & 1) << (e & 7));
    }
}

void quant_super_fit(DType bt, const float *x, const float *imp, int ncols, const uint16_t *h0, int nblk, int search,
                     uint16_t out[4], uint16_t *h)
{
    float s[QSUPER], amax = 0, big = 0;
    for (int b = 0; b < nblk; b++) {
        s[b] = f16_to_f32(h0[b]);
        if (fabsf(s[b]) > amax) amax = fabsf(s[b]), big = s[b];
    }
    memset(out, 0, 4 * sizeof *out);
    memset(h, 0, (size_t)nblk * sizeof *h);
    if (!(amax > 0)) return;
    float D0 = big > 0 ? big / 31.0f : -big / 32.0f;
    double best = INFINITY;
    for (int c = search ? -2 : 0; c <= (search ? 2 : 0); c++) {
        uint16_t Dh = f32_to_f16(D0 * (1.0f + (float)c / 64.0f));
        float Df = f16_to_f32(Dh);
        if (!(Df > 0)) continue;
        int k[QSUPER];
        uint16_t hk[QSUPER];
        double tot = 0;
        for (int b = 0; b < nblk; b++) {
            int j0 = b * QBLOCK, n = ncols - j0 < QBLOCK ? ncols - j0 : QBLOCK;
            float r = s[b] / Df;
            int lo = search ? (int)floorf(r) : (int)lrintf(r), hi = search ? lo + 1 : lo;
            double be = INFINITY;
            for (int kk = lo; kk <= hi; kk++) {
                int kc = kk < -32 ? -32 : kk > 31 ? 31 : kk;
                uint16_t hh = qb_super_scale(Dh, kc);
                double e = search ? block_err(bt, x + j0, imp ? imp + j0 : NULL, n, hh, NULL) : 0;
                if (e < be) be = e, k[b] = kc, hk[b] = hh;
            }
            tot += be;
        }
        if (tot < best) {
            best = tot;
            uint64_t v = 0;
            for (int b = 0; b < nblk; b++) v |= (uint64_t)(k[b] & 63) << (6 * b);
            out[0] = Dh, out[1] = (uint16_t)v, out[2] = (uint16_t)(v >> 16), out[3] = (uint16_t)(v >> 32);
            memcpy(h, hk, (size_t)nblk * sizeof *h);
        }
    }
}

void quant_row(DType t, void *row, uint16_t *scales, const float *x, int cols, const float *imp)
{
    DType bt = dtype_base(t);
    int zero = quant_nearest(bt, 0.0f), nb = nblocks(cols), step = dtype_is_super(t) ? QSUPER : 1;
    for (int s0 = 0; s0 < nb; s0 += step) {
        int nblk = nb - s0 < step ? nb - s0 : step;
        uint16_t h0[QSUPER], h[QSUPER];
        for (int i = 0; i < nblk; i++) {
            int j0 = (s0 + i) * QBLOCK, n = cols - j0 < QBLOCK ? cols - j0 : QBLOCK;
            h0[i] = quant_block_scale(bt, x + j0, imp ? imp + j0 : NULL, n);
        }
        if (dtype_is_super(t))
            quant_super_fit(bt, x + s0 * QBLOCK, imp ? imp + s0 * QBLOCK : NULL, cols - s0 * QBLOCK, h0, nblk, 1,
                            scales + (size_t)s0 / QSUPER * QSUPER_WORDS, h);
        else
            scales[s0] = h[0] = h0[0];
        for (int i = 0; i < nblk; i++) {
            int b = s0 + i, j0 = b * QBLOCK, n = cols - j0 < QBLOCK ? cols - j0 : QBLOCK, lv[QBLOCK];
            float d = f16_to_f32(h[i]), inv = d != 0 ? 1.0f / d : 0.0f;
            for (int e = 0; e < QBLOCK; e++) lv[e] = e < n ? quant_nearest(bt, x[j0 + e] * inv) : zero;
            quant_block_pack(bt, row, cols, b, lv);
        }
    }
}

void quant_f32_to_f16(uint16_t *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = f32_to_f16(in[i]);
}

void quant_f32_to_bf16(uint16_t *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = f32_to_bf16(in[i]);
}

int quant_matrix(DType t, void *data, uint16_t *scales, const float *w, int rows, int cols)
{
    size_t n = (size_t)rows * cols, nb = (size_t)nblocks(cols);
    switch (t) {
    case DT_F32: memcpy(data, w, n * sizeof(float)); return 0;
    case DT_F16: quant_f32_to_f16(data, w, n); return 0;
    case DT_BF16: quant_f32_to_bf16(data, w, n); return 0;
    case DT_Q8:
        for (int r = 0; r < rows; r++)
            quant_row_q8((int8_t *)data + r * nb * QBLOCK, scales + r * nb, w + (size_t)r * cols, cols);
        return 0;
    case DT_Q4:
        for (int r = 0; r < rows; r++)
            quant_row_q4((uint8_t *)data + r * nb * 16, scales + r * nb, w + (size_t)r * cols, cols);
        return 0;
    default:
        if (!dtype_is_block(t)) return -1;
        for (int r = 0; r < rows; r++)
            quant_row(t, (uint8_t *)data + r * nb * qb_bytes(t), scales + r * qb_scale_words(t, (int)nb),
                      w + (size_t)r * cols, cols, NULL);
        return 0;
    }
}
