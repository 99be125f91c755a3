/* api_model.c - duet_model: opening the weights, adapters, tokenizer and
 * chat template, the kernel context and the scheduler; the text helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "api/api_int.h"
#include "load/limits.h"
#include "run/sample.h"

/* Each thread's last model message: a failing call on one thread must not
 * overwrite the message another thread is about to read (TSan saw it). The
 * model's own copy, under its lock, serves threads that have none. */
static _Thread_local struct {
    const duet_model *m;
    char msg[512];
} tl_err;

int api_merr(duet_model *m, int code, const char *fmt, ...)
{
    if (!m) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_err.msg, sizeof tl_err.msg, fmt, ap);
    va_end(ap);
    tl_err.m = m;
    pthread_mutex_lock(&m->err_lock);
    memcpy(m->err, tl_err.msg, sizeof m->err);
    pthread_mutex_unlock(&m->err_lock);
    return code;
}

const char *duet_model_errmsg(const duet_model *m)
{
    if (!m) return "NULL model";
    if (tl_err.m == m) return tl_err.msg;
    return "no failed call on this model from this thread";
}

void duet_model_options_default(duet_model_options *o) { memset(o, 0, sizeof *o); }

/* Status for a library Err message (the lower layers give text only). */
static int code_of(const char *msg)
{
    if (strstr(msg, "out of memory")) return DUET_ERR_NOMEM;
    if (strstr(msg, "no such file") || strstr(msg, "cannot open") || strstr(msg, "No such") || strstr(msg, "not found"))
        return DUET_ERR_IO;
    return DUET_ERR_FORMAT;
}

/* The identity of the weights, for session files: the config, then for a
 * .duet the per-chunk checksums of its blob section (which cover every
 * weight byte, adapters included), for a folder every shard's bytes. Two
 * models that differ in any weight differ here. */
static uint64_t model_hash(const Model *m)
{
    const ModelConfig *c = &m->cfg;
    int v[] = {c->arch, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->hidden_dim, c->vocab_size,
               (int)m->embed.type, (int)m->lm_head.type, m->merged};
    XXH3_state_t *st = XXH3_createState();
    if (!st) return 0;
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, v, sizeof v);
    if (m->meta) {
        cJSON *j = cJSON_ParseWithLength(m->meta, m->meta_len), *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(j, "blob_hashes"))
        {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(h, "xxh3");
            if (cJSON_IsString(x)) XXH3_64bits_update(st, x->valuestring, strlen(x->valuestring));
        }
        cJSON_Delete(j);
    } else {
        for (int i = 0; i < m->ckpt.n_files; i++) XXH3_64bits_update(st, m->ckpt.files[i].map, m->ckpt.files[i].size);
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Loads tokenizer.json and the chat template from dir, when present. */
static int load_text(duet_model *d, const char *dir, Err *e)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (file_exists(p) && !(d->tok = tokenizer_load_file(p, e))) return -1;
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    if (file_exists(p)) {
        d->tmpl = chat_template_load_file(p, e);
        if (!d->tmpl && !strstr(e->msg, "chat_template")) return -1; /* no template is fine */
    }
    return 0;
}

/* The tokenizer.json and tokenizer_config.json bytes a .duet embeds. */
static int load_text_embedded(duet_model *d, const char *path, Err *e)
{
    char p[4200];
    snprintf(p, sizeof p, "%s#tokenizer.json", path);
    if (!(d->tok = tokenizer_load_json(d->m.tokenizer_json, d->m.tokenizer_json_len, p, e))) return -1;
    if (d->m.tokenizer_config) {
        snprintf(p, sizeof p, "%s#tokenizer_config.json", path);
        d->tmpl = chat_template_load_json(d->m.tokenizer_config, d->m.tokenizer_config_len, p, e);
        if (!d->tmpl && !strstr(e->msg, "chat_template")) return -1; /* no template is fine */
    }
    return 0;
}

int duet_model_open(duet_model **out, const char *path, const duet_model_options *o, char *err, size_t err_len)
{
    duet_model_options def;
    Err e = {{0}};
    int code = DUET_ERR_FORMAT;
    if (out) *out = NULL;
    if (!out || !path) {
        if (err && err_len) snprintf(err, err_len, "duet_model_open: NULL %s", out ? "path" : "out");
        return DUET_ERR_ARG;
    }
    if (!o) {
        duet_model_options_default(&def);
        o = &def;
    }
    /* the options first, each named (load/limits.h) */
    const char *bad = NULL;
    long val = 0, hi = 0;
    if (o->n_threads < 0 || o->n_threads > LIMIT_THREADS) bad = "n_threads", val = o->n_threads, hi = LIMIT_THREADS;
    else if (o->prefill_chunk < 0 || o->prefill_chunk > LIMIT_PREFILL_CHUNK)
        bad = "prefill_chunk", val = o->prefill_chunk, hi = LIMIT_PREFILL_CHUNK;
    if (bad) {
        if (err && err_len) snprintf(err, err_len, "%s %ld: expected 0 (the default) .. %ld", bad, val, hi);
        return DUET_ERR_ARG;
    }
    duet_model *d = calloc(1, sizeof *d);
    if (!d) {
        if (err && err_len) snprintf(err, err_len, "out of memory");
        return DUET_ERR_NOMEM;
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->err_lock, NULL);
    pthread_cond_init(&d->work, NULL);
    d->kv_budget = o->kv_budget_bytes;
    d->chunk = o->prefill_chunk > 0 ? o->prefill_chunk : 64;
    if (model_open_flags(&d->m, path, o->load_to_ram ? MODEL_OPEN_RAM : 0, &e)) {
        code = code_of(e.msg);
        goto fail;
    }
    for (int i = 0; o->loras && o->loras[i]; i++) {
        const char *spec = o->loras[i], *eq = strchr(spec, '=');
        char name[256];
        if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof name) {
            err_set(&e, "lora \"%s\": expected NAME=DIR", spec);
            code = DUET_ERR_ARG;
            goto fail;
        }
        memcpy(name, spec, (size_t)(eq - spec));
        name[eq - spec] = 0;
        if (limit_adapter_name(name, eq + 1, &e)) {
            code = DUET_ERR_ARG;
            goto fail;
        }
        if (model_add_lora(&d->m, eq + 1, name, &e)) {
            code = code_of(e.msg);
            goto fail;
        }
    }
    struct stat st;
    if (o->tokenizer_dir) {
        char tp[4200];
        snprintf(tp, sizeof tp, "%s/tokenizer.json", o->tokenizer_dir);
        if (!file_exists(tp)) { /* asked for by name: its absence is an error, not "no tokenizer" */
            err_set(&e, "tokenizer_dir %s: no tokenizer.json there", o->tokenizer_dir);
            code = DUET_ERR_IO;
            goto fail;
        }
        if (load_text(d, o->tokenizer_dir, &e)) goto fail;
    } else if (d->m.tokenizer_json) { /* a .duet carries its own */
        if (load_text_embedded(d, path, &e)) goto fail;
    } else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (load_text(d, path, &e)) goto fail;
    }
    if (api_adapter_reserve(d, &e)) goto fail;
    d->hash = model_hash(&d->m);
    if (!(d->k = kern_create(o->n_threads, o->isa, &e))) {
        code = DUET_ERR_ARG;
        goto fail;
    }
    if (sched_start(d, &e)) {
        code = DUET_ERR_INTERNAL;
        goto fail;
    }
    *out = d;
    return DUET_OK;
fail:
    if (err && err_len) snprintf(err, err_len, "%s", e.msg);
    d->n_sess = 0;
    duet_model_close(d);
    return code;
}

int duet_model_close(duet_model *m)
{
    if (!m) return DUET_OK;
    pthread_mutex_lock(&m->lock);
    int n = m->n_sess;
    pthread_mutex_unlock(&m->lock);
    if (n) return api_merr(m, DUET_ERR_STATE, "duet_model_close: %d sessions are still open", n);
    sched_stop(m);
    kern_destroy(m->k);
    tokenizer_free(m->tok);
    chat_template_free(m->tmpl);
    tools_model_free(m);
    scratch_free(&m->scratch);
    model_close(&m->m);
    free(m->sess);
    pthread_cond_destroy(&m->work);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->err_lock);
    free(m);
    return DUET_OK;
}

int duet_model_n_adapters(const duet_model *m)
{
    if (!m) return 0;
    pthread_mutex_lock((pthread_mutex_t *)&m->lock);
    int n = m->m.n_adapters;
    pthread_mutex_unlock((pthread_mutex_t *)&m->lock);
    return n;
}

const char *duet_model_adapter_name(const duet_model *m, int i)
{
    if (!m) return NULL;
    pthread_mutex_lock((pthread_mutex_t *)&m->lock);
    const char *name = i >= 0 && i < m->m.n_adapters && m->ad_gone[i] == AD_LIVE ? m->m.adapters[i].name : NULL;
    pthread_mutex_unlock((pthread_mutex_t *)&m->lock);
    return name;
}

int duet_model_vocab(const duet_model *m) { return m ? m->m.cfg.vocab_size : 0; }
int duet_model_max_context(const duet_model *m) { return m ? m->m.cfg.max_pos : 0; }

int duet_model_sampling_defaults(const duet_model *m, duet_session_options *o)
{
    if (!m || !o) return DUET_ERR_ARG;
    SampleParams p = sample_model_defaults(&m->m.cfg.gen);
    o->temperature = p.temperature;
    o->top_k = p.top_k;
    o->top_p = p.top_p;
    o->min_p = p.min_p;
    o->repetition_penalty = p.repetition_penalty;
    return m->m.cfg.gen.set;
}

size_t duet_model_kv_bytes(const duet_model *m, int n_ctx, duet_kv_type t)
{
    return m && n_ctx > 0 ? kv_bytes(&m->m.cfg, n_ctx, t == DUET_KV_F32 ? KV_F32 : KV_F16) : 0;
}

size_t duet_model_kv_in_use(const duet_model *m)
{
    if (!m) return 0;
    pthread_mutex_lock((pthread_mutex_t *)&m->lock);
    size_t u = m->kv_used;
    pthread_mutex_unlock((pthread_mutex_t *)&m->lock);
    return u;
}

int duet_tokenize(duet_model *m, const char *text, size_t len, int **ids, int *n)
{
    Err e;
    if (!m || (!text && len) || !ids || !n) return api_merr(m, DUET_ERR_ARG, "duet_tokenize: NULL argument");
    if (!m->tok) return api_merr(m, DUET_ERR_NOT_FOUND, "the model has no tokenizer.json");
    if (tokenizer_encode(m->tok, text ? text : "", len, ids, n, &e))
        return api_merr(m, strstr(e.msg, "UTF-8") ? DUET_ERR_UTF8 : DUET_ERR_NOMEM, "%s", e.msg);
    return DUET_OK;
}

int duet_detokenize(duet_model *m, const int *ids, int n, char **text)
{
    Err e;
    if (!m || (!ids && n) || n < 0 || !text) return api_merr(m, DUET_ERR_ARG, "duet_detokenize: bad argument");
    if (!m->tok) return api_merr(m, DUET_ERR_NOT_FOUND, "the model has no tokenizer.json");
    if (!(*text = tokenizer_decode(m->tok, ids, n, NULL, &e))) return api_merr(m, DUET_ERR_ARG, "%s", e.msg);
    return DUET_OK;
}

int duet_apply_template(duet_model *m, const char *messages_json, int add_generation_prompt, char **text)
{
    return duet_apply_template_tools(m, messages_json, NULL, add_generation_prompt, text);
}

int duet_apply_template_tools(duet_model *m, const char *messages_json, const char *tools_json,
                              int add_generation_prompt, char **text)
{
    Err e;
    if (!m || !messages_json || !text) return api_merr(m, DUET_ERR_ARG, "duet_apply_template: NULL argument");
    *text = NULL;
    if (!m->tmpl) return api_merr(m, DUET_ERR_NOT_FOUND, "the model has no chat template");
    cJSON *msgs = cJSON_Parse(messages_json);
    if (!cJSON_IsArray(msgs)) {
        cJSON_Delete(msgs);
        return api_merr(m, DUET_ERR_ARG, "messages: expected a JSON array of {role, content}");
    }
    cJSON *tools = NULL;
    if (tools_json) {
        tools = cJSON_Parse(tools_json);
        if (!cJSON_IsArray(tools) && !cJSON_IsNull(tools)) {
            cJSON_Delete(msgs);
            cJSON_Delete(tools);
            return api_merr(m, DUET_ERR_ARG, "tools: expected a JSON array of tool definitions or null");
        }
    }
    *text = chat_template_render(m->tmpl, msgs, tools, add_generation_prompt, &e);
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    return *text ? DUET_OK : api_merr(m, DUET_ERR_FORMAT, "%s", e.msg);
}
