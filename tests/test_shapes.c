/* test_shapes.c - differently shaped checkpoints against transformers/PEFT
 * goldens made by tests/fixtures/gen/make_shapes.py: Qwen2 with untied
 * embeddings, GQA 4/2, head_dim 8, f16 weights and the older config layout;
 * Qwen3 (q/k norms, explicit head_dim); Llama; and adapters with rank/alpha
 * patterns, layers_to_transform, a regex target_modules, rsLoRA and DoRA,
 * each run unmerged and merged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "run/sample.h"
#include "run/seq.h"
#include "util/json.h"

#define SHAPES "tests/fixtures/shapes/"

/* Compares every position's logits and the greedy ids of golden dir `gdir`. */
static void check_golden(const Model *m, Kern *k, const Adapter *lora, const char *gdir, const char *label)
{
    char path[512];
    Err e;
    snprintf(path, sizeof path, "%s/golden.json", gdir);
    cJSON *g = json_parse_file(path, &e);
    CHECK(g != NULL, "%s: %s", label, g ? "" : e.msg);
    if (!g) return;
    snprintf(path, sizeof path, "%s/logits.f32", gdir);
    size_t len;
    char *raw = file_read(path, &len, &e);
    const float *ref = (const float *)raw;
    int vocab = m->cfg.vocab_size;
    size_t off = 0;
    const cJSON *runs = cJSON_GetObjectItem(g, "runs");
    for (const cJSON *r = runs ? runs->child : NULL; r && raw; r = r->next) {
        const cJSON *ids = cJSON_GetObjectItem(r, "prompt_ids"), *gr = cJSON_GetObjectItem(r, "greedy_ids");
        int n = cJSON_GetArraySize(ids), ng = cJSON_GetArraySize(gr);
        int *prompt = malloc((size_t)n * sizeof *prompt);
        for (int i = 0; i < n; i++) prompt[i] = cJSON_GetArrayItem(ids, i)->valueint;
        float *all = malloc((size_t)n * vocab * sizeof *all), *lg = malloc((size_t)vocab * sizeof *lg);
        Seq q;
        int ok = (off + (size_t)n * vocab) * 4 <= len && !seq_init(&q, m, n + ng, KV_F32, lora, &e) &&
                 !seq_prefill(&q, k, prompt, n, 9, lg, all, &e);
        CHECK(ok, "%s: prefill of %d tokens: %s", label, n, e.msg);
        float maxd = 0;
        for (size_t i = 0; ok && i < (size_t)n * vocab; i++) maxd = fmaxf(maxd, fabsf(all[i] - ref[off + i]));
        CHECK(ok && maxd < 1e-3f, "%s: prompt of %d tokens: logits max |diff| %g", label, n, maxd);
        int same = ok;
        for (int i = 0; same && i < ng; i++) {
            int t = argmax(lg, vocab);
            same = t == cJSON_GetArrayItem(gr, i)->valueint;
            if (same && i + 1 < ng && seq_decode(&q, k, t, lg, &e)) same = 0;
        }
        CHECK(same, "%s: prompt of %d tokens: greedy ids differ", label, n);
        if (ok) seq_free(&q);
        off += (size_t)n * vocab;
        free(prompt);
        free(all);
        free(lg);
    }
    free(raw);
    cJSON_Delete(g);
}

static void check_base(Kern *k, const char *name, Arch arch)
{
    char dir[256];
    snprintf(dir, sizeof dir, SHAPES "%s", name);
    Model m;
    Err e;
    int ok = !model_open_dir(&m, dir, &e);
    CHECK(ok, "open %s: %s", dir, e.msg);
    if (!ok) return;
    CHECK(m.cfg.arch == arch, "%s: architecture %s", name, arch_name(m.cfg.arch));
    check_golden(&m, k, NULL, dir, name);
    model_close(&m);
}

/* Each adapter is exact, unmerged and merged (DoRA included). */
static void check_adapter(Kern *k, const char *name)
{
    char dir[256], label[128];
    snprintf(dir, sizeof dir, SHAPES "qwen2-s2-lora-%s", name);
    for (int merge = 0; merge < 2; merge++) {
        Model m;
        Err e;
        if (model_open_dir(&m, SHAPES "qwen2-s2", &e)) {
            CHECK(0, "open base: %s", e.msg);
            return;
        }
        snprintf(label, sizeof label, "adapter %s%s", name, merge ? " merged" : "");
        if (model_add_lora(&m, dir, name, &e)) {
            CHECK(0, "%s: %s", label, e.msg);
        } else if (merge && model_merge_adapter(&m, 0, &e)) {
            CHECK(0, "%s: merge: %s", label, e.msg);
        } else {
            check_golden(&m, k, merge ? NULL : &m.adapters[0], dir, label);
        }
        model_close(&m);
    }
}

int main(void)
{
    Err e;
    Kern *k = kern_create(0, NULL, &e);
    CHECK(k != NULL, "kern: %s", e.msg);
    if (!k) return check_summary("shapes");
    check_base(k, "qwen2-s2", ARCH_QWEN2);
    check_base(k, "qwen3-s", ARCH_QWEN3);
    check_base(k, "llama-s", ARCH_LLAMA);
    const char *adapters[] = {"pattern", "layers", "regex", "rslora", "dora"};
    for (int i = 0; i < 5; i++) check_adapter(k, adapters[i]);
    kern_destroy(k);
    return check_summary("shapes");
}
