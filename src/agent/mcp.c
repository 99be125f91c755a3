/* mcp.c - a Model Context Protocol client over stdio: newline-delimited
 * JSON-RPC 2.0 to a child process (initialize, tools/list, tools/call).
 * The child's stdin and stdout are one socket, so writing to a server that
 * died is an error (MSG_NOSIGNAL), not a SIGPIPE. Anything that is not a
 * JSON-RPC message, a server that exits or stays silent past the timeout
 * ends in an error message, never a hang. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "text/jschema.h"

#define MCP_LINE_MAX (8u << 20) /* a message longer than this is refused */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int send_msg(McpServer *s, cJSON *msg, Err *e)
{
    char *t = cJSON_PrintUnformatted(msg);
    if (!t) return err_set(e, "out of memory");
    size_t n = strlen(t), off = 0;
    t[n] = '\n';
    while (off < n + 1) {
        ssize_t w = send(s->fd, t + off, n + 1 - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            free(t);
            s->dead = 1;
            return err_set(e, "MCP server %s: cannot write to it (it exited?)", s->label);
        }
        off += (size_t)w;
    }
    free(t);
    return 0;
}

/* The next whole line (malloc'd) within the deadline; NULL with *e set. */
static char *read_line(McpServer *s, double deadline, Err *e)
{
    for (;;) {
        char *nl = s->n ? memchr(s->buf, '\n', s->n) : NULL;
        if (nl) {
            size_t len = (size_t)(nl - s->buf);
            char *line = malloc(len + 1);
            if (!line) {
                err_set(e, "out of memory");
                return NULL;
            }
            memcpy(line, s->buf, len);
            line[len] = 0;
            memmove(s->buf, nl + 1, s->n - len - 1);
            s->n -= len + 1;
            return line;
        }
        if (s->n >= MCP_LINE_MAX) {
            s->dead = 1;
            err_set(e, "MCP server %s: a message longer than %u bytes", s->label, MCP_LINE_MAX);
            return NULL;
        }
        double left = deadline - now_ms();
        if (left <= 0) {
            err_set(e, "MCP server %s: no answer within the timeout", s->label);
            return NULL;
        }
        struct pollfd pf = {s->fd, POLLIN, 0};
        int k = poll(&pf, 1, (int)left + 1);
        if (k < 0 && errno != EINTR) {
            err_set(e, "MCP server %s: poll: %s", s->label, strerror(errno));
            return NULL;
        }
        if (k <= 0) continue;
        if (s->n + 65536 > s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 131072;
            char *nb = realloc(s->buf, nc);
            if (!nb) {
                err_set(e, "out of memory");
                return NULL;
            }
            s->buf = nb;
            s->cap = nc;
        }
        ssize_t got = recv(s->fd, s->buf + s->n, 65536, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            s->dead = 1;
            err_set(e, "MCP server %s exited (its output closed)", s->label);
            return NULL;
        }
        s->n += (size_t)got;
    }
}

/* Sends a request and waits for the response of the same id: its "result"
 * (the caller deletes the returned root, *result points into it). */
static cJSON *request(McpServer *s, const char *method, cJSON *params, int timeout_ms, const cJSON **result, Err *e)
{
    if (s->dead) {
        cJSON_Delete(params);
        err_set(e, "MCP server %s is not running", s->label);
        return NULL;
    }
    int id = s->next_id++;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", id);
    cJSON_AddStringToObject(req, "method", method);
    if (params) cJSON_AddItemToObject(req, "params", params);
    int rc = send_msg(s, req, e);
    cJSON_Delete(req);
    if (rc) return NULL;
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        char *line = read_line(s, deadline, e);
        if (!line) return NULL;
        if (!line[strspn(line, " \t\r")]) { /* blank line */
            free(line);
            continue;
        }
        cJSON *m = cJSON_Parse(line);
        free(line);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "jsonrpc");
        if (!cJSON_IsObject(m) || !cJSON_IsString(v) || strcmp(v->valuestring, "2.0")) {
            cJSON_Delete(m);
            s->dead = 1;
            err_set(e, "MCP server %s sent something that is not a JSON-RPC 2.0 message", s->label);
            return NULL;
        }
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "id");
        const cJSON *meth = cJSON_GetObjectItemCaseSensitive(m, "method");
        if (meth && mid) { /* a request from the server (ping, sampling ...): answer it, unsupported */
            cJSON *ans = cJSON_CreateObject(), *err = cJSON_CreateObject();
            cJSON_AddStringToObject(ans, "jsonrpc", "2.0");
            cJSON_AddItemToObject(ans, "id", cJSON_Duplicate(mid, 1));
            if (cJSON_IsString(meth) && !strcmp(meth->valuestring, "ping")) {
                cJSON_Delete(err);
                cJSON_AddItemToObject(ans, "result", cJSON_CreateObject());
            } else {
                cJSON_AddNumberToObject(err, "code", -32601);
                cJSON_AddStringToObject(err, "message", "duet does not support this request");
                cJSON_AddItemToObject(ans, "error", err);
            }
            send_msg(s, ans, e);
            cJSON_Delete(ans);
            cJSON_Delete(m);
            continue;
        }
        if (!cJSON_IsNumber(mid) || mid->valueint != id) { /* a notification or a stale answer */
            cJSON_Delete(m);
            continue;
        }
        const cJSON *er = cJSON_GetObjectItemCaseSensitive(m, "error");
        if (er) {
            const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(er, "message"));
            err_set(e, "MCP server %s: %s failed: %s", s->label, method, msg ? msg : "error");
            cJSON_Delete(m);
            return NULL;
        }
        *result = cJSON_GetObjectItemCaseSensitive(m, "result");
        if (!cJSON_IsObject(*result)) {
            cJSON_Delete(m);
            err_set(e, "MCP server %s: %s answered without a result object", s->label, method);
            return NULL;
        }
        return m;
    }
}

void mcp_stop(McpServer *s)
{
    if (s->fd >= 0) shutdown(s->fd, SHUT_WR);
    if (s->pid > 0) {
        int st;
        for (int i = 0; i < 50 && waitpid(s->pid, &st, WNOHANG) == 0; i++) {
            if (i == 10) kill(s->pid, SIGTERM);
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        if (waitpid(s->pid, &st, WNOHANG) == 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
        }
    }
    if (s->fd >= 0) close(s->fd);
    free(s->buf);
    free(s->label);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

int mcp_start(McpServer *s, const char *const *argv, int timeout_ms, Err *e)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->next_id = 1;
    if (!argv || !argv[0]) return err_set(e, "MCP server: empty command");
    size_t ll = 0;
    for (int i = 0; argv[i]; i++) ll += strlen(argv[i]) + 1;
    if (!(s->label = malloc(ll + 1))) return err_set(e, "out of memory");
    s->label[0] = 0;
    for (int i = 0; argv[i]; i++) strcat(strcat(s->label, i ? " " : ""), argv[i]);
    char *path = proc_find(argv[0], e);
    if (!path) {
        err_prefix(e, "MCP server \"%s\": ", s->label);
        mcp_stop(s);
        return -1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        free(path);
        mcp_stop(s);
        return err_set(e, "socketpair: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        free(path);
        close(sv[0]);
        close(sv[1]);
        mcp_stop(s);
        return err_set(e, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(sv[1], 0);
        dup2(sv[1], 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2); /* the server's logs are not ours to print */
        extern char **environ;
        execve(path, (char *const *)argv, environ);
        _exit(127);
    }
    free(path);
    close(sv[1]);
    s->fd = sv[0];
    s->pid = pid;
    cJSON *p = cJSON_CreateObject(), *info = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "protocolVersion", "2025-06-18");
    cJSON_AddItemToObject(p, "capabilities", cJSON_CreateObject());
    cJSON_AddStringToObject(info, "name", "duet");
    cJSON_AddStringToObject(info, "version", "1");
    cJSON_AddItemToObject(p, "clientInfo", info);
    const cJSON *res;
    cJSON *root = request(s, "initialize", p, timeout_ms, &res, e);
    if (!root) {
        mcp_stop(s);
        return -1;
    }
    cJSON_Delete(root);
    cJSON *note = cJSON_CreateObject();
    cJSON_AddStringToObject(note, "jsonrpc", "2.0");
    cJSON_AddStringToObject(note, "method", "notifications/initialized");
    int rc = send_msg(s, note, e);
    cJSON_Delete(note);
    if (rc) mcp_stop(s);
    return rc;
}

cJSON *mcp_list_tools(McpServer *s, int timeout_ms, Err *e)
{
    cJSON *out = cJSON_CreateArray();
    char *cursor = NULL;
    for (int page = 0; page < 50; page++) {
        cJSON *p = cJSON_CreateObject();
        if (cursor) cJSON_AddStringToObject(p, "cursor", cursor);
        free(cursor);
        cursor = NULL;
        const cJSON *res;
        cJSON *root = request(s, "tools/list", p, timeout_ms, &res, e);
        if (!root) {
            cJSON_Delete(out);
            return NULL;
        }
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(res, "tools"))
        {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "name"));
            if (!name || !name[0]) continue;
            const char *desc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "description"));
            cJSON *schema = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(t, "inputSchema"), 1);
            if (!cJSON_IsObject(schema)) {
                cJSON_Delete(schema);
                schema = cJSON_Parse("{\"type\":\"object\"}");
            }
            jschema_strip_unknown(schema);
            JsSchema chk;
            Err ce;
            if (jschema_compile(&chk, schema, 0, "inputSchema", &ce)) { /* still outside the subset: any object */
                cJSON_Delete(schema);
                schema = cJSON_Parse("{\"type\":\"object\"}");
            } else {
                jschema_free(&chk);
            }
            cJSON *f = cJSON_CreateObject(), *fn = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "type", "function");
            cJSON_AddStringToObject(fn, "name", name);
            cJSON_AddStringToObject(fn, "description", desc ? desc : "");
            cJSON_AddItemToObject(fn, "parameters", schema);
            cJSON_AddItemToObject(f, "function", fn);
            cJSON_AddItemToArray(out, f);
        }
        const char *next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "nextCursor"));
        if (next && next[0]) cursor = strdup(next);
        cJSON_Delete(root);
        if (!cursor) break;
    }
    free(cursor);
    return out;
}

char *mcp_call(McpServer *s, const char *name, const char *args_json, int timeout_ms, size_t cap, int *is_error,
               Err *e)
{
    *is_error = 0;
    cJSON *p = cJSON_CreateObject(), *args = cJSON_Parse(args_json ? args_json : "{}");
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        args = cJSON_CreateObject();
    }
    cJSON_AddStringToObject(p, "name", name);
    cJSON_AddItemToObject(p, "arguments", args);
    const cJSON *res;
    cJSON *root = request(s, "tools/call", p, timeout_ms, &res, e);
    if (!root) return NULL;
    *is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError"));
    size_t n = 0;
    char *out = malloc(cap + 1);
    if (!out) {
        cJSON_Delete(root);
        err_set(e, "out of memory");
        return NULL;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(res, "content"))
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "type"));
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "text"));
        char note[64];
        if (!type || strcmp(type, "text") || !text) {
            snprintf(note, sizeof note, "[%s content]", type ? type : "unknown");
            text = note;
        }
        size_t l = strlen(text);
        if (n && n < cap) out[n++] = '\n';
        if (l > cap - n) l = cap - n;
        memcpy(out + n, text, l);
        n += l;
    }
    if (n == 0) { /* structuredContent only */
        char *t = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(res, "structuredContent"));
        if (t) {
            n = strlen(t) < cap ? strlen(t) : cap;
            memcpy(out, t, n);
            free(t);
        }
    }
    out[n] = 0;
    cJSON_Delete(root);
    return out;
}
