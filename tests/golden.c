#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "run/sample.h"
#include "util/json.h"

cJSON *golden_load(void)
{
    Err e;
    cJSON *g = json_parse_file(GOLDEN_JSON, &e);
    if (!g) fprintf(stderr, "%s\n", e.msg);
    return g;
}

float *golden_last_logits(const char *run, int n)
{
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/models/last_logits-tiny-qwen2-%s.f32", run);
    FILE *f = fopen(path, "rb");
    float *x = malloc((size_t)n * sizeof *x);
    if (!f || !x || fread(x, sizeof *x, (size_t)n, f) != (size_t)n) {
        if (f) fclose(f);
        free(x);
        return NULL;
    }
    fclose(f);
    return x;
}

static int *ints(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    int *v = malloc((size_t)(*n ? *n : 1) * sizeof *v);
    int i = 0;
    for (const cJSON *x = a ? a->child : NULL; x; x = x->next) v[i++] = x->valueint;
    return v;
}

int golden_greedy(const Model *m, Kern *k, const Adapter *lora, const int *prompt, int n, int steps, int *out)
{
    Err e;
    Seq q;
    int vocab = m->cfg.vocab_size, got = 0;
    float *lg = malloc((size_t)vocab * sizeof *lg);
    if (seq_init(&q, m, n + steps, KV_F32, lora, &e) || seq_prefill(&q, k, prompt, n, 0, lg, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
    } else {
        for (got = 0; got < steps; got++) {
            out[got] = argmax(lg, vocab);
            if (got + 1 < steps && seq_decode(&q, k, out[got], lg, &e)) break;
        }
    }
    seq_free(&q);
    free(lg);
    return got;
}

void golden_check_run(const Model *m, Kern *k, const Adapter *lora, const cJSON *golden, const char *run, int chunk,
                      KvType kv, float tol, const char *label)
{
    const cJSON *runs = cJSON_GetObjectItem(cJSON_GetObjectItem(golden, "runs"), run);
    int vocab = m->cfg.vocab_size, pi = 0;
    CHECK(cJSON_GetArraySize(runs) == 3, "%s: golden run %s has 3 prompts", label, run);
    for (const cJSON *r = runs ? runs->child : NULL; r; r = r->next, pi++) {
        int n, ng;
        int *prompt = ints(cJSON_GetObjectItem(r, "prompt_ids"), &n);
        int *greedy = ints(cJSON_GetObjectItem(r, "greedy_ids"), &ng);
        float *all = malloc((size_t)n * vocab * sizeof *all);
        Err e;
        Seq q;
        int ok = !seq_init(&q, m, n, kv, lora, &e) && !seq_prefill(&q, k, prompt, n, chunk, NULL, all, &e);
        CHECK(ok, "%s %s prompt %d: prefill: %s", label, run, pi, ok ? "" : e.msg);
        seq_free(&q);
        if (ok && pi == 0) {
            float *ref = golden_last_logits(run, vocab);
            CHECK(ref != NULL, "%s: golden logits for %s", label, run);
            float maxd = 0;
            for (int i = 0; ref && i < vocab; i++) {
                float d = fabsf(ref[i] - all[(size_t)(n - 1) * vocab + i]);
                if (!(d <= maxd)) maxd = d;
            }
            CHECK(maxd <= tol, "%s %s: last logits max |diff| %g > %g", label, run, maxd, tol);
            free(ref);
        }
        /* top ids at every position: our top-8 in order, allowing neighbours
         * whose golden logits tie within the tolerance to swap */
        const cJSON *tops = cJSON_GetObjectItem(r, "top_ids"), *tl = cJSON_GetObjectItem(r, "top_logits");
        int pos = 0, bad = 0;
        for (const cJSON *t = tops ? tops->child : NULL; ok && t; t = t->next, pos++) {
            const float *row = all + (size_t)pos * vocab;
            const cJSON *lrow = cJSON_GetArrayItem(tl, pos);
            int j = 0;
            for (const cJSON *id = t->child; id; id = id->next, j++) {
                float want = (float)cJSON_GetArrayItem(lrow, j)->valuedouble;
                if (fabsf(row[id->valueint] - want) > tol) bad++;
                /* rank: nothing outside may beat it by more than the tolerance */
                if (j == 0 && argmax(row, vocab) != id->valueint && row[argmax(row, vocab)] - row[id->valueint] > 1e-4f) bad++;
            }
        }
        CHECK(bad == 0, "%s %s prompt %d: %d top-id/logit mismatches over %d positions", label, run, pi, bad, pos);
        int out[64];
        int got = golden_greedy(m, k, lora, prompt, n, ng, out);
        int same = got == ng;
        for (int i = 0; same && i < ng; i++) same = out[i] == greedy[i];
        CHECK(same, "%s %s prompt %d: greedy ids differ (got %d of %d)", label, run, pi, got, ng);
        free(all);
        free(prompt);
        free(greedy);
    }
}

void golden_check_dir(const Model *m, Kern *k, const Adapter *lora, const char *gdir, const char *label)
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
