/* peft.h - a PEFT LoRA adapter folder (adapter_config.json +
 * adapter_model.safetensors), checked against the base model's config and
 * converted to float32 products ready for the kernels. The Adapter owns its
 * memory; adapter_free() releases it. */
#ifndef DUET_PEFT_H
#define DUET_PEFT_H

#include <stdint.h>

#include "kern/kern.h"
#include "load/config.h"

/* The seven projections of a decoder layer that LoRA can target, in the order
 * used everywhere (tables indexed by Proj). */
typedef enum Proj { P_Q, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN, P_COUNT } Proj;

/* "q_proj", "k_proj", ... and the module path inside a layer ("self_attn.q_proj", "mlp.gate_proj"). */
const char *proj_name(Proj p);
const char *proj_path(Proj p);

/* in/out features of projection p for config c. */
int proj_in(const ModelConfig *c, Proj p);
int proj_out(const ModelConfig *c, Proj p);

/* One LoRA product on one projection: y += scale * B (A x).
 * r == 0 means the adapter leaves this projection alone. */
typedef struct LoraPair {
    int r;
    float scale;      /* lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora */
    QMat A;           /* (r, in) */
    QMat B;           /* (out, r) */
    const float *dora;/* (out) or NULL: DoRA. As read from the file, the magnitude m; once the
                         adapter is attached to its base (model_add_lora), m / ||W + scale B A||
                         per output row, so that y = dora * (W x + scale B A x) */
} LoraPair;

typedef struct Adapter {
    char *name;
    char *source;         /* the folder it was read from, for messages and inspect */
    uint64_t hash;        /* XXH64 of adapter_config.json + adapter_model.safetensors */
    int n_layers;
    LoraPair *pairs;      /* (n_layers * P_COUNT), indexed [layer * P_COUNT + proj] */
    void *owned;          /* the float buffers A and B point into (NULL if they point elsewhere) */
} Adapter;

/* Reads the PEFT folder `dir` as adapter `name` for a base with config `cfg`.
 * Honours r, lora_alpha, use_rslora, target_modules (list or regex),
 * rank_pattern, alpha_pattern, layers_to_transform, fan_in_fan_out, use_dora
 * (the magnitude vectors are read; the base-dependent norms are computed by
 * model_add_lora, which owns the base weights); refuses
 * with a clear error what it cannot apply exactly (DoRA, biases, embedding or
 * lm_head LoRA, modules_to_save, ...), adapters whose shapes or layers do not
 * fit the base, and pickled adapter_model.bin files. */
int peft_load(Adapter *a, const char *dir, const char *name, const ModelConfig *cfg, Err *e);

/* Checks the text of an adapter_config.json (`name` for messages) against a
 * base with config `cfg` without reading any tensor: the same field checks and
 * module selection peft_load does. 0 or -1 with *e set. Used by the fuzz
 * target and by callers that want to vet a config early. */
int peft_config_check(const char *text, size_t len, const char *name, const ModelConfig *cfg, Err *e);

/* Frees everything; safe on a zeroed Adapter. */
void adapter_free(Adapter *a);

/* The LoRA pair for (layer, proj), or NULL when r == 0. */
const LoraPair *adapter_pair(const Adapter *a, int layer, Proj p);

#endif
