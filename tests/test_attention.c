/* test_attention.c - the blocked, grouped attention (run/attention.c) against
 * its position-by-position double-precision twin, on random queries and
 * caches of odd sizes: GQA groups of 1..6, f32 and f16 caches, prefill runs
 * longer than one task, single decode rows (split over positions when long),
 * and several sequences interleaved in one batch, on every kernel backend
 * this CPU has. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "run/attention.h"
#include "util/half.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static void fill_cache(KVCache *kv, unsigned *seed)
{
    size_t nval = (size_t)kv->n_layers * kv->n_ctx * kv->kv_dim;
    for (size_t i = 0; i < nval; i++) {
        float a = 2 * frand(seed), b = frand(seed);
        if (kv->type == KV_F32) {
            ((float *)kv->k)[i] = a;
            ((float *)kv->v)[i] = b;
        } else {
            ((uint16_t *)kv->k)[i] = f32_to_f16(a);
            ((uint16_t *)kv->v)[i] = f32_to_f16(b);
        }
    }
}

/* One case: `n_seq` sequences with rows given as (seq, pos) pairs. */
static void run_case(Kern *k, const char *isa, int nh, int nkv, int hd, KvType kt, const int (*spec)[2], int n,
                     int n_seq, int n_ctx)
{
    ModelConfig c = {.dim = nh * hd, .n_layers = 2, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd, .max_pos = 1 << 20};
    KVCache kv[4];
    Err e = {0};
    unsigned seed = (unsigned)(nh * 131 + nkv * 17 + hd * 7 + n + kt);
    for (int s = 0; s < n_seq; s++) {
        CHECK(kv_init(&kv[s], &c, n_ctx, kt, &e) == 0, "kv_init: %s", e.msg);
        fill_cache(&kv[s], &seed);
    }
    BatchRow *rows = calloc((size_t)n, sizeof *rows);
    size_t qn = (size_t)n * nh * hd;
    float *q = malloc(qn * sizeof(float)), *got = malloc(qn * sizeof(float)), *want = malloc(qn * sizeof(float));
    for (int i = 0; i < n; i++) rows[i] = (BatchRow){.pos = spec[i][1], .kv = &kv[spec[i][0]]};
    for (size_t i = 0; i < qn; i++) q[i] = 3 * frand(&seed);
    for (int layer = 0; layer < 2; layer++) {
        CHECK(attention(&c, k, rows, n, layer, q, got, &e) == 0, "attention: %s", e.msg);
        attention_ref(&c, rows, n, layer, q, want);
        float worst = 0;
        for (size_t i = 0; i < qn; i++) {
            float d = fabsf(got[i] - want[i]);
            if (!(d <= worst)) worst = d; /* NaN counts as worst */
        }
        CHECK(worst < 2e-5f, "%s heads %d/%d hd %d kv %s rows %d layer %d: max |diff| %g", isa, nh, nkv, hd,
              kt == KV_F16 ? "f16" : "f32", n, layer, worst);
    }
    for (int s = 0; s < n_seq; s++) kv_free(&kv[s]);
    free(rows);
    free(q);
    free(got);
    free(want);
}

int main(void)
{
    const char *isas[] = {"scalar", "avx2", "avx512", "neon"};
    static int prefill[300][2], mixed[64][2], decode[3][2];
    for (int i = 0; i < 300; i++) prefill[i][0] = 0, prefill[i][1] = 7 + i; /* a chunk after 7 cached */
    /* three sequences interleaved in runs of 1..6 rows (both task kinds),
     * each sequence in position order */
    int pos[3] = {0, 40, 90}, runs[] = {1, 5, 2, 6, 3, 4, 1, 1, 7, 2}, nm = 0;
    for (int ri = 0; nm < 64; ri++)
        for (int i = 0; i < runs[ri % 10] && nm < 64; i++) {
            mixed[nm][0] = ri % 3;
            mixed[nm++][1] = pos[ri % 3]++;
        }
    decode[0][0] = 0, decode[0][1] = 33;
    decode[1][0] = 1, decode[1][1] = 0;
    decode[2][0] = 2, decode[2][1] = 70;
    for (size_t b = 0; b < sizeof isas / sizeof isas[0]; b++) {
        Err e = {0};
        Kern *k = kern_create(2, isas[b], &e);
        if (!k) continue; /* not this CPU */
        int shapes[][3] = {{3, 1, 16}, {12, 2, 24}, {4, 4, 8}, {6, 1, 40}, {5, 5, 7}};
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int kt = 0; kt < 2; kt++) {
                int nh = shapes[s][0], nkv = shapes[s][1], hd = shapes[s][2];
                run_case(k, isas[b], nh, nkv, hd, (KvType)kt, (const int (*)[2])prefill, 300, 1, 320);
                run_case(k, isas[b], nh, nkv, hd, (KvType)kt, (const int (*)[2])mixed, nm, 3, 160);
                run_case(k, isas[b], nh, nkv, hd, (KvType)kt, (const int (*)[2])decode, 3, 3, 80);
                run_case(k, isas[b], nh, nkv, hd, (KvType)kt, (const int (*)[2])decode, 1, 1, 80);
            }
        kern_destroy(k);
        /* decode rows long enough to be split over positions (6 threads
         * for 2 KV heads: 3 splits each), at the Qwen2-1.5B head shape too */
        k = kern_create(6, isas[b], &e);
        if (!k) continue;
        static const int longdec[3][2] = {{0, 1000}, {1, 130}, {2, 700}};
        /* and groups too wide for the stack query tile (G x head_dim over
         * 8192: 64 x 256, 32 x 512, the limits' corner) */
        int lshapes[][3] = {{12, 2, 128}, {6, 2, 40}, {4, 1, 7}, {64, 1, 256}, {32, 1, 512}};
        for (size_t s = 0; s < sizeof lshapes / sizeof lshapes[0]; s++)
            for (int kt = 0; kt < 2; kt++) {
                run_case(k, isas[b], lshapes[s][0], lshapes[s][1], lshapes[s][2], (KvType)kt, longdec, 3, 3, 1024);
                run_case(k, isas[b], lshapes[s][0], lshapes[s][1], lshapes[s][2], (KvType)kt, longdec, 1, 1, 1024);
            }
        kern_destroy(k);
    }
    return check_summary("attention");
}
