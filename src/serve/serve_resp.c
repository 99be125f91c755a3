/* serve_resp.c - response bodies and stream chunks: OpenAI chat.completion /
 * text_completion objects and their SSE chunks, Ollama's chat / generate
 * objects and NDJSON lines, and both APIs' error forms. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"

int buf_add(Buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->len + n + 1) * 2;
        char *q = realloc(b->p, nc);
        if (!q) return -1;
        b->p = q;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int buf_printf(Buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof tmp) return buf_add(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = buf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

void genresult_free(GenResult *g)
{
    free(g->text);
    for (int i = 0; i < g->n_calls; i++) {
        free(g->calls[i].id);
        free(g->calls[i].name);
        free(g->calls[i].arguments);
    }
    free(g->calls);
    cJSON_Delete(g->logprobs);
    memset(g, 0, sizeof *g);
}

static int is_ollama(Api a) { return a == API_OLLAMA_CHAT || a == API_OLLAMA_GENERATE; }

static void iso_now(char *out, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%.20s.%06dZ", b, (int)(ts.tv_nsec / 1000));
}

static cJSON *usage_json(const GenResult *g)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", g->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", g->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", g->n_prompt + g->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", g->n_cached);
    return u;
}

/* OpenAI tool_calls array; with index keys for stream deltas. */
static cJSON *calls_json(const GenResult *g, int with_index)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < g->n_calls; i++) {
        cJSON *c = cJSON_CreateObject();
        if (with_index) cJSON_AddNumberToObject(c, "index", i);
        cJSON_AddStringToObject(c, "id", g->calls[i].id);
        cJSON_AddStringToObject(c, "type", "function");
        cJSON *f = cJSON_AddObjectToObject(c, "function");
        cJSON_AddStringToObject(f, "name", g->calls[i].name);
        cJSON_AddStringToObject(f, "arguments", g->calls[i].arguments);
        cJSON_AddItemToArray(a, c);
    }
    return a;
}

/* Ollama's form: arguments as an object. */
static cJSON *calls_json_ollama(const GenResult *g)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < g->n_calls; i++) {
        cJSON *c = cJSON_CreateObject(), *f = cJSON_AddObjectToObject(c, "function");
        cJSON_AddStringToObject(f, "name", g->calls[i].name);
        cJSON *args = cJSON_Parse(g->calls[i].arguments);
        cJSON_AddItemToObject(f, "arguments", args ? args : cJSON_CreateObject());
        cJSON_AddItemToArray(a, c);
    }
    return a;
}

/* The completions API's logprobs object from the chat-form entries. */
static cJSON *completion_logprobs(const cJSON *entries)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens"), *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs"), *offs = cJSON_AddArrayToObject(o, "text_offset");
    int off = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "token");
        cJSON_AddItemToArray(tokens, cJSON_CreateString(t->valuestring));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(cJSON_GetObjectItemCaseSensitive(e, "logprob")->valuedouble));
        cJSON *top = cJSON_CreateObject();
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(e, "top_logprobs"))
        cJSON_AddNumberToObject(top, cJSON_GetObjectItemCaseSensitive(x, "token")->valuestring,
                                cJSON_GetObjectItemCaseSensitive(x, "logprob")->valuedouble);
        cJSON_AddItemToArray(tops, top);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber(off));
        off += (int)strlen(t->valuestring);
    }
    return o;
}

static cJSON *logprobs_field(Api api, const cJSON *entries)
{
    if (!entries) return cJSON_CreateNull();
    if (api == API_COMPLETION) return completion_logprobs(entries);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "content", cJSON_Duplicate(entries, 1));
    cJSON_AddItemToObject(o, "refusal", cJSON_CreateNull());
    return o;
}

static char *print_free(cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

static void ollama_timings(cJSON *o, const GenResult *g)
{
    cJSON_AddNumberToObject(o, "total_duration", (double)(long long)(g->total_s * 1e9));
    cJSON_AddNumberToObject(o, "load_duration", 0);
    cJSON_AddNumberToObject(o, "prompt_eval_count", g->n_prompt);
    cJSON_AddNumberToObject(o, "prompt_eval_duration", (double)(long long)(g->prompt_s * 1e9));
    cJSON_AddNumberToObject(o, "eval_count", g->n_gen);
    cJSON_AddNumberToObject(o, "eval_duration", (double)(long long)(g->gen_s * 1e9));
}

static cJSON *ollama_obj(const GenReq *r, const char *model, const char *text, const GenResult *g, int done)
{
    char ts[48];
    iso_now(ts, sizeof ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "created_at", ts);
    if (r->api == API_OLLAMA_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
        if (g && g->n_calls) cJSON_AddItemToObject(m, "tool_calls", calls_json_ollama(g));
    } else {
        cJSON_AddStringToObject(o, "response", text);
    }
    cJSON_AddBoolToObject(o, "done", done);
    if (done && g) {
        cJSON_AddStringToObject(o, "done_reason", !strcmp(g->finish, "length") ? "length" : "stop");
        ollama_timings(o, g);
    }
    return o;
}

/* One choice object of a full OpenAI response. */
static cJSON *oai_choice(const GenReq *r, const GenResult *g, int index)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", index);
    if (r->api == API_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        if (g->n_calls && (!g->text || !g->text[0])) cJSON_AddNullToObject(m, "content");
        else cJSON_AddStringToObject(m, "content", g->text ? g->text : "");
        if (g->n_calls) cJSON_AddItemToObject(m, "tool_calls", calls_json(g, 0));
        cJSON_AddNullToObject(m, "refusal");
    } else {
        cJSON_AddStringToObject(c, "text", g->text ? g->text : "");
    }
    cJSON_AddItemToObject(c, "logprobs", logprobs_field(r->api, r->logprobs ? g->logprobs : NULL));
    cJSON_AddStringToObject(c, "finish_reason", g->finish ? g->finish : "stop");
    return c;
}

char *resp_body(const GenReq *r, const GenResult *g, int n, const GenResult *total, const char *id, long created,
                const char *model)
{
    if (is_ollama(r->api)) return print_free(ollama_obj(r, model, g[0].text ? g[0].text : "", &g[0], 1));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", r->api == API_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "system_fingerprint", "duet");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(ch, oai_choice(r, &g[i], i));
    cJSON_AddItemToObject(o, "usage", usage_json(total));
    return print_free(o);
}

char *resp_ollama_load(const GenReq *r, const char *model)
{
    char ts[48];
    iso_now(ts, sizeof ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "created_at", ts);
    if (r->api == API_OLLAMA_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", "");
    } else {
        cJSON_AddStringToObject(o, "response", "");
    }
    cJSON_AddStringToObject(o, "done_reason", r->keep_alive_zero ? "unload" : "load");
    cJSON_AddBoolToObject(o, "done", 1);
    return print_free(o);
}

/* An OpenAI chunk object with one choice; *choice receives it. */
static cJSON *oai_chunk(const GenReq *r, const char *id, long created, const char *model, int index, cJSON **choice)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", r->api == API_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "system_fingerprint", "duet");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices");
    *choice = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, *choice);
    cJSON_AddNumberToObject(*choice, "index", index);
    return o;
}

static char *sse(cJSON *o)
{
    char *s = print_free(o);
    if (!s) return NULL;
    Buf b = {0};
    if (buf_printf(&b, "data: %s\n\n", s)) {
        free(s);
        free(b.p);
        return NULL;
    }
    free(s);
    return b.p;
}

static char *ndjson(cJSON *o)
{
    char *s = print_free(o);
    if (!s) return NULL;
    Buf b = {0};
    if (buf_printf(&b, "%s\n", s)) b.p = (free(b.p), NULL);
    free(s);
    return b.p;
}

char *resp_chunk(const GenReq *r, const char *id, long created, const char *model, int index, const char *piece,
                 size_t n, int first, const cJSON *lp)
{
    char *text = malloc(n + 1);
    if (!text) return NULL;
    memcpy(text, piece, n);
    text[n] = 0;
    char *out;
    if (is_ollama(r->api)) {
        out = ndjson(ollama_obj(r, model, text, NULL, 0));
    } else {
        cJSON *c, *o = oai_chunk(r, id, created, model, index, &c);
        if (r->api == API_CHAT) {
            cJSON *d = cJSON_AddObjectToObject(c, "delta");
            if (first) cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", text);
        } else {
            cJSON_AddStringToObject(c, "text", text);
        }
        cJSON_AddItemToObject(c, "logprobs", logprobs_field(r->api, lp));
        cJSON_AddNullToObject(c, "finish_reason");
        out = sse(o);
    }
    free(text);
    return out;
}

/* Appends the SSE event of o (freed) to b; 1 on failure. */
static int add_sse(Buf *b, cJSON *o)
{
    char *s = sse(o);
    int bad = !s || buf_add(b, s, strlen(s));
    free(s);
    return bad;
}

char *resp_choice_end(const GenReq *r, const GenResult *g, int index, int first, const char *id, long created,
                      const char *model)
{
    if (is_ollama(r->api)) return ndjson(ollama_obj(r, model, "", g, 1));
    Buf b = {0};
    int bad = 0;
    cJSON *c, *o;
    if (g->n_calls && r->api == API_CHAT) { /* the calls as deltas keyed by index */
        o = oai_chunk(r, id, created, model, index, &c);
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        first = 0;
        cJSON_AddItemToObject(d, "tool_calls", calls_json(g, 1));
        cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddNullToObject(c, "finish_reason");
        bad |= add_sse(&b, o);
    }
    o = oai_chunk(r, id, created, model, index, &c);
    if (r->api == API_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
    } else {
        cJSON_AddStringToObject(c, "text", "");
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", g->finish ? g->finish : "stop");
    bad |= add_sse(&b, o);
    if (bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *resp_stream_end(const GenReq *r, const GenResult *total, const char *id, long created, const char *model)
{
    if (is_ollama(r->api)) return strdup("");
    Buf b = {0};
    int bad = 0;
    if (r->include_usage) {
        cJSON *c, *o = oai_chunk(r, id, created, model, 0, &c);
        cJSON_DeleteItemFromArray(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
        cJSON_AddItemToObject(o, "usage", usage_json(total));
        bad |= add_sse(&b, o);
    }
    bad |= buf_add(&b, "data: [DONE]\n\n", 14);
    if (bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *resp_error(Api api, const ApiError *e)
{
    cJSON *o = cJSON_CreateObject();
    if (is_ollama(api)) {
        cJSON_AddStringToObject(o, "error", e->msg);
    } else {
        cJSON *x = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(x, "message", e->msg);
        cJSON_AddStringToObject(x, "type", e->type ? e->type : "invalid_request_error");
        if (e->param[0]) cJSON_AddStringToObject(x, "param", e->param);
        else cJSON_AddNullToObject(x, "param");
        if (e->code) cJSON_AddStringToObject(x, "code", e->code);
        else cJSON_AddNullToObject(x, "code");
    }
    return print_free(o);
}

char *resp_stream_error(Api api, const ApiError *e)
{
    char *s = resp_error(api, e);
    if (!s || is_ollama(api)) {
        Buf b = {0};
        if (s && buf_printf(&b, "%s\n", s)) b.p = (free(b.p), NULL);
        free(s);
        return b.p;
    }
    Buf b = {0};
    if (buf_printf(&b, "data: %s\n\n", s)) b.p = (free(b.p), NULL);
    free(s);
    return b.p;
}
