#include "util/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *file_read(const char *path, size_t *len, Err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(e, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (n > FILE_READ_MAX) { /* /dev/zero, a planted symlink, a runaway file: memory stays bounded */
            fclose(f);
            free(buf);
            err_set(e, "%s: larger than %d MiB, the most duet reads of a JSON or text file", path, FILE_READ_MAX >> 20);
            return NULL;
        }
        cap = cap * 2 > (size_t)FILE_READ_MAX + 1 ? (size_t)FILE_READ_MAX + 1 : cap * 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        err_set(e, "%s: out of memory reading the file", path);
        return NULL;
    }
    if (bad) {
        free(buf);
        err_set(e, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

cJSON *json_parse(const char *text, size_t len, const char *name, Err *e)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        err_set(e, "%s: invalid JSON at line %d, column %d", name, line, col);
        return NULL;
    }
    /* anything but whitespace after the value is an error too */
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != 0) {
            cJSON_Delete(j);
            err_set(e, "%s: unexpected data after the JSON value at offset %zu", name, (size_t)(p - text));
            return NULL;
        }
    }
    return j;
}

cJSON *json_parse_file(const char *path, Err *e)
{
    size_t len;
    char *text = file_read(path, &len, e);
    if (!text) return NULL;
    cJSON *j = json_parse(text, len, path, e);
    free(text);
    return j;
}

static const cJSON *field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static int absent(int required, const char *key, const char *what, const char *file, Err *e)
{
    if (required) return err_set(e, "%s: field \"%s\" is missing (expected %s)", file, key, what);
    return 1;
}

int json_get_int(const cJSON *obj, const char *key, int required, long long *out, const char *file, Err *e)
{
    const cJSON *v = field(obj, key);
    if (!v) return absent(required, key, "an integer", file, e);
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9.0e15)
        return err_set(e, "%s: field \"%s\": expected an integer", file, key);
    *out = (long long)d;
    return 0;
}

int json_get_num(const cJSON *obj, const char *key, int required, double *out, const char *file, Err *e)
{
    const cJSON *v = field(obj, key);
    if (!v) return absent(required, key, "a number", file, e);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return err_set(e, "%s: field \"%s\": expected a finite number", file, key);
    *out = v->valuedouble;
    return 0;
}

int json_get_bool(const cJSON *obj, const char *key, int required, int *out, const char *file, Err *e)
{
    const cJSON *v = field(obj, key);
    if (!v) return absent(required, key, "true or false", file, e);
    if (!cJSON_IsBool(v)) return err_set(e, "%s: field \"%s\": expected true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int json_get_str(const cJSON *obj, const char *key, int required, const char **out, const char *file, Err *e)
{
    const cJSON *v = field(obj, key);
    if (!v) return absent(required, key, "a string", file, e);
    if (!cJSON_IsString(v)) return err_set(e, "%s: field \"%s\": expected a string", file, key);
    *out = v->valuestring;
    return 0;
}
