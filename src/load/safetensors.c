#include "load/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Headers of real checkpoints are a few hundred KB; 100 MB is generous and
 * keeps a hostile length from making us allocate the world. */
#define ST_MAX_HEADER (100u << 20)

static int dtype_parse(const char *s, DType *out, size_t *elsize)
{
    if (!strcmp(s, "F32")) { *out = DT_F32; *elsize = 4; return 0; }
    if (!strcmp(s, "F16")) { *out = DT_F16; *elsize = 2; return 0; }
    if (!strcmp(s, "BF16")) { *out = DT_BF16; *elsize = 2; return 0; }
    return -1;
}

static int cmp_offset(const void *a, const void *b)
{
    const StTensor *x = a, *y = b;
    uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
    return p < q ? -1 : p > q;
}

/* Reads one tensor entry; base/data_len describe the data section. */
static int parse_entry(StTensor *t, const cJSON *j, const char *base, size_t data_len, const char *name, Err *e)
{
    const char *tn = j->string;
    if (!cJSON_IsObject(j)) return err_set(e, "%s: tensor \"%s\": expected an object", name, tn);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt)) return err_set(e, "%s: tensor \"%s\": field \"dtype\" missing or not a string", name, tn);
    size_t elsize;
    if (dtype_parse(dt->valuestring, &t->dtype, &elsize))
        return err_set(e, "%s: tensor \"%s\": dtype \"%.20s\" is not supported (expected F32, F16 or BF16)", name, tn,
                       dt->valuestring);
    if (!cJSON_IsArray(sh)) return err_set(e, "%s: tensor \"%s\": field \"shape\" missing or not an array", name, tn);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS) return err_set(e, "%s: tensor \"%s\": %d dimensions (at most %d supported)", name, tn, nd, ST_MAX_DIMS);
    t->ndim = nd;
    /* numel bounded by the data section, so overflow is checked as we go */
    uint64_t numel = 1;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        double v = d->valuedouble;
        if (!cJSON_IsNumber(d) || v < 0 || v != floor(v) || v > 9e15)
            return err_set(e, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", name, tn, i);
        t->shape[i] = (int64_t)v;
        if (t->shape[i] && numel > UINT64_MAX / (uint64_t)t->shape[i])
            return err_set(e, "%s: tensor \"%s\": shape overflows", name, tn);
        numel *= (uint64_t)t->shape[i];
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return err_set(e, "%s: tensor \"%s\": field \"data_offsets\" must be [begin, end]", name, tn);
    double b = off->child->valuedouble, en = off->child->next->valuedouble;
    if (!cJSON_IsNumber(off->child) || !cJSON_IsNumber(off->child->next) || b < 0 || en < b || b != floor(b) ||
        en != floor(en))
        return err_set(e, "%s: tensor \"%s\": data_offsets must be integers with 0 <= begin <= end", name, tn);
    if (en > (double)data_len)
        return err_set(e, "%s: tensor \"%s\": data_offsets end %.0f is beyond the data section (%zu bytes)", name, tn, en,
                       data_len);
    size_t nbytes = (size_t)en - (size_t)b;
    if (numel > SIZE_MAX / elsize || numel * elsize != nbytes)
        return err_set(e, "%s: tensor \"%s\": %zu bytes in data_offsets but shape and dtype need %llu", name, tn, nbytes,
                       (unsigned long long)(numel * elsize));
    t->data = base + (size_t)b;
    t->nbytes = nbytes;
    t->name = strdup(tn);
    if (!t->name) return err_set(e, "out of memory");
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int check_unique(const StFile *f, const char *name, Err *e)
{
    char **names = malloc((f->n ? (size_t)f->n : 1) * sizeof *names);
    if (!names) return err_set(e, "out of memory");
    for (int i = 0; i < f->n; i++) names[i] = f->t[i].name;
    qsort(names, (size_t)f->n, sizeof *names, cmp_name);
    int rc = 0;
    for (int i = 1; i < f->n && !rc; i++)
        if (!strcmp(names[i - 1], names[i])) rc = err_set(e, "%s: tensor \"%s\" appears twice in the header", name, names[i]);
    free(names);
    return rc;
}

int st_parse(StFile *f, const void *buf, size_t size, const char *name, Err *e)
{
    memset(f, 0, sizeof *f);
    const unsigned char *p = buf;
    if (size < 8) return err_set(e, "%s: file is %zu bytes, too short for a safetensors header", name, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > size - 8)
        return err_set(e, "%s: header length %llu exceeds the file size %zu", name, (unsigned long long)hlen, size);
    if (hlen > ST_MAX_HEADER) return err_set(e, "%s: header length %llu is implausibly large", name, (unsigned long long)hlen);
    if (hlen < 2 || p[8] != '{') return err_set(e, "%s: header does not start with a JSON object", name);
    const char *end = NULL;
    cJSON *h = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &end, 0);
    if (!h || !cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return err_set(e, "%s: header is not valid JSON (near byte %zu)", name,
                       end ? (size_t)(end - (const char *)p) : (size_t)8);
    }
    const char *base = (const char *)p + 8 + hlen;
    size_t data_len = size - 8 - (size_t)hlen;
    int n = 0;
    for (const cJSON *j = h->child; j; j = j->next)
        if (strcmp(j->string, "__metadata__")) n++;
    f->t = calloc(n ? (size_t)n : 1, sizeof *f->t);
    if (!f->t) {
        cJSON_Delete(h);
        return err_set(e, "out of memory");
    }
    int rc = 0;
    for (const cJSON *j = h->child; j && !rc; j = j->next) {
        if (!strcmp(j->string, "__metadata__")) {
            if (!cJSON_IsObject(j)) rc = err_set(e, "%s: \"__metadata__\" must be an object", name);
            continue;
        }
        rc = parse_entry(&f->t[f->n], j, base, data_len, name, e);
        if (!rc) f->n++;
    }
    cJSON_Delete(h);
    if (!rc) {
        qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_offset);
        for (int i = 1; i < f->n && !rc; i++) {
            const StTensor *a = &f->t[i - 1], *b = &f->t[i];
            if (a->nbytes && (const char *)a->data + a->nbytes > (const char *)b->data)
                rc = err_set(e, "%s: tensors \"%s\" and \"%s\" overlap in the data section", name, a->name, b->name);
        }
        rc = rc ? rc : check_unique(f, name, e);
    }
    f->size = size;
    if (rc) st_close(f);
    return rc;
}

int st_open(StFile *f, const char *path, Err *e)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO planted as a shard must not block the open */
    if (fd < 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set(e, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    /* the fd may be closed now: the mapping keeps the file alive */
    close(fd);
    if (size && map == MAP_FAILED) return err_set(e, "%s: mmap failed: %s", path, strerror(errno));
    if (st_parse(f, map, size, path, e)) {
        if (map) munmap(map, size);
        return -1;
    }
    f->map = map;
    f->path = strdup(path);
    if (!f->path) {
        st_close(f);
        return err_set(e, "out of memory");
    }
    return 0;
}

void st_close(StFile *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

int64_t st_numel(const StTensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}
