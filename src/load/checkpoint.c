#include "load/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/json.h"

/* Adds DIR/fname to the open shards unless it is open already. */
static int add_shard(Checkpoint *c, const char *fname, Err *e)
{
    for (int i = 0; i < c->n_files; i++) {
        const char *p = strrchr(c->files[i].path, '/');
        if (!strcmp(p ? p + 1 : c->files[i].path, fname)) return 0;
    }
    if (strchr(fname, '/') || !strcmp(fname, "..") || !*fname)
        return err_set(e, "%s/model.safetensors.index.json: shard name \"%.80s\" is not a plain file name", c->dir, fname);
    StFile *nf = realloc(c->files, (size_t)(c->n_files + 1) * sizeof *nf);
    if (!nf) return err_set(e, "out of memory");
    c->files = nf;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->dir, fname);
    if (st_open(&c->files[c->n_files], path, e)) return -1;
    c->n_files++;
    return 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int open_index(Checkpoint *c, const char *path, Err *e)
{
    cJSON *j = json_parse_file(path, e);
    if (!j) return -1;
    int rc = 0;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!cJSON_IsObject(map)) {
        rc = err_set(e, "%s: field \"weight_map\" missing or not an object", path);
    }
    for (const cJSON *m = map ? map->child : NULL; m && !rc; m = m->next) {
        if (!cJSON_IsString(m)) rc = err_set(e, "%s: weight_map[\"%s\"]: expected a file name", path, m->string);
        else rc = add_shard(c, m->valuestring, e);
    }
    /* a name in two shards: which copy is meant? Refuse rather than pick */
    size_t total = 0;
    for (int i = 0; i < c->n_files; i++) total += (size_t)c->files[i].n;
    const char **names = rc ? NULL : malloc((total ? total : 1) * sizeof *names);
    if (!rc && !names) rc = err_set(e, "out of memory");
    if (!rc) {
        size_t k = 0;
        for (int i = 0; i < c->n_files; i++)
            for (int t = 0; t < c->files[i].n; t++) names[k++] = c->files[i].t[t].name;
        qsort(names, total, sizeof *names, name_cmp);
        for (size_t i = 1; i < total && !rc; i++)
            if (!strcmp(names[i - 1], names[i]))
                rc = err_set(e, "%s: tensor \"%.200s\" is in two shards (the index names one): refusing to guess", path,
                             names[i]);
    }
    free(names);
    /* the index is a promise: every tensor it lists must be in its shard */
    for (const cJSON *m = map ? map->child : NULL; m && !rc; m = m->next) {
        const StFile *sf = NULL;
        for (int i = 0; i < c->n_files; i++) {
            const char *p = strrchr(c->files[i].path, '/');
            if (!strcmp(p + 1, m->valuestring)) sf = &c->files[i];
        }
        if (!sf || !st_find(sf, m->string))
            rc = err_set(e, "%s: tensor \"%s\" is listed in shard %s, which does not hold it", path, m->string, m->valuestring);
    }
    /* and a tensor of a shard that the index does not list is not the model's: refuse it */
    int nk = rc ? 0 : cJSON_GetArraySize(map), k = 0;
    const char **keys = rc ? NULL : malloc((size_t)(nk ? nk : 1) * sizeof *keys);
    if (!rc && !keys) rc = err_set(e, "out of memory");
    for (const cJSON *m = keys ? map->child : NULL; m; m = m->next) keys[k++] = m->string;
    if (keys) qsort(keys, (size_t)nk, sizeof *keys, name_cmp);
    for (int i = 0; i < c->n_files && !rc; i++)
        for (int t = 0; t < c->files[i].n && !rc; t++) {
            const char *tn = c->files[i].t[t].name;
            if (!bsearch(&tn, keys, (size_t)nk, sizeof *keys, name_cmp))
                rc = err_set(e, "%s: tensor \"%.200s\" of shard %s is not in the index", path, tn,
                             strrchr(c->files[i].path, '/') + 1);
        }
    free(keys);
    cJSON_Delete(j);
    return rc;
}

int ckpt_open(Checkpoint *c, const char *dir, Err *e)
{
    memset(c, 0, sizeof *c);
    c->dir = strdup(dir);
    if (!c->dir) return err_set(e, "out of memory");
    if (config_load_dir(&c->cfg, dir, e)) goto fail;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) == 0) {
        if (open_index(c, path, e)) goto fail;
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0) {
            snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
            if (access(path, F_OK) == 0)
                err_set(e, "%s: pickled PyTorch weights are not supported; save the model with safe_serialization=True", path);
            else
                err_set(e, "%s: no model.safetensors or model.safetensors.index.json", dir);
            goto fail;
        }
        if (add_shard(c, "model.safetensors", e)) goto fail;
    }
    return 0;
fail:
    ckpt_close(c);
    return -1;
}

void ckpt_close(Checkpoint *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_files; i++) st_close(&c->files[i]);
    free(c->files);
    free(c->dir);
    memset(c, 0, sizeof *c);
}

const StTensor *ckpt_find(const Checkpoint *c, const char *name)
{
    for (int i = 0; i < c->n_files; i++) {
        const StTensor *t = st_find(&c->files[i], name);
        if (t) return t;
    }
    return NULL;
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

const StTensor *ckpt_expect(const Checkpoint *c, const char *name, int ndim, const int64_t *shape, Err *e)
{
    const StTensor *t = ckpt_find(c, name);
    if (!t) {
        err_set(e, "%s: tensor \"%s\" is missing", c->dir, name);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[128], want[128];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        err_set(e, "%s: tensor \"%s\" has shape %s, config.json implies %s", c->dir, name, got, want);
        return NULL;
    }
    return t;
}
