#include "load/config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/limits.h"
#include "util/json.h"

static int rope_llama3(RopeScaling *r, const cJSON *rs, const char *name, Err *e);

const char *arch_name(Arch a)
{
    switch (a) {
    case ARCH_QWEN2: return "qwen2";
    case ARCH_LLAMA: return "llama";
    case ARCH_QWEN3: return "qwen3";
    }
    return "unknown";
}

/* Required positive int field no larger than `max`. */
static int get_size(const cJSON *j, const char *key, int *out, long long max, const char *name, Err *e)
{
    long long v;
    if (json_get_int(j, key, 1, &v, name, e)) return -1;
    if (v <= 0 || v > max) return err_set(e, "%s: field \"%s\" is %lld (expected 1 .. %lld)", name, key, v, max);
    *out = (int)v;
    return 0;
}

/* eos_token_id may be an int or a list of ints. Returns 0 (found), 1 (absent), -1. */
static int get_eos(ModelConfig *c, const cJSON *j, const char *name, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (!v || cJSON_IsNull(v)) return 1;
    c->n_eos = 0;
    const cJSON *item = cJSON_IsArray(v) ? v->child : v;
    for (; item; item = cJSON_IsArray(v) ? item->next : NULL) {
        double d = item->valuedouble;
        if (!cJSON_IsNumber(item) || d < 0 || d > INT_MAX || d != (int)d)
            return err_set(e, "%s: field \"eos_token_id\": expected a token id or a list of them", name);
        if (c->n_eos == CONFIG_MAX_EOS) return err_set(e, "%s: field \"eos_token_id\": more than %d ids", name, CONFIG_MAX_EOS);
        c->eos_ids[c->n_eos++] = (int)d;
    }
    return 0;
}

int config_parse(ModelConfig *c, const char *text, size_t len, const char *name, Err *e)
{
    memset(c, 0, sizeof *c);
    cJSON *j = json_parse(text, len, name, e);
    if (!j) return -1;
    int rc = -1;
    const char *mt = NULL, *act = NULL;
    if (!cJSON_IsObject(j)) {
        err_set(e, "%s: expected a JSON object", name);
        goto out;
    }
    if (json_get_str(j, "model_type", 1, &mt, name, e)) goto out;
    if (!strcmp(mt, "qwen2")) c->arch = ARCH_QWEN2;
    else if (!strcmp(mt, "llama")) c->arch = ARCH_LLAMA;
    else if (!strcmp(mt, "qwen3")) c->arch = ARCH_QWEN3;
    else {
        err_set(e, "%s: field \"model_type\" is \"%.40s\" (duet runs qwen2, qwen3 and llama)", name, mt);
        goto out;
    }
    if (get_size(j, "hidden_size", &c->dim, LIMIT_DIM, name, e) ||
        get_size(j, "num_hidden_layers", &c->n_layers, LIMIT_LAYERS, name, e) ||
        get_size(j, "num_attention_heads", &c->n_heads, LIMIT_HEADS, name, e) ||
        get_size(j, "intermediate_size", &c->hidden_dim, LIMIT_HIDDEN, name, e) ||
        get_size(j, "vocab_size", &c->vocab_size, LIMIT_VOCAB, name, e))
        goto out;
    long long v;
    int r = json_get_int(j, "num_key_value_heads", 0, &v, name, e);
    if (r < 0) goto out;
    c->n_kv_heads = r ? c->n_heads : (int)v;
    if (r == 0 && (v <= 0 || v > c->n_heads || c->n_heads % v)) {
        err_set(e, "%s: field \"num_key_value_heads\" is %lld (expected a divisor of num_attention_heads = %d)", name, v,
                c->n_heads);
        goto out;
    }
    r = json_get_int(j, "head_dim", 0, &v, name, e);
    if (r < 0) goto out;
    if (r == 0 && v > 0) {
        if (v > LIMIT_HEAD_DIM || v % 2) {
            err_set(e, "%s: field \"head_dim\" is %lld (expected an even number up to %d)", name, v, LIMIT_HEAD_DIM);
            goto out;
        }
        c->head_dim = (int)v;
    } else {
        if (c->dim % c->n_heads) {
            err_set(e, "%s: num_attention_heads = %d does not divide hidden_size = %d", name, c->n_heads, c->dim);
            goto out;
        }
        c->head_dim = c->dim / c->n_heads;
        if (c->head_dim % 2) {
            err_set(e, "%s: head size hidden_size / num_attention_heads = %d is odd (rotary embeddings need it even)", name,
                    c->head_dim);
            goto out;
        }
    }
    r = json_get_int(j, "max_position_embeddings", 0, &v, name, e);
    if (r < 0) goto out;
    c->max_pos = r ? 32768 : (int)(v > 0 && v <= INT_MAX ? v : (v > INT_MAX ? INT_MAX : 32768));

    /* rope theta: top level (older layout) or rope_parameters (transformers 5) */
    double theta = 10000.0;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    r = json_get_num(j, "rope_theta", 0, &theta, name, e);
    if (r < 0) goto out;
    if (rp && !cJSON_IsNull(rp)) {
        if (!cJSON_IsObject(rp)) {
            err_set(e, "%s: field \"rope_parameters\": expected an object", name);
            goto out;
        }
        if (json_get_num(rp, "rope_theta", r == 1, &theta, name, e) < 0) goto out;
        rs = rp;
    }
    if (!(theta > 0)) {
        err_set(e, "%s: field \"rope_theta\" must be positive", name);
        goto out;
    }
    c->rope_theta = theta < 3e38 ? (float)theta : 3e38f; /* config_check bounds it */
    if (rs && !cJSON_IsNull(rs)) {
        const char *rt = NULL;
        if (!cJSON_IsObject(rs) || json_get_str(rs, "rope_type", 0, &rt, name, e) < 0) {
            err_set(e, "%s: field \"rope_scaling\": expected an object with \"rope_type\"", name);
            goto out;
        }
        if (!rt && json_get_str(rs, "type", 0, &rt, name, e) < 0) goto out;
        if (rt && !strcmp(rt, "llama3")) {
            if (rope_llama3(&c->rope, rs, name, e)) goto out;
        } else if (rt && strcmp(rt, "default")) {
            err_set(e, "%s: rope_type \"%.40s\" is not supported (duet implements the default rotary embedding and "
                    "llama3)", name, rt);
            goto out;
        }
    }
    double eps = 1e-6;
    if (json_get_num(j, "rms_norm_eps", 0, &eps, name, e) < 0) goto out;
    if (!(eps > 0 && eps < 1)) {
        err_set(e, "%s: field \"rms_norm_eps\" must be in (0, 1)", name);
        goto out;
    }
    c->norm_eps = (float)eps;
    if (json_get_str(j, "hidden_act", 0, &act, name, e) < 0) goto out;
    if (act && strcmp(act, "silu")) {
        err_set(e, "%s: field \"hidden_act\" is \"%.40s\" (duet implements silu)", name, act);
        goto out;
    }
    c->tie_embeddings = 0; /* transformers' default for qwen2, qwen3 and llama */
    int b;
    r = json_get_bool(j, "tie_word_embeddings", 0, &b, name, e);
    if (r < 0) goto out;
    if (r == 0) c->tie_embeddings = b;
    c->qkv_bias = c->arch == ARCH_QWEN2;
    r = json_get_bool(j, "attention_bias", 0, &b, name, e);
    if (r < 0) goto out;
    if (r == 0 && c->arch != ARCH_QWEN2) c->qkv_bias = b;
    c->qk_norm = c->arch == ARCH_QWEN3;
    r = json_get_bool(j, "use_sliding_window", 0, &b, name, e);
    if (r < 0) goto out;
    if (r == 0 && b) {
        err_set(e, "%s: field \"use_sliding_window\" is true (sliding-window attention is not supported)", name);
        goto out;
    }
    if (c->arch == ARCH_LLAMA && json_get_bool(j, "mlp_bias", 0, &b, name, e) == 0 && b) {
        err_set(e, "%s: field \"mlp_bias\" is true (not supported)", name);
        goto out;
    }
    c->bos_id = -1;
    if (json_get_int(j, "bos_token_id", 0, &v, name, e) == 0 && v >= 0 && v < c->vocab_size) c->bos_id = (int)v;
    if (get_eos(c, j, name, e) < 0) goto out;
    rc = config_check(c, name, e); /* the limits a .duet's config gets too */
out:
    cJSON_Delete(j);
    return rc;
}

int config_gen_parse(GenDefaults *g, const cJSON *j, const char *name, Err *e)
{
    *g = (GenDefaults){.temperature = 1.0f, .top_k = 50, .top_p = 1.0f, .repetition_penalty = 1.0f};
    static const char *const keys[] = {"temperature", "top_p", "min_p", "repetition_penalty"};
    static const double lo[] = {0, 0, 0, 0.01}, hi[] = {100, 1, 1, 100};
    float *dst[] = {&g->temperature, &g->top_p, &g->min_p, &g->repetition_penalty};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo[i] && v->valuedouble <= hi[i]))
            return err_set(e, "%s: field \"%s\": expected a number from %g to %g", name, keys[i], lo[i], hi[i]);
        *dst[i] = (float)v->valuedouble;
        g->set = 1;
    }
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "top_k");
    if (k && !cJSON_IsNull(k)) {
        if (!cJSON_IsNumber(k) || k->valuedouble != (int)k->valuedouble || k->valuedouble < 0 || k->valuedouble > 1 << 24)
            return err_set(e, "%s: field \"top_k\": expected a non-negative integer", name);
        g->top_k = (int)k->valuedouble;
        g->set = 1;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "do_sample");
    if (d && !cJSON_IsNull(d)) {
        if (!cJSON_IsBool(d)) return err_set(e, "%s: field \"do_sample\": expected true or false", name);
        g->do_sample = cJSON_IsTrue(d);
        g->set = 1;
    }
    return 0;
}

int config_load_dir(ModelConfig *c, const char *dir, Err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = file_read(path, &len, e);
    if (!text) return -1;
    int rc = config_parse(c, text, len, path, e);
    free(text);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* optional */
    fclose(f);
    cJSON *g = json_parse_file(path, e);
    if (!g) return -1;
    ModelConfig tmp = *c;
    rc = cJSON_IsObject(g) ? get_eos(&tmp, g, path, e) : err_set(e, "%s: expected a JSON object", path);
    if (rc >= 0 && config_gen_parse(&c->gen, g, path, e)) rc = -1;
    if (rc == 0) {
        c->n_eos = tmp.n_eos;
        memcpy(c->eos_ids, tmp.eos_ids, sizeof c->eos_ids);
        rc = config_check(c, path, e);
    }
    cJSON_Delete(g);
    return rc < 0 ? -1 : 0;
}

float config_rope_freq(const ModelConfig *c, int i)
{
    float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
    const RopeScaling *r = &c->rope;
    if (!r->llama3) return inv;
    double wavelen = 2 * M_PI / inv, low_wavelen = r->original_ctx / r->low_freq_factor,
           high_wavelen = r->original_ctx / r->high_freq_factor;
    if (wavelen < high_wavelen) return inv;                 /* high frequencies: kept */
    if (wavelen > low_wavelen) return (float)(inv / r->factor); /* low ones: divided by factor */
    double smooth = (r->original_ctx / wavelen - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
    return (float)((1 - smooth) * inv / r->factor + smooth * inv);
}

/* rope_type "llama3": its four fields, all required as transformers requires them. */
static int rope_llama3(RopeScaling *r, const cJSON *rs, const char *name, Err *e)
{
    double f, lo, hi;
    long long orig;
    if (json_get_num(rs, "factor", 1, &f, name, e) < 0 || json_get_num(rs, "low_freq_factor", 1, &lo, name, e) < 0 ||
        json_get_num(rs, "high_freq_factor", 1, &hi, name, e) < 0 ||
        json_get_int(rs, "original_max_position_embeddings", 1, &orig, name, e) < 0)
        return -1;
    r->llama3 = 1;
    r->factor = (float)(fabs(f) < 3e38 ? f : INFINITY); /* config_check bounds them */
    r->low_freq_factor = (float)(fabs(lo) < 3e38 ? lo : INFINITY);
    r->high_freq_factor = (float)(fabs(hi) < 3e38 ? hi : INFINITY);
    r->original_ctx = orig > 0 && orig <= INT_MAX ? (int)orig : 0;
    return 0;
}

int config_check(const ModelConfig *c, const char *name, Err *e)
{
    if (c->arch < ARCH_QWEN2 || c->arch > ARCH_QWEN3) return err_set(e, "%s: config: unknown architecture", name);
    /* each field with its config.json name, so one message serves both files */
#define RANGE(f, hf, lo, hi)                                                                                          \
    if (c->f < (lo) || c->f > (hi))                                                                                   \
    return err_set(e, "%s: config: field \"" #f "\" (" hf ") is %d (expected %d .. %d)", name, c->f, lo, hi)
    RANGE(dim, "hidden_size", 1, LIMIT_DIM);
    RANGE(n_layers, "num_hidden_layers", 1, LIMIT_LAYERS);
    RANGE(n_heads, "num_attention_heads", 1, LIMIT_HEADS);
    RANGE(n_kv_heads, "num_key_value_heads", 1, c->n_heads);
    RANGE(head_dim, "head_dim", 2, LIMIT_HEAD_DIM);
    RANGE(hidden_dim, "intermediate_size", 1, LIMIT_HIDDEN);
    RANGE(vocab_size, "vocab_size", 1, LIMIT_VOCAB);
    RANGE(max_pos, "max_position_embeddings", 1, LIMIT_MAX_POS);
    RANGE(tie_embeddings, "tie_word_embeddings", 0, 1);
    RANGE(qkv_bias, "attention_bias", 0, 1);
    RANGE(qk_norm, "qk_norm", 0, 1);
    RANGE(bos_id, "bos_token_id", -1, c->vocab_size - 1);
    RANGE(n_eos, "eos_token_id", 0, CONFIG_MAX_EOS);
#undef RANGE
    if (c->n_heads % c->n_kv_heads)
        return err_set(e, "%s: config: n_kv_heads = %d does not divide n_heads = %d", name, c->n_kv_heads, c->n_heads);
    if (c->n_heads / c->n_kv_heads > LIMIT_GQA_GROUP)
        return err_set(e, "%s: config: %d query heads per key/value head (num_attention_heads / num_key_value_heads; "
                       "expected at most %d)", name, c->n_heads / c->n_kv_heads, LIMIT_GQA_GROUP);
    if (c->head_dim % 2) return err_set(e, "%s: config: head_dim %d is odd (rotary embeddings need it even)", name, c->head_dim);
    if (!(c->rope_theta > 0 && c->rope_theta < LIMIT_ROPE_THETA))
        return err_set(e, "%s: config: rope_theta %g: expected a positive number below %g", name, (double)c->rope_theta,
                       LIMIT_ROPE_THETA);
    const RopeScaling *r = &c->rope;
    if (r->llama3 && !(r->factor >= 1 && r->factor <= LIMIT_ROPE_FACTOR && r->low_freq_factor > 0 &&
                       r->high_freq_factor > r->low_freq_factor && r->high_freq_factor <= LIMIT_ROPE_FACTOR &&
                       r->original_ctx >= 1 && r->original_ctx <= LIMIT_MAX_POS))
        return err_set(e, "%s: config: rope_type llama3: factor %g, low_freq_factor %g, high_freq_factor %g, "
                       "original_max_position_embeddings %d: expected 1 <= factor <= %g, 0 < low_freq_factor < "
                       "high_freq_factor <= %g, 1 <= original_max_position_embeddings <= %d", name, (double)r->factor,
                       (double)r->low_freq_factor, (double)r->high_freq_factor, r->original_ctx, LIMIT_ROPE_FACTOR,
                       LIMIT_ROPE_FACTOR, LIMIT_MAX_POS);
    if (!(c->norm_eps > 0 && c->norm_eps < 1)) return err_set(e, "%s: config: norm_eps (rms_norm_eps) must be in (0, 1)", name);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] < 0 || c->eos_ids[i] >= c->vocab_size)
            return err_set(e, "%s: config: eos id %d (eos_token_id) is outside the vocabulary (expected 0 .. %d)", name, c->eos_ids[i],
                           c->vocab_size - 1);
    return 0;
}
