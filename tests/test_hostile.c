/* test_hostile.c - duet against hostile files and careless callers (issue
 * 16): non-finite weights, adapters and options; options out of range; one
 * set of limits for load, compile and open; a .duet with 80,000 tensors;
 * sampling ids the tokenizer lacks; adapter names with escapes. Each case
 * plants one flaw in a copy of the tiny fixture (checksums recomputed where
 * the file has them) and checks the status and the message that names it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "duet.h"
#include "duet_image.h"
#include "util/clock.h"

#define BASE "tests/fixtures/models/tiny-qwen2"
#define ALPHA "tests/fixtures/models/tiny-qwen2-lora-alpha"
#define VOCAB 151936
#define N_TOKENS 151669 /* ids below this have a token; the rest pad the embedding */

static char tmp[256];

static const int prompt[] = {151644, 872, 198, 3838, 374, 279, 13940, 2730, 30, 151645, 198, 151644, 77091, 198};
#define NP ((int)(sizeof prompt / sizeof prompt[0]))

static char *path_in(const char *name)
{
    static char p[8][512];
    static int k;
    char *s = p[k++ % 8];
    snprintf(s, 512, "%s/%s", tmp, name);
    return s;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int copy_file(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = duet_image_read(from, &n);
    int rc = b ? duet_image_write(to, b, n) : -1;
    free(b);
    return rc;
}

/* A folder `name` under tmp with links to every file of BASE except
 * config.json, which gets `config` (NULL: a copy). */
static const char *base_with_config(const char *name, const char *config)
{
    const char *dir = path_in(name);
    static char keep[4][512];
    static int k;
    char *d = keep[k++ % 4];
    snprintf(d, 512, "%s", dir);
    mkdir(d, 0700);
    const char *files[] = {"generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                           "model.safetensors.index.json", "tokenizer_config.json"};
    char src[1024], dst[1024], abs[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(src, sizeof src, BASE "/%s", files[i]);
        snprintf(dst, sizeof dst, "%s/%s", d, files[i]);
        if (realpath(src, abs)) symlink(abs, dst);
    }
    snprintf(dst, sizeof dst, "%s/tokenizer.json", d);
    if (realpath(BASE "/tokenizer.json", abs)) symlink(abs, dst);
    snprintf(dst, sizeof dst, "%s/config.json", d);
    if (config) write_text(dst, config);
    else copy_file(BASE "/config.json", dst);
    return d;
}

/* BASE's config.json with `from` replaced by `to`, as a malloc'd string. */
static char *config_with(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = duet_image_read(BASE "/config.json", &n);
    char *s = malloc(n + strlen(to) + 1);
    if (!b || !s) return NULL;
    const char *at = strstr((const char *)b, from);
    if (!at) return NULL;
    size_t pre = (size_t)(at - (const char *)b);
    memcpy(s, b, pre);
    strcpy(s + pre, to);
    strncat(s, at + strlen(from), n - pre - strlen(from));
    s[pre + strlen(to) + n - pre - strlen(from)] = 0;
    free(b);
    return s;
}

/* ---------------------------------------------------------------- adapters */

/* A PEFT folder with lora_A/lora_B on layer 0's q_proj only, rank r, f32,
 * values 0.01 except B[0] = b0; lora_alpha alpha. */
static const char *adapter(const char *name, int r, double alpha, float b0)
{
    const char *dir = path_in(name);
    static char keep[8][512];
    static int k;
    char *d = keep[k++ % 8];
    snprintf(d, 512, "%s", dir);
    mkdir(d, 0700);
    char p[600], cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"peft_type\": \"LORA\", \"r\": %d, \"lora_alpha\": %g, \"target_modules\": [\"q_proj\"], "
             "\"layers_to_transform\": [0]}",
             r, alpha);
    snprintf(p, sizeof p, "%s/adapter_config.json", d);
    write_text(p, cfg);
    size_t na = (size_t)r * 48, nb = (size_t)48 * r;
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[%d,48],"
                      "\"data_offsets\":[0,%zu]},"
                      "\"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[48,%d],"
                      "\"data_offsets\":[%zu,%zu]}}",
                      r, na * 4, r, na * 4, (na + nb) * 4);
    while (hl % 8) hdr[hl++] = ' ';
    size_t len = 8 + (size_t)hl + (na + nb) * 4;
    unsigned char *buf = malloc(len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)hl);
    float *v = (float *)(buf + 8 + hl), x = 0.01f;
    for (size_t i = 0; i < na + nb; i++) memcpy(buf + 8 + hl + 4 * i, &x, 4);
    memcpy(buf + 8 + hl + 4 * na, &b0, 4);
    (void)v;
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", d);
    duet_image_write(p, buf, len);
    free(buf);
    return d;
}

/* Opens BASE with one adapter spec; the status, the message in err. */
static int open_with(const char *spec, char *err, size_t n)
{
    const char *loras[] = {spec, NULL};
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.loras = loras;
    duet_model *m = NULL;
    int rc = duet_model_open(&m, BASE, &mo, err, n);
    duet_model_close(m);
    return rc;
}

/* Compiles base (+ one adapter spec) at quant into out; the status, the message in err. */
static int compile_with(const char *base, const char *spec, const char *quant, const char *out, char *err, size_t n)
{
    const char *loras[] = {spec, NULL};
    duet_compile_options co;
    duet_compile_options_default(&co);
    co.loras = spec ? loras : NULL;
    co.quant = quant;
    return duet_compile_file(base, out, &co, err, n);
}

static void test_adapters(void)
{
    char err[512], err2[512], spec[600];
    /* one inf in lora_B: refused at load, naming the tensor */
    snprintf(spec, sizeof spec, "inf=%s", adapter("a-inf", 8, 16, INFINITY));
    int rc = open_with(spec, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "q_proj.lora_B.weight") && strstr(err, "non-finite"),
          "adapter with inf in lora_B: %d %s", rc, err);
    snprintf(spec, sizeof spec, "nan=%s", adapter("a-nan", 8, 16, NAN));
    rc = open_with(spec, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "non-finite"), "adapter with NaN in lora_B: %d %s", rc, err);
    /* a huge lora_alpha */
    snprintf(spec, sizeof spec, "big=%s", adapter("a-alpha", 8, 1e9, 0.01f));
    rc = open_with(spec, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "lora_alpha") && strstr(err, "limit"), "lora_alpha 1e9: %d %s", rc, err);
    snprintf(spec, sizeof spec, "ok=%s", adapter("a-ok", 8, 16, 0.5f));
    rc = open_with(spec, err, sizeof err);
    CHECK(rc == DUET_OK, "a plain rank-8 adapter opens: %s", err);

    /* rank 300: the same refusal at open and at compile (it used to compile,
     * and to open from a folder, then fail at generate) */
    snprintf(spec, sizeof spec, "r300=%s", adapter("a-r300", 300, 16, 0.01f));
    rc = open_with(spec, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "rank 300") && strstr(err, "limit of 256"), "rank 300 at open: %d %s", rc, err);
    int rc2 = compile_with(BASE, spec, "f32", path_in("r300.duet"), err2, sizeof err2);
    CHECK(rc2 == rc && strstr(err2, err), "rank 300 at compile, the same message: %d %s", rc2, err2);
    CHECK(access(path_in("r300.duet"), F_OK) != 0, "no file written");
    snprintf(spec, sizeof spec, "r256=%s", adapter("a-r256", 256, 16, 0.01f));
    CHECK(open_with(spec, err, sizeof err) == DUET_OK, "rank 256 opens: %s", err);

    /* adapter names: what reaches a terminal is restricted, and escaped in the message */
    snprintf(spec, sizeof spec, "bad\x1b[31mname=%s", ALPHA);
    rc = open_with(spec, err, sizeof err);
    CHECK(rc == DUET_ERR_ARG && strstr(err, "\\x1b") && !strchr(err, 0x1b), "adapter name with ESC: %d %s", rc, err);
    snprintf(spec, sizeof spec, "two\nlines=%s", ALPHA);
    CHECK(open_with(spec, err, sizeof err) == DUET_ERR_ARG && !strchr(err, '\n'), "adapter name with a newline: %s", err);
    rc = compile_with(BASE, spec, "f32", path_in("nl.duet"), err2, sizeof err2);
    CHECK(rc == DUET_ERR_ARG && !strcmp(err, err2), "the same at compile: %d %s", rc, err2);
    snprintf(spec, sizeof spec, "%.*s=%s", 64, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ALPHA);
    CHECK(open_with(spec, err, sizeof err) == DUET_ERR_ARG && strstr(err, "64 bytes"), "a 64-byte name: %s", err);
    snprintf(spec, sizeof spec, "ok.name_1-x=%s", ALPHA);
    CHECK(open_with(spec, err, sizeof err) == DUET_OK, "A-Za-z0-9._- are fine: %s", err);
    /* a missing adapter folder is an I/O error, not a format one */
    snprintf(spec, sizeof spec, "gone=%s", path_in("no-such-adapter"));
    rc = open_with(spec, err, sizeof err);
    CHECK(rc == DUET_ERR_IO, "missing adapter folder: %d %s", rc, err);
}

/* ---------------------------------------------------------------- config limits */

static void test_config_limits(void)
{
    struct {
        const char *from, *to, *want;
    } cases[] = {
        {"\"max_position_embeddings\": 4096", "\"max_position_embeddings\": 2000000000", "max_position_embeddings"},
        {"\"rope_theta\": 1000000.0", "\"rope_theta\": 1e31", "rope_theta"},
        {"\"eos_token_id\": 151645", "\"eos_token_id\": 999999", "eos"},
        {"\"head_dim\": 0", "\"head_dim\": 0", NULL}, /* placeholder: skipped */
        {"\"num_key_value_heads\": 1", "\"num_key_value_heads\": 1, \"head_dim\": 4096", "head_dim"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (!cases[i].want) continue;
        char *cfg = config_with(cases[i].from, cases[i].to), name[32], err[512], err2[512];
        if (!cfg) {
            CHECK(0, "config case %zu: no \"%s\" in config.json", i, cases[i].from);
            continue;
        }
        snprintf(name, sizeof name, "cfg%zu", i);
        const char *dir = base_with_config(name, cfg);
        if (cases[i].want[0] == 'e') { /* generation_config.json overrides eos: use a folder without it */
            char g[600];
            snprintf(g, sizeof g, "%s/generation_config.json", dir);
            unlink(g);
        }
        duet_model *m = NULL;
        int rc = duet_model_open(&m, dir, NULL, err, sizeof err);
        duet_model_close(m);
        CHECK(rc == DUET_ERR_FORMAT && strstr(err, cases[i].want) && strstr(err, "expected"), "config %s: %d %s",
              cases[i].to, rc, err);
        int rc2 = compile_with(dir, NULL, "f32", path_in("cfg.duet"), err2, sizeof err2);
        CHECK(rc2 == rc && !strcmp(err, err2), "compile refuses %s with the same message: %s", cases[i].to, err2);
        free(cfg);
    }
}

/* ---------------------------------------------------------------- options */

static void test_options(void)
{
    char err[512];
    duet_model_options mo;
    duet_model *m = NULL;
    int bad_chunk[] = {-1, 2147483647, 2000000000, 4097};
    for (int i = 0; i < 4; i++) {
        duet_model_options_default(&mo);
        mo.prefill_chunk = bad_chunk[i];
        int rc = duet_model_open(&m, BASE, &mo, err, sizeof err);
        CHECK(rc == DUET_ERR_ARG && !m && strstr(err, "prefill_chunk"), "prefill_chunk %d: %d %s", bad_chunk[i], rc, err);
        duet_model_close(m);
        m = NULL;
    }
    duet_model_options_default(&mo);
    mo.n_threads = 1 << 30;
    int rc = duet_model_open(&m, BASE, &mo, err, sizeof err);
    CHECK(rc == DUET_ERR_ARG && strstr(err, "n_threads"), "n_threads 2^30: %d %s", rc, err);
    duet_model_close(m);
    m = NULL;
    duet_model_options_default(&mo);
    mo.prefill_chunk = 4096;
    if (duet_model_open(&m, BASE, &mo, err, sizeof err)) {
        CHECK(0, "open with prefill_chunk 4096: %s", err);
        return;
    }
    typedef struct OptCase {
        const char *name;
        float *field;
        float value;
    } OptCase;
    OptCase cases[16];
    duet_session_options o;
    int n = 0;
#define C(f, v) cases[n++] = (OptCase){#f, &o.f, v}
    C(temperature, NAN), C(temperature, INFINITY), C(temperature, -1), C(temperature, 1000);
    C(top_p, NAN), C(min_p, NAN), C(repetition_penalty, NAN), C(repetition_penalty, INFINITY);
    C(frequency_penalty, NAN), C(frequency_penalty, -INFINITY), C(presence_penalty, INFINITY), C(presence_penalty, 1e9f);
#undef C
    duet_session *s = NULL, *live = NULL;
    duet_session_options_default(&o);
    o.n_ctx = 64;
    CHECK(duet_session_create(m, &o, &live) == DUET_OK, "create: %s", duet_model_errmsg(m));
    for (int i = 0; i < n; i++) {
        duet_session_options_default(&o);
        o.n_ctx = 64;
        *cases[i].field = cases[i].value;
        rc = duet_session_create(m, &o, &s);
        CHECK(rc == DUET_ERR_ARG && !s && strstr(duet_model_errmsg(m), cases[i].name), "%s = %g at create: %d %s",
              cases[i].name, (double)cases[i].value, rc, duet_model_errmsg(m));
        rc = live ? duet_session_set_options(live, &o) : DUET_ERR_ARG;
        CHECK(rc == DUET_ERR_ARG && strstr(duet_session_errmsg(live), cases[i].name), "%s = %g at set_options: %s",
              cases[i].name, (double)cases[i].value, live ? duet_session_errmsg(live) : "");
    }
    /* the scheduler runs a 4096-row chunk (the limit) */
    if (live) {
        int *ids = malloc(60 * sizeof *ids);
        for (int i = 0; i < 60; i++) ids[i] = prompt[i % NP];
        duet_session_options_default(&o);
        o.n_ctx = 64;
        o.max_tokens = 2;
        duet_session_set_options(live, &o);
        duet_session_append_tokens(live, ids, 60);
        char *text = NULL;
        rc = duet_generate_all(live, &text);
        CHECK(rc == DUET_FINISH_LENGTH, "generate with prefill_chunk 4096: %d %s", rc, duet_session_errmsg(live));
        free(text);
        free(ids);
    }
    duet_session_close(live);
    /* n_ctx above max_position_embeddings */
    duet_session_options_default(&o);
    o.n_ctx = 4097;
    CHECK(duet_session_create(m, &o, &s) == DUET_ERR_ARG && strstr(duet_model_errmsg(m), "max_position_embeddings"),
          "n_ctx 4097 on a 4096-position model: %s", duet_model_errmsg(m));
    duet_model_close(m);
}

/* ---------------------------------------------------------------- .duet files */

/* Writes img with the f32 value x planted at every element of tensor `name`
 * (first n values, or all when n is 0) and checksums recomputed; returns the path. */
static const char *plant(const unsigned char *img, size_t len, const char *name, size_t first, size_t n, float x,
                         float mul, const char *out)
{
    unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
    memcpy(cp, img, len);
    cJSON *meta = duet_image_meta(cp, len);
    long long off = duet_image_tensor(meta, name, "data");
    if (off < 0) {
        CHECK(0, "no tensor %s", name);
    } else {
        for (size_t i = first; i < first + n; i++) {
            float v;
            memcpy(&v, cp + off + 4 * i, 4);
            v = mul ? v * mul : x;
            memcpy(cp + off + 4 * i, &v, 4);
        }
    }
    size_t nl;
    unsigned char *b = duet_image_build(cp, len, meta, &nl);
    const char *p = path_in(out);
    if (!b || duet_image_write(p, b, nl)) CHECK(0, "cannot write %s", p);
    free(b);
    free(cp);
    cJSON_Delete(meta);
    return p;
}

typedef struct Toks {
    int v[64];
    int n;
} Toks;

static int grab(void *user, const char *piece, size_t len, int token)
{
    (void)piece;
    (void)len;
    Toks *d = user;
    if (token >= 0 && d->n < 64) d->v[d->n++] = token;
    return 0;
}

static int gen_ids(duet_model *m, float temp, int *out, int n, int *finish, char *msg, size_t mn)
{
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 64;
    o.max_tokens = n;
    o.ignore_eos = 1;
    o.temperature = temp;
    duet_session *s;
    if (duet_session_create(m, &o, &s)) return 0;
    duet_session_append_tokens(s, prompt, NP);
    *finish = duet_generate(s, NULL, NULL);
    snprintf(msg, mn, "%s", duet_session_errmsg(s));
    int got = duet_session_n_tokens(s) - NP;
    (void)out;
    duet_session_close(s);
    return got;
}

static void test_duet_files(const char *duet)
{
    size_t len;
    unsigned char *img = duet_image_read(duet, &len);
    if (!img) {
        CHECK(0, "read %s", duet);
        return;
    }
    char err[512], msg[512];
    duet_model *m = NULL;
    /* the helper itself: an untouched rebuild opens */
    const char *same = plant(img, len, "final_norm", 0, 0, 0, 0, "same.duet");
    int rc = duet_model_open(&m, same, NULL, err, sizeof err);
    CHECK(rc == DUET_OK, "rebuilt image opens: %s", err);
    duet_model_close(m);
    m = NULL;

    /* a NaN norm weight: refused at open, naming the tensor */
    const char *p = plant(img, len, "layers.1.ffn_norm", 5, 1, NAN, 0, "nan-norm.duet");
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "layers.1.ffn_norm") && strstr(err, "non-finite"), "NaN norm: %d %s", rc, err);
    duet_model_close(m);
    m = NULL;
    p = plant(img, len, "embed", 1000, 1, INFINITY, 0, "inf-embed.duet");
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "\"embed\""), "inf in the embedding: %d %s", rc, err);
    duet_model_close(m);
    m = NULL;

    /* finite weights that overflow at run time: a clear error, greedy or sampled */
    p = plant(img, len, "final_norm", 0, 48, 3e38f, 0, "overflow.duet");
    if ((rc = duet_model_open(&m, p, NULL, err, sizeof err)) != DUET_OK) {
        CHECK(0, "open overflow.duet: %s", err);
    } else {
        int fin = 0, ids[8];
        gen_ids(m, 0, ids, 4, &fin, msg, sizeof msg);
        CHECK(fin == DUET_ERR_FORMAT && strstr(msg, "non-finite logits"), "overflowing weights, greedy: %d %s", fin, msg);
        gen_ids(m, 0.8f, ids, 4, &fin, msg, sizeof msg);
        CHECK(fin == DUET_ERR_FORMAT && strstr(msg, "non-finite logits"), "overflowing weights, sampled: %d %s", fin, msg);
    }
    duet_model_close(m);
    m = NULL;

    /* the padded embedding rows (no token): made the likeliest, never sampled */
    p = plant(img, len, "embed", (size_t)N_TOKENS * 48, (size_t)(VOCAB - N_TOKENS) * 48, 0, 1e3f, "padded.duet");
    if ((rc = duet_model_open(&m, p, NULL, err, sizeof err)) != DUET_OK) {
        CHECK(0, "open padded.duet: %s", err);
    } else {
        for (int t = 0; t < 2; t++) {
            duet_session_options o;
            duet_session_options_default(&o);
            o.n_ctx = 64;
            o.max_tokens = 6;
            o.ignore_eos = 1;
            o.temperature = t ? 1.0f : 0;
            duet_session *s;
            if (duet_session_create(m, &o, &s)) break;
            duet_session_append_tokens(s, prompt, NP);
            Toks g = {{0}, 0};
            int fin = duet_generate(s, grab, &g), pad = 0;
            for (int i = 0; i < g.n; i++) pad += g.v[i] >= N_TOKENS;
            CHECK(fin == DUET_FINISH_LENGTH && g.n == 6 && pad == 0, "padded rows at temperature %d: %d of %d ids without a token (%d)",
                  t, pad, g.n, fin);
            duet_session_close(s);
        }
    }
    duet_model_close(m);
    m = NULL;

    /* no tensors and no blobs at all (found by fuzz_duet_run: qsort of no regions was given NULL): refused */
    {
        unsigned char *c0 = aligned_alloc(64, (len + 63) / 64 * 64);
        memcpy(c0, img, len);
        cJSON *m0 = duet_image_meta(c0, len);
        cJSON_ReplaceItemInObjectCaseSensitive(m0, "tensors", cJSON_CreateArray());
        cJSON_ReplaceItemInObjectCaseSensitive(m0, "blobs", cJSON_CreateObject());
        size_t l0;
        unsigned char *b0 = duet_image_build(c0, len, m0, &l0);
        if (b0) duet_image_write(path_in("empty.duet"), b0, l0);
        rc = b0 ? duet_model_open(&m, path_in("empty.duet"), NULL, err, sizeof err) : -100;
        CHECK(rc == DUET_ERR_FORMAT && !m, "a .duet without tensors or blobs: %d %s", rc, err);
        duet_model_close(m);
        m = NULL;
        free(b0);
        free(c0);
        cJSON_Delete(m0);
    }

    /* 80,000 tensors: refused in well under a second (it took 52 s) */
    unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
    memcpy(cp, img, len);
    cJSON *meta = duet_image_meta(cp, len);
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(meta, "tensors");
    long long off = duet_image_tensor(meta, "final_norm", "data");
    for (int i = 0; i < 80000; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "extra.%d", i);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", nm);
        cJSON_AddStringToObject(t, "type", "f32");
        cJSON_AddNumberToObject(t, "rows", 1);
        cJSON_AddNumberToObject(t, "cols", 16);
        cJSON_AddNumberToObject(t, "data", (double)off);
        cJSON_AddNumberToObject(t, "data_size", 64);
        cJSON_AddItemToArray(ts, t);
    }
    size_t nl;
    unsigned char *b = duet_image_build(cp, len, meta, &nl);
    p = path_in("many.duet");
    duet_image_write(p, b, nl);
    free(b);
    free(cp);
    cJSON_Delete(meta);
    double t0 = now_s();
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    double dt = now_s() - t0;
    CHECK(rc == DUET_ERR_FORMAT && dt < 3.0, "80,000 tensors refused in %.2f s: %s", dt, err);
    duet_model_close(m);
    m = NULL;

    /* an adapter name with an escape sequence, checksums recomputed: refused, escaped */
    cp = aligned_alloc(64, (len + 63) / 64 * 64);
    memcpy(cp, img, len);
    meta = duet_image_meta(cp, len);
    cJSON *ad = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(meta, "adapters"), 0);
    if (ad) cJSON_ReplaceItemInObjectCaseSensitive(ad, "name", cJSON_CreateString("x\x1b]0;owned\x07"));
    b = duet_image_build(cp, len, meta, &nl);
    p = path_in("esc.duet");
    duet_image_write(p, b, nl);
    free(b);
    free(cp);
    cJSON_Delete(meta);
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(ad && rc == DUET_ERR_FORMAT && strstr(err, "adapter name") && !strchr(err, 0x1b), "ESC in a .duet adapter name: %d %s",
          rc, err);
    duet_model_close(m);
    free(img);
}


/* ---------------------------------------------------------------- sessions, identity */

#include <xxhash.h>

/* A session file rebuilt from a saved raw one (64-byte header, no messages):
 * messages json (NULL: none) inserted, the first cached key set to key0
 * (when not 0), the checksum recomputed. Returns the path. */
static const char *sess_variant(const char *saved, const char *msgs, float key0, const char *out)
{
    size_t n;
    unsigned char *b = duet_image_read(saved, &n);
    if (!b || n < 72) return NULL;
    uint32_t ml = msgs ? (uint32_t)strlen(msgs) : 0, old_ml;
    memcpy(&old_ml, b + 56, 4);
    size_t body = n - 8 - 64 - old_ml, len = 64 + ml + body + 8;
    unsigned char *o = malloc(len);
    memcpy(o, b, 64);
    memcpy(o + 56, &ml, 4);
    if (ml) memcpy(o + 64, msgs, ml);
    memcpy(o + 64 + ml, b + 64 + old_ml, body);
    int32_t n_hist;
    memcpy(&n_hist, o + 32, 4);
    if (key0 != 0) { /* f16 cache: the first key element */
        uint16_t h = key0 != key0 ? 0x7e00 : 0x7c00;
        memcpy(o + 64 + ml + 4 * (size_t)n_hist, &h, 2);
    }
    uint64_t sum = XXH64(o, len - 8, 0);
    memcpy(o + len - 8, &sum, 8);
    const char *p = path_in(out);
    duet_image_write(p, o, len);
    free(o);
    free(b);
    return p;
}

static void test_sessions(const char *duet)
{
    char err[512];
    duet_model *a = NULL, *b = NULL;
    /* B: the same file with one weight of layer 0's q_proj changed */
    size_t len;
    unsigned char *img = duet_image_read(duet, &len);
    const char *other = img ? plant(img, len, "layers.0.q_proj", 7, 1, 0.123f, 0, "other.duet") : NULL;
    free(img);
    if (!other || duet_model_open(&a, duet, NULL, err, sizeof err) || duet_model_open(&b, other, NULL, err, sizeof err)) {
        CHECK(0, "open the two models: %s", err);
        duet_model_close(a);
        return;
    }
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 64;
    o.max_tokens = 2;
    duet_session *sa = NULL, *sb = NULL;
    duet_session_create(a, &o, &sa);
    duet_session_create(b, &o, &sb);
    duet_session_append_tokens(sa, prompt, NP);
    duet_generate(sa, NULL, NULL);
    char fbuf[512]; /* path_in's buffers are reused */
    snprintf(fbuf, sizeof fbuf, "%s", path_in("a.sess"));
    const char *f = fbuf;
    CHECK(duet_session_save(sa, f) == DUET_OK, "save: %s", duet_session_errmsg(sa));
    int rc = duet_session_load(sb, f);
    CHECK(rc == DUET_ERR_MISMATCH, "a session of model A into B (one weight differs): %d %s", rc, duet_session_errmsg(sb));
    CHECK(duet_session_load(sa, f) == DUET_OK, "into A itself: %s", duet_session_errmsg(sa));

    /* damaged content behind a valid checksum */
    struct {
        const char *msgs, *want;
        float key0;
    } cases[] = {
        {"[1,2,3]", "message 0", 0},
        {"[]", "non-empty", 0},
        {"[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]", "UTF-8", 0},
        {"[{\"role\":\"hacker\",\"content\":\"x\"}]", "role", 0},
        {"[{\"role\":\"user\"}]", "content", 0},
        {NULL, "inf or NaN", NAN},
        {NULL, "inf or NaN", INFINITY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "bad%zu.sess", i);
        const char *p = sess_variant(f, cases[i].msgs, cases[i].key0, nm);
        rc = p ? duet_session_load(sa, p) : -100;
        CHECK(rc == DUET_ERR_FORMAT && strstr(duet_session_errmsg(sa), cases[i].want), "session file %s: %d %s",
              cases[i].msgs ? cases[i].msgs : "with a non-finite key", rc, duet_session_errmsg(sa));
        CHECK(duet_session_n_tokens(sa) == 0, "a refused file leaves the session cleared");
    }
    { /* a header claiming 1 GB of messages in a small file (valid checksum): refused before any allocation */
        size_t n;
        unsigned char *sb2 = duet_image_read(f, &n);
        uint32_t big = 1u << 30;
        if (sb2 && n > 72) {
            memcpy(sb2 + 56, &big, 4);
            uint64_t sum = XXH64(sb2, n - 8, 0);
            memcpy(sb2 + n - 8, &sum, 8);
            duet_image_write(path_in("huge.sess"), sb2, n);
            rc = duet_session_load(sa, path_in("huge.sess"));
            CHECK(rc == DUET_ERR_FORMAT && strstr(duet_session_errmsg(sa), "add up to 10737"),
                  "1 GB of messages claimed by a %zu-byte file: %d %s", n, rc, duet_session_errmsg(sa));
        }
        free(sb2);
    }
    const char *good = sess_variant(f, "[{\"role\":\"user\",\"content\":\"hi\"}]", 0, "good.sess");
    rc = duet_session_load(sa, good);
    CHECK(rc == DUET_OK, "a valid chat history loads: %s", duet_session_errmsg(sa));

    /* append_message: unknown roles and bad UTF-8 */
    duet_session_clear(sa);
    CHECK(duet_session_append_message(sa, "hacker", "x") == DUET_ERR_ARG, "unknown role refused");
    CHECK(duet_session_append_message(sa, "us\xffr", "x") == DUET_ERR_ARG, "role with invalid UTF-8 refused");
    CHECK(duet_session_append_message(sa, "user", "bad \xc0\x80") == DUET_ERR_UTF8, "content with an overlong refused");
    duet_session_close(sa);
    duet_session_close(sb);
    duet_model_close(a);
    duet_model_close(b);
}

/* ---------------------------------------------------------------- folders, compile, calibration */

static void test_folders(void)
{
    char err[512];
    duet_model *m = NULL;
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.tokenizer_dir = path_in("no-such-tokenizer");
    int rc = duet_model_open(&m, BASE, &mo, err, sizeof err);
    CHECK(rc == DUET_ERR_IO && !m && strstr(err, "tokenizer_dir"), "missing tokenizer_dir: %d %s", rc, err);
    duet_model_close(m);
    m = NULL;

    /* a tokenizer.json that never ends (a planted symlink to /dev/zero): refused once 256 MiB were read */
    {
        const char *zd = base_with_config("zero", NULL);
        char tp[700];
        snprintf(tp, sizeof tp, "%s/tokenizer.json", zd);
        unlink(tp);
        if (access("/dev/zero", R_OK) == 0 && symlink("/dev/zero", tp) == 0) {
            rc = duet_model_open(&m, zd, NULL, err, sizeof err);
            CHECK(rc != DUET_OK && !m && strstr(err, "tokenizer.json") && strstr(err, "256 MiB"),
                  "tokenizer.json -> /dev/zero: %d %s", rc, err);
            duet_model_close(m);
            m = NULL;
        }
    }

    /* FIFOs planted as a .duet or as a shard: refused at once, the open does not wait for a writer */
    {
        const char *ff = path_in("fifo.duet");
        if (mkfifo(ff, 0600) == 0) {
            rc = duet_model_open(&m, ff, NULL, err, sizeof err);
            CHECK(rc != DUET_OK && !m && strstr(err, "not a regular file"), "a FIFO as the .duet: %d %s", rc, err);
            duet_model_close(m);
            m = NULL;
        }
        const char *fd = base_with_config("fifoshard", NULL);
        char sp[700];
        snprintf(sp, sizeof sp, "%s/model-00002-of-00002.safetensors", fd);
        unlink(sp);
        if (mkfifo(sp, 0600) == 0) {
            rc = duet_model_open(&m, fd, NULL, err, sizeof err);
            CHECK(rc != DUET_OK && !m && strstr(err, "not a regular file"), "a FIFO as a shard: %d %s", rc, err);
            duet_model_close(m);
            m = NULL;
        }
    }

    /* a third shard with an unlisted duplicate of model.norm.weight, opened first */
    const char *dir = base_with_config("dup", NULL);
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    size_t n;
    unsigned char *ix = duet_image_read(BASE "/model.safetensors.index.json", &n);
    cJSON *j = ix ? cJSON_ParseWithLength((const char *)ix, n) : NULL;
    free(ix);
    cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!map) {
        CHECK(0, "index");
        cJSON_Delete(j);
        return;
    }
    cJSON *first = cJSON_CreateString("model-extra.safetensors");
    first->string = strdup("extra.weight");
    cJSON *last = map->child->prev; /* cJSON keeps the last item in child->prev */
    first->next = map->child;       /* first in the map: its shard is opened first */
    map->child->prev = first;
    first->prev = last;
    map->child = first;
    char *txt = cJSON_PrintUnformatted(j);
    unlink(p);
    write_text(p, txt);
    free(txt);
    cJSON_Delete(j);
    const char *hdr = "{\"extra.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[48],\"data_offsets\":[4,196]}}";
    size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8, tot = 8 + hl + pad + 196;
    unsigned char *st = calloc(1, tot);
    for (int i = 0; i < 8; i++) st[i] = (unsigned char)((uint64_t)(hl + pad) >> (8 * i));
    memcpy(st + 8, hdr, hl);
    memset(st + 8 + hl, ' ', pad);
    float big = 1000.0f;
    for (int i = 0; i < 49; i++) memcpy(st + 8 + hl + pad + 4 * i, &big, 4);
    snprintf(p, sizeof p, "%s/model-extra.safetensors", dir);
    duet_image_write(p, st, tot);
    free(st);
    rc = duet_model_open(&m, dir, NULL, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "model.norm.weight") && strstr(err, "two shards"),
          "an unlisted duplicate in another shard: %d %s", rc, err);
    duet_model_close(m);
    m = NULL;

    /* compile: a planted symlink at OUT.tmp is not followed */
    const char *victim = path_in("victim.txt"), *out = path_in("sym.duet");
    write_text(victim, "precious\n");
    char tmpname[600], abs[4096];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", out);
    if (realpath(victim, abs)) symlink(abs, tmpname);
    rc = compile_with(BASE, NULL, "q8", out, err, sizeof err);
    size_t vn;
    unsigned char *v = duet_image_read(victim, &vn);
    CHECK(rc == DUET_OK && v && vn == 9 && !memcmp(v, "precious\n", 9), "a symlink at OUT.tmp is left alone: %d %s", rc, err);
    free(v);

    /* calibration lines: a NUL, messages that are not objects, and one ': ' per context */
    struct {
        const char *line, *want;
    } cal[] = {
        {"{\"text\": \"abc\\u0000def\"}", "NUL"},
        {"{\"messages\": [1, 2, 3]}", "message 0: expected an object"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "content"},
        {"{\"text\": \"\xff\"}", "UTF-8"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": \"get_time\"}",
         "field \"tools\": expected an array"},
    };
    for (size_t i = 0; i < sizeof cal / sizeof *cal; i++) {
        const char *cp = path_in("calib.jsonl");
        char body[256];
        snprintf(body, sizeof body, "{\"text\": \"fine\"}\n%s\n", cal[i].line);
        write_text(cp, body);
        duet_compile_options co;
        duet_compile_options_default(&co);
        co.quant = "q8";
        co.calib_path = cp;
        rc = duet_compile_file(BASE, path_in("cal.duet"), &co, err, sizeof err);
        CHECK(rc == DUET_ERR_FORMAT && strstr(err, "calib.jsonl:2") && strstr(err, cal[i].want) && !strstr(err, ": :"),
              "calibration line %s: %d %s", cal[i].line, rc, err);
    }
    const char *cp = path_in("calib.jsonl");
    write_text(cp, "{\"text\": \"a\\u0000\"}");
    char raw[] = "{\"text\": \"a\0b\"}\n";
    FILE *fp = fopen(cp, "wb");
    fwrite(raw, 1, sizeof raw - 1, fp);
    fclose(fp);
    duet_compile_options co;
    duet_compile_options_default(&co);
    co.quant = "q8";
    co.calib_path = cp;
    rc = duet_compile_file(BASE, path_in("cal.duet"), &co, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "NUL"), "a raw NUL byte in a calibration line: %d %s", rc, err);
}

/* The image cp (len bytes) rebuilt with meta (checksums recomputed) and
 * written as path_in(file): opening it must fail with DUET_ERR_FORMAT and a
 * message holding want and want2 (what: the case, for the report). Frees
 * cp and meta. */
static void expect_refused(unsigned char *cp, size_t len, cJSON *meta, const char *file, const char *want,
                           const char *want2, const char *what)
{
    char err[512];
    size_t nl;
    unsigned char *b = duet_image_build(cp, len, meta, &nl);
    const char *p = path_in(file);
    if (!b || duet_image_write(p, b, nl)) CHECK(0, "cannot write %s", p);
    duet_model *m = NULL;
    int rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, want) && strstr(err, want2), "%s: %d %s", what, rc, err);
    duet_model_close(m);
    free(b), free(cp);
    cJSON_Delete(meta);
}

/* A super-block .duet whose packed scales are bad: an infinite D, a D whose
 * product with a sub-scale overflows f16, and the type in a version-2 file;
 * each refused at open, naming the tensor or the version. */
static void test_super_files(void)
{
    char err[512], duet[512];
    snprintf(duet, sizeof duet, "%s", path_in("tiny-iq4k.duet"));
    if (compile_with(BASE, NULL, "iq4k", duet, err, sizeof err)) {
        CHECK(0, "compile iq4k: %s", err);
        return;
    }
    size_t len;
    unsigned char *img = duet_image_read(duet, &len);
    if (!img) {
        CHECK(0, "read %s", duet);
        return;
    }
    static const struct {
        uint16_t w[4];
        int version;
        const char *want, *what;
    } cases[] = {
        {{0x7c00, 0, 0, 0}, 3, "block scale", "an infinite D"},
        {{0x7bff, 32, 0, 0}, 3, "block scale", "D * -32 overflowing f16"},
        {{0x3c00, 1, 0, 0}, 2, "needs format version 3", "a version-2 file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
        memcpy(cp, img, len);
        cJSON *meta = duet_image_meta(cp, len);
        long long off = duet_image_tensor(meta, "layers.0.up_proj", "scales");
        CHECK(off >= 0, "no scales of layers.0.up_proj");
        if (off >= 0) memcpy(cp + off, cases[i].w, 8);
        cp[8] = (unsigned char)cases[i].version;
        cJSON_ReplaceItemInObject(meta, "version", cJSON_CreateNumber(cases[i].version));
        expect_refused(cp, len, meta, "bad-super.duet", cases[i].want, cases[i].version < 3 ? "" : "layers.0.up_proj",
                       cases[i].what);
    }
    free(img);
}

/* The name of the first tensor in meta whose name starts with pre and ends
 * with suf, or NULL. */
static const char *tensor_like(const cJSON *meta, const char *pre, const char *suf)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(meta, "tensors"))
    {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(t, "name"));
        size_t ln = n ? strlen(n) : 0, ls = strlen(suf);
        if (n && !strncmp(n, pre, strlen(pre)) && ln >= ls && !strcmp(n + ln - ls, suf)) return n;
    }
    return NULL;
}

/* A q4 .duet whose adapter is stored in q8 (the default there): refused in
 * a version-3 file, with an infinite scale, and with B's shape swapped;
 * each at open, naming the tensor or the version. */
static void test_lora8_files(void)
{
    char err[512], duet[512], spec[600];
    snprintf(spec, sizeof spec, "alpha=%s", ALPHA);
    snprintf(duet, sizeof duet, "%s", path_in("tiny-lora8.duet"));
    if (compile_with(BASE, spec, "q4", duet, err, sizeof err)) {
        CHECK(0, "compile q4 with an adapter: %s", err);
        return;
    }
    size_t len;
    unsigned char *img = duet_image_read(duet, &len);
    cJSON *m0 = img ? duet_image_meta(img, len) : NULL;
    const char *a0 = m0 ? tensor_like(m0, "lora.alpha.", ".A") : NULL;
    const char *b0 = m0 ? tensor_like(m0, "lora.alpha.", ".B") : NULL;
    cJSON *bt = NULL, *t, *ts = m0 ? cJSON_GetObjectItem(m0, "tensors") : NULL;
    cJSON_ArrayForEach(t, ts)
    if (b0 && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")), b0)) bt = t;
    CHECK(a0 && b0 && bt && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(bt, "type")), "q8"),
          "the q4 file stores its adapter's B as q8");
    if (!a0 || !b0 || !bt) {
        cJSON_Delete(m0), free(img);
        return;
    }
    char an[128], bn[128];
    snprintf(an, sizeof an, "%s", a0);
    snprintf(bn, sizeof bn, "%s", b0);
    for (int c = 0; c < 3; c++) {
        unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
        memcpy(cp, img, len);
        cJSON *meta = duet_image_meta(cp, len);
        const char *want = "needs format version 4", *name = "", *what = "an 8-bit LoRA in a version-3 file";
        if (c == 0) {
            cp[8] = 3;
            cJSON_ReplaceItemInObject(meta, "version", cJSON_CreateNumber(3));
        } else if (c == 1) {
            long long off = duet_image_tensor(meta, an, "scales");
            uint16_t inf = 0x7c00;
            if (off >= 0) memcpy(cp + off, &inf, 2);
            want = "non-finite", name = an, what = "an infinite scale in an 8-bit A";
        } else { /* B's rows and columns swapped: not in blocks of 32 output rows */
            cJSON_ArrayForEach(t, cJSON_GetObjectItem(meta, "tensors"))
            if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")), bn)) {
                int r = cJSON_GetObjectItem(t, "rows")->valueint, o = cJSON_GetObjectItem(t, "cols")->valueint;
                cJSON_ReplaceItemInObject(t, "rows", cJSON_CreateNumber(o));
                cJSON_ReplaceItemInObject(t, "cols", cJSON_CreateNumber(r));
            }
            want = "", name = bn, what = "an 8-bit B of the wrong shape";
        }
        expect_refused(cp, len, meta, "bad-lora8.duet", want, name, what);
    }
    cJSON_Delete(m0);
    free(img);
}

int main(void)
{
    if (check_tmpdir(tmp, sizeof tmp, "hostile")) {
        CHECK(0, "cannot make a temporary folder");
        return check_summary("hostile");
    }
    test_adapters();
    test_config_limits();
    test_options();
    char err[512], spec[600];
    snprintf(spec, sizeof spec, "alpha=%s", ALPHA);
    char duet[512]; /* path_in's buffers are reused */
    snprintf(duet, sizeof duet, "%s", path_in("tiny-f32.duet"));
    if (compile_with(BASE, spec, "f32", duet, err, sizeof err)) CHECK(0, "compile: %s", err);
    else {
        test_duet_files(duet);
        test_sessions(duet);
    }
    test_super_files();
    test_lora8_files();
    test_folders();
    check_rmtree(tmp);
    return check_summary("hostile");
}
