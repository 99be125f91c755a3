/* toolbox.c - duet_toolbox: built-in, command and MCP tools behind one
 * call function. Results are text for the model; every failure becomes an
 * {"error": ...} result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "duet.h"
#include "text/jschema.h"
#include "text/utf8.h"
#include "util/json.h"

enum { T_BUILTIN, T_COMMAND, T_MCP };

typedef struct Tool {
    int kind;
    char *name;
    char **argv;        /* command: the template, NULL-terminated */
    char **env;         /* command: "NAME=value" taken from our environment at load, NULL-terminated */
    char *cwd;
    int timeout_ms;     /* command: 0 = the toolbox's */
    int server;         /* MCP: index */
} Tool;

struct duet_toolbox {
    duet_toolbox_options o;
    char *sysroot;
    Tool *t;
    int n, cap;
    McpServer *srv;
    int n_srv, cap_srv;
    cJSON *specs;       /* OpenAI-form array */
    char *json;         /* its text, rebuilt after each add */
    char err[512];
};

void duet_toolbox_options_default(duet_toolbox_options *o) { memset(o, 0, sizeof *o); }

int duet_toolbox_create(duet_toolbox **out, const duet_toolbox_options *o)
{
    if (!out) return DUET_ERR_ARG;
    duet_toolbox *tb = calloc(1, sizeof *tb);
    if (!tb || !(tb->specs = cJSON_CreateArray())) {
        free(tb);
        *out = NULL;
        return DUET_ERR_NOMEM;
    }
    if (o) tb->o = *o;
    if (!tb->o.timeout_ms) tb->o.timeout_ms = 10000;
    if (!tb->o.output_cap) tb->o.output_cap = 16384;
    tb->sysroot = strdup(o && o->sysroot ? o->sysroot : "");
    tb->o.sysroot = tb->sysroot;
    *out = tb;
    return tb->sysroot ? DUET_OK : DUET_ERR_NOMEM;
}

static void free_strv(char **v)
{
    for (int i = 0; v && v[i]; i++) free(v[i]);
    free(v);
}

void duet_toolbox_free(duet_toolbox *tb)
{
    if (!tb) return;
    for (int i = 0; i < tb->n; i++) {
        free(tb->t[i].name);
        free_strv(tb->t[i].argv);
        free_strv(tb->t[i].env);
        free(tb->t[i].cwd);
    }
    free(tb->t);
    for (int i = 0; i < tb->n_srv; i++) mcp_stop(&tb->srv[i]);
    free(tb->srv);
    cJSON_Delete(tb->specs);
    free(tb->json);
    free(tb->sysroot);
    free(tb);
}

const char *duet_toolbox_errmsg(const duet_toolbox *tb) { return tb ? tb->err : "NULL toolbox"; }

static int tb_err(duet_toolbox *tb, int code, const char *msg)
{
    snprintf(tb->err, sizeof tb->err, "%.500s", msg);
    return code;
}

static int find(const duet_toolbox *tb, const char *name)
{
    for (int i = 0; i < tb->n; i++)
        if (!strcmp(tb->t[i].name, name)) return i;
    return -1;
}

/* Adds a tool entry (spec taken over on success). */
static Tool *add_tool(duet_toolbox *tb, int kind, const char *name, cJSON *spec)
{
    if (tb->n == tb->cap) {
        int nc = tb->cap ? 2 * tb->cap : 16;
        Tool *nt = realloc(tb->t, (size_t)nc * sizeof *nt);
        if (!nt) return NULL;
        tb->t = nt;
        tb->cap = nc;
    }
    Tool *t = &tb->t[tb->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return NULL;
    t->kind = kind;
    cJSON_AddItemToArray(tb->specs, spec);
    tb->n++;
    free(tb->json);
    tb->json = NULL;
    return t;
}

const char *duet_toolbox_tools_json(duet_toolbox *tb)
{
    if (!tb) return "[]";
    if (!tb->json) tb->json = cJSON_PrintUnformatted(tb->specs);
    return tb->json ? tb->json : "[]";
}

int duet_toolbox_add_builtin(duet_toolbox *tb)
{
    if (!tb) return DUET_ERR_ARG;
    cJSON *all = builtin_tools(), *t;
    if (!all) return tb_err(tb, DUET_ERR_NOMEM, "out of memory");
    while ((t = cJSON_DetachItemFromArray(all, 0))) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name"));
        if (find(tb, name) >= 0) {
            cJSON_Delete(t);
            continue;
        }
        if (!add_tool(tb, T_BUILTIN, name, t)) {
            cJSON_Delete(t);
            cJSON_Delete(all);
            return tb_err(tb, DUET_ERR_NOMEM, "out of memory");
        }
    }
    cJSON_Delete(all);
    return DUET_OK;
}

static char **strv_from(const cJSON *arr, int *count)
{
    int n = cJSON_GetArraySize(arr);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) return NULL;
    for (int i = 0; i < n; i++)
        if (!(v[i] = strdup(cJSON_GetArrayItem(arr, i)->valuestring))) {
            free_strv(v);
            return NULL;
        }
    if (count) *count = n;
    return v;
}

int duet_toolbox_add_commands(duet_toolbox *tb, const char *path)
{
    if (!tb || !path) return DUET_ERR_ARG;
    Err e;
    char msg[600];
    cJSON *root = json_parse_file(path, &e);
    if (!root) return tb_err(tb, strstr(e.msg, "cannot open") ? DUET_ERR_IO : DUET_ERR_ARG, e.msg);
    const cJSON *list = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "tools");
    int rc = DUET_OK, i = 0;
    if (!cJSON_IsArray(list)) {
        snprintf(msg, sizeof msg, "%s: expected a JSON array of tools (or {\"tools\": [...]})", path);
        rc = tb_err(tb, DUET_ERR_ARG, msg);
    }
    const cJSON *t;
    const cJSON *each = rc ? NULL : list;
    cJSON_ArrayForEach(t, each)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "name"));
        const char *desc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "description"));
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(t, "parameters");
        const cJSON *argv = cJSON_GetObjectItemCaseSensitive(t, "argv");
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(t, "env");
        const cJSON *cwd = cJSON_GetObjectItemCaseSensitive(t, "cwd");
        const cJSON *tmo = cJSON_GetObjectItemCaseSensitive(t, "timeout_ms");
        const char *bad = NULL;
        if (!name || !name[0]) bad = "name: expected a non-empty string";
        else if (find(tb, name) >= 0) bad = "name: a tool of that name is already loaded";
        else if (!cJSON_IsArray(argv) || cJSON_GetArraySize(argv) == 0) bad = "argv: expected a non-empty array of strings";
        else if (env && !cJSON_IsArray(env)) bad = "env: expected an array of variable names";
        else if (cwd && !cJSON_IsString(cwd)) bad = "cwd: expected a string";
        else if (tmo && (!cJSON_IsNumber(tmo) || tmo->valuedouble < 1 || tmo->valuedouble > 3600000))
            bad = "timeout_ms: expected 1..3600000";
        const cJSON *x;
        if (!bad) {
            cJSON_ArrayForEach(x, argv) if (!cJSON_IsString(x)) bad = "argv: expected strings only";
            cJSON_ArrayForEach(x, env) if (!cJSON_IsString(x)) bad = "env: expected names only";
        }
        if (bad) {
            snprintf(msg, sizeof msg, "%s: tools[%d]: %s", path, i, bad);
            rc = tb_err(tb, DUET_ERR_ARG, msg);
            break;
        }
        /* the OpenAI entry, its schema checked now */
        cJSON *spec = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(spec, "type", "function");
        cJSON_AddStringToObject(fn, "name", name);
        cJSON_AddStringToObject(fn, "description", desc ? desc : "");
        cJSON_AddItemToObject(fn, "parameters",
                              params ? cJSON_Duplicate(params, 1) : cJSON_Parse("{\"type\":\"object\",\"properties\":{}}"));
        cJSON_AddItemToObject(spec, "function", fn);
        cJSON *one = cJSON_CreateArray();
        cJSON_AddItemToArray(one, cJSON_Duplicate(spec, 1));
        JsSchema chk;
        int bad_schema = jschema_compile_tools(&chk, one, NULL, &e);
        cJSON_Delete(one);
        if (bad_schema) {
            cJSON_Delete(spec);
            snprintf(msg, sizeof msg, "%s: tools[%d]: %s", path, i, e.msg);
            rc = tb_err(tb, DUET_ERR_ARG, msg);
            break;
        }
        jschema_free(&chk);
        Tool *tool = add_tool(tb, T_COMMAND, name, spec);
        if (!tool) {
            cJSON_Delete(spec);
            rc = tb_err(tb, DUET_ERR_NOMEM, "out of memory");
            break;
        }
        int ne = 0;
        tool->argv = strv_from(argv, NULL);
        tool->env = calloc((size_t)cJSON_GetArraySize(env) + 1, sizeof *tool->env);
        cJSON_ArrayForEach(x, env)
        {
            const char *v = getenv(x->valuestring);
            if (!v || !tool->env) continue;
            size_t l = strlen(x->valuestring) + strlen(v) + 2;
            if ((tool->env[ne] = malloc(l))) snprintf(tool->env[ne++], l, "%s=%s", x->valuestring, v);
        }
        tool->cwd = cwd ? strdup(cwd->valuestring) : NULL;
        tool->timeout_ms = tmo ? (int)tmo->valuedouble : 0;
        if (!tool->argv || !tool->env) {
            rc = tb_err(tb, DUET_ERR_NOMEM, "out of memory");
            break;
        }
        i++;
    }
    cJSON_Delete(root);
    return rc;
}

int duet_toolbox_add_mcp(duet_toolbox *tb, const char *const *argv)
{
    if (!tb || !argv || !argv[0]) return DUET_ERR_ARG;
    if (tb->n_srv == tb->cap_srv) {
        int nc = tb->cap_srv ? 2 * tb->cap_srv : 4;
        McpServer *ns = realloc(tb->srv, (size_t)nc * sizeof *ns);
        if (!ns) return tb_err(tb, DUET_ERR_NOMEM, "out of memory");
        tb->srv = ns;
        tb->cap_srv = nc;
    }
    Err e;
    McpServer *s = &tb->srv[tb->n_srv];
    if (mcp_start(s, argv, tb->o.timeout_ms, &e)) return tb_err(tb, DUET_ERR_IO, e.msg);
    cJSON *list = mcp_list_tools(s, tb->o.timeout_ms, &e);
    if (!list) {
        mcp_stop(s);
        return tb_err(tb, DUET_ERR_IO, e.msg);
    }
    int idx = tb->n_srv++;
    cJSON *t;
    while ((t = cJSON_DetachItemFromArray(list, 0))) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name"));
        Tool *tool = find(tb, name) >= 0 ? NULL : add_tool(tb, T_MCP, name, t);
        if (!tool) {
            cJSON_Delete(t);
            continue;
        }
        tool->server = idx;
    }
    cJSON_Delete(list);
    return DUET_OK;
}

/* {"error": msg, ...extra} as text. */
static char *error_result(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t;
}

/* The argv of a command call: each element with its {param} placeholders
 * replaced by the argument's text (strings as they are, other values as
 * JSON); an element naming an absent argument is left out. NULL when out of
 * memory. */
static char **command_argv(const Tool *t, const cJSON *args)
{
    int n = 0;
    while (t->argv[n]) n++;
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) return NULL;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *src = t->argv[i];
        size_t cap = strlen(src) + 1, len = 0;
        char *out = malloc(cap);
        int drop = 0;
        while (out && *src) {
            const char *close = src[0] == '{' ? strchr(src, '}') : NULL;
            const char *piece = src;
            size_t pl = 1;
            char *val = NULL;
            if (close && close > src + 1 && i > 0) {
                char key[256];
                snprintf(key, sizeof key, "%.*s", (int)(close - src - 1), src + 1);
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(args, key);
                if (!a || cJSON_IsNull(a)) drop = 1;
                else if (cJSON_IsString(a)) piece = a->valuestring;
                else piece = val = cJSON_PrintUnformatted(a);
                pl = piece ? strlen(piece) : 0;
                src = close + 1;
            } else {
                src++;
            }
            if (len + pl + 1 > cap) {
                cap = (len + pl + 1) * 2;
                char *no = realloc(out, cap);
                if (!no) {
                    free(out);
                    out = NULL;
                    free(val);
                    break;
                }
                out = no;
            }
            if (piece) memcpy(out + len, piece, pl);
            len += pl;
            free(val);
        }
        if (!out) {
            free_strv(v);
            return NULL;
        }
        out[len] = 0;
        if (drop) free(out);
        else v[k++] = out;
    }
    return v;
}

static char *run_command(duet_toolbox *tb, const Tool *t, const char *args_json)
{
    cJSON *args = cJSON_Parse(args_json ? args_json : "{}");
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        return error_result("arguments are not a JSON object");
    }
    char **argv = command_argv(t, args);
    cJSON_Delete(args);
    if (!argv) return NULL;
    Err e;
    char *path = proc_find(argv[0], &e);
    if (!path) {
        free_strv(argv);
        return error_result(e.msg);
    }
    ProcResult r;
    int timeout = t->timeout_ms ? t->timeout_ms : tb->o.timeout_ms;
    int rc = proc_run(path, argv, t->env, t->cwd, timeout, tb->o.output_cap, &r, &e);
    free(path);
    free_strv(argv);
    if (rc) return error_result(e.msg);
    cJSON *o = cJSON_CreateObject();
    char msg[128];
    if (r.timed_out) {
        snprintf(msg, sizeof msg, "timed out after %d ms (killed)", timeout);
        cJSON_AddStringToObject(o, "error", msg);
    } else if (r.status != 0) {
        if (r.status > 0) snprintf(msg, sizeof msg, "exited with status %d", r.status);
        else snprintf(msg, sizeof msg, "killed by signal %d", -r.status);
        cJSON_AddStringToObject(o, "error", msg);
    }
    if (!r.timed_out) cJSON_AddNumberToObject(o, "exit_code", r.status);
    /* output as text; invalid UTF-8 would break the prompt: cJSON keeps bytes, the tokenizer checks */
    for (size_t i = 0; i < r.len; i++)
        if ((unsigned char)r.out[i] < 0x20 && r.out[i] != '\n' && r.out[i] != '\t') r.out[i] = ' ';
    cJSON_AddStringToObject(o, "output", r.out);
    if (r.truncated) {
        snprintf(msg, sizeof msg, "output cut at %zu bytes (the process was stopped)", tb->o.output_cap);
        cJSON_AddStringToObject(o, "truncated", msg);
    }
    proc_result_free(&r);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

char *tool_text_fix(char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int k = utf8_check(u + i, n - i);
        if (k <= 0) break;
        i += (size_t)k;
    }
    if (i == n) return s;
    unsigned char *out = malloc(3 * n + 1);
    if (out) out[utf8_lossy(u, n, out)] = 0;
    free(s);
    return (char *)out;
}

int duet_toolbox_call(void *toolbox, const char *name, const char *arguments_json, char **result)
{
    duet_toolbox *tb = toolbox;
    if (!result) return DUET_ERR_ARG;
    *result = NULL;
    if (!tb || !name) return DUET_ERR_ARG;
    int i = find(tb, name);
    char *out = NULL;
    int is_error = 1;
    if (i < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "no tool named %.200s", name);
        out = error_result(msg);
    } else if (tb->t[i].kind == T_BUILTIN) {
        cJSON *args = cJSON_Parse(arguments_json ? arguments_json : "{}");
        int unknown;
        out = builtin_call(tb->sysroot, name, args, &unknown);
        cJSON_Delete(args);
        is_error = out && !strncmp(out, "{\"error\"", 8);
    } else if (tb->t[i].kind == T_COMMAND) {
        out = run_command(tb, &tb->t[i], arguments_json);
        is_error = out && !strncmp(out, "{\"error\"", 8);
    } else {
        Err e;
        int flagged = 0;
        McpServer *s = &tb->srv[tb->t[i].server];
        out = mcp_call(s, name, arguments_json, tb->o.timeout_ms, tb->o.output_cap, &flagged, &e);
        if (!out) out = error_result(e.msg);
        else if (flagged) {
            char *wrapped = error_result(out);
            free(out);
            out = wrapped;
        }
        is_error = flagged || !out || !strncmp(out, "{\"error\"", 8);
    }
    out = tool_text_fix(out); /* a tool's bytes are not ours to trust: the prompt takes UTF-8 only */
    if (!out) return tb_err(tb, DUET_ERR_NOMEM, "out of memory");
    *result = out;
    return is_error ? 1 : 0;
}
