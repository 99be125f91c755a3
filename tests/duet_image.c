#include "duet_image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void wr64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

unsigned char *duet_image_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = n > 0 ? aligned_alloc(64, ((size_t)n + 63) / 64 * 64) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

cJSON *duet_image_meta(const unsigned char *img, size_t len)
{
    if (len < 64) return NULL;
    uint64_t ms = rd64(img + 24);
    if (ms > len - 64) return NULL;
    return cJSON_ParseWithLength((const char *)img + 64, strnlen((const char *)img + 64, (size_t)ms));
}

long long duet_image_tensor(const cJSON *meta, const char *name, const char *field)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(meta, "tensors"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name"), *f = cJSON_GetObjectItemCaseSensitive(t, field);
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name) && cJSON_IsNumber(f)) return (long long)f->valuedouble;
    }
    return -1;
}

static void shift(cJSON *o, const char *key, double d)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v)) cJSON_SetNumberValue(v, v->valuedouble + d);
}

/* Adds d to every file offset in meta. */
static void shift_all(cJSON *meta, double d)
{
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(meta, "tensors"))
    {
        shift(t, "data", d);
        shift(t, "scales", d);
        shift(t, "in_scale", d);
    }
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(meta, "blob_hashes")) shift(t, "offset", d);
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(meta, "blobs")) shift(t, "offset", d);
}

unsigned char *duet_image_build(const unsigned char *old, size_t old_len, cJSON *meta, size_t *out_len)
{
    uint64_t old_bo = rd64(old + 32), blob = old_len - old_bo;
    long long delta = 0;
    char *txt = NULL;
    size_t ms = 0;
    for (int it = 0; it < 8; it++) { /* the offsets' digits change the length: settle */
        free(txt);
        txt = cJSON_PrintUnformatted(meta);
        if (!txt) return NULL;
        ms = (strlen(txt) + 1 + 63) / 64 * 64;
        long long want = (long long)(64 + ms) - (long long)old_bo;
        if (want == delta) break;
        shift_all(meta, (double)(want - delta));
        delta = want;
    }
    /* blob chunk hashes over the (possibly changed) blob bytes at their new places */
    cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(meta, "blob_hashes"))
    {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(h, "offset"), *s = cJSON_GetObjectItemCaseSensitive(h, "size");
        if (!cJSON_IsNumber(o) || !cJSON_IsNumber(s) || !(fabs(o->valuedouble) < 9e18) || !(fabs(s->valuedouble) < 9e18))
            continue; /* not an offset this image can have */
        long long off = (long long)o->valuedouble - delta, size = (long long)s->valuedouble;
        if (off < (long long)old_bo || size < 0 || (unsigned long long)(off + size) > old_len) continue;
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH3_64bits(old + off, (size_t)size));
        cJSON *n = cJSON_CreateString(hex);
        if (!cJSON_ReplaceItemInObjectCaseSensitive(h, "xxh3", n)) cJSON_Delete(n); /* no "xxh3" to replace */
    }
    free(txt); /* same length: the hashes are 16 digits before and after */
    txt = cJSON_PrintUnformatted(meta);
    if (!txt || (strlen(txt) + 1 + 63) / 64 * 64 != ms) {
        free(txt);
        return NULL;
    }
    size_t len = 64 + ms + blob;
    unsigned char *b = aligned_alloc(64, (len + 63) / 64 * 64);
    if (!b) {
        free(txt);
        return NULL;
    }
    memset(b, 0, 64 + ms);
    memcpy(b, old, 16); /* magic, version, flags */
    wr64(b + 16, 64);
    wr64(b + 24, ms);
    wr64(b + 32, 64 + ms);
    wr64(b + 40, blob);
    memcpy(b + 64, txt, strlen(txt));
    memcpy(b + 64 + ms, old + old_bo, blob);
    wr64(b + 48, XXH3_64bits(b + 64, ms));
    wr64(b + 56, XXH3_64bits(b, 56));
    free(txt);
    *out_len = len;
    return b;
}

int duet_image_write(const char *path, const unsigned char *img, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(img, 1, len, f);
    return fclose(f) || w != len ? -1 : 0;
}
