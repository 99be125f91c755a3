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
#include "golden.h"
#include "run/sample.h"
#include "run/seq.h"
#include "util/json.h"

#define SHAPES "tests/fixtures/shapes/"

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
    golden_check_dir(&m, k, NULL, dir, name);
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
            golden_check_dir(&m, k, merge ? NULL : &m.adapters[0], dir, label);
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
