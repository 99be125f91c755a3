/* bench_kern.c - kern_matmul throughput at Qwen2-1.5B shapes, per backend and
 * weight type: GB/s of weights streamed at n = 1 (decode) and GFLOP/s at
 * n = 128 (prefill), plus the machine's multi-threaded read bandwidth.
 *
 *   make build/libduet.a && cc -std=c11 -O2 -D_GNU_SOURCE -Isrc -pthread \
 *       -o build/bench_kern bench/bench_kern.c build/libduet.a -lm
 *   build/bench_kern [isa|all] [dtype|all] [threads] [seconds per case] [hot|cold[=MiB]] [ROWSxCOLS]
 * threads = 1 times with the thread's CPU clock (per-core kernel speed,
 * robust to a busy machine); otherwise wall clock. Times are medians.
 *
 * Hot (default): the same matrix every call, so at n = 1 the smaller shapes
 * are read from the caches (the lm_head is not). Cold: every call takes the
 * next matrix of the shape from a window over one buffer of MiB (default
 * 1024, far beyond the last-level cache), as decode does, and reports GB/s
 * at n = 1 and n = 4 (batched sessions); no n = 128 column.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kern/kern.h"

/* With 1 thread the pool runs inline, so thread CPU time measures the kernel
 * even on a loaded machine where wall time is mostly waiting for a core. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A window of `count` matrices of one shape, all views into one buffer:
 * matrix i starts i * stride bytes in (hot: count = 1). */
typedef struct Mats {
    QMat W;
    unsigned char *data;
    uint16_t *scales;
    size_t stride, sstride;
    int count;
} Mats;

static int mats_make(Mats *m, DType t, int rows, int cols, size_t window)
{
    size_t db = qmat_data_bytes(t, rows, cols), sb = qmat_scale_bytes(t, rows, cols);
    m->count = window > db ? (int)(window / db) : 1;
    if (m->count < 2 && window) m->count = 2; /* cold: never the same matrix twice running */
    /* strides not a multiple of 4 KiB, so matrices do not alias in the caches */
    m->stride = (db + 4096 + 64) & ~(size_t)63;
    m->sstride = (sb + 64 + 64) & ~(size_t)63;
    m->data = malloc(m->stride * m->count);
    m->scales = sb ? malloc(m->sstride * m->count) : NULL;
    if (!m->data || (sb && !m->scales)) return -1;
    size_t all = m->stride * m->count;
    /* small finite values in every format: 0x3c00-ish halves, bytes as is */
    for (size_t i = 0; i < all; i++) m->data[i] = (unsigned char)(i * 37 + 11);
    if (t == DT_F32)
        for (size_t i = 0; i < all / 4; i++) ((float *)m->data)[i] = (float)(i % 13) * 0.01f;
    if (t == DT_F16 || t == DT_BF16)
        for (size_t i = 0; i < all / 2; i++) ((uint16_t *)m->data)[i] = t == DT_F16 ? 0x2000 + i % 512 : 0x3c00 + i % 64;
    for (size_t i = 0; sb && i < m->sstride * m->count / 2; i++) m->scales[i] = 0x2000;
    m->W = (QMat){.type = t, .rows = rows, .cols = cols, .data = m->data, .scales = m->scales};
    return 0;
}

static void mats_free(Mats *m)
{
    free(m->data);
    free(m->scales);
}

/* Median seconds of kern_matmul over the window's matrices in turn, for at
 * least 5 calls and `budget` seconds (at most 2000 calls). */
static double time_matmul(Kern *k, float *Y, const Mats *m, const float *X, int n, double budget)
{
    enum { MAXREP = 2000 };
    static double dts[MAXREP];
    QMat W = m->W;
    kern_matmul(k, Y, &W, X, n); /* warm up */
    double start = now_s();
    int reps = 0;
    while (reps < 5 || (now_s() - start < budget && reps < MAXREP)) {
        int i = m->count > 1 ? (reps + 1) % m->count : 0;
        W.data = m->data + (size_t)i * m->stride;
        W.scales = m->scales ? (const uint16_t *)((const char *)m->scales + (size_t)i * m->sstride) : NULL;
        double t0 = now_s();
        kern_matmul(k, Y, &W, X, n);
        dts[reps++] = now_s() - t0;
    }
    qsort(dts, reps, sizeof *dts, cmp_double);
    return dts[reps / 2];
}

static void noop(void *ctx, int task)
{
    (void)ctx;
    (void)task;
}

int main(int argc, char **argv)
{
    const char *isa_sel = argc > 1 ? argv[1] : "all";
    const char *dt_sel = argc > 2 ? argv[2] : "all";
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    double budget = argc > 4 ? atof(argv[4]) : 0.3;
    size_t window = 0;
    if (argc > 5 && !strncmp(argv[5], "cold", 4))
        window = (size_t)(argv[5][4] == '=' ? atol(argv[5] + 5) : 1024) << 20;
    const char *shape_sel = argc > 6 ? argv[6] : NULL;
    /* q/o, k/v, gate/up, down, lm_head, and the fused q+k+v and gate+up */
    static const int shapes[][2] = {{1536, 1536}, {256, 1536}, {8960, 1536}, {1536, 8960},
                                    {151936, 1536}, {2048, 1536}, {17920, 1536}};
    static const char *isas[] = {"scalar", "avx2", "avx512", "amx", "neon"};
    enum { NISA = sizeof isas / sizeof *isas };
    if (threads == 1) bench_clock = CLOCK_THREAD_CPUTIME_ID;
    Err e;
    Kern *k0 = kern_create(threads, NULL, &e);
    if (!k0) {
        fprintf(stderr, "bench_kern: %s\n", e.msg);
        return 1;
    }
    printf("read bandwidth (%s, %d threads): %.1f GB/s\n", kern_isa(k0), kern_threads(k0),
           kern_read_bandwidth(k0, (size_t)512 << 20, 5));
    {
        /* dispatch overhead: an empty job on the pool, and a tiny matmul */
        int reps = 20000;
        double t0 = now_s();
        for (int i = 0; i < reps; i++) kern_parallel(k0, kern_threads(k0), noop, NULL);
        double per = (now_s() - t0) / reps;
        printf("pool dispatch (%d tasks, empty): %.2f us per call\n", kern_threads(k0), per * 1e6);
    }
    kern_destroy(k0);
    int NMAX = 128;
    float *X = malloc((size_t)NMAX * 8960 * sizeof(float));
    float *Y = malloc((size_t)NMAX * 151936 * sizeof(float));
    if (!X || !Y) return 1;
    for (size_t i = 0; i < (size_t)NMAX * 8960; i++) X[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    if (window)
        printf("cold: each call reads the next of the shape's matrices in a %zu MiB window\n", window >> 20);
    printf("%-7s %-5s %-13s %10s %10s %12s\n", "isa", "type", "shape", "n=1 us", "n=1 GB/s",
           window ? "n=4 GB/s" : "n=128 GFLOP/s");
    for (int ii = 0; ii < NISA; ii++) {
        if (strcmp(isa_sel, "all") && strcmp(isa_sel, isas[ii])) continue;
        Kern *k = kern_create(threads, isas[ii], NULL);
        if (!k) continue;
        for (int t = DT_F32; t < DT_COUNT; t++) {
            if (strcmp(dt_sel, "all") && strcmp(dt_sel, dtype_name((DType)t))) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                int rows = shapes[s][0], cols = shapes[s][1];
                char name[32];
                snprintf(name, sizeof name, "%dx%d", rows, cols);
                if (shape_sel && strcmp(shape_sel, name)) continue;
                size_t bytes = qmat_data_bytes((DType)t, rows, cols) + qmat_scale_bytes((DType)t, rows, cols);
                Mats m;
                if (mats_make(&m, (DType)t, rows, cols, window)) return 1;
                double t1 = time_matmul(k, Y, &m, X, 1, budget), col;
                if (window) {
                    col = bytes / time_matmul(k, Y, &m, X, 4, budget) * 1e-9;
                } else {
                    /* n = 128: one timing pass budget; skipped (0) for big shapes on scalar */
                    int skip = ii == 0 && (double)rows * cols > 4e6; /* scalar: minutes */
                    double t128 = skip ? 0 : time_matmul(k, Y, &m, X, NMAX, ii == 0 ? 0 : budget);
                    col = skip ? 0 : 2.0 * rows * cols * NMAX / t128 * 1e-9;
                }
                printf("%-7s %-5s %6dx%-6d %10.1f %10.2f %12.1f\n", isas[ii], dtype_name((DType)t), rows, cols,
                       t1 * 1e6, (double)bytes / t1 * 1e-9, col);
                fflush(stdout);
                mats_free(&m);
            }
        }
        kern_destroy(k);
    }
    free(X);
    free(Y);
    return 0;
}
