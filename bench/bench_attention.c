/* bench_attention.c - attention() (run/attention.c) at Qwen2-1.5B head shapes
 * (12 query heads, 2 KV heads, head_dim 128, f16 cache), against the previous
 * design kept here for comparison: one task per (row, head), each cached
 * position scored and accumulated with kern_dot_f16 / kern_axpy_f16.
 * One thread, timed with the thread's CPU clock, so a busy machine does not
 * skew the comparison; best of reps.
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

/* the design attention.c replaced: per (row, head), position by position */
static void old_attention(const ModelConfig *c, Kern *k, const BatchRow *rows, int n, int layer, const float *q,
                          float *out)
{
    int hd = c->head_dim, nh = c->n_heads;
    for (int task = 0; task < n * nh; task++) {
        int r = task / nh, h = task % nh, kvh = h / (nh / c->n_kv_heads);
        const KVCache *kv = rows[r].kv;
        const float *qh = q + ((size_t)r * nh + h) * hd;
        float *o = out + ((size_t)r * nh + h) * hd;
        size_t base = (size_t)layer * kv->n_ctx * kv->kv_dim + (size_t)kvh * hd;
        float acc[hd], sc[64], mx = -INFINITY, sum = 0, scale = 1.0f / sqrtf((float)hd);
        for (int i = 0; i < hd; i++) acc[i] = 0;
        for (int t0 = 0; t0 <= rows[r].pos; t0 += 64) {
            int nb = rows[r].pos + 1 - t0 < 64 ? rows[r].pos + 1 - t0 : 64;
            float bm = -INFINITY;
            for (int b = 0; b < nb; b++) {
                sc[b] = kern_dot_f16(k, (const uint16_t *)kv->k + base + (size_t)(t0 + b) * kv->kv_dim, qh, hd) * scale;
                if (sc[b] > bm) bm = sc[b];
            }
            if (bm > mx) {
                float corr = expf(mx - bm);
                sum *= corr;
                for (int i = 0; i < hd; i++) acc[i] *= corr;
                mx = bm;
            }
            for (int b = 0; b < nb; b++) {
                float p = expf(sc[b] - mx);
                sum += p;
                kern_axpy_f16(k, acc, p, (const uint16_t *)kv->v + base + (size_t)(t0 + b) * kv->kv_dim, hd);
            }
        }
        for (int i = 0; i < hd; i++) o[i] = acc[i] / sum;
    }
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
    printf("%-26s %12s %12s %8s\n", "case", "old ms", "new ms", "speedup");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int i = 0; i < cases[ci].n; i++) rows[i] = (BatchRow){.pos = cases[ci].pos0 + i, .kv = &kv};
        double best[2] = {1e30, 1e30};
        for (int rep = 0; rep < 5; rep++)
            for (int v = 0; v < 2; v++) {
                double t0 = cpu_now();
                if (v == 0) old_attention(&c, k, rows, cases[ci].n, 0, q, out);
                else attention(&c, k, rows, cases[ci].n, 0, q, out, &e);
                double dt = cpu_now() - t0;
                if (dt < best[v]) best[v] = dt;
            }
        printf("%-26s %12.3f %12.3f %7.2fx\n", cases[ci].what, best[0] * 1e3, best[1] * 1e3, best[0] / best[1]);
    }
    kv_free(&kv);
    kern_destroy(k);
    free(rows);
    free(q);
    free(out);
    return 0;
}
