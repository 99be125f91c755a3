/* peft_match.h - the rules of a PEFT LoraConfig (adapter_config.json) that
 * decide which modules carry LoRA and with which rank and alpha, applied
 * exactly the way PEFT 0.21 applies them:
 *   - target_modules as a list: a module matches when its full name equals an
 *     entry or ends with "." + entry (check_target_module_exists); as a string:
 *     re.fullmatch on the full name; "all-linear": every projection of a layer
 *     (the output embedding, lm_head, is never included);
 *   - exclude_modules (list or regex) wins over target_modules;
 *   - layers_to_transform / layers_pattern only filter list matches that are
 *     not exact names, with PEFT's lazy ".*?\.<pattern>\.(\d+)\." search;
 *   - rank_pattern / alpha_pattern: the first key, in file order, for which
 *     re.match(r"(.*\.)?(KEY)$", name) succeeds (get_pattern_key).
 * Module names are those of named_modules() on Qwen2ForCausalLM, e.g.
 * "model.layers.0.self_attn.q_proj". Regexes run through PCRE2 with match
 * limits, so a hostile pattern fails with an error instead of spinning.
 * Internal to src/load: peft.c and the fuzz target use it. */
#ifndef DUET_PEFT_MATCH_H
#define DUET_PEFT_MATCH_H

#include <cjson/cJSON.h>

#include "util/err.h"

typedef struct PeftPat PeftPat; /* one compiled regex with its key and value */

typedef enum TargetKind { TM_LIST = 0, TM_REGEX = 1, TM_ALL_LINEAR = 2 } TargetKind;

typedef struct PeftRules {
    int r;                 /* default rank, > 0 */
    double alpha;          /* default lora_alpha */
    int use_rslora;        /* scale = alpha / sqrt(r) instead of alpha / r */
    int use_dora;          /* DoRA: a magnitude vector per module rescales W + scale B A row-wise */
    TargetKind tm_kind;
    char **tm_list;        /* (n_tm) entries when tm_kind == TM_LIST */
    int n_tm;
    PeftPat *tm_re;        /* TM_REGEX */
    char **ex_list;        /* exclude_modules as a list (n_ex), or ... */
    int n_ex;
    PeftPat *ex_re;        /* ... as a regex; both empty when absent */
    int has_layers;        /* layers_to_transform given (non-empty list or int) */
    int *layers;           /* (n_layers) indices */
    int n_layers;
    PeftPat *lpat;         /* (n_lpat) compiled ".*?\.<pattern>\.(\d+)\." */
    int n_lpat;
    PeftPat *rank;         /* (n_rank) rank_pattern in file order */
    int n_rank;
    PeftPat *alpha_pat;    /* (n_alpha) alpha_pattern in file order */
    int n_alpha;
} PeftRules;

/* Reads and checks every field of the parsed adapter_config.json `j` that
 * changes the math; `file` names it in messages. Refuses (with the field
 * named) what duet cannot apply exactly: peft_type other than LORA, DoRA,
 * biases, modules_to_save, aLoRA, QALoRA, layer replication, target
 * parameters, trainable tokens, initialisations that rewrite the base weights
 * (PiSSA, OLoRA, CorDA, LoftQ, LoRA-GA), and unknown non-empty fields.
 * On failure *r is left freed. */
int peft_rules_parse(PeftRules *r, const cJSON *j, const char *file, Err *e);

/* Frees the lists and regexes; safe on a zeroed PeftRules. */
void peft_rules_free(PeftRules *r);

/* *hit = 1 when module `key` is adapted, 0 when not; *excluded = 1 when it
 * was matched by exclude_modules (for messages; may be NULL). -1 with *e set
 * when a regex gives up (match limit) or a layer index cannot be read. */
int peft_rules_target(const PeftRules *r, const char *key, int *hit, int *excluded, const char *file, Err *e);

/* Rank and alpha of module `key` (rank_pattern / alpha_pattern, else r and
 * lora_alpha). -1 with *e set if a regex gives up. */
int peft_rules_rank_alpha(const PeftRules *r, const char *key, int *rank, double *alpha, const char *file, Err *e);

/* Does the list entry or regex of target_modules match `key` at all, ignoring
 * layers and exclusions? Used to reject entries that name nothing in the base.
 * Returns 1, 0, or -1 with *e set. */
int peft_rules_entry_matches(const PeftRules *r, int entry, const char *key, const char *file, Err *e);

#endif
