/* test_hostile.c - duet against hostile inputs and careless callers:
 * non-finite adapters, options out of range, one set of limits for load,
 * compile and open, hostile checkpoint folders and calibration files,
 * adapter names with escapes (.duet and session files:
 * test_hostile_files.c). Each case plants one flaw in a copy of the tiny
 * fixture and checks the status and the message that names it. */
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
#include "hostile.h"
#include "util/clock.h"

static char tmp[256];

static char *path_in(const char *name) { return hostile_path(tmp, name); }

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

static int compile_with(const char *base, const char *spec, const char *quant, const char *out, char *err, size_t n)
{
    return hostile_compile(base, spec, quant, out, err, n);
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
        for (int i = 0; i < 60; i++) ids[i] = hostile_prompt[i % HOSTILE_NP];
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

int main(void)
{
    if (check_tmpdir(tmp, sizeof tmp, "hostile")) {
        CHECK(0, "cannot make a temporary folder");
        return check_summary("hostile");
    }
    test_adapters();
    test_config_limits();
    test_options();
    test_folders();
    check_rmtree(tmp);
    return check_summary("hostile");
}
