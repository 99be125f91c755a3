/* fuzz_template.c - libFuzzer target for the chat-template engine at its real
 * limits (jinja.h defaults: 16 MiB output, 4M steps, 128 MiB of values, the
 * fixed nesting bounds), over a realistic conversation: messages with a system
 * prompt, tools, assistant tool calls with arguments, tool results and
 * reasoning, as chat.c passes them. If the input's first line (at most 4 KiB)
 * parses as a JSON array it replaces the messages; the rest is the template.
 * The rendered text then feeds the <tool_call> parser in odd pieces.
 * A refusal is fine; a crash, sanitizer report, leak, or a render that runs
 * past libFuzzer's -timeout is a finding.
 *
 *   sh fuzz/build.sh
 *   mkdir -p /tmp/fzt && cp -r fuzz/corpus/template/. /tmp/fzt/ && cp tests/fixtures/templates/[A-z]*.jinja /tmp/fzt/
 *   build-fuzz/fuzz_template -dict=fuzz/jinja.dict -max_len=262144 -timeout=10 -rss_limit_mb=2048 /tmp/fzt
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja.h"
#include "text/toolcall.h"

static const char *default_msgs =
    "[{\"role\":\"system\",\"content\":\"You are terse. <b>&amp;</b>\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Z\\u00fcrich? \\u4f60\\u597d\"},"
    "{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":\"need a tool\",\"tool_calls\":[{\"id\":\"abc123xyz\","
    "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Z\\u00fcrich\",\"days\":[1,2.5,null,true]}}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"abc123xyz\",\"name\":\"get_weather\",\"content\":\"{\\\"temp\\\": 3}\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>\\nx\\n</think>\\n\\nIt is 3 degrees.\"},"
    "{\"role\":\"user\",\"content\":\"Thanks\"}]";

static const char *default_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the weather.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"City\"},"
    "\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]}},\"required\":[\"city\"]}}}]";

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
    cJSON *tools = cJSON_Parse(default_tools);
    Err e;
    JinjaTemplate *t = jinja_parse(src, len, "fuzz", &e);
    if (t) {
        jinja_set_time(t, 1768473000);
        Jv *vars = jv_dict();
        jv_dict_set(vars, "messages", 8, jv_from_cjson(msgs));
        jv_dict_set(vars, "tools", 5, jv_from_cjson(tools));
        jv_dict_set(vars, "documents", 9, jv_none());
        jv_dict_set(vars, "add_generation_prompt", 21, jv_bool(1));
        jv_dict_set(vars, "bos_token", 9, jv_strz("<s>"));
        jv_dict_set(vars, "eos_token", 9, jv_strz("</s>"));
        size_t n;
        char *out = jinja_render(t, vars, &n, &e);
        if (out) {
            ToolCallParser *p = toolcall_parser_new();
            for (size_t i = 0; p && i < n && i < 65536; i += 3) {
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
    cJSON_Delete(tools);
    cJSON_Delete(msgs);
    return 0;
}
