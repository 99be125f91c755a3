/* test_rope.c - rope_type "llama3" (Llama 3.1 and later): the scaled
 * rotary frequencies against Meta's reference computation
 * (tests/fixtures/rope_llama3.json, made by
 * tests/fixtures/gen/make_rope_llama3.py) for the configs of Llama 3.1 8B
 * and 3.2 1B/3B; config.json parsing and its errors; the llama-s checkpoint
 * with a factor-1 llama3 scaling (the identity) against the transformers
 * goldens; with factor 8 the logits change after position 0 and a compiled
 * .duet keeps the scaling (same logits as the folder). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "duet.h"
#include "golden.h"
#include "load/config.h"
#include "run/seq.h"
#include "util/json.h"

#define LLAMA "tests/fixtures/shapes/llama-s"

static void check_reference(void)
{
    Err e;
    cJSON *j = json_parse_file("tests/fixtures/rope_llama3.json", &e);
    CHECK(j != NULL, "reference: %s", e.msg);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases"))
    {
        ModelConfig m = {0};
        m.head_dim = cJSON_GetObjectItem(c, "head_dim")->valueint;
        m.rope_theta = (float)cJSON_GetObjectItem(c, "rope_theta")->valuedouble;
        m.rope.llama3 = 1;
        m.rope.factor = (float)cJSON_GetObjectItem(c, "factor")->valuedouble;
        m.rope.low_freq_factor = (float)cJSON_GetObjectItem(c, "low_freq_factor")->valuedouble;
        m.rope.high_freq_factor = (float)cJSON_GetObjectItem(c, "high_freq_factor")->valuedouble;
        m.rope.original_ctx = cJSON_GetObjectItem(c, "original_max_position_embeddings")->valueint;
        const cJSON *want = cJSON_GetObjectItem(c, "inv_freq");
        double worst = 0;
        int scaled = 0, kept = 0, blended = 0;
        for (int i = 0; i < m.head_dim / 2; i++) {
            double w = cJSON_GetArrayItem(want, i)->valuedouble, got = config_rope_freq(&m, i);
            double rel = fabs(got - w) / w;
            if (rel > worst) worst = rel;
            m.rope.llama3 = 0;
            double plain = config_rope_freq(&m, i);
            m.rope.llama3 = 1;
            if (fabs(got - plain) <= 1e-6 * plain) kept++;
            else if (fabs(got * m.rope.factor - plain) <= 1e-6 * plain) scaled++;
            else blended++;
        }
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
        CHECK(worst < 2e-6 && cJSON_GetArraySize(want) == m.head_dim / 2, "%s: inv_freq off the reference by %.2g (relative)",
              name, worst);
        CHECK(kept && scaled && blended, "%s: %d kept, %d divided by the factor, %d blended (each kind expected)", name,
              kept, scaled, blended);
        printf("rope %s: %d frequencies kept, %d divided by %g, %d blended; worst relative error %.2g\n", name, kept, scaled,
               (double)m.rope.factor, blended, worst);
        n++;
    }
    CHECK(n == 4, "%d reference cases", n);
    cJSON_Delete(j);
}

/* llama-s's config.json with its rope_parameters replaced by `rope` (JSON). */
static char *config_with(const char *rope)
{
    Err e;
    size_t len;
    char *text = file_read(LLAMA "/config.json", &len, &e);
    if (!text) return NULL;
    char *at = strstr(text, "\"rope_parameters\"");
    char *end = at ? strchr(at, '}') : NULL;
    if (!end) {
        free(text);
        return NULL;
    }
    size_t n = (size_t)(at - text) + strlen(rope) + strlen(end + 1) + 32;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%.*s\"rope_parameters\": %s%s", (int)(at - text), text, rope, end + 1);
    free(text);
    return out;
}

static int parse_rope(const char *rope, ModelConfig *c, Err *e)
{
    char *t = config_with(rope);
    if (!t) return err_set(e, "cannot rewrite the config");
    int rc = config_parse(c, t, strlen(t), "config.json", e);
    free(t);
    return rc;
}

static void check_parse(void)
{
    ModelConfig c;
    Err e;
    int rc = parse_rope("{\"rope_theta\": 500000.0, \"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0, "
                        "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}",
                        &c, &e);
    CHECK(rc == 0 && c.rope.llama3 && c.rope.factor == 32 && c.rope.low_freq_factor == 1 && c.rope.high_freq_factor == 4 &&
              c.rope.original_ctx == 8192 && c.rope_theta == 500000,
          "llama3 rope_parameters read: %s", rc ? e.msg : "");
    const struct {
        const char *rope, *msg;
    } bad[] = {
        {"{\"rope_theta\": 5e5, \"rope_type\": \"llama3\", \"low_freq_factor\": 1, \"high_freq_factor\": 4, "
         "\"original_max_position_embeddings\": 8192}", "factor"},
        {"{\"rope_theta\": 5e5, \"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 1, "
         "\"original_max_position_embeddings\": 8192}", "0 < low_freq_factor < high_freq_factor"},
        {"{\"rope_theta\": 5e5, \"rope_type\": \"llama3\", \"factor\": 0.5, \"low_freq_factor\": 1, \"high_freq_factor\": 4, "
         "\"original_max_position_embeddings\": 8192}", "1 <= factor"},
        {"{\"rope_theta\": 5e5, \"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, \"high_freq_factor\": 4, "
         "\"original_max_position_embeddings\": 0}", "original_max_position_embeddings"},
        {"{\"rope_theta\": 5e5, \"rope_type\": \"yarn\", \"factor\": 4}", "not supported (duet implements the default rotary "
         "embedding and llama3)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rc = parse_rope(bad[i].rope, &c, &e);
        CHECK(rc && strstr(e.msg, bad[i].msg), "bad rope %zu refused naming %s: %s", i, bad[i].msg, rc ? e.msg : "accepted");
    }
}

/* A copy of llama-s in dir (links) whose config.json has `rope`. */
static int make_model(const char *dir, const char *rope)
{
    const char *files[] = {"model.safetensors", "generation_config.json", "golden.json", "logits.f32"};
    char src[512], dst[600], cwd[400];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    for (int i = 0; i < 4; i++) {
        snprintf(src, sizeof src, "%s/" LLAMA "/%s", cwd, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (symlink(src, dst)) return -1;
    }
    char *t = config_with(rope);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    FILE *f = t ? fopen(dst, "w") : NULL;
    int rc = f && fputs(t, f) >= 0 ? 0 : -1;
    if (f && fclose(f)) rc = -1;
    free(t);
    return rc;
}

/* Every position's logits of a 40-token prompt (n x vocab, malloc'd). */
static float *all_logits(const char *path, Kern *k, int n, ModelConfig *cfg)
{
    Model m;
    Err e;
    if (model_open(&m, path, &e)) {
        CHECK(0, "open %s: %s", path, e.msg);
        return NULL;
    }
    *cfg = m.cfg;
    int ids[64];
    for (int i = 0; i < n; i++) ids[i] = (i * 37 + 11) % m.cfg.vocab_size;
    float *lg = malloc((size_t)n * m.cfg.vocab_size * sizeof *lg), *last = malloc(m.cfg.vocab_size * sizeof *last);
    Seq q = {0};
    int ok = lg && last && !seq_init(&q, &m, 64, KV_F32, NULL, &e) && !seq_prefill(&q, k, ids, n, 8, last, lg, &e);
    CHECK(ok, "%s: forward: %s", path, e.msg);
    seq_free(&q);
    model_close(&m);
    free(last);
    if (!ok) {
        free(lg);
        return NULL;
    }
    return lg;
}

static void check_model(Kern *k, const char *tmp)
{
    char d1[300], d8[300], duet[300];
    snprintf(d1, sizeof d1, "%s/factor1", tmp);
    snprintf(d8, sizeof d8, "%s/factor8", tmp);
    snprintf(duet, sizeof duet, "%s/factor8.duet", tmp);
    const char *r1 = "{\"rope_theta\": 500000.0, \"rope_type\": \"llama3\", \"factor\": 1.0, \"low_freq_factor\": 1.0, "
                     "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}";
    const char *r8 = "{\"rope_theta\": 500000.0, \"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                     "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}";
    if (mkdir(d1, 0700) || mkdir(d8, 0700) || make_model(d1, r1) || make_model(d8, r8)) {
        CHECK(0, "cannot make the test models under %s", tmp);
        return;
    }
    /* factor 1 scales nothing: transformers' goldens of the default embedding hold */
    Model m;
    Err e;
    if (!model_open_dir(&m, d1, &e)) {
        CHECK(m.cfg.rope.llama3 == 1, "factor-1 model has llama3 scaling");
        golden_check_dir(&m, k, NULL, d1, "llama3 factor 1");
        model_close(&m);
    } else {
        CHECK(0, "open %s: %s", d1, e.msg);
    }
    /* factor 8: position 0 is not rotated (same logits), later ones are */
    enum { N = 40 };
    ModelConfig c1, c8, cd;
    float *a = all_logits(d1, k, N, &c1), *b = all_logits(d8, k, N, &c8);
    duet_compile_options o;
    duet_compile_options_default(&o);
    o.quant = "f32";
    char err[512] = "";
    int crc = duet_compile_file(d8, duet, &o, err, sizeof err);
    CHECK(crc == DUET_OK, "compile the factor-8 model: %s", err);
    float *d = crc ? NULL : all_logits(duet, k, N, &cd);
    if (a && b) {
        int V = c1.vocab_size;
        double d0 = 0, dl = 0;
        for (int v = 0; v < V; v++) {
            d0 = fmax(d0, fabs(a[v] - b[v]));
            dl = fmax(dl, fabs(a[(size_t)(N - 1) * V + v] - b[(size_t)(N - 1) * V + v]));
        }
        CHECK(d0 < 1e-5 && dl > 1e-3, "factor 8 vs 1: position 0 differs by %.2g (expected none), position %d by %.2g", d0,
              N - 1, dl);
    }
    if (b && d) {
        double worst = 0;
        for (size_t i = 0; i < (size_t)N * c8.vocab_size; i++) worst = fmax(worst, fabs(b[i] - d[i]));
        CHECK(cd.rope.llama3 && cd.rope.factor == 8 && cd.rope.original_ctx == 16 && cd.rope.high_freq_factor == 4,
              "the .duet keeps the scaling");
        CHECK(worst < 1e-5, "factor 8: the .duet's logits equal the folder's (%.2g)", worst);
    }
    free(a);
    free(b);
    free(d);
}

int main(void)
{
    check_reference();
    check_parse();
    char tmp[256];
    Err e;
    Kern *k = kern_create(0, NULL, &e);
    CHECK(k != NULL, "kern: %s", e.msg);
    if (k && !check_tmpdir(tmp, sizeof tmp, "rope")) {
        check_model(k, tmp);
        check_rmtree(tmp);
    }
    kern_destroy(k);
    return check_summary("rope");
}
