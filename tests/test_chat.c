/* test_chat.c - chat templates against transformers' apply_chat_template:
 * every case of tests/fixtures/chat_template/golden.json byte for byte, the
 * qwen3 tokenizer_config.json through chat_template_load_file, a Llama 3.1
 * template (hand-checked output), and bad inputs. */
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "check.h"
#include "text/chat.h"
#include "util/json.h"

#define GOLDEN "tests/fixtures/chat_template/golden.json"
#define TOKCFG "tests/fixtures/tokenizer/tokenizer_config.json"

/* Llama 3.1 Instruct's chat template (with the strftime_now date fallback of
 * the later revisions). */
static const char *llama31 =
    "{{- bos_token }}\n"
    "{%- if custom_tools is defined %}\n"
    "    {%- set tools = custom_tools %}\n"
    "{%- endif %}\n"
    "{%- if not tools_in_user_message is defined %}\n"
    "    {%- set tools_in_user_message = true %}\n"
    "{%- endif %}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- if strftime_now is defined %}\n"
    "        {%- set date_string = strftime_now(\"%d %b %Y\") %}\n"
    "    {%- else %}\n"
    "        {%- set date_string = \"26 Jul 2024\" %}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- if not tools is defined %}\n"
    "    {%- set tools = none %}\n"
    "{%- endif %}\n"
    "\n"
    "{#- This block extracts the system message, so we can slot it into the right place. #}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_message = \"\" %}\n"
    "{%- endif %}\n"
    "\n"
    "{#- System message + builtin tools #}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{%- if builtin_tools is defined or tools is not none %}\n"
    "    {{- \"Environment: ipython\\n\" }}\n"
    "{%- endif %}\n"
    "{%- if builtin_tools is defined %}\n"
    "    {{- \"Tools: \" + builtin_tools | reject('equalto', 'code_interpreter') | join(\", \") + \"\\n\\n\"}}\n"
    "{%- endif %}\n"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
    "{%- if tools is not none and not tools_in_user_message %}\n"
    "    {{- \"You have access to the following functions. To call a function, please respond with JSON for a function call.\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n"
    "    {%- for t in tools %}\n"
    "        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n"
    "    {%- endfor %}\n"
    "{%- endif %}\n"
    "{{- system_message }}\n"
    "{{- \"<|eot_id|>\" }}\n"
    "\n"
    "{#- Custom tools are passed in a user message with some extra guidance #}\n"
    "{%- if tools_in_user_message and not tools is none %}\n"
    "    {#- Extract the first user message so we can plug it in here #}\n"
    "    {%- if messages | length != 0 %}\n"
    "        {%- set first_user_message = messages[0]['content']|trim %}\n"
    "        {%- set messages = messages[1:] %}\n"
    "    {%- else %}\n"
    "        {{- raise_exception(\"Cannot put tools in the first user message when there's no first user message!\") }}\n"
    "{%- endif %}\n"
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    "    {{- \"Given the following functions, please respond with a JSON for a function call \" }}\n"
    "    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n"
    "    {%- for t in tools %}\n"
    "        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n"
    "    {%- endfor %}\n"
    "    {{- first_user_message + \"<|eot_id|>\"}}\n"
    "{%- endif %}\n"
    "\n"
    "{%- for message in messages %}\n"
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n"
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
    "    {%- elif 'tool_calls' in message %}\n"
    "        {%- if not message.tool_calls|length == 1 %}\n"
    "            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}\n"
    "        {%- endif %}\n"
    "        {%- set tool_call = message.tool_calls[0].function %}\n"
    "        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}\n"
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "            {{- \"<|python_tag|>\" + tool_call.name + \".call(\" }}\n"
    "            {%- for arg_name, arg_val in tool_call.arguments | items %}\n"
    "                {{- arg_name + '=\"' + arg_val + '\"' }}\n"
    "                {%- if not loop.last %}\n"
    "                    {{- \", \" }}\n"
    "                {%- endif %}\n"
    "                {%- endfor %}\n"
    "            {{- \")\" }}\n"
    "        {%- else  %}\n"
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "            {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n"
    "            {{- '\"parameters\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- \"}\" }}\n"
    "        {%- endif %}\n"
    "        {%- if builtin_tools is defined %}\n"
    "            {#- This means we're in ipython mode #}\n"
    "            {{- \"<|eom_id|>\" }}\n"
    "        {%- else %}\n"
    "            {{- \"<|eot_id|>\" }}\n"
    "        {%- endif %}\n"
    "    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n"
    "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n"
    "        {%- if message.content is mapping or message.content is iterable %}\n"
    "            {{- message.content | tojson }}\n"
    "        {%- else %}\n"
    "            {{- message.content }}\n"
    "        {%- endif %}\n"
    "        {{- \"<|eot_id|>\" }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}";

static void test_golden(void)
{
    Err e = {{0}};
    cJSON *g = json_parse_file(GOLDEN, &e);
    CHECK(g != NULL, "load %s: %s", GOLDEN, e.msg);
    if (!g) return;
    const cJSON *tpls = cJSON_GetObjectItem(g, "templates"), *cases = cJSON_GetObjectItem(g, "cases");
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *tname = cJSON_GetObjectItem(c, "template")->valuestring;
        const cJSON *src = cJSON_GetObjectItem(tpls, tname);
        ChatTemplate *t = chat_template_from_source(src->valuestring, NULL, "<|im_end|>", &e);
        CHECK(t != NULL, "case %d (%s): parse: %s", n, tname, e.msg);
        if (!t) continue;
        char *out = chat_template_render(t, cJSON_GetObjectItem(c, "messages"), cJSON_GetObjectItem(c, "tools"),
                                         cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")), &e);
        const char *want = cJSON_GetObjectItem(c, "expected")->valuestring;
        CHECK(out && !strcmp(out, want), "case %d (%s): got [%s] want [%s] %s", n, tname, out ? out : "NULL", want,
              out ? "" : e.msg);
        free(out);
        chat_template_free(t);
        n++;
    }
    CHECK(n == 20, "golden cases run: %d", n);

    /* the same qwen3 template read from a real tokenizer_config.json */
    ChatTemplate *t = chat_template_load_file(TOKCFG, &e);
    CHECK(t != NULL, "load %s: %s", TOKCFG, e.msg);
    if (t) {
        CHECK(chat_template_bos(t) == NULL, "bos_token null -> absent");
        CHECK(chat_template_eos(t) && !strcmp(chat_template_eos(t), "<|im_end|>"), "eos_token");
        int matched = 0;
        cJSON_ArrayForEach(c, cases) {
            if (strcmp(cJSON_GetObjectItem(c, "template")->valuestring, "qwen3")) continue;
            char *out = chat_template_render(t, cJSON_GetObjectItem(c, "messages"), cJSON_GetObjectItem(c, "tools"),
                                             cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")), &e);
            CHECK(out && !strcmp(out, cJSON_GetObjectItem(c, "expected")->valuestring), "tokenizer_config qwen3 case");
            matched += out != NULL;
            free(out);
        }
        CHECK(matched == 12, "tokenizer_config rendered %d qwen3 cases", matched);
        chat_template_free(t);
    }
    cJSON_Delete(g);
}

static char *render_json(const ChatTemplate *t, const char *msgs, const char *tools, int gen, const char *extra, Err *e)
{
    cJSON *m = cJSON_Parse(msgs), *tl = tools ? cJSON_Parse(tools) : NULL, *x = extra ? cJSON_Parse(extra) : NULL;
    char *out = chat_template_render_ex(t, m, tl, gen, x, e);
    cJSON_Delete(m);
    cJSON_Delete(tl);
    cJSON_Delete(x);
    return out;
}

static void test_llama(void)
{
    Err e = {{0}};
    ChatTemplate *t = chat_template_from_source(llama31, "<|begin_of_text|>", "<|eot_id|>", &e);
    CHECK(t != NULL, "llama 3.1 parse: %s", e.msg);
    if (!t) return;
    const char *msgs = "[{\"role\":\"system\",\"content\":\"You are helpful.  \"},{\"role\":\"user\",\"content\":\" Hi \"},"
                       "{\"role\":\"assistant\",\"content\":\"Hello!\"},{\"role\":\"user\",\"content\":\"Bye\"}]";
    char *out = render_json(t, msgs, NULL, 1, "{\"date_string\":\"26 Jul 2024\"}", &e);
    const char *want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK(out && !strcmp(out, want), "llama 3.1 conversation: got [%s]", out ? out : e.msg);
    free(out);

    /* without date_string the template asks strftime_now("%d %b %Y") */
    char today[64], line[96];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(today, sizeof today, "%d %b %Y", &tm);
    snprintf(line, sizeof line, "Today Date: %s\n", today);
    out = render_json(t, msgs, NULL, 1, NULL, &e);
    CHECK(out && strstr(out, line), "llama 3.1 strftime_now date: [%s] in [%s]", line, out ? out : e.msg);
    free(out);

    /* tools in the first user message, tool call, tool result */
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_cpu_temp\",\"description\":\"Read the CPU temperature.\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{\"unit\":{\"type\":\"string\"}}}}}]";
    const char *msgs2 = "[{\"role\":\"user\",\"content\":\"Temp?\"},{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\","
                        "\"function\":{\"name\":\"get_cpu_temp\",\"arguments\":{\"unit\":\"celsius\"}}}]},{\"role\":\"tool\",\"content\":\"51.2\"}]";
    out = render_json(t, msgs2, tools, 1, "{\"date_string\":\"26 Jul 2024\"}", &e);
    CHECK(out && strstr(out, "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_cpu_temp\",") &&
              strstr(out, "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_cpu_temp\", \"parameters\": {\"unit\": \"celsius\"}}<|eot_id|>") &&
              strstr(out, "<|start_header_id|>ipython<|end_header_id|>\n\n\"51.2\"<|eot_id|>"),
          "llama 3.1 tools: [%s]", out ? out : e.msg);
    free(out);

    /* two tool calls at once: the template raises */
    const char *msgs3 = "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"a\",\"arguments\":{}}},"
                        "{\"function\":{\"name\":\"b\",\"arguments\":{}}}]}]";
    out = render_json(t, msgs3, NULL, 0, NULL, &e);
    CHECK(!out && !strcmp(e.msg, "This model only supports single tool-calls at once!"), "raise_exception message: %s", e.msg);
    free(out);
    chat_template_free(t);
}

static void test_bad_input(void)
{
    Err e = {{0}};
    const char *bad[] = {
        "{\"chat_template\": 5}", "{\"bos_token\": 3, \"chat_template\": \"x\"}", "[1,2]", "{\"chat_template\": \"{% if x %}\"}",
        "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}", "{\"eos_token\": \"x\"}", "{\"chat_template\": ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e.msg[0] = 0;
        ChatTemplate *t = chat_template_load_json(bad[i], strlen(bad[i]), "cfg.json", &e);
        CHECK(!t && strstr(e.msg, "cfg.json"), "bad config %zu rejected with a message naming the file: %s", i, e.msg);
        chat_template_free(t);
    }
    ChatTemplate *t = chat_template_load_file("tests/fixtures/no/such/tokenizer_config.json", &e);
    CHECK(!t && e.msg[0], "missing file: %s", e.msg);

    /* list form with a default entry, bos/eos as {content} objects */
    const char *cfg = "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\", \"chat_template\": ["
                      "{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"{{ bos_token }}{{ messages[0].content }}{{ eos_token }}\"}]}";
    t = chat_template_load_json(cfg, strlen(cfg), "cfg.json", &e);
    CHECK(t != NULL, "list-form chat_template: %s", e.msg);
    if (t) {
        char *out = render_json(t, "[{\"role\":\"user\",\"content\":\"hey\"}]", NULL, 0, NULL, &e);
        CHECK(out && !strcmp(out, "<s>hey</s>"), "default entry rendered: %s", out ? out : e.msg);
        free(out);
        cJSON *obj = cJSON_Parse("{\"role\":\"user\"}");
        out = chat_template_render(t, obj, NULL, 0, &e);
        CHECK(!out && strstr(e.msg, "messages"), "messages not an array: %s", e.msg);
        free(out);
        out = chat_template_render(t, NULL, NULL, 0, &e);
        CHECK(!out, "messages NULL");
        cJSON_Delete(obj);
        chat_template_free(t);
    }
    t = chat_template_from_source("{{ messages[0].content.nope.deeper }}", NULL, NULL, &e);
    if (t) {
        char *out = render_json(t, "[{\"content\":\"x\"}]", NULL, 0, NULL, &e);
        CHECK(!out && strstr(e.msg, "template:1:"), "undefined attribute chain: %s", e.msg);
        free(out);
        chat_template_free(t);
    }
}

typedef struct Shared {
    const ChatTemplate *t;
    cJSON *msgs, *tools;
    const char *want;
    int bad;
} Shared;

static void *render_many(void *arg)
{
    Shared *s = arg;
    for (int i = 0; i < 50; i++) {
        Err e;
        char *out = chat_template_render(s->t, s->msgs, s->tools, 1, &e);
        if (!out || strcmp(out, s->want)) __atomic_add_fetch(&s->bad, 1, __ATOMIC_RELAXED);
        free(out);
    }
    return NULL;
}

/* one const template rendered by 4 threads at once (run under TSan/ASan) */
static void test_threads_share(void)
{
    Err e = {{0}};
    cJSON *g = json_parse_file(GOLDEN, &e);
    if (!g) return;
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "cases"), 16); /* qwen3 with tools and a tool call */
    ChatTemplate *t = chat_template_load_file(TOKCFG, &e);
    if (t && c) {
        Shared s = {t, cJSON_GetObjectItem(c, "messages"), cJSON_GetObjectItem(c, "tools"),
                    cJSON_GetObjectItem(c, "expected")->valuestring, 0};
        pthread_t th[4];
        for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, render_many, &s);
        for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
        CHECK(s.bad == 0, "concurrent renders of one template: %d wrong", s.bad);
    }
    chat_template_free(t);
    cJSON_Delete(g);
}

int main(void)
{
    test_golden();
    test_llama();
    test_bad_input();
    test_threads_share();
    return check_summary("test_chat");
}
