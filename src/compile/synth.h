/* synth.h - synthetic Hugging Face checkpoints for benchmarks and tests:
 * the config.json of a real model family with random weights of a sensible
 * scale, written as bf16 safetensors (sharded like transformers does), and
 * PEFT LoRA adapter folders to go with them. The numbers are noise; the
 * shapes, names, dtypes and file layout are those of the real thing, so every
 * loader and kernel does exactly the work it would do on the real model. */
#ifndef DUET_SYNTH_H
#define DUET_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct SynthShape {
    const char *name;         /* "qwen2-1.5b", ... */
    int dim;                  /* hidden_size */
    int n_layers;
    int n_heads, n_kv_heads;
    int hidden_dim;           /* intermediate_size */
    int vocab;
    int max_pos;              /* max_position_embeddings */
    int max_window_layers;
    double rope_theta;
    int tied;                 /* tie_word_embeddings */
} SynthShape;

/* The shape called `name` ("qwen2-0.5b", "qwen2-1.5b", "qwen2.5-3b", "tiny"),
 * or NULL. */
const SynthShape *synth_shape(const char *name);

/* Names of the public shapes, for usage messages ("qwen2-0.5b|..."). */
const char *synth_shape_names(void);

/* Told how many bytes of tensor data are written (tell may be NULL). */
typedef struct SynthProgress {
    void (*tell)(void *ctx, size_t done, size_t total);
    void *ctx;
    size_t done, total;   /* set by synth_checkpoint */
} SynthProgress;

/* Writes DIR/config.json, generation_config.json and the weights
 * (model.safetensors, or model-0000i-of-0000n.safetensors shards of at most
 * `shard_bytes` each plus model.safetensors.index.json when bigger). Creates
 * DIR if needed. Embedding ~ N(0, 0.02^2), projections ~ N(0, 1/in), norms
 * ~ 1 + N(0, 0.02^2), biases
 * ~ N(0, 0.02), all from `seed`. *total receives the bytes of tensor data;
 * p (may be NULL) is told as they are written. */
int synth_checkpoint(const char *dir, const SynthShape *s, uint64_t seed, size_t shard_bytes, size_t *total,
                     SynthProgress *p, Err *e);

/* Writes the PEFT adapter folder DIR (adapter_config.json as PEFT 0.21 writes
 * it, adapter_model.safetensors in f32) with rank `r`, lora_alpha = 2r, on all
 * seven projections of every layer; A ~ N(0, 1/in), B ~ N(0, 0.02^2), so the
 * adapter visibly changes the outputs. */
int synth_lora(const char *dir, const SynthShape *s, int r, uint64_t seed, Err *e);

#endif
