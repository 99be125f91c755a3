/* serve_routes.c - the endpoints that do not generate: /v1/models,
 * /tokenize, /detokenize, /v1/load_lora_adapter, /v1/unload_lora_adapter,
 * /metrics, and Ollama's /api/tags, /api/show, /api/ps, /api/version. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "serve/serve.h"

static int reply(Resp *out, int status, char *body)
{
    out->status = body ? status : 500;
    out->ctype = "application/json";
    out->body = body ? body : strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}");
    return 1;
}

static int reply_json(Resp *out, int status, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return reply(out, status, s);
}

static int reply_error(Resp *out, Api api, ApiError *e) { return reply(out, e->status, resp_error(api, e)); }

/* The served model names: [0] the base, then the live adapters (malloc'd
 * copies, taken under the adapter lock). Returns the count or -1. */
static int model_names(Server *srv, char ***names)
{
    pthread_rwlock_rdlock(&srv->ad_lock);
    int n = duet_model_n_adapters(srv->m), k = 0;
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (v) {
        v[k++] = strdup(srv->base_name);
        for (int i = 0; i < n; i++) {
            const char *a = duet_model_adapter_name(srv->m, i);
            if (a) v[k++] = strdup(a);
        }
    }
    pthread_rwlock_unlock(&srv->ad_lock);
    *names = v;
    return v ? k : -1;
}

static void free_names(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static cJSON *oai_model(Server *srv, const char *name, int is_base)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", name);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)srv->started);
    cJSON_AddStringToObject(o, "owned_by", "duet");
    cJSON_AddStringToObject(o, "root", srv->base_name);
    if (is_base) cJSON_AddNullToObject(o, "parent");
    else cJSON_AddStringToObject(o, "parent", srv->base_name);
    cJSON_AddNumberToObject(o, "max_model_len", srv->o.ctx);
    return o;
}

static int models(Server *srv, const char *one, Resp *out)
{
    char **names;
    int n = model_names(srv, &names);
    if (n < 0) return reply(out, 500, NULL);
    cJSON *res = NULL;
    if (one) {
        for (int i = 0; i < n && !res; i++)
            if (names[i] && !strcmp(names[i], one)) res = oai_model(srv, names[i], i == 0);
    } else {
        res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "object", "list");
        cJSON *d = cJSON_AddArrayToObject(res, "data");
        for (int i = 0; i < n; i++)
            if (names[i]) cJSON_AddItemToArray(d, oai_model(srv, names[i], i == 0));
    }
    free_names(names, n);
    if (!res) {
        ApiError e;
        api_error(&e, 404, "model", "The model `%s` does not exist", one);
        e.code = "model_not_found";
        return reply_error(out, API_CHAT, &e);
    }
    return reply_json(out, 200, res);
}

static cJSON *ollama_model(Server *srv, const char *name, int is_base, int ps)
{
    char ts[40];
    time_t t = (time_t)srv->started;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON *o = cJSON_CreateObject();
    char full[160];
    snprintf(full, sizeof full, "%s", name);
    cJSON_AddStringToObject(o, "name", full);
    cJSON_AddStringToObject(o, "model", full);
    cJSON_AddStringToObject(o, ps ? "expires_at" : "modified_at", ps ? "2999-01-01T00:00:00Z" : ts);
    cJSON_AddNumberToObject(o, "size", 0);
    cJSON_AddStringToObject(o, "digest", "");
    cJSON *d = cJSON_AddObjectToObject(o, "details");
    cJSON_AddStringToObject(d, "parent_model", is_base ? "" : srv->base_name);
    cJSON_AddStringToObject(d, "format", "duet");
    cJSON_AddStringToObject(d, "family", "qwen2");
    cJSON *f = cJSON_AddArrayToObject(d, "families");
    cJSON_AddItemToArray(f, cJSON_CreateString("qwen2"));
    cJSON_AddStringToObject(d, "parameter_size", "");
    cJSON_AddStringToObject(d, "quantization_level", "");
    if (ps) cJSON_AddNumberToObject(o, "size_vram", 0);
    return o;
}

static int tags(Server *srv, int ps, Resp *out)
{
    char **names;
    int n = model_names(srv, &names);
    if (n < 0) return reply(out, 500, NULL);
    cJSON *res = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(res, "models");
    for (int i = 0; i < n; i++)
        if (names[i]) cJSON_AddItemToArray(a, ollama_model(srv, names[i], i == 0, ps));
    free_names(names, n);
    return reply_json(out, 200, res);
}

static int show(Server *srv, const char *body, size_t len, Resp *out)
{
    ApiError e;
    cJSON *j = body_json(body, len, &e);
    if (!j) return reply_error(out, API_OLLAMA_CHAT, &e);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(m)) {
        cJSON_Delete(j);
        api_error(&e, 400, "model", "model: expected a string");
        return reply_error(out, API_OLLAMA_CHAT, &e);
    }
    char *ad = NULL;
    int st = server_resolve_model(srv, m->valuestring, 1, &ad, &e);
    cJSON_Delete(j);
    if (st) return reply_error(out, API_OLLAMA_CHAT, &e);
    cJSON *o = ollama_model(srv, ad ? ad : srv->base_name, !ad, 0);
    free(ad);
    cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
    cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
    cJSON_AddItemToArray(caps, cJSON_CreateString("tools")); /* every template: native, or duet's Hermes-style fallback */
    if (srv->fim[0]) cJSON_AddItemToArray(caps, cJSON_CreateString("insert")); /* suffix: fill in the middle */
    cJSON_AddStringToObject(o, "modelfile", "");
    cJSON_AddStringToObject(o, "parameters", "");
    cJSON_AddStringToObject(o, "template", "");
    cJSON *mi = cJSON_AddObjectToObject(o, "model_info");
    cJSON_AddNumberToObject(mi, "general.context_length", srv->o.ctx);
    cJSON_AddNumberToObject(mi, "general.vocab_size", duet_model_vocab(srv->m));
    return reply_json(out, 200, o);
}

static int tokenize(Server *srv, const char *body, size_t len, Resp *out)
{
    ApiError e;
    cJSON *j = body_json(body, len, &e);
    if (!j) return reply_error(out, API_CHAT, &e);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (!c) c = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    char *text = NULL;
    int rc;
    if (cJSON_IsArray(msgs)) {
        char *mj = cJSON_PrintUnformatted(msgs);
        rc = mj ? duet_apply_template(srv->m, mj, 1, &text) : DUET_ERR_NOMEM;
        free(mj);
        if (rc) {
            api_error(&e, 400, "messages", "%s", duet_model_errmsg(srv->m));
            cJSON_Delete(j);
            return reply_error(out, API_CHAT, &e);
        }
    } else if (cJSON_IsString(c)) {
        text = strdup(c->valuestring);
    } else {
        cJSON_Delete(j);
        api_error(&e, 400, "content", "content (or prompt): expected a string, or messages: an array");
        return reply_error(out, API_CHAT, &e);
    }
    cJSON_Delete(j);
    int *ids = NULL, n = 0;
    rc = text ? duet_tokenize(srv->m, text, strlen(text), &ids, &n) : DUET_ERR_NOMEM;
    free(text);
    if (rc) {
        api_error(&e, 400, "content", "%s", duet_model_errmsg(srv->m));
        return reply_error(out, API_CHAT, &e);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "tokens", cJSON_CreateIntArray(ids, n));
    cJSON_AddNumberToObject(o, "count", n);
    cJSON_AddNumberToObject(o, "max_model_len", srv->o.ctx);
    free(ids);
    return reply_json(out, 200, o);
}

static int detokenize(Server *srv, const char *body, size_t len, Resp *out)
{
    ApiError e;
    cJSON *j = body_json(body, len, &e);
    if (!j) return reply_error(out, API_CHAT, &e);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tokens");
    int n = cJSON_GetArraySize(t), V = duet_model_vocab(srv->m);
    int *ids = cJSON_IsArray(t) ? malloc(((size_t)n + 1) * sizeof *ids) : NULL;
    int k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, t)
    {
        if (!ids || !cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= V || x->valuedouble != (int)x->valuedouble)
            break;
        ids[k++] = (int)x->valuedouble;
    }
    cJSON_Delete(j);
    if (!ids || k != n) {
        free(ids);
        api_error(&e, 400, "tokens", "tokens: expected an array of token ids in [0, %d)", V);
        return reply_error(out, API_CHAT, &e);
    }
    char *text = NULL;
    int rc = duet_detokenize(srv->m, ids, n, &text);
    free(ids);
    if (rc) {
        api_error(&e, 400, "tokens", "%s", duet_model_errmsg(srv->m));
        return reply_error(out, API_CHAT, &e);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", text);
    cJSON_AddStringToObject(o, "prompt", text);
    free(text);
    return reply_json(out, 200, o);
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._-", *s)))
            return 0;
    return 1;
}

static int text_reply(Resp *out, const char *msg)
{
    out->status = 200;
    out->ctype = "text/plain; charset=utf-8";
    out->body = strdup(msg);
    return 1;
}

static int load_adapter(Server *srv, const char *body, size_t len, int unload, Resp *out)
{
    ApiError e;
    cJSON *j = body_json(body, len, &e);
    if (!j) return reply_error(out, API_CHAT, &e);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "lora_name");
    const cJSON *pa = cJSON_GetObjectItemCaseSensitive(j, "lora_path");
    if (!cJSON_IsString(nm) || !name_ok(nm->valuestring) || !strcmp(nm->valuestring, srv->base_name)) {
        cJSON_Delete(j);
        api_error(&e, 400, "lora_name", "lora_name: expected 1-64 characters of [A-Za-z0-9._-], not the base model's name");
        return reply_error(out, API_CHAT, &e);
    }
    char name[80], msg[600];
    snprintf(name, sizeof name, "%s", nm->valuestring);
    if (unload) {
        cJSON_Delete(j);
        pthread_rwlock_wrlock(&srv->ad_lock);
        int rc = duet_model_unload_adapter(srv->m, name);
        if (!rc) spool_forget_adapter(&srv->pool, name);
        pthread_rwlock_unlock(&srv->ad_lock);
        if (rc) {
            api_error(&e, 404, "lora_name", "The lora adapter '%s' cannot be found.", name);
            return reply_error(out, API_CHAT, &e);
        }
        snprintf(msg, sizeof msg, "Success: LoRA adapter '%s' removed successfully.", name);
        return text_reply(out, msg);
    }
    if (!srv->lora_root[0]) {
        cJSON_Delete(j);
        api_error(&e, 403, "lora_path", "loading adapters is off: start the server with --lora-dir DIR");
        return reply_error(out, API_CHAT, &e);
    }
    if (!cJSON_IsString(pa) || !pa->valuestring[0]) {
        cJSON_Delete(j);
        api_error(&e, 400, "lora_path", "lora_path: expected a folder under the server's --lora-dir");
        return reply_error(out, API_CHAT, &e);
    }
    char want[PATH_MAX + 8], real[PATH_MAX];
    if (pa->valuestring[0] == '/') snprintf(want, sizeof want, "%s", pa->valuestring);
    else snprintf(want, sizeof want, "%s/%s", srv->lora_root, pa->valuestring);
    cJSON_Delete(j);
    size_t rl = strlen(srv->lora_root);
    struct stat st;
    if (!realpath(want, real) || strncmp(real, srv->lora_root, rl) || (real[rl] != '/' && real[rl] != 0) ||
        stat(real, &st) || !S_ISDIR(st.st_mode)) {
        api_error(&e, 400, "lora_path", "lora_path: not a folder under the server's --lora-dir");
        return reply_error(out, API_CHAT, &e);
    }
    pthread_rwlock_wrlock(&srv->ad_lock);
    int rc = duet_model_load_adapter(srv->m, name, real);
    if (rc) snprintf(msg, sizeof msg, "%s", duet_model_errmsg(srv->m));
    pthread_rwlock_unlock(&srv->ad_lock);
    if (rc) {
        if (rc == DUET_ERR_ARG) api_error(&e, 400, "lora_name", "The lora adapter '%s' has already been loaded.", name);
        else api_error(&e, rc == DUET_ERR_BUDGET ? 409 : 400, "lora_path", "%s", msg);
        return reply_error(out, API_CHAT, &e);
    }
    snprintf(msg, sizeof msg, "Success: LoRA adapter '%s' added successfully.", name);
    return text_reply(out, msg);
}

int route_other(Server *srv, const char *method, const char *url, const char *body, size_t len, Resp *out)
{
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    ApiError e;
    struct {
        const char *path;
        int post;
    } const table[] = {{"/v1/models", 0},  {"/metrics", 0},  {"/api/tags", 0},  {"/api/ps", 0},
                       {"/api/version", 0}, {"/tokenize", 1}, {"/detokenize", 1}, {"/v1/load_lora_adapter", 1},
                       {"/v1/unload_lora_adapter", 1}, {"/api/show", 1}};
    if (!strncmp(url, "/v1/models/", 11) && url[11]) {
        if (!get) return api_error(&e, 405, "", "%s: use GET", url), reply_error(out, API_CHAT, &e);
        return models(srv, url + 11, out);
    }
    int k = -1;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(url, table[i].path)) k = (int)i;
    if (k < 0) return 0;
    if (table[k].post ? !post : !get) {
        api_error(&e, 405, "", "%s: use %s", url, table[k].post ? "POST" : "GET");
        return reply_error(out, !strncmp(url, "/api/", 5) ? API_OLLAMA_CHAT : API_CHAT, &e);
    }
    switch (k) {
    case 0: return models(srv, NULL, out);
    case 1: {
        Buf b = {0};
        int q, a, idle;
        spool_counts(&srv->pool, &q, &a, &idle);
        metrics_text(&srv->met, &b, q, a, idle, duet_model_kv_in_use(srv->m), srv->o.kv_budget);
        out->status = b.p ? 200 : 500;
        out->ctype = "text/plain; version=0.0.4";
        out->body = b.p ? b.p : strdup("");
        return 1;
    }
    case 2: return tags(srv, 0, out);
    case 3: return tags(srv, 1, out);
    case 4: return reply(out, 200, strdup("{\"version\":\"0.9.0\"}"));
    case 5: return tokenize(srv, body, len, out);
    case 6: return detokenize(srv, body, len, out);
    case 7: return load_adapter(srv, body, len, 0, out);
    case 8: return load_adapter(srv, body, len, 1, out);
    default: return show(srv, body, len, out);
    }
}
