/* bench_mask.c - the cost of a JSON-schema token mask per generated token, at
 * Qwen2-1.5B's vocabulary (151,936 ids), against a decode step.
 *
 * Build (after `make build/libduet.a`), from the repository root:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc bench/bench_mask.c build/libduet.a \
 *      -lcjson -lpcre2-8 -lutf8proc -lxxhash -lm -pthread -o build/bench_mask
 *
 * Run: build/bench_mask [TOKENIZER_JSON [REPS]]
 * It tokenizes typical constrained outputs (a tool call with a long string
 * argument, a JSON answer with numbers and an array), then for each of their
 * tokens times what a constrained decode step adds: computing the mask from
 * the current state, applying it to a logits vector (-inf where refused) and
 * advancing the state. Each token's time is the fastest of REPS passes
 * (default 5: the machine is shared); prints their mean and the worst token,
 * in microseconds, and the trie build time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run/sample.h"
#include "text/tokenizer.h"
#include "text/tokmask.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char TOOLS[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_cpu_temperature\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\",\"fahrenheit\"]}}}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"send_message\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"to\":{\"type\":\"string\"},\"text\":{\"type\":\"string\",\"maxLength\":500},"
    "\"priority\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":5}},\"required\":[\"to\",\"text\"]}}}]";
static const char CALL[] =
    "\n{\"name\": \"send_message\", \"arguments\": {\"to\": \"alice@example.com\", \"text\": \"The build finished "
    "at 14:32; 3 tests failed (test_io, test_net, test_db). Logs are in /var/log/ci/run-1842.txt \\u2014 please "
    "have a look before the release.\", \"priority\": 2}}\n";
static const char ANSWER_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"temps\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"number\",\"minimum\":-90,\"maximum\":60},\"maxItems\":10},\"summary\":{\"type\":\"string\"}},"
    "\"required\":[\"city\",\"temps\",\"summary\"],\"additionalProperties\":false}";
static const char ANSWER[] =
    "{\"city\": \"Zürich\", \"temps\": [3.5, 4.25, -1, 0.5, 7], \"summary\": \"Cold and grey all week, a little sun "
    "on Friday; bring a coat.\"}";

typedef struct Run {
    double mean_us, max_us;
    int tokens;
} Run;

/* One pass over the text's tokens; tmin[t] keeps each token's fastest time. */
static Run run_one(const Tokenizer *tok, const TokTrie *tt, const JsSchema *s, int kind, const char *text,
                   int open_id, int close_id, double *tmin)
{
    Run r = {0};
    int *ids = NULL, n = 0, eos = 151645;
    Err e;
    if (tokenizer_encode(tok, text, strlen(text), &ids, &n, &e)) return r;
    Constraint c;
    if (constraint_init(&c, tt, s, kind, 0, open_id, close_id, &eos, 1, &e)) return r;
    uint32_t *mask = malloc((size_t)tt->words * 4);
    float *logits = malloc(151936 * sizeof *logits);
    for (int i = 0; i < 151936; i++) logits[i] = (float)(i % 97) * 0.01f;
    double sum = 0;
    int all = kind == CK_CALLS ? n + 2 : n; /* the tags too */
    for (int t = 0; t < all; t++) {
        int id = kind == CK_CALLS ? (t == 0 ? open_id : t == all - 1 ? close_id : ids[t - 1]) : ids[t];
        double t0 = now_s();
        if (constraint_mask(&c, tok, 0, mask))
            for (int i = 0; i < 151936; i++)
                if (!(mask[i >> 5] >> (i & 31) & 1)) logits[i] = -INFINITY;
        int ok = (mask[id >> 5] >> (id & 31)) & 1;
        constraint_accept(&c, tok, id);
        double dt = (now_s() - t0) * 1e6;
        if (!ok) fprintf(stderr, "token %d (%d) refused by the mask\n", t, id);
        if (t < 1024 && dt < tmin[t]) tmin[t] = dt;
        for (int i = 0; i < 151936; i += 4096) logits[i] = 0;
    }
    for (int t = 0; t < all && t < 1024; t++) {
        sum += tmin[t];
        if (tmin[t] > r.max_us) r.max_us = tmin[t];
    }
    r.mean_us = sum / all;
    r.tokens = all;
    free(mask);
    free(logits);
    free(ids);
    constraint_free(&c);
    return r;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/fixtures/models/tiny-qwen2/tokenizer.json";
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    Err e;
    Tokenizer *tok = tokenizer_load_file(path, &e);
    if (!tok) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    TokTrie tt;
    double t0 = now_s();
    if (toktrie_build(&tt, tok, 151936, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    printf("trie: %d tokens' nodes %d (odd %d), plain tokens %d, built in %.1f ms\n", 151936, tt.all.n, tt.odd.n,
           tt.n_plain, (now_s() - t0) * 1e3);
    JsSchema calls, ans;
    cJSON *tj = cJSON_Parse(TOOLS), *aj = cJSON_Parse(ANSWER_SCHEMA);
    if (jschema_compile_tools(&calls, tj, NULL, &e) || jschema_compile(&ans, aj, 0, "answer", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    int open_id = tokenizer_token_id(tok, "<tool_call>"), close_id = tokenizer_token_id(tok, "</tool_call>");
    static double tmin[2][1024];
    for (int i = 0; i < 1024; i++) tmin[0][i] = tmin[1][i] = 1e30;
    Run best[2];
    for (int r = 0; r < reps; r++) {
        best[0] = run_one(tok, &tt, &calls, CK_CALLS, CALL, open_id, close_id, tmin[0]);
        best[1] = run_one(tok, &tt, &ans, CK_ANSWER, ANSWER, -1, -1, tmin[1]);
    }
    printf("tool call (%d tokens): mean %.1f us per token, worst %.1f us\n", best[0].tokens, best[0].mean_us,
           best[0].max_us);
    printf("JSON answer (%d tokens): mean %.1f us per token, worst %.1f us\n", best[1].tokens, best[1].mean_us,
           best[1].max_us);
    cJSON_Delete(tj);
    cJSON_Delete(aj);
    jschema_free(&calls);
    jschema_free(&ans);
    toktrie_free(&tt);
    tokenizer_free(tok);
    return 0;
}
