/* tensor_types.h - `duet compile --tensor-type PATTERN=TYPE`: another
 * weight type for the tensors a rule names. PATTERN is a group word
 * (embed, lm_head, attn, mlp) or a PCRE2 regular expression searched in
 * the checkpoint's tensor names (model.embed_tokens.weight,
 * model.layers.N.self_attn.q_proj.weight, model.layers.N.mlp.down_proj.weight,
 * lm_head.weight), as llama-quantize's --tensor-type searches GGUF names.
 * A tensor takes the type of the first rule that names it; the recipe's
 * type where none does. */
#ifndef DUET_TENSOR_TYPES_H
#define DUET_TENSOR_TYPES_H

#include "kern/kern.h"
#include "util/err.h"

/* Types as dtype + 1 (0: the recipe's): the embedding (also the lm_head
 * when tied), an untied lm_head, and each layer's projections. */
typedef struct TensorTypes {
    int embed, lm_head;
    int *layer;         /* (n_layers, P_COUNT), malloc'd */
    int n_layers;
} TensorTypes;

/* Resolves the n rules of specs ("PATTERN=TYPE", split at the last '=')
 * for a model of n_layers layers whose lm_head is the embedding when
 * `tied`. 0, or -1 with *e naming the rule: no '=' or an unknown TYPE, a
 * pattern that is not a regular expression or names no tensor, lm_head
 * on a tied model; every message starts `tensor type "RULE"`. dir names
 * the checkpoint in messages. tt is zeroed
 * first; tensor_types_free releases it, also after a failure. */
int tensor_types_resolve(TensorTypes *tt, const char *const *specs, int n, int n_layers, int tied, const char *dir,
                         Err *e);
void tensor_types_free(TensorTypes *tt); /* safe on zeroed */

#endif
