/* checkpoint.h - a Hugging Face checkpoint folder: config.json,
 * generation_config.json, and the weights as one model.safetensors or as
 * shards listed in model.safetensors.index.json. Every shard is mapped; the
 * tensors point into the mappings until ckpt_close(). */
#ifndef DUET_CHECKPOINT_H
#define DUET_CHECKPOINT_H

#include "load/config.h"
#include "load/safetensors.h"

typedef struct Checkpoint {
    char *dir;
    ModelConfig cfg;
    int n_files;
    StFile *files;
} Checkpoint;

/* Opens the folder `dir`. -1 with *e naming the file at fault (a missing
 * shard, a shard the index names that lacks its tensor, ...). */
int ckpt_open(Checkpoint *c, const char *dir, Err *e);
void ckpt_close(Checkpoint *c); /* safe on a zeroed Checkpoint */

/* The tensor `name` from whichever shard holds it, or NULL. */
const StTensor *ckpt_find(const Checkpoint *c, const char *name);

/* ckpt_find that also checks the shape: `ndim` dims given in `shape`.
 * NULL with *e set ("DIR: tensor NAME: shape [a, b], config.json implies [c, d]"). */
const StTensor *ckpt_expect(const Checkpoint *c, const char *name, int ndim, const int64_t *shape, Err *e);

#endif
