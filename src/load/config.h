/* config.h - the model hyper-parameters, read from a Hugging Face config.json
 * (both layouts: top-level rope_theta/torch_dtype as in Qwen2-1.5B-Instruct,
 * and rope_parameters.rope_theta/dtype as written by transformers 5) and
 * generation_config.json (eos ids). Plain data, no ownership. */
#ifndef DUET_CONFIG_H
#define DUET_CONFIG_H

#include "util/err.h"

typedef struct cJSON cJSON;

typedef enum Arch {
    ARCH_QWEN2 = 0, /* q/k/v biases */
    ARCH_LLAMA = 1, /* no biases */
    ARCH_QWEN3 = 2, /* no biases, RMSNorm on q and k per head */
} Arch;

#define CONFIG_MAX_EOS 8

/* The sampling settings of generation_config.json, with transformers'
 * GenerationConfig defaults for the fields it leaves out. */
typedef struct GenDefaults {
    int set;                  /* 1: the file gives do_sample or a sampling field */
    int do_sample;            /* 0: greedy (transformers' default) */
    float temperature;        /* 1.0 when absent */
    int top_k;                /* 50 when absent; 0: off */
    float top_p;              /* 1.0 when absent */
    float min_p;              /* 0 (off) when absent */
    float repetition_penalty; /* 1.0 when absent */
} GenDefaults;

/* rope_type "llama3" (Llama 3.1 and later): the low rotary frequencies
 * divided by factor, the high ones kept, a smooth blend between. */
typedef struct RopeScaling {
    int llama3;             /* 1: rope_type "llama3"; 0: the default rotary embedding */
    float factor;           /* factor: long wavelengths' frequencies divided by it */
    float low_freq_factor;  /* wavelengths above original_ctx / low_freq_factor are scaled */
    float high_freq_factor; /* below original_ctx / high_freq_factor kept; between: blended */
    int original_ctx;       /* original_max_position_embeddings */
} RopeScaling;

typedef struct ModelConfig {
    Arch arch;
    int dim;          /* hidden_size */
    int n_layers;     /* num_hidden_layers */
    int n_heads;      /* num_attention_heads */
    int n_kv_heads;   /* num_key_value_heads */
    int head_dim;     /* hidden_size / n_heads unless config says */
    int hidden_dim;   /* intermediate_size */
    int vocab_size;
    int max_pos;      /* max_position_embeddings */
    float rope_theta;
    RopeScaling rope; /* rope_scaling / rope_parameters with rope_type "llama3" */
    float norm_eps;   /* rms_norm_eps */
    int tie_embeddings;
    int qkv_bias;     /* Qwen2: 1; attention_bias for Llama/Qwen3 */
    int qk_norm;      /* Qwen3: 1 */
    int bos_id;       /* -1 if none */
    int n_eos;
    int eos_ids[CONFIG_MAX_EOS];
    GenDefaults gen;  /* generation_config.json's sampling settings */
} ModelConfig;

const char *arch_name(Arch a);

/* The rotary inverse frequency of dimension pair i (0 <= i < head_dim / 2):
 * rope_theta^(-2i / head_dim), scaled as rope_type "llama3" scales it
 * (transformers' _compute_llama3_parameters). */
float config_rope_freq(const ModelConfig *c, int i);

/* Parses the text of a config.json; `name` is used in messages. Checks every
 * value for sense (positive sizes, heads dividing the hidden size, kv heads
 * dividing heads) and refuses architectures and options duet cannot run
 * exactly (sliding windows, rope scaling other than llama3, activations
 * other than silu). */
int config_parse(ModelConfig *c, const char *text, size_t len, const char *name, Err *e);

/* Checks a config that did not come from a config.json (a .duet meta):
 * the same limits config_parse applies, plus token ids inside the
 * vocabulary. `name` is used in messages. 0 or -1 with *e set. */
int config_check(const ModelConfig *c, const char *name, Err *e);

/* config_parse on DIR/config.json, then DIR/generation_config.json (if
 * present) for eos ids, which override config.json's eos_token_id, and the
 * sampling settings (c->gen). */
/* Reads the sampling fields of a parsed generation_config.json (or of the
 * "generation" object a .duet stores) into *g, checking their ranges.
 * 0 or -1 with *e set. */
int config_gen_parse(GenDefaults *g, const cJSON *j, const char *name, Err *e);

int config_load_dir(ModelConfig *c, const char *dir, Err *e);

#endif
