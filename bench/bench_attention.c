/* bench_attention.c - attention() (run/attention.c) at Qwen2-1.5B head shapes
 * (12 query heads, 2 KV heads, head_dim 128, f16 cache, one layer): prefill
 * chunks and single decode rows at several context lengths. One thread,
 * timed with the thread's CPU clock, so a busy machine does not skew it;
 * best of 5.
 *
 *   make build/libduet.a && cc -std=c11 -O2 -D_GNU_SOURCE -Isrc -Iinclude -pthread \
 *       -o build/bench_attention bench/bench_attention.c build/libduet.a \
 *       -lcjson -lpcre2-8 -lutf8proc -lxxhash -lm
 *   build/bench_attention
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run/attention.h"
#include "util/half.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void)
{
    ModelConfig c = {.dim = 1536, .n_layers = 1, .n_heads = 12, .n_kv_heads = 2, .head_dim = 128};
    Err e = {0};
    Kern *k = kern_create(1, NULL, &e);
    KVCache kv;
    if (!k || kv_init(&kv, &c, 4096, KV_F16, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    size_t nval = (size_t)kv.n_ctx * kv.kv_dim;
    for (size_t i = 0; i < nval; i++) {
        ((uint16_t *)kv.k)[i] = f32_to_f16((float)((i * 2654435761u) % 1000) / 500.0f - 1.0f);
        ((uint16_t *)kv.v)[i] = f32_to_f16((float)((i * 40503u) % 1000) / 500.0f - 1.0f);
    }
    int nmax = 512;
    BatchRow *rows = calloc(nmax, sizeof *rows);
    float *q = malloc((size_t)nmax * 1536 * sizeof(float)), *out = malloc((size_t)nmax * 1536 * sizeof(float));
    for (int i = 0; i < nmax * 1536; i++) q[i] = (float)(i % 97) / 48.0f - 1.0f;
    struct { const char *what; int n, pos0; } cases[] = {
        {"prefill 128 rows from 0", 128, 0}, {"prefill 512 rows from 0", 512, 0},
        {"decode 1 row at pos 511", 1, 511}, {"decode 1 row at pos 4095", 1, 4095},
    };
    printf("isa %s, 1 thread, thread CPU time, best of 5\n", kern_isa(k));
    printf("%-26s %10s %14s\n", "case", "ms", "ns per (q,pos)");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int i = 0; i < cases[ci].n; i++) rows[i] = (BatchRow){.pos = cases[ci].pos0 + i, .kv = &kv};
        double best = 1e30, pairs = 0;
        for (int i = 0; i < cases[ci].n; i++) pairs += (double)c.n_heads * (rows[i].pos + 1);
        for (int rep = 0; rep < 5; rep++) {
            double t0 = cpu_now();
            if (attention(&c, k, rows, cases[ci].n, 0, q, out, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            double dt = cpu_now() - t0;
            if (dt < best) best = dt;
        }
        printf("%-26s %10.3f %14.1f\n", cases[ci].what, best * 1e3, best * 1e9 / pairs);
    }
    kv_free(&kv);
    kern_destroy(k);
    free(rows);
    free(q);
    free(out);
    return 0;
}
