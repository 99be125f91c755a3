/* test_toolcall.c - <tool_call> extraction, whole and streamed in pieces that
 * split the tags anywhere; malformed JSON becomes an error entry. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "text/toolcall.h"

/* Feeds text in pieces of `step` bytes; collects the shown text and checks
 * that no piece of a tag is ever shown. */
static char *stream(const char *text, size_t step, ToolCall *calls, int *ncalls, int max)
{
    Err e;
    ToolCallParser *p = toolcall_parser_new();
    size_t n = strlen(text), cap = n + 1, len = 0;
    char *shown = calloc(1, cap);
    *ncalls = 0;
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        char *out = toolcall_feed(p, text + i, k, &e);
        CHECK(out != NULL, "feed");
        if (!out) break;
        CHECK(!strchr(out, '<') || !strstr(out, "tool_call"), "tag text leaked: [%s]", out);
        memcpy(shown + len, out, strlen(out));
        len += strlen(out);
        free(out);
        ToolCall c;
        while (toolcall_next(p, &c)) {
            if (*ncalls < max) calls[(*ncalls)++] = c;
            else toolcall_clear(&c);
        }
    }
    char *rest = toolcall_finish(p, &e);
    if (rest) {
        memcpy(shown + len, rest, strlen(rest));
        len += strlen(rest);
        free(rest);
    }
    ToolCall c;
    while (toolcall_next(p, &c)) {
        if (*ncalls < max) calls[(*ncalls)++] = c;
        else toolcall_clear(&c);
    }
    shown[len] = 0;
    toolcall_parser_free(p);
    return shown;
}

static void clear_all(ToolCall *c, int n)
{
    for (int i = 0; i < n; i++) toolcall_clear(&c[i]);
}

static void test_complete(void)
{
    const char *t = "<tool_call>\n{\"name\": \"get_cpu_temp\", \"arguments\": {\"unit\": \"celsius\"}}\n</tool_call>";
    for (size_t step = 1; step <= strlen(t); step++) {
        ToolCall c[4];
        int n;
        char *shown = stream(t, step, c, &n, 4);
        CHECK(n == 1 && c[0].name && !strcmp(c[0].name, "get_cpu_temp") && !strcmp(c[0].arguments, "{\"unit\":\"celsius\"}") &&
                  !c[0].error,
              "complete block, pieces of %zu", step);
        CHECK(!strcmp(shown, ""), "no text around the call (step %zu): [%s]", step, shown);
        free(shown);
        clear_all(c, n);
    }
}

static void test_two_calls_and_text(void)
{
    const char *t = "Let me check. <tool_call>{\"name\": \"a\", \"arguments\": {\"x\": [1, 2]}}</tool_call>\n"
                    "<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": 1}\"}</tool_call> done <tool";
    for (size_t step = 1; step <= 7; step++) {
        ToolCall c[4];
        int n;
        char *shown = stream(t, step, c, &n, 4);
        CHECK(n == 2, "two calls (step %zu): %d", step, n);
        if (n == 2) {
            CHECK(!strcmp(c[0].name, "a") && !strcmp(c[0].arguments, "{\"x\":[1,2]}"), "first call");
            CHECK(!strcmp(c[1].name, "b") && !strcmp(c[1].arguments, "{\"y\": 1}"), "string arguments kept as JSON text");
        }
        CHECK(!strcmp(shown, "Let me check. \n done <tool"), "text around calls (step %zu): [%s]", step, shown);
        free(shown);
        clear_all(c, n);
    }
}

static void test_passthrough(void)
{
    /* ordinary text comes out at once; only a possible tag prefix waits */
    Err e;
    ToolCallParser *p = toolcall_parser_new();
    char *o = toolcall_feed(p, "Hello ", 6, &e);
    CHECK(o && !strcmp(o, "Hello "), "plain text passes immediately");
    free(o);
    o = toolcall_feed(p, "a <to", 5, &e);
    CHECK(o && !strcmp(o, "a "), "possible tag prefix held back: [%s]", o);
    free(o);
    o = toolcall_feed(p, "y>", 2, &e);
    CHECK(o && !strcmp(o, "<toy>"), "prefix released when it is no tag: [%s]", o);
    free(o);
    o = toolcall_feed(p, "<tool_call>{\"name\":\"f\"}", 23, &e);
    CHECK(o && !strcmp(o, ""), "inside a block nothing is shown");
    free(o);
    ToolCall c;
    CHECK(!toolcall_next(p, &c), "no call before the close tag");
    o = toolcall_feed(p, "</tool_call>", 12, &e);
    free(o);
    CHECK(toolcall_next(p, &c) && !strcmp(c.name, "f") && !strcmp(c.arguments, "{}"), "call without arguments");
    toolcall_clear(&c);
    toolcall_parser_free(p);
}

static void test_malformed(void)
{
    const char *t = "x<tool_call>{\"name\": \"a\", \"arguments\": {\"unit\": }</tool_call>y"
                    "<tool_call>[1]</tool_call><tool_call>{\"arguments\": {}}</tool_call>"
                    "<tool_call>{\"name\": \"ok\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"cut";
    ToolCall c[8];
    int n;
    char *shown = stream(t, 3, c, &n, 8);
    CHECK(n == 5, "five entries: %d", n);
    if (n == 5) {
        CHECK(!c[0].name && c[0].error && strstr(c[0].error, "malformed JSON") &&
                  !strcmp(c[0].raw, "{\"name\": \"a\", \"arguments\": {\"unit\": }"),
              "malformed JSON -> error entry with raw text");
        CHECK(c[1].error && !c[1].name, "non-object -> error");
        CHECK(c[2].error && strstr(c[2].error, "name"), "no name -> error");
        CHECK(c[3].name && !strcmp(c[3].name, "ok") && !c[3].error, "generation continues after errors");
        CHECK(c[4].error && strstr(c[4].error, "unclosed") && !strcmp(c[4].raw, "{\"name\": \"cut"), "unclosed block at finish");
    }
    CHECK(!strcmp(shown, "xy"), "text kept: [%s]", shown);
    free(shown);
    clear_all(c, n);

    char *content;
    ToolCall *calls;
    int nc;
    Err e;
    const char *one = "a<tool_call>{\"name\":\"z\",\"arguments\":{\"k\":\"é\"}}</tool_call>b";
    CHECK(toolcall_parse(one, strlen(one), &content, &calls, &nc, &e) == 0,
          "toolcall_parse");
    CHECK(nc == 1 && !strcmp(calls[0].name, "z") && !strcmp(content, "ab"), "one-shot parse: %d [%s]", nc, content);
    for (int i = 0; i < nc; i++) toolcall_clear(&calls[i]);
    free(calls);
    free(content);
}

int main(void)
{
    test_complete();
    test_two_calls_and_text();
    test_passthrough();
    test_malformed();
    return check_summary("test_toolcall");
}
