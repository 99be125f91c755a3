/* test_peft.c - the PEFT adapter loader against the fixture adapters and
 * synthetic adapters written to a temporary folder: PEFT's selection rules
 * (rank_pattern, alpha_pattern, regex target_modules, layers_to_transform,
 * exclude_modules), dtype conversion, and every refusal, each checked for a
 * message that names the field or file at fault. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "load/config.h"
#include "load/peft.h"
#include "load/safetensors.h"
#include "util/half.h"
#include "util/json.h"

#define BASE "tests/fixtures/models/tiny-qwen2"
#define ALPHA "tests/fixtures/models/tiny-qwen2-lora-alpha"
#define BETA "tests/fixtures/models/tiny-qwen2-lora-beta"

/* ------------------------------------------------------------------ writing adapters */

typedef struct TT {
    char name[200];
    const char *dtype; /* "F32", "F16", "BF16" */
    int rows, cols;
} TT;

typedef struct Case {
    char root[256]; /* check_tmpdir folder holding one sub-folder per case */
    int n;
} Case;

/* Value i of every synthetic tensor: exact in f16 and bf16. */
static float val(const TT *t, int i) { return (float)((i + t->rows * 7 + t->cols) % 17 - 8) * 0.125f; }

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) || w != n) ? -1 : 0;
}

static int write_st(const char *path, const TT *t, int n)
{
    char *hdr = malloc(65536);
    size_t off = 0, hl = 0;
    hl += (size_t)snprintf(hdr + hl, 65536 - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t es = strcmp(t[i].dtype, "F32") ? 2 : 4, nb = (size_t)t[i].rows * t[i].cols * es;
        hl += (size_t)snprintf(hdr + hl, 65536 - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                               t[i].name, t[i].dtype, t[i].rows, t[i].cols, off, off + nb);
        off += nb;
    }
    hl += (size_t)snprintf(hdr + hl, 65536 - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    unsigned char *buf = malloc(8 + hl + off + 1);
    for (int b = 0; b < 8; b++) buf[b] = (unsigned char)((uint64_t)hl >> (8 * b));
    memcpy(buf + 8, hdr, hl);
    unsigned char *d = buf + 8 + hl;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < t[i].rows * t[i].cols; k++) {
            float v = val(&t[i], k);
            if (!strcmp(t[i].dtype, "F32")) {
                memcpy(d, &v, 4);
                d += 4;
            } else {
                uint16_t h = strcmp(t[i].dtype, "F16") ? f32_to_bf16(v) : f32_to_f16(v);
                memcpy(d, &h, 2);
                d += 2;
            }
        }
    }
    int rc = write_file(path, buf, (size_t)(d - buf));
    free(buf);
    free(hdr);
    return rc;
}

static const char *const PATH[P_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                          "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
static const int IN[P_COUNT] = {48, 48, 48, 48, 48, 48, 128};
static const int OUT[P_COUNT] = {48, 16, 16, 48, 128, 128, 48};

/* Appends lora_A and lora_B of (layer, p) with rank r. */
static void add_pair(TT *t, int *n, int layer, int p, int r, const char *dtype)
{
    snprintf(t[*n].name, sizeof t[*n].name, "base_model.model.model.layers.%d.%s.lora_A.weight", layer, PATH[p]);
    t[*n].dtype = dtype;
    t[*n].rows = r;
    t[*n].cols = IN[p];
    (*n)++;
    snprintf(t[*n].name, sizeof t[*n].name, "base_model.model.model.layers.%d.%s.lora_B.weight", layer, PATH[p]);
    t[*n].dtype = dtype;
    t[*n].rows = OUT[p];
    t[*n].cols = r;
    (*n)++;
}

/* A new folder with adapter_config.json = cfg (NULL: none) and the tensors
 * (st_name: file name to write them to). Returns the folder in dir. */
static void make_case(Case *c, char *dir, size_t dn, const char *cfg, const TT *t, int n, const char *st_name)
{
    snprintf(dir, dn, "%s/c%02d", c->root, c->n++);
    char path[400];
    if (mkdir(dir, 0700)) fprintf(stderr, "cannot create %s\n", dir);
    if (cfg) {
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        write_file(path, cfg, strlen(cfg));
    }
    snprintf(path, sizeof path, "%s/%s", dir, st_name ? st_name : "adapter_model.safetensors");
    write_st(path, t, n);
}

/* A config with the usual PEFT fields; `extra` is spliced in as more fields
 * (later duplicates of a key are not used: cJSON finds the first). */
static void cfg_text(char *buf, size_t n, const char *fields)
{
    snprintf(buf, n,
             "{%s%s\"peft_type\": \"LORA\", \"bias\": \"none\", \"use_dora\": false, \"lora_dropout\": 0.0, "
             "\"fan_in_fan_out\": false, \"modules_to_save\": null, \"task_type\": \"CAUSAL_LM\", "
             "\"peft_version\": \"0.21.0\"}",
             fields, fields[0] ? ", " : "");
}

/* ------------------------------------------------------------------ tests */

static ModelConfig base_cfg(void)
{
    ModelConfig c;
    Err e = {{0}};
    if (config_load_dir(&c, BASE, &e)) {
        fprintf(stderr, "base config: %s\n", e.msg);
        exit(1);
    }
    return c;
}

static float st_elem(const StTensor *t, int64_t i)
{
    const unsigned char *p = t->data;
    uint16_t h;
    float f;
    switch (t->dtype) {
    case DT_F32: memcpy(&f, p + 4 * i, 4); return f;
    case DT_F16: memcpy(&h, p + 2 * i, 2); return f16_to_f32(h);
    default: memcpy(&h, p + 2 * i, 2); return bf16_to_f32(h);
    }
}

static uint64_t hash_files(const char *dir)
{
    char path[400];
    size_t n1, n2;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    char *a = file_read(path, &n1, NULL);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    char *b = file_read(path, &n2, NULL);
    XXH64_state_t *h = XXH64_createState();
    XXH64_reset(h, 0);
    XXH64_update(h, a, n1);
    XXH64_update(h, b, n2);
    uint64_t v = XXH64_digest(h);
    XXH64_freeState(h);
    free(a);
    free(b);
    return v;
}

static void test_projections(const ModelConfig *c)
{
    CHECK(!strcmp(proj_name(P_Q), "q_proj") && !strcmp(proj_name(P_DOWN), "down_proj"), "proj_name");
    CHECK(!strcmp(proj_path(P_O), "self_attn.o_proj") && !strcmp(proj_path(P_GATE), "mlp.gate_proj"), "proj_path");
    for (int p = 0; p < P_COUNT; p++)
        CHECK(proj_in(c, (Proj)p) == IN[p] && proj_out(c, (Proj)p) == OUT[p], "proj_in/out of %s: %d -> %d",
              proj_name((Proj)p), proj_in(c, (Proj)p), proj_out(c, (Proj)p));
}

static void test_alpha(const ModelConfig *c)
{
    Adapter a;
    Err e = {{0}};
    int rc = peft_load(&a, ALPHA, "alpha", c, &e);
    CHECK(rc == 0, "alpha fixture loads: %s", e.msg);
    if (rc) return;
    CHECK(!strcmp(a.name, "alpha") && !strcmp(a.source, ALPHA) && a.n_layers == 2, "alpha name/source/layers");
    int all = 1;
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < P_COUNT; p++) {
            const LoraPair *lp = adapter_pair(&a, l, (Proj)p);
            all &= lp && lp->r == 8 && lp->scale == 2.0f && lp->A.type == DT_F32 && lp->A.rows == 8 &&
                   lp->A.cols == IN[p] && lp->B.rows == OUT[p] && lp->B.cols == 8;
        }
    CHECK(all, "alpha: 2 layers x 7 projections, r=8, scale 2, shapes (r, in) and (out, r)");
    CHECK(adapter_pair(&a, 2, P_Q) == NULL && adapter_pair(&a, -1, P_Q) == NULL, "adapter_pair out of range is NULL");
    CHECK(a.hash == hash_files(ALPHA), "hash = XXH64(config bytes, safetensors bytes)");

    StFile st;
    if (st_open(&st, ALPHA "/adapter_model.safetensors", &e) == 0) {
        const StTensor *tA = st_find(&st, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
        const StTensor *tB = st_find(&st, "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
        const LoraPair *q0 = adapter_pair(&a, 0, P_Q), *d1 = adapter_pair(&a, 1, P_DOWN);
        const float *qa = q0->A.data, *db = d1->B.data;
        CHECK(tA && qa[0] == st_elem(tA, 0) && qa[8 * 48 - 1] == st_elem(tA, 8 * 48 - 1), "alpha q0 A first/last");
        CHECK(tB && db[0] == st_elem(tB, 0) && db[48 * 8 - 1] == st_elem(tB, 48 * 8 - 1) && db[100] == st_elem(tB, 100),
              "alpha down1 B first/middle/last");
        CHECK(qa[0] != 0 || qa[1] != 0, "alpha values are not all zero");
        st_close(&st);
    }
    adapter_free(&a);
    adapter_free(&a); /* safe twice */
}

static void test_beta(const ModelConfig *c)
{
    Adapter a;
    Err e = {{0}};
    int rc = peft_load(&a, BETA "//", NULL, c, &e);
    CHECK(rc == 0, "beta fixture loads: %s", e.msg);
    if (rc) return;
    CHECK(!strcmp(a.name, "tiny-qwen2-lora-beta"), "default name is the folder's: %s", a.name);
    int ok = 1;
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < P_COUNT; p++) {
            const LoraPair *lp = adapter_pair(&a, l, (Proj)p);
            if (p == P_Q || p == P_V) ok &= lp && lp->r == 4 && lp->scale == 16.0f;
            else ok &= lp == NULL;
        }
    CHECK(ok, "beta: only q/v, r=4, rsLoRA scale 32/sqrt(4) = 16");
    CHECK(a.hash == hash_files(BETA) && a.hash != hash_files(ALPHA), "beta hash");
    adapter_free(&a);
}

/* Loads `dir` expecting success; returns 0 and fills a. */
static int load_ok(Adapter *a, const char *dir, const ModelConfig *c, const char *what)
{
    Err e = {{0}};
    int rc = peft_load(a, dir, what, c, &e);
    CHECK(rc == 0, "%s loads: %s", what, e.msg);
    return rc;
}

/* Loads `dir` expecting a refusal whose message holds `needle` (and `needle2`). */
static void load_fails(const char *dir, const ModelConfig *c, const char *what, const char *needle, const char *needle2)
{
    Adapter a;
    Err e = {{0}};
    int rc = peft_load(&a, dir, what, c, &e);
    CHECK(rc == -1, "%s is refused", what);
    CHECK(strstr(e.msg, needle) && (!needle2 || strstr(e.msg, needle2)), "%s: message names \"%s\"%s%s: %s", what,
          needle, needle2 ? " and " : "", needle2 ? needle2 : "", e.msg);
    CHECK(a.pairs == NULL && a.owned == NULL && a.name == NULL, "%s: adapter left empty", what);
    adapter_free(&a);
}

static float pair_scale(const Adapter *a, int l, Proj p)
{
    const LoraPair *lp = adapter_pair(a, l, p);
    return lp ? lp->scale : -1;
}

static int pair_rank(const Adapter *a, int l, Proj p)
{
    const LoraPair *lp = adapter_pair(a, l, p);
    return lp ? lp->r : 0;
}

static void test_patterns(Case *cs, const ModelConfig *c)
{
    char dir[300], cfg[2048];
    TT t[64];
    int n;
    Adapter a;

    /* per-module rank and alpha; a full-path key against a short one */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"v_proj\"], "
             "\"rank_pattern\": {\"model.layers.1.self_attn.q_proj\": 2}, "
             "\"alpha_pattern\": {\"v_proj\": 32, \"q_proj\": 3}");
    n = 0;
    add_pair(t, &n, 0, P_Q, 4, "F32");
    add_pair(t, &n, 1, P_Q, 2, "F32");
    add_pair(t, &n, 0, P_V, 4, "F32");
    add_pair(t, &n, 1, P_V, 4, "F32");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "rank/alpha patterns")) {
        CHECK(pair_rank(&a, 0, P_Q) == 4 && pair_scale(&a, 0, P_Q) == 0.75f, "L0 q: r 4, alpha 3 -> 0.75");
        CHECK(pair_rank(&a, 1, P_Q) == 2 && pair_scale(&a, 1, P_Q) == 1.5f, "L1 q: rank_pattern r 2, alpha 3 -> 1.5");
        CHECK(pair_rank(&a, 0, P_V) == 4 && pair_scale(&a, 1, P_V) == 8.0f, "v: alpha_pattern 32 / 4 = 8");
        CHECK(adapter_pair(&a, 0, P_K) == NULL, "k untouched");
        adapter_free(&a);
    }

    /* get_pattern_key takes the first key in file order that matches: "q_proj"
     * before "layers.1.self_attn.q_proj" wins for layer 1 too */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], "
             "\"rank_pattern\": {\"q_proj\": 6, \"layers.1.self_attn.q_proj\": 2}");
    n = 0;
    add_pair(t, &n, 0, P_Q, 6, "F32");
    add_pair(t, &n, 1, P_Q, 6, "F32");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "rank_pattern first key wins")) {
        CHECK(pair_rank(&a, 1, P_Q) == 6 && pair_scale(&a, 1, P_Q) == 8.0f / 6, "L1 q takes q_proj's rank 6");
        adapter_free(&a);
    }
    /* the other order: the layer-1 key comes first and is used for layer 1;
     * a key matches only whole dotted suffixes ("proj" is no suffix of ".q_proj") */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 4, \"lora_alpha\": 8, \"use_rslora\": true, \"target_modules\": [\"q_proj\"], "
             "\"rank_pattern\": {\"layers.1.self_attn.q_proj\": 2, \"q_proj\": 16, \"proj\": 9}");
    n = 0;
    add_pair(t, &n, 0, P_Q, 16, "F32");
    add_pair(t, &n, 1, P_Q, 2, "F32");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "rank_pattern specific key first")) {
        CHECK(pair_rank(&a, 0, P_Q) == 16 && pair_scale(&a, 0, P_Q) == 2.0f, "L0 q: r 16, rsLoRA 8/4");
        CHECK(pair_rank(&a, 1, P_Q) == 2 && fabsf(pair_scale(&a, 1, P_Q) - 8.0f / sqrtf(2.0f)) < 1e-6f,
              "L1 q: r 2, rsLoRA 8/sqrt(2)");
        adapter_free(&a);
    }
    /* the same file when its tensors follow the other rule: refused */
    n = 0;
    add_pair(t, &n, 0, P_Q, 6, "F32");
    add_pair(t, &n, 1, P_Q, 2, "F32");
    cfg_text(cfg, sizeof cfg,
             "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], "
             "\"rank_pattern\": {\"q_proj\": 6, \"layers.1.self_attn.q_proj\": 2}");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    load_fails(dir, c, "tensors ranked by the wrong rank_pattern key", "disagree with r", "layers.1.self_attn.q_proj");

    /* rank_pattern keys are regexes: "layers\.[01]\.mlp\..*" */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 4, \"lora_alpha\": 4, \"target_modules\": [\"up_proj\", \"o_proj\"], "
             "\"rank_pattern\": {\"layers\\\\.[01]\\\\.mlp\\\\..*\": 3}");
    n = 0;
    for (int l = 0; l < 2; l++) {
        add_pair(t, &n, l, P_UP, 3, "F32");
        add_pair(t, &n, l, P_O, 4, "F32");
    }
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "regex rank_pattern key")) {
        CHECK(pair_rank(&a, 1, P_UP) == 3 && pair_rank(&a, 1, P_O) == 4, "regex key picks mlp only");
        adapter_free(&a);
    }
}

static void test_targets(Case *cs, const ModelConfig *c)
{
    char dir[300], cfg[2048];
    TT t[64];
    int n;
    Adapter a;

    /* target_modules as a regex: fullmatch on the module name */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 2, \"lora_alpha\": 4, \"target_modules\": \"model\\\\.layers\\\\.1\\\\.self_attn\\\\.(q|k)_proj\"");
    n = 0;
    add_pair(t, &n, 1, P_Q, 2, "F32");
    add_pair(t, &n, 1, P_K, 2, "F32");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "regex target_modules")) {
        CHECK(pair_rank(&a, 1, P_Q) == 2 && pair_rank(&a, 1, P_K) == 2 && !pair_rank(&a, 0, P_Q) &&
                  !pair_rank(&a, 1, P_V),
              "regex selects layer 1 q and k only");
        adapter_free(&a);
    }
    /* a regex is a fullmatch: "q_proj" alone matches nothing */
    cfg_text(cfg, sizeof cfg, "\"r\": 2, \"lora_alpha\": 4, \"target_modules\": \"q_proj\"");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    load_fails(dir, c, "regex that fullmatches nothing", "target_modules", NULL);

    /* layers_to_transform (list), default layer pattern */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"v_proj\", \"down_proj\"], \"layers_to_transform\": [1]");
    n = 0;
    add_pair(t, &n, 1, P_V, 2, "F32");
    add_pair(t, &n, 1, P_DOWN, 2, "F32");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "layers_to_transform [1]")) {
        CHECK(pair_rank(&a, 1, P_V) == 2 && pair_rank(&a, 1, P_DOWN) == 2 && !pair_rank(&a, 0, P_V) &&
                  !pair_rank(&a, 0, P_DOWN),
              "layer 1 only");
        adapter_free(&a);
    }
    /* int with layers_pattern; an exact full name escapes the layer filter */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"model.layers.1.self_attn.q_proj\", \"v_proj\"], "
             "\"layers_to_transform\": [0], \"layers_pattern\": \"layers\"");
    n = 0;
    add_pair(t, &n, 1, P_Q, 2, "F32");
    add_pair(t, &n, 0, P_V, 2, "F32");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "layers_to_transform [0] + layers_pattern")) {
        CHECK(pair_rank(&a, 1, P_Q) == 2 && pair_rank(&a, 0, P_V) == 2 && !pair_rank(&a, 1, P_V) &&
                  !pair_rank(&a, 0, P_Q),
              "exact name kept, v on layer 0 only");
        adapter_free(&a);
    }
    /* an int selects one layer */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"gate_proj\"], \"layers_to_transform\": 1");
    n = 0;
    add_pair(t, &n, 1, P_GATE, 2, "F32");
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "layers_to_transform 1")) {
        CHECK(pair_rank(&a, 1, P_GATE) == 2 && !pair_rank(&a, 0, P_GATE), "gate on layer 1 only");
        adapter_free(&a);
    }
    /* LoraConfig refuses layers_pattern with a falsy layers_to_transform,
     * and 0 is falsy in Python */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"v_proj\"], \"layers_to_transform\": 0, "
             "\"layers_pattern\": \"layers\"");
    make_case(cs, dir, sizeof dir, cfg, t, 0, NULL);
    load_fails(dir, c, "layers_pattern with layers_to_transform 0", "layers_pattern", "layers_to_transform");
    /* a layers_pattern that names no ModuleList selects nothing */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 2, \"lora_alpha\": 2, \"target_modules\": [\"v_proj\"], \"layers_to_transform\": [0, 1], "
             "\"layers_pattern\": [\"h\", \"blocks\"]");
    make_case(cs, dir, sizeof dir, cfg, t, 0, NULL);
    load_fails(dir, c, "layers_pattern matching no layer", "select no module", NULL);

    /* all-linear with exclude_modules, bf16 and f16 tensors, adapter-name infix */
    cfg_text(cfg, sizeof cfg,
             "\"r\": 2, \"lora_alpha\": 2, \"target_modules\": \"all-linear\", "
             "\"exclude_modules\": [\"model.layers.0.mlp.down_proj\"], \"fan_in_fan_out\": true, "
             "\"init_lora_weights\": \"gaussian\"");
    n = 0;
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < P_COUNT; p++)
            if (l || p != P_DOWN) add_pair(t, &n, l, p, 2, p % 2 ? "BF16" : "F16");
    for (int i = 0; i < n; i++) {
        char *w = strstr(t[i].name, ".weight");
        if (w && i % 3 == 0) snprintf(w, sizeof t[i].name - (size_t)(w - t[i].name), ".default.weight");
    }
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    if (!load_ok(&a, dir, c, "all-linear, exclude, bf16/f16, infix")) {
        int cnt = 0;
        for (int l = 0; l < 2; l++)
            for (int p = 0; p < P_COUNT; p++) cnt += adapter_pair(&a, l, (Proj)p) != NULL;
        CHECK(cnt == 13 && !adapter_pair(&a, 0, P_DOWN), "13 pairs, layer 0 down_proj excluded");
        const LoraPair *k = adapter_pair(&a, 1, P_K); /* BF16 */
        const LoraPair *g = adapter_pair(&a, 0, P_GATE); /* F16 */
        TT tk = {"", "BF16", 2, 48}, tg = {"", "F16", 128, 2};
        int ok = 1;
        for (int i = 0; i < 2 * 48; i++) ok &= ((const float *)k->A.data)[i] == val(&tk, i);
        for (int i = 0; i < 128 * 2; i++) ok &= ((const float *)g->B.data)[i] == val(&tg, i);
        CHECK(ok, "bf16 and f16 values converted exactly");
        adapter_free(&a);
    }
}

/* One refusal: config text `fields`, tensors q_proj of both layers at rank
 * `r` (plus `extra` tensors), file name `st_name`. */
static void refuse(Case *cs, const ModelConfig *c, const char *what, const char *fields, int r, const TT *extra,
                   int n_extra, const char *needle, const char *needle2)
{
    char dir[300], cfg[2048];
    TT t[32];
    int n = 0;
    add_pair(t, &n, 0, P_Q, r, "F32");
    add_pair(t, &n, 1, P_Q, r, "F32");
    for (int i = 0; i < n_extra; i++) t[n++] = extra[i];
    cfg_text(cfg, sizeof cfg, fields);
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    load_fails(dir, c, what, needle, needle2);
}

#define Q_OK "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]"

static void test_refusals(Case *cs, const ModelConfig *c)
{
    char dir[300], cfg[2048];
    TT t[32];
    int n = 0;

    /* the baseline all the refusals vary loads */
    add_pair(t, &n, 0, P_Q, 4, "F32");
    add_pair(t, &n, 1, P_Q, 4, "F32");
    cfg_text(cfg, sizeof cfg, Q_OK);
    make_case(cs, dir, sizeof dir, cfg, t, n, NULL);
    Adapter a;
    if (!load_ok(&a, dir, c, "baseline q_proj adapter")) adapter_free(&a);

    /* files */
    make_case(cs, dir, sizeof dir, NULL, t, n, NULL);
    load_fails(dir, c, "missing adapter_config.json", "adapter_config.json", "not found");
    load_fails("/nonexistent/duet-adapter", c, "missing folder", "/nonexistent/duet-adapter", "adapter_config.json");
    make_case(cs, dir, sizeof dir, "{\"r\": 4, \"lora_alpha\": ", t, n, NULL);
    load_fails(dir, c, "malformed JSON", "adapter_config.json", "invalid JSON");
    make_case(cs, dir, sizeof dir, "[1, 2]", t, n, NULL);
    load_fails(dir, c, "JSON that is not an object", "adapter_config.json", "object");
    make_case(cs, dir, sizeof dir, cfg, t, n, "adapter_model.bin");
    load_fails(dir, c, "adapter_model.bin only", "adapter_model.bin", "safe_serialization=True");
    make_case(cs, dir, sizeof dir, cfg, t, 0, "unrelated.safetensors");
    load_fails(dir, c, "no weights file", "adapter_model.safetensors", NULL);

    /* fields */
    refuse(cs, c, "r = 0", "\"r\": 0, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]", 4, NULL, 0, "\"r\"", "0");
    refuse(cs, c, "r negative", "\"r\": -4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]", 4, NULL, 0, "\"r\"",
           "-4");
    refuse(cs, c, "r missing", "\"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]", 4, NULL, 0, "\"r\"", NULL);
    refuse(cs, c, "r not an integer", "\"r\": 4.5, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]", 4, NULL, 0,
           "\"r\"", NULL);
    refuse(cs, c, "lora_alpha missing", "\"r\": 4, \"target_modules\": [\"q_proj\"]", 4, NULL, 0, "lora_alpha", NULL);
    refuse(cs, c, "lora_alpha a string", "\"r\": 4, \"lora_alpha\": \"16\", \"target_modules\": [\"q_proj\"]", 4, NULL,
           0, "lora_alpha", NULL);
    refuse(cs, c, "peft_type IA3", "\"peft_type\": \"IA3\", " Q_OK, 4, NULL, 0, "peft_type", "IA3");
    refuse(cs, c, "use_dora", "\"use_dora\": true, " Q_OK, 4, NULL, 0, "use_dora", "DoRA");
    refuse(cs, c, "bias all", "\"bias\": \"all\", " Q_OK, 4, NULL, 0, "\"bias\"", "all");
    refuse(cs, c, "bias lora_only", "\"bias\": \"lora_only\", " Q_OK, 4, NULL, 0, "\"bias\"", NULL);
    refuse(cs, c, "lora_bias", "\"lora_bias\": true, " Q_OK, 4, NULL, 0, "lora_bias", NULL);
    refuse(cs, c, "use_qalora", "\"use_qalora\": true, " Q_OK, 4, NULL, 0, "use_qalora", NULL);
    refuse(cs, c, "modules_to_save", "\"modules_to_save\": [\"lm_head\"], " Q_OK, 4, NULL, 0, "modules_to_save", NULL);
    refuse(cs, c, "layer_replication", "\"layer_replication\": [[0, 2], [1, 2]], " Q_OK, 4, NULL, 0,
           "layer_replication", NULL);
    refuse(cs, c, "trainable_token_indices", "\"trainable_token_indices\": [5, 6], " Q_OK, 4, NULL, 0,
           "trainable_token_indices", NULL);
    refuse(cs, c, "alora", "\"alora_invocation_tokens\": [1, 2, 3], " Q_OK, 4, NULL, 0, "alora_invocation_tokens", NULL);
    refuse(cs, c, "target_parameters", "\"target_parameters\": [\"mlp.experts.down_proj\"], " Q_OK, 4, NULL, 0,
           "target_parameters", NULL);
    refuse(cs, c, "pissa init", "\"init_lora_weights\": \"pissa_niter_4\", " Q_OK, 4, NULL, 0, "init_lora_weights",
           "path_initial_model_for_weight_conversion");
    refuse(cs, c, "unknown field", "\"frobnicate_lora\": 3, " Q_OK, 4, NULL, 0, "frobnicate_lora", NULL);
    refuse(cs, c, "target_modules missing", "\"r\": 4, \"lora_alpha\": 8", 4, NULL, 0, "target_modules", NULL);
    refuse(cs, c, "bad regex", "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \"(q_proj\"", 4, NULL, 0,
           "target_modules", "regular expression");
    refuse(cs, c, "bad rank_pattern regex", Q_OK ", \"rank_pattern\": {\"[q\": 2}", 4, NULL, 0, "rank_pattern", "[q");
    refuse(cs, c, "rank_pattern rank 0", Q_OK ", \"rank_pattern\": {\"q_proj\": 0}", 4, NULL, 0, "rank_pattern", NULL);
    refuse(cs, c, "layers_to_transform with regex targets",
           "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \".*q_proj\", \"layers_to_transform\": [0]", 4, NULL, 0,
           "layers_to_transform", NULL);
    refuse(cs, c, "huge layer index (fuzz finding: float-to-long overflow)",
           Q_OK ", \"layers_to_transform\": [0, 4444444444444444444444444444444444444444, 1]", 4, NULL, 0,
           "layers_to_transform", NULL);
    refuse(cs, c, "layers_pattern without layers", Q_OK ", \"layers_pattern\": \"layers\"", 4, NULL, 0,
           "layers_pattern", NULL);

    /* tensors against config and base */
    refuse(cs, c, "A/B shape disagrees with r", Q_OK, 2, NULL, 0, "disagree with r", "q_proj");
    TT missB = {"base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", "F32", 4, 48};
    refuse(cs, c, "A without B", "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"k_proj\"]", 4, &missB,
           1, "lora_B", "k_proj.lora_A");
    TT l2[2] = {{"base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight", "F32", 4, 48},
                {"base_model.model.model.layers.2.self_attn.q_proj.lora_B.weight", "F32", 48, 4}};
    refuse(cs, c, "layer beyond the base", Q_OK, 4, l2, 2, "layer 2", "2 layers");
    TT ca[2] = {{"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", "F32", 4, 48},
                {"base_model.model.transformer.h.0.attn.c_attn.lora_B.weight", "F32", 144, 4}};
    refuse(cs, c, "c_attn in target_modules", "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"c_attn\"]",
           4, ca, 2, "c_attn", NULL);
    refuse(cs, c, "c_attn tensors only", Q_OK, 4, ca, 2, "c_attn", "not a projection");
    refuse(cs, c, "mlp (not Linear) in target_modules",
           "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"mlp\"]", 4, NULL, 0, "mlp", "not a Linear");
    TT wide[2] = {{"base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", "F32", 4, 64},
                  {"base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight", "F32", 16, 4}};
    refuse(cs, c, "wrong in-features", "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"k_proj\"], "
           "\"layers_to_transform\": [0, 1]", 4, wide, 2, "in-features", "64");
    TT tall[2] = {{"base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", "F32", 4, 48},
                  {"base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight", "F32", 32, 4}};
    refuse(cs, c, "wrong out-features", "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", "
           "\"model.layers.0.self_attn.k_proj\"]", 4, tall, 2, "out-features", "32");
    TT lm[2] = {{"base_model.model.lm_head.lora_A.weight", "F32", 4, 48},
                {"base_model.model.lm_head.lora_B.weight", "F32", 151936, 4}};
    refuse(cs, c, "lm_head in target_modules", "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"lm_head\"]",
           4, lm, 2, "lm_head", NULL);
    refuse(cs, c, "lm_head tensors", Q_OK, 4, lm, 2, "lm_head", NULL);
    TT emb[2] = {{"base_model.model.model.embed_tokens.lora_embedding_A", "F32", 4, 48},
                 {"base_model.model.model.embed_tokens.lora_embedding_B", "F32", 48, 4}};
    refuse(cs, c, "embed_tokens tensors", Q_OK, 4, emb, 2, "embed_tokens", NULL);
    TT kk[2] = {{"base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", "F32", 4, 48},
                {"base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight", "F32", 16, 4}};
    refuse(cs, c, "tensor the config does not select", Q_OK, 4, kk, 2, "does not select", "k_proj");
    refuse(cs, c, "selected module without tensors",
           "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"o_proj\"]", 4, NULL, 0, "o_proj", "no lora_A");
    TT mag = {"base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "F32", 1, 48};
    refuse(cs, c, "DoRA magnitude tensor", Q_OK, 4, &mag, 1, "lora_magnitude_vector", "DoRA");
    TT bias = {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias", "F32", 1, 48};
    refuse(cs, c, "lora_B bias tensor", Q_OK, 4, &bias, 1, "lora_bias", NULL);
    TT mts = {"base_model.model.lm_head.modules_to_save.default.weight", "F32", 1, 48};
    refuse(cs, c, "modules_to_save tensor", Q_OK, 4, &mts, 1, "modules_to_save", NULL);
    TT two[2] = {{"base_model.model.model.layers.0.self_attn.v_proj.lora_A.one.weight", "F32", 4, 48},
                 {"base_model.model.model.layers.0.self_attn.v_proj.lora_B.two.weight", "F32", 16, 4}};
    refuse(cs, c, "two adapters in one file", "\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"v_proj\"]",
           4, two, 2, "more than one adapter", NULL);
    TT dup = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", "F32", 4, 48};
    refuse(cs, c, "same weight twice", Q_OK, 4, &dup, 1, "same weight", NULL);
}

static void test_config_check(const ModelConfig *c)
{
    Err e = {{0}};
    const char *ok = "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": [\"q_proj\"]}";
    CHECK(peft_config_check(ok, strlen(ok), "cfg", c, &e) == 0, "peft_config_check accepts: %s", e.msg);
    /* a pattern that backtracks exponentially gives up with an error */
    const char *evil = "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, "
                       "\"target_modules\": \"(.*.*)*(.*.*)*(.*.*)*(.*.*)*(.*.*)*(.*.*)*X\"}";
    int rc = peft_config_check(evil, strlen(evil), "cfg", c, &e);
    CHECK(rc == -1 && strstr(e.msg, "target_modules"), "catastrophic regex fails cleanly: %s", e.msg);
}

int main(void)
{
    ModelConfig c = base_cfg();
    Case cs = {0};
    if (check_tmpdir(cs.root, sizeof cs.root, "test-peft")) return 1;
    test_projections(&c);
    test_alpha(&c);
    test_beta(&c);
    test_patterns(&cs, &c);
    test_targets(&cs, &c);
    test_refusals(&cs, &c);
    test_config_check(&c);
    check_rmtree(cs.root);
    return check_summary("peft");
}
