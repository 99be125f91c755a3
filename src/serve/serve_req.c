/* serve_req.c - request bodies to GenReq: the OpenAI chat / completions and
 * Ollama chat / generate fields, each checked for type and range, with an
 * error that names the parameter. No I/O: the fuzz target drives it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

int api_error(ApiError *e, int status, const char *param, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    e->type = status == 401 ? "authentication_error"
              : status == 404 ? "not_found_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return status;
}

int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        int k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (i + (size_t)k >= n) return 0; /* truncated sequence */
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (int j = 2; j <= k; j++)
            if ((p[i + (size_t)j] & 0xC0) != 0x80) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

cJSON *body_json(const char *body, size_t len, ApiError *e)
{
    if (!utf8_valid(body, len)) {
        api_error(e, 400, "", "the request body is not valid UTF-8");
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) {
        size_t at = end ? (size_t)(end - body) : 0;
        api_error(e, 400, "", "the request body is not valid JSON (at byte %zu)", at);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        api_error(e, 400, "", "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

void genreq_free(GenReq *r)
{
    free(r->model);
    free(r->messages);
    free(r->prompt);
    free(r->system);
    free(r->tools);
    free(r->tool_choice);
    free(r->schema);
    free(r->suffix);
    for (int i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    for (int i = 0; i < DUET_MAX_STOPS; i++) free(r->stops[i]);
    memset(r, 0, sizeof *r);
}

/* Field getters: 0 when absent or null, 1 when set, or a status with *e. */
static int get_num(const cJSON *o, const char *k, double lo, double hi, double *out, ApiError *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return api_error(e, 400, k, "%s: expected a number", k);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return api_error(e, 400, k, "%s: %g is out of range [%g, %g]", k, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 1;
}

static int get_int(const cJSON *o, const char *k, double lo, double hi, long long *out, ApiError *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || !isfinite(v->valuedouble))
        return api_error(e, 400, k, "%s: expected an integer", k);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return api_error(e, 400, k, "%s: %.0f is out of range [%.0f, %.0f]", k, v->valuedouble, lo, hi);
    *out = (long long)v->valuedouble;
    return 1;
}

static int get_bool(const cJSON *o, const char *k, int *out, ApiError *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return api_error(e, 400, k, "%s: expected true or false", k);
    *out = cJSON_IsTrue(v);
    return 1;
}

static int get_str(const cJSON *o, const char *k, const char **out, ApiError *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) return api_error(e, 400, k, "%s: expected a string", k);
    *out = v->valuestring;
    return 1;
}

static int oom(ApiError *e) { return api_error(e, 500, "", "out of memory"); }

/* stop: a string or a list of up to DUET_MAX_STOPS strings. */
static int parse_stop(GenReq *r, const cJSON *v, const char *name, ApiError *e)
{
    if (!v || cJSON_IsNull(v)) return 0;
    int n = 0;
    if (cJSON_IsString(v)) {
        if (v->valuestring[0] && !(r->stops[n++] = strdup(v->valuestring))) return oom(e);
    } else if (cJSON_IsArray(v)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, v)
        {
            if (!cJSON_IsString(s)) return api_error(e, 400, name, "%s: expected a string or a list of strings", name);
            if (n == DUET_MAX_STOPS) return api_error(e, 400, name, "%s: at most %d stop strings", name, DUET_MAX_STOPS);
            if (s->valuestring[0] && !(r->stops[n++] = strdup(s->valuestring))) return oom(e);
        }
    } else {
        return api_error(e, 400, name, "%s: expected a string or a list of strings", name);
    }
    for (int i = 0; i < n; i++) r->so.stop[i] = r->stops[i];
    return 0;
}

/* tools: an array of {"type": "function", "function": {"name", ...}}; kept as text. */
static int parse_tools(GenReq *r, const cJSON *v, ApiError *e)
{
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsArray(v)) return api_error(e, 400, "tools", "tools: expected an array of tool definitions");
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, v)
    {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsObject(t) || (ty && !(cJSON_IsString(ty) && !strcmp(ty->valuestring, "function"))) ||
            !cJSON_IsObject(fn) || !cJSON_IsString(nm) || !nm->valuestring[0])
            return api_error(e, 400, "tools", "tools[%d]: expected {\"type\": \"function\", \"function\": {\"name\": ...}}", i);
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        if (pa && !cJSON_IsObject(pa) && !cJSON_IsNull(pa))
            return api_error(e, 400, "tools", "tools[%d].function.parameters: expected a JSON Schema object", i);
        i++;
    }
    if (i == 0) return 0;
    if (!(r->tools = cJSON_PrintUnformatted(v))) return oom(e);
    return 0;
}

static int parse_tool_choice(GenReq *r, const cJSON *v, ApiError *e)
{
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (strcmp(s, "auto") && strcmp(s, "none") && strcmp(s, "required"))
            return api_error(e, 400, "tool_choice", "tool_choice: expected \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}");
        if (!(r->tool_choice = strdup(s))) return oom(e);
    } else if (cJSON_IsObject(v)) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "function"), "name");
        if (!cJSON_IsString(nm) || !nm->valuestring[0])
            return api_error(e, 400, "tool_choice", "tool_choice: expected {\"type\": \"function\", \"function\": {\"name\": string}}");
        if (!(r->tool_choice = strdup(nm->valuestring))) return oom(e);
    } else {
        return api_error(e, 400, "tool_choice", "tool_choice: expected a string or an object");
    }
    if (strcmp(r->tool_choice, "auto") && strcmp(r->tool_choice, "none")) {
        if (!r->tools) return api_error(e, 400, "tool_choice", "tool_choice \"%s\" needs tools", r->tool_choice);
        if (strcmp(r->tool_choice, "required")) {
            cJSON *tools = cJSON_Parse(r->tools);
            int found = 0;
            const cJSON *t;
            cJSON_ArrayForEach(t, tools)
            {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
                if (cJSON_IsString(nm) && !strcmp(nm->valuestring, r->tool_choice)) found = 1;
            }
            cJSON_Delete(tools);
            if (!found) return api_error(e, 400, "tool_choice", "tool_choice names \"%s\", which is not in tools", r->tool_choice);
        }
    }
    return 0;
}

static int parse_response_format(GenReq *r, const cJSON *v, ApiError *e)
{
    if (!v || cJSON_IsNull(v)) return 0;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(v, "type");
    if (!cJSON_IsObject(v) || !cJSON_IsString(ty))
        return api_error(e, 400, "response_format", "response_format: expected {\"type\": \"text\" | \"json_object\" | \"json_schema\"}");
    if (!strcmp(ty->valuestring, "text")) return 0;
    if (!strcmp(ty->valuestring, "json_object")) {
        r->json_mode = 1;
        return (r->schema = strdup("{\"type\":\"object\"}")) ? 0 : oom(e);
    }
    if (!strcmp(ty->valuestring, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(v, "json_schema");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!cJSON_IsObject(js) || !cJSON_IsObject(sc))
            return api_error(e, 400, "response_format", "response_format.json_schema.schema: expected a JSON Schema object");
        r->json_mode = 1;
        return (r->schema = cJSON_PrintUnformatted(sc)) ? 0 : oom(e);
    }
    return api_error(e, 400, "response_format", "response_format.type \"%s\": expected text, json_object or json_schema",
                     ty->valuestring);
}

/* Appends a copy of message m (index i) to out with content as a string, role checked. */
static int norm_message(cJSON *out, const cJSON *m, int i, int ollama, ApiError *e)
{
    char p[40];
    snprintf(p, sizeof p, "messages[%d]", i);
    if (!cJSON_IsObject(m)) return api_error(e, 400, "messages", "%s: expected an object", p);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsString(role)) return api_error(e, 400, "messages", "%s.role: expected a string", p);
    const char *rs = role->valuestring;
    if (!strcmp(rs, "developer")) rs = "system";
    if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool"))
        return api_error(e, 400, "messages", "%s.role \"%s\": expected system, developer, user, assistant or tool", p,
                         role->valuestring);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "role", rs)) {
        cJSON_Delete(o);
        return oom(e);
    }
    cJSON_AddItemToArray(out, o);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    Buf text = {0};
    if (cJSON_IsString(c)) {
        if (buf_add(&text, c->valuestring, strlen(c->valuestring))) return oom(e);
    } else if (cJSON_IsArray(c)) {
        const cJSON *part;
        int k = 0;
        cJSON_ArrayForEach(part, c)
        {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
                free(text.p);
                return api_error(e, 400, "messages", "%s.content[%d]: only {\"type\": \"text\", \"text\": string} parts are supported", p, k);
            }
            if (buf_add(&text, tx->valuestring, strlen(tx->valuestring))) return oom(e);
            k++;
        }
    } else if (c && !cJSON_IsNull(c)) {
        return api_error(e, 400, "messages", "%s.content: expected a string, null or a list of text parts", p);
    } else if (strcmp(rs, "assistant")) {
        return api_error(e, 400, "messages", "%s.content: required for role %s", p, rs);
    }
    if (!cJSON_AddStringToObject(o, "content", text.p ? text.p : "")) {
        free(text.p);
        return oom(e);
    }
    free(text.p);
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (tc && !cJSON_IsNull(tc)) {
        if (strcmp(rs, "assistant") || !cJSON_IsArray(tc))
            return api_error(e, 400, "messages", "%s.tool_calls: an array, on assistant messages only", p);
        cJSON *calls = cJSON_AddArrayToObject(o, "tool_calls");
        int k = 0;
        const cJSON *call;
        cJSON_ArrayForEach(call, tc)
        {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name");
            const cJSON *ar = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "id");
            if (!cJSON_IsObject(fn) || !cJSON_IsString(nm) || (ar && !cJSON_IsString(ar) && !cJSON_IsObject(ar)) ||
                (id && !cJSON_IsString(id)))
                return api_error(e, 400, "messages", "%s.tool_calls[%d]: expected {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", p, k);
            cJSON *ar_obj = NULL;
            if (cJSON_IsString(ar)) {
                ar_obj = cJSON_Parse(ar->valuestring);
                if (!cJSON_IsObject(ar_obj)) {
                    cJSON_Delete(ar_obj);
                    return api_error(e, 400, "messages", "%s.tool_calls[%d].function.arguments: expected a JSON object text", p, k);
                }
            } else {
                ar_obj = ar ? cJSON_Duplicate(ar, 1) : cJSON_CreateObject();
            }
            cJSON *nc = cJSON_CreateObject(), *nf = cJSON_CreateObject();
            if (!nc || !nf || !ar_obj) {
                cJSON_Delete(nc);
                cJSON_Delete(nf);
                cJSON_Delete(ar_obj);
                return oom(e);
            }
            char idb[32];
            snprintf(idb, sizeof idb, "call_%d_%d", i, k);
            cJSON_AddStringToObject(nc, "id", id && id->valuestring[0] ? id->valuestring : idb);
            cJSON_AddStringToObject(nc, "type", "function");
            cJSON_AddStringToObject(nf, "name", nm->valuestring);
            cJSON_AddItemToObject(nf, "arguments", ar_obj);
            cJSON_AddItemToObject(nc, "function", nf);
            cJSON_AddItemToArray(calls, nc);
            k++;
        }
    }
    const cJSON *tid = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
    if (tid && !cJSON_IsNull(tid)) {
        if (!cJSON_IsString(tid)) return api_error(e, 400, "messages", "%s.tool_call_id: expected a string", p);
        cJSON_AddStringToObject(o, "tool_call_id", tid->valuestring);
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(m, "name");
    if (!cJSON_IsString(nm) && ollama) nm = cJSON_GetObjectItemCaseSensitive(m, "tool_name"); /* Ollama's tool results */
    if (cJSON_IsString(nm)) cJSON_AddStringToObject(o, "name", nm->valuestring);
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(m, "images");
    if (cJSON_IsArray(img) && cJSON_GetArraySize(img) > 0)
        return api_error(e, 400, "messages", "%s.images: not supported (the model reads text only)", p);
    return 0;
}

static int parse_messages(GenReq *r, const cJSON *v, const ReqLimits *lim, int ollama, ApiError *e)
{
    if (!cJSON_IsArray(v)) return api_error(e, 400, "messages", "messages: expected an array of messages");
    int n = cJSON_GetArraySize(v);
    if (n == 0) return api_error(e, 400, "messages", "messages: at least one message is needed");
    if (n > lim->max_messages) return api_error(e, 400, "messages", "messages: %d of them; at most %d", n, lim->max_messages);
    cJSON *out = cJSON_CreateArray();
    if (!out) return oom(e);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, v)
    {
        int rc = norm_message(out, m, i++, ollama, e);
        if (rc) {
            cJSON_Delete(out);
            return rc;
        }
    }
    r->messages = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    return r->messages ? 0 : oom(e);
}

/* The OpenAI sampling fields shared by chat and completions. */
static int parse_openai_common(GenReq *r, const cJSON *j, const ReqLimits *lim, ApiError *e)
{
    double d;
    long long ll;
    int b, rc;
    r->so.temperature = 1.0f; /* OpenAI's default */
    if ((rc = get_num(j, "temperature", 0, 2, &d, e)) > 1) return rc;
    if (rc == 1) r->so.temperature = (float)d;
    if ((rc = get_num(j, "top_p", 0, 1, &d, e)) > 1) return rc;
    if (rc == 1) r->so.top_p = d > 0 ? (float)d : 1e-6f;
    if ((rc = get_int(j, "top_k", 0, 1e9, &ll, e)) > 1) return rc;
    if (rc == 1) r->so.top_k = (int)ll;
    if ((rc = get_num(j, "min_p", 0, 1, &d, e)) > 1) return rc;
    if (rc == 1) r->so.min_p = (float)d;
    if ((rc = get_num(j, "frequency_penalty", -2, 2, &d, e)) > 1) return rc;
    if (rc == 1) r->so.frequency_penalty = (float)d;
    if ((rc = get_num(j, "presence_penalty", -2, 2, &d, e)) > 1) return rc;
    if (rc == 1) r->so.presence_penalty = (float)d;
    if ((rc = get_num(j, "repetition_penalty", 0.01, 10, &d, e)) > 1) return rc;
    if (rc == 1) r->so.repetition_penalty = (float)d;
    if ((rc = get_int(j, "seed", -9.2e18, 9.2e18, &ll, e)) > 1) return rc;
    if (rc == 1) r->so.seed = (uint64_t)ll;
    r->seed_set = rc == 1;
    const char *mt_name = cJSON_GetObjectItemCaseSensitive(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((rc = get_int(j, mt_name, 1, lim->max_tokens, &ll, e)) > 1) return rc;
    if (rc == 1) r->max_tokens = (int)ll;
    r->n = 1;
    if ((rc = get_int(j, "n", 1, SERVE_MAX_CHOICES, &ll, e)) > 1) return rc;
    if (rc == 1) r->n = (int)ll;
    if (r->n * (r->n_prompts ? r->n_prompts : 1) > SERVE_MAX_CHOICES)
        return api_error(e, 400, "n", "n: %d choices for each of %d prompts; at most %d choices per request", r->n,
                         r->n_prompts, SERVE_MAX_CHOICES);
    if ((rc = get_int(j, "best_of", 1, SERVE_MAX_CHOICES, &ll, e)) > 1) return rc;
    if (rc == 1 && ll != r->n)
        return api_error(e, 400, "best_of", "best_of: only best_of equal to n (%d) is supported", r->n);
    if ((rc = get_bool(j, "stream", &r->stream, e)) > 1) return rc;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) return api_error(e, 400, "stream_options", "stream_options: expected an object");
        if ((rc = get_bool(so, "include_usage", &r->include_usage, e)) > 1) return rc;
    }
    if ((rc = parse_stop(r, cJSON_GetObjectItemCaseSensitive(j, "stop"), "stop", e))) return rc;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(j, "logprobs");
    if (r->api == API_CHAT) {
        if ((rc = get_bool(j, "logprobs", &r->logprobs, e)) > 1) return rc;
        if ((rc = get_int(j, "top_logprobs", 0, 20, &ll, e)) > 1) return rc;
        if (rc == 1) {
            if (!r->logprobs) return api_error(e, 400, "top_logprobs", "top_logprobs needs logprobs: true");
            r->top_logprobs = (int)ll;
        }
    } else if (lp && !cJSON_IsNull(lp)) {
        if ((rc = get_int(j, "logprobs", 0, 5, &ll, e)) > 1) return rc;
        r->logprobs = 1;
        r->top_logprobs = (int)ll;
    }
    if ((rc = get_bool(j, "ignore_eos", &r->so.ignore_eos, e)) > 1) return rc; /* vLLM's and llama-server's extension */
    if (r->api == API_COMPLETION) {
        if ((rc = get_bool(j, "echo", &r->echo, e)) > 1) return rc;
        if (r->echo && r->logprobs)
            return api_error(e, 400, "echo", "echo with logprobs: the prompt's logprobs are not computed; ask for one or the other");
    } else if ((rc = get_bool(j, "echo", &b, e)) > 1) {
        return rc;
    }
    const char *user;
    if ((rc = get_str(j, "user", &user, e)) > 1) return rc;
    /* refused rather than ignored: an answer that silently lacks them would be wrong */
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(j, "logit_bias");
    if (lb && !cJSON_IsNull(lb) && !(cJSON_IsObject(lb) && !lb->child))
        return api_error(e, 400, "logit_bias", "logit_bias: not supported");
    const cJSON *fns = cJSON_GetObjectItemCaseSensitive(j, "functions");
    if (fns && !cJSON_IsNull(fns) && !(cJSON_IsArray(fns) && !fns->child))
        return api_error(e, 400, "functions", "functions (deprecated by OpenAI): send them as tools");
    return 0;
}

static int parse_model(GenReq *r, const cJSON *j, ApiError *e)
{
    const char *model = NULL;
    int rc = get_str(j, "model", &model, e);
    if (rc > 1) return rc;
    if (!model || !model[0]) return api_error(e, 400, "model", "model: required (the base model's name or an adapter's)");
    return (r->model = strdup(model)) ? 0 : oom(e);
}

/* One prompt of token ids: a non-empty array of integers in [0, 2^31). */
static int prompt_ids(PromptIn *p, const cJSON *a, int i, ApiError *e)
{
    int n = cJSON_GetArraySize(a), k = 0;
    if (n == 0) return api_error(e, 400, "prompt", "prompt[%d]: an empty list of token ids", i);
    if (!(p->ids = malloc((size_t)n * sizeof *p->ids))) return oom(e);
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 2147483647.0 || x->valuedouble != floor(x->valuedouble))
            return api_error(e, 400, "prompt", "prompt[%d][%d]: expected a token id (an integer >= 0)", i, k);
        p->ids[k++] = (int)x->valuedouble;
    }
    p->n_ids = k;
    return 0;
}

/* prompt: a string, a list of strings, a list of token ids, or a list of
 * lists of token ids (OpenAI's four forms); each becomes one PromptIn. */
static int parse_prompts(GenReq *r, const cJSON *p, ApiError *e)
{
    static const char want[] = "prompt: expected a string, a list of strings, a list of token ids or a list of lists of token ids";
    int n = 1, ids_one = 0;
    if (cJSON_IsArray(p)) {
        n = cJSON_GetArraySize(p);
        if (n == 0) return api_error(e, 400, "prompt", "prompt: an empty list");
        ids_one = cJSON_IsNumber(cJSON_GetArrayItem(p, 0));
        if (ids_one) n = 1;
    } else if (!cJSON_IsString(p)) {
        return api_error(e, 400, "prompt", "%s", want);
    }
    if (n > SERVE_MAX_CHOICES) return api_error(e, 400, "prompt", "prompt: %d prompts; at most %d per request", n, SERVE_MAX_CHOICES);
    if (!(r->prompts = calloc((size_t)n, sizeof *r->prompts))) return oom(e);
    r->n_prompts = n;
    if (cJSON_IsString(p)) return (r->prompts[0].text = strdup(p->valuestring)) ? 0 : oom(e);
    if (ids_one) return prompt_ids(&r->prompts[0], p, 0, e);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, p)
    {
        int rc = 0;
        if (cJSON_IsString(x)) rc = (r->prompts[i].text = strdup(x->valuestring)) ? 0 : oom(e);
        else if (cJSON_IsArray(x)) rc = prompt_ids(&r->prompts[i], x, i, e);
        else rc = api_error(e, 400, "prompt", "prompt[%d]: %s", i, want + 8);
        if (rc) return rc;
        i++;
    }
    return 0;
}

static int parse_openai(GenReq *r, const cJSON *j, const ReqLimits *lim, ApiError *e)
{
    int rc;
    if ((rc = parse_model(r, j, e))) return rc;
    if (r->api == API_CHAT) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "messages");
        if (!m) return api_error(e, 400, "messages", "messages: required");
        if ((rc = parse_messages(r, m, lim, 0, e))) return rc;
        if ((rc = parse_tools(r, cJSON_GetObjectItemCaseSensitive(j, "tools"), e))) return rc;
        if ((rc = parse_tool_choice(r, cJSON_GetObjectItemCaseSensitive(j, "tool_choice"), e))) return rc;
        r->parallel_tool_calls = 1;
        if ((rc = get_bool(j, "parallel_tool_calls", &r->parallel_tool_calls, e)) > 1) return rc;
        if ((rc = parse_response_format(r, cJSON_GetObjectItemCaseSensitive(j, "response_format"), e))) return rc;
    } else {
        if ((rc = parse_prompts(r, cJSON_GetObjectItemCaseSensitive(j, "prompt"), e))) return rc;
        const char *sfx = NULL;
        if ((rc = get_str(j, "suffix", &sfx, e)) > 1) return rc;
        if (sfx && sfx[0] && !(r->suffix = strdup(sfx))) return oom(e);
        if (r->suffix && r->n_prompts == 1 && !r->prompts[0].text)
            return api_error(e, 400, "suffix", "suffix: needs the prompt as text, not token ids");
        for (int i = 0; r->suffix && i < r->n_prompts; i++)
            if (!r->prompts[i].text) return api_error(e, 400, "suffix", "suffix: needs the prompts as text, not token ids");
    }
    return parse_openai_common(r, j, lim, e);
}

/* Ollama "options". */
static int parse_ollama_options(GenReq *r, const cJSON *o, const ReqLimits *lim, ApiError *e)
{
    double d;
    long long ll;
    int rc;
    r->so.temperature = 0.8f; /* Ollama's default */
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o)) return api_error(e, 400, "options", "options: expected an object");
    if ((rc = get_num(o, "temperature", 0, 100, &d, e)) > 1) return rc;
    if (rc == 1) r->so.temperature = (float)d;
    if ((rc = get_num(o, "top_p", 0, 1, &d, e)) > 1) return rc;
    if (rc == 1) r->so.top_p = d > 0 ? (float)d : 1e-6f;
    if ((rc = get_int(o, "top_k", 0, 1e9, &ll, e)) > 1) return rc;
    if (rc == 1) r->so.top_k = (int)ll;
    if ((rc = get_num(o, "min_p", 0, 1, &d, e)) > 1) return rc;
    if (rc == 1) r->so.min_p = (float)d;
    if ((rc = get_num(o, "repeat_penalty", 0.01, 10, &d, e)) > 1) return rc;
    if (rc == 1) r->so.repetition_penalty = (float)d;
    if ((rc = get_num(o, "frequency_penalty", -2, 2, &d, e)) > 1) return rc;
    if (rc == 1) r->so.frequency_penalty = (float)d;
    if ((rc = get_num(o, "presence_penalty", -2, 2, &d, e)) > 1) return rc;
    if (rc == 1) r->so.presence_penalty = (float)d;
    if ((rc = get_int(o, "seed", -9.2e18, 9.2e18, &ll, e)) > 1) return rc;
    if (rc == 1) r->so.seed = (uint64_t)ll;
    r->seed_set = rc == 1;
    if ((rc = get_int(o, "num_predict", -2, 1e9, &ll, e)) > 1) return rc;
    if (rc == 1 && ll > 0) r->max_tokens = ll > lim->max_tokens ? lim->max_tokens : (int)ll;
    if ((rc = get_int(o, "num_ctx", 1, 1e9, &ll, e)) > 1) return rc;
    if ((rc = parse_stop(r, cJSON_GetObjectItemCaseSensitive(o, "stop"), "options.stop", e))) return rc;
    return 0;
}

static int parse_ollama(GenReq *r, const cJSON *j, const ReqLimits *lim, ApiError *e)
{
    int rc;
    if ((rc = parse_model(r, j, e))) return rc;
    r->stream = 1; /* Ollama streams unless told not to */
    if ((rc = get_bool(j, "stream", &r->stream, e)) > 1) return rc;
    r->include_usage = 1;
    r->n = 1;
    if (r->api == API_OLLAMA_CHAT) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "messages");
        /* no messages: Ollama loads the model and answers at once */
        if (!m || cJSON_IsNull(m) || (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 0)) r->load_only = 1;
        else if ((rc = parse_messages(r, m, lim, 1, e))) return rc;
        if ((rc = parse_tools(r, cJSON_GetObjectItemCaseSensitive(j, "tools"), e))) return rc;
    } else {
        const char *p = NULL, *sys = NULL, *sfx = NULL;
        if ((rc = get_str(j, "prompt", &p, e)) > 1) return rc;
        if (!(r->prompt = strdup(p ? p : ""))) return oom(e);
        if ((rc = get_str(j, "suffix", &sfx, e)) > 1) return rc;
        if (sfx && sfx[0] && !(r->suffix = strdup(sfx))) return oom(e);
        if (!r->prompt[0] && !r->suffix) r->load_only = 1; /* as Ollama: an empty prompt loads the model */
        if ((rc = get_str(j, "system", &sys, e)) > 1) return rc;
        if (sys && !(r->system = strdup(sys))) return oom(e);
        if ((rc = get_bool(j, "raw", &r->raw, e)) > 1) return rc;
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(j, "context");
        if (ctx && !cJSON_IsNull(ctx) && cJSON_GetArraySize(ctx) > 0)
            return api_error(e, 400, "context", "context: not supported (send the conversation through /api/chat)");
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (cJSON_IsString(f)) {
        if (!strcmp(f->valuestring, "json")) {
            r->json_mode = 1;
            if (!(r->schema = strdup("{\"type\":\"object\"}"))) return oom(e);
        } else if (f->valuestring[0]) {
            return api_error(e, 400, "format", "format: expected \"json\" or a JSON Schema object");
        }
    } else if (cJSON_IsObject(f)) {
        r->json_mode = 1;
        if (!(r->schema = cJSON_PrintUnformatted(f))) return oom(e);
    } else if (f && !cJSON_IsNull(f)) {
        return api_error(e, 400, "format", "format: expected \"json\" or a JSON Schema object");
    }
    const cJSON *ka = cJSON_GetObjectItemCaseSensitive(j, "keep_alive");
    if (ka && !cJSON_IsNull(ka) && !cJSON_IsString(ka) && !cJSON_IsNumber(ka))
        return api_error(e, 400, "keep_alive", "keep_alive: expected a duration string or a number of seconds");
    if (cJSON_IsNumber(ka)) r->keep_alive_zero = ka->valuedouble == 0;
    /* a Go duration ("5m", "1h30m", "-1"): zero when it has no digit but 0 */
    if (cJSON_IsString(ka) && ka->valuestring[0]) {
        const char *k = ka->valuestring;
        r->keep_alive_zero = strspn(k, "0123456789.") > 0 && !strpbrk(k, "123456789");
    }
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "images");
    if (cJSON_IsArray(img) && cJSON_GetArraySize(img) > 0) return api_error(e, 400, "images", "images: not supported");
    r->parallel_tool_calls = 1;
    return parse_ollama_options(r, cJSON_GetObjectItemCaseSensitive(j, "options"), lim, e);
}

int genreq_parse(Api api, const char *body, size_t len, const ReqLimits *lim, GenReq *r, ApiError *e)
{
    memset(r, 0, sizeof *r);
    r->api = api;
    r->so.top_p = 1; /* duet_session_options_default's values, set here so the fuzz target needs no model code */
    r->so.repetition_penalty = 1;
    cJSON *j = body_json(body, len, e);
    if (!j) return e->status;
    int rc = api == API_CHAT || api == API_COMPLETION ? parse_openai(r, j, lim, e) : parse_ollama(r, j, lim, e);
    cJSON_Delete(j);
    if (rc) genreq_free(r);
    return rc;
}
