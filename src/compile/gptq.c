/* gptq.c - GPTQ over batches of rows (gptq.h). The rounding inside a block
 * is qrow_quantize()'s; what differs is when the later columns see a
 * block's errors: all rows of a batch finish the block first, then one
 * pass per row subtracts sum_i e_i U[j0 + i, c] from every later column c,
 * with 16 columns' sums held in registers while the block's 32 factor rows
 * (in L2) stream past. On x86-64 that pass is also built for AVX2 + FMA and
 * chosen at run time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compile/gptq.h"
#include "compile/qrow.h"
#include "kern/quant.h"
#include "util/half.h"

#define GPTQ_BATCH 16 /* rows per batch: their block errors fit in L1 */

int gptq_supports(DType t) { return dtype_is_block(t); }

/* Nearest level of v at step 1/inv: Q8 -127..127, Q4 -8..7 (qrow.c's). */
static int level(DType t, float v, float inv)
{
    long n = lrintf(v * inv), lo = t == DT_Q8 ? -127 : -8, hi = t == DT_Q8 ? 127 : 7;
    return (int)(n < lo ? lo : n > hi ? hi : n);
}

/* x[c] -= sum_i e[i] * U[(j0 + i) * cols + c] for c in j1 .. cols-1, rows
 * of the batch in turn. */
#define UPDATE_BODY                                                                          \
    for (int r = 0; r < R; r++) {                                                            \
        float *x = X + (size_t)r * cols;                                                     \
        const float *e = E + (size_t)r * QBLOCK;                                             \
        int c = j1;                                                                          \
        for (; c + 16 <= cols; c += 16) {                                                    \
            float acc[16];                                                                   \
            for (int q = 0; q < 16; q++) acc[q] = x[c + q];                                  \
            for (int i = 0; i < n; i++) {                                                    \
                const float *u = U + (size_t)(j0 + i) * cols + c;                            \
                float ei = e[i];                                                             \
                _Pragma("omp simd") for (int q = 0; q < 16; q++) acc[q] -= ei * u[q];        \
            }                                                                                \
            for (int q = 0; q < 16; q++) x[c + q] = acc[q];                                  \
        }                                                                                    \
        for (; c < cols; c++) {                                                              \
            float a = x[c];                                                                  \
            for (int i = 0; i < n; i++) a -= e[i] * U[(size_t)(j0 + i) * cols + c];          \
            x[c] = a;                                                                        \
        }                                                                                    \
    }

static void update_plain(float *X, int R, int cols, const float *E, int n, const float *U, int j0, int j1)
{
    UPDATE_BODY
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void update_avx2(float *X, int R, int cols, const float *E, int n,
                                                            const float *U, int j0, int j1)
{
    UPDATE_BODY
}
#endif

static void update(float *X, int R, int cols, const float *E, int n, const float *U, int j0, int j1)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        update_avx2(X, R, cols, E, n, U, j0, j1);
        return;
    }
#endif
    update_plain(X, R, cols, E, n, U, j0, j1);
}

/* Packs block b's levels lv (QBLOCK, padding 0; for the grid types
 * Q6 .. IQ3 padding is filled in here as the level nearest 0) of one row of
 * cols columns. */
static void pack(void *row, DType t, int cols, int b, int *lv, int n)
{
    if (t != DT_Q8 && t != DT_Q4) {
        for (int i = n; i < QBLOCK; i++) lv[i] = quant_nearest(t, 0.0f);
        quant_block_pack(t, row, cols, b, lv);
    } else if (t == DT_Q8) {
        int8_t *q = (int8_t *)row + (size_t)b * QBLOCK;
        for (int i = 0; i < QBLOCK; i++) q[i] = (int8_t)lv[i];
    } else {
        uint8_t *q = (uint8_t *)row + (size_t)b * 16;
        for (int i = 0; i < 16; i++) q[i] = (uint8_t)((lv[i] + 8) | (lv[16 + i] + 8) << 4);
    }
}

int gptq_rows(void *data, uint16_t *scales, DType t, QRound round, const QMat *W, int r0, int r1, const float *U,
              const float *w)
{
    int cols = W->cols, nb = (cols + QBLOCK - 1) / QBLOCK, sup = dtype_is_super(t);
    size_t rb = qmat_data_bytes(t, 1, cols), sw = qmat_scale_bytes(t, 1, cols) / 2;
    DType bt = dtype_base(t);
    float *X = malloc((size_t)GPTQ_BATCH * cols * sizeof *X), *E = malloc((size_t)GPTQ_BATCH * QBLOCK * sizeof *E);
    uint16_t hs[GPTQ_BATCH][QSUPER];
    if (!X || !E) {
        free(X), free(E);
        return -1;
    }
    for (int b0 = r0; b0 < r1; b0 += GPTQ_BATCH) {
        int R = r1 - b0 < GPTQ_BATCH ? r1 - b0 : GPTQ_BATCH;
        for (int r = 0; r < R; r++) qmat_row_f32(X + (size_t)r * cols, W, b0 + r);
        for (int b = 0; b < nb; b++) {
            int j0 = b * QBLOCK, n = cols - j0 < QBLOCK ? cols - j0 : QBLOCK;
            for (int r = 0; r < R; r++) {
                float *x = X + (size_t)r * cols, *e = E + (size_t)r * QBLOCK;
                if (sup && b % QSUPER == 0) /* the super-block's scales from the values as they are now */
                    qrow_super(scales + (size_t)(b0 + r) * sw + (size_t)b / QSUPER * QSUPER_WORDS, hs[r], t, round, x,
                               cols, w, b);
                uint16_t h = sup ? hs[r][b % QSUPER] : qrow_block_scale(t, round, x + j0, w ? w + j0 : NULL, n);
                float d = f16_to_f32(h), inv = d != 0 ? 1.0f / d : 0.0f; /* grid types: d may be < 0 */
                int lv[QBLOCK] = {0}, legacy = t == DT_Q8 || t == DT_Q4;
                for (int i = 0; i < n; i++) {
                    int j = j0 + i;
                    const float *u = U + (size_t)j * cols;
                    lv[i] = legacy ? level(t, x[j], inv) : quant_nearest(bt, x[j] * inv);
                    float deq = (float)(legacy ? lv[i] : quant_level_value(bt, lv[i])) * d;
                    e[i] = (x[j] - deq) / u[j];
                    for (int c = j + 1; c < j0 + n; c++) x[c] -= e[i] * u[c];
                }
                if (!sup) scales[(size_t)(b0 + r) * nb + b] = h;
                pack((char *)data + (size_t)(b0 + r) * rb, bt, cols, b, lv, n);
            }
            if (j0 + n < cols) update(X, R, cols, E, n, U, j0, j0 + n);
        }
    }
    free(X), free(E);
    return 0;
}
