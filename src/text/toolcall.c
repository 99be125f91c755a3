/* toolcall.c - streaming <tool_call> block extraction. */
#include "text/toolcall.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char OPEN[] = "<tool_call>", CLOSE[] = "</tool_call>";
#define OPEN_LEN (sizeof OPEN - 1)
#define CLOSE_LEN (sizeof CLOSE - 1)

struct ToolCallParser {
    char *buf; /* held text: a possible tag prefix outside, the block so far inside */
    size_t n, cap;
    int inside;
    ToolCall *q; /* queue of completed calls */
    size_t qhead, qn, qcap;
};

ToolCallParser *toolcall_parser_new(void) { return calloc(1, sizeof(ToolCallParser)); }

void toolcall_clear(ToolCall *c)
{
    if (!c) return;
    free(c->name);
    free(c->arguments);
    free(c->raw);
    free(c->error);
    memset(c, 0, sizeof *c);
}

void toolcall_parser_free(ToolCallParser *p)
{
    if (!p) return;
    for (size_t i = p->qhead; i < p->qn; i++) toolcall_clear(&p->q[i]);
    free(p->q);
    free(p->buf);
    free(p);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Builds a call (or an error entry) from the text between the tags. */
static int make_call(const char *raw, size_t n, ToolCall *c)
{
    memset(c, 0, sizeof *c);
    if (!(c->raw = dup_n(raw, n))) return -1;
    const char *err = NULL;
    cJSON *j = cJSON_ParseWithLength(raw, n);
    const cJSON *name = j ? cJSON_GetObjectItemCaseSensitive(j, "name") : NULL;
    const cJSON *args = NULL;
    if (j) {
        args = cJSON_GetObjectItemCaseSensitive(j, "arguments");
        if (!args) args = cJSON_GetObjectItemCaseSensitive(j, "parameters");
    }
    if (!j) err = "malformed JSON in <tool_call> block";
    else if (!cJSON_IsObject(j)) err = "<tool_call> block is not a JSON object";
    else if (!cJSON_IsString(name) || !name->valuestring[0]) err = "<tool_call> block has no string \"name\"";
    else if (args && !cJSON_IsObject(args) && !cJSON_IsString(args) && !cJSON_IsNull(args))
        err = "<tool_call> \"arguments\" is not an object";
    if (err) {
        cJSON_Delete(j);
        return (c->error = strdup(err)) ? 0 : -1;
    }
    c->name = strdup(name->valuestring);
    if (!args || cJSON_IsNull(args)) c->arguments = strdup("{}");
    else if (cJSON_IsString(args)) c->arguments = strdup(args->valuestring); /* already JSON text */
    else c->arguments = cJSON_PrintUnformatted(args);
    cJSON_Delete(j);
    return c->name && c->arguments ? 0 : -1;
}

static int enqueue(ToolCallParser *p, const char *raw, size_t n, const char *force_err)
{
    if (p->qn == p->qcap) {
        if (p->qhead > 0) { /* compact before growing */
            memmove(p->q, p->q + p->qhead, (p->qn - p->qhead) * sizeof *p->q);
            p->qn -= p->qhead;
            p->qhead = 0;
        }
        if (p->qn == p->qcap) {
            size_t cap = p->qcap ? p->qcap * 2 : 4;
            ToolCall *q = realloc(p->q, cap * sizeof *q);
            if (!q) return -1;
            p->q = q;
            p->qcap = cap;
        }
    }
    ToolCall *c = &p->q[p->qn];
    if (force_err) {
        memset(c, 0, sizeof *c);
        if (!(c->raw = dup_n(raw, n)) || !(c->error = strdup(force_err))) {
            toolcall_clear(c);
            return -1;
        }
    } else if (make_call(raw, n, c)) {
        toolcall_clear(c);
        return -1;
    }
    p->qn++;
    return 0;
}

int toolcall_next(ToolCallParser *p, ToolCall *out)
{
    if (p->qhead == p->qn) return 0;
    *out = p->q[p->qhead++];
    if (p->qhead == p->qn) p->qhead = p->qn = 0;
    return 1;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of tag. */
static size_t partial_tag(const char *s, size_t n, const char *tag, size_t tn)
{
    size_t k = n < tn - 1 ? n : tn - 1;
    for (; k > 0; k--)
        if (!memcmp(s + n - k, tag, k)) return k;
    return 0;
}

char *toolcall_feed(ToolCallParser *p, const char *piece, size_t n, Err *e)
{
    if (p->n + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 64;
        while (cap < p->n + n + 1) cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b) goto nomem;
        p->buf = b;
        p->cap = cap;
    }
    if (n) memcpy(p->buf + p->n, piece, n);
    p->n += n;
    char *out = malloc(p->n + 1); /* the text shown never exceeds what is held */
    size_t on = 0, pos = 0;
    if (!out) goto nomem;
    for (;;) {
        const char *rest = p->buf + pos;
        size_t left = p->n - pos;
        if (!p->inside) {
            const char *hit = memmem(rest, left, OPEN, OPEN_LEN);
            if (!hit) {
                size_t hold = partial_tag(rest, left, OPEN, OPEN_LEN);
                memcpy(out + on, rest, left - hold);
                on += left - hold;
                pos += left - hold;
                break;
            }
            memcpy(out + on, rest, (size_t)(hit - rest));
            on += (size_t)(hit - rest);
            pos += (size_t)(hit - rest) + OPEN_LEN;
            p->inside = 1;
        } else {
            const char *hit = memmem(rest, left, CLOSE, CLOSE_LEN);
            if (!hit) break;
            if (enqueue(p, rest, (size_t)(hit - rest), NULL)) {
                free(out);
                goto nomem;
            }
            pos += (size_t)(hit - rest) + CLOSE_LEN;
            p->inside = 0;
        }
    }
    memmove(p->buf, p->buf + pos, p->n - pos);
    p->n -= pos;
    out[on] = 0;
    return out;
nomem:
    err_set(e, "tool-call parser: out of memory");
    return NULL;
}

char *toolcall_finish(ToolCallParser *p, Err *e)
{
    char *out;
    if (p->inside) {
        if (enqueue(p, p->buf, p->n, "unclosed <tool_call> block at end of generation")) {
            err_set(e, "tool-call parser: out of memory");
            return NULL;
        }
        out = strdup("");
    } else {
        out = dup_n(p->buf ? p->buf : "", p->n);
    }
    p->n = 0;
    p->inside = 0;
    if (!out) err_set(e, "tool-call parser: out of memory");
    return out;
}

int toolcall_parse(const char *text, size_t n, char **content, ToolCall **calls, int *ncalls, Err *e)
{
    *content = NULL;
    *calls = NULL;
    *ncalls = 0;
    ToolCallParser *p = toolcall_parser_new();
    if (!p) return err_set(e, "tool-call parser: out of memory");
    char *a = toolcall_feed(p, text, n, e), *b = a ? toolcall_finish(p, e) : NULL;
    if (!a || !b) {
        free(a);
        toolcall_parser_free(p);
        return -1;
    }
    size_t an = strlen(a), bn = strlen(b);
    char *all = realloc(a, an + bn + 1);
    if (!all) {
        free(a);
        free(b);
        toolcall_parser_free(p);
        return err_set(e, "tool-call parser: out of memory");
    }
    memcpy(all + an, b, bn + 1);
    free(b);
    size_t count = p->qn - p->qhead;
    ToolCall *arr = calloc(count ? count : 1, sizeof *arr);
    if (!arr) {
        free(all);
        toolcall_parser_free(p);
        return err_set(e, "tool-call parser: out of memory");
    }
    for (size_t i = 0; i < count; i++) toolcall_next(p, &arr[i]);
    toolcall_parser_free(p);
    *content = all;
    *calls = arr;
    *ncalls = (int)count;
    return 0;
}
