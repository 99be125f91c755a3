/* qrow.c - one weight row into Q8 / Q4 blocks of 32 (kern.h layouts): the
 * block scale by plain round-to-nearest or by an error-minimising grid
 * search, and optionally GPTQ's error compensation, which rounds the row's
 * columns in order and spreads each rounding error over the columns not yet
 * rounded so that the product with the calibration inputs changes least.
 * Also the factor GPTQ needs: the upper Cholesky factor of the damped
 * inverse of the inputs' second-moment matrix. Compile-time code: plain C,
 * no kernels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compile/qrow.h"
#include "kern/quant.h"
#include "util/half.h"

/* Nearest level of v at step 1/inv: Q8 -127..127, Q4 -8..7. */
static int qlevel(DType t, float v, float inv)
{
    long n = lrintf(v * inv), lo = t == DT_Q8 ? -127 : -8, hi = t == DT_Q8 ? 127 : 7;
    return (int)(n < lo ? lo : n > hi ? hi : n);
}

/* Squared error of block v (n values, weights w or NULL) at f16 scale h. */
static double block_err(DType t, const float *v, const float *w, int n, uint16_t h)
{
    float d = f16_to_f32(h), inv = d > 0 ? 1.0f / d : 0.0f;
    double err = 0;
    for (int i = 0; i < n; i++) {
        float e = v[i] - (float)qlevel(t, v[i], inv) * d;
        err += (double)(w ? w[i] : 1.0f) * e * e;
    }
    return err;
}

uint16_t qrow_block_scale(DType t, QRound round, const float *v, const float *w, int n)
{
    t = dtype_base(t);
    if (t != DT_Q8 && t != DT_Q4) { /* Q6 .. IQ3: searched, or the largest element on its sign's end level */
        if (round == QROUND_SEARCH) return quant_block_scale(t, v, w, n);
        float amax = 0, big = 0;
        for (int i = 0; i < n; i++)
            if (fabsf(v[i]) > amax) amax = fabsf(v[i]), big = v[i];
        return f32_to_f16(big > 0 ? big / (float)quant_level_value(t, quant_nlevels(t) - 1)
                                  : big / (float)quant_level_value(t, 0));
    }
    float amax = 0, big = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(v[i]) > amax) amax = fabsf(v[i]), big = v[i];
    if (!(amax > 0)) return 0;
    if (round == QROUND_NEAREST) /* Q4: the largest on -8 when negative, else on +7 (no clipping) */
        return f32_to_f16(amax / (t == DT_Q8 ? 127.0f : big < 0 ? 8.0f : 7.0f));
    /* d = amax / s over a grid of s around the largest level: a little
     * clipping of the largest element can buy a finer step for the rest */
    float s0 = t == DT_Q8 ? 124.0f : 6.0f, ds = t == DT_Q8 ? 1.0f : 0.125f;
    uint16_t best = f32_to_f16(amax / (t == DT_Q8 ? 127.0f : 7.0f));
    double best_err = block_err(t, v, w, n, best);
    for (int k = 0; k <= 16; k++) {
        uint16_t h = f32_to_f16(amax / (s0 + ds * (float)k));
        double err = block_err(t, v, w, n, h);
        if (err < best_err) best_err = err, best = h;
    }
    return best;
}

void qrow_super(uint16_t *sc, uint16_t *h, DType t, QRound round, const float *x, int cols, const float *w, int b)
{
    int nb = (cols + QBLOCK - 1) / QBLOCK, nblk = nb - b < QSUPER ? nb - b : QSUPER, j0 = b * QBLOCK;
    DType bt = dtype_base(t);
    uint16_t h0[QSUPER];
    for (int i = 0; i < nblk; i++) {
        int j = j0 + i * QBLOCK, n = cols - j < QBLOCK ? cols - j : QBLOCK;
        h0[i] = qrow_block_scale(bt, round, x + j, w ? w + j : NULL, n);
    }
    quant_super_fit(bt, x + j0, w ? w + j0 : NULL, cols - j0, h0, nblk, round == QROUND_SEARCH, sc, h);
}

void qrow_quantize(void *dst, uint16_t *scales, DType t, QRound round, float *x, int cols, const float *w,
                   const float *U)
{
    int nb = (cols + QBLOCK - 1) / QBLOCK, sup = dtype_is_super(t);
    DType bt = dtype_base(t);
    uint16_t hs[QSUPER];
    for (int b = 0; b < nb; b++) {
        int j0 = b * QBLOCK, n = cols - j0 < QBLOCK ? cols - j0 : QBLOCK;
        if (sup && b % QSUPER == 0) /* the super-block's scales from the values as they are now */
            qrow_super(scales + (size_t)b / QSUPER * QSUPER_WORDS, hs, t, round, x, cols, w, b);
        uint16_t h = sup ? hs[b % QSUPER] : qrow_block_scale(t, round, x + j0, w ? w + j0 : NULL, n);
        float d = f16_to_f32(h), inv = d != 0 ? 1.0f / d : 0.0f;
        int lv[QBLOCK] = {0}, legacy = t == DT_Q8 || t == DT_Q4;
        for (int i = 0; i < n; i++) {
            int j = j0 + i;
            lv[i] = legacy ? qlevel(t, x[j], inv) : quant_nearest(bt, x[j] * inv);
            float deq = (float)(legacy ? lv[i] : quant_level_value(bt, lv[i])) * d;
            if (U) { /* GPTQ: the rounding error, scaled, moves to the later columns */
                const float *u = U + (size_t)j * cols;
                float err = (x[j] - deq) / u[j];
#pragma omp simd
                for (int c = j + 1; c < cols; c++) x[c] -= err * u[c];
            }
        }
        if (!sup) scales[b] = h;
        if (!legacy) { /* padding: the level of value 0 (or nearest to it) */
            for (int i = n; i < QBLOCK; i++) lv[i] = quant_nearest(bt, 0.0f);
            quant_block_pack(bt, dst, cols, b, lv);
        } else if (t == DT_Q8) {
            int8_t *q = (int8_t *)dst + (size_t)b * QBLOCK;
            for (int i = 0; i < QBLOCK; i++) q[i] = (int8_t)lv[i];
        } else { /* padding levels are 0: nibble 8 */
            uint8_t *q = (uint8_t *)dst + (size_t)b * 16;
            for (int i = 0; i < 16; i++) q[i] = (uint8_t)((lv[i] + 8) | (lv[16 + i] + 8) << 4);
        }
    }
}

int qrow_gptq_factor(float *U, const double *H, int n, double damp)
{
    double *A = malloc((size_t)n * n * sizeof *A), *x = malloc((size_t)n * sizeof *x), *c = malloc((size_t)n * sizeof *c);
    int rc = A && x && c ? 1 : -1;
    double mean = 0;
    for (int j = 0; j < n; j++) mean += H[(size_t)j * n + j];
    mean = mean > 0 ? mean / n : 1.0;
    /* H + damp = R R^T with R upper gives (H + damp)^-1 = U^T U for U = R^-1.
     * R = J M J where M M^T = J (H + damp) J (J reverses the order): one
     * Cholesky factorisation and one triangular inverse, written as row
     * updates so the inner loops run over contiguous memory. More damping
     * while the factorisation fails (inputs that never vary make H singular). */
    for (int tries = 0; rc > 0 && tries < 6; tries++, damp *= 10) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) A[(size_t)i * n + j] = H[(size_t)(n - 1 - i) * n + (n - 1 - j)];
        for (int i = 0; i < n; i++) A[(size_t)i * n + i] += damp * mean;
        int ok = 1;
        for (int j = 0; ok && j < n; j++) { /* right-looking Cholesky: column j, then the trailing update */
            double d = A[(size_t)j * n + j];
            if (!(d > 0)) {
                ok = 0;
                break;
            }
            d = sqrt(d);
            A[(size_t)j * n + j] = d;
            for (int i = j + 1; i < n; i++) c[i] = A[(size_t)i * n + j] /= d;
            for (int i = j + 1; i < n; i++) {
                double a = c[i], *ri = A + (size_t)i * n;
#pragma omp simd
                for (int k = j + 1; k <= i; k++) ri[k] -= a * c[k];
            }
        }
        if (!ok) continue;
        for (int k = 0; k < n; k++) /* M^T into the upper triangle: column k of M is contiguous */
            for (int i = k + 1; i < n; i++) A[(size_t)k * n + i] = A[(size_t)i * n + k];
        memset(U, 0, (size_t)n * n * sizeof *U);
        for (int j = 0; j < n; j++) { /* column j of M^-1 by forward substitution */
            memset(x + j, 0, (size_t)(n - j) * sizeof *x);
            x[j] = 1.0;
            for (int k = j; k < n; k++) {
                const double *rk = A + (size_t)k * n;
                double a = x[k] /= rk[k];
#pragma omp simd
                for (int i = k + 1; i < n; i++) x[i] -= rk[i] * a;
            }
            for (int i = j; i < n; i++) U[(size_t)(n - 1 - i) * n + (n - 1 - j)] = (float)x[i];
        }
        rc = 0;
    }
    free(A), free(x), free(c);
    return rc ? -1 : 0;
}
