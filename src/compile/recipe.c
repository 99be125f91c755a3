/* recipe.c - the named quantization recipes of `duet compile --quant`: a
 * block type per tensor role, spending more bits where the error costs
 * most (the tied embedding, which is also the output layer; the v and down
 * projections of the "more bits" layers), as llama.cpp's k-quant mixes do. */
#include <string.h>

#include "compile/compile_int.h"

/* Per recipe: the embedding's type, then each projection's (q, k, v, o,
 * gate, up, down) in the ordinary layers, the "every third" more-bits
 * layers and the first and last eighth (more_bits 0, 1, 2). */
#define ALL7(t) {t, t, t, t, t, t, t}
#define SAME3(t) {ALL7(t), ALL7(t), ALL7(t)}
const QuantRecipe compile_recipes[] = {
    {"q8", "8-bit blocks everywhere (near lossless)", DT_Q8, SAME3(DT_Q8)},
    {"q6", "6-bit blocks everywhere", DT_Q6, SAME3(DT_Q6)},
    {"q5", "5-bit super-block (q5k) projections; 6-bit (q6k) embedding, v, more-bits down and gate/up", DT_Q6K,
     {{DT_Q5K, DT_Q5K, DT_Q6K, DT_Q5K, DT_Q5K, DT_Q5K, DT_Q5K},
      {DT_Q5K, DT_Q5K, DT_Q6K, DT_Q5K, DT_Q6K, DT_Q6K, DT_Q6K},
      {DT_Q5K, DT_Q5K, DT_Q6K, DT_Q5K, DT_Q6K, DT_Q6K, DT_Q6K}}},
    {"q4", "4-bit grid (iq4k) projections; q6k embedding, v and more-bits down, q5k down (recommended)", DT_Q6K,
     {{DT_IQ4K, DT_IQ4K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ4K, DT_Q5K},
      {DT_IQ4K, DT_IQ4K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ4K, DT_Q6K},
      {DT_IQ4K, DT_IQ4K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ4K, DT_Q6K}}},
    {"q4s", "iq4k projections; q5k embedding and v, q6k/q5k in the more-bits layers (smaller q4)", DT_Q5K,
     {{DT_IQ4K, DT_IQ4K, DT_Q5K, DT_IQ4K, DT_IQ4K, DT_IQ4K, DT_IQ4K},
      {DT_IQ4K, DT_IQ4K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ4K, DT_Q5K},
      {DT_IQ4K, DT_IQ4K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ4K, DT_Q6K}}},
    /* up is the projection that loses least per bit saved at 3 bits
     * (measured on the demo model: bench/README.md), k and v gain most per
     * bit spent */
    {"q3", "3-bit grid (iq3k) up; iq4k embedding, q, o, gate and down, q6k k and v (smallest)", DT_IQ4K,
     {{DT_IQ4K, DT_Q6K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ3K, DT_IQ4K},
      {DT_IQ4K, DT_Q6K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ3K, DT_IQ4K},
      {DT_IQ4K, DT_Q6K, DT_Q6K, DT_IQ4K, DT_IQ4K, DT_IQ3K, DT_IQ4K}}},
    {"q4_0", "plain 4-bit blocks everywhere (the q4 of format version 1)", DT_Q4, SAME3(DT_Q4)},
};
#undef SAME3
#undef ALL7
const int compile_n_recipes = (int)(sizeof compile_recipes / sizeof compile_recipes[0]);

const QuantRecipe *compile_recipe(const char *name)
{
    for (int i = 0; i < compile_n_recipes; i++)
        if (!strcmp(compile_recipes[i].name, name)) return &compile_recipes[i];
    return NULL;
}

/* llama.cpp's use_more_bits: the first and last eighth (2 for "the ends"),
 * every third between (1); 0 for the other layers. */
static int more_bits(int layer, int n)
{
    if (layer < n / 8 || layer >= 7 * n / 8) return 2;
    return (layer - n / 8) % 3 == 2;
}

DType recipe_type(const QuantRecipe *r, int group, int p, int layer, int n_layers, DType dflt)
{
    if (!r) return dflt;
    if (group == CG_EMBED || group == CG_LM_HEAD) return r->embed;
    return r->t[more_bits(layer, n_layers)][p];
}

DType recipe_nominal(const QuantRecipe *r) { return r->t[0][P_Q]; }

double recipe_bits(const QuantRecipe *r, int dim, int hidden, int kv_dim, int n_layers, int vocab)
{
    double bits = (double)vocab * dim * dtype_bits(r->embed), n = (double)vocab * dim;
    for (int l = 0; l < n_layers; l++) {
        static const int ps[] = {P_Q, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN};
        for (int i = 0; i < 7; i++) {
            int p = ps[i];
            double w = p == P_Q || p == P_O ? (double)dim * dim : p == P_K || p == P_V ? (double)kv_dim * dim
                                                                                       : (double)hidden * dim;
            bits += w * dtype_bits(recipe_type(r, CG_ATTN, p, l, n_layers, DT_F32));
            n += w;
        }
    }
    return bits / n;
}
