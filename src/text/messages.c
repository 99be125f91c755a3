#include "text/messages.h"

#include <string.h>

#include "text/utf8.h"

int messages_role_ok(const char *role)
{
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++)
        if (!strcmp(role, roles[i])) return 1;
    return 0;
}

int messages_utf8_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k = utf8_check((const unsigned char *)s + i, n - i);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Every string under v valid UTF-8 (cJSON does not check); depth-bounded by cJSON's own nesting limit. */
static int strings_ok(const cJSON *v)
{
    if (cJSON_IsString(v) && !messages_utf8_ok(v->valuestring, strlen(v->valuestring))) return 0;
    if (v->string && !messages_utf8_ok(v->string, strlen(v->string))) return 0;
    for (const cJSON *c = v->child; c; c = c->next)
        if (!strings_ok(c)) return 0;
    return 1;
}

int messages_check(const cJSON *msgs, const char *where, Err *e)
{
    if (!cJSON_IsArray(msgs) || !msgs->child)
        return err_set(e, "%s: expected a non-empty array of {\"role\", \"content\"} objects", where);
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) return err_set(e, "%s: message %d: expected an object {\"role\", \"content\"}", where, i);
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role"), *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(r) || !messages_role_ok(r->valuestring))
            return err_set(e, "%s: message %d: field \"role\": expected \"system\", \"user\", \"assistant\" or \"tool\"", where,
                           i);
        int tool_calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls") != NULL;
        if (!cJSON_IsString(c) && !(tool_calls && (!c || cJSON_IsNull(c))))
            return err_set(e, "%s: message %d: field \"content\": expected a string", where, i);
        if (!strings_ok(m)) return err_set(e, "%s: message %d: invalid UTF-8", where, i);
    }
    return 0;
}
