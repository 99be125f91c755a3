/* model.h - a model ready to run: the weights as kernel matrices, the float
 * vectors (norms, biases), and any number of LoRA adapters sharing them.
 * A Model is built either from a Hugging Face checkpoint folder (weights used
 * in place from the safetensors mappings) or from a compiled .duet file
 * (weights used in place from its mapping). It is immutable after opening,
 * so many sessions on many threads may run it at once. */
#ifndef DUET_MODEL_H
#define DUET_MODEL_H

#include "kern/kern.h"
#include "load/checkpoint.h"
#include "load/config.h"
#include "load/peft.h"

typedef struct Layer {
    const float *attn_norm;   /* (dim) input_layernorm */
    const float *ffn_norm;    /* (dim) post_attention_layernorm */
    const float *bq, *bk, *bv;/* (n_heads*head_dim), (kv_dim), (kv_dim) or NULL: Qwen2 has q/k/v biases */
    const float *q_norm;      /* (head_dim) or NULL: Qwen3 normalises q and k per head */
    const float *k_norm;      /* (head_dim) or NULL */
    QMat w[P_COUNT];          /* q (n_heads*hd, dim), k/v (kv_dim, dim), o (dim, n_heads*hd),
                                 gate/up (hidden, dim), down (dim, hidden) */
    /* The same weights stacked by rows, so that one product serves the
     * projections that share an input (model_fuse); rows == 0 when the
     * weights do not allow it, and then the w[] are used one by one. */
    QMat qkv;                 /* (n_heads*hd + 2*kv_dim, dim): q, k, v */
    QMat gate_up;             /* (2*hidden, dim): gate, up */
} Layer;

typedef struct Model {
    ModelConfig cfg;
    QMat embed;               /* (vocab, dim) */
    QMat lm_head;             /* (vocab, dim): the embedding when tied */
    const float *final_norm;  /* (dim) */
    Layer *layers;            /* (n_layers) */
    int n_adapters;
    Adapter *adapters;        /* owned */
    int merged;               /* index of the adapter folded into the weights, or -1 */

    /* storage behind the pointers above */
    Checkpoint ckpt;          /* when opened from a folder */
    float *floats;            /* norms and biases converted to f32 (folder) */
    float **owned;            /* matrices made by merging, freed at close */
    int n_owned;
    void *file_map;           /* when opened from a .duet file */
    size_t file_size;
    void *duet;               /* the .duet reader state (run/duet_file.h) or NULL */
    /* embedded in a .duet (pointers into the mapping), NULL for a folder */
    const char *tokenizer_json;      /* tokenizer.json bytes, not NUL-terminated */
    size_t tokenizer_json_len;
    const char *tokenizer_config;    /* tokenizer_config.json bytes */
    size_t tokenizer_config_len;
    const char *meta;                /* the .duet's JSON meta section (NUL-padded) */
    size_t meta_len;
    int in_ram;                      /* the .duet was read into anonymous memory (MODEL_OPEN_RAM) */
} Model;

/* Opens `path`: a checkpoint folder or a compiled .duet file. */
int model_open(Model *m, const char *path, Err *e);

/* model_open with flags: MODEL_OPEN_RAM copies a .duet file into anonymous
 * memory backed by 2 MB huge pages instead of mapping it: decode reads every
 * weight per token, and with 4 KB pages the TLB misses cost ~10% of decode
 * speed; the price is an open that reads the whole file (~1-2 s for 1 GB). */
#define MODEL_OPEN_RAM 1
/* MODEL_OPEN_AUTO: MODEL_OPEN_RAM when the file takes at most 3/4 of the
 * memory available now (/proc/meminfo MemAvailable), else mapped. */
#define MODEL_OPEN_AUTO 2
int model_open_flags(Model *m, const char *path, int flags, Err *e);

/* Told how far the read into memory is (bytes done of total). */
typedef struct ModelProgress {
    void (*tell)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
} ModelProgress;

/* model_open_flags with progress (may be NULL) while a .duet is read. */
int model_open_progress(Model *m, const char *path, int flags, const ModelProgress *p, Err *e);

/* Whether a file of `bytes` fits MODEL_OPEN_AUTO's rule now. */
int model_ram_fits(uint64_t bytes);

/* Bytes of this process's anonymous memory on transparent huge pages
 * (/proc/self/smaps_rollup AnonHugePages), or -1 if unknown. */
long long model_huge_bytes(void);

/* Opens a compiled .duet file (run/duet_file.c); flags as above. */
int model_open_duet(Model *m, const char *path, int flags, Err *e);
int model_open_duet_progress(Model *m, const char *path, int flags, const ModelProgress *p, Err *e);

/* Opens a checkpoint folder. The weights stay in the safetensors mappings. */
int model_open_dir(Model *m, const char *dir, Err *e);

/* Adds a PEFT adapter folder as adapter `name` (unique). */
int model_add_lora(Model *m, const char *dir, const char *name, Err *e);

/* Reads the PEFT folder `dir` into *a (zeroed first) for m's base, DoRA norms
 * included, without adding it to m (so a running model can attach it later
 * without moving m->adapters). The caller owns *a (adapter_free). */
int model_load_lora(const Model *m, Adapter *a, const char *dir, const char *name, Err *e);

/* Index of the adapter called `name`, or -1. */
int model_find_adapter(const Model *m, const char *name);

/* Folds adapter `idx` into the weights it touches (W += scale * B A, in f32):
 * afterwards the base weights ARE that adapter and it must not be applied again. */
int model_merge_adapter(Model *m, int idx, Err *e);

/* Sets every layer's qkv and gate_up views (see Layer) where the weights
 * allow it: same type and cols, the data (and q8/q4 scales) of q, k, v (and
 * of gate, up) back to back in memory, as `duet compile` writes them, and no
 * in_scale or the same values on all. Clears them elsewhere. The .duet
 * opener calls it, and model_merge_adapter after replacing weights; call it
 * again after changing any w[] by hand. */
void model_fuse(Model *m);

void model_close(Model *m); /* safe on a zeroed Model */

#endif
