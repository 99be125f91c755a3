/* fuzz_template.c - libFuzzer target for the chat-template parser and
 * renderer. The input's first line (up to the first '\n', at most 4 KiB) is
 * the messages JSON when it parses as an array; the rest is the template.
 * Otherwise the whole input is the template, rendered with a fixed
 * conversation. Limits are lowered so runaway templates end quickly.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *       fuzz/fuzz_template.c src/text/jinja*.c src/util/err.c \
 *       -o build/fuzz_template -lcjson -lutf8proc -lm
 *   build/fuzz_template -max_len=8192 fuzz/corpus_template  (see fuzz/README.md) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja.h"
#include "text/toolcall.h"

static const char *default_msgs =
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"Hi \\u4f60\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>\\nx\\n</think>\\n\\nok\",\"tool_calls\":[{\"type\":\"function\","
    "\"function\":{\"name\":\"f\",\"arguments\":{\"a\":[1,2.5,null,true]}}}]},{\"role\":\"tool\",\"content\":\"42\"}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    size_t len = size;
    cJSON *msgs = NULL;
    const char *nl = memchr(data, '\n', size < 4096 ? size : 4096);
    if (nl && size && data[0] == '[') {
        msgs = cJSON_ParseWithLength(src, (size_t)(nl - src));
        if (msgs && cJSON_IsArray(msgs)) {
            len = size - (size_t)(nl + 1 - src);
            src = nl + 1;
        } else {
            cJSON_Delete(msgs);
            msgs = NULL;
        }
    }
    if (!msgs) msgs = cJSON_Parse(default_msgs);
    Err e;
    JinjaTemplate *t = jinja_parse(src, len, "fuzz", &e);
    if (t) {
        JinjaLimits lim = {1 << 16, 16, 200000};
        jinja_set_limits(t, &lim);
        Jv *vars = jv_dict();
        jv_dict_set(vars, "messages", 8, jv_from_cjson(msgs));
        jv_dict_set(vars, "tools", 5, jv_from_cjson(cJSON_GetArrayItem(msgs, 0)));
        jv_dict_set(vars, "add_generation_prompt", 21, jv_bool(1));
        jv_dict_set(vars, "bos_token", 9, jv_strz("<s>"));
        size_t n;
        char *out = jinja_render(t, vars, &n, &e);
        if (out) {
            /* the rendered text also feeds the tool-call parser, in odd pieces */
            ToolCallParser *p = toolcall_parser_new();
            for (size_t i = 0; p && i < n; i += 3) {
                char *s = toolcall_feed(p, out + i, n - i < 3 ? n - i : 3, &e);
                free(s);
            }
            if (p) {
                free(toolcall_finish(p, &e));
                ToolCall c;
                while (toolcall_next(p, &c)) toolcall_clear(&c);
            }
            toolcall_parser_free(p);
        }
        free(out);
        jv_unref(vars);
        jinja_free(t);
    }
    cJSON_Delete(msgs);
    return 0;
}
