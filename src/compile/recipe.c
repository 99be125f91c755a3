/* recipe.c - the named quantization recipes of `duet compile --quant`: a
 * block type per tensor role, spending more bits where the error costs
 * most (the tied embedding, which is also the output layer; the v and down
 * projections of the "more bits" layers), as llama.cpp's k-quant mixes do. */
#include <string.h>

#include "compile/compile_int.h"

const QuantRecipe compile_recipes[] = {
    /* name, about, embed, attn (q k o), v, mlp (gate up), down, more-bits v / end-layer down, more-bits down,
     * gate/up outside the more-bits layers (0: as mlp) */
    {"q8", "8-bit blocks everywhere (near lossless)", DT_Q8, DT_Q8, DT_Q8, DT_Q8, DT_Q8, DT_Q8, DT_Q8, 0},
    {"q6", "6-bit blocks everywhere", DT_Q6, DT_Q6, DT_Q6, DT_Q6, DT_Q6, DT_Q6, DT_Q6, 0},
    {"q5", "5-bit super-block (q5k) projections; 6-bit (q6k) embedding, v, more-bits down and gate/up", DT_Q6K, DT_Q5K,
     DT_Q6K, DT_Q6K, DT_Q5K, DT_Q6K, DT_Q6K, DT_Q5K},
    {"q4", "4-bit grid (iq4k) projections; q6k embedding, v and more-bits down, q5k down (recommended)", DT_Q6K, DT_IQ4K,
     DT_Q6K, DT_IQ4K, DT_Q5K, DT_Q6K, DT_Q6K, 0},
    {"q4s", "iq4k projections; q5k embedding and v, q6k/q5k in the more-bits layers (smaller q4)", DT_Q5K, DT_IQ4K,
     DT_Q5K, DT_IQ4K, DT_IQ4K, DT_Q6K, DT_Q5K, 0},
    {"q3", "3-bit grid (iq3k) gate/up; iq4k attention and down, q5k embedding and v, q6k more-bits v/down", DT_Q5K,
     DT_IQ4K, DT_Q5K, DT_IQ3K, DT_IQ4K, DT_Q6K, DT_IQ4K, 0},
    {"q4_0", "plain 4-bit blocks everywhere (the q4 of format version 1)", DT_Q4, DT_Q4, DT_Q4, DT_Q4, DT_Q4, DT_Q4, DT_Q4, 0},
};
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
    int m = more_bits(layer, n_layers);
    switch (p) {
    case P_V: return m ? r->more : r->v;
    case P_DOWN: return m == 2 ? r->more : m ? r->more_down : r->down;
    case P_GATE:
    case P_UP: return !m && r->mlp_less ? r->mlp_less : r->mlp;
    default: return r->attn;
    }
}

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
