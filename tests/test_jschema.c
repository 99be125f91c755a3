/* test_jschema.c - the schema compiler (errors name the keyword), the byte
 * automaton (what it accepts and refuses, the shortest completion), and the
 * token masks over the Qwen2 vocabulary: random walks through the masks
 * always end in JSON that parses, within the token budget. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "text/jmatch.h"
#include "text/jschema.h"
#include "text/tokenizer.h"
#include "text/tokmask.h"

static int compile(JsSchema *s, const char *text, Err *e)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) return err_set(e, "bad test JSON");
    int rc = jschema_compile(s, j, 0, "schema", e);
    cJSON_Delete(j);
    return rc;
}

/* 1 if the automaton takes the whole text as one complete value. */
static int accepts(const JsSchema *s, const char *text)
{
    JmState m;
    jm_init(&m, s);
    for (const char *p = text; *p; p++)
        if (jm_step(&m, (unsigned char)*p) != JM_OK) return 0;
    return jm_can_end(&m);
}

static void check_schema(const char *schema, const char *const *good, const char *const *bad)
{
    JsSchema s;
    Err e;
    if (compile(&s, schema, &e)) {
        CHECK(0, "%s: %s", schema, e.msg);
        return;
    }
    for (; *good; good++) CHECK(accepts(&s, *good), "%s should accept %s", schema, *good);
    for (; *bad; bad++) CHECK(!accepts(&s, *bad), "%s should refuse %s", schema, *bad);
    jschema_free(&s);
}

static void test_automaton(void)
{
    check_schema("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":120},"
                 "\"b\":{\"type\":\"string\",\"maxLength\":3}},\"required\":[\"b\"]}",
                 (const char *const[]){"{\"b\":\"xy\"}", "{\"a\":-5,\"b\":\"\"}", "{ \"a\": 120, \"b\": \"\\u00e9\\n\"}",
                                       "{\"a\":0,\"b\":\"\xc3\xa9\xe4\xb8\xad\"}", NULL},
                 (const char *const[]){"{}", "{\"a\":1}", "{\"a\":121,\"b\":\"\"}", "{\"a\":-6,\"b\":\"\"}",
                                       "{\"a\":01,\"b\":\"\"}", "{\"b\":\"abcd\"}", "{\"b\":\"a\",\"a\":1}",
                                       "{\"b\":\"\\ud800\"}", "{\"b\":\"\xed\xa0\x80\"}", "{\"a\":-0,\"b\":\"\"}", NULL});
    check_schema("{\"type\":\"array\",\"items\":{\"enum\":[\"x\",1,null,{\"k\":[true]}]},\"minItems\":1,\"maxItems\":2}",
                 (const char *const[]){"[\"x\"]", "[1,null]", "[{\"k\":[true]}]", NULL},
                 (const char *const[]){"[]", "[1,1,1]", "[2]", "[\"y\"]", NULL});
    check_schema("{\"type\":[\"number\",\"null\"],\"exclusiveMinimum\":0,\"maximum\":10}",
                 (const char *const[]){"1", "9.5", "10", "null", NULL},
                 (const char *const[]){"0", "10.5", "-1", "0.5", "1e3", NULL});
    check_schema("{\"anyOf\":[{\"type\":\"boolean\"},{\"type\":\"string\",\"minLength\":2}]}",
                 (const char *const[]){"true", "\"ab\"", NULL}, (const char *const[]){"\"a\"", "1", NULL});
    check_schema("{\"type\":\"object\"}", (const char *const[]){"{}", "{\"q\":[1,{\"r\":\"s\"}],\"t\":-2.5}", NULL},
                 (const char *const[]){"[]", "{\"q\"}", "{,}", NULL});
    /* additionalProperties a schema: the values of free keys follow it; beside properties only declared keys */
    check_schema("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9}}",
                 (const char *const[]){"{}", "{\"x\":1,\"y z\":9}", NULL},
                 (const char *const[]){"{\"x\":10}", "{\"x\":\"a\"}", "{\"x\":null}", NULL});
    check_schema("{\"properties\":{\"a\":{\"type\":\"string\"}},\"additionalProperties\":{\"type\":\"number\"}}",
                 (const char *const[]){"{}", "{\"a\":\"q\"}", NULL}, (const char *const[]){"{\"b\":1}", NULL});
    /* number ranges with no integer in them: sign and integer part fixed, at most 6 fraction digits */
    check_schema("{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}",
                 (const char *const[]){"0.5", "0.000001", "0.999999", "0.10", NULL},
                 (const char *const[]){"0", "1", "0.", "0.0", "0.000000", "1.0", "0.9999999", "-0.5", "00.5", NULL});
    check_schema("{\"type\":\"number\",\"minimum\":-0.9,\"maximum\":-0.1}",
                 (const char *const[]){"-0.1", "-0.9", "-0.45", "-0.100", NULL},
                 (const char *const[]){"-0.95", "-0.05", "0.5", "-0", "-1", "-0.", NULL});
    check_schema("{\"type\":\"number\",\"minimum\":2.001,\"maximum\":2.002}",
                 (const char *const[]){"2.001", "2.0015", "2.002", NULL},
                 (const char *const[]){"2.0009", "2.0021", "2.01", "2", "3.0015", NULL});
    check_schema("{\"type\":\"number\",\"exclusiveMinimum\":-12.5,\"exclusiveMaximum\":-12.25}",
                 (const char *const[]){"-12.3", "-12.499999", NULL},
                 (const char *const[]){"-12.5", "-12.25", "-12", "-13.3", "12.3", NULL});
    /* the shortest completion is exact where it matters */
    JsSchema s;
    Err e;
    static const struct {
        const char *schema, *prefix;
        int need;
    } cells[] = {
        {"{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1}", "", 3},        /* 0.1 */
        {"{\"type\":\"number\",\"minimum\":2.001,\"maximum\":2.002}", "", 5},                    /* 2.001 */
        {"{\"type\":\"number\",\"minimum\":2.001,\"maximum\":2.002}", "2.", 3},                  /* 001 */
        {"{\"type\":\"number\",\"minimum\":-0.0004,\"maximum\":-0.0003}", "-0", 5},            /* .0003 */
        {"{\"type\":\"number\",\"exclusiveMinimum\":0.5,\"exclusiveMaximum\":0.500002}", "0.5", 5}, /* 00001 */
        /* the first branch '[' fits is taken: the second's [] is never written */
        {"{\"anyOf\":[{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":2},{\"type\":\"array\"}]}", "", 11},
    };
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
        if (compile(&s, cells[i].schema, &e)) {
            CHECK(0, "%s: %s", cells[i].schema, e.msg);
            continue;
        }
        JmState m;
        jm_init(&m, &s);
        for (const char *p = cells[i].prefix; *p; p++) jm_step(&m, (unsigned char)*p);
        CHECK(jm_need(&m) == cells[i].need, "%s after \"%s\": need %d, want %d", cells[i].schema, cells[i].prefix,
              jm_need(&m), cells[i].need);
        jschema_free(&s);
    }
    if (!compile(&s, "{\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":3},\"n\":{\"type\":\"integer\","
                     "\"minimum\":100}},\"required\":[\"name\",\"n\"]}", &e)) {
        JmState m;
        jm_init(&m, &s);
        CHECK(jm_need(&m) == (int)strlen("{\"name\":\"aaa\",\"n\":100}"), "need at start %d", jm_need(&m));
        const char *pre = "{\"name\":\"a";
        for (const char *p = pre; *p; p++) jm_step(&m, (unsigned char)*p);
        CHECK(jm_need(&m) == (int)strlen("aa\",\"n\":100}"), "need inside %d", jm_need(&m));
        jschema_free(&s);
    }
}

static void test_errors(void)
{
    static const struct {
        const char *schema, *word;
    } bad[] = {
        {"{\"type\":\"string\",\"pattern\":\"a+\"}", "\"pattern\""},
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"oneOf\":[]}}}", "properties.x: keyword \"oneOf\""},
        {"{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}", "minLength 5 > maxLength 2"},
        {"{\"type\":\"strin\"}", "type \"strin\""},
        {"{\"required\":[\"q\"],\"properties\":{}}", "\"q\" is not in properties"},
        {"{\"type\":\"number\",\"minimum\":0.0000001,\"maximum\":0.0000002}", "at most 6 fraction digits"},
        {"{\"type\":\"number\",\"minimum\":5000000000.1,\"maximum\":5000000000.2}", "under 1e9"},
        {"{\"type\":\"integer\",\"minimum\":0.1,\"maximum\":0.5}", "no integer"},
        {"{\"type\":\"object\",\"additionalProperties\":5}", "additionalProperties: expected true, false or a schema"},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\",\"pattern\":\"a\"}}",
         "schema.additionalProperties: keyword \"pattern\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        JsSchema s;
        Err e = {{0}};
        int rc = compile(&s, bad[i].schema, &e);
        CHECK(rc < 0 && strstr(e.msg, bad[i].word), "%s: got \"%s\"", bad[i].schema, e.msg);
        if (!rc) jschema_free(&s);
    }
    /* tools: malformed entries name the tool */
    cJSON *t = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"ok\"}},"
                           "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                           "\"properties\":{\"p\":{\"type\":\"string\",\"format\":\"date\"}}}}}]");
    JsSchema s;
    Err e = {{0}};
    int rc = jschema_compile_tools(&s, t, NULL, &e);
    CHECK(rc < 0 && strstr(e.msg, "tools[1] (f)") && strstr(e.msg, "\"format\""), "tool error: %s", e.msg);
    if (!rc) jschema_free(&s);
    rc = jschema_compile_tools(&s, t, "nope", &e);
    CHECK(rc < 0, "unknown tool choice refused");
    if (!rc) jschema_free(&s);
    cJSON_Delete(t);
}

/* Random walks over the masks: each token drawn uniformly from the allowed
 * ones; the text must be complete JSON within the budget. */
static void test_masks(const Tokenizer *tok)
{
    static const char *const schemas[] = {
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\","
        "\"minimum\":1,\"maximum\":14},\"units\":{\"enum\":[\"metric\",\"imperial\"]}},\"required\":[\"city\"]}",
        "{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"maxItems\":4}",
        "{\"type\":\"object\"}",
        "{\"type\":\"string\",\"minLength\":4,\"maxLength\":9}",
        "{\"type\":\"array\",\"items\":{\"type\":\"number\",\"exclusiveMinimum\":-1,\"exclusiveMaximum\":0},"
        "\"maxItems\":3}",
    };
    TokTrie tt;
    Err e;
    if (toktrie_build(&tt, tok, 151936, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    uint32_t *mask = malloc((size_t)tt.words * 4);
    Rng rng = {7};
    int complete = 0, runs = 0;
    for (int si = 0; si < 5; si++) {
        JsSchema s;
        if (compile(&s, schemas[si], &e)) {
            CHECK(0, "%s", e.msg);
            continue;
        }
        for (int rep = 0; rep < 6; rep++) {
            int budget = rep < 3 ? 40 : 300, eos = 151645;
            Constraint c;
            if (constraint_init(&c, &tt, &s, CK_ANSWER, 0, -1, -1, &eos, 1, &e)) break;
            char out[4096];
            size_t n = 0;
            int ended = 0;
            for (int t = 0; t < budget && !ended; t++) {
                constraint_mask(&c, tok, budget - t, mask);
                int cnt = 0, pick = -1;
                for (int i = 0; i < 151936; i++)
                    if (mask[i >> 5] >> (i & 31) & 1) cnt++;
                if (!cnt) break;
                int r = (int)(rng_u32(&rng) % (uint32_t)cnt);
                for (int i = 0; i < 151936; i++)
                    if ((mask[i >> 5] >> (i & 31) & 1) && r-- == 0) {
                        pick = i;
                        break;
                    }
                if (pick == eos) {
                    ended = 1;
                    break;
                }
                size_t len;
                const char *b = tokenizer_token_bytes(tok, pick, &len);
                if (n + len < sizeof out) {
                    memcpy(out + n, b, len);
                    n += len;
                }
                CHECK(constraint_accept(&c, tok, pick) == 0, "accept");
            }
            out[n] = 0;
            runs++;
            cJSON *j = cJSON_Parse(out);
            const cJSON *x;
            int in_range = 1;
            if (si == 4) cJSON_ArrayForEach(x, j) in_range &= cJSON_IsNumber(x) && x->valuedouble > -1 && x->valuedouble < 0;
            CHECK(in_range, "schema %d: a number out of (-1, 0): %s", si, out);
            if (j && constraint_done(&c)) complete++;
            else CHECK(0, "schema %d budget %d: not complete JSON: %s", si, budget, out);
            cJSON_Delete(j);
            constraint_free(&c);
        }
        jschema_free(&s);
    }
    CHECK(complete == runs && runs == 30, "%d of %d random walks complete", complete, runs);
    free(mask);
    toktrie_free(&tt);
}

int main(void)
{
    test_automaton();
    test_errors();
    Err e;
    Tokenizer *tok = tokenizer_load_file("tests/fixtures/models/tiny-qwen2/tokenizer.json", &e);
    CHECK(tok != NULL, "tokenizer: %s", tok ? "" : e.msg);
    if (tok) test_masks(tok);
    tokenizer_free(tok);
    return check_summary("jschema");
}
