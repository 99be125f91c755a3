/* test_kern.c - every kernel backend this CPU runs against kern_matmul_ref,
 * on random matrices of odd sizes, every weight type, with and without
 * in_scale; plus the thread pool, CPU selection, quantizers and the
 * bandwidth probe. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kern/kern.h"
#include "kern/kern_impl.h"
#include "kern/qblock.h"
#include "kern/quant.h"
#include "util/half.h"
#include "rng.h"


/* A random rows x cols matrix of type t; the buffers are malloc'd into m. */
typedef struct TestMat {
    QMat q;
    void *raw;      /* allocation; data = raw + 0 or an odd offset */
    void *data;
    uint16_t *scales;
    float *in_scale;
} TestMat;

/* misalign: place data at the worst offset the format allows (2 bytes for
 * float types straight from a safetensors mapping, 1 byte for q8/q4). */
static void mat_random(TestMat *m, Rng *r, DType t, int rows, int cols, int with_in_scale, int misalign)
{
    size_t db = qmat_data_bytes(t, rows, cols), sb = qmat_scale_bytes(t, rows, cols);
    m->raw = malloc(db + 8);
    m->data = (char *)m->raw + (misalign ? (dtype_is_block(t) ? 1 : 2) : 0);
    m->scales = sb ? malloc(sb) : NULL;
    m->in_scale = NULL;
    size_t n = (size_t)rows * cols;
    switch (t) {
    case DT_F32:
        for (size_t i = 0; i < n; i++) {
            float f = rng_f(r);
            memcpy((char *)m->data + 4 * i, &f, 4);
        }
        break;
    case DT_F16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)m->data)[i] = f32_to_f16(rng_f(r));
        break;
    case DT_BF16:
        for (size_t i = 0; i < n; i++) ((uint16_t *)m->data)[i] = f32_to_bf16(rng_f(r));
        break;
    case DT_Q8: /* padding left as garbage: activations are zero there */
        for (size_t i = 0; i < db; i++) ((int8_t *)m->data)[i] = (int8_t)(rng_u32(r) % 255 - 127);
        break;
    default: /* Q4, Q6, Q5, IQ4, IQ3: every bit pattern is a valid level */
        for (size_t i = 0; i < db; i++) ((uint8_t *)m->data)[i] = (uint8_t)rng_u32(r);
        break;
    }
    for (size_t i = 0; i < sb / 2; i++) /* super-block types: D, then random 6-bit sub-scales */
        m->scales[i] = !dtype_is_super(t) ? f32_to_f16(0.001f + 0.02f * (rng_f(r) + 1))
                       : i % QSUPER_WORDS ? (uint16_t)rng_u32(r)
                       : i % 28 == 0      ? (uint16_t)(1 + rng_u32(r) % 0x3ff) /* subnormal D */
                                          : f32_to_f16(0.0001f + 0.0006f * (rng_f(r) + 1));
    if (with_in_scale) {
        m->in_scale = malloc((size_t)cols * sizeof(float));
        for (int c = 0; c < cols; c++) m->in_scale[c] = 0.25f + 2.0f * (rng_f(r) + 1);
    }
    m->q = (QMat){.type = t, .rows = rows, .cols = cols, .data = m->data,
                  .scales = m->scales, .in_scale = m->in_scale};
}

static void mat_free(TestMat *m)
{
    free(m->raw);
    free(m->scales);
    free(m->in_scale);
}

/* Largest |got - ref| / allowed over Y, where allowed per element is
 * float rounding (relative to sum |w x|) plus, for int8 activations, the
 * activation quantization bound sum_j |w_j| * max|x_block| / 254. */
static double worst_error(const QMat *W, const float *X, int n, const float *got, const float *ref)
{
    int quant = dtype_is_block(W->type);
    QMat raw = *W;
    raw.in_scale = NULL;
    float *w = malloc((size_t)W->cols * sizeof(float));
    float *ws = malloc((size_t)W->cols * sizeof(float));
    double worst = 0;
    for (int r = 0; r < W->rows; r++) {
        qmat_row_f32(w, &raw, r);
        qmat_row_f32(ws, W, r);
        for (int t = 0; t < n; t++) {
            const float *x = X + (size_t)t * W->cols;
            double mag = 0, qb = 0;
            for (int b = 0; b * 32 < W->cols; b++) {
                double amax = 0, wsum = 0;
                for (int j = b * 32; j < W->cols && j < b * 32 + 32; j++) {
                    double xs = (double)x[j] * (W->in_scale ? W->in_scale[j] : 1.0f);
                    if (fabs(xs) > amax) amax = fabs(xs);
                    wsum += fabs(w[j]);
                    mag += fabs((double)ws[j] * x[j]);
                }
                qb += wsum * amax / 254.0;
            }
            double allowed = 3e-5 * mag + 1e-6 + (quant ? 1.001 * qb + 1e-5 * mag : 0);
            double err = fabs((double)got[(size_t)t * W->rows + r] - ref[(size_t)t * W->rows + r]);
            if (!(err <= allowed)) err = 1e30; /* NaN too */
            if (err / allowed > worst) worst = err / allowed;
        }
    }
    free(w);
    free(ws);
    return worst;
}

static void test_f16_helpers(Kern *k)
{
    Rng rng = {99};
    static const int sizes[] = {1, 7, 16, 33, 64, 128, 129};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int n = sizes[s];
        uint16_t h[130];
        float y[130], yr[130];
        for (int i = 0; i < n + 1; i++) { /* h + 1: odd alignment */
            h[i] = f32_to_f16(rng_f(&rng));
            y[i] = yr[i] = rng_f(&rng);
        }
        for (int i = 0; i < n; i++) yr[i] += 0.37f * f16_to_f32(h[i + 1]);
        kern_axpy_f16(k, y, 0.37f, h + 1, n);
        double worst = 0;
        for (int i = 0; i < n + 1; i++) worst = fmax(worst, fabs(y[i] - yr[i]));
        CHECK(worst <= 1e-6, "%s axpy_f16 n %d: error %g (or wrote past n)", kern_isa(k), n, worst);
    }
}

/* kern_silu_mul against its scalar twin: odd lengths, the clamped range
 * (|g| > 87) and zeros, in place too (y == g). */
static void test_silu(Kern *k)
{
    Rng rng = {7};
    static const size_t sizes[] = {1, 3, 8, 15, 16, 17, 100, 1000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        float g[1000], u[1000], y[1001], r[1000];
        for (size_t i = 0; i < n; i++) {
            g[i] = rng_f(&rng) * (i % 7 == 0 ? 200 : i % 5 == 0 ? 30 : 8);
            u[i] = rng_f(&rng) * 3;
        }
        if (n > 2) g[1] = 0, g[2] = -0.0f;
        kern_silu_mul_ref(r, g, u, n);
        y[n] = 12345.0f;
        kern_silu_mul(k, y, g, u, n);
        double worst = 0;
        /* relative, except near 0: silu(g) for g < -87 is below 1e-35 either way */
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)y[i] - r[i]) / (fabs((double)r[i]) + 1e-20));
        CHECK(worst <= 3e-7 && y[n] == 12345.0f, "%s silu_mul n %zu: relative error %g (or wrote past n)", kern_isa(k),
              n, worst);
        kern_silu_mul(k, g, g, u, n); /* in place */
        int same = !memcmp(g, y, n * sizeof(float));
        CHECK(same, "%s silu_mul n %zu in place differs", kern_isa(k), n);
    }
}

/* A random f16 cache of n rows `stride` halves apart (K, V start one half
 * in, so rows are only 2-byte aligned) and nq random queries of hd. */
typedef struct AttnCase {
    uint16_t *K, *V;
    float *q, *a, *ar; /* queries; the kernel's and the twin's acc */
    size_t stride;
} AttnCase;

static AttnCase attn_case(Rng *rng, int nq, int hd, int n)
{
    AttnCase c = {.stride = (size_t)hd * 2 + 3};
    c.K = malloc(c.stride * n * 2 + 2), c.V = malloc(c.stride * n * 2 + 2);
    c.q = malloc((size_t)nq * hd * 4), c.a = malloc((size_t)nq * hd * 4), c.ar = malloc((size_t)nq * hd * 4);
    for (size_t i = 0; i < c.stride * n + 1; i++) {
        c.K[i] = f32_to_f16(rng_f(rng) * 2);
        c.V[i] = f32_to_f16(rng_f(rng));
    }
    for (int i = 0; i < nq * hd; i++) c.q[i] = rng_f(rng) * 0.5f;
    return c;
}

static void attn_case_free(AttnCase *c) { free(c->K), free(c->V), free(c->q), free(c->a), free(c->ar); }

/* The worst error of the kernel's (m, acc / l) against the twin's, over nq
 * queries. */
static double attn_error(const AttnCase *c, int nq, int hd, const float *m, const float *l, const float *mr,
                         const float *lr)
{
    double worst = 0;
    for (int g = 0; g < nq; g++) {
        worst = fmax(worst, fabs((double)m[g] - mr[g]) / (fabs((double)mr[g]) + 1));
        for (int d = 0; d < hd; d++)
            worst = fmax(worst, fabs((double)c->a[g * hd + d] / l[g] - (double)c->ar[g * hd + d] / lr[g]));
    }
    return worst;
}

/* kern_attn_f16 against its scalar twin: GQA groups, head sizes the SIMD
 * versions take whole or fall back on, block-crossing position counts, rows
 * of a strided (odd) cache. Compares m and the normalized output acc / l. */
static void test_attn_f16(Kern *k)
{
    Rng rng = {11};
    static const int Gs[] = {1, 2, 6}, hds[] = {7, 8, 40, 64, 128}, ns[] = {1, 5, 64, 65, 200};
    for (size_t gi = 0; gi < 3; gi++)
        for (size_t hi = 0; hi < 5; hi++)
            for (size_t ni = 0; ni < 5; ni++) {
                int G = Gs[gi], hd = hds[hi], n = ns[ni];
                AttnCase c = attn_case(&rng, G, hd, n);
                float m[6], l[6], mr[6], lr[6];
                kern_attn_f16(k, c.a, m, l, c.q, G, hd, c.K + 1, c.V + 1, c.stride, n);
                kern_attn_f16_ref(c.ar, mr, lr, c.q, G, hd, c.K + 1, c.V + 1, c.stride, n);
                double worst = attn_error(&c, G, hd, m, l, mr, lr);
                CHECK(worst <= 2e-5, "%s attn_f16 G %d hd %d n %d: error %g", kern_isa(k), G, hd, n, worst);
                attn_case_free(&c);
            }
}

/* kern_attn_prefill_f16 against its twin: query counts, head sizes (each
 * backend takes multiples of its vector width; 6 none), blocks cut
 * anywhere, visible lengths from 1 to all positions. */
static void test_attn_prefill(Kern *k)
{
    Rng rng = {13};
    static const int nqs[] = {1, 5, 60}, hds[] = {16, 20, 40, 48, 64, 128, 256}, ns[] = {1, 17, 64, 65, 200};
    for (size_t qi = 0; qi < 3; qi++)
        for (size_t hi = 0; hi < 7; hi++)
            for (size_t ni = 0; ni < 5; ni++) {
                int nq = nqs[qi], hd = hds[hi], n = ns[ni];
                AttnCase c = attn_case(&rng, nq, hd, n);
                float m[60], l[60], mr[60], lr[60];
                int vis[60];
                for (int i = 0; i < nq; i++) vis[i] = i == nq - 1 ? n : 1 + (int)(rng_u32(&rng) % n);
                /* -1: no such kernel here, attention keeps its own path */
                if (!kern_attn_prefill_f16(k, c.a, m, l, c.q, nq, hd, c.K + 1, c.V + 1, c.stride, vis)) {
                    kern_attn_prefill_f16_ref(c.ar, mr, lr, c.q, nq, hd, c.K + 1, c.V + 1, c.stride, vis);
                    double worst = attn_error(&c, nq, hd, m, l, mr, lr);
                    CHECK(worst <= 2e-5, "%s attn_prefill_f16 nq %d hd %d n %d: error %g", kern_isa(k), nq, hd, n, worst);
                }
                attn_case_free(&c);
            }
    float a[16], m[1], l[1], q[16] = {0};
    uint16_t kv[17] = {0};
    int vis = 1;
    CHECK(kern_attn_prefill_f16(k, a, m, l, q, 1, 6, kv, kv, 6, &vis) == -1, "%s: hd 6 refused", kern_isa(k));
}

static void test_backend(const char *isa, int threads)
{
    Err e;
    Kern *k = kern_create(threads, isa, &e);
    if (!k) {
        printf("kern: backend %s not available here (%s)\n", isa, e.msg);
        return;
    }
    CHECK(!strcmp(kern_isa(k), isa), "kern_isa %s != %s", kern_isa(k), isa);
    test_f16_helpers(k);
    test_silu(k);
    test_attn_f16(k);
    test_attn_prefill(k);
    CHECK(kern_threads(k) == threads, "threads %d", kern_threads(k));
    static const int rows_v[] = {1, 7, 31, 33, 48, 100, 257};
    static const int cols_v[] = {1, 7, 31, 33, 48, 100, 257, 300, 520, 1024};
    static const int n_v[] = {1, 2, 3, 5, 17};
    Rng rng = {0x9e3779b97f4a7c15ull ^ (uint64_t)threads};
    int combo = 0;
    for (int t = DT_F32; t < DT_COUNT; t++) {
        int fails = 0, binv_fails = 0;
        for (size_t ri = 0; ri < sizeof rows_v / sizeof *rows_v; ri++)
            for (size_t ci = 0; ci < sizeof cols_v / sizeof *cols_v; ci++)
                for (size_t ni = 0; ni < sizeof n_v / sizeof *n_v; ni++) {
                    int rows = rows_v[ri], cols = cols_v[ci], n = n_v[ni];
                    TestMat m;
                    mat_random(&m, &rng, (DType)t, rows, cols, combo % 3 == 1, combo % 2 == 1);
                    combo++;
                    float *X = malloc((size_t)n * cols * sizeof(float));
                    float *Y = malloc((size_t)n * rows * sizeof(float));
                    float *R = malloc((size_t)n * rows * sizeof(float));
                    for (size_t i = 0; i < (size_t)n * cols; i++) {
                        X[i] = rng_f(&rng);
                        if (rng_u32(&rng) % 97 == 0) X[i] *= 40; /* outliers */
                    }
                    for (size_t i = 0; i < (size_t)n * rows; i++) Y[i] = NAN;
                    kern_matmul(k, Y, &m.q, X, n);
                    kern_matmul_ref(R, &m.q, X, n);
                    double w = worst_error(&m.q, X, n, Y, R);
                    if (n > 1 && n < 8) { /* decode batches: a token's row as if alone, bit for bit */
                        int same = 1;
                        for (int tk = 0; tk < n && same; tk++) {
                            kern_matmul(k, R, &m.q, X + (size_t)tk * cols, 1);
                            same = !memcmp(R, Y + (size_t)tk * rows, (size_t)rows * sizeof(float));
                        }
                        if (!same && binv_fails++ < 5)
                            CHECK(0, "%s %s rows %d cols %d n %d: a token's row differs from the same token alone",
                                  isa, dtype_name((DType)t), rows, cols, n);
                        kern_matmul_ref(R, &m.q, X, n);
                    }
                    if (w > 1 && fails++ < 5)
                        CHECK(0, "%s %s rows %d cols %d n %d in_scale %d: error %.3g x allowed",
                              isa, dtype_name((DType)t), rows, cols, n, m.in_scale != NULL, w);
                    else if (w <= 1)
                        CHECK(1, "ok");
                    free(X);
                    free(Y);
                    free(R);
                    mat_free(&m);
                }
        CHECK(fails == 0, "%s %s: %d shapes out of tolerance", isa, dtype_name((DType)t), fails);
        CHECK(binv_fails == 0, "%s %s: %d decode batches where a token's result depends on the batch", isa,
              dtype_name((DType)t), binv_fails);
        printf("kern: %s %s (%d threads) checked\n", isa, dtype_name((DType)t), threads);
    }
    kern_destroy(k);
}

/* Prefill-sized products: more tokens than a tile backend takes in one pass
 * (256) and more columns than one chunk of weights (512), rows not a
 * multiple of 32, every weight type, on every backend this CPU runs. */
static void test_large(void)
{
    static const char *isas[] = {"avx512", "amx", "avx2", "neon"};
    Rng rng = {4242};
    for (int ii = 0; ii < 4; ii++) {
        Kern *k = kern_create(2, isas[ii], NULL);
        if (!k) continue;
        for (int t = DT_F16; t < DT_COUNT; t++) {
            int rows = 83, cols = 1100, n = 300;
            TestMat m;
            mat_random(&m, &rng, (DType)t, rows, cols, t == DT_Q8, t == DT_BF16);
            float *X = malloc((size_t)n * cols * sizeof(float));
            float *Y = malloc((size_t)n * rows * sizeof(float));
            float *R = malloc((size_t)n * rows * sizeof(float));
            for (size_t i = 0; i < (size_t)n * cols; i++) X[i] = rng_f(&rng);
            for (size_t i = 0; i < (size_t)n * rows; i++) Y[i] = NAN;
            kern_matmul(k, Y, &m.q, X, n);
            kern_matmul_ref(R, &m.q, X, n);
            double w = worst_error(&m.q, X, n, Y, R);
            CHECK(w <= 1, "%s %s rows %d cols %d n %d: error %.3g x allowed", isas[ii], dtype_name((DType)t), rows, cols, n, w);
            free(X);
            free(Y);
            free(R);
            mat_free(&m);
        }
        kern_destroy(k);
    }
}

/* The int8 activation path must be close to the float answer, not just within
 * the bound: on a long random row the relative error stays well under 1%. */
static void test_quant_accuracy(void)
{
    Kern *k = kern_create(2, NULL, NULL);
    CHECK(k != NULL, "default backend");
    if (!k) return;
    Rng rng = {12345};
    int rows = 64, cols = 1536;
    float *w = malloc((size_t)rows * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = rng_f(&rng);
    float *x = malloc((size_t)cols * sizeof(float));
    for (int c = 0; c < cols; c++) x[c] = rng_f(&rng);
    size_t db = qmat_data_bytes(DT_Q8, rows, cols), sb = qmat_scale_bytes(DT_Q8, rows, cols);
    void *qd = malloc(db);
    uint16_t *qs = malloc(sb);
    quant_matrix(DT_Q8, qd, qs, w, rows, cols);
    QMat q = {.type = DT_Q8, .rows = rows, .cols = cols, .data = qd, .scales = qs};
    float *y = malloc(rows * sizeof(float)), *yr = malloc(rows * sizeof(float));
    kern_matmul(k, y, &q, x, 1);
    kern_matmul_ref(yr, &q, x, 1);
    double num = 0, den = 0;
    for (int r = 0; r < rows; r++) {
        num += (y[r] - yr[r]) * (double)(y[r] - yr[r]);
        den += (double)yr[r] * yr[r];
    }
    CHECK(sqrt(num / den) < 0.01, "%s q8 relative rms error %.4g", kern_isa(k), sqrt(num / den));
    free(w);
    free(x);
    free(qd);
    free(qs);
    free(y);
    free(yr);
    kern_destroy(k);
}

typedef struct ParCtx {
    int *hits;
} ParCtx;

static void par_fn(void *ctx, int task) { ((ParCtx *)ctx)->hits[task]++; }

static void test_pool(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        Kern *k = kern_create(threads, "scalar", NULL);
        CHECK(k != NULL, "create %d threads", threads);
        if (!k) continue;
        int hits[1000] = {0}, bad = 0;
        ParCtx c = {hits};
        for (int rep = 0; rep < 200; rep++) kern_parallel(k, rep % 2 ? 1000 : 3, par_fn, &c);
        for (int i = 0; i < 1000; i++)
            if (hits[i] != (i < 3 ? 200 : 100)) bad++;
        CHECK(bad == 0, "pool with %d threads: %d tasks ran the wrong number of times", threads, bad);
        kern_destroy(k);
    }
    Kern *k = kern_create(0, NULL, NULL);
    CHECK(k && kern_threads(k) >= 1, "n_threads 0 gives physical cores");
    if (k) printf("kern: default backend %s, %d threads\n", kern_isa(k), kern_threads(k));
    double bw = k ? kern_read_bandwidth(k, 8 << 20, 2) : -1;
    CHECK(bw > 0.1, "read bandwidth %.2f GB/s", bw);
    kern_destroy(k);
    Err e = {{0}};
    CHECK(kern_create(1, "sse9", &e) == NULL && strstr(e.msg, "unknown"), "unknown isa: %s", e.msg);
}

static void test_quantizers(void)
{
    Rng rng = {777};
    int rows = 5, cols = 100; /* 4 blocks, last one padded */
    float w[5 * 100], back[100];
    for (int i = 0; i < rows * cols; i++) w[i] = rng_f(&rng) * (i % 7 == 0 ? 3 : 1);
    for (int t = DT_F32; t <= DT_Q4; t++) {
        size_t db = qmat_data_bytes((DType)t, rows, cols), sb = qmat_scale_bytes((DType)t, rows, cols);
        void *d = calloc(1, db);
        uint16_t *s = sb ? calloc(1, sb) : NULL;
        quant_matrix((DType)t, d, s, w, rows, cols);
        QMat q = {.type = (DType)t, .rows = rows, .cols = cols, .data = d, .scales = s};
        double worst = 0;
        for (int r = 0; r < rows; r++) {
            qmat_row_f32(back, &q, r);
            for (int b = 0; b * 32 < cols; b++) {
                float amax = 0;
                for (int j = b * 32; j < cols && j < b * 32 + 32; j++)
                    if (fabsf(w[r * cols + j]) > amax) amax = fabsf(w[r * cols + j]);
                /* allowed: half a step (plus f16 scale rounding) */
                double step = t == DT_Q8 ? amax / 127 : 0;
                double tol = t == DT_F32 ? 0 : t == DT_F16 ? amax / 1024 : t == DT_BF16 ? amax / 128 : t == DT_Q8 ? 0.5 * step * 1.01 + amax * 1e-3 : amax / 8 * 1.01 + amax * 1e-3;
                for (int j = b * 32; j < cols && j < b * 32 + 32; j++) {
                    double err = fabs(back[j] - w[r * cols + j]);
                    if (err > tol && err / (tol + 1e-30) > worst) worst = err / (tol + 1e-30);
                    if (err > tol && tol == 0) worst = 1e9;
                }
            }
        }
        CHECK(worst <= 1, "quantize %s: error %.3g x allowed", dtype_name((DType)t), worst);
        if (t == DT_Q8 || t == DT_Q4) {
            int pad_ok = 1;
            int nb = (cols + 31) / 32;
            for (int r = 0; r < rows; r++)
                for (int j = cols; j < nb * 32; j++) {
                    if (t == DT_Q8) pad_ok &= ((int8_t *)d)[(size_t)r * nb * 32 + j] == 0;
                    else {
                        uint8_t byte = ((uint8_t *)d)[(size_t)r * nb * 16 + (j / 32) * 16 + (j % 16)];
                        pad_ok &= ((j % 32) < 16 ? (byte & 15) : (byte >> 4)) == 8;
                    }
                }
            CHECK(pad_ok, "%s padding is zero", dtype_name((DType)t));
        }
        free(d);
        free(s);
    }
    /* the importance-weighted q4 search never does worse (weighted) than the
     * plain q4 quantizer, and better on the columns that matter */
    float imp[100];
    for (int j = 0; j < cols; j++) imp[j] = j % 10 == 0 ? 100.0f : 0.01f;
    uint8_t qa[4 * 16], qb[4 * 16];
    uint16_t sa[4], sbv[4];
    quant_row_q4(qa, sa, w, cols);
    quant_row_q4_weighted(qb, sbv, w, cols, imp);
    QMat ma = {.type = DT_Q4, .rows = 1, .cols = cols, .data = qa, .scales = sa};
    QMat mb = {.type = DT_Q4, .rows = 1, .cols = cols, .data = qb, .scales = sbv};
    float ba[100], bb[100];
    qmat_row_f32(ba, &ma, 0);
    qmat_row_f32(bb, &mb, 0);
    double ea = 0, eb = 0;
    for (int j = 0; j < cols; j++) {
        ea += imp[j] * (ba[j] - w[j]) * (ba[j] - w[j]);
        eb += imp[j] * (bb[j] - w[j]) * (bb[j] - w[j]);
    }
    CHECK(eb <= ea * 1.0001 && eb < ea, "weighted q4 error %.4g vs plain %.4g", eb, ea);
}

/* The new block types: levels survive packing (random levels, odd column
 * counts), and quant_row's error on Gaussian-like rows is ordered by bits
 * and within a bound per type; the importance weights lower the weighted
 * error. */
static void test_block_types(void)
{
    Rng rng = {31337};
    static const DType ts[] = {DT_Q6, DT_Q5, DT_IQ4, DT_IQ3};
    /* relative rms error bounds on the rows below (measured ~0.75x these) */
    static const double bound[] = {0.035, 0.07, 0.12, 0.26};
    double rel[4] = {0};
    for (int ti = 0; ti < 4; ti++) {
        DType t = ts[ti];
        int cols = 300, nb = (cols + 31) / 32, nl = quant_nlevels(t), bad = 0;
        uint8_t *row = calloc(1, qmat_data_bytes(t, 1, cols));
        uint16_t *sc = calloc((size_t)nb, 2);
        int want[320];
        for (int b = 0; b < nb; b++) {
            int lv[32];
            for (int e = 0; e < 32; e++) lv[e] = want[b * 32 + e] = (int)(rng_u32(&rng) % (uint32_t)nl);
            quant_block_pack(t, row, cols, b, lv);
            sc[b] = f32_to_f16(0.5f);
        }
        QMat q = {.type = t, .rows = 1, .cols = cols, .data = row, .scales = sc};
        float back[300];
        qmat_row_f32(back, &q, 0);
        for (int j = 0; j < cols; j++) bad += back[j] != 0.5f * (float)quant_level_value(t, want[j]);
        CHECK(bad == 0, "%s: %d levels changed by packing", dtype_name(t), bad);
        /* Gaussian-like rows (sum of uniforms) with a few outliers */
        float x[300], imp[300];
        double num = 0, den = 0, ew = 0, eu = 0;
        for (int r = 0; r < 20; r++) {
            for (int j = 0; j < cols; j++) {
                x[j] = rng_f(&rng) + rng_f(&rng) + rng_f(&rng);
                if (rng_u32(&rng) % 61 == 0) x[j] *= 4;
                imp[j] = j % 7 == 0 ? 50.0f : 0.1f;
            }
            quant_row(t, row, sc, x, cols, NULL);
            qmat_row_f32(back, &q, 0);
            for (int j = 0; j < cols; j++) {
                num += (back[j] - x[j]) * (double)(back[j] - x[j]), den += (double)x[j] * x[j];
                eu += imp[j] * (back[j] - x[j]) * (double)(back[j] - x[j]);
            }
            quant_row(t, row, sc, x, cols, imp);
            qmat_row_f32(back, &q, 0);
            for (int j = 0; j < cols; j++) ew += imp[j] * (back[j] - x[j]) * (double)(back[j] - x[j]);
        }
        rel[ti] = sqrt(num / den);
        printf("kern: %s (%.2f bits/weight) relative rms error %.4f, importance-weighted %.4g vs %.4g\n", dtype_name(t),
               dtype_bits(t), rel[ti], ew, eu);
        CHECK(rel[ti] < bound[ti], "%s relative rms error %.4f (bound %.3f)", dtype_name(t), rel[ti], bound[ti]);
        CHECK(ew < eu, "%s: importance-weighted error %.4g not below the unweighted %.4g", dtype_name(t), ew, eu);
        free(row);
        free(sc);
    }
    CHECK(rel[0] < rel[1] && rel[1] < rel[2] && rel[2] < rel[3], "error not ordered by bits");
    int wrong = 0; /* quant_nearest against a plain search over the levels */
    for (int ti = 0; ti < 4; ti++)
        for (float v = -140.0f; v <= 140.0f; v += 0.37f) {
            int best = 0, nl = quant_nlevels(ts[ti]);
            for (int l = 1; l < nl; l++)
                if (fabsf(v - (float)quant_level_value(ts[ti], l)) < fabsf(v - (float)quant_level_value(ts[ti], best))) best = l;
            wrong += fabsf(v - (float)quant_level_value(ts[ti], best)) <
                     fabsf(v - (float)quant_level_value(ts[ti], quant_nearest(ts[ti], v)));
        }
    /* and at the edges of the table lookup: just below 128, -128 and the
     * midpoints, where v + 128 rounds up to the next cell */
    static const float edge[] = {127.99999f, 127.0f, 128.0f, -128.0f, -127.99999f, -128.00002f, 6.9999995f, 7.0f,
                                 -74.00001f, -115.50001f, -115.49999f, -0.0000001f, 0.0f, 30.499998f, 103.50001f};
    for (int ti = 0; ti < 4; ti++)
        for (int i = 0; i < (int)(sizeof edge / sizeof edge[0]); i++) {
            float v = edge[i];
            int best = 0, nl = quant_nlevels(ts[ti]);
            for (int l = 1; l < nl; l++)
                if (fabsf(v - (float)quant_level_value(ts[ti], l)) < fabsf(v - (float)quant_level_value(ts[ti], best))) best = l;
            wrong += fabsf(v - (float)quant_level_value(ts[ti], best)) <
                     fabsf(v - (float)quant_level_value(ts[ti], quant_nearest(ts[ti], v)));
        }
    CHECK(wrong == 0, "quant_nearest: %d values not on their nearest level", wrong);
    CHECK(dtype_bits(DT_Q6) == 6.5 && dtype_bits(DT_Q5) == 5.5 && dtype_bits(DT_IQ4) == 4.5 && dtype_bits(DT_IQ3) == 3.5,
          "bits per weight");
    CHECK(dtype_from_name("iq3") == DT_IQ3 && dtype_from_name("iq2") < 0, "type names");
}

/* The super-block types: quantization error close to their base types' at
 * 0.25 bits/weight less and importance honoured (test_backend checks the
 * backends' super-block kernels against the reference). */
static void test_super_types(void)
{
    Rng rng = {4242};
    static const DType ts[] = {DT_Q6K, DT_Q5K, DT_IQ4K, DT_IQ3K};
    static const double bits[] = {6.25, 5.25, 4.25, 3.25};
    for (int ti = 0; ti < 4; ti++) {
        DType t = ts[ti], bt = dtype_base(t);
        CHECK(dtype_bits(t) == bits[ti] && dtype_bits(t) == dtype_bits(bt) - 0.25, "%s: %.4f bits/weight", dtype_name(t),
              dtype_bits(t));
        CHECK(dtype_from_name(dtype_name(t)) == (int)t, "%s: name round trip", dtype_name(t));
        int cols = 600, nb = (cols + 31) / 32; /* 3 super-blocks, the last one partial */
        CHECK(qmat_scale_bytes(t, 2, cols) == 2 * 3 * 8, "%s: scale bytes %zu", dtype_name(t), qmat_scale_bytes(t, 2, cols));
        uint8_t *row = calloc(1, qmat_data_bytes(t, 1, cols)), *rowb = calloc(1, qmat_data_bytes(bt, 1, cols));
        uint16_t sc[16], scb[32], hs[32];
        float x[600], imp[600], back[600];
        double e_sup = 0, e_base = 0, den = 0, ew = 0, eu = 0;
        for (int r = 0; r < 20; r++) {
            for (int j = 0; j < cols; j++) {
                /* blocks of very different magnitudes: the sub-scales' range is used */
                x[j] = (rng_f(&rng) + rng_f(&rng)) * (1.0f + (float)((j / 32) % 5));
                imp[j] = j % 5 == 0 ? 40.0f : 0.2f;
            }
            QMat q = {.type = t, .rows = 1, .cols = cols, .data = row, .scales = sc};
            QMat qb = {.type = bt, .rows = 1, .cols = cols, .data = rowb, .scales = scb};
            quant_row(t, row, sc, x, cols, NULL);
            quant_row(bt, rowb, scb, x, cols, NULL);
            qmat_row_f32(back, &q, 0);
            for (int j = 0; j < cols; j++) e_sup += (back[j] - x[j]) * (double)(back[j] - x[j]), den += (double)x[j] * x[j];
            for (int j = 0; j < cols; j++) eu += imp[j] * (back[j] - x[j]) * (double)(back[j] - x[j]);
            qmat_row_f32(back, &qb, 0);
            for (int j = 0; j < cols; j++) e_base += (back[j] - x[j]) * (double)(back[j] - x[j]);
            quant_row(t, row, sc, x, cols, imp);
            qmat_row_f32(back, &q, 0);
            for (int j = 0; j < cols; j++) ew += imp[j] * (back[j] - x[j]) * (double)(back[j] - x[j]);
            qmat_block_scales(hs, &q, 0); /* the block scales are D times the sub-scales */
            int off = 0;
            for (int b = 0; b < nb; b++)
                off += hs[b] != qb_super_scale(sc[b / 8 * 4], qb_super_k(sc + b / 8 * 4, b % 8));
            CHECK(off == 0, "%s: %d block scales differ from D * k", dtype_name(t), off);
        }
        double rs = sqrt(e_sup / den), rb = sqrt(e_base / den);
        printf("kern: %s (%.2f bits/weight) relative rms error %.4f (%s %.4f)\n", dtype_name(t), dtype_bits(t), rs,
               dtype_name(bt), rb);
        CHECK(rs < rb * 1.08, "%s: relative rms error %.4f against %s's %.4f", dtype_name(t), rs, dtype_name(bt), rb);
        CHECK(ew < eu, "%s: importance-weighted error %.4g not below the unweighted %.4g", dtype_name(t), ew, eu);
        free(row), free(rowb);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress visible under qemu */
    test_pool();
    test_quantizers();
    test_block_types();
    test_super_types();
    static const char *isas[] = {"scalar", "avx2", "avx512", "amx", "neon"};
    for (int i = 0; i < 5; i++) test_backend(isas[i], i == 0 ? 1 : 2);
    test_backend("scalar", 3);
    test_large();
    test_quant_accuracy();
    return check_summary("kern");
}
