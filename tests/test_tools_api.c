/* test_tools_api.c - tools on a duet_session with the tiny random model:
 * bad tools refused with the keyword named, forced calls that parse and
 * carry their tool's required arguments even from random weights, unique
 * non-empty ids, tool results and replayed OpenAI messages, JSON answers,
 * the agent helper with a callback, and unconstrained text unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "check.h"
#include "duet.h"
#include <cjson/cJSON.h>

#define MODEL "tests/fixtures/models/tiny-qwen2"

static const char TOOLS[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather of a city\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":12},"
    "\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},\"required\":[\"city\",\"days\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{}}}}]";

static duet_session *new_session(duet_model *m, float temp, uint64_t seed, int max_tokens)
{
    duet_session_options o;
    duet_session_options_default(&o);
    o.temperature = temp;
    o.seed = seed;
    o.max_tokens = max_tokens;
    o.n_ctx = 1024;
    duet_session *s = NULL;
    duet_session_create(m, &o, &s);
    return s;
}

static void test_bad_tools(duet_model *m)
{
    duet_session *s = new_session(m, 0, 0, 8);
    CHECK(duet_session_set_tools(s, "[{\"type\":\"function\"") == DUET_ERR_ARG, "malformed JSON refused");
    CHECK(duet_session_set_tools(s, "{}") == DUET_ERR_ARG, "an object is not a list");
    int rc = duet_session_set_tools(s, "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":"
                                       "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\","
                                       "\"pattern\":\"^a\"}}}}}]");
    CHECK(rc == DUET_ERR_ARG && strstr(duet_session_errmsg(s), "\"pattern\""), "keyword named: %s",
          duet_session_errmsg(s));
    CHECK(duet_session_set_tools(s, "[{\"type\":\"function\",\"function\":{\"description\":\"no name\"}}]") ==
              DUET_ERR_ARG, "a tool without a name refused");
    CHECK(duet_session_set_tools(s, TOOLS) == DUET_OK, "good tools: %s", duet_session_errmsg(s));
    CHECK(duet_session_set_tool_choice(s, "nope") == DUET_ERR_NOT_FOUND, "unknown tool choice refused");
    CHECK(duet_session_set_json_schema(s, "{\"type\":\"object\",\"minProperties\":1}") == DUET_ERR_ARG &&
              strstr(duet_session_errmsg(s), "minProperties"), "schema keyword named: %s", duet_session_errmsg(s));
    CHECK(duet_session_append_tool_result(s, "call_99", "{}") == DUET_ERR_NOT_FOUND, "unknown call id refused");
    CHECK(duet_session_append_message_json(s, "{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}") ==
              DUET_ERR_ARG, "tool call without a name refused");
    /* a budget below the shortest call */
    duet_session *t = new_session(m, 0, 0, 5);
    duet_session_set_tools(t, TOOLS);
    duet_session_set_tool_choice(t, "required");
    duet_session_append_message(t, "user", "hi");
    CHECK(duet_generate(t, NULL, NULL) == DUET_ERR_ARG && strstr(duet_session_errmsg(t), "max_tokens"),
          "budget too small: %s", duet_session_errmsg(t));
    duet_session_close(t);
    duet_session_close(s);
}

static void test_forced_calls(duet_model *m)
{
    int calls = 0, valid = 0, runs = 0;
    char seen[64][16];
    int n_seen = 0, dup = 0;
    for (int seed = 1; seed <= 8; seed++) {
        duet_session *s = new_session(m, 1.0f, (uint64_t)seed, seed <= 4 ? 70 : 120);
        duet_session_set_tools(s, TOOLS);
        duet_session_set_tool_choice(s, seed % 2 ? "required" : "get_weather");
        duet_session_append_message(s, "user", "What's the weather in Paris for 3 days?");
        int rc = duet_generate(s, NULL, NULL);
        runs++;
        n_seen = 0;
        CHECK(rc >= 0, "generate: %s", duet_session_errmsg(s));
        int n = duet_session_n_tool_calls(s);
        CHECK(n >= 1 && duet_session_tool_call_errors(s) == 0, "seed %d: %d calls, %d errors", seed, n,
              duet_session_tool_call_errors(s));
        for (int i = 0; i < n; i++) {
            const duet_tool_call *c = duet_session_tool_call(s, i);
            calls++;
            CHECK(c->id && c->id[0], "id not empty");
            for (int k = 0; k < n_seen; k++) dup += !strcmp(seen[k], c->id);
            if (n_seen < 64) snprintf(seen[n_seen++], 16, "%s", c->id);
            int ok = 0;
            if (!strcmp(c->name, "get_weather")) {
                ok = strstr(c->arguments, "\"city\"") && strstr(c->arguments, "\"days\"");
            } else if (!strcmp(c->name, "get_time")) {
                ok = seed % 2 && !strcmp(c->arguments, "{}");
            }
            valid += ok;
            CHECK(ok, "seed %d: call %s(%s)", seed, c->name, c->arguments);
            /* the result goes back in by id */
            CHECK(duet_session_append_tool_result(s, c->id, "{\"temperature\":21}") == DUET_OK, "tool result: %s",
                  duet_session_errmsg(s));
        }
        /* a second round, auto: the conversation renders with the calls and results
         * (short: free text at temperature 1 sorts the whole vocabulary per token) */
        if (seed <= 2) {
            duet_session_options o;
            duet_session_options_default(&o);
            o.max_tokens = 6;
            duet_session_set_options(s, &o);
            duet_session_set_tool_choice(s, "auto");
            CHECK(duet_generate(s, NULL, NULL) >= 0, "second round: %s", duet_session_errmsg(s));
        }
        duet_session_close(s);
    }
    CHECK(dup == 0, "call ids unique within a session");
    CHECK(valid == calls && runs == 8, "%d of %d forced calls valid", valid, calls);
}

static void test_unchanged(duet_model *m)
{
    char *a = NULL, *b = NULL;
    duet_session *s = new_session(m, 1.0f, 42, 10);
    duet_session_append_message(s, "user", "Tell me a story.");
    duet_generate_all(s, &a);
    duet_session_close(s);
    s = new_session(m, 1.0f, 42, 10);
    duet_session_set_tools(s, TOOLS);
    duet_session_set_tools(s, NULL);
    duet_session_set_json_schema(s, "{\"type\":\"object\"}");
    duet_session_set_json_schema(s, NULL);
    duet_session_append_message(s, "user", "Tell me a story.");
    duet_generate_all(s, &b);
    duet_session_close(s);
    CHECK(a && b && !strcmp(a, b), "unconstrained text unchanged by setting and clearing tools");
    free(a);
    free(b);
}

typedef struct Ids {
    int n, id[256];
} Ids;

static int keep_id(void *user, const char *piece, size_t len, int token)
{
    (void)piece, (void)len;
    Ids *v = user;
    if (token >= 0 && v->n < 256) v->id[v->n++] = token;
    return 0;
}

/* Tools set with choice "auto" leave sampling alone until the model opens
 * a call: the same tokens, seed for seed at temperature 1, as a raw session
 * given the very prompt the template renders with the tools, also once too
 * few tokens are left for a call (then only <tool_call> is banned). */
static void test_unchanged_with_tools(duet_model *m)
{
    int compared = 0, same = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        Ids a = {0}, b = {0};
        duet_session *s = new_session(m, 1.0f, seed, 80); /* the last 36 have no room for a call */
        duet_session_set_tools(s, TOOLS);
        duet_session_append_message(s, "user", "What is the weather in Paris?");
        duet_generate(s, keep_id, &a);
        int calls = duet_session_n_tool_calls(s) + duet_session_tool_call_errors(s);
        duet_session_close(s);
        char *prompt = NULL;
        duet_apply_template_tools(m, "[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}]", TOOLS, 1,
                                  &prompt);
        s = new_session(m, 1.0f, seed, 80);
        if (prompt) duet_session_append_text(s, prompt, strlen(prompt));
        duet_generate(s, keep_id, &b);
        duet_session_close(s);
        free(prompt);
        if (calls) continue; /* the model opened a call: the mask took over from there */
        compared++;
        same += a.n > 0 && a.n == b.n && !memcmp(a.id, b.id, (size_t)a.n * sizeof a.id[0]);
    }
    CHECK(compared >= 3 && same == compared, "tools + auto: %d of %d runs token for token as without tools", same,
          compared);
}

static void test_json_answer(duet_model *m)
{
    int ok = 0;
    for (int seed = 0; seed < 4; seed++) {
        duet_session *s = new_session(m, 1.0f, (uint64_t)seed, 40);
        CHECK(duet_session_set_json_schema(s, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\","
                                              "\"items\":{\"type\":\"boolean\"},\"minItems\":2}},\"required\":[\"a\"]}") ==
                  DUET_OK, "schema: %s", duet_session_errmsg(s));
        duet_session_append_message(s, "user", "JSON please");
        char *text = NULL;
        int rc = duet_generate_all(s, &text);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
        ok += rc >= 0 && cJSON_IsArray(a) && cJSON_GetArraySize(a) >= 2;
        CHECK(j != NULL, "seed %d: %s", seed, text ? text : duet_session_errmsg(s));
        cJSON_Delete(j);
        free(text);
        duet_session_close(s);
    }
    CHECK(ok == 4, "%d of 4 JSON answers valid", ok);
}

static int fake_tool(void *user, const char *name, const char *args, char **result)
{
    int *count = user;
    (*count)++;
    char buf[256];
    snprintf(buf, sizeof buf, "{\"tool\":\"%s\",\"ok\":true,\"args\":%s}", name, strlen(args) < 150 ? args : "{}");
    *result = strdup(buf);
    return 0;
}

static void test_agent(duet_model *m)
{
    duet_session *s = new_session(m, 0, 3, 40);
    duet_session_set_tools(s, TOOLS);
    duet_session_set_tool_choice(s, "required");
    int count = 0;
    char *answer = NULL;
    int rc = duet_agent_run(s, "Weather in Oslo?", 3, fake_tool, &count, NULL, NULL, &answer);
    CHECK(rc >= 0 && answer, "agent: %s", duet_session_errmsg(s));
    CHECK(count >= 1 && duet_agent_n_steps(s) == count, "agent ran %d tools, recorded %d", count,
          duet_agent_n_steps(s));
    const duet_agent_step *st = duet_agent_step_at(s, 0);
    CHECK(st && st->result && strstr(st->result, "\"ok\":true"), "step result recorded");
    free(answer);
    duet_session_close(s);
}

/* A tool that floods or prints bytes that are not UTF-8: the agent goes on
 * with the result cut to fit the context (and saying so) or repaired. */
static int bad_tool(void *user, const char *name, const char *args, char **result)
{
    (void)name, (void)args;
    int flood = *(int *)user;
    size_t n = flood ? 200000 : 8;
    char *r = malloc(n + 1);
    if (!r) return -1;
    for (size_t i = 0; i < n; i++) r[i] = (char)('0' + i % 10);
    if (!flood) memcpy(r, "ok \xff\xfe x", 8);
    r[n] = 0;
    *result = r;
    return 0;
}

static void test_agent_bad_output(duet_model *m)
{
    for (int flood = 0; flood < 2; flood++) {
        duet_session *s = new_session(m, 0, 3, 40);
        duet_session_set_tools(s, TOOLS);
        duet_session_set_tool_choice(s, "get_time");
        char *answer = NULL;
        int rc = duet_agent_run(s, "What time is it?", 2, bad_tool, &flood, NULL, NULL, &answer);
        const duet_agent_step *st = duet_agent_step_at(s, 0);
        CHECK(rc >= 0 && answer && st, "%s: the agent goes on: %s", flood ? "flood" : "bad UTF-8", duet_session_errmsg(s));
        if (st && flood)
            CHECK(strstr(st->result, "[cut: the tool's output was") && strlen(st->result) < 20000 &&
                      duet_session_n_tokens(s) <= duet_session_n_ctx(s),
                  "flood cut to the context: %zu bytes kept, %d of %d tokens", strlen(st->result),
                  duet_session_n_tokens(s), duet_session_n_ctx(s));
        if (st && !flood)
            CHECK(!strcmp(st->result, "ok \xef\xbf\xbd\xef\xbf\xbd x"), "invalid bytes replaced by U+FFFD: %s", st->result);
        free(answer);
        duet_session_close(s);
    }
}

static void test_replay(duet_model *m)
{
    duet_session *s = new_session(m, 0, 3, 40);
    duet_session_set_tools(s, TOOLS);
    /* replay a conversation in OpenAI form */
    CHECK(duet_session_append_message_json(s, "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}") ==
              DUET_OK, "user parts: %s", duet_session_errmsg(s));
    CHECK(duet_session_append_message_json(
              s, "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"abc\",\"type\":\"function\","
                 "\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}},{\"id\":\"def\",\"type\":\"function\","
                 "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\",\"days\":1}}}]}") == DUET_OK,
          "assistant with parallel calls: %s", duet_session_errmsg(s));
    CHECK(duet_session_append_message_json(s, "{\"role\":\"tool\",\"tool_call_id\":\"abc\",\"content\":\"12:00\"}") ==
              DUET_OK, "tool message");
    CHECK(duet_session_append_tool_result(s, "def", "sunny") == DUET_OK, "tool result by id");
    duet_session_set_tool_choice(s, "none");
    CHECK(duet_generate(s, NULL, NULL) >= 0 && duet_session_n_tool_calls(s) == 0, "choice none: no calls (%s)",
          duet_session_errmsg(s));
    duet_session_close(s);
}

/* A Qwen2-Instruct template (no tool section): the Hermes-style fallback
 * puts the tools in the system turn and results in <tool_response> blocks. */
static void test_fallback(void)
{
    const char *t = getenv("TMPDIR");
    char dir[300], p[400], src[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/duet-fallback-XXXXXX", t ? t : "/tmp");
    if (!mkdtemp(dir) || !realpath(MODEL, src)) {
        CHECK(0, "fallback: temp folder");
        return;
    }
    const char *files[] = {"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                           "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json"};
    for (int i = 0; i < 6; i++) {
        char from[PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (symlink(from, p)) CHECK(0, "symlink %s", files[i]);
    }
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs("{\"eos_token\": \"<|im_end|>\", \"chat_template\": \"{% for message in messages %}{% if loop.first and "
              "messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
              "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
              "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\"}",
              f);
        fclose(f);
    }
    duet_model *m = NULL;
    char err[512];
    if (duet_model_open(&m, dir, NULL, err, sizeof err)) {
        CHECK(0, "fallback model: %s", err);
    } else {
        CHECK(duet_model_tools_native(m) == 0, "Qwen2-Instruct's template has no tool section");
        duet_session *s = new_session(m, 1.0f, 5, 80);
        duet_session_set_tools(s, TOOLS);
        duet_session_set_tool_choice(s, "get_weather");
        duet_session_append_message(s, "user", "Weather?");
        CHECK(duet_generate(s, NULL, NULL) >= 0 && duet_session_n_tool_calls(s) == 1, "fallback: a forced call (%s)",
              duet_session_errmsg(s));
        if (duet_session_n_tool_calls(s) == 1)
            duet_session_append_tool_result(s, duet_session_tool_call(s, 0)->id, "{\"temperature\":18}");
        duet_session_options o;
        duet_session_options_default(&o);
        o.max_tokens = 1;
        duet_session_set_options(s, &o);
        duet_session_set_tool_choice(s, "none");
        duet_generate(s, NULL, NULL);
        int n = 0;
        const int *ids = duet_session_tokens(s, &n);
        char *text = NULL;
        if (ids && n) duet_detokenize(m, ids, n, &text);
        CHECK(text && strstr(text, "<|im_start|>system\n# Tools") && strstr(text, "\"name\":\"get_weather\"") &&
                  strstr(text, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {") &&
                  strstr(text, "<|im_start|>tool\n<tool_response>\n{\"temperature\":18}\n</tool_response>") == NULL &&
                  strstr(text, "<|im_start|>user\n<tool_response>\n{\"temperature\":18}\n</tool_response><|im_end|>"),
              "fallback rendering: %s", text ? text : "NULL");
        free(text);
        duet_session_close(s);
        duet_model_close(m);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) CHECK(0, "rm %s", dir);
}

int main(void)
{
    duet_model *m = NULL;
    char err[512];
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.n_threads = 1;
    if (duet_model_open(&m, MODEL, &mo, err, sizeof err)) {
        CHECK(0, "open: %s", err);
        return check_summary("tools_api");
    }
    CHECK(duet_model_tools_native(m) == 1, "the Qwen2.5 template renders tools itself");
    test_bad_tools(m);
    test_forced_calls(m);
    test_unchanged(m);
    test_unchanged_with_tools(m);
    test_agent_bad_output(m);
    test_json_answer(m);
    test_agent(m);
    test_replay(m);
    duet_model_close(m);
    test_fallback();
    return check_summary("tools_api");
}
