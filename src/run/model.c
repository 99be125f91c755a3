#include "run/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load/limits.h"
#include "util/half.h"

/* Converts an F32/F16/BF16 tensor to float32 (n values). */
static void tensor_f32(float *out, const StTensor *t, size_t n)
{
    const char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        switch (t->dtype) {
        case DT_F32: memcpy(&out[i], p + 4 * i, 4); break;
        case DT_F16: memcpy(&h, p + 2 * i, 2); out[i] = f16_to_f32(h); break;
        case DT_BF16: memcpy(&h, p + 2 * i, 2); out[i] = bf16_to_f32(h); break;
        default: out[i] = 0; break;
        }
    }
}

/* Loads a 1-D float vector `name` of length n into the arena at *cursor. */
static const float *vec(Model *m, const char *name, int n, float **cursor, Err *e)
{
    int64_t shape[1] = {n};
    const StTensor *t = ckpt_expect(&m->ckpt, name, 1, shape, e);
    if (!t) return NULL;
    float *out = *cursor;
    tensor_f32(out, t, (size_t)n);
    QMat q = {.type = DT_F32, .rows = 1, .cols = n, .data = out};
    if (limit_finite_qmat(&q, m->ckpt.dir, name, e)) return NULL;
    *cursor += n;
    return out;
}

/* Unmaps the whole pages of [p, p + bytes) of a read-only file mapping:
 * they stay in the page cache and fault back in when read, but no longer
 * count in this process's resident size until then. */
static void unmap_pages(const void *p, size_t bytes)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), b = ((uintptr_t)p + bytes) & ~((uintptr_t)pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Matrix `name` (rows x cols) as a view of the mapped checkpoint, checked
 * finite. The check reads every page; they are let go right after, so that
 * opening a folder does not make the whole checkpoint resident at once (a
 * streamed compile then holds one tensor group at a time). */
static int mat(Model *m, QMat *q, const char *name, int rows, int cols, Err *e)
{
    int64_t shape[2] = {rows, cols};
    const StTensor *t = ckpt_expect(&m->ckpt, name, 2, shape, e);
    if (!t) return -1;
    memset(q, 0, sizeof *q);
    q->type = t->dtype;
    q->rows = rows;
    q->cols = cols;
    q->data = t->data;
    int rc = limit_finite_qmat(q, m->ckpt.dir, name, e);
    unmap_pages(q->data, qmat_data_bytes(q->type, rows, cols));
    return rc;
}

int model_open_dir(Model *m, const char *dir, Err *e)
{
    memset(m, 0, sizeof *m);
    m->merged = -1;
    if (ckpt_open(&m->ckpt, dir, e)) return -1;
    m->cfg = m->ckpt.cfg;
    const ModelConfig *c = &m->cfg;
    int hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    size_t per_layer = 2 * (size_t)c->dim + (c->qkv_bias ? (size_t)qd + 2 * kvd : 0) + (c->qk_norm ? 2 * (size_t)hd : 0);
    m->floats = malloc(((size_t)c->dim + per_layer * c->n_layers) * sizeof(float));
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->floats || !m->layers) {
        model_close(m);
        return err_set(e, "out of memory");
    }
    float *cur = m->floats;
    char name[256];
    if (mat(m, &m->embed, "model.embed_tokens.weight", c->vocab_size, c->dim, e)) goto fail;
    if (c->tie_embeddings) m->lm_head = m->embed;
    else if (mat(m, &m->lm_head, "lm_head.weight", c->vocab_size, c->dim, e)) goto fail;
    if (!(m->final_norm = vec(m, "model.norm.weight", c->dim, &cur, e))) goto fail;
    for (int l = 0; l < c->n_layers; l++) {
        Layer *L = &m->layers[l];
#define NAME(fmt) (snprintf(name, sizeof name, "model.layers.%d." fmt, l), name)
        if (!(L->attn_norm = vec(m, NAME("input_layernorm.weight"), c->dim, &cur, e))) goto fail;
        if (!(L->ffn_norm = vec(m, NAME("post_attention_layernorm.weight"), c->dim, &cur, e))) goto fail;
        for (int p = 0; p < P_COUNT; p++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, proj_path((Proj)p));
            if (mat(m, &L->w[p], name, proj_out(c, (Proj)p), proj_in(c, (Proj)p), e)) goto fail;
        }
        if (c->qkv_bias) {
            if (!(L->bq = vec(m, NAME("self_attn.q_proj.bias"), qd, &cur, e))) goto fail;
            if (!(L->bk = vec(m, NAME("self_attn.k_proj.bias"), kvd, &cur, e))) goto fail;
            if (!(L->bv = vec(m, NAME("self_attn.v_proj.bias"), kvd, &cur, e))) goto fail;
        }
        if (c->qk_norm) {
            if (!(L->q_norm = vec(m, NAME("self_attn.q_norm.weight"), hd, &cur, e))) goto fail;
            if (!(L->k_norm = vec(m, NAME("self_attn.k_norm.weight"), hd, &cur, e))) goto fail;
        }
#undef NAME
    }
    return 0;
fail:
    model_close(m);
    return -1;
}

int model_find_adapter(const Model *m, const char *name)
{
    for (int i = 0; i < m->n_adapters; i++)
        if (!strcmp(m->adapters[i].name, name)) return i;
    return -1;
}

/* A of a LoRA pair as float32 (r x in): the data itself when it is f32,
 * else a malloc'd conversion; *tofree receives what the caller frees. */
static const float *lora_a_f32(const LoraPair *lp, float **tofree)
{
    *tofree = NULL;
    if (lp->A.type == DT_F32) return lp->A.data;
    float *a = malloc((size_t)lp->A.rows * lp->A.cols * sizeof *a);
    if (!a) return NULL;
    for (int k = 0; k < lp->A.rows; k++) qmat_row_f32(a + (size_t)k * lp->A.cols, &lp->A, k);
    return *tofree = a;
}

/* W + scale * B A, row r, into row (cols floats); A as from lora_a_f32;
 * b is room for one row of B (lp->r floats). */
static void merged_row(float *row, float *b, const QMat *W, const LoraPair *lp, const float *A, int r)
{
    qmat_row_f32(row, W, r);
    kern_lora_b_row(b, &lp->B, lp->r, r);
    for (int k = 0; k < lp->r; k++) {
        float s = lp->scale * b[k];
        const float *ak = A + (size_t)k * W->cols;
        for (int j = 0; j < W->cols; j++) row[j] += s * ak[j];
    }
}

/* DoRA (PEFT's DoraLinearLayer): y = m / ||W + s B A||_row * (W x + s B A x).
 * The norm depends on the base weights, so it is computed here, once, and
 * the magnitude vector is replaced by the whole per-row factor. */
static int dora_attach(const Model *m, Adapter *a, Err *e)
{
    int cols = m->cfg.dim;
    for (int p = 0; p < P_COUNT; p++)
        if (proj_in(&m->cfg, (Proj)p) > cols) cols = proj_in(&m->cfg, (Proj)p);
    float *row = malloc((size_t)cols * sizeof *row), *b = malloc(LIMIT_LORA_RANK * sizeof *b);
    if (!row || !b) {
        free(row);
        free(b);
        return err_set(e, "out of memory");
    }
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int p = 0; p < P_COUNT; p++) {
            const LoraPair *lp = adapter_pair(a, l, (Proj)p);
            if (!lp || !lp->dora) continue;
            const QMat *W = &m->layers[l].w[p];
            float *d = (float *)lp->dora; /* owned by the adapter: see peft.h */
            float *tmp;
            const float *A = lora_a_f32(lp, &tmp);
            if (!A) {
                free(row);
                free(b);
                return err_set(e, "out of memory");
            }
            for (int r = 0; r < W->rows; r++) {
                merged_row(row, b, W, lp, A, r);
                double ss = 0;
                for (int j = 0; j < W->cols; j++) ss += (double)row[j] * row[j];
                d[r] = ss > 0 ? (float)(d[r] / sqrt(ss)) : 0.0f;
            }
            free(tmp);
        }
    }
    free(row);
    free(b);
    return 0;
}

int model_load_lora(const Model *m, Adapter *a, const char *dir, const char *name, Err *e)
{
    memset(a, 0, sizeof *a);
    if (peft_load(a, dir, name, &m->cfg, e)) return -1;
    if (dora_attach(m, a, e)) {
        adapter_free(a);
        return -1;
    }
    return 0;
}

int model_add_lora(Model *m, const char *dir, const char *name, Err *e)
{
    if (name && limit_adapter_name(name, dir, e)) return -1;
    if (name && model_find_adapter(m, name) >= 0) return err_set(e, "adapter name \"%s\" is used twice", name);
    Adapter *na = realloc(m->adapters, (size_t)(m->n_adapters + 1) * sizeof *na);
    if (!na) return err_set(e, "out of memory");
    m->adapters = na;
    if (model_load_lora(m, &m->adapters[m->n_adapters], dir, name, e)) return -1;
    m->n_adapters++;
    return 0;
}

/* ws[0..n) stacked by rows when their layout allows it (see model_fuse),
 * else a view with rows = 0. */
static QMat stacked(const QMat *ws, int n)
{
    QMat v = ws[0], none = {0};
    for (int i = 1; i < n; i++) {
        const QMat *a = &ws[i - 1], *b = &ws[i];
        if (b->type != v.type || b->cols != v.cols || !b->in_scale != !v.in_scale) return none;
        if ((const char *)a->data + qmat_data_bytes(a->type, a->rows, a->cols) != (const char *)b->data) return none;
        if (a->scales && (const char *)a->scales + qmat_scale_bytes(a->type, a->rows, a->cols) != (const char *)b->scales)
            return none;
        if (b->in_scale && b->in_scale != v.in_scale && memcmp(b->in_scale, v.in_scale, (size_t)v.cols * sizeof(float)))
            return none;
        v.rows += b->rows;
    }
    return v;
}

void model_fuse(Model *m)
{
    for (int l = 0; l < m->cfg.n_layers; l++) {
        Layer *L = &m->layers[l];
        L->qkv = stacked(&L->w[P_Q], 3);
        L->gate_up = stacked(&L->w[P_GATE], 2);
    }
}

int model_merge_adapter(Model *m, int idx, Err *e)
{
    if (idx < 0 || idx >= m->n_adapters) return err_set(e, "no adapter %d to merge", idx);
    if (m->merged >= 0) return err_set(e, "adapter \"%s\" is merged already", m->adapters[m->merged].name);
    const Adapter *a = &m->adapters[idx];
    for (int l = 0; l < m->cfg.n_layers; l++) /* no stale views, even if a merge fails half-way */
        m->layers[l].qkv.rows = m->layers[l].gate_up.rows = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int p = 0; p < P_COUNT; p++) {
            const LoraPair *lp = adapter_pair(a, l, (Proj)p);
            if (!lp) continue;
            QMat *W = &m->layers[l].w[p];
            float **no = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *no);
            if (!no) return err_set(e, "out of memory");
            m->owned = no;
            float *w = malloc((size_t)W->rows * W->cols * sizeof *w);
            if (!w) return err_set(e, "out of memory merging adapter \"%s\"", a->name);
            m->owned[m->n_owned++] = w;
            float *tmp, b[LIMIT_LORA_RANK];
            const float *A = lora_a_f32(lp, &tmp);
            if (!A) return err_set(e, "out of memory merging adapter \"%s\"", a->name);
            for (int r = 0; r < W->rows; r++) {
                float *row = w + (size_t)r * W->cols;
                merged_row(row, b, W, lp, A, r);
                if (lp->dora)
                    for (int j = 0; j < W->cols; j++) row[j] *= lp->dora[r];
            }
            free(tmp);
            QMat nw = {.type = DT_F32, .rows = W->rows, .cols = W->cols, .data = w};
            *W = nw;
        }
    }
    m->merged = idx;
    model_fuse(m); /* the merged weights are separate allocations now */
    return 0;
}

void model_close(Model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_adapters; i++) adapter_free(&m->adapters[i]);
    free(m->adapters);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->floats);
    ckpt_close(&m->ckpt);
    if (m->file_map) munmap(m->file_map, m->file_size);
    memset(m, 0, sizeof *m);
    m->merged = -1;
}

int model_open(Model *m, const char *path, Err *e) { return model_open_flags(m, path, 0, e); }

int model_open_flags(Model *m, const char *path, int flags, Err *e) { return model_open_progress(m, path, flags, NULL, e); }

int model_open_progress(Model *m, const char *path, int flags, const ModelProgress *p, Err *e)
{
    struct stat sb;
    if (stat(path, &sb)) {
        memset(m, 0, sizeof *m);
        return err_set(e, "%s: no such file or folder", path);
    }
    if (S_ISDIR(sb.st_mode)) return model_open_dir(m, path, e);
    return model_open_duet_progress(m, path, flags, p, e);
}

/* A "Key:   N kB" line of a /proc file, in bytes; -1 if absent. */
static long long proc_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

int model_ram_fits(uint64_t bytes)
{
    long long avail = proc_kb("/proc/meminfo", "MemAvailable");
    if (avail < 0) {
        long pages = sysconf(_SC_AVPHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
        avail = pages > 0 && pg > 0 ? (long long)pages * pg : 0;
    }
    return (double)bytes <= 0.75 * (double)avail;
}

long long model_huge_bytes(void) { return proc_kb("/proc/self/smaps_rollup", "AnonHugePages"); }
