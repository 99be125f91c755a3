#include "load/peft.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "load/limits.h"
#include "load/peft_match.h"
#include "load/safetensors.h"
#include "util/half.h"
#include "util/json.h"

/* ------------------------------------------------------------------ projections */

static const char *const PROJ_NAME[P_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
static const char *const PROJ_PATH[P_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                               "mlp.down_proj"};

const char *proj_name(Proj p) { return (unsigned)p < P_COUNT ? PROJ_NAME[p] : "?"; }
const char *proj_path(Proj p) { return (unsigned)p < P_COUNT ? PROJ_PATH[p] : "?"; }

int proj_in(const ModelConfig *c, Proj p)
{
    switch (p) {
    case P_Q: case P_K: case P_V: case P_GATE: case P_UP: return c->dim;
    case P_O: return c->n_heads * c->head_dim;
    case P_DOWN: return c->hidden_dim;
    default: return 0;
    }
}

int proj_out(const ModelConfig *c, Proj p)
{
    switch (p) {
    case P_Q: return c->n_heads * c->head_dim;
    case P_K: case P_V: return c->n_kv_heads * c->head_dim;
    case P_O: case P_DOWN: return c->dim;
    case P_GATE: case P_UP: return c->hidden_dim;
    default: return 0;
    }
}

/* Module names of Qwen2ForCausalLM.named_modules() that are not Linear
 * projections: PEFT refuses to put LoRA on them ("Target module ... is not
 * supported"), and so do we when target_modules selects one. Per layer: */
static const char *const LAYER_OTHER[] = {"self_attn", "mlp", "mlp.act_fn", "input_layernorm",
                                          "post_attention_layernorm", "self_attn.q_norm", "self_attn.k_norm"};
static const char *const MODEL_OTHER[] = {"model", "model.layers", "model.norm", "model.rotary_emb"};

static void module_key(char *buf, size_t n, int layer, Proj p)
{
    snprintf(buf, n, "model.layers.%d.%s", layer, PROJ_PATH[p]);
}

/* ------------------------------------------------------------------ selection */

/* What the config asks for, per (layer, proj): rank 0 = not adapted. */
typedef struct Want {
    int r;
    double alpha;
    double scale; /* LoraLayer.update_layer: alpha / sqrt(r) with rsLoRA, else alpha / r */
} Want;

/* The embedding and the output head cannot carry LoRA here; say so by name. */
static int refuse_head(const PeftRules *ru, const char *file, Err *e)
{
    static const char *const heads[][2] = {{"lm_head", "lm_head"}, {"model.embed_tokens", "embed_tokens"}};
    for (int h = 0; h < 2; h++) {
        int hit, ex;
        if (peft_rules_target(ru, heads[h][0], &hit, &ex, file, e)) return -1;
        if (hit)
            return err_set(e, "%s: field \"target_modules\" selects %s: LoRA on the %s is not supported", file,
                           heads[h][1], h ? "input embedding" : "output head (lm_head)");
    }
    return 0;
}

/* Every target_modules entry must name something in the base, and nothing it
 * selects may be a module PEFT cannot adapt. */
static int check_entries(const PeftRules *ru, const ModelConfig *cfg, const char *file, Err *e)
{
    char key[128];
    if (refuse_head(ru, file, e)) return -1;
    for (int l = 0; l < cfg->n_layers; l++)
        for (size_t k = 0; k < sizeof LAYER_OTHER / sizeof *LAYER_OTHER; k++) {
            snprintf(key, sizeof key, "model.layers.%d.%s", l, LAYER_OTHER[k]);
            int hit;
            if (peft_rules_target(ru, key, &hit, NULL, file, e)) return -1;
            if (hit)
                return err_set(e, "%s: field \"target_modules\" selects \"%s\", which is not a Linear layer "
                               "(PEFT refuses it too)",
                               file, key);
        }
    for (size_t k = 0; k < sizeof MODEL_OTHER / sizeof *MODEL_OTHER; k++) {
        int hit;
        if (peft_rules_target(ru, MODEL_OTHER[k], &hit, NULL, file, e)) return -1;
        if (hit)
            return err_set(e, "%s: field \"target_modules\" selects \"%s\", which is not a Linear layer (PEFT refuses "
                           "it too)",
                           file, MODEL_OTHER[k]);
    }
    int n_entries = ru->tm_kind == TM_LIST ? ru->n_tm : 1;
    for (int i = 0; i < n_entries && ru->tm_kind != TM_ALL_LINEAR; i++) {
        int any = 0;
        for (int l = 0; l < cfg->n_layers && !any; l++)
            for (int p = 0; p < P_COUNT && !any; p++) {
                module_key(key, sizeof key, l, (Proj)p);
                any = peft_rules_entry_matches(ru, i, key, file, e);
                if (any < 0) return -1;
            }
        if (!any) {
            if (ru->tm_kind == TM_REGEX)
                return err_set(e, "%s: field \"target_modules\": the regex matches none of the projections of this "
                               "base (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj): adapter for "
                               "another architecture?",
                               file);
            return err_set(e, "%s: field \"target_modules\": \"%.100s\" names no module of this base (a Qwen2 layer "
                           "has q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj): adapter for another "
                           "architecture?",
                           file, ru->tm_list[i]);
        }
    }
    return 0;
}

/* Fills want[l * P_COUNT + p] for every projection of the base. */
static int select_modules(Want *want, const PeftRules *ru, const ModelConfig *cfg, const char *file, Err *e)
{
    char key[128];
    int any = 0;
    for (int l = 0; l < cfg->n_layers; l++)
        for (int p = 0; p < P_COUNT; p++) {
            Want *w = &want[l * P_COUNT + p];
            int hit;
            module_key(key, sizeof key, l, (Proj)p);
            if (peft_rules_target(ru, key, &hit, NULL, file, e)) return -1;
            w->r = 0;
            if (!hit) continue;
            if (peft_rules_rank_alpha(ru, key, &w->r, &w->alpha, file, e)) return -1;
            if (w->r > LIMIT_LORA_RANK)
                return err_set(e, "%s: %s: rank %d (r / rank_pattern) is above duet's limit of %d", file, key, w->r,
                               LIMIT_LORA_RANK);
            w->scale = ru->use_rslora ? w->alpha / sqrt((double)w->r) : w->alpha / w->r;
            if (!(fabs(w->scale) <= LIMIT_LORA_SCALE))
                return err_set(e, "%s: %s: scale lora_alpha / %s = %g (lora_alpha / alpha_pattern) is above duet's "
                               "limit of %g",
                               file, key, ru->use_rslora ? "sqrt(r)" : "r", w->scale, LIMIT_LORA_SCALE);
            any = 1;
        }
    if (!any) return err_set(e, "%s: target_modules, exclude_modules and layers_to_transform select no module", file);
    return 0;
}

int peft_config_check(const char *text, size_t len, const char *name, const ModelConfig *cfg, Err *e)
{
    cJSON *j = json_parse(text, len, name, e);
    if (!j) return -1;
    PeftRules ru;
    int rc = peft_rules_parse(&ru, j, name, e);
    cJSON_Delete(j);
    if (rc) return -1;
    Want *want = calloc((size_t)cfg->n_layers * P_COUNT + 1, sizeof *want);
    if (!want) rc = err_set(e, "out of memory");
    rc = rc ? rc : check_entries(&ru, cfg, name, e);
    rc = rc ? rc : select_modules(want, &ru, cfg, name, e);
    free(want);
    peft_rules_free(&ru);
    return rc;
}

/* ------------------------------------------------------------------ tensor names */

typedef struct Slot {
    const StTensor *A, *B, *M; /* M: DoRA's lora_magnitude_vector */
} Slot;

static int starts(const char *s, const char *pre) { return !strncmp(s, pre, strlen(pre)); }

static int is_module(const char *m, const char *name)
{
    size_t k = strlen(m), n = strlen(name);
    return !strcmp(m, name) || (k > n && m[k - n - 1] == '.' && !strcmp(m + k - n, name));
}

/* Parses "base_model.model.model.layers.N.self_attn.q_proj.lora_A[.ADAPTER].weight"
 * (PEFT strips the adapter name when saving; the infix form is accepted for
 * state dicts dumped by hand) into its slot. `infix` keeps the first adapter
 * name seen so a file mixing two adapters is refused. */
static int place_tensor(Slot *slots, const StTensor *t, const ModelConfig *cfg, char *infix, size_t infix_n,
                        const char *file, Err *e)
{
    const char *tn = t->name;
    const char *s = starts(tn, "base_model.model.") ? tn + strlen("base_model.model.") : tn;
    const char *lo = strstr(s, ".lora_");
    if (!lo) {
        if (strstr(s, "modules_to_save"))
            return err_set(e, "%s: tensor \"%s\" belongs to modules_to_save: fully fine-tuned modules are not supported",
                           file, tn);
        return err_set(e, "%s: tensor \"%s\" is not a LoRA weight (expected NAME.lora_A.weight or NAME.lora_B.weight)",
                       file, tn);
    }
    for (const char *nx; (nx = strstr(lo + 1, ".lora_"));) lo = nx;
    char module[256];
    size_t ml = (size_t)(lo - s);
    if (ml >= sizeof module) return err_set(e, "%s: tensor \"%.200s...\": module name too long", file, tn);
    memcpy(module, s, ml);
    module[ml] = 0;
    const char *rest = lo + 1;

    if (is_module(module, "lm_head"))
        return err_set(e, "%s: tensor \"%s\": LoRA on lm_head (the output head) is not supported", file, tn);
    if (is_module(module, "embed_tokens"))
        return err_set(e, "%s: tensor \"%s\": LoRA on embed_tokens (the input embedding) is not supported", file, tn);
    if (starts(rest, "lora_embedding_"))
        return err_set(e, "%s: tensor \"%s\": LoRA on an embedding is not supported", file, tn);

    int isB, isM = 0;
    if (!strcmp(rest, "lora_magnitude_vector") || !strcmp(rest, "lora_magnitude_vector.weight")) isM = 1, isB = 0;
    else if (starts(rest, "lora_A.")) isB = 0;
    else if (starts(rest, "lora_B.")) isB = 1;
    else return err_set(e, "%s: tensor \"%s\" is not a lora_A or lora_B weight", file, tn);
    const char *tail = isM ? "weight" : rest + strlen("lora_A.");
    const char *dot = strrchr(tail, '.');
    const char *what = dot ? dot + 1 : tail;
    if (!strcmp(what, "bias"))
        return err_set(e, "%s: tensor \"%s\" is a bias on lora_B: lora_bias is not supported", file, tn);
    if (strcmp(what, "weight"))
        return err_set(e, "%s: tensor \"%s\" is not a lora_A or lora_B weight", file, tn);
    size_t il = dot ? (size_t)(dot - tail) : 0;
    if (il) {
        if (!infix[0]) snprintf(infix, infix_n, "%.*s", (int)(il < infix_n - 1 ? il : infix_n - 1), tail);
        if (strlen(infix) != il || strncmp(infix, tail, il))
            return err_set(e, "%s: tensor \"%s\": the file holds more than one adapter (\"%s\" and \"%.*s\")", file, tn,
                           infix, (int)il, tail);
    }

    /* module must be model.layers.N.<projection path> */
    int layer = -1, p = -1;
    if (starts(module, "model.layers.")) {
        const char *d = module + strlen("model.layers.");
        char *end;
        errno = 0;
        long v = strtol(d, &end, 10);
        if (end != d && *end == '.' && d[0] >= '0' && d[0] <= '9' && !errno && v <= 1000000) {
            for (int k = 0; k < P_COUNT; k++)
                if (!strcmp(end + 1, PROJ_PATH[k])) p = k;
            layer = (int)v;
        }
    }
    if (p < 0)
        return err_set(e, "%s: tensor \"%s\": module \"%s\" is not a projection of this base (expected "
                       "model.layers.N.self_attn.{q,k,v,o}_proj or model.layers.N.mlp.{gate,up,down}_proj): adapter "
                       "for another architecture?",
                       file, tn, module);
    if (layer >= cfg->n_layers)
        return err_set(e, "%s: tensor \"%s\": layer %d, but the base model has %d layers (0..%d)", file, tn, layer,
                       cfg->n_layers, cfg->n_layers - 1);
    Slot *sl = &slots[layer * P_COUNT + p];
    const StTensor **dst = isM ? &sl->M : isB ? &sl->B : &sl->A;
    if (*dst) return err_set(e, "%s: tensors \"%s\" and \"%s\" are the same weight", file, (*dst)->name, tn);
    *dst = t;
    return 0;
}

/* ------------------------------------------------------------------ load */

static void to_f32(float *out, const StTensor *t)
{
    int64_t n = st_numel(t);
    const unsigned char *src = t->data;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        switch (t->dtype) {
        case DT_F32: memcpy(&out[i], src + 4 * i, 4); break; /* may be only 2-byte aligned */
        case DT_F16: memcpy(&h, src + 2 * i, 2); out[i] = f16_to_f32(h); break;
        default: memcpy(&h, src + 2 * i, 2); out[i] = bf16_to_f32(h); break;
        }
    }
}

/* Checks slot (l, p) against what the config wants and the base's shapes. */
static int check_slot(const Slot *sl, const Want *w, int l, Proj p, const ModelConfig *cfg, int dora,
                      const char *cfile, const char *sfile, Err *e)
{
    char key[128];
    module_key(key, sizeof key, l, p);
    if (!w->r) {
        const StTensor *t = sl->A ? sl->A : sl->B ? sl->B : sl->M;
        if (t)
            return err_set(e, "%s: tensor \"%s\" is for %s, which %s does not select (target_modules, exclude_modules, "
                           "layers_to_transform): adapter and config disagree",
                           sfile, t->name, key, cfile);
        return 0;
    }
    if (!sl->A && !sl->B)
        return err_set(e, "%s: no lora_A/lora_B tensors for %s, which %s selects", sfile, key, cfile);
    if (!sl->A || !sl->B)
        return err_set(e, "%s: tensor \"%s\" has no matching %s", sfile, (sl->A ? sl->A : sl->B)->name,
                       sl->A ? "lora_B" : "lora_A");
    const StTensor *A = sl->A, *B = sl->B;
    if (A->ndim != 2 || B->ndim != 2)
        return err_set(e, "%s: tensors \"%s\" / \"%s\" must be 2-D", sfile, A->name, B->name);
    int in = proj_in(cfg, p), out = proj_out(cfg, p);
    if (A->shape[1] != in)
        return err_set(e, "%s: tensor \"%s\" is [%lld, %lld]: %lld in-features, but %s of the base has %d: adapter for "
                       "another base model?",
                       sfile, A->name, (long long)A->shape[0], (long long)A->shape[1], (long long)A->shape[1], key, in);
    if (B->shape[0] != out)
        return err_set(e, "%s: tensor \"%s\" is [%lld, %lld]: %lld out-features, but %s of the base has %d: adapter "
                       "for another base model?",
                       sfile, B->name, (long long)B->shape[0], (long long)B->shape[1], (long long)B->shape[0], key, out);
    if (A->shape[0] != w->r || B->shape[1] != w->r)
        return err_set(e, "%s: %s: A/B shapes disagree with r: lora_A is [%lld, %lld], lora_B is [%lld, %lld], but %s "
                       "gives rank %d (r / rank_pattern)",
                       sfile, key, (long long)A->shape[0], (long long)A->shape[1], (long long)B->shape[0],
                       (long long)B->shape[1], cfile, w->r);
    if (!dora && sl->M)
        return err_set(e, "%s: tensor \"%s\" is a DoRA magnitude vector but %s has no \"use_dora\": true", sfile,
                       sl->M->name, cfile);
    if (dora && !sl->M)
        return err_set(e, "%s: no lora_magnitude_vector (DoRA) for %s, which \"use_dora\" in %s needs", sfile, key, cfile);
    if (dora && (sl->M->ndim != 1 || sl->M->shape[0] != out))
        return err_set(e, "%s: tensor \"%s\" must have shape [%d] (the out-features of %s)", sfile, sl->M->name, out, key);
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return !stat(path, &sb);
}

/* The body of peft_load once the paths exist; everything it allocates is
 * either in *a (freed by the caller on failure) or freed here. */
static int load(Adapter *a, const char *dir, const ModelConfig *cfg, const char *cpath, const char *spath, Err *e)
{
    if (cfg->n_layers <= 0 || cfg->n_layers > 100000) return err_set(e, "%s: base config has %d layers", dir, cfg->n_layers);
    size_t clen;
    char *ctext = file_read(cpath, &clen, e);
    if (!ctext) return -1;
    cJSON *j = json_parse(ctext, clen, cpath, e);
    PeftRules ru;
    int rc = j ? peft_rules_parse(&ru, j, cpath, e) : -1;
    cJSON_Delete(j);
    if (rc) {
        free(ctext);
        return -1;
    }
    size_t nslots = (size_t)cfg->n_layers * P_COUNT;
    Want *want = calloc(nslots, sizeof *want);
    Slot *slots = calloc(nslots, sizeof *slots);
    StFile st = {0};
    if (!want || !slots) rc = err_set(e, "out of memory");
    rc = rc ? rc : check_entries(&ru, cfg, cpath, e);
    rc = rc ? rc : select_modules(want, &ru, cfg, cpath, e);
    int ru_dora = ru.use_dora;
    peft_rules_free(&ru);
    if (!rc && !file_exists(spath)) {
        char *bin = path_join(dir, "adapter_model.bin");
        if (bin && file_exists(bin))
            rc = err_set(e, "%s: only adapter_model.bin (a pickle) is there; duet reads adapter_model.safetensors: save "
                         "the adapter with model.save_pretrained(dir, safe_serialization=True)",
                         dir);
        else
            rc = err_set(e, "%s: adapter_model.safetensors not found", dir);
        free(bin);
    }
    rc = rc ? rc : st_open(&st, spath, e);

    char infix[64] = "";
    for (int i = 0; !rc && i < st.n; i++) rc = place_tensor(slots, &st.t[i], cfg, infix, sizeof infix, spath, e);
    size_t total = 0;
    for (size_t i = 0; !rc && i < nslots; i++) {
        rc = check_slot(&slots[i], &want[i], (int)(i / P_COUNT), (Proj)(i % P_COUNT), cfg, ru_dora, cpath, spath, e);
        if (!rc && want[i].r)
            total += (size_t)st_numel(slots[i].A) + (size_t)st_numel(slots[i].B) + (slots[i].M ? (size_t)st_numel(slots[i].M) : 0);
    }
    if (!rc) {
        a->pairs = calloc(nslots, sizeof *a->pairs);
        a->owned = malloc(total ? total * sizeof(float) : 1);
        if (!a->pairs || !a->owned) rc = err_set(e, "out of memory");
    }
    float *buf = a->owned;
    for (size_t i = 0; !rc && i < nslots; i++) {
        if (!want[i].r) continue;
        LoraPair *lp = &a->pairs[i];
        Proj p = (Proj)(i % P_COUNT);
        int r = want[i].r;
        lp->r = r;
        lp->scale = (float)want[i].scale;
        lp->A = (QMat){.type = DT_F32, .rows = r, .cols = proj_in(cfg, p), .data = buf};
        to_f32(buf, slots[i].A);
        buf += st_numel(slots[i].A);
        lp->B = (QMat){.type = DT_F32, .rows = proj_out(cfg, p), .cols = r, .data = buf};
        to_f32(buf, slots[i].B);
        buf += st_numel(slots[i].B);
        rc = limit_finite_qmat(&lp->A, spath, slots[i].A->name, e) || limit_finite_qmat(&lp->B, spath, slots[i].B->name, e) ? -1 : 0;
        if (!rc && slots[i].M) {
            QMat mq = {.type = DT_F32, .rows = 1, .cols = proj_out(cfg, p), .data = buf};
            to_f32(buf, slots[i].M);
            lp->dora = buf;
            buf += st_numel(slots[i].M);
            rc = limit_finite_qmat(&mq, spath, slots[i].M->name, e);
        }
    }
    if (!rc) {
        XXH64_state_t *h = XXH64_createState();
        if (!h) {
            rc = err_set(e, "out of memory");
        } else {
            XXH64_reset(h, 0);
            XXH64_update(h, ctext, clen);
            XXH64_update(h, st.map, st.size);
            a->hash = XXH64_digest(h);
            if (!a->hash) a->hash = 1; /* never 0, the base's mark in session files */
            XXH64_freeState(h);
        }
    }
    st_close(&st);
    free(ctext);
    free(want);
    free(slots);
    return rc;
}

int peft_load(Adapter *a, const char *dir, const char *name, const ModelConfig *cfg, Err *e)
{
    memset(a, 0, sizeof *a);
    char *cpath = path_join(dir, "adapter_config.json");
    char *spath = path_join(dir, "adapter_model.safetensors");
    int rc = 0;
    if (!cpath || !spath) {
        rc = err_set(e, "out of memory");
    } else if (!file_exists(cpath)) {
        if (file_exists(dir))
            rc = err_set(e, "%s: adapter_config.json not found: not a PEFT adapter folder", dir);
        else
            rc = err_set(e, "%s: adapter folder not found (looking for adapter_config.json)", dir);
    } else {
        rc = load(a, dir, cfg, cpath, spath, e);
    }
    if (!rc) {
        if (name) {
            a->name = strdup(name);
        } else { /* the folder's last component, trailing slashes ignored */
            size_t n = strlen(dir);
            while (n > 1 && dir[n - 1] == '/') n--;
            size_t b = n;
            while (b > 0 && dir[b - 1] != '/') b--;
            a->name = strndup(dir + b, n - b);
        }
        a->source = strdup(dir);
        a->n_layers = cfg->n_layers;
        if (!a->name || !a->source) rc = err_set(e, "out of memory");
    }
    free(cpath);
    free(spath);
    if (rc) adapter_free(a);
    return rc;
}

void adapter_free(Adapter *a)
{
    if (!a) return;
    free(a->name);
    free(a->source);
    free(a->pairs);
    free(a->owned);
    memset(a, 0, sizeof *a);
}

const LoraPair *adapter_pair(const Adapter *a, int layer, Proj p)
{
    if (!a || !a->pairs || layer < 0 || layer >= a->n_layers || (unsigned)p >= P_COUNT) return NULL;
    const LoraPair *lp = &a->pairs[layer * P_COUNT + p];
    return lp->r ? lp : NULL;
}
