/* test_fuse.c - the stacked q/k/v and gate/up views (model_fuse) and the
 * LoRA path (kern_matmul_lora) inside forward(): compiled .duet files
 * get the views where the writer's layout allows them and not elsewhere; a
 * forward pass with the views gives the same logits, bit for bit, as with
 * them cleared, for prefill-sized and decode-sized batches whose rows mix
 * the base, LoRA and DoRA adapters; a batch row gives what the row alone
 * gives; merging an adapter clears the views of the weights it replaced;
 * model_fuse refuses weights that are not back to back or whose in_scale
 * differs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "compile/compile.h"
#include "run/forward.h"

#define MODELS "tests/fixtures/models/"
#define SHAPES "tests/fixtures/shapes/"

static char tmpdir[256];

static int compile(const char *base, const CompileAdapter *ads, int n, DType t, const char *out, Err *e)
{
    CompileOpts o = {.base_dir = base, .adapters = ads, .n_adapters = n, .quant = t, .out_path = out};
    return duet_compile(&o, e);
}

/* Runs n_seq sequences (adapter ads[s], or the base for NULL) through `steps`
 * forward calls: first a prefill of `pre` tokens per sequence, one call per
 * sequence, then decode steps with all sequences in one batch (or, with
 * alone, one call per sequence). Fills lg (n_seq x steps x vocab). */
static int run(const Model *m, Kern *k, const Adapter *const *ads, int n_seq, int pre, int steps, int alone,
               float *lg, Err *e)
{
    int V = m->cfg.vocab_size, rc = 0;
    KVCache kv[4];
    BatchRow rows[32];
    Scratch s = {0};
    for (int q = 0; q < n_seq; q++) rc |= kv_init(&kv[q], &m->cfg, pre + steps + 1, KV_F16, e);
    float *junk = malloc((size_t)V * sizeof(float));
    for (int q = 0; !rc && q < n_seq; q++) {
        for (int i = 0; i < pre; i++)
            rows[i] = (BatchRow){(7 + 31 * i + 101 * q) % V, i, &kv[q], ads[q], i == pre - 1 ? junk : NULL};
        rc = forward(m, k, &s, rows, pre, e);
    }
    for (int t = 0; !rc && t < steps; t++) {
        for (int q = 0; q < n_seq; q++)
            rows[q] = (BatchRow){(3 + 17 * t + 53 * q) % V, pre + t, &kv[q], ads[q], lg + ((size_t)q * steps + t) * V};
        if (alone)
            for (int q = 0; !rc && q < n_seq; q++) rc = forward(m, k, &s, &rows[q], 1, e);
        else
            rc = forward(m, k, &s, rows, n_seq, e);
    }
    free(junk);
    scratch_free(&s);
    for (int q = 0; q < n_seq; q++) kv_free(&kv[q]);
    return rc;
}

/* Largest |a - b| / (1e-5 * max|b| + 1e-6) over n values. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1e-5 * mx + 1e-6);
        worst = d == d && d < worst ? worst : d == d ? d : 1e30;
    }
    return worst;
}

/* Compiles base + adapters at type t, opens it, checks which layers got the
 * views, then compares the views against no views and batches against rows
 * run alone. */
static void check_model(Kern *k, const char *base, const CompileAdapter *ads, int n_ads, DType t, int want_qkv,
                        int want_gu, const char *label)
{
    Err e;
    char path[512];
    snprintf(path, sizeof path, "%s/fuse.duet", tmpdir);
    Model m;
    if (compile(base, ads, n_ads, t, path, &e) || model_open(&m, path, &e)) {
        CHECK(0, "%s: compile / open: %s", label, e.msg);
        return;
    }
    const ModelConfig *c = &m.cfg;
    int qkvd = (c->n_heads + 2 * c->n_kv_heads) * c->head_dim, views = 1;
    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m.layers[l];
        views &= L->qkv.rows == (want_qkv ? qkvd : 0) && L->gate_up.rows == (want_gu ? 2 * c->hidden_dim : 0);
        if (want_qkv) views &= L->qkv.data == L->w[P_Q].data && L->qkv.scales == L->w[P_Q].scales && L->qkv.cols == c->dim;
    }
    CHECK(views, "%s: stacked views qkv %d gate_up %d in every layer", label, want_qkv, want_gu);

    /* sequences: base, then each adapter, then the first adapter again (two rows of one adapter) */
    const Adapter *sq[4] = {NULL};
    int n_seq = 1;
    for (int a = 0; a < m.n_adapters && n_seq < 3; a++) sq[n_seq++] = &m.adapters[a];
    if (m.n_adapters) sq[n_seq++] = &m.adapters[0];
    int V = c->vocab_size, steps = 4;
    size_t nl = (size_t)n_seq * steps * V;
    float *with = malloc(nl * sizeof(float)), *without = malloc(nl * sizeof(float)), *alone = malloc(nl * sizeof(float));
    Layer *saved = malloc((size_t)c->n_layers * sizeof *saved);
    memcpy(saved, m.layers, (size_t)c->n_layers * sizeof *saved);
    int ok = !run(&m, k, sq, n_seq, 20, steps, 0, with, &e); /* a 20-row prefill: two chunks of tokens for A */
    for (int l = 0; l < c->n_layers; l++) m.layers[l].qkv.rows = m.layers[l].gate_up.rows = 0;
    ok = ok && !run(&m, k, sq, n_seq, 20, steps, 0, without, &e);
    memcpy(m.layers, saved, (size_t)c->n_layers * sizeof *saved);
    ok = ok && !run(&m, k, sq, n_seq, 20, steps, 1, alone, &e);
    CHECK(ok, "%s: forward: %s", label, e.msg);
    CHECK(ok && !memcmp(with, without, nl * sizeof(float)), "%s: stacked views change the logits (%.3g)", label,
          rel_diff(with, without, nl));
    CHECK(ok && rel_diff(with, alone, nl) <= 1, "%s: a batch of %d mixed rows differs from the rows alone (%.3g)",
          label, n_seq, rel_diff(with, alone, nl));

    /* a short prefill (one chunk of tokens for A) against one token at a time */
    ok = !run(&m, k, sq, n_seq, 5, steps, 0, with, &e) && !run(&m, k, sq, n_seq, 5, steps, 1, alone, &e);
    CHECK(ok && rel_diff(with, alone, nl) <= 1, "%s: 5-row prefill, decode batch vs alone (%.3g)", label,
          rel_diff(with, alone, nl));

    /* merging replaces the weights the adapter touches: their views go */
    if (m.n_adapters && !model_merge_adapter(&m, 0, &e)) {
        int cleared = 1;
        for (int l = 0; l < c->n_layers; l++) {
            const Adapter *a = &m.adapters[0];
            int tq = adapter_pair(a, l, P_Q) || adapter_pair(a, l, P_K) || adapter_pair(a, l, P_V);
            int tg = adapter_pair(a, l, P_GATE) || adapter_pair(a, l, P_UP);
            cleared &= (!tq || !m.layers[l].qkv.rows) && (!tg || !m.layers[l].gate_up.rows);
        }
        CHECK(cleared, "%s: merge clears the views of replaced weights", label);
    } else if (m.n_adapters) {
        CHECK(0, "%s: merge: %s", label, e.msg);
    }
    free(saved);
    free(with);
    free(without);
    free(alone);
    model_close(&m);
    unlink(path);
}

/* model_fuse on hand-made layouts: back to back fuses, a gap or a different
 * in_scale does not, equal in_scale values in two copies do. */
static void check_layouts(void)
{
    static float block[4096]; /* q 4x8, k 2x8, v 2x8 f32 back to back, then room for a gap */
    static float s1[8], s2[8], s3[8];
    for (int i = 0; i < 8; i++) s1[i] = s2[i] = 1.0f + i, s3[i] = 2.0f;
    ModelConfig cfg = {.n_layers = 1, .dim = 8, .n_heads = 2, .n_kv_heads = 1, .head_dim = 2, .hidden_dim = 4};
    Layer L = {0};
    Model m = {.cfg = cfg, .layers = &L};
    int rows[P_COUNT] = {4, 2, 2, 8, 4, 4, 8};
    float *p = block;
    for (int i = 0; i < P_COUNT; i++) {
        L.w[i] = (QMat){.type = DT_F32, .rows = rows[i], .cols = 8, .data = p};
        p += rows[i] * 8;
    }
    model_fuse(&m);
    CHECK(L.qkv.rows == 8 && L.qkv.data == block && L.gate_up.rows == 8, "back to back: stacked");
    L.w[P_V].data = (const float *)L.w[P_V].data + 16;
    model_fuse(&m);
    CHECK(L.qkv.rows == 0 && L.gate_up.rows == 8, "a gap before v: q/k/v one by one");
    L.w[P_V].data = (const float *)L.w[P_V].data - 16;
    L.w[P_GATE].in_scale = s1;
    L.w[P_UP].in_scale = s2;
    model_fuse(&m);
    CHECK(L.gate_up.rows == 8 && L.gate_up.in_scale == s1, "equal in_scale values: stacked");
    L.w[P_UP].in_scale = s3;
    model_fuse(&m);
    CHECK(L.gate_up.rows == 0, "different in_scale: one by one");
    L.w[P_UP].in_scale = NULL;
    model_fuse(&m);
    CHECK(L.gate_up.rows == 0, "in_scale on one only: one by one");
    L.w[P_GATE].in_scale = NULL;
    L.w[P_K].type = DT_F16;
    model_fuse(&m);
    CHECK(L.qkv.rows == 0 && L.gate_up.rows == 8, "different types: one by one");
}

int main(void)
{
    Err e;
    if (check_tmpdir(tmpdir, sizeof tmpdir, "test-fuse")) {
        CHECK(0, "mkdtemp");
        return check_summary("fuse");
    }
    Kern *k = kern_create(2, NULL, &e);
    if (!k) {
        CHECK(0, "kern: %s", e.msg);
        return check_summary("fuse");
    }
    check_layouts();
    static const CompileAdapter AB[2] = {{"alpha", MODELS "tiny-qwen2-lora-alpha"}, {"beta", MODELS "tiny-qwen2-lora-beta"}};
    static const CompileAdapter DORA[1] = {{"dora", SHAPES "qwen2-s2-lora-dora"}};
    check_model(k, MODELS "tiny-qwen2", AB, 2, DT_Q4, 1, 1, "tiny-qwen2 q4");
    check_model(k, MODELS "tiny-qwen2", AB, 2, DT_Q8, 1, 1, "tiny-qwen2 q8");
    check_model(k, MODELS "tiny-qwen2", AB, 2, DT_F32, 1, 1, "tiny-qwen2 f32");
    /* dim 32, k and v 16 rows: their q4 scales (32 bytes) cannot be back to back */
    check_model(k, SHAPES "qwen2-s2", DORA, 1, DT_Q4, 0, 1, "qwen2-s2 dora q4");
    check_model(k, SHAPES "qwen2-s2", DORA, 1, DT_BF16, 1, 1, "qwen2-s2 dora bf16");
    kern_destroy(k);
    check_rmtree(tmpdir);
    return check_summary("fuse");
}
