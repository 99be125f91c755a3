#include "load/peft_match.h"

#include "load/limits.h"
#include "util/json.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct PeftPat {
    pcre2_code *re;
    char *key;      /* the key as written in the file, for messages */
    double val;     /* rank or alpha for rank_pattern / alpha_pattern */
};


/* ------------------------------------------------------------------ regexes */

/* Compiles pre + pat + post (raw concatenation, as PEFT builds its f-strings)
 * with `opts`. */
static int pat_compile(PeftPat *p, const char *pre, const char *pat, const char *post, uint32_t opts, const char *field,
                       const char *file, Err *e)
{
    size_t n = strlen(pat);
    if (n > LIMIT_RE_PATTERN) return err_set(e, "%s: field \"%s\": pattern of %zu bytes is too long", file, field, n);
    size_t len = strlen(pre) + n + strlen(post);
    char *s = malloc(len + 1);
    if (!s) return err_set(e, "out of memory");
    snprintf(s, len + 1, "%s%s%s", pre, pat, post);
    int code;
    PCRE2_SIZE off;
    p->re = pcre2_compile((PCRE2_SPTR)s, len, opts | PCRE2_UTF, &code, &off, NULL);
    free(s);
    if (!p->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return err_set(e, "%s: field \"%s\": \"%.200s\" is not a valid regular expression: %s", file, field, pat,
                       (const char *)msg);
    }
    p->key = strdup(pat);
    if (!p->key) return err_set(e, "out of memory");
    return 0;
}

static void pat_free(PeftPat *p, int n)
{
    for (int i = 0; p && i < n; i++) {
        pcre2_code_free(p[i].re);
        free(p[i].key);
    }
    free(p);
}

/* 1 match, 0 no match, -1 error. On a match, group 1 (if asked) is copied to
 * g1 (NUL-terminated, truncated to g1n) or set to "" when unset. */
static int pat_match(const PeftPat *p, const char *s, char *g1, size_t g1n, const char *field, const char *file, Err *e)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        return err_set(e, "out of memory");
    }
    pcre2_set_match_limit(mc, LIMIT_RE_MATCH);
    pcre2_set_depth_limit(mc, LIMIT_RE_DEPTH);
    pcre2_set_heap_limit(mc, LIMIT_RE_HEAP_KIB);
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, mc);
    int ret;
    if (rc >= 0) {
        ret = 1;
        if (g1) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            g1[0] = 0;
            if (rc == 0 || rc > 1) {
                if (pcre2_get_ovector_count(md) > 1 && ov[2] != PCRE2_UNSET) {
                    size_t n = ov[3] - ov[2];
                    if (n >= g1n) n = g1n - 1;
                    memcpy(g1, s + ov[2], n);
                    g1[n] = 0;
                }
            }
        }
    } else if (rc == PCRE2_ERROR_NOMATCH) {
        ret = 0;
    } else {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        ret = err_set(e, "%s: field \"%s\": pattern \"%.200s\" failed on \"%s\": %s", file, field, p->key, s,
                      (const char *)msg);
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    return ret;
}

/* ------------------------------------------------------------------ fields */

static int is_trivial(const cJSON *v)
{
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 1;
    if (cJSON_IsString(v)) return v->valuestring[0] == 0;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child == NULL;
    if (cJSON_IsNumber(v)) return v->valuedouble == 0;
    return 0;
}

static const cJSON *get(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* Fields PEFT 0.21 writes that never change y = W x + s B A x for a Linear
 * base at inference: bookkeeping, dropout, initialisation configs (what the
 * init did is already in the saved A and B), and options that only apply to
 * features refused elsewhere (qalora_group_size without use_qalora,
 * ensure_weight_tying without embedding/lm_head LoRA). */
static const char *const IGNORED[] = {
    "task_type",     "peft_version",      "auto_mapping",  "base_model_name_or_path", "revision",
    "inference_mode", "lora_dropout",     "megatron_core", "qalora_group_size",       "runtime_config",
    "ensure_weight_tying", "eva_config",  "corda_config",  "loftq_config",            "lora_ga_config",
};

/* Fields read by peft_rules_parse. */
static const char *const HANDLED[] = {
    "peft_type",  "r",         "lora_alpha",      "use_rslora",          "target_modules", "exclude_modules",
    "fan_in_fan_out", "bias",  "modules_to_save", "init_lora_weights",   "layers_to_transform",
    "layers_pattern", "rank_pattern", "alpha_pattern", "use_dora",       "lora_bias",      "use_qalora",
};

/* Fields that switch on a variant of LoRA duet does not implement; fine when
 * null, false or empty, refused otherwise. */
static const char *const REFUSED[][2] = {
    {"alora_invocation_tokens", "Activated LoRA (aLoRA)"},
    {"layer_replication", "layer replication"},
    {"target_parameters", "LoRA on parameters (target_parameters)"},
    {"trainable_token_indices", "trainable tokens"},
    {"megatron_config", "Megatron parallel layers"},
    {"use_bdlora", "block-diagonal LoRA (BD-LoRA)"},
    {"arrow_config", "Arrow routing"},
    {"kasa_config", "KaSA"},
    {"monteclora_config", "MonteCLoRA"},
    {"velora_config", "VeLoRA"},
};

static int in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return 1;
    return 0;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int check_fields(const cJSON *j, const char *file, Err *e)
{
    for (const cJSON *v = j->child; v; v = v->next) {
        const char *k = v->string;
        if (in_list(IGNORED, COUNT(IGNORED), k) || in_list(HANDLED, COUNT(HANDLED), k)) continue;
        int known = 0;
        for (size_t i = 0; i < COUNT(REFUSED); i++) {
            if (strcmp(REFUSED[i][0], k)) continue;
            known = 1;
            if (!is_trivial(v))
                return err_set(e, "%s: field \"%s\" is set: %s is not supported (it changes the computation)", file, k,
                               REFUSED[i][1]);
        }
        if (!known && !is_trivial(v))
            return err_set(e, "%s: field \"%.100s\" is not a LoraConfig field duet knows, and it is set; refusing rather "
                           "than guessing what it changes",
                           file, k);
    }
    return 0;
}

/* A bool field that must be false (or absent). */
static int want_false(const cJSON *j, const char *key, const char *what, const char *file, Err *e)
{
    int b = 0;
    int rc = json_get_bool(j, key, 0, &b, file, e);
    if (rc < 0) return rc;
    if (b) return err_set(e, "%s: field \"%s\" is true: %s is not supported", file, key, what);
    return 0;
}

/* A JSON array of strings into a malloc'd array of strdup'd strings. */
static int str_list(char ***out, int *n, const cJSON *v, const char *field, const char *file, Err *e)
{
    int cnt = cJSON_GetArraySize(v);
    *out = calloc(cnt ? (size_t)cnt : 1, sizeof **out);
    if (!*out) return err_set(e, "out of memory");
    *n = 0;
    for (const cJSON *s = v->child; s; s = s->next) {
        if (!cJSON_IsString(s))
            return err_set(e, "%s: field \"%s\": entry %d is not a string", file, field, *n);
        (*out)[*n] = strdup(s->valuestring);
        if (!(*out)[*n]) return err_set(e, "out of memory");
        (*n)++;
    }
    return 0;
}

static void str_list_free(char **l, int n)
{
    for (int i = 0; l && i < n; i++) free(l[i]);
    free(l);
}

/* rank_pattern / alpha_pattern: {"key": value, ...} in file order. */
static int parse_patterns(PeftPat **out, int *n, const cJSON *j, const char *field, int want_int, const char *file, Err *e)
{
    const cJSON *v = get(j, field);
    *out = NULL;
    *n = 0;
    if (!v) return 0;
    if (!cJSON_IsObject(v)) return err_set(e, "%s: field \"%s\": expected an object {pattern: value}", file, field);
    int cnt = cJSON_GetArraySize(v);
    if (!cnt) return 0;
    *out = calloc((size_t)cnt, sizeof **out);
    if (!*out) return err_set(e, "out of memory");
    for (const cJSON *p = v->child; p; p = p->next) {
        double d = p->valuedouble;
        if (!cJSON_IsNumber(p) || !(d == d) || d > 1e9 || d < -1e9)
            return err_set(e, "%s: field \"%s\": value of \"%.200s\": expected a number in -1e9 .. 1e9", file, field,
                           p->string);
        if (want_int && (d != (double)(long)d || d <= 0))
            return err_set(e, "%s: field \"%s\": rank of \"%.200s\" is %g (expected a positive integer)", file, field,
                           p->string, d);
        PeftPat *pp = &(*out)[*n];
        /* get_pattern_key: re.match(rf"(.*\.)?({key})$", module_name) */
        if (pat_compile(pp, "(.*\\.)?(", p->string, ")$", PCRE2_ANCHORED, field, file, e)) {
            (*n)++; /* so that peft_rules_free releases what pat_compile kept */
            return -1;
        }
        pp->val = d;
        (*n)++;
    }
    return 0;
}

static int parse_targets(PeftRules *r, const cJSON *j, const char *file, Err *e)
{
    const cJSON *tm = get(j, "target_modules");
    if (!tm)
        return err_set(e, "%s: field \"target_modules\" is missing; PEFT records the modules it adapted there, so this "
                       "adapter was not saved by PEFT's save_pretrained",
                       file);
    if (cJSON_IsString(tm)) {
        if (!strcasecmp(tm->valuestring, "all-linear")) {
            r->tm_kind = TM_ALL_LINEAR;
        } else {
            r->tm_kind = TM_REGEX;
            r->tm_re = calloc(1, sizeof *r->tm_re);
            if (!r->tm_re) return err_set(e, "out of memory");
            if (pat_compile(r->tm_re, "", tm->valuestring, "", PCRE2_ANCHORED | PCRE2_ENDANCHORED, "target_modules",
                            file, e))
                return -1;
        }
    } else if (cJSON_IsArray(tm)) {
        r->tm_kind = TM_LIST;
        if (str_list(&r->tm_list, &r->n_tm, tm, "target_modules", file, e)) return -1;
        if (!r->n_tm) return err_set(e, "%s: field \"target_modules\" is empty: the adapter adapts no module", file);
    } else {
        return err_set(e, "%s: field \"target_modules\": expected a list of module names or a regex string", file);
    }

    const cJSON *ex = get(j, "exclude_modules");
    if (ex && cJSON_IsString(ex)) {
        if (ex->valuestring[0]) { /* PEFT tests `if config.exclude_modules:` */
            r->ex_re = calloc(1, sizeof *r->ex_re);
            if (!r->ex_re) return err_set(e, "out of memory");
            if (pat_compile(r->ex_re, "", ex->valuestring, "", PCRE2_ANCHORED | PCRE2_ENDANCHORED, "exclude_modules",
                            file, e))
                return -1;
        }
    } else if (ex && cJSON_IsArray(ex)) {
        if (str_list(&r->ex_list, &r->n_ex, ex, "exclude_modules", file, e)) return -1;
    } else if (ex) {
        return err_set(e, "%s: field \"exclude_modules\": expected a list of module names or a regex string", file);
    }
    return 0;
}

static int parse_layers(PeftRules *r, const cJSON *j, const char *file, Err *e)
{
    const cJSON *lt = get(j, "layers_to_transform");
    const cJSON *lp = get(j, "layers_pattern");
    int str_targets = r->tm_kind != TM_LIST;
    /* LoraConfig.__post_init__ refuses these combinations */
    if (str_targets && lt)
        return err_set(e, "%s: field \"layers_to_transform\" cannot be used when \"target_modules\" is a string", file);
    if (str_targets && lp)
        return err_set(e, "%s: field \"layers_pattern\" cannot be used when \"target_modules\" is a string", file);
    if (!is_trivial(lp) && is_trivial(lt)) /* Python truthiness: 0 and [] are false */
        return err_set(e, "%s: field \"layers_pattern\" is set but \"layers_to_transform\" is not", file);
    if (lt) {
        int cnt = cJSON_IsArray(lt) ? cJSON_GetArraySize(lt) : 1;
        if (!cJSON_IsArray(lt) && !cJSON_IsNumber(lt))
            return err_set(e, "%s: field \"layers_to_transform\": expected an integer or a list of integers", file);
        r->layers = calloc(cnt ? (size_t)cnt : 1, sizeof *r->layers);
        if (!r->layers) return err_set(e, "out of memory");
        const cJSON *it = cJSON_IsArray(lt) ? lt->child : lt;
        for (; it; it = cJSON_IsArray(lt) ? it->next : NULL) {
            double d = it->valuedouble;
            if (!cJSON_IsNumber(it) || !(d >= -1e9 && d <= 1e9) || d != (double)(long)d) /* range before the cast */
                return err_set(e, "%s: field \"layers_to_transform\": entry %d is not an integer", file, r->n_layers);
            r->layers[r->n_layers++] = (int)d;
        }
        r->has_layers = r->n_layers > 0; /* an empty list means "all layers" */
    }
    if (lp && !is_trivial(lp)) {
        int cnt = cJSON_IsArray(lp) ? cJSON_GetArraySize(lp) : 1;
        if (!cJSON_IsArray(lp) && !cJSON_IsString(lp))
            return err_set(e, "%s: field \"layers_pattern\": expected a string or a list of strings", file);
        r->lpat = calloc((size_t)cnt, sizeof *r->lpat);
        if (!r->lpat) return err_set(e, "out of memory");
        const cJSON *it = cJSON_IsArray(lp) ? lp->child : lp;
        for (; it; it = cJSON_IsArray(lp) ? it->next : NULL) {
            if (!cJSON_IsString(it))
                return err_set(e, "%s: field \"layers_pattern\": entry %d is not a string", file, r->n_lpat);
            /* re.match(rf".*?\.{pattern}\.(\d+)\.", key) */
            int rc = pat_compile(&r->lpat[r->n_lpat], ".*?\\.", it->valuestring, "\\.(\\d+)\\.", PCRE2_ANCHORED,
                                 "layers_pattern", file, e);
            r->n_lpat++;
            if (rc) return -1;
        }
    }
    if (r->has_layers && !r->n_lpat) {
        /* re.match(r".*?\.[^.]*\.(\d+)\.", key): the first numbered segment */
        r->lpat = calloc(1, sizeof *r->lpat);
        if (!r->lpat) return err_set(e, "out of memory");
        r->n_lpat = 1;
        if (pat_compile(r->lpat, ".*?\\.", "[^.]*", "\\.(\\d+)\\.", PCRE2_ANCHORED, "layers_pattern", file, e)) return -1;
    }
    return 0;
}

static int parse_init(const cJSON *j, const char *file, Err *e)
{
    const cJSON *v = get(j, "init_lora_weights");
    if (!v || cJSON_IsBool(v)) return 0;
    if (!cJSON_IsString(v)) return err_set(e, "%s: field \"init_lora_weights\": expected true, false or a method name", file);
    const char *s = v->valuestring;
    /* these only initialise A and B from data or noise; the base is untouched */
    if (!strcmp(s, "gaussian") || !strcmp(s, "eva") || !strcmp(s, "orthogonal")) return 0;
    if (!strncmp(s, "pissa", 5) || !strcmp(s, "olora") || !strcmp(s, "corda") || !strcmp(s, "loftq") ||
        !strcmp(s, "lora_ga"))
        return err_set(e, "%s: field \"init_lora_weights\" is \"%.40s\": this initialisation rewrites the base weights, "
                       "so the adapter does not apply to the original base; save it with "
                       "save_pretrained(..., path_initial_model_for_weight_conversion=...) to convert it to plain LoRA",
                       file, s);
    return err_set(e, "%s: field \"init_lora_weights\": unknown method \"%.40s\"", file, s);
}

int peft_rules_parse(PeftRules *r, const cJSON *j, const char *file, Err *e)
{
    memset(r, 0, sizeof *r);
    if (!cJSON_IsObject(j)) return err_set(e, "%s: expected a JSON object", file);
    const char *s = NULL;
    if (json_get_str(j, "peft_type", 1, &s, file, e)) return -1;
    if (strcmp(s, "LORA"))
        return err_set(e, "%s: field \"peft_type\" is \"%.40s\": only LoRA adapters (\"LORA\") are supported", file, s);
    if (check_fields(j, file, e)) return -1;

    long long rr;
    if (json_get_int(j, "r", 1, &rr, file, e)) return -1;
    if (rr <= 0) return err_set(e, "%s: field \"r\" is %lld (expected a positive rank)", file, rr);
    if (rr > 1 << 20) return err_set(e, "%s: field \"r\" is %lld, implausibly large", file, rr);
    r->r = (int)rr;
    if (json_get_num(j, "lora_alpha", 1, &r->alpha, file, e)) return -1;
    if (r->alpha > 1e9 || r->alpha < -1e9) return err_set(e, "%s: field \"lora_alpha\" is %g, implausibly large", file, r->alpha);
    int b = 0;
    if (json_get_bool(j, "use_rslora", 0, &b, file, e) < 0) return -1;
    r->use_rslora = b;
    /* PEFT sets fan_in_fan_out to False for torch.nn.Linear targets (with a
     * warning) and lora_A/lora_B are nn.Linear in every case, so the flag
     * changes nothing for Qwen2's projections; it only has to be a bool. */
    if (json_get_bool(j, "fan_in_fan_out", 0, &b, file, e) < 0) return -1;

    /* DoRA: applied exactly (run/forward.c), its magnitude vectors checked below */
    b = 0;
    if (json_get_bool(j, "use_dora", 0, &b, file, e) < 0) return -1;
    r->use_dora = b;
    if (want_false(j, "lora_bias", "a bias on lora_B", file, e)) return -1;
    if (want_false(j, "use_qalora", "QALoRA", file, e)) return -1;
    if (json_get_str(j, "bias", 0, &s, file, e) < 0) return -1;
    if (get(j, "bias") && strcmp(s, "none"))
        return err_set(e, "%s: field \"bias\" is \"%.40s\": trained biases are not part of a LoRA adapter duet can "
                       "apply (expected \"none\")",
                       file, s);
    const cJSON *mts = get(j, "modules_to_save");
    if (!is_trivial(mts))
        return err_set(e, "%s: field \"modules_to_save\" is set: fully fine-tuned modules saved with the adapter are not "
                       "supported",
                       file);
    if (parse_init(j, file, e)) return -1;

    int rc = parse_targets(r, j, file, e);
    rc = rc ? rc : parse_layers(r, j, file, e);
    rc = rc ? rc : parse_patterns(&r->rank, &r->n_rank, j, "rank_pattern", 1, file, e);
    rc = rc ? rc : parse_patterns(&r->alpha_pat, &r->n_alpha, j, "alpha_pattern", 0, file, e);
    if (rc) peft_rules_free(r);
    return rc;
}

void peft_rules_free(PeftRules *r)
{
    if (!r) return;
    str_list_free(r->tm_list, r->n_tm);
    pat_free(r->tm_re, r->tm_re ? 1 : 0);
    str_list_free(r->ex_list, r->n_ex);
    pat_free(r->ex_re, r->ex_re ? 1 : 0);
    free(r->layers);
    pat_free(r->lpat, r->n_lpat);
    pat_free(r->rank, r->n_rank);
    pat_free(r->alpha_pat, r->n_alpha);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------ matching */

static int ends_with_dot(const char *key, const char *suffix)
{
    size_t k = strlen(key), s = strlen(suffix);
    return k > s && key[k - s - 1] == '.' && !strcmp(key + k - s, suffix);
}

int peft_rules_entry_matches(const PeftRules *r, int entry, const char *key, const char *file, Err *e)
{
    if (r->tm_kind == TM_ALL_LINEAR) return 1;
    if (r->tm_kind == TM_REGEX) return pat_match(r->tm_re, key, NULL, 0, "target_modules", file, e);
    const char *t = r->tm_list[entry];
    return !strcmp(key, t) || ends_with_dot(key, t);
}

int peft_rules_target(const PeftRules *r, const char *key, int *hit, int *excluded, const char *file, Err *e)
{
    *hit = 0;
    if (excluded) *excluded = 0;
    /* check_target_module_exists: exclusions first */
    int ex = 0;
    if (r->ex_re) {
        ex = pat_match(r->ex_re, key, NULL, 0, "exclude_modules", file, e);
        if (ex < 0) return -1;
    }
    for (int i = 0; i < r->n_ex && !ex; i++) ex = !strcmp(key, r->ex_list[i]) || ends_with_dot(key, r->ex_list[i]);
    if (ex) {
        if (excluded) *excluded = 1;
        return 0;
    }
    if (r->tm_kind == TM_ALL_LINEAR) {
        /* PEFT resolves it into the names of every nn.Linear but the output
         * embedding: in a decoder that is the *_proj of each layer. */
        size_t n = strlen(key);
        *hit = !strncmp(key, "model.layers.", 13) && n > 5 && !strcmp(key + n - 5, "_proj");
        return 0;
    }
    if (r->tm_kind == TM_REGEX) {
        int m = pat_match(r->tm_re, key, NULL, 0, "target_modules", file, e);
        if (m < 0) return -1;
        *hit = m;
        return 0;
    }
    for (int i = 0; i < r->n_tm; i++)
        if (!strcmp(key, r->tm_list[i])) {
            *hit = 1; /* an exact name is taken as is, whatever layers_to_transform says */
            return 0;
        }
    int found = 0;
    for (int i = 0; i < r->n_tm && !found; i++) found = ends_with_dot(key, r->tm_list[i]);
    if (found && r->has_layers) {
        char g1[32];
        int m = 0;
        for (int i = 0; i < r->n_lpat && !m; i++) {
            m = pat_match(&r->lpat[i], key, g1, sizeof g1, "layers_pattern", file, e);
            if (m < 0) return -1;
        }
        if (!m) {
            found = 0;
        } else {
            /* int(match.group(1)): PEFT fails on anything but digits */
            size_t n = strlen(g1);
            if (!n || n > 9 || strspn(g1, "0123456789") != n)
                return err_set(e, "%s: field \"layers_pattern\": the layer index found in \"%s\" is \"%s\", not a number",
                               file, key, g1);
            int idx = atoi(g1);
            found = 0;
            for (int i = 0; i < r->n_layers; i++) found |= r->layers[i] == idx;
        }
    }
    *hit = found;
    return 0;
}

int peft_rules_rank_alpha(const PeftRules *r, const char *key, int *rank, double *alpha, const char *file, Err *e)
{
    *rank = r->r;
    *alpha = r->alpha;
    for (int i = 0; i < r->n_rank; i++) {
        int m = pat_match(&r->rank[i], key, NULL, 0, "rank_pattern", file, e);
        if (m < 0) return -1;
        if (m) {
            *rank = (int)r->rank[i].val;
            break;
        }
    }
    for (int i = 0; i < r->n_alpha; i++) {
        int m = pat_match(&r->alpha_pat[i], key, NULL, 0, "alpha_pattern", file, e);
        if (m < 0) return -1;
        if (m) {
            *alpha = r->alpha_pat[i].val;
            break;
        }
    }
    return 0;
}
