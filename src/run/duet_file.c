/* duet_file.c - opening a compiled .duet file (docs/FORMAT.md): map it,
 * check everything the reading rules list, and point the Model's matrices
 * straight into the mapping. Nothing is copied. */
#include "run/duet_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "load/limits.h"
#include "util/json.h"


typedef struct TEnt {
    const char *name;
    QMat q;
    int used;
} TEnt;

typedef struct Span {
    uint64_t off, size;
} Span;

typedef struct Parse {
    const unsigned char *buf;
    uint64_t len, blob_off;
    const char *name;
    TEnt *t;                   /* sorted by name once read (want() searches it) */
    int n_t;
    Span *sp;
    int n_sp, cap_sp;
    uint32_t version;   /* the header's */
} Parse;

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* A non-negative integer field below 2^53. 1 if absent and not required. */
static int get_u64(const cJSON *o, const char *key, int required, uint64_t *out, const char *what, const Parse *P,
                   Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v && !required) return 1;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble))
        return err_set(e, "%s: %s: field \"%s\": expected a non-negative integer", P->name, what, key);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

static int get_int(const cJSON *o, const char *key, int *out, long lo, long hi, const char *what, const Parse *P, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) || v->valuedouble != floor(v->valuedouble))
        return err_set(e, "%s: %s: field \"%s\": expected an integer in %ld .. %ld", P->name, what, key, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

/* Records [off, off+size) as used, checking it lies in the blob section. */
static int span_add(Parse *P, uint64_t off, uint64_t size, int aligned, const char *what, Err *e)
{
    if (off < P->blob_off || off > P->len || size > P->len - off)
        return err_set(e, "%s: %s: bytes %llu .. +%llu lie outside the blob section (%llu .. %llu)", P->name, what,
                       (unsigned long long)off, (unsigned long long)size, (unsigned long long)P->blob_off,
                       (unsigned long long)P->len);
    if (aligned && off % 64) return err_set(e, "%s: %s: offset %llu is not 64-byte aligned", P->name, what, (unsigned long long)off);
    if (P->n_sp == P->cap_sp) {
        int cap = P->cap_sp ? 2 * P->cap_sp : 256;
        Span *ns = realloc(P->sp, (size_t)cap * sizeof *ns);
        if (!ns) return err_set(e, "out of memory");
        P->sp = ns;
        P->cap_sp = cap;
    }
    P->sp[P->n_sp++] = (Span){off, size};
    return 0;
}

static int span_cmp(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int check_header(Parse *P, uint64_t *meta_size, Err *e)
{
    const unsigned char *b = P->buf;
    if (P->len < 64) return err_set(e, "%s: truncated: %llu bytes, the header alone is 64", P->name, (unsigned long long)P->len);
    if (memcmp(b, "DUETMDL", 8)) return err_set(e, "%s: not a .duet file (bad magic)", P->name);
    uint32_t ver = rd32(b + 8), flags = rd32(b + 12);
    if (ver < DUET_FORMAT_MIN_VERSION || ver > DUET_FORMAT_VERSION)
        return err_set(e, "%s: format version %u is not supported (this duet reads versions %d to %d)", P->name, ver,
                       DUET_FORMAT_MIN_VERSION, DUET_FORMAT_VERSION);
    P->version = ver;
    if (XXH3_64bits(b, 56) != rd64(b + 56)) return err_set(e, "%s: header checksum mismatch (the file is damaged)", P->name);
    if (flags) return err_set(e, "%s: unknown header flags 0x%x", P->name, flags);
    uint64_t mo = rd64(b + 16), ms = rd64(b + 24), bo = rd64(b + 32), bs = rd64(b + 40);
    if (mo != 64 || ms % 64 || ms == 0 || ms > P->len || bo != mo + ms)
        return err_set(e, "%s: header: meta at %llu size %llu, blob at %llu do not fit a %llu-byte file", P->name,
                       (unsigned long long)mo, (unsigned long long)ms, (unsigned long long)bo, (unsigned long long)P->len);
    if (bo > P->len || bs != P->len - bo)
        return err_set(e, "%s: truncated or extended: the header describes %llu bytes, the file has %llu", P->name,
                       (unsigned long long)(bo + bs), (unsigned long long)P->len);
    if (XXH3_64bits(b + mo, (size_t)ms) != rd64(b + 48)) return err_set(e, "%s: meta section checksum mismatch (the file is damaged)", P->name);
    P->blob_off = bo;
    *meta_size = ms;
    return 0;
}

static int check_blob_hashes(Parse *P, const cJSON *j, Err *e)
{
    const cJSON *bh = cJSON_GetObjectItemCaseSensitive(j, "blob_hashes");
    if (!cJSON_IsArray(bh)) return err_set(e, "%s: meta: field \"blob_hashes\": expected an array", P->name);
    uint64_t cur = P->blob_off;
    for (const cJSON *h = bh->child; h; h = h->next) {
        uint64_t off, size;
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(h, "xxh3");
        if (get_u64(h, "offset", 1, &off, "blob_hashes", P, e) || get_u64(h, "size", 1, &size, "blob_hashes", P, e))
            return -1;
        if (off != cur || size > P->len - off || size == 0)
            return err_set(e, "%s: blob_hashes: chunk at %llu does not continue the previous one", P->name, (unsigned long long)off);
        if (!cJSON_IsString(x) || strlen(x->valuestring) != 16)
            return err_set(e, "%s: blob_hashes: field \"xxh3\": expected 16 hex digits", P->name);
        char *end;
        unsigned long long want = strtoull(x->valuestring, &end, 16);
        if (*end) return err_set(e, "%s: blob_hashes: field \"xxh3\": expected 16 hex digits", P->name);
        if (XXH3_64bits(P->buf + off, (size_t)size) != want)
            return err_set(e, "%s: checksum mismatch in the blob bytes %llu .. %llu (the file is damaged)", P->name,
                           (unsigned long long)off, (unsigned long long)(off + size));
        cur = off + size;
    }
    if (cur != P->len) return err_set(e, "%s: blob_hashes do not cover the blob section", P->name);
    return 0;
}

static int tent_cmp(const void *a, const void *b) { return strcmp(((const TEnt *)a)->name, ((const TEnt *)b)->name); }

static int parse_tensors(Parse *P, const cJSON *j, Err *e)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "tensors");
    if (!cJSON_IsArray(ts)) return err_set(e, "%s: meta: field \"tensors\": expected an array", P->name);
    int n = cJSON_GetArraySize(ts);
    P->t = calloc(n ? (size_t)n : 1, sizeof *P->t);
    if (!P->t) return err_set(e, "out of memory");
    for (const cJSON *o = ts->child; o; o = o->next) {
        TEnt *t = &P->t[P->n_t];
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name"), *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
        if (!cJSON_IsString(nm)) return err_set(e, "%s: tensor %d: field \"name\": expected a string", P->name, P->n_t);
        t->name = nm->valuestring;
        char what[128];
        snprintf(what, sizeof what, "tensor \"%.80s\"", t->name);
        int type = cJSON_IsString(ty) ? dtype_from_name(ty->valuestring) : -1;
        if (type < 0)
            return err_set(e, "%s: %s: unknown type \"%.20s\" (this duet reads f32, f16, bf16, q8, q4, q6, q5, iq4, iq3, q6k, q5k, iq4k and iq3k)",
                           P->name, what, cJSON_IsString(ty) ? ty->valuestring : "?");
        if ((type > DT_Q4 && P->version < 2) || (dtype_is_super((DType)type) && P->version < 3))
            return err_set(e, "%s: %s: type %s needs format version %d (the header says %u)", P->name, what,
                           dtype_name((DType)type), dtype_is_super((DType)type) ? 3 : 2, P->version);
        t->q.type = (DType)type;
        if (get_int(o, "rows", &t->q.rows, 1, 1 << 30, what, P, e) || get_int(o, "cols", &t->q.cols, 1, 1 << 30, what, P, e))
            return -1;
        uint64_t off, size, want = qmat_data_bytes(t->q.type, t->q.rows, t->q.cols);
        if (get_u64(o, "data", 1, &off, what, P, e) || get_u64(o, "data_size", 1, &size, what, P, e)) return -1;
        if (size != want)
            return err_set(e, "%s: %s: data_size %llu, but %s %d x %d takes %llu bytes", P->name, what, (unsigned long long)size,
                           dtype_name(t->q.type), t->q.rows, t->q.cols, (unsigned long long)want);
        if (span_add(P, off, size, 1, what, e)) return -1;
        t->q.data = P->buf + off;
        int quant = dtype_is_block(t->q.type);
        int r = get_u64(o, "scales", quant, &off, what, P, e);
        if (r < 0) return -1;
        if (r == 0) {
            want = qmat_scale_bytes(t->q.type, t->q.rows, t->q.cols);
            if (!quant) return err_set(e, "%s: %s: a %s tensor has no scales", P->name, what, dtype_name(t->q.type));
            if (get_u64(o, "scales_size", 1, &size, what, P, e)) return -1;
            if (size != want) return err_set(e, "%s: %s: scales_size %llu (expected %llu)", P->name, what, (unsigned long long)size, (unsigned long long)want);
            if (span_add(P, off, size, 1, what, e)) return -1;
            t->q.scales = (const uint16_t *)(P->buf + off);
        }
        if ((r = get_u64(o, "in_scale", 0, &off, what, P, e)) < 0) return -1;
        if (r == 0) {
            if (span_add(P, off, (uint64_t)t->q.cols * 4, 1, what, e)) return -1;
            t->q.in_scale = (const float *)(P->buf + off);
        }
        P->n_t++;
    }
    /* sorted by name: duplicates are neighbours, and want() is a binary search
     * (a linear one made opening quadratic in the tensor count) */
    qsort(P->t, (size_t)P->n_t, sizeof *P->t, tent_cmp);
    for (int i = 1; i < P->n_t; i++)
        if (!strcmp(P->t[i - 1].name, P->t[i].name))
            return err_set(e, "%s: tensor \"%.80s\" appears twice", P->name, P->t[i].name);
    return 0;
}

/* What a tensor's type may be: any weight type, f32 alone (norms, biases,
 * DoRA factors), or f32/f16 (LoRA A and B; q8 too is taken by want_lora). */
enum { ANY_TYPE = 0, F32_ONLY = 1, F32_OR_F16 = 2 };

/* The tensor `name` with shape rows x cols and a type allowed by `types`. */
static const QMat *want(Parse *P, const char *name, int rows, int cols, int types, Err *e)
{
    TEnt key = {.name = name}, *t = P->n_t ? bsearch(&key, P->t, (size_t)P->n_t, sizeof *P->t, tent_cmp) : NULL;
    if (t) {
        if (t->q.rows != rows || t->q.cols != cols)
            return err_set(e, "%s: tensor \"%s\" is %d x %d (expected %d x %d)", P->name, name, t->q.rows, t->q.cols, rows, cols), NULL;
        if ((types == F32_ONLY && (t->q.type != DT_F32 || t->q.in_scale)) ||
            (types == F32_OR_F16 && ((t->q.type != DT_F32 && t->q.type != DT_F16) || t->q.in_scale)))
            return err_set(e, "%s: tensor \"%s\" is %s (expected plain %s)", P->name, name, dtype_name(t->q.type),
                           types == F32_ONLY ? "f32" : P->version >= 4 ? "f32, f16 or q8" : "f32 or f16"), NULL;
        t->used = 1;
        return &t->q;
    }
    err_set(e, "%s: tensor \"%s\" is missing", P->name, name);
    return NULL;
}

/* A LoRA matrix, rows x cols as PEFT has it (A: r x in, B: out x r), in
 * f32 or f16; or, from format version 4 on, in q8, B then in blocks of 32
 * output rows (ceil(out / 32) * r x 32: kern.h's KernLora). */
static const QMat *want_lora(Parse *P, const char *name, int rows, int cols, int is_b, Err *e)
{
    TEnt key = {.name = name}, *t = P->n_t ? bsearch(&key, P->t, (size_t)P->n_t, sizeof *P->t, tent_cmp) : NULL;
    if (!t || t->q.type != DT_Q8 || t->q.in_scale) return want(P, name, rows, cols, F32_OR_F16, e);
    if (P->version < 4)
        return err_set(e, "%s: tensor \"%s\": an 8-bit LoRA matrix needs format version 4 (the header says %u)", P->name,
                       name, P->version), NULL;
    return is_b ? want(P, name, (rows + QBLOCK - 1) / QBLOCK * cols, QBLOCK, ANY_TYPE, e) : want(P, name, rows, cols, ANY_TYPE, e);
}

static const float *wantv(Parse *P, const char *name, int n, Err *e)
{
    const QMat *q = want(P, name, 1, n, F32_ONLY, e);
    return q ? q->data : NULL;
}

static int parse_config(Parse *P, const cJSON *j, ModelConfig *c, Err *e)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "config");
    if (!cJSON_IsObject(o)) return err_set(e, "%s: meta: field \"config\": expected an object", P->name);
    memset(c, 0, sizeof *c);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "arch");
    const char *an = cJSON_IsString(a) ? a->valuestring : "";
    if (!strcmp(an, "qwen2")) c->arch = ARCH_QWEN2;
    else if (!strcmp(an, "llama")) c->arch = ARCH_LLAMA;
    else if (!strcmp(an, "qwen3")) c->arch = ARCH_QWEN3;
    else return err_set(e, "%s: config: field \"arch\" is \"%.40s\" (expected qwen2, qwen3 or llama)", P->name, an);
    const char *w = "config";
    /* any int here; config_check applies the limits (load/limits.h), as for a config.json */
    if (get_int(o, "dim", &c->dim, 0, INT_MAX, w, P, e) || get_int(o, "n_layers", &c->n_layers, 0, INT_MAX, w, P, e) ||
        get_int(o, "n_heads", &c->n_heads, 0, INT_MAX, w, P, e) || get_int(o, "n_kv_heads", &c->n_kv_heads, 0, INT_MAX, w, P, e) ||
        get_int(o, "head_dim", &c->head_dim, 0, INT_MAX, w, P, e) || get_int(o, "hidden_dim", &c->hidden_dim, 0, INT_MAX, w, P, e) ||
        get_int(o, "vocab_size", &c->vocab_size, 0, INT_MAX, w, P, e) || get_int(o, "max_pos", &c->max_pos, 0, INT_MAX, w, P, e) ||
        get_int(o, "bos_id", &c->bos_id, -1, INT_MAX, w, P, e))
        return -1;
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(o, "rope_theta"), *ne = cJSON_GetObjectItemCaseSensitive(o, "norm_eps");
    if (!cJSON_IsNumber(rt) || !cJSON_IsNumber(ne)) return err_set(e, "%s: config: rope_theta and norm_eps must be numbers", P->name);
    c->rope_theta = fabs(rt->valuedouble) < 3e38 ? (float)rt->valuedouble : INFINITY; /* config_check refuses it */
    c->norm_eps = fabs(ne->valuedouble) < 3e38 ? (float)ne->valuedouble : INFINITY;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "rope_scaling"); /* optional: rope_type llama3 */
    if (rs) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        const char *keys[4] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
        double v[4];
        for (int i = 0; i < 4; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(rs, keys[i]);
            v[i] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        }
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "llama3") || isnan(v[0] + v[1] + v[2] + v[3]))
            return err_set(e, "%s: config: field \"rope_scaling\": expected rope_type \"llama3\" with factor, "
                           "low_freq_factor, high_freq_factor and original_max_position_embeddings", P->name);
        c->rope.llama3 = 1;
        c->rope.factor = fabs(v[0]) < 3e38 ? (float)v[0] : INFINITY; /* config_check bounds them */
        c->rope.low_freq_factor = fabs(v[1]) < 3e38 ? (float)v[1] : INFINITY;
        c->rope.high_freq_factor = fabs(v[2]) < 3e38 ? (float)v[2] : INFINITY;
        c->rope.original_ctx = v[3] >= 1 && v[3] <= INT_MAX && v[3] == floor(v[3]) ? (int)v[3] : 0;
    }
    const char *bools[3] = {"tie_embeddings", "qkv_bias", "qk_norm"};
    int *bv[3] = {&c->tie_embeddings, &c->qkv_bias, &c->qk_norm};
    for (int i = 0; i < 3; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, bools[i]);
        if (!cJSON_IsBool(b)) return err_set(e, "%s: config: field \"%s\": expected true or false", P->name, bools[i]);
        *bv[i] = cJSON_IsTrue(b);
    }
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(o, "eos_ids");
    if (!cJSON_IsArray(eos) || cJSON_GetArraySize(eos) > CONFIG_MAX_EOS)
        return err_set(e, "%s: config: field \"eos_ids\": expected a list of up to %d ids", P->name, CONFIG_MAX_EOS);
    for (const cJSON *x = eos->child; x; x = x->next) {
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || fabs(x->valuedouble) > 1e9)
            return err_set(e, "%s: config: field \"eos_ids\": expected integers", P->name);
        c->eos_ids[c->n_eos++] = (int)x->valuedouble;
    }
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "generation"); /* optional */
    if (g && !cJSON_IsObject(g)) return err_set(e, "%s: config: field \"generation\": expected an object", P->name);
    if (g && config_gen_parse(&c->gen, g, P->name, e)) return -1;
    return config_check(c, P->name, e);
}

static int build_weights(Parse *P, Model *m, Err *e)
{
    const ModelConfig *c = &m->cfg;
    int hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    char nm[160];
    const QMat *q;
    if (!(m->layers = calloc((size_t)c->n_layers, sizeof *m->layers))) return err_set(e, "out of memory");
    if (!(q = want(P, "embed", c->vocab_size, c->dim, 0, e))) return -1;
    m->embed = *q;
    if (c->tie_embeddings) m->lm_head = m->embed;
    else if (!(q = want(P, "lm_head", c->vocab_size, c->dim, 0, e))) return -1;
    else m->lm_head = *q;
    if (!(m->final_norm = wantv(P, "final_norm", c->dim, e))) return -1;
    for (int l = 0; l < c->n_layers; l++) {
        Layer *L = &m->layers[l];
#define NM(s) (snprintf(nm, sizeof nm, "layers.%d.%s", l, s), nm)
        if (!(L->attn_norm = wantv(P, NM("attn_norm"), c->dim, e)) || !(L->ffn_norm = wantv(P, NM("ffn_norm"), c->dim, e)))
            return -1;
        if (c->qkv_bias && (!(L->bq = wantv(P, NM("q_bias"), qd, e)) || !(L->bk = wantv(P, NM("k_bias"), kvd, e)) ||
                            !(L->bv = wantv(P, NM("v_bias"), kvd, e))))
            return -1;
        if (c->qk_norm && (!(L->q_norm = wantv(P, NM("q_norm"), hd, e)) || !(L->k_norm = wantv(P, NM("k_norm"), hd, e))))
            return -1;
        for (int p = 0; p < P_COUNT; p++) {
            if (!(q = want(P, NM(proj_name((Proj)p)), proj_out(c, (Proj)p), proj_in(c, (Proj)p), 0, e))) return -1;
            L->w[p] = *q;
        }
#undef NM
    }
    model_fuse(m);
    return 0;
}

static int parse_adapter(Parse *P, Model *m, const cJSON *o, Adapter *a, Err *e)
{
    const ModelConfig *c = &m->cfg;
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name"), *hs = cJSON_GetObjectItemCaseSensitive(o, "source_hash");
    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(o, "pairs");
    char where[4200];
    snprintf(where, sizeof where, "%s: adapter", P->name);
    if (!cJSON_IsString(nm)) return err_set(e, "%s: adapter: field \"name\": expected a string", P->name);
    if (limit_adapter_name(nm->valuestring, where, e)) return -1;
    const char *name = nm->valuestring;
    if (model_find_adapter(m, name) >= 0) return err_set(e, "%s: adapter name \"%s\" appears twice", P->name, name);
    if (!cJSON_IsArray(pairs)) return err_set(e, "%s: adapter \"%s\": field \"pairs\": expected an array", P->name, name);
    a->name = strdup(name);
    size_t sl = strlen(P->name) + strlen(name) + 2;
    a->source = malloc(sl);
    a->n_layers = c->n_layers;
    a->pairs = calloc((size_t)c->n_layers * P_COUNT, sizeof *a->pairs);
    if (!a->name || !a->source || !a->pairs) return err_set(e, "out of memory");
    snprintf(a->source, sl, "%s#%s", P->name, name);
    (void)hs; /* "source_hash" is informative; the identity below is computed from the weights */
    char what[160];
    snprintf(what, sizeof what, "adapter \"%s\" pair", name);
    for (const cJSON *po = pairs->child; po; po = po->next) {
        int layer, r, p;
        const cJSON *pj = cJSON_GetObjectItemCaseSensitive(po, "proj"), *sc = cJSON_GetObjectItemCaseSensitive(po, "scale");
        const cJSON *A = cJSON_GetObjectItemCaseSensitive(po, "A"), *B = cJSON_GetObjectItemCaseSensitive(po, "B");
        if (get_int(po, "layer", &layer, 0, c->n_layers - 1, what, P, e) || get_int(po, "r", &r, 1, LIMIT_LORA_RANK, what, P, e))
            return -1;
        for (p = 0; p < P_COUNT; p++)
            if (cJSON_IsString(pj) && !strcmp(pj->valuestring, proj_name((Proj)p))) break;
        if (p == P_COUNT) return err_set(e, "%s: %s: field \"proj\": expected q_proj .. down_proj", P->name, what);
        if (!cJSON_IsNumber(sc) || !(fabs(sc->valuedouble) <= LIMIT_LORA_SCALE) || !cJSON_IsString(A) || !cJSON_IsString(B))
            return err_set(e, "%s: %s: expected a \"scale\" of magnitude at most %g and tensor names \"A\", \"B\"", P->name,
                           what, LIMIT_LORA_SCALE);
        LoraPair *lp = &a->pairs[layer * P_COUNT + p];
        if (lp->r) return err_set(e, "%s: %s: layer %d %s appears twice", P->name, what, layer, proj_name((Proj)p));
        const QMat *qa = want_lora(P, A->valuestring, r, proj_in(c, (Proj)p), 0, e);
        const QMat *qb = qa ? want_lora(P, B->valuestring, proj_out(c, (Proj)p), r, 1, e) : NULL;
        if (!qb) return -1;
        const cJSON *dn = cJSON_GetObjectItemCaseSensitive(po, "dora");
        if (dn && !cJSON_IsString(dn))
            return err_set(e, "%s: %s: field \"dora\": expected a tensor name", P->name, what);
        if (dn && !(lp->dora = wantv(P, dn->valuestring, proj_out(c, (Proj)p), e))) return -1;
        lp->r = r;
        lp->scale = (float)sc->valuedouble;
        lp->A = *qa;
        lp->B = *qb;
    }
    /* the adapter's identity (session files): every pair's scale, A, B and DoRA factors */
    XXH3_state_t *h = XXH3_createState();
    if (!h) return err_set(e, "out of memory");
    XXH3_64bits_reset(h);
    for (int i = 0; i < c->n_layers * P_COUNT; i++) {
        const LoraPair *lp = &a->pairs[i];
        if (!lp->r) continue;
        XXH3_64bits_update(h, &i, sizeof i);
        XXH3_64bits_update(h, &lp->scale, sizeof lp->scale);
        XXH3_64bits_update(h, lp->A.data, qmat_data_bytes(lp->A.type, lp->A.rows, lp->A.cols));
        XXH3_64bits_update(h, lp->B.data, qmat_data_bytes(lp->B.type, lp->B.rows, lp->B.cols));
        if (lp->A.scales) XXH3_64bits_update(h, lp->A.scales, qmat_scale_bytes(lp->A.type, lp->A.rows, lp->A.cols));
        if (lp->B.scales) XXH3_64bits_update(h, lp->B.scales, qmat_scale_bytes(lp->B.type, lp->B.rows, lp->B.cols));
        if (lp->dora) XXH3_64bits_update(h, lp->dora, (size_t)proj_out(c, (Proj)(i % P_COUNT)) * sizeof(float));
    }
    a->hash = XXH3_64bits_digest(h) | 1; /* never 0, the base's mark */
    XXH3_freeState(h);
    return 0;
}

static int parse_meta(Parse *P, Model *m, uint64_t meta_size, Err *e)
{
    const char *txt = (const char *)P->buf + 64;
    size_t tl = strnlen(txt, (size_t)meta_size);
    cJSON *j = cJSON_ParseWithLength(txt, tl);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return err_set(e, "%s: the meta section is not a JSON object", P->name);
    }
    m->meta = txt;
    m->meta_len = tl;
    int rc = -1, ver;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format"), *qt = cJSON_GetObjectItemCaseSensitive(j, "quant");
    const cJSON *ads = cJSON_GetObjectItemCaseSensitive(j, "adapters"), *blobs = cJSON_GetObjectItemCaseSensitive(j, "blobs");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "duet")) {
        err_set(e, "%s: meta: field \"format\": expected \"duet\"", P->name);
        goto out;
    }
    if (get_int(j, "version", &ver, (int)P->version, (int)P->version, "meta", P, e)) goto out;
    if (!cJSON_IsString(qt) || dtype_from_name(qt->valuestring) < 0) {
        err_set(e, "%s: meta: field \"quant\": unknown quant type \"%.20s\"", P->name, cJSON_IsString(qt) ? qt->valuestring : "?");
        goto out;
    }
    if (check_blob_hashes(P, j, e) || parse_config(P, j, &m->cfg, e) || parse_tensors(P, j, e)) goto out;
    if (blobs && !cJSON_IsObject(blobs)) {
        err_set(e, "%s: meta: field \"blobs\": expected an object", P->name);
        goto out;
    }
    const char *bn[2] = {"tokenizer", "tokenizer_config"};
    const char **bp[2] = {&m->tokenizer_json, &m->tokenizer_config};
    size_t *bl[2] = {&m->tokenizer_json_len, &m->tokenizer_config_len};
    for (int i = 0; i < 2; i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(blobs, bn[i]);
        uint64_t off, size;
        if (!b) continue;
        if (get_u64(b, "offset", 1, &off, bn[i], P, e) || get_u64(b, "size", 1, &size, bn[i], P, e) ||
            span_add(P, off, size, 0, bn[i], e))
            goto out;
        *bp[i] = (const char *)P->buf + off;
        *bl[i] = (size_t)size;
    }
    if (P->n_sp > 1) qsort(P->sp, (size_t)P->n_sp, sizeof *P->sp, span_cmp); /* sp is NULL when there is none */
    for (int i = 1; i < P->n_sp; i++)
        if (P->sp[i - 1].off + P->sp[i - 1].size > P->sp[i].off) {
            err_set(e, "%s: data regions overlap at byte %llu", P->name, (unsigned long long)P->sp[i].off);
            goto out;
        }
    for (int i = 0; i < P->n_t; i++) /* the regions are checked: their values can be read */
        if (limit_finite_qmat(&P->t[i].q, P->name, P->t[i].name, e)) goto out;
    if (build_weights(P, m, e)) goto out;
    if (ads && !cJSON_IsArray(ads)) {
        err_set(e, "%s: meta: field \"adapters\": expected an array", P->name);
        goto out;
    }
    int na = cJSON_GetArraySize(ads);
    if (na) {
        if (!(m->adapters = calloc((size_t)na, sizeof *m->adapters))) {
            err_set(e, "out of memory");
            goto out;
        }
        for (const cJSON *o = ads->child; o; o = o->next) {
            Adapter a = {0};
            if (parse_adapter(P, m, o, &a, e)) {
                adapter_free(&a);
                goto out;
            }
            m->adapters[m->n_adapters++] = a;
        }
    }
    for (int i = 0; i < P->n_t; i++)
        if (!P->t[i].used) {
            err_set(e, "%s: tensor \"%.80s\" is not used by the model or any adapter", P->name, P->t[i].name);
            goto out;
        }
    rc = 0;
out:
    /* the adapter names and tensor names were copied or are no longer needed */
    cJSON_Delete(j);
    return rc;
}

int duet_parse(Model *m, const void *buf, size_t len, const char *name, Err *e)
{
    memset(m, 0, sizeof *m);
    m->merged = -1;
    Parse P = {.buf = buf, .len = len, .name = name};
    uint64_t ms = 0;
    int rc = check_header(&P, &ms, e) ? -1 : parse_meta(&P, m, ms, e);
    free(P.t);
    free(P.sp);
    if (rc) model_close(m);
    return rc;
}

/* The whole file in anonymous memory on 2 MB pages (see MODEL_OPEN_RAM).
 * *base / *size describe the mapping to unmap; returns the file's first
 * byte (2 MB aligned), or NULL. */
static void *read_huge(int fd, size_t len, void **base, size_t *size, const ModelProgress *p)
{
    const size_t huge = (size_t)2 << 20;
    size_t tot = (len + 2 * huge) & ~(huge - 1);
    char *raw = mmap(NULL, tot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *b = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(b, (len + huge - 1) & ~(huge - 1), MADV_HUGEPAGE); /* a hint: 4 KB pages if refused */
    size_t got = 0, step = (size_t)64 << 20; /* in 64 MB reads, for the progress */
    while (got < len) {
        ssize_t r = pread(fd, b + got, len - got < step ? len - got : step, (off_t)got);
        if (r <= 0) {
            munmap(raw, tot);
            return NULL;
        }
        got += (size_t)r;
        if (p && p->tell) p->tell(p->ctx, got, len);
    }
    mprotect(raw, tot, PROT_READ); /* the weights are read-only from here on */
    *base = raw;
    *size = tot;
    return b;
}

int model_open_duet(Model *m, const char *path, int flags, Err *e) { return model_open_duet_progress(m, path, flags, NULL, e); }

int model_open_duet_progress(Model *m, const char *path, int flags, const ModelProgress *p, Err *e)
{
    memset(m, 0, sizeof *m);
    m->merged = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block the open */
    if (fd < 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set(e, "%s: not a regular file", path);
    }
    if (sb.st_size < 64) {
        close(fd);
        return err_set(e, "%s: truncated: %lld bytes, the header alone is 64", path, (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size, maplen = len;
    void *base = NULL, *map;
    int ram = (flags & MODEL_OPEN_RAM) || ((flags & MODEL_OPEN_AUTO) && model_ram_fits(len));
    map = ram ? read_huge(fd, len, &base, &maplen, p) : NULL;
    if (ram && !map && !(flags & MODEL_OPEN_RAM)) ram = 0; /* AUTO: map it after all */
    if (ram) {
        close(fd);
        if (!map) return err_set(e, "%s: cannot read %zu bytes into memory", path, len);
    } else {
        maplen = len;
        map = base = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd); /* the mapping keeps the file alive */
        if (map == MAP_FAILED) return err_set(e, "%s: cannot map %zu bytes", path, len);
    }
    if (duet_parse(m, map, len, path, e)) {
        munmap(base, maplen);
        return -1;
    }
    m->file_map = base;
    m->file_size = maplen;
    m->in_ram = ram;
    return 0;
}
