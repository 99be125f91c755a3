/* test_compile.c - the compile step and the .duet reader: tiny-qwen2 with
 * adapters alpha and beta compiled at f32 and bf16 matches the transformers
 * goldens exactly from the .duet alone; q8 and q4 (round-to-nearest,
 * searched scales, calibrated) measured against the goldens and the
 * unquantized model at every golden position; a differently shaped base with a patterned
 * adapter; and every kind of damaged or wrong input is refused with a
 * message that says what is wrong. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "check.h"
#include "compile/compile.h"
#include "compile/gptq.h"
#include "compile/tensor_types.h"
#include "golden.h"
#include "kern/quant.h"
#include "run/duet_file.h"
#include "run/sample.h"
#include "util/half.h"
#include "util/json.h"

#define MODELS "tests/fixtures/models/"
#define SHAPES "tests/fixtures/shapes/"

static char tmpdir[256];

static const char *tmp(const char *name)
{
    static char buf[4][512]; /* test harness: a few rotating path buffers */
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static int compile(const char *base, const CompileAdapter *ads, int n, DType t, const char *calib, const char *out,
                   CompileReport *rep, Err *e)
{
    CompileOpts o = {.base_dir = base, .adapters = ads, .n_adapters = n, .quant = t, .calib_path = calib,
                     .out_path = out, .report = rep};
    return duet_compile(&o, e);
}

static const CompileAdapter AB[2] = {{"alpha", MODELS "tiny-qwen2-lora-alpha"}, {"beta", MODELS "tiny-qwen2-lora-beta"}};

/* Golden-exact: compile, move the file elsewhere, open it alone (mapped, or
 * read into huge pages with MODEL_OPEN_RAM). */
static void check_exact(Kern *k, const cJSON *g, DType t, int flags)
{
    char label[64];
    snprintf(label, sizeof label, "duet %s%s", dtype_name(t), flags & MODEL_OPEN_RAM ? " (ram)" : "");
    Err e;
    const char *out = tmp("build.duet"), *moved = tmp("moved.duet");
    int ok = !compile(GOLDEN_DIR, AB, 2, t, NULL, out, NULL, &e);
    CHECK(ok, "%s: compile: %s", label, e.msg);
    if (!ok) return;
    CHECK(rename(out, moved) == 0, "%s: move", label);
    Model m;
    ok = !model_open_flags(&m, moved, flags, &e);
    CHECK(ok, "%s: open: %s", label, e.msg);
    if (!ok) return;
    CHECK(m.n_adapters == 2 && model_find_adapter(&m, "beta") == 1, "%s: adapters alpha, beta", label);
    CHECK(m.tokenizer_json && m.tokenizer_json_len > 1000 && m.tokenizer_config, "%s: embedded tokenizer files", label);
    golden_check_run(&m, k, NULL, g, "base", 0, KV_F32, 1e-3f, label);
    golden_check_run(&m, k, &m.adapters[0], g, "alpha", 3, KV_F32, 1e-3f, label);
    golden_check_run(&m, k, &m.adapters[1], g, "beta", 0, KV_F32, 1e-3f, label);
    model_close(&m);
    unlink(moved);
}

/* A small deterministic generator for the qrow checks. */
static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

/* qrow.c: round-to-nearest is llama.cpp's rounding (Q8 byte for byte the
 * kernels' quant_row_q8, Q4's largest element exactly on -8 or +7); the
 * searched scales never do worse than it on the block error; GPTQ's factor
 * satisfies U^T U (H + damp) = I; and GPTQ's rows are closer than plain
 * rounding to the unquantized product on the inputs H came from. */
static void check_qrow(void)
{
    enum { C = 80, R = 24, N = 200 };
    uint64_t seed = 42;
    float w[R][C], x[C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) w[r][c] = rnd(&seed) * (c % 7 == 0 ? 4.0f : 1.0f);
    int nb = (C + 31) / 32, same = 1, exact = 1;
    for (int r = 0; r < R; r++) {
        int8_t qa[3 * 32], qb[3 * 32];
        uint16_t sa[3], sb[3];
        quant_row_q8(qa, sa, w[r], C);
        memcpy(x, w[r], sizeof x);
        qrow_quantize(qb, sb, DT_Q8, QROUND_NEAREST, x, C, NULL, NULL);
        same &= !memcmp(qa, qb, sizeof qa) && !memcmp(sa, sb, sizeof sa);
        uint8_t q4[3 * 16];
        uint16_t s4[3];
        memcpy(x, w[r], sizeof x);
        qrow_quantize(q4, s4, DT_Q4, QROUND_NEAREST, x, C, NULL, NULL);
        for (int b = 0; b < nb; b++) { /* the block's largest element: level -8 if negative, +7 if positive */
            int bi = b * 32;
            for (int i = b * 32; i < C && i < b * 32 + 32; i++) bi = fabsf(w[r][i]) > fabsf(w[r][bi]) ? i : bi;
            int o = bi - b * 32, nib = o < 16 ? q4[b * 16 + o] & 15 : q4[b * 16 + o - 16] >> 4;
            exact &= nib == (w[r][bi] < 0 ? 0 : 15);
        }
    }
    CHECK(same, "q8 round-to-nearest is byte for byte quant_row_q8");
    CHECK(exact, "q4 round-to-nearest puts each block's largest element on -8 or +7");
    /* correlated inputs: x = A z, so H is far from diagonal */
    static float X[N][C];
    static double H[C * C];
    static float U[C * C];
    float A[C][8];
    for (int i = 0; i < C; i++)
        for (int j = 0; j < 8; j++) A[i][j] = rnd(&seed);
    for (int n = 0; n < N; n++) {
        float z[8];
        for (int j = 0; j < 8; j++) z[j] = rnd(&seed);
        for (int i = 0; i < C; i++) {
            X[n][i] = 0.1f * rnd(&seed);
            for (int j = 0; j < 8; j++) X[n][i] += A[i][j] * z[j];
        }
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double h = 0;
            for (int n = 0; n < N; n++) h += (double)X[n][i] * X[n][j];
            H[i * C + j] = h / N;
        }
    CHECK(qrow_gptq_factor(U, H, C, 0.01) == 0, "GPTQ factor of a positive definite H");
    double mean = 0, worst = 0;
    for (int i = 0; i < C; i++) mean += H[i * C + i] / C;
    for (int i = 0; i < C; i++) /* (U^T U)(H + damp I) = I */
        for (int j = 0; j < C; j++) {
            double v = 0;
            for (int k = 0; k < C; k++) {
                double utu = 0;
                for (int m = 0; m <= (i < k ? i : k); m++) utu += (double)U[m * C + i] * U[m * C + k];
                v += utu * (H[k * C + j] + (k == j ? 0.01 * mean : 0));
            }
            worst = fmax(worst, fabs(v - (i == j)));
        }
    CHECK(worst < 1e-3, "GPTQ factor: |U^T U (H + damp) - I| = %g", worst);
    double err[3] = {0, 0, 0}; /* nearest, search, GPTQ */
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 3; v++) {
            uint8_t q[3 * 16];
            uint16_t sc[3];
            memcpy(x, w[r], sizeof x);
            qrow_quantize(q, sc, DT_Q4, v ? QROUND_SEARCH : QROUND_NEAREST, x, C, NULL, v == 2 ? U : NULL);
            float dq[C];
            for (int c = 0; c < C; c++) {
                int b = c / 32, o = c % 32, nib = o < 16 ? q[b * 16 + o] & 15 : q[b * 16 + o - 16] >> 4;
                dq[c] = (float)(nib - 8) * f16_to_f32(sc[b]);
            }
            for (int n = 0; n < N; n++) {
                double d = 0;
                for (int c = 0; c < C; c++) d += (double)(w[r][c] - dq[c]) * X[n][c];
                err[v] += d * d;
            }
        }
    printf("qrow: factor residual %g; q4 output error nearest %.4g search %.4g gptq %.4g\n", worst, err[0], err[1], err[2]);
    CHECK(err[1] <= err[0] && err[2] < 0.7 * err[1], "q4 output error on the fitted inputs: nearest %.4g, search %.4g, GPTQ %.4g",
          err[0], err[1], err[2]);
    /* gptq_rows (batches of rows, block-wise updates) gives qrow_quantize's
     * rows with U, up to float rounding: almost every level and scale equal */
    for (int t = 0; t < 2; t++) {
        DType ty = t ? DT_Q4 : DT_Q8;
        size_t rb = qmat_data_bytes(ty, 1, C), nb = (C + 31) / 32;
        unsigned char *qa = calloc(R, rb), *qb = calloc(R, rb);
        uint16_t sa[R * 3], sb[R * 3];
        QMat W = {.type = DT_F32, .rows = R, .cols = C, .data = w};
        for (int r = 0; r < R; r++) {
            memcpy(x, w[r], sizeof x);
            qrow_quantize(qa + r * rb, sa + r * nb, ty, QROUND_SEARCH, x, C, NULL, U);
        }
        int ok = qa && qb && !gptq_rows(qb, sb, ty, QROUND_SEARCH, &W, 0, R, U, NULL), diff = 0;
        for (size_t i = 0; ok && i < R * rb; i++) diff += qa[i] != qb[i];
        for (size_t i = 0; ok && i < R * nb; i++) diff += sa[i] != sb[i];
        CHECK(ok && diff <= (int)(R * rb / 100), "gptq_rows %s vs qrow_quantize with U: %d of %zu bytes differ", dtype_name(ty), diff,
              R * rb + R * nb * 2);
        free(qa), free(qb);
    }
}

/* log(sum(exp(x))) of n logits. */
static double lse(const float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = fmaxf(mx, x[i]);
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

/* For each of the nm models: top-1 agreement with the goldens' top ids over
 * every position of every prompt of the three runs, and the mean KL(ref ||
 * model) over the same positions, ref being the checkpoint folder itself
 * (which test_forward holds to the goldens). */
static void golden_quality(const Model *ref, const Model *const *ms, int nm, Kern *k, const cJSON *g, double *top1,
                           double *kl)
{
    const char *runs[3] = {"base", "alpha", "beta"};
    int V = ref->cfg.vocab_size;
    long agree[8] = {0}, total = 0;
    double kls[8] = {0};
    for (int ri = 0; ri < 3; ri++) {
        const cJSON *rs = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "runs"), runs[ri]);
        for (const cJSON *r = rs ? rs->child : NULL; r; r = r->next) {
            const cJSON *ids = cJSON_GetObjectItem(r, "prompt_ids"), *tops = cJSON_GetObjectItem(r, "top_ids");
            int n = cJSON_GetArraySize(ids);
            int *p = malloc((size_t)n * sizeof *p);
            float *a = malloc((size_t)n * V * sizeof *a), *b = malloc((size_t)n * V * sizeof *b);
            double *ne = malloc((size_t)n * sizeof *ne);
            for (int i = 0; i < n; i++) p[i] = cJSON_GetArrayItem(ids, i)->valueint;
            Seq q;
            Err e;
            int ok = !seq_init(&q, ref, n, KV_F32, ri ? &ref->adapters[ri - 1] : NULL, &e) && !seq_prefill(&q, k, p, n, 0, NULL, a, &e);
            seq_free(&q);
            CHECK(ok, "golden quality: reference run: %s", e.msg);
            /* reference probabilities in place, sum p log p aside */
            for (int t = 0; ok && t < n; t++) {
                float *x = a + (size_t)t * V;
                double l = lse(x, V), s = 0;
                for (int i = 0; i < V; i++) {
                    double lp = x[i] - l, pi = exp(lp);
                    s += pi * lp;
                    x[i] = (float)pi;
                }
                ne[t] = s;
            }
            for (int mi = 0; ok && mi < nm; mi++) {
                const Model *m = ms[mi];
                if (seq_init(&q, m, n, KV_F32, ri ? &m->adapters[ri - 1] : NULL, &e) || seq_prefill(&q, k, p, n, 0, NULL, b, &e)) {
                    CHECK(0, "golden quality: %s", e.msg);
                    seq_free(&q);
                    continue;
                }
                seq_free(&q);
                for (int t = 0; t < n; t++) {
                    const float *x = b + (size_t)t * V, *pa = a + (size_t)t * V;
                    agree[mi] += argmax(x, V) == cJSON_GetArrayItem(cJSON_GetArrayItem(tops, t), 0)->valueint;
                    double dot = 0;
                    for (int i = 0; i < V; i++) dot += (double)pa[i] * x[i];
                    kls[mi] += ne[t] - dot + lse(x, V);
                }
            }
            total += n;
            free(p), free(a), free(b), free(ne);
        }
    }
    for (int mi = 0; mi < nm; mi++) {
        top1[mi] = total ? (double)agree[mi] / total : 0;
        kl[mi] = total ? kls[mi] / total : 0;
    }
}

/* q8 and q4 against the goldens. Measured on tiny-qwen2 + alpha + beta
 * (1074 golden positions; KL over all of them against the unquantized
 * model): q8 88.3% top-1, KL 0.052; q4 round-to-nearest 36.6%, KL 1.97;
 * q4 searched scales 38.9%, KL 1.84; q4 calibrated 38.9%, KL 1.81. The
 * asserted levels sit a little below those, so that a regression shows. */
static void check_quant(Kern *k, const cJSON *g)
{
    enum { Q8, Q4_NEAREST, Q4_SEARCH, Q4_CAL, Q8_MIXED, Q8_CAL, NV };
    /* Q8_MIXED: --tensor-type embed=f16 --tensor-type 'self_attn\.' =f16 (a group word and a pattern) */
    static const char *const mixed[] = {"embed=f16", "self_attn\\.=f16"};
    struct { DType t; QRound round; const char *calib; const char *label; int n_tt; } v[NV] = {
        {DT_Q8, QROUND_SEARCH, NULL, "q8", 0},
        {DT_Q4, QROUND_NEAREST, NULL, "q4 nearest", 0},
        {DT_Q4, QROUND_SEARCH, NULL, "q4 search", 0},
        {DT_Q4, QROUND_SEARCH, "tests/fixtures/calib.jsonl", "q4 calibrated", 0},
        {DT_Q8, QROUND_SEARCH, NULL, "q8 mixed", 2},
        {DT_Q8, QROUND_SEARCH, "tests/fixtures/calib.jsonl", "q8 calibrated", 0},
    };
    CompileReport rep[NV];
    Model m[NV], ref;
    const Model *ms[NV];
    Err e;
    int ok = !model_open(&ref, GOLDEN_DIR, &e) && !model_add_lora(&ref, AB[0].dir, "alpha", &e) &&
             !model_add_lora(&ref, AB[1].dir, "beta", &e);
    CHECK(ok, "open the reference: %s", e.msg);
    if (!ok) return;
    for (int i = 0; i < NV; i++) {
        char name[32];
        snprintf(name, sizeof name, "q%d.duet", i);
        const char *out = tmp(name);
        CompileOpts o = {.base_dir = GOLDEN_DIR, .adapters = AB, .n_adapters = 2, .quant = v[i].t, .round = v[i].round,
                         .calib_path = v[i].calib, .out_path = out, .report = &rep[i],
                         .tensor_types = mixed, .n_tensor_types = v[i].n_tt};
        ok = !duet_compile(&o, &e) && !model_open(&m[i], out, &e);
        CHECK(ok, "%s: %s", v[i].label, e.msg);
        if (!ok) {
            for (int j = 0; j < i; j++) model_close(&m[j]);
            model_close(&ref);
            return;
        }
        unlink(out);
        ms[i] = &m[i];
    }
    double top1[NV], kl[NV];
    golden_quality(&ref, ms, NV, k, g, top1, kl);
    for (int i = 0; i < NV; i++)
        printf("%-14s %6.2f MiB  golden top-1 %.2f%%  mean KL %.5f  (compile %.2f s)\n", v[i].label,
               rep[i].file_bytes / 1048576.0, 100 * top1[i], kl[i], rep[i].seconds);
    /* KNOWN GAP: the issue asks q8 for >= 97% top-1. On this random-weight
     * fixture the q8 embedding alone (a lookup the layers read, tied to the
     * lm_head) costs ~8% of the positions: everything else unquantized, a q8
     * embedding lookup keeps 91.8%. See bench/README.md for the numbers. */
    CHECK(top1[Q8] >= 0.87 && kl[Q8] < 0.06, "q8: golden top-1 %.2f%% (>= 87%%), KL %.4f (< 0.06)", 100 * top1[Q8], kl[Q8]);
    /* mixed precision (embedding and attention f16, the MLP q8) passes 97%,
     * and the groups really have their own types */
    CHECK(top1[Q8_MIXED] >= 0.97, "q8 mixed: golden top-1 %.2f%% (>= 97%%)", 100 * top1[Q8_MIXED]);
    CHECK(m[Q8_MIXED].embed.type == DT_F16 && m[Q8_MIXED].layers[0].w[P_K].type == DT_F16 &&
              m[Q8_MIXED].layers[0].w[P_O].type == DT_F16 && m[Q8_MIXED].layers[0].w[P_DOWN].type == DT_Q8,
          "q8 mixed: types embed %s k %s o %s down %s", dtype_name(m[Q8_MIXED].embed.type),
          dtype_name(m[Q8_MIXED].layers[0].w[P_K].type), dtype_name(m[Q8_MIXED].layers[0].w[P_O].type),
          dtype_name(m[Q8_MIXED].layers[0].w[P_DOWN].type));
    CHECK(top1[Q4_SEARCH] > top1[Q4_NEAREST] && kl[Q4_SEARCH] < 0.96 * kl[Q4_NEAREST],
          "q4: searched scales beat round-to-nearest: top-1 %.4f vs %.4f, KL %.4f vs %.4f", top1[Q4_SEARCH],
          top1[Q4_NEAREST], kl[Q4_SEARCH], kl[Q4_NEAREST]);
    /* the bar: calibrated q4 closer to the reference than plain
     * round-to-nearest q4 on the golden prompts (never calibrated on) */
    CHECK(top1[Q4_CAL] > top1[Q4_NEAREST] + 0.01 && kl[Q4_CAL] < 0.95 * kl[Q4_NEAREST],
          "q4 calibrated vs round-to-nearest on the goldens: top-1 %.4f vs %.4f, KL %.4f vs %.4f", top1[Q4_CAL],
          top1[Q4_NEAREST], kl[Q4_CAL], kl[Q4_NEAREST]);
    CHECK(kl[Q4_CAL] < kl[Q4_SEARCH], "q4 calibrated vs uncalibrated (searched scales) on the goldens: KL %.4f vs %.4f",
          kl[Q4_CAL], kl[Q4_SEARCH]);
    /* q8 calibrated is no worse than q8 (0.001 nats allowed) */
    CHECK(kl[Q8_CAL] < kl[Q8] + 0.001, "q8 calibrated vs q8: KL %.5f vs %.5f", kl[Q8_CAL], kl[Q8]);
    /* the compile report, on the held-out calibration prompts, per run */
    const CompileReport *r = &rep[Q4_CAL];
    for (int i = 0; i < r->n_quality; i++) {
        const CompileQuality *q = &r->quality[i];
        printf("  calib report %-6s top1 %.2f%% KL %.5f NLL %.4f (unquantized %.4f)\n", q->name, 100 * q->top1, q->kl,
               q->nll, q->nll_ref);
        CHECK(q->positions > 0 && q->kl > 0 && q->kl < 5 && q->nll > 0 && q->nll_ref > 0, "calib report %s: positions %d, KL %g, NLL %g",
              q->name, q->positions, q->kl, q->nll);
    }
    printf("  calib method: %s\n", r->method);
    CHECK(r->n_quality == 3 && !strcmp(r->quality[2].name, "beta"), "q4 calibrated: a report row per run");
    CHECK(strstr(r->method, "per matrix") && strstr(r->method, " of 14;"), "the choice is made per matrix (14 projections): %s", r->method);
    for (int i = 0; i < NV; i++) model_close(&m[i]);
    model_close(&ref);
}

/* qwen2-s2 (untied, GQA, f16) with one of its adapters (rank/alpha patterns; DoRA). */
static void check_shapes(Kern *k, const char *adapter)
{
    Err e;
    Model m;
    char dir[256];
    snprintf(dir, sizeof dir, SHAPES "qwen2-s2-lora-%s", adapter);
    CompileAdapter ad = {adapter, dir};
    const char *out = tmp("s2.duet");
    int ok = !compile(SHAPES "qwen2-s2", &ad, 1, DT_F32, NULL, out, NULL, &e) && !model_open(&m, out, &e);
    CHECK(ok, "qwen2-s2: %s", e.msg);
    if (!ok) return;
    char label[96];
    snprintf(label, sizeof label, "qwen2-s2 + %s from .duet", adapter);
    golden_check_dir(&m, k, &m.adapters[0], dir, label);
    model_close(&m);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    Err e;
    return (unsigned char *)file_read(path, len, &e);
}

static void put64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static uint64_t get64(const unsigned char *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

/* Recomputes the meta and header hashes after an edit. */
static void rehash(unsigned char *b)
{
    put64(b + 48, XXH3_64bits(b + 64, (size_t)get64(b + 24)));
    put64(b + 56, XXH3_64bits(b, 56));
}

/* Writes len bytes of b as a file and expects opening it to fail with `want` in the message. */
static void expect_bad(const unsigned char *b, size_t len, const char *want, const char *label)
{
    const char *p = tmp("bad.duet");
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(b, 1, len, f);
        fclose(f);
    }
    Model m;
    Err e = {{0}};
    int rc = model_open(&m, p, &e);
    CHECK(rc != 0 && strstr(e.msg, want), "%s: expected an error with \"%s\", got rc %d: %s", label, want, rc, e.msg);
    if (!rc) model_close(&m);
    /* the same through the memory parser (the fuzz entry point) */
    void *copy = aligned_alloc(64, (len + 63) / 64 * 64);
    if (copy) {
        memcpy(copy, b, len);
        rc = duet_parse(&m, copy, len, "mem", &e);
        CHECK(rc != 0, "%s: duet_parse refuses too", label);
        if (!rc) model_close(&m);
        free(copy);
    }
}

static void check_bad_files(void)
{
    Err e;
    CompileAdapter ad = {"pattern", SHAPES "qwen2-s2-lora-pattern"};
    const char *good = tmp("good.duet");
    if (compile(SHAPES "qwen2-s2", &ad, 1, DT_F32, NULL, good, NULL, &e)) {
        CHECK(0, "compile qwen2-s2: %s", e.msg);
        return;
    }
    size_t len;
    unsigned char *b = slurp(good, &len);
    if (!b) return;
    unsigned char *w = malloc(len);
    uint64_t ms = get64(b + 24), bo = get64(b + 32);
    expect_bad(b, len - 100, "truncated", "truncated by 100 bytes");
    expect_bad(b, 40, "truncated", "truncated to 40 bytes");
    /* flipped bytes: header, meta JSON, meta padding, blob padding, a weight */
    const char *meta = (const char *)b + 64;
    size_t ml = strnlen(meta, ms);
    const char *fw = strstr(meta, "\"name\":\"layers.0.q_proj\"");
    uint64_t woff = fw ? (uint64_t)strtoull(strstr(fw, "\"data\":") + 7, NULL, 10) : bo;
    struct { uint64_t at; const char *want; const char *label; } flips[] = {
        {20, "header checksum", "flip in header"},
        {64 + ml / 2, "meta section checksum", "flip in meta JSON"},
        {64 + ms - 1, "meta section checksum", "flip in meta padding"},
        {bo + 1, "checksum mismatch in the blob", "flip in tokenizer blob"},
        {woff + 5, "checksum mismatch in the blob", "flip in a weight"},
        {len - 1, "checksum mismatch in the blob", "flip at the end"},
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(w, b, len);
        w[flips[i].at] ^= 0x10;
        expect_bad(w, len, flips[i].want, flips[i].label);
    }
    /* blob padding: find a zero byte just before some 64-aligned tensor */
    memcpy(w, b, len);
    uint64_t pad = len - 1;
    while (pad > bo && (w[pad] != 0 || w[pad - 1] != 0)) pad--;
    w[pad] ^= 1;
    expect_bad(w, len, "checksum mismatch in the blob", "flip in blob padding");
    memcpy(w, b, len);
    w[0] = 'X';
    expect_bad(w, len, "bad magic", "wrong magic");
    memcpy(w, b, len);
    w[8] = DUET_FORMAT_VERSION + 1;
    rehash(w);
    char fv[64];
    snprintf(fv, sizeof fv, "version %d is not supported", DUET_FORMAT_VERSION + 1);
    expect_bad(w, len, fv, "future version");
    memcpy(w, b, len);
    w[8] = 1; /* the meta says 3 */
    rehash(w);
    expect_bad(w, len, "field \"version\"", "header and meta versions differ");
    memcpy(w, b, len);
    w[12] = 1;
    rehash(w);
    expect_bad(w, len, "flags", "unknown flags");
    /* unknown quant type in the directory, hashes recomputed */
    memcpy(w, b, len);
    char *ty = strstr((char *)w + 64, "\"type\":\"f32\"");
    if (ty) memcpy(ty, "\"type\":\"q3\" ", 12);
    rehash(w);
    expect_bad(w, len, "unknown type \"q3\"", "unknown tensor type");
    /* a tensor shape that does not match its data size */
    memcpy(w, b, len);
    char *rows = strstr((char *)w + 64, "\"rows\":1,");
    if (rows) rows[7] = '2';
    rehash(w);
    expect_bad(w, len, "data_size", "data size vs shape");
    free(w);
    free(b);
    unlink(good);

    /* duplicate adapter names inside a file: compile the adapter twice under
     * two names of one length, then rename the second in the meta JSON */
    CompileAdapter two[2] = {{"pattern", SHAPES "qwen2-s2-lora-pattern"}, {"patterx", SHAPES "qwen2-s2-lora-pattern"}};
    if (compile(SHAPES "qwen2-s2", two, 2, DT_F32, NULL, good, NULL, &e)) {
        CHECK(0, "compile qwen2-s2 with two adapters: %s", e.msg);
        return;
    }
    if (!(b = slurp(good, &len))) return;
    char *an = strstr((char *)b + 64, "\"name\":\"patterx\"");
    CHECK(an != NULL, "meta names the second adapter");
    if (an) memcpy(an, "\"name\":\"pattern\"", 16);
    rehash(b);
    expect_bad(b, len, "adapter name \"pattern\" appears twice", "duplicate adapter names in a file");
    free(b);
    unlink(good);

    /* a DoRA pair whose factor names a tensor the file does not have */
    CompileAdapter dora = {"dora", SHAPES "qwen2-s2-lora-dora"};
    if (compile(SHAPES "qwen2-s2", &dora, 1, DT_F32, NULL, good, NULL, &e)) {
        CHECK(0, "compile qwen2-s2 + dora: %s", e.msg);
        return;
    }
    if (!(b = slurp(good, &len))) return;
    char *dn = strstr((char *)b + 64, "\"dora\":\"lora.dora.0.q_proj.dora\"");
    CHECK(dn != NULL, "meta names the DoRA factor");
    if (dn) memcpy(dn + 8, "lora.dora.0.q_proj.xxxx", 23);
    rehash(b);
    expect_bad(b, len, "lora.dora.0.q_proj.xxxx\" is missing", "DoRA factor tensor missing");
    free(b);
    unlink(good);
}

static void check_bad_inputs(void)
{
    Err e = {{0}};
    CompileAdapter dup[2] = {{"alpha", MODELS "tiny-qwen2-lora-alpha"}, {"alpha", MODELS "tiny-qwen2-lora-beta"}};
    const char *out = tmp("x.duet");
    int rc = compile(GOLDEN_DIR, dup, 2, DT_F32, NULL, out, NULL, &e);
    CHECK(rc && strstr(e.msg, "\"alpha\" is given twice"), "duplicate adapter names: %s", e.msg);
    CHECK(access(out, F_OK) != 0, "no file left after a failed compile");
    CompileAdapter other = {"other", SHAPES "qwen2-s2-lora-rslora"};
    rc = compile(GOLDEN_DIR, &other, 1, DT_F32, NULL, out, NULL, &e);
    CHECK(rc && strstr(e.msg, "adapter \"other\" does not fit the base"), "adapter for another base: %s", e.msg);
    const char *cal = tmp("bad.jsonl");
    FILE *f = fopen(cal, "w");
    if (f) {
        fputs("{\"text\": \"fine\"}\n\n{\"text\": \"also fine\"}\n{\"txt\": \"typo\"}\n", f);
        fclose(f);
    }
    rc = compile(GOLDEN_DIR, NULL, 0, DT_Q8, cal, out, NULL, &e);
    CHECK(rc && strstr(e.msg, "bad.jsonl:4:") && strstr(e.msg, "\"text\""), "calibration line 4: %s", e.msg);
    f = fopen(cal, "w");
    if (f) {
        fputs("{\"text\": \"fine\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n{\"text\": \"x\"\n", f);
        fclose(f);
    }
    rc = compile(GOLDEN_DIR, NULL, 0, DT_Q8, cal, out, NULL, &e);
    CHECK(rc && strstr(e.msg, "bad.jsonl:3"), "calibration line 3, bad JSON: %s", e.msg);
    unlink(cal);
}

/* The output path is checked before any work (a missing folder fails
 * even with a base that does not exist: the base was never opened); the
 * calibration statistics are cached: the same compile again reuses them
 * (and writes the same bytes), a compile with another adapter collects
 * only that adapter's run. */
static void check_out_and_cache(void)
{
    Err e = {{0}};
    int rc = compile("tests/fixtures/no-such-model", NULL, 0, DT_Q4, NULL, tmp("missing/dir/x.duet"), NULL, &e);
    CHECK(rc && strstr(e.msg, "missing/dir/x.duet: cannot create the output file"), "missing output folder first: %s", e.msg);
    const char *cache = tmp("cache");
    const char *outs[3] = {tmp("c1.duet"), tmp("c2.duet"), tmp("c3.duet")};
    CompileReport rep[3];
    for (int i = 0; i < 3; i++) {
        CompileOpts o = {.base_dir = GOLDEN_DIR, .adapters = i < 2 ? AB : AB + 1, .n_adapters = i < 2 ? 2 : 1,
                         .quant = DT_Q4, .calib_path = "tests/fixtures/calib.jsonl", .calib_cache = cache,
                         .out_path = outs[i], .report = &rep[i]};
        CHECK(!duet_compile(&o, &e), "cached compile %d: %s", i, e.msg);
    }
    CHECK(!rep[0].stats_reused && rep[1].stats_reused && rep[2].stats_reused,
          "statistics reused: %d %d %d (expected 0 1 1)", rep[0].stats_reused, rep[1].stats_reused, rep[2].stats_reused);
    size_t la, lb;
    unsigned char *a = (unsigned char *)file_read(outs[0], &la, &e), *b = (unsigned char *)file_read(outs[1], &lb, &e);
    uint64_t bo = a && la >= 64 ? get64(a + 32) : 0;
    CHECK(a && b && la == lb && bo && bo == get64(b + 32) && !memcmp(a + bo, b + bo, la - bo),
          "the compile with cached statistics writes the same tensors");
    free(a), free(b);
    for (int i = 0; i < 3; i++) unlink(outs[i]);
    check_rmtree(cache);
}

/* The recipes' sizes at Qwen2-1.5B shapes (dim 1536, MLP 8960, kv 256, 28
 * layers, vocab 151936, tied): q4 within Q4_K_M's 986 MB file (its weights
 * at most 5.0 bits, plus ~12 MB of tokenizer and norms), q4s within
 * IQ4_XS's 4.61 bits, q5 within Q5_K_M's 5.79, q3 within the 800 MB of the
 * smaller recipe; and the roles: q4's down projection is q6k in the first
 * and last eighth and every third layer between, q5k else; q5's gate/up
 * q6k in those layers, q5k else. */
static void check_recipes(void)
{
    const QuantRecipe *q4 = compile_recipe("q4"), *q3 = compile_recipe("q3"), *q4s = compile_recipe("q4s"),
                      *q5 = compile_recipe("q5");
    CHECK(q4 && q3 && q4s && q5 && !compile_recipe("q9"), "recipes q5, q4, q4s, q3 known, q9 not");
    if (!q4 || !q3 || !q4s || !q5) return;
    double b4 = recipe_bits(q4, 1536, 8960, 256, 28, 151936), b3 = recipe_bits(q3, 1536, 8960, 256, 28, 151936);
    double b4s = recipe_bits(q4s, 1536, 8960, 256, 28, 151936), b5 = recipe_bits(q5, 1536, 8960, 256, 28, 151936);
    double n = 151936.0 * 1536 + 28.0 * (2 * 1536.0 * 1536 + 2 * 256.0 * 1536 + 3 * 8960.0 * 1536);
    CHECK(b4 <= 5.0 && n * b4 / 8 + 12e6 <= 986e6, "q4 at Qwen2-1.5B shapes: %.3f bits, %.0f MB", b4, n * b4 / 8e6 + 12);
    CHECK(n * b3 / 8 + 12e6 <= 800e6, "q3 at Qwen2-1.5B shapes: %.3f bits, %.0f MB", b3, n * b3 / 8e6 + 12);
    CHECK(b4s <= 4.614 && b5 <= 5.785, "q4s %.3f bits (IQ4_XS 4.614), q5 %.3f (Q5_K_M 5.785)", b4s, b5);
    DType d0 = recipe_type(q4, CG_MLP, P_DOWN, 0, 28, DT_F32), d5 = recipe_type(q4, CG_MLP, P_DOWN, 5, 28, DT_F32);
    DType d4 = recipe_type(q4, CG_MLP, P_DOWN, 4, 28, DT_F32), v5 = recipe_type(q4, CG_ATTN, P_V, 4, 28, DT_F32);
    CHECK(d0 == DT_Q6K && d5 == DT_Q6K && d4 == DT_Q5K && v5 == DT_Q6K, "q4 down types %d %d %d, v %d", d0, d5, d4, v5);
    DType g5 = recipe_type(q5, CG_MLP, P_GATE, 5, 28, DT_F32), g4 = recipe_type(q5, CG_MLP, P_UP, 4, 28, DT_F32);
    CHECK(g5 == DT_Q6K && g4 == DT_Q5K, "q5 gate/up types %d %d", g5, g4);
}

/* --tensor-type rules resolved on a 4-layer model: group words, patterns
 * over the checkpoint names, the first rule naming a tensor wins; every
 * malformed rule refused with a message naming it. */
static void check_tensor_types(void)
{
    enum { NL = 4 };
    TensorTypes tt;
    Err e = {{0}};
    const char *ok[] = {"layers\\.[0-1]\\.mlp\\.(gate|up)_proj=iq3k", "mlp=q6k", "embed=q8", "v_proj=f16"};
    int rc = tensor_types_resolve(&tt, ok, 4, NL, 1, "m", &e);
    CHECK(rc == 0, "rules: %s", e.msg);
    if (!rc) {
        CHECK(tt.embed == DT_Q8 + 1 && tt.lm_head == 0, "embed %d lm_head %d", tt.embed, tt.lm_head);
        for (int l = 0; l < NL; l++) {
            const int *t = tt.layer + (size_t)l * P_COUNT;
            int gate = l < 2 ? DT_IQ3K + 1 : DT_Q6K + 1;
            CHECK(t[P_GATE] == gate && t[P_UP] == gate && t[P_DOWN] == DT_Q6K + 1 && t[P_V] == DT_F16 + 1 &&
                      t[P_Q] == 0 && t[P_O] == 0,
                  "layer %d: gate %d up %d down %d v %d q %d o %d", l, t[P_GATE], t[P_UP], t[P_DOWN], t[P_V], t[P_Q],
                  t[P_O]);
        }
    }
    tensor_types_free(&tt);
    const char *head[] = {"lm_head=q8"};
    rc = tensor_types_resolve(&tt, head, 1, NL, 0, "m", &e);
    CHECK(rc == 0 && tt.lm_head == DT_Q8 + 1 && tt.embed == 0, "untied lm_head: %s", rc ? e.msg : "");
    tensor_types_free(&tt);
    struct { const char *rule, *want; int tied; } bad[] = {
        {"mlp", "expected PATTERN=TYPE", 1},
        {"mlp=q3", "expected PATTERN=TYPE", 1},
        {"=q8", "expected PATTERN=TYPE", 1},
        {"layers.(=q8", "is not a regular expression", 1},
        {"blk\\.0\\.ffn_gate=q8", "names no tensor of m", 1},
        {"layers\\.9\\.=q8", "names no tensor of m", 1},
        {"lm_head=q8", "tie_word_embeddings", 1},
        {"(a+)+$=q8", NULL, 1}, /* no backtracking blow-up: refused or unused, never a hang */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[] = {bad[i].rule};
        e.msg[0] = 0;
        rc = tensor_types_resolve(&tt, one, 1, NL, bad[i].tied, "m", &e);
        CHECK(rc == -1 && strstr(e.msg, bad[i].want ? bad[i].want : "tensor type") && tt.layer == NULL,
              "rule \"%s\": rc %d, message \"%s\" (want \"%s\")", bad[i].rule, rc, e.msg, bad[i].want);
        tensor_types_free(&tt);
    }
    /* a rule that only names tensors an earlier rule took */
    const char *shadow[] = {"mlp=q8", "down_proj=q6"};
    rc = tensor_types_resolve(&tt, shadow, 2, NL, 1, "m", &e);
    CHECK(rc == -1 && strstr(e.msg, "\"down_proj=q6\"") && strstr(e.msg, "earlier rule"), "shadowed rule: %s", e.msg);
    tensor_types_free(&tt);
}

int main(void)
{
    Err e;
    Kern *k = kern_create(0, NULL, &e);
    cJSON *g = golden_load();
    if (check_tmpdir(tmpdir, sizeof tmpdir, "test-compile") || !k || !g) {
        CHECK(0, "setup");
        return check_summary("compile");
    }
    check_qrow();
    check_recipes();
    check_tensor_types();
    check_bad_inputs();
    check_bad_files();
    check_shapes(k, "pattern");
    check_shapes(k, "dora");
    check_exact(k, g, DT_F32, 0);
    check_exact(k, g, DT_BF16, MODEL_OPEN_RAM);
    check_quant(k, g);
    check_out_and_cache();
    check_rmtree(tmpdir);
    cJSON_Delete(g);
    kern_destroy(k);
    return check_summary("compile");
}
