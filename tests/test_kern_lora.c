/* test_kern_lora.c - kern_matmul_lora (the base product with its LoRA
 * products in one pool job) against the unfused sequence on the same backend
 * (kern_matmul of W, of A, of B, then the adds: must agree to rounding, as
 * the backend's lora_b kernel sums B's short rows in its own order), and
 * against its scalar twin kern_matmul_lora_ref and a double-precision
 * application of the contract, on random odd shapes: every weight type,
 * several products per call (overlapping rows too), mixed token subsets,
 * DoRA, AWQ in_scale, 8-bit A and B, one to three threads.
 * The backend's lora_b kernel on its own: against double precision, the
 * same rows for any j0, j1 (bit for bit), and the same tokens for any n on
 * the same side of LORA_B_BATCH; its 8-bit lora8_b the same bits as the
 * portable kernel for any j0, j1 and n; lora8_a against double. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kern/kern.h"
#include "kern/kern_impl.h"
#include "util/half.h"
#include "rng.h"


/* A random rows x cols matrix of type t in one malloc'd block (*buf). */
static QMat mat_random(Rng *r, DType t, int rows, int cols, void **buf, float **in_scale)
{
    size_t db = qmat_data_bytes(t, rows, cols), sb = qmat_scale_bytes(t, rows, cols);
    char *b = malloc(db + sb + 2);
    uint16_t *sc = (uint16_t *)(b + db + (db & 1));
    for (size_t i = 0; i < db; i++) b[i] = (char)rng_u32(r);
    if (t == DT_F32)
        for (size_t i = 0; i < (size_t)rows * cols; i++) {
            float f = rng_f(r);
            memcpy(b + 4 * i, &f, 4);
        }
    if (t == DT_F16)
        for (size_t i = 0; i < (size_t)rows * cols; i++) ((uint16_t *)b)[i] = f32_to_f16(rng_f(r));
    if (t == DT_BF16)
        for (size_t i = 0; i < (size_t)rows * cols; i++) ((uint16_t *)b)[i] = f32_to_bf16(rng_f(r));
    if (t == DT_Q8)
        for (size_t i = 0; i < db; i++) b[i] = (char)(int8_t)(rng_u32(r) % 255 - 127);
    for (size_t i = 0; i < sb / 2; i++) sc[i] = f32_to_f16(0.001f + 0.02f * (rng_f(r) + 1));
    *buf = b;
    QMat q = {.type = t, .rows = rows, .cols = cols, .data = b, .scales = sb ? sc : NULL};
    if (in_scale) {
        *in_scale = malloc((size_t)cols * sizeof(float));
        for (int c = 0; c < cols; c++) (*in_scale)[c] = 0.25f + 2.0f * (rng_f(r) + 1);
        q.in_scale = *in_scale;
    }
    return q;
}

/* The contract of kern.h in double on top of a base product Y (n x rows):
 * writes the expected result to E and a magnitude bound per element to M. */
static void lora_expect(float *E, double *M, const float *Y, const QMat *W, const float *X, int n,
                        const KernLora *lo, int n_lo)
{
    size_t ny = (size_t)n * W->rows;
    for (size_t i = 0; i < ny; i++) {
        E[i] = Y[i];
        M[i] = fabs(Y[i]) + 1e-3;
    }
    for (int l = 0; l < n_lo; l++) {
        const KernLora *L = &lo[l];
        int r = L->A->rows;
        float *a = malloc((size_t)W->cols * sizeof(float)), *b = malloc((size_t)r * sizeof(float));
        double *t = malloc((size_t)r * sizeof(double)), *tm = malloc((size_t)r * sizeof(double));
        for (int i = 0; i < L->n_tok; i++) {
            const float *x = X + (size_t)L->tok[i] * W->cols;
            for (int k = 0; k < r; k++) {
                qmat_row_f32(a, L->A, k);
                t[k] = tm[k] = 0;
                for (int c = 0; c < W->cols; c++) {
                    t[k] += (double)a[c] * x[c];
                    tm[k] += fabs((double)a[c] * x[c]);
                }
            }
            for (int j = L->r0; j < L->r1; j++) {
                kern_lora_b_row(b, L->B, r, j - L->r0);
                double u = 0, um = 0;
                for (int k = 0; k < r; k++) {
                    u += (double)b[k] * t[k];
                    um += fabs((double)b[k]) * tm[k];
                }
                size_t o = (size_t)L->tok[i] * W->rows + j;
                double d = L->dora ? L->dora[j - L->r0] : 1.0;
                E[o] = (float)(d * (E[o] + (double)L->scale * u));
                M[o] = fabs(d) * (M[o] + fabs(L->scale) * um);
            }
        }
        free(a);
        free(b);
        free(t);
        free(tm);
    }
}

/* The unfused sequence forward.c runs at prefill: W, then per product the
 * gathered rows through A and B and the adds. */
static void unfused(Kern *k, float *Y, const QMat *W, const float *X, int n, const KernLora *lo, int n_lo)
{
    kern_matmul(k, Y, W, X, n);
    for (int l = 0; l < n_lo; l++) {
        const KernLora *L = &lo[l];
        int g = L->n_tok, r = L->A->rows, br = L->r1 - L->r0;
        float *x = malloc((size_t)g * W->cols * sizeof(float)), *t = malloc((size_t)g * r * sizeof(float));
        float *u = malloc((size_t)g * br * sizeof(float));
        for (int i = 0; i < g; i++)
            memcpy(x + (size_t)i * W->cols, X + (size_t)L->tok[i] * W->cols, (size_t)W->cols * sizeof(float));
        const KernOps *ops = kern_ops(k);
        if (L->A->type == DT_Q8) /* float activations: kern_matmul would quantize them */
            ops->lora8_a(t, L->A, 0, r, x, g);
        else
            kern_matmul(k, t, L->A, x, g);
        if (L->B->type == DT_Q8)
            ops->lora8_b(u, br, L->B, r, 0, br, t, g);
        else
            kern_matmul(k, u, L->B, t, g);
        for (int i = 0; i < g; i++)
            for (int j = L->r0; j < L->r1; j++) {
                float *y = Y + (size_t)L->tok[i] * W->rows + j, v = *y + L->scale * u[(size_t)i * br + j - L->r0];
                *y = L->dora ? L->dora[j - L->r0] * v : v;
            }
        free(x);
        free(t);
        free(u);
    }
}

enum { MAX_LO = 5 };

/* One random case on kernel k; returns 1 if every check passed. */
static int one_case(Kern *k, Rng *rng, DType wt, int rows, int cols, int n, int with_in_scale, int quiet)
{
    void *wbuf, *abuf[MAX_LO], *bbuf[MAX_LO];
    float *in_scale = NULL;
    QMat W = mat_random(rng, wt, rows, cols, &wbuf, with_in_scale ? &in_scale : NULL);
    QMat A[MAX_LO], B[MAX_LO];
    KernLora lo[MAX_LO];
    int tok[MAX_LO][32];
    float *dora[MAX_LO];
    int n_lo = 1 + (int)(rng_u32(rng) % MAX_LO);
    static const int ranks[] = {1, 3, 8, 16, 17};
    for (int l = 0; l < n_lo; l++) {
        int r = ranks[rng_u32(rng) % 5], r0 = (int)(rng_u32(rng) % rows), r1 = r0 + 1 + (int)(rng_u32(rng) % (rows - r0));
        if (l == 0) r0 = 0, r1 = rows; /* one product over all rows, as a single projection has */
        DType at = (DType)(rng_u32(rng) % 4), bt = (DType)(rng_u32(rng) % 4); /* f32, f16, bf16, q8 */
        A[l] = mat_random(rng, at, r, cols, &abuf[l], NULL);
        B[l] = bt == DT_Q8 ? mat_random(rng, bt, (r1 - r0 + 31) / 32 * r, 32, &bbuf[l], NULL)
                           : mat_random(rng, bt, r1 - r0, r, &bbuf[l], NULL);
        dora[l] = NULL;
        if (rng_u32(rng) % 3 == 0) {
            dora[l] = malloc((size_t)(r1 - r0) * sizeof(float));
            for (int j = 0; j < r1 - r0; j++) dora[l][j] = 0.5f + rng_f(rng) * 0.4f;
        }
        int g = 0, all = rng_u32(rng) % 3 == 0;
        for (int i = 0; i < n; i++)
            if (all || rng_u32(rng) % 2) tok[l][g++] = i;
        if (!g) tok[l][g++] = (int)(rng_u32(rng) % n);
        lo[l] = (KernLora){.r0 = r0, .r1 = r1, .A = &A[l], .B = &B[l], .scale = 0.5f + rng_f(rng),
                           .dora = dora[l], .tok = tok[l], .n_tok = g};
    }
    size_t ny = (size_t)n * rows;
    float *X = malloc((size_t)n * cols * sizeof(float)), *F = malloc(ny * sizeof(float));
    float *U = malloc(ny * sizeof(float)), *R = malloc(ny * sizeof(float)), *Y0 = malloc(ny * sizeof(float));
    float *E = malloc(ny * sizeof(float));
    double *M = malloc(ny * sizeof(double));
    for (size_t i = 0; i < (size_t)n * cols; i++) X[i] = rng_f(rng) * (rng_u32(rng) % 97 == 0 ? 40 : 1);
    for (size_t i = 0; i < ny; i++) F[i] = NAN;
    kern_matmul_lora(k, F, &W, X, n, lo, n_lo);
    unfused(k, U, &W, X, n, lo, n_lo);
    /* against the contract in double, on this backend's base product */
    kern_matmul(k, Y0, &W, X, n);
    lora_expect(E, M, Y0, &W, X, n, lo, n_lo);
    int same = 1; /* fused vs unfused: the same operations up to B's summation order */
    for (size_t i = 0; i < ny && same; i++) same = fabs((double)F[i] - U[i]) <= 2e-6 * M[i] + 1e-7;
    double worst = 0;
    for (size_t i = 0; i < ny; i++) {
        double err = fabs((double)F[i] - E[i]) / (3e-5 * M[i] + 1e-6);
        if (!(err == err)) err = 1e30;
        if (err > worst) worst = err;
    }
    /* the scalar twin, on the scalar base product */
    kern_matmul_lora_ref(R, &W, X, n, lo, n_lo);
    kern_matmul_ref(Y0, &W, X, n);
    lora_expect(E, M, Y0, &W, X, n, lo, n_lo);
    double worst_ref = 0;
    for (size_t i = 0; i < ny; i++) {
        double err = fabs((double)R[i] - E[i]) / (3e-5 * M[i] + 1e-6);
        if (!(err == err)) err = 1e30;
        if (err > worst_ref) worst_ref = err;
    }
    int ok = same && worst <= 1 && worst_ref <= 1;
    if (!ok && !quiet)
        CHECK(0, "%s x%d %s %d x %d n %d in_scale %d, %d products: fused %s unfused, error %.3g (ref %.3g) x allowed",
              kern_isa(k), kern_threads(k), dtype_name(wt), rows, cols, n, with_in_scale, n_lo,
              same ? "==" : "!=", worst, worst_ref);
    free(X), free(F), free(U), free(R), free(Y0), free(E), free(M);
    for (int l = 0; l < n_lo; l++) free(abuf[l]), free(bbuf[l]), free(dora[l]);
    free(wbuf);
    free(in_scale);
    return ok;
}

static int slow_a_case(Kern *k, Rng *rng)
{
    int rows = 1000, cols = 3000, r = KERN_LORA_MAX_RANK;
    void *wb, *ab, *bb;
    QMat W = mat_random(rng, DT_Q4, rows, cols, &wb, NULL);
    QMat A = mat_random(rng, DT_F32, r, cols, &ab, NULL), B = mat_random(rng, DT_F16, 100, r, &bb, NULL);
    int tok = 0;
    KernLora lo = {.r0 = 0, .r1 = 100, .A = &A, .B = &B, .scale = 0.3f, .tok = &tok, .n_tok = 1};
    float *X = malloc((size_t)cols * sizeof(float)), *F = malloc((size_t)rows * sizeof(float));
    float *Y0 = malloc((size_t)rows * sizeof(float)), *E = malloc((size_t)rows * sizeof(float));
    double *M = malloc((size_t)rows * sizeof(double));
    for (int i = 0; i < cols; i++) X[i] = rng_f(rng);
    kern_matmul(k, Y0, &W, X, 1);
    lora_expect(E, M, Y0, &W, X, 1, &lo, 1);
    int ok = 1;
    for (int i = 0; i < 4; i++) { /* back to back, so that the workers are awake for most */
        kern_matmul_lora(k, F, &W, X, 1, &lo, 1);
        for (int j = 0; j < rows; j++) ok &= fabs((double)F[j] - E[j]) <= 3e-5 * M[j] + 1e-6;
    }
    free(X), free(F), free(Y0), free(E), free(M), free(wb), free(ab), free(bb);
    return ok;
}

/* Element (r, c) of a float matrix (f32, f16, bf16) or a DT_Q8 one. */
static double elem(const QMat *M, int r, int c)
{
    if (M->type == DT_Q8) {
        int nb = (M->cols + 31) / 32;
        return ((const int8_t *)M->data)[(size_t)r * nb * 32 + c] * (double)f16_to_f32(M->scales[(size_t)r * nb + c / 32]);
    }
    size_t i = (size_t)r * M->cols + c;
    if (M->type == DT_F32) return ((const float *)M->data)[i];
    uint16_t h = ((const uint16_t *)M->data)[i];
    return M->type == DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

/* lora_b for every float type, ranks around the vector widths up to the
 * maximum, token counts on both sides of LORA_B_BATCH. */
static int lora_b_cases(const KernOps *ops, Rng *rng)
{
    static const int ranks[] = {1, 3, 4, 5, 8, 15, 16, 17, 33, 64, KERN_LORA_MAX_RANK};
    static const int ns[] = {1, 2, 3, 4, 5, 8, 9};
    enum { ROWS = 37, NMAX = 10 };
    int bad = 0;
    for (int ft = DT_F32; ft <= DT_BF16; ft++)
        for (size_t ri = 0; ri < sizeof ranks / sizeof *ranks; ri++) {
            int r = ranks[ri];
            void *bb;
            QMat B = mat_random(rng, (DType)ft, ROWS, r, &bb, NULL);
            float *t = malloc((size_t)NMAX * r * sizeof(float));
            for (int i = 0; i < NMAX * r; i++) t[i] = rng_f(rng);
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                int n = ns[ni], n2 = n + 1 < LORA_B_BATCH || n >= LORA_B_BATCH ? n + 1 : n;
                float u[NMAX * ROWS], v[NMAX * ROWS], w[NMAX * ROWS];
                ops->lora_b(u, ROWS, &B, 0, ROWS, t, n);
                /* in pieces that cut blocks of 4, 8 and 16 rows */
                ops->lora_b(v, ROWS, &B, 0, 5, t, n);
                ops->lora_b(v + 5, ROWS, &B, 5, 21, t, n);
                ops->lora_b(v + 21, ROWS, &B, 21, ROWS, t, n);
                ops->lora_b(w, ROWS, &B, 0, ROWS, t, n2); /* one token more, same side */
                int ok = !memcmp(u, v, (size_t)n * ROWS * sizeof(float)) &&
                         !memcmp(u, w, (size_t)n * ROWS * sizeof(float));
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < ROWS; j++) {
                        double e = 0, m = 0;
                        for (int k = 0; k < r; k++) {
                            double p = (double)elem(&B, j, k) * t[i * r + k];
                            e += p;
                            m += fabs(p);
                        }
                        ok &= fabs(u[i * ROWS + j] - e) <= 1e-5 * m + 1e-7;
                    }
                if (!ok && bad++ < 5)
                    printf("FAIL lora_b %s r=%d n=%d: pieces %s, n+1 %s\n", dtype_name((DType)ft), r, n,
                           memcmp(u, v, (size_t)n * ROWS * sizeof(float)) ? "differ" : "agree",
                           memcmp(u, w, (size_t)n * ROWS * sizeof(float)) ? "differ" : "agree");
            }
            free(t);
            free(bb);
        }
    return bad;
}

/* lora8_b (an 8-bit B in blocks of 32 output rows) at ranks and row counts around the
 * vector widths and blocks: the portable kernel's bits for every piece
 * and token count, and double precision within rounding; lora8_a against
 * double on odd column counts. */
static int lora8_cases(const KernOps *ops, Rng *rng)
{
    static const int ranks[] = {1, 3, 16, 17, 64};
    static const int outs[] = {1, 7, 31, 32, 33, 100, 257};
    static const int ns[] = {1, 2, 3, 4, 5, 9};
    enum { NMAX = 9, OMAX = 257 };
    int bad = 0;
    for (size_t ri = 0; ri < sizeof ranks / sizeof *ranks; ri++)
        for (size_t oi = 0; oi < sizeof outs / sizeof *outs; oi++) {
            int r = ranks[ri], out = outs[oi];
            void *bb;
            QMat B = mat_random(rng, DT_Q8, (out + 31) / 32 * r, 32, &bb, NULL);
            float *t = malloc((size_t)NMAX * r * sizeof(float));
            float *u = malloc((size_t)NMAX * OMAX * sizeof(float)), *v = malloc((size_t)NMAX * OMAX * sizeof(float));
            for (int i = 0; i < NMAX * r; i++) t[i] = rng_f(rng);
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                int n = ns[ni], cut1 = out / 3, cut2 = out / 3 + (out - out / 3) / 2;
                lora8_b_portable(u, out, &B, r, 0, out, t, n);
                /* in three unaligned pieces */
                ops->lora8_b(v, out, &B, r, 0, cut1, t, n);
                ops->lora8_b(v + cut1, out, &B, r, cut1, cut2, t, n);
                ops->lora8_b(v + cut2, out, &B, r, cut2, out, t, n);
                int ok = !memcmp(u, v, (size_t)n * out * sizeof(float));
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < out; j++) {
                        double e = 0, m = 0;
                        for (int k = 0; k < r; k++) {
                            double p = (double)elem(&B, j / 32 * r + k, j % 32) * t[i * r + k];
                            e += p;
                            m += fabs(p);
                        }
                        ok &= fabs(u[i * out + j] - e) <= 1e-5 * m + 1e-7;
                    }
                if (!ok && bad++ < 5) printf("FAIL lora8_b r=%d rows=%d n=%d\n", r, out, n);
            }
            free(t), free(u), free(v), free(bb);
        }
    static const int colsv[] = {1, 31, 32, 33, 100, 1000};
    for (size_t ci = 0; ci < sizeof colsv / sizeof *colsv; ci++) {
        int cols = colsv[ci], r = 5;
        void *ab;
        QMat A = mat_random(rng, DT_Q8, r, cols, &ab, NULL);
        float *x = malloc((size_t)NMAX * cols * sizeof(float)), t[NMAX * 5];
        for (int i = 0; i < NMAX * cols; i++) x[i] = rng_f(rng);
        for (int n = 1; n <= NMAX; n++) {
            ops->lora8_a(t, &A, 1, r, x, n); /* row 0 left alone */
            int ok = 1;
            for (int i = 0; i < n; i++)
                for (int k = 1; k < r; k++) {
                    double e = 0, m = 0;
                    for (int c = 0; c < cols; c++) {
                        double p = (double)elem(&A, k, c) * x[i * cols + c];
                        e += p;
                        m += fabs(p);
                    }
                    ok &= fabs(t[i * r + k] - e) <= 1e-5 * m + 1e-7;
                }
            if (!ok && bad++ < 5) printf("FAIL lora8_a cols=%d n=%d\n", cols, n);
        }
        free(x), free(ab);
    }
    return bad;
}

static void test_backend(const char *isa, int threads)
{
    Err e;
    Kern *k = kern_create(threads, isa, &e);
    if (!k) {
        printf("kern_lora: backend %s not available here (%s)\n", isa, e.msg);
        return;
    }
    static const int rows_v[] = {1, 7, 33, 100, 300};
    static const int cols_v[] = {1, 31, 48, 257};
    static const int n_v[] = {1, 2, 3, 5, 17, 20};
    Rng rng = {0x243f6a8885a308d3ull ^ (uint64_t)threads};
    int combo = 0;
    for (int t = DT_F32; t <= DT_Q4; t++) {
        int fails = 0;
        for (size_t ri = 0; ri < sizeof rows_v / sizeof *rows_v; ri++)
            for (size_t ci = 0; ci < sizeof cols_v / sizeof *cols_v; ci++)
                for (size_t ni = 0; ni < sizeof n_v / sizeof *n_v; ni++, combo++)
                    if (!one_case(k, &rng, (DType)t, rows_v[ri], cols_v[ci], n_v[ni], combo % 3 == 1, fails >= 5))
                        fails++;
        /* decode-sized products big enough for the pool: the A-before-rows schedule */
        for (int rep = 0; rep < 6; rep++)
            if (!one_case(k, &rng, (DType)t, 1000 + 16 * rep + rep, 300 + rep, 1 + rep % 6, rep % 2, fails >= 5)) fails++;
        CHECK(fails == 0, "%s %s: %d cases out of tolerance", isa, dtype_name((DType)t), fails);
    }
    /* a slow A product (rank 256, long rows) beside quick row tasks: with
     * several threads the row tasks finish first and leave their LoRA part
     * to the caller */
    for (int rep = 0; rep < 3; rep++) {
        Rng r2 = {77 + (uint64_t)rep};
        CHECK(slow_a_case(k, &r2), "%s: slow A product, rep %d", isa, rep);
    }
    if (kern_ops(k)->lora_b) {
        Rng r3 = {2718};
        CHECK(lora_b_cases(kern_ops(k), &r3) == 0, "%s: lora_b kernel", isa);
    }
    Rng r4 = {31415};
    CHECK(lora8_cases(kern_ops(k), &r4) == 0, "%s: 8-bit LoRA kernels", isa);
    printf("kern_lora: %s (%d threads) checked\n", isa, threads);
    kern_destroy(k);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const char *isas[] = {"scalar", "avx2", "avx512", "neon"};
    for (int i = 0; i < 4; i++) test_backend(isas[i], i == 0 ? 1 : 2);
    test_backend("scalar", 3);
    return check_summary("kern_lora");
}
