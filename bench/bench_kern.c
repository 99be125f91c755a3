/* bench_kern.c - kern_matmul throughput at Qwen2-1.5B shapes, per backend and
 * weight type: GB/s of weights streamed at n = 1 (decode) and GFLOP/s at
 * n = 128 (prefill), plus the machine's multi-threaded read bandwidth.
 *
 *   make build/libduet.a && cc -std=c11 -O2 -D_GNU_SOURCE -Isrc -pthread \
 *       -o build/bench_kern bench/bench_kern.c build/libduet.a -lm
 *   build/bench_kern [isa|all] [dtype|all] [threads] [seconds per case]
 * threads = 1 times with the thread's CPU clock (per-core kernel speed,
 * robust to a busy machine); otherwise wall clock.
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

/* Median-free but robust enough: best of repeated timings within budget. */
static double time_matmul(Kern *k, float *Y, const QMat *W, const float *X, int n, double budget)
{
    kern_matmul(k, Y, W, X, n); /* warm up */
    double best = 1e30, start = now_s();
    int reps = 0;
    while (reps < 3 || (now_s() - start < budget && reps < 1000)) {
        double t0 = now_s();
        kern_matmul(k, Y, W, X, n);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
        reps++;
    }
    return best;
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
    static const int shapes[][2] = {{1536, 1536}, {256, 1536}, {8960, 1536}, {1536, 8960}, {151936, 1536}};
    static const char *isas[] = {"scalar", "avx2", "avx512", "neon"};
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
    printf("%-7s %-5s %-13s %10s %10s %12s\n", "isa", "type", "shape", "n=1 us", "n=1 GB/s", "n=128 GFLOP/s");
    for (int ii = 0; ii < 4; ii++) {
        if (strcmp(isa_sel, "all") && strcmp(isa_sel, isas[ii])) continue;
        Kern *k = kern_create(threads, isas[ii], NULL);
        if (!k) continue;
        for (int t = DT_F32; t <= DT_Q4; t++) {
            if (strcmp(dt_sel, "all") && strcmp(dt_sel, dtype_name((DType)t))) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                int rows = shapes[s][0], cols = shapes[s][1];
                size_t db = qmat_data_bytes((DType)t, rows, cols), sb = qmat_scale_bytes((DType)t, rows, cols);
                unsigned char *data = malloc(db);
                uint16_t *scales = sb ? malloc(sb) : NULL;
                if (!data || (sb && !scales)) return 1;
                /* small finite values in every format: 0x3c00-ish halves, bytes as is */
                for (size_t i = 0; i < db; i++) data[i] = (unsigned char)(i * 37 + 11);
                if (t == DT_F32)
                    for (size_t i = 0; i < db / 4; i++) ((float *)data)[i] = (float)(i % 13) * 0.01f;
                if (t == DT_F16 || t == DT_BF16)
                    for (size_t i = 0; i < db / 2; i++) ((uint16_t *)data)[i] = t == DT_F16 ? 0x2000 + i % 512 : 0x3c00 + i % 64;
                for (size_t i = 0; i < sb / 2; i++) scales[i] = 0x2000;
                QMat W = {.type = (DType)t, .rows = rows, .cols = cols, .data = data, .scales = scales};
                double t1 = time_matmul(k, Y, &W, X, 1, budget);
                /* n = 128: one timing pass budget; skipped (0) for big shapes on scalar */
                int skip = ii == 0 && (double)rows * cols > 4e6; /* scalar: minutes */
                double t128 = skip ? 0 : time_matmul(k, Y, &W, X, NMAX, ii == 0 ? 0 : budget);
                printf("%-7s %-5s %6dx%-6d %10.1f %10.2f %12.1f\n", isas[ii], dtype_name((DType)t), rows, cols,
                       t1 * 1e6, (double)(db + sb) / t1 * 1e-9, skip ? 0 : 2.0 * rows * cols * NMAX / t128 * 1e-9);
                fflush(stdout);
                free(data);
                free(scales);
            }
        }
        kern_destroy(k);
    }
    free(X);
    free(Y);
    return 0;
}
