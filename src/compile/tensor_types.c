/* tensor_types.c - tensor_types.h: `--tensor-type` rules resolved to a
 * type per tensor. Patterns run through PCRE2 with match limits: a rule is
 * input from the user, and a pathological one fails instead of spinning. */
#include "compile/tensor_types.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/limits.h"
#include "load/peft.h"


/* The group words and the tensors each names (index: 0 embed, 1 lm_head,
 * 2 a projection p). */
static const char *const GROUPS[] = {"embed", "lm_head", "attn", "mlp"};

static int group_of(const char *pat)
{
    for (int g = 0; g < 4; g++)
        if (!strcmp(pat, GROUPS[g])) return g;
    return -1;
}

static int group_names(int g, int kind, int p)
{
    if (g == 0) return kind == 0;
    if (g == 1) return kind == 1;
    if (kind != 2) return 0;
    return g == 2 ? p <= P_O : p > P_O;
}

/* One rule, parsed: its type and either a group or a compiled regex. */
typedef struct Rule {
    int type; /* dtype + 1 */
    int group;
    pcre2_code *re;
    pcre2_match_data *md;
    int used;
} Rule;

/* 1 when rule r names the tensor `name` (kind / p as in group_names), 0
 * when not, -1 with *e set when the match fails (a limit reached). */
static int rule_names(Rule *r, const char *spec, pcre2_match_context *mc, const char *name, int kind, int p, Err *e)
{
    if (r->group >= 0) return group_names(r->group, kind, p);
    int rc = pcre2_match(r->re, (PCRE2_SPTR)name, strlen(name), 0, 0, r->md, mc);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return err_set(e, "tensor type \"%.200s\": matching \"%s\" failed: %s", spec, name, (const char *)msg);
}

static int parse_rule(Rule *r, const char *spec, Err *e)
{
    memset(r, 0, sizeof *r);
    r->group = -1;
    size_t n = strlen(spec);
    if (n > LIMIT_RE_PATTERN) return err_set(e, "tensor type of %zu bytes: at most %d expected", n, LIMIT_RE_PATTERN);
    const char *eq = strrchr(spec, '=');
    int t = eq ? dtype_from_name(eq + 1) : -1;
    if (!eq || eq == spec || t < 0)
        return err_set(e,
                       "tensor type \"%.200s\": expected PATTERN=TYPE (PATTERN embed, lm_head, attn, mlp or a regular "
                       "expression over the checkpoint's tensor names; TYPE f32, bf16, f16, q8, q6, q5, q4, iq4, iq3, "
                       "q6k, q5k, iq4k or iq3k)", spec);
    r->type = t + 1;
    char pat[LIMIT_RE_PATTERN + 1];
    memcpy(pat, spec, (size_t)(eq - spec));
    pat[eq - spec] = 0;
    if ((r->group = group_of(pat)) >= 0) return 0;
    int code;
    PCRE2_SIZE off;
    r->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    if (!r->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return err_set(e, "tensor type \"%.200s\": \"%s\" is not a regular expression: %s", spec, pat, (const char *)msg);
    }
    if (!(r->md = pcre2_match_data_create_from_pattern(r->re, NULL))) return err_set(e, "out of memory");
    return 0;
}

static void rules_free(Rule *r, int n)
{
    for (int i = 0; r && i < n; i++) {
        pcre2_match_data_free(r[i].md);
        pcre2_code_free(r[i].re);
    }
    free(r);
}

/* *slot <- the type of the first rule naming the tensor, if any. */
static int resolve_one(int *slot, Rule *r, const char *const *specs, int n, pcre2_match_context *mc, const char *name,
                       int kind, int p, Err *e)
{
    for (int i = 0; i < n; i++) {
        int hit = rule_names(&r[i], specs[i], mc, name, kind, p, e);
        if (hit < 0) return -1;
        if (hit) {
            r[i].used = 1;
            *slot = r[i].type;
            return 0;
        }
    }
    return 0;
}

int tensor_types_resolve(TensorTypes *tt, const char *const *specs, int n, int n_layers, int tied, const char *dir,
                         Err *e)
{
    memset(tt, 0, sizeof *tt);
    if (n <= 0) return 0;
    tt->n_layers = n_layers;
    tt->layer = calloc((size_t)n_layers * P_COUNT + 1, sizeof *tt->layer);
    Rule *r = calloc((size_t)n, sizeof *r);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    int rc = -1;
    if (!tt->layer || !r || !mc) {
        err_set(e, "out of memory");
        goto out;
    }
    pcre2_set_match_limit(mc, LIMIT_RE_MATCH);
    pcre2_set_depth_limit(mc, LIMIT_RE_DEPTH);
    pcre2_set_heap_limit(mc, LIMIT_RE_HEAP_KIB);
    for (int i = 0; i < n; i++) {
        if (parse_rule(&r[i], specs[i], e)) goto out;
        if (r[i].group == 1 && tied) {
            err_set(e, "tensor type \"%.200s\": %s: the lm_head is the embedding (tie_word_embeddings): give its type "
                    "as embed=TYPE", specs[i], dir);
            goto out;
        }
    }
    char name[128];
    if (resolve_one(&tt->embed, r, specs, n, mc, "model.embed_tokens.weight", 0, 0, e)) goto out;
    if (!tied && resolve_one(&tt->lm_head, r, specs, n, mc, "lm_head.weight", 1, 0, e)) goto out;
    for (int l = 0; l < n_layers; l++)
        for (int p = 0; p < P_COUNT; p++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, proj_path((Proj)p));
            if (resolve_one(&tt->layer[(size_t)l * P_COUNT + p], r, specs, n, mc, name, 2, p, e)) goto out;
        }
    for (int i = 0; i < n; i++)
        if (!r[i].used) {
            err_set(e,
                    "tensor type \"%.200s\": names no tensor of %s, or only tensors an earlier rule names (the "
                    "names: model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight .. "
                    "model.layers.%d.mlp.down_proj.weight%s)",
                    specs[i], dir, n_layers - 1, tied ? "" : ", lm_head.weight");
            goto out;
        }
    rc = 0;
out:
    rules_free(r, n);
    pcre2_match_context_free(mc);
    if (rc) tensor_types_free(tt);
    return rc;
}

void tensor_types_free(TensorTypes *tt)
{
    if (!tt) return;
    free(tt->layer);
    memset(tt, 0, sizeof *tt);
}
