/* synth.c - synthetic checkpoints and LoRA adapters (synth.h). */
#include "compile/synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "util/half.h"

static const SynthShape shapes[] = {
    /* Qwen2-0.5B(-Instruct) config.json */
    {"qwen2-0.5b", 896, 24, 14, 2, 4864, 151936, 32768, 24, 1000000.0, 1},
    /* Qwen2-1.5B(-Instruct) */
    {"qwen2-1.5b", 1536, 28, 12, 2, 8960, 151936, 32768, 28, 1000000.0, 1},
    /* Qwen2.5-3B(-Instruct) */
    {"qwen2.5-3b", 2048, 36, 16, 2, 11008, 151936, 32768, 36, 1000000.0, 1},
    /* for tests: small enough to synth and run in milliseconds (not listed in usage) */
    {"tiny", 64, 2, 4, 2, 128, 1000, 4096, 2, 1000000.0, 1},
};

const SynthShape *synth_shape(const char *name)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) return &shapes[i];
    return NULL;
}

const char *synth_shape_names(void)
{
    return "qwen2-0.5b|qwen2-1.5b|qwen2.5-3b";
}

/* The real Qwen2 special ids, or the last two ids of a vocabulary too small for them. */
static int bos_id(const SynthShape *s)
{
    return s->vocab > 151645 ? 151643 : s->vocab - 2;
}
static int eos_id(const SynthShape *s)
{
    return s->vocab > 151645 ? 151645 : s->vocab - 1;
}

/* ---- random numbers: splitmix64, normal by Irwin-Hall over four 16-bit parts ---- */

static uint64_t splitmix(uint64_t *st)
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ~N(0, 1), within +-3.46: the sum of four uniforms has variance 1/3. One
 * generator call per value keeps 1.5 billion values to a few seconds. */
static inline float gauss(uint64_t *st)
{
    uint64_t r = splitmix(st);
    uint32_t sum = (uint32_t)(r & 0xffff) + (uint32_t)((r >> 16) & 0xffff) + (uint32_t)((r >> 32) & 0xffff) +
                   (uint32_t)(r >> 48);
    return ((float)sum * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

/* ---- safetensors writing ---- */

typedef struct TSpec {
    char name[112];
    int f32;              /* 1: F32, 0: BF16 */
    int ndim;
    int64_t shape[2];
    float mean, std;
} TSpec;

static size_t tspec_bytes(const TSpec *t)
{
    size_t n = (size_t)t->shape[0] * (t->ndim == 2 ? (size_t)t->shape[1] : 1);
    return n * (t->f32 ? 4 : 2);
}

static int mkdir_p(const char *dir, Err *e)
{
    char buf[4096];
    size_t len = strlen(dir);
    if (len >= sizeof buf) return err_set(e, "%s: path too long", dir);
    memcpy(buf, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return err_set(e, "%s: cannot create folder: %s", buf, strerror(errno));
        buf[i] = c;
    }
    return 0;
}

static int close_file(FILE *f, const char *path, Err *e)
{
    int bad = ferror(f);
    if (fclose(f) || bad) return err_set(e, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* Writes tensors t[0..n) to `path`, each filled from its own stream of `seed`. */
static int write_st(const char *path, const TSpec *t, int n, uint64_t seed, Err *e, SynthProgress *pr)
{
    size_t cap = 256 + (size_t)n * 200, len = 0;
    char *hdr = malloc(cap);
    size_t chunk = (size_t)8 << 20;
    unsigned char *buf = malloc(chunk);
    FILE *f = NULL;
    int rc = -1;
    if (!hdr || !buf) {
        err_set(e, "out of memory");
        goto out;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t nb = tspec_bytes(&t[i]);
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", t[i].name,
                                t[i].f32 ? "F32" : "BF16", (long long)t[i].shape[0]);
        if (t[i].ndim == 2) len += (size_t)snprintf(hdr + len, cap - len, ",%lld", (long long)t[i].shape[1]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' '; /* tensor data starts 8-byte aligned, as safetensors writes it */
    if (!(f = fopen(path, "wb"))) {
        err_set(e, "%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    uint64_t hl = len;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hl >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(hdr, 1, len, f);
    for (int i = 0; i < n; i++) {
        /* the stream depends on the seed and the name only, so sharding does not change the values */
        uint64_t st = seed * 0x51ed270b27a3f0c5ull;
        for (int j = 0; t[i].name[j]; j++) st = (st ^ (unsigned char)t[i].name[j]) * 0x100000001b3ull;
        size_t esz = t[i].f32 ? 4 : 2, left = tspec_bytes(&t[i]) / esz, per = chunk / esz;
        float mean = t[i].mean, sd = t[i].std;
        while (left) {
            size_t m = left < per ? left : per;
            if (t[i].f32) {
                float *p = (float *)buf;
                for (size_t k = 0; k < m; k++) p[k] = mean + sd * gauss(&st);
            } else {
                uint16_t *p = (uint16_t *)buf;
                for (size_t k = 0; k < m; k++) p[k] = f32_to_bf16(mean + sd * gauss(&st));
            }
            if (fwrite(buf, esz, m, f) != m) break;
            left -= m;
            if (pr && pr->tell) {
                pr->done += m * esz;
                pr->tell(pr->ctx, pr->done, pr->total);
            }
        }
    }
    rc = close_file(f, path, e);
out:
    free(hdr);
    free(buf);
    return rc;
}

static void tspec(TSpec *t, int f32, const char *name, int64_t rows, int64_t cols, float mean, float sd)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->f32 = f32;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->mean = mean;
    t->std = sd;
}

static const char *const proj_paths[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};

static void proj_shape(const SynthShape *s, int p, int64_t *out, int64_t *in)
{
    int hd = s->dim / s->n_heads, qd = s->n_heads * hd, kvd = s->n_kv_heads * hd;
    switch (p) {
    case 0: *out = qd, *in = s->dim; break;
    case 1:
    case 2: *out = kvd, *in = s->dim; break;
    case 3: *out = s->dim, *in = qd; break;
    case 4:
    case 5: *out = s->hidden_dim, *in = s->dim; break;
    default: *out = s->dim, *in = s->hidden_dim; break;
    }
}

static int write_text(const char *dir, const char *file, const char *text, Err *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f) return err_set(e, "%s: cannot create: %s", path, strerror(errno));
    fputs(text, f);
    return close_file(f, path, e);
}

static int write_configs(const char *dir, const SynthShape *s, Err *e)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\n"
             "  \"architectures\": [\n    \"Qwen2ForCausalLM\"\n  ],\n"
             "  \"attention_dropout\": 0.0,\n"
             "  \"bos_token_id\": %d,\n"
             "  \"eos_token_id\": %d,\n"
             "  \"hidden_act\": \"silu\",\n"
             "  \"hidden_size\": %d,\n"
             "  \"initializer_range\": 0.02,\n"
             "  \"intermediate_size\": %d,\n"
             "  \"max_position_embeddings\": %d,\n"
             "  \"max_window_layers\": %d,\n"
             "  \"model_type\": \"qwen2\",\n"
             "  \"num_attention_heads\": %d,\n"
             "  \"num_hidden_layers\": %d,\n"
             "  \"num_key_value_heads\": %d,\n"
             "  \"rms_norm_eps\": 1e-06,\n"
             "  \"rope_theta\": %.1f,\n"
             "  \"sliding_window\": %d,\n"
             "  \"tie_word_embeddings\": %s,\n"
             "  \"torch_dtype\": \"bfloat16\",\n"
             "  \"transformers_version\": \"4.43.1\",\n"
             "  \"use_cache\": true,\n"
             "  \"use_sliding_window\": false,\n"
             "  \"vocab_size\": %d\n"
             "}\n",
             bos_id(s), eos_id(s), s->dim, s->hidden_dim, s->max_pos, s->max_window_layers, s->n_heads, s->n_layers,
             s->n_kv_heads, s->rope_theta, s->max_pos, s->tied ? "true" : "false", s->vocab);
    if (write_text(dir, "config.json", buf, e)) return -1;
    snprintf(buf, sizeof buf,
             "{\n"
             "  \"bos_token_id\": %d,\n"
             "  \"do_sample\": true,\n"
             "  \"eos_token_id\": [\n    %d,\n    %d\n  ],\n"
             "  \"pad_token_id\": %d,\n"
             "  \"repetition_penalty\": 1.1,\n"
             "  \"temperature\": 0.7,\n"
             "  \"top_k\": 20,\n"
             "  \"top_p\": 0.8,\n"
             "  \"transformers_version\": \"4.43.1\"\n"
             "}\n",
             bos_id(s), eos_id(s), bos_id(s), bos_id(s));
    return write_text(dir, "generation_config.json", buf, e);
}

int synth_checkpoint(const char *dir, const SynthShape *s, uint64_t seed, size_t shard_bytes, size_t *total,
                     SynthProgress *p, Err *e)
{
    int n = 2 + 12 * s->n_layers + !s->tied, nt = 0;
    TSpec *t = calloc((size_t)n, sizeof *t);
    int *shard_of = calloc((size_t)n, sizeof *shard_of);
    int rc = -1;
    char name[112], path[4096];
    FILE *f = NULL;
    if (!t || !shard_of) {
        err_set(e, "out of memory");
        goto out;
    }
    if (mkdir_p(dir, e) || write_configs(dir, s, e)) goto out;
    const float sd = 0.02f;
    tspec(&t[nt++], 0, "model.embed_tokens.weight", s->vocab, s->dim, 0, sd);
    for (int l = 0; l < s->n_layers; l++) {
        int64_t out_f, in_f;
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        tspec(&t[nt++], 0, name, s->dim, 0, 1, sd);
        for (int p = 0; p < 7; p++) {
            proj_shape(s, p, &out_f, &in_f);
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, proj_paths[p]);
            /* 1/sqrt(in) keeps the activations' scale through each product, so the
             * layers (not just the tied embedding) decide the next token */
            tspec(&t[nt++], 0, name, out_f, in_f, 0, 1.0f / sqrtf((float)in_f));
            if (p < 3) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, proj_paths[p]);
                tspec(&t[nt++], 0, name, out_f, 0, 0, sd);
            }
        }
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        tspec(&t[nt++], 0, name, s->dim, 0, 1, sd);
    }
    tspec(&t[nt++], 0, "model.norm.weight", s->dim, 0, 1, sd);
    if (!s->tied) tspec(&t[nt++], 0, "lm_head.weight", s->vocab, s->dim, 0, sd);

    /* shards as transformers cuts them: in order, a new one when the next tensor would overflow */
    int n_shards = 1;
    size_t cur = 0, sum = 0;
    for (int i = 0; i < nt; i++) {
        size_t b = tspec_bytes(&t[i]);
        if (cur && cur + b > shard_bytes) {
            n_shards++;
            cur = 0;
        }
        cur += b;
        sum += b;
        shard_of[i] = n_shards - 1;
    }
    if (total) *total = sum;
    if (p) p->done = 0, p->total = sum;
    for (int sh = 0, i = 0; sh < n_shards; sh++) {
        int j = i;
        while (j < nt && shard_of[j] == sh) j++;
        if (n_shards == 1) snprintf(path, sizeof path, "%s/model.safetensors", dir);
        else snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, sh + 1, n_shards);
        if (write_st(path, t + i, j - i, seed, e, p)) goto out;
        i = j;
    }
    if (n_shards > 1) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!(f = fopen(path, "w"))) {
            err_set(e, "%s: cannot create: %s", path, strerror(errno));
            goto out;
        }
        fprintf(f, "{\n  \"metadata\": {\n    \"total_size\": %zu\n  },\n  \"weight_map\": {\n", sum);
        for (int i = 0; i < nt; i++)
            fprintf(f, "    \"%s\": \"model-%05d-of-%05d.safetensors\"%s\n", t[i].name, shard_of[i] + 1, n_shards,
                    i + 1 < nt ? "," : "");
        fprintf(f, "  }\n}\n");
        FILE *g = f;
        f = NULL;
        if (close_file(g, path, e)) goto out;
    }
    rc = 0;
out:
    if (f) fclose(f);
    free(t);
    free(shard_of);
    return rc;
}

int synth_lora(const char *dir, const SynthShape *s, int r, uint64_t seed, Err *e)
{
    int n = 14 * s->n_layers, nt = 0;
    TSpec *t = calloc((size_t)n, sizeof *t);
    char name[112], path[4096], cfg[4096];
    int rc = -1;
    if (!t) return err_set(e, "out of memory");
    if (mkdir_p(dir, e)) goto out;
    for (int l = 0; l < s->n_layers; l++) {
        for (int p = 0; p < 7; p++) {
            int64_t out_f, in_f;
            proj_shape(s, p, &out_f, &in_f);
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_A.weight", l, proj_paths[p]);
            tspec(&t[nt++], 1, name, r, in_f, 0, 1.0f / sqrtf((float)in_f));
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_B.weight", l, proj_paths[p]);
            tspec(&t[nt++], 1, name, out_f, r, 0, 0.02f);
        }
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (write_st(path, t, nt, seed, e, NULL)) goto out;
    snprintf(cfg, sizeof cfg,
             "{\n"
             "  \"alpha_pattern\": {},\n"
             "  \"auto_mapping\": null,\n"
             "  \"base_model_name_or_path\": \"synthetic/%s\",\n"
             "  \"bias\": \"none\",\n"
             "  \"corda_config\": null,\n"
             "  \"eva_config\": null,\n"
             "  \"exclude_modules\": null,\n"
             "  \"fan_in_fan_out\": false,\n"
             "  \"inference_mode\": true,\n"
             "  \"init_lora_weights\": true,\n"
             "  \"layer_replication\": null,\n"
             "  \"layers_pattern\": null,\n"
             "  \"layers_to_transform\": null,\n"
             "  \"loftq_config\": {},\n"
             "  \"lora_alpha\": %d,\n"
             "  \"lora_bias\": false,\n"
             "  \"lora_dropout\": 0.05,\n"
             "  \"megatron_config\": null,\n"
             "  \"megatron_core\": \"megatron.core\",\n"
             "  \"modules_to_save\": null,\n"
             "  \"peft_type\": \"LORA\",\n"
             "  \"peft_version\": \"0.21.0\",\n"
             "  \"qalora_group_size\": 16,\n"
             "  \"r\": %d,\n"
             "  \"rank_pattern\": {},\n"
             "  \"revision\": null,\n"
             "  \"target_modules\": [\n"
             "    \"gate_proj\",\n    \"k_proj\",\n    \"o_proj\",\n    \"q_proj\",\n"
             "    \"v_proj\",\n    \"down_proj\",\n    \"up_proj\"\n"
             "  ],\n"
             "  \"target_parameters\": null,\n"
             "  \"task_type\": \"CAUSAL_LM\",\n"
             "  \"trainable_token_indices\": null,\n"
             "  \"use_dora\": false,\n"
             "  \"use_qalora\": false,\n"
             "  \"use_rslora\": false\n"
             "}\n",
             s->name, 2 * r, r);
    if (write_text(dir, "adapter_config.json", cfg, e)) goto out;
    rc = 0;
out:
    free(t);
    return rc;
}
