/* write.c - the .duet file layout (docs/FORMAT.md): header, JSON meta,
 * then the blob section (tokenizer files, then every tensor 64-byte aligned)
 * hashed in chunks. Streamed: the layout follows from the tensors' types and
 * shapes alone, so the header and meta are written first with placeholder
 * hashes, each tensor group is produced (quantized) just before its bytes
 * are written and released right after, and the meta and header are
 * rewritten at the end with the blob's hashes. */
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "util/version.h"
#include "compile/compile_int.h"
#include "util/json.h"

#define DUET_VERSION 4 /* run/duet_file.h's DUET_FORMAT_VERSION */
#define HASH_CHUNK ((uint64_t)64 << 20)

typedef struct Region {
    const void *src;    /* NULL: produced by the job's fill() */
    size_t size;
    uint64_t off;       /* file offset, set by layout() */
    int lazy;           /* index into Writer.lazy, or -1 */
} Region;

/* A group of tensors whose bytes the job's fill() produces on demand. */
typedef struct Lazy {
    QMat *q[3];
    int n, t0;          /* tensors t0 .. t0 + n - 1 of Writer.t */
    int last;           /* the group's last region: release() after it */
} Lazy;

typedef struct TensorOut {
    char name[160];
    DType type;
    int rows, cols;
    int data, scales, in_scale; /* region indexes, -1 none */
} TensorOut;

typedef struct Writer {
    Region *reg;
    int n_reg, cap_reg;
    TensorOut *t;
    int n_t, cap_t;
    Lazy *lazy;
    int n_lazy, cap_lazy;
    int tok, tok_cfg;   /* blob regions or -1 */
    uint64_t blob_off, end;
} Writer;

static int add_region(Writer *w, const void *src, size_t size)
{
    if (w->n_reg == w->cap_reg) {
        int cap = w->cap_reg ? 2 * w->cap_reg : 256;
        Region *nr = realloc(w->reg, (size_t)cap * sizeof *nr);
        if (!nr) return -2;
        w->reg = nr;
        w->cap_reg = cap;
    }
    w->reg[w->n_reg] = (Region){src, size, 0, -1};
    return w->n_reg++;
}

/* Adds tensors names[i] over qs[i], i < n: first all their data, then all
 * their scales, then all their in_scales, so that matrices with the same
 * input that are written together can be read as one stacked matrix (see
 * model_fuse in src/run/model.c and docs/FORMAT.md). A group whose data is
 * NULL is produced by the job's fill() when the writer reaches it; its
 * scales exist when its type has them. */
static int add_group(Writer *w, const char *const *names, const QMat *const *qs, int n, Err *e)
{
    int lazy = -1;
    if (!qs[0]->data) {
        if (w->n_lazy == w->cap_lazy) {
            int cap = w->cap_lazy ? 2 * w->cap_lazy : 128;
            Lazy *nl = realloc(w->lazy, (size_t)cap * sizeof *nl);
            if (!nl) return err_set(e, "out of memory");
            w->lazy = nl;
            w->cap_lazy = cap;
        }
        lazy = w->n_lazy++;
        Lazy *L = &w->lazy[lazy];
        L->n = n;
        L->t0 = w->n_t;
        for (int i = 0; i < n; i++) L->q[i] = (QMat *)qs[i]; /* the job's own model: fill() writes into it */
    }
    if (w->n_t + n > w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 256;
        while (cap < w->n_t + n) cap *= 2;
        TensorOut *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt) return err_set(e, "out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    TensorOut *t = &w->t[w->n_t];
    for (int i = 0; i < n; i++) {
        const QMat *q = qs[i];
        snprintf(t[i].name, sizeof t[i].name, "%s", names[i]);
        t[i].type = q->type;
        t[i].rows = q->rows;
        t[i].cols = q->cols;
        t[i].data = add_region(w, q->data, qmat_data_bytes(q->type, q->rows, q->cols));
    }
    for (int i = 0; i < n; i++) {
        size_t sb = qmat_scale_bytes(qs[i]->type, qs[i]->rows, qs[i]->cols);
        t[i].scales = qs[i]->scales || (lazy >= 0 && sb) ? add_region(w, qs[i]->scales, sb) : -1;
    }
    for (int i = 0; i < n; i++)
        t[i].in_scale = qs[i]->in_scale ? add_region(w, qs[i]->in_scale, (size_t)qs[i]->cols * sizeof(float)) : -1;
    for (int i = 0; i < n; i++)
        if (t[i].data < -1 || t[i].scales < -1 || t[i].in_scale < -1) return err_set(e, "out of memory");
    if (lazy >= 0) {
        for (int r = t[0].data; r < w->n_reg; r++) w->reg[r].lazy = lazy;
        w->lazy[lazy].last = w->n_reg - 1;
    }
    w->n_t += n;
    return 0;
}

/* Adds tensor `name` over QMat q (data, scales, in_scale). */
static int add_tensor(Writer *w, const char *name, const QMat *q, Err *e)
{
    return add_group(w, &name, &q, 1, e);
}

static int add_vec(Writer *w, const char *name, const float *v, int n, Err *e)
{
    QMat q = {.type = DT_F32, .rows = 1, .cols = n, .data = v};
    return add_tensor(w, name, &q, e);
}

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

static void layout(Writer *w, uint64_t meta_size)
{
    uint64_t cur = w->blob_off = 64 + meta_size;
    for (int i = 0; i < w->n_reg; i++) {
        cur = align64(cur);
        w->reg[i].off = cur;
        cur += w->reg[i].size;
    }
    w->end = align64(cur);
}

static cJSON *num(double v) { return cJSON_CreateNumber(v); }

static void hex16(char *out, uint64_t h) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

static cJSON *config_json(const ModelConfig *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "arch", arch_name(c->arch));
    cJSON_AddNumberToObject(j, "dim", c->dim);
    cJSON_AddNumberToObject(j, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "hidden_dim", c->hidden_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "max_pos", c->max_pos);
    cJSON_AddNumberToObject(j, "rope_theta", c->rope_theta);
    if (c->rope.llama3) { /* absent: the default rotary embedding */
        cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddStringToObject(r, "rope_type", "llama3");
        cJSON_AddNumberToObject(r, "factor", c->rope.factor);
        cJSON_AddNumberToObject(r, "low_freq_factor", c->rope.low_freq_factor);
        cJSON_AddNumberToObject(r, "high_freq_factor", c->rope.high_freq_factor);
        cJSON_AddNumberToObject(r, "original_max_position_embeddings", c->rope.original_ctx);
    }
    cJSON_AddNumberToObject(j, "norm_eps", c->norm_eps);
    cJSON_AddBoolToObject(j, "tie_embeddings", c->tie_embeddings);
    cJSON_AddBoolToObject(j, "qkv_bias", c->qkv_bias);
    cJSON_AddBoolToObject(j, "qk_norm", c->qk_norm);
    cJSON_AddNumberToObject(j, "bos_id", c->bos_id);
    cJSON_AddItemToObject(j, "eos_ids", cJSON_CreateIntArray(c->eos_ids, c->n_eos));
    if (c->gen.set) { /* generation_config.json's sampling settings, the defaults of every run */
        cJSON *g = cJSON_AddObjectToObject(j, "generation");
        cJSON_AddBoolToObject(g, "do_sample", c->gen.do_sample);
        cJSON_AddNumberToObject(g, "temperature", c->gen.temperature);
        cJSON_AddNumberToObject(g, "top_k", c->gen.top_k);
        cJSON_AddNumberToObject(g, "top_p", c->gen.top_p);
        cJSON_AddNumberToObject(g, "min_p", c->gen.min_p);
        cJSON_AddNumberToObject(g, "repetition_penalty", c->gen.repetition_penalty);
    }
    return j;
}

/* The adapter table; each adapter's rank / alpha / rslora re-read from its
 * adapter_config.json (informational: the pairs carry r and scale). */
static cJSON *adapters_json(const Model *m, const CompileAdapter *ads, Err *e)
{
    cJSON *arr = cJSON_CreateArray();
    char buf[4200];
    for (int i = 0; i < m->n_adapters; i++) {
        const Adapter *a = &m->adapters[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "name", a->name);
        snprintf(buf, sizeof buf, "%s/adapter_config.json", ads[i].dir);
        cJSON *cfg = json_parse_file(buf, e);
        if (!cfg) {
            cJSON_Delete(arr);
            return NULL;
        }
        const cJSON *r = cJSON_GetObjectItem(cfg, "r"), *al = cJSON_GetObjectItem(cfg, "lora_alpha");
        cJSON_AddNumberToObject(o, "rank", cJSON_IsNumber(r) ? r->valuedouble : 8);
        cJSON_AddNumberToObject(o, "alpha", cJSON_IsNumber(al) ? al->valuedouble : 8);
        cJSON_AddBoolToObject(o, "rslora", cJSON_IsTrue(cJSON_GetObjectItem(cfg, "use_rslora")));
        cJSON_Delete(cfg);
        hex16(buf, a->hash);
        cJSON_AddStringToObject(o, "source_hash", buf);
        cJSON *tg = cJSON_AddArrayToObject(o, "targets"), *pairs = cJSON_AddArrayToObject(o, "pairs");
        for (int p = 0; p < P_COUNT; p++) {
            int any = 0;
            for (int l = 0; l < m->cfg.n_layers; l++) any |= adapter_pair(a, l, (Proj)p) != NULL;
            if (any) cJSON_AddItemToArray(tg, cJSON_CreateString(proj_name((Proj)p)));
        }
        for (int l = 0; l < m->cfg.n_layers; l++)
            for (int p = 0; p < P_COUNT; p++) {
                const LoraPair *lp = adapter_pair(a, l, (Proj)p);
                if (!lp) continue;
                cJSON *po = cJSON_CreateObject();
                cJSON_AddItemToArray(pairs, po);
                cJSON_AddNumberToObject(po, "layer", l);
                cJSON_AddStringToObject(po, "proj", proj_name((Proj)p));
                cJSON_AddNumberToObject(po, "r", lp->r);
                cJSON_AddNumberToObject(po, "scale", lp->scale);
                snprintf(buf, sizeof buf, "lora.%s.%d.%s.A", a->name, l, proj_name((Proj)p));
                cJSON_AddStringToObject(po, "A", buf);
                buf[strlen(buf) - 1] = 'B';
                cJSON_AddStringToObject(po, "B", buf);
                if (lp->dora) {
                    snprintf(buf, sizeof buf, "lora.%s.%d.%s.dora", a->name, l, proj_name((Proj)p));
                    cJSON_AddStringToObject(po, "dora", buf);
                }
            }
    }
    return arr;
}

/* The meta JSON for the current layout; hashes NULL: placeholders of the same width. */
static char *meta_text(const Writer *w, const Model *m, DType quant, const cJSON *adapters, const cJSON *calib,
                       const uint64_t *hashes)
{
    cJSON *j = cJSON_CreateObject();
    char hx[17] = "0000000000000000";
    cJSON_AddStringToObject(j, "format", "duet");
    cJSON_AddNumberToObject(j, "version", DUET_VERSION);
    cJSON_AddStringToObject(j, "generator", "duet " DUET_RELEASE);
    cJSON_AddItemToObject(j, "config", config_json(&m->cfg));
    cJSON_AddStringToObject(j, "quant", dtype_name(quant));
    cJSON *blobs = cJSON_AddObjectToObject(j, "blobs");
    const char *bn[2] = {"tokenizer", "tokenizer_config"};
    int bi[2] = {w->tok, w->tok_cfg};
    for (int i = 0; i < 2; i++) {
        if (bi[i] < 0) continue;
        cJSON *b = cJSON_AddObjectToObject(blobs, bn[i]);
        cJSON_AddItemToObject(b, "offset", num((double)w->reg[bi[i]].off));
        cJSON_AddItemToObject(b, "size", num((double)w->reg[bi[i]].size));
    }
    cJSON *bh = cJSON_AddArrayToObject(j, "blob_hashes");
    uint64_t bsize = w->end - w->blob_off;
    for (uint64_t o = 0, c = 0; o < bsize; o += HASH_CHUNK, c++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddItemToObject(h, "offset", num((double)(w->blob_off + o)));
        cJSON_AddItemToObject(h, "size", num((double)(bsize - o < HASH_CHUNK ? bsize - o : HASH_CHUNK)));
        if (hashes) hex16(hx, hashes[c]);
        cJSON_AddStringToObject(h, "xxh3", hx);
        cJSON_AddItemToArray(bh, h);
    }
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < w->n_t; i++) {
        const TensorOut *t = &w->t[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", dtype_name(t->type));
        cJSON_AddNumberToObject(o, "rows", t->rows);
        cJSON_AddNumberToObject(o, "cols", t->cols);
        cJSON_AddItemToObject(o, "data", num((double)w->reg[t->data].off));
        cJSON_AddItemToObject(o, "data_size", num((double)w->reg[t->data].size));
        if (t->scales >= 0) {
            cJSON_AddItemToObject(o, "scales", num((double)w->reg[t->scales].off));
            cJSON_AddItemToObject(o, "scales_size", num((double)w->reg[t->scales].size));
        }
        if (t->in_scale >= 0) cJSON_AddItemToObject(o, "in_scale", num((double)w->reg[t->in_scale].off));
        cJSON_AddItemToArray(ts, o);
    }
    cJSON_AddItemToObject(j, "adapters", cJSON_Duplicate(adapters, 1));
    if (calib) cJSON_AddItemToObject(j, "calibration", cJSON_Duplicate(calib, 1));
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* The blob section goes to f and into the chunk hashes as it is produced. */
typedef struct Sink {
    FILE *f;
    XXH3_state_t *st;
    uint64_t *hashes;
    uint64_t pos;
    int ci, err;
} Sink;

static void sink_put(Sink *s, const void *p, size_t n)
{
    const char *c = p;
    if (fwrite(c, 1, n, s->f) != n) s->err = 1;
    while (n) {
        size_t take = (size_t)(HASH_CHUNK - s->pos % HASH_CHUNK);
        if (take > n) take = n;
        XXH3_64bits_update(s->st, c, take);
        s->pos += take;
        c += take;
        n -= take;
        if (s->pos % HASH_CHUNK == 0) {
            s->hashes[s->ci++] = XXH3_64bits_digest(s->st);
            XXH3_64bits_reset(s->st);
        }
    }
}

/* Writes the blob section, producing each lazy group just before its first
 * region and releasing it after its last. */
static int emit_blob(Writer *w, Sink *s, const WriteJob *j, Err *e)
{
    static const char zero[64];
    uint64_t cur = w->blob_off;
    for (int i = 0; i <= w->n_reg; i++) {
        uint64_t to = i < w->n_reg ? w->reg[i].off : w->end;
        while (cur < to) {
            size_t n = to - cur > 64 ? 64 : (size_t)(to - cur);
            sink_put(s, zero, n);
            cur += n;
        }
        if (i == w->n_reg) break;
        Region *r = &w->reg[i];
        if (r->lazy >= 0 && !r->src) {
            Lazy *L = &w->lazy[r->lazy];
            if (j->fill(j->ctx, L->q, L->n, e)) return -1;
            for (int t = 0; t < L->n; t++) {
                const TensorOut *to_ = &w->t[L->t0 + t];
                const QMat *q = L->q[t];
                if (q->in_scale) return err_set(e, "internal: a streamed tensor may not gain an in_scale");
                w->reg[to_->data].src = q->data;
                if (to_->scales >= 0) w->reg[to_->scales].src = q->scales;
                if (!q->data || (to_->scales >= 0 && !q->scales)) return err_set(e, "internal: a tensor was not produced");
            }
        }
        sink_put(s, r->src, r->size);
        cur += r->size;
        if (r->lazy >= 0 && w->lazy[r->lazy].last == i) {
            j->release(j->ctx);
            Lazy *L = &w->lazy[r->lazy];
            for (int t = 0; t < L->n; t++) {
                w->reg[w->t[L->t0 + t].data].src = NULL;
                if (w->t[L->t0 + t].scales >= 0) w->reg[w->t[L->t0 + t].scales].src = NULL;
            }
        }
        if (j->progress) j->progress(j->ctx, cur - w->blob_off, w->end - w->blob_off);
    }
    if (s->pos % HASH_CHUNK) s->hashes[s->ci++] = XXH3_64bits_digest(s->st);
    return s->err ? err_set(e, "%s: write failed (disk full?)", j->path) : 0;
}

static void put_u32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i)); }

/* Writes the header and the meta text (zero-padded to meta_size) at the
 * start of f; the file position is left after the meta section. */
static int write_head(FILE *f, const Writer *w, const char *meta, uint64_t meta_size, const char *path, Err *e)
{
    size_t ml = strlen(meta);
    if (ml > meta_size) return err_set(e, "%s: internal: the meta JSON (%zu bytes) outgrew its room (%llu)", path, ml,
                                       (unsigned long long)meta_size);
    char *mbuf = calloc(1, (size_t)meta_size);
    if (!mbuf) return err_set(e, "out of memory writing %s", path);
    memcpy(mbuf, meta, ml);
    unsigned char hdr[64] = "DUETMDL";
    put_u32(hdr + 8, DUET_VERSION);
    put_u32(hdr + 12, 0);
    put_u64(hdr + 16, 64);
    put_u64(hdr + 24, meta_size);
    put_u64(hdr + 32, w->blob_off);
    put_u64(hdr + 40, w->end - w->blob_off);
    put_u64(hdr + 48, XXH3_64bits(mbuf, (size_t)meta_size));
    put_u64(hdr + 56, XXH3_64bits(hdr, 56));
    int bad = fseek(f, 0, SEEK_SET) != 0 || fwrite(hdr, 1, 64, f) != 64 || fwrite(mbuf, 1, (size_t)meta_size, f) != meta_size ||
              fflush(f) != 0;
    free(mbuf);
    return bad ? err_set(e, "%s: write failed (disk full?)", path) : 0;
}

static int collect(Writer *w, const QModel *qm, Err *e)
{
    const Model *m = &qm->m;
    const ModelConfig *c = &m->cfg;
    char name[160];
    int hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    if (add_tensor(w, "embed", &m->embed, e)) return -1;
    if (!c->tie_embeddings && add_tensor(w, "lm_head", &m->lm_head, e)) return -1;
    if (add_vec(w, "final_norm", m->final_norm, c->dim, e)) return -1;
    for (int l = 0; l < c->n_layers; l++) {
        const Layer *L = &m->layers[l];
#define NM(s) (snprintf(name, sizeof name, "layers.%d.%s", l, s), name)
        if (add_vec(w, NM("attn_norm"), L->attn_norm, c->dim, e) || add_vec(w, NM("ffn_norm"), L->ffn_norm, c->dim, e))
            return -1;
        if (L->bq && (add_vec(w, NM("q_bias"), L->bq, qd, e) || add_vec(w, NM("k_bias"), L->bk, kvd, e) ||
                      add_vec(w, NM("v_bias"), L->bv, kvd, e)))
            return -1;
        if (L->q_norm && (add_vec(w, NM("q_norm"), L->q_norm, hd, e) || add_vec(w, NM("k_norm"), L->k_norm, hd, e)))
            return -1;
        /* q, k, v and gate, up share their input: written as groups (add_group) */
        static const int first[] = {P_Q, P_O, P_GATE, P_DOWN}, count[] = {3, 1, 2, 1};
        for (int g = 0; g < 4; g++) {
            char names[3][160];
            const char *np[3];
            const QMat *qp[3];
            for (int i = 0; i < count[g]; i++) {
                snprintf(names[i], sizeof names[i], "layers.%d.%s", l, proj_name((Proj)(first[g] + i)));
                np[i] = names[i];
                qp[i] = &L->w[first[g] + i];
            }
            if (add_group(w, np, qp, count[g], e)) return -1;
        }
#undef NM
    }
    for (int i = 0; i < m->n_adapters; i++) {
        const Adapter *a = &m->adapters[i];
        for (int l = 0; l < c->n_layers; l++)
            for (int p = 0; p < P_COUNT; p++) {
                const LoraPair *lp = adapter_pair(a, l, (Proj)p);
                if (!lp) continue;
                if ((lp->A.type != DT_F32 && lp->A.type != DT_F16 && lp->A.type != DT_Q8) || lp->B.type != lp->A.type ||
                    lp->A.in_scale || lp->B.in_scale)
                    return err_set(e, "adapter \"%s\": expected f32, f16 or q8 LoRA matrices", a->name);
                snprintf(name, sizeof name, "lora.%s.%d.%s.A", a->name, l, proj_name((Proj)p));
                if (add_tensor(w, name, &lp->A, e)) return -1;
                name[strlen(name) - 1] = 'B';
                if (add_tensor(w, name, &lp->B, e)) return -1;
                if (lp->dora) { /* DoRA's per-row factor, computed against the unquantized base */
                    QMat d = {.type = DT_F32, .rows = 1, .cols = proj_out(c, (Proj)p), .data = lp->dora};
                    snprintf(name, sizeof name, "lora.%s.%d.%s.dora", a->name, l, proj_name((Proj)p));
                    if (add_tensor(w, name, &d, e)) return -1;
                }
            }
    }
    return 0;
}

int duet_write(const WriteJob *j, Err *e)
{
    Writer w = {0};
    w.tok = w.tok_cfg = -1;
    char p[4200];
    char *tok = NULL, *tcfg = NULL, *meta = NULL;
    size_t tok_len = 0, tcfg_len = 0;
    cJSON *adj = NULL, *cal = NULL;
    uint64_t *hashes = NULL;
    XXH3_state_t *st = XXH3_createState();
    int rc = -1;
    Err ignore;
    const Model *m = &j->qm->m;
    snprintf(p, sizeof p, "%s/tokenizer.json", j->base_dir);
    tok = file_read(p, &tok_len, &ignore); /* optional: a model may come without one */
    snprintf(p, sizeof p, "%s/tokenizer_config.json", j->base_dir);
    tcfg = file_read(p, &tcfg_len, &ignore);
    if (tok && (w.tok = add_region(&w, tok, tok_len)) < 0) goto oom;
    if (tcfg && (w.tok_cfg = add_region(&w, tcfg, tcfg_len)) < 0) goto oom;
    if (!st) goto oom;
    if (collect(&w, j->qm, e)) goto out;
    if (!(adj = adapters_json(m, j->ads, e))) goto out;
    uint64_t meta_size = 4096;
    for (;;) { /* the offsets depend on the meta's size, which depends on them */
        layout(&w, meta_size);
        free(meta);
        if (!(meta = meta_text(&w, m, j->quant, adj, j->calibration, NULL))) goto oom;
        uint64_t need = align64(strlen(meta) + j->meta_reserve);
        if (need <= meta_size) break;
        meta_size = need + 256;
    }
    size_t n_chunks = (size_t)((w.end - w.blob_off + HASH_CHUNK - 1) / HASH_CHUNK);
    if (!(hashes = calloc(n_chunks + 1, sizeof *hashes))) goto oom;
    if (write_head(j->f, &w, meta, meta_size, j->path, e)) goto out;
    Sink sk = {.f = j->f, .st = st, .hashes = hashes};
    XXH3_64bits_reset(st);
    if (emit_blob(&w, &sk, j, e)) goto out;
    free(meta);
    if (!(meta = meta_text(&w, m, j->quant, adj, j->calibration, hashes))) goto oom;
    if (write_head(j->f, &w, meta, meta_size, j->path, e)) goto out;
    if (j->finish) { /* the file is complete: a report may be measured on it and added */
        if (j->finish(j->ctx, &cal, e)) goto out;
        if (cal) {
            free(meta);
            if (!(meta = meta_text(&w, m, j->quant, adj, cal, hashes))) goto oom;
            if (write_head(j->f, &w, meta, meta_size, j->path, e)) goto out;
        }
    }
    if (j->rep) {
        j->rep->n_tensors = w.n_t;
        j->rep->file_bytes = (size_t)w.end;
        j->rep->weight_bytes = 0;
        for (int i = 0; i < w.n_reg; i++)
            if (i != w.tok && i != w.tok_cfg) j->rep->weight_bytes += w.reg[i].size;
    }
    rc = 0;
    goto out;
oom:
    rc = err_set(e, "out of memory writing %s", j->path);
out:
    XXH3_freeState(st);
    free(hashes);
    free(meta);
    cJSON_Delete(adj);
    cJSON_Delete(cal);
    free(tok);
    free(tcfg);
    free(w.reg);
    free(w.t);
    free(w.lazy);
    return rc;
}
