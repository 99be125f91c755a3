/* duet generate with --tools FILE [--tool-choice C], --json-schema FILE or
 * --json: the same prompt options, run through duet.h (sessions with tools
 * and token constraints). With tools it prints one JSON object:
 * {"content": TEXT, "tool_calls": [{"id", "type": "function", "function":
 * {"name", "arguments": {...}}}]}; with a schema, the JSON text itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "duet.h"
#include "util/json.h"

/* The tools of FILE as an OpenAI-form array text (malloc'd): the file holds
 * that array, or a command-tools file ({"tools": [{name, description,
 * parameters, argv...}]}) whose declarations are taken. NULL with *e set. */
static char *load_tools(const char *path, Err *e)
{
    cJSON *root = json_parse_file(path, e);
    if (!root) return NULL;
    cJSON *list = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "tools");
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(root);
        err_set(e, "%s: expected a JSON array of tools", path);
        return NULL;
    }
    cJSON *out = cJSON_CreateArray(), *t;
    cJSON_ArrayForEach(t, list)
    {
        if (cJSON_GetObjectItemCaseSensitive(t, "function")) {
            cJSON_AddItemToArray(out, cJSON_Duplicate(t, 1));
            continue;
        }
        cJSON *f = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        const char *keys[] = {"name", "description", "parameters"};
        for (int k = 0; k < 3; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, keys[k]);
            if (v) cJSON_AddItemToObject(fn, keys[k], cJSON_Duplicate(v, 1));
        }
        cJSON_AddStringToObject(f, "type", "function");
        cJSON_AddItemToObject(f, "function", fn);
        cJSON_AddItemToArray(out, f);
    }
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    cJSON_Delete(root);
    if (!text) err_set(e, "out of memory");
    return text;
}

static int print_piece(void *user, const char *piece, size_t len, int token)
{
    (void)user;
    (void)token;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int cli_generate_structured(const GenStructured *g)
{
    Err e = {{0}};
    char *tools = NULL, *schema = NULL, err[512];
    if (g->tools_path && !(tools = load_tools(g->tools_path, &e))) return cli_error("%s", e.msg);
    if (g->schema_path && !(schema = file_read(g->schema_path, NULL, &e))) {
        free(tools);
        return cli_error("%s", e.msg);
    }
    const char *loras[CLI_MAX_LORAS + 1] = {0};
    for (int i = 0; i < g->n_lora; i++) loras[i] = g->loras[i];
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.n_threads = g->threads;
    mo.loras = g->n_lora ? loras : NULL;
    duet_model *m = NULL;
    duet_session *s = NULL;
    int rc = 1;
    if (duet_model_open(&m, g->path, &mo, err, sizeof err)) {
        cli_error("%s", err);
        goto done;
    }
    duet_session_options so;
    duet_session_options_default(&so);
    /* the adapter: --adapter NAME ("base": none), else the one --lora gave */
    so.adapter = g->adapter && strcmp(g->adapter, "base") ? g->adapter : NULL;
    if (!g->adapter && g->n_lora == 1) so.adapter = duet_model_adapter_name(m, duet_model_n_adapters(m) - 1);
    cli_session_sampling(m, g->sampling, &so);
    so.max_tokens = g->max_tokens;
    so.ignore_eos = g->ignore_eos;
    so.n_ctx = g->ctx;
    if (g->verbose)
        fprintf(stderr, "adapter %s; sampling: temperature %g, top_k %d, top_p %g, min_p %g, repeat_penalty %g, seed %llu\n",
                so.adapter ? so.adapter : "none (base)", so.temperature, so.top_k, so.top_p, so.min_p,
                so.repetition_penalty, (unsigned long long)so.seed);
    if (duet_session_create(m, &so, &s)) {
        cli_error("%s", duet_model_errmsg(m));
        goto done;
    }
    if ((tools && duet_session_set_tools(s, tools)) || (g->tool_choice && duet_session_set_tool_choice(s, g->tool_choice)) ||
        (g->json_object && !schema && duet_session_set_json_schema(s, "{\"type\":\"object\"}"))) {
        cli_error("%s", duet_session_errmsg(s));
        goto done;
    }
    if (schema && duet_session_set_json_schema(s, schema)) { /* the message names no file: the schema's is added */
        cli_error("%s: %s", g->schema_path, duet_session_errmsg(s));
        goto done;
    }
    int r = 0;
    if (g->chat) {
        if (g->system) r = duet_session_append_message(s, "system", g->system);
        if (!r) r = duet_session_append_message(s, "user", g->chat);
    } else {
        r = duet_session_append_text(s, g->prompt, strlen(g->prompt));
    }
    if (r) {
        cli_error("%s", duet_session_errmsg(s));
        goto done;
    }
    r = duet_generate(s, tools ? NULL : print_piece, NULL);
    if (r < 0) {
        cli_error("%s", duet_session_errmsg(s));
        goto done;
    }
    if (tools) {
        cJSON *o = cJSON_CreateObject(), *calls = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "content", duet_session_content(s));
        for (int i = 0; i < duet_session_n_tool_calls(s); i++) {
            const duet_tool_call *c = duet_session_tool_call(s, i);
            cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject(), *args = cJSON_Parse(c->arguments);
            cJSON_AddStringToObject(tc, "id", c->id);
            cJSON_AddStringToObject(tc, "type", "function");
            cJSON_AddStringToObject(fn, "name", c->name);
            cJSON_AddItemToObject(fn, "arguments", args ? args : cJSON_CreateString(c->arguments));
            cJSON_AddItemToObject(tc, "function", fn);
            cJSON_AddItemToArray(calls, tc);
        }
        cJSON_AddItemToObject(o, "tool_calls", calls);
        char *t = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (t) printf("%s", t);
        free(t);
    }
    printf("\n");
    rc = 0;
done:
    duet_session_close(s);
    duet_model_close(m);
    free(tools);
    free(schema);
    return rc;
}
