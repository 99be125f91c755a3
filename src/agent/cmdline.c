/* cmdline.c - a command line given as one string (duet agent --mcp "CMD
 * ARG...") made into an argv without a shell: words split on blanks, quotes
 * and backslashes as a POSIX shell reads them, and nothing else ($, *, ~,
 * ;, | and the rest stay literal characters). A JSON array of strings is
 * taken as the argv itself. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

/* One allocation: the pointer array, then the words' bytes. */
static char **argv_alloc(size_t nwords, size_t nbytes)
{
    return malloc((nwords + 1) * sizeof(char *) + nbytes);
}

static char **from_json(const char *s, Err *e)
{
    cJSON *a = cJSON_Parse(s);
    const cJSON *x;
    size_t n = 0, bytes = 0;
    int bad = !cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0;
    const cJSON *each = bad ? NULL : a;
    cJSON_ArrayForEach(x, each)
    {
        if (!cJSON_IsString(x)) bad = 1;
        else bytes += strlen(x->valuestring) + 1, n++;
    }
    if (bad) {
        cJSON_Delete(a);
        err_set(e, "expected a JSON array of strings (the command and its arguments)");
        return NULL;
    }
    char **v = argv_alloc(n, bytes);
    if (!v) {
        cJSON_Delete(a);
        err_set(e, "out of memory");
        return NULL;
    }
    char *p = (char *)(v + n + 1);
    size_t k = 0;
    cJSON_ArrayForEach(x, a)
    {
        v[k++] = strcpy(p, x->valuestring);
        p += strlen(p) + 1;
    }
    v[k] = NULL;
    cJSON_Delete(a);
    return v;
}

char **cmdline_split(const char *s, Err *e)
{
    if (!s) {
        err_set(e, "empty command");
        return NULL;
    }
    size_t lead = strspn(s, " \t\n");
    if (s[lead] == '[') return from_json(s + lead, e);
    size_t len = strlen(s);
    /* at most len/2+1 words, each at most len bytes in all */
    char **v = argv_alloc(len / 2 + 1, len + len / 2 + 2);
    if (!v) {
        err_set(e, "out of memory");
        return NULL;
    }
    char *out = (char *)(v + len / 2 + 2);
    size_t k = 0;
    const char *p = s;
    for (;;) {
        p += strspn(p, " \t\n");
        if (!*p) break;
        v[k++] = out;
        while (*p && !strchr(" \t\n", *p)) {
            if (*p == '\'') { /* everything literal up to the next quote */
                const char *q = strchr(p + 1, '\'');
                if (!q) {
                    free(v);
                    err_set(e, "unterminated ' quote at character %zu", (size_t)(p - s) + 1);
                    return NULL;
                }
                memcpy(out, p + 1, (size_t)(q - p - 1));
                out += q - p - 1;
                p = q + 1;
            } else if (*p == '"') { /* a backslash escapes only \ " $ ` */
                const char *start = p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1] && strchr("\\\"$`", p[1])) p++;
                    *out++ = *p++;
                }
                if (!*p) {
                    free(v);
                    err_set(e, "unterminated \" quote at character %zu", (size_t)(start - s) + 1);
                    return NULL;
                }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) {
                    free(v);
                    err_set(e, "a backslash ends the command");
                    return NULL;
                }
                *out++ = p[1];
                p += 2;
            } else {
                *out++ = *p++;
            }
        }
        *out++ = 0;
    }
    v[k] = NULL;
    if (!k) {
        free(v);
        err_set(e, "empty command");
        return NULL;
    }
    return v;
}
