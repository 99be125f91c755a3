/* session.c - duet_session: options, the token history, chat messages, and
 * the generation loop (sampling, streaming detokenization, stop strings). The
 * forward passes go through the model's scheduler (sched.c). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "load/limits.h"
#include "text/detok.h"
#include "text/messages.h"
#include "text/utf8.h"
#include "util/clock.h"

int api_serr(duet_session *s, int code, const char *fmt, ...)
{
    if (!s) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return code;
}

const char *duet_session_errmsg(const duet_session *s) { return s ? s->err : "NULL session"; }

void duet_session_options_default(duet_session_options *o)
{
    memset(o, 0, sizeof *o);
    o->kv_type = DUET_KV_F16;
    o->top_p = 1;
    o->repetition_penalty = 1;
}

/* One check per option, each message naming it (load/limits.h has the bounds). */
static int check_options(duet_model *m, const duet_session_options *o)
{
    if (o->n_ctx < 0 || o->n_ctx > m->m.cfg.max_pos)
        return api_merr(m, DUET_ERR_ARG, "n_ctx %d: expected 1..%d (the model's max_position_embeddings), or 0",
                        o->n_ctx, m->m.cfg.max_pos);
    if (o->kv_type != DUET_KV_F16 && o->kv_type != DUET_KV_F32) return api_merr(m, DUET_ERR_ARG, "kv_type: f16 or f32");
    if (!(o->temperature >= 0 && o->temperature <= LIMIT_TEMPERATURE))
        return api_merr(m, DUET_ERR_ARG, "temperature %g: expected 0 .. %g", (double)o->temperature, LIMIT_TEMPERATURE);
    if (o->top_k < 0) return api_merr(m, DUET_ERR_ARG, "top_k %d: expected 0 (off) or more", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1)) return api_merr(m, DUET_ERR_ARG, "top_p %g: expected 0 < top_p <= 1", (double)o->top_p);
    if (!(o->min_p >= 0 && o->min_p <= 1)) return api_merr(m, DUET_ERR_ARG, "min_p %g: expected 0 .. 1", (double)o->min_p);
    if (!(o->repetition_penalty > 0 && o->repetition_penalty <= LIMIT_PENALTY))
        return api_merr(m, DUET_ERR_ARG, "repetition_penalty %g: expected 0 < value <= %g", (double)o->repetition_penalty,
                        LIMIT_PENALTY);
    if (!(fabsf(o->frequency_penalty) <= LIMIT_PENALTY))
        return api_merr(m, DUET_ERR_ARG, "frequency_penalty %g: expected -%g .. %g", (double)o->frequency_penalty,
                        LIMIT_PENALTY, LIMIT_PENALTY);
    if (!(fabsf(o->presence_penalty) <= LIMIT_PENALTY))
        return api_merr(m, DUET_ERR_ARG, "presence_penalty %g: expected -%g .. %g", (double)o->presence_penalty,
                        LIMIT_PENALTY, LIMIT_PENALTY);
    if (o->max_tokens < 0) return api_merr(m, DUET_ERR_ARG, "max_tokens %d: expected 0 (no limit) or more", o->max_tokens);
    if (o->n_stop_ids < 0 || o->n_stop_ids > DUET_MAX_STOPS)
        return api_merr(m, DUET_ERR_ARG, "n_stop_ids %d: expected 0 .. %d", o->n_stop_ids, DUET_MAX_STOPS);
    for (int i = 0; i < o->n_stop_ids; i++)
        if (o->stop_ids[i] < 0 || o->stop_ids[i] >= m->m.cfg.vocab_size)
            return api_merr(m, DUET_ERR_ARG, "stop_ids[%d] = %d is not a token id", i, o->stop_ids[i]);
    for (int i = 0; i < DUET_MAX_STOPS && o->stop[i]; i++)
        if (strlen(o->stop[i]) > LIMIT_STOP_BYTES)
            return api_merr(m, DUET_ERR_ARG, "stop[%d]: %zu bytes (expected at most %d)", i, strlen(o->stop[i]), LIMIT_STOP_BYTES);
    return 0;
}

int duet_session_create(duet_model *m, const duet_session_options *o, duet_session **out)
{
    duet_session_options def;
    if (!m || !out) return api_merr(m, DUET_ERR_ARG, "duet_session_create: NULL argument");
    *out = NULL;
    if (!o) {
        duet_session_options_default(&def);
        o = &def;
    }
    if (check_options(m, o)) return DUET_ERR_ARG;
    int ad = api_adapter_ref(m, o->adapter); /* released by close */
    if (ad < -1) return ad;
    int n_ctx = o->n_ctx ? o->n_ctx : (m->m.cfg.max_pos < 4096 ? m->m.cfg.max_pos : 4096);
    KvType kt = o->kv_type == DUET_KV_F32 ? KV_F32 : KV_F16;
    size_t need = kv_bytes(&m->m.cfg, n_ctx, kt);

    duet_session *s = calloc(1, sizeof *s);
    if (!s) {
        api_adapter_unref(m, ad);
        return api_merr(m, DUET_ERR_NOMEM, "out of memory");
    }
    s->md = m;
    s->o = *o;
    s->o.adapter = NULL;
    s->o.n_ctx = n_ctx;
    s->adapter = ad;
    pthread_cond_init(&s->done, NULL);
    pthread_cond_init(&s->idle, NULL);
    for (int i = 0; i < DUET_MAX_STOPS && o->stop[i]; i++)
        if (o->stop[i][0] && !(s->stops[s->n_stops++] = strdup(o->stop[i]))) goto oom;
    for (int i = 0; i < DUET_MAX_STOPS; i++) s->o.stop[i] = NULL;

    pthread_mutex_lock(&m->lock);
    if (m->kv_budget && m->kv_used + need > m->kv_budget) {
        size_t used = m->kv_used;
        pthread_mutex_unlock(&m->lock);
        duet_session_close(s);
        return api_merr(m, DUET_ERR_BUDGET,
                        "a session of %d positions needs %zu bytes of KV cache; %zu of the %zu byte budget are in use",
                        n_ctx, need, used, m->kv_budget);
    }
    m->kv_used += need; /* reserved before allocating, released by close */
    s->kv.n_ctx = -1;   /* marks the reservation for close */
    pthread_mutex_unlock(&m->lock);

    Err e;
    SampleParams sp = sample_defaults();
    sp.temperature = o->temperature;
    sp.top_k = o->top_k;
    sp.top_p = o->top_p;
    sp.min_p = o->min_p;
    sp.repetition_penalty = o->repetition_penalty;
    sp.frequency_penalty = o->frequency_penalty;
    sp.presence_penalty = o->presence_penalty;
    sp.seed = o->seed;
    s->kv.n_ctx = 0;
    if (kv_init(&s->kv, &m->m.cfg, n_ctx, kt, &e)) {
        s->kv.n_ctx = -1;
        duet_session_close(s);
        return api_merr(m, DUET_ERR_NOMEM, "%s", e.msg);
    }
    if (sampler_init(&s->smp, &sp, m->m.cfg.vocab_size) || !(s->logits = malloc((size_t)m->m.cfg.vocab_size * sizeof(float))) ||
        !(s->hist = malloc((size_t)n_ctx * sizeof *s->hist)))
        goto oom;
    for (int id = 0; m->tok && id < m->m.cfg.vocab_size; id++) /* padded embedding rows: never sampled */
        if (!tokenizer_token_bytes(m->tok, id, NULL) && sampler_ban(&s->smp, id)) goto oom;

    pthread_mutex_lock(&m->lock);
    if (m->n_sess == m->cap_sess) {
        int nc = m->cap_sess ? 2 * m->cap_sess : 8;
        duet_session **ns = realloc(m->sess, (size_t)nc * sizeof *ns);
        if (!ns) {
            pthread_mutex_unlock(&m->lock);
            goto oom;
        }
        m->sess = ns;
        m->cap_sess = nc;
    }
    m->sess[m->n_sess++] = s;
    pthread_mutex_unlock(&m->lock);
    *out = s;
    return DUET_OK;
oom:
    duet_session_close(s);
    return api_merr(m, DUET_ERR_NOMEM, "out of memory");
}

int duet_session_set_options(duet_session *s, const duet_session_options *o)
{
    if (!s || !o) return api_serr(s, DUET_ERR_ARG, "set_options: NULL argument");
    duet_session_options c = *o;
    c.n_ctx = 0; /* the fixed fields are not checked: they are ignored */
    c.kv_type = s->o.kv_type;
    if (check_options(s->md, &c)) return api_serr(s, DUET_ERR_ARG, "%s", duet_model_errmsg(s->md));
    char *stops[DUET_MAX_STOPS] = {0};
    int n_stops = 0;
    for (int i = 0; i < DUET_MAX_STOPS && o->stop[i]; i++)
        if (o->stop[i][0] && !(stops[n_stops++] = strdup(o->stop[i]))) {
            for (int k = 0; k < n_stops; k++) free(stops[k]);
            return api_serr(s, DUET_ERR_NOMEM, "out of memory");
        }
    for (int i = 0; i < s->n_stops; i++) free(s->stops[i]);
    memcpy(s->stops, stops, sizeof stops);
    s->n_stops = n_stops;
    c.adapter = NULL;
    c.n_ctx = s->o.n_ctx;
    for (int i = 0; i < DUET_MAX_STOPS; i++) c.stop[i] = NULL;
    s->o = c;
    SampleParams sp = sample_defaults();
    sp.temperature = o->temperature;
    sp.top_k = o->top_k;
    sp.top_p = o->top_p;
    sp.min_p = o->min_p;
    sp.repetition_penalty = o->repetition_penalty;
    sp.frequency_penalty = o->frequency_penalty;
    sp.presence_penalty = o->presence_penalty;
    sp.seed = o->seed;
    sampler_set_params(&s->smp, &sp);
    return DUET_OK;
}

void duet_session_close(duet_session *s)
{
    if (!s) return;
    duet_model *m = s->md;
    pthread_mutex_lock(&m->lock);
    if (s->active) { /* misuse made safe: abort, then close, from another thread while it generates */
        atomic_store(&s->abort, 1);
        pthread_cond_broadcast(&m->work);
        while (s->active) pthread_cond_wait(&s->idle, &m->lock);
    }
    for (int i = 0; i < m->n_sess; i++)
        if (m->sess[i] == s) {
            memmove(m->sess + i, m->sess + i + 1, (size_t)(m->n_sess - i - 1) * sizeof *m->sess);
            m->n_sess--;
            break;
        }
    if (s->kv.n_ctx) m->kv_used -= kv_bytes(&m->m.cfg, s->o.n_ctx, s->o.kv_type == DUET_KV_F32 ? KV_F32 : KV_F16);
    if (m->rr >= m->n_sess) m->rr = 0;
    pthread_mutex_unlock(&m->lock);
    if (s->kv.n_ctx > 0) kv_free(&s->kv);
    sampler_free(&s->smp);
    free(s->logits);
    free(s->hist);
    cJSON_Delete(s->messages);
    tools_session_free(s);
    for (int i = 0; i < s->n_stops; i++) free(s->stops[i]);
    pthread_cond_destroy(&s->done);
    api_adapter_unref(m, s->adapter);
    free(s);
}

int duet_session_set_adapter(duet_session *s, const char *name)
{
    if (!s) return DUET_ERR_ARG;
    int ad = api_adapter_ref(s->md, name);
    if (ad < -1) return api_serr(s, DUET_ERR_NOT_FOUND, "no adapter named \"%s\"", name);
    if (ad != s->adapter) s->n_past = 0; /* the kept tokens are prefilled again with the new adapter */
    api_adapter_unref(s->md, s->adapter);
    s->adapter = ad;
    return DUET_OK;
}

static void rebuild_counts(duet_session *s)
{
    sampler_reset(&s->smp);
    for (int i = 0; i < s->n_hist; i++) sampler_accept(&s->smp, s->hist[i]);
}

int duet_session_append_tokens(duet_session *s, const int *ids, int n)
{
    if (!s || n < 0 || (n && !ids)) return api_serr(s, DUET_ERR_ARG, "append_tokens: bad argument");
    if (s->messages) return api_serr(s, DUET_ERR_STATE, "the session is in chat mode (messages); clear it first");
    if (n > s->o.n_ctx - s->n_hist)
        return api_serr(s, DUET_ERR_CONTEXT_FULL, "%d tokens do not fit: %d of %d context positions are in use", n,
                        s->n_hist, s->o.n_ctx);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->md->m.cfg.vocab_size)
            return api_serr(s, DUET_ERR_ARG, "token %d at %d is not in the vocabulary (%d)", ids[i], i,
                            s->md->m.cfg.vocab_size);
    for (int i = 0; i < n; i++) {
        s->hist[s->n_hist++] = ids[i];
        sampler_accept(&s->smp, ids[i]);
    }
    return DUET_OK;
}

int duet_session_append_text(duet_session *s, const char *text, size_t len)
{
    if (!s || (!text && len)) return api_serr(s, DUET_ERR_ARG, "append_text: NULL text");
    int *ids = NULL, n = 0;
    int rc = duet_tokenize(s->md, text ? text : "", len, &ids, &n);
    if (rc) return api_serr(s, rc, "%s", duet_model_errmsg(s->md));
    rc = duet_session_append_tokens(s, ids, n);
    free(ids);
    return rc;
}

int duet_session_append_message(duet_session *s, const char *role, const char *content)
{
    if (!s || !role || !content) return api_serr(s, DUET_ERR_ARG, "append_message: NULL argument");
    if (!messages_role_ok(role))
        return api_serr(s, DUET_ERR_ARG, "append_message: role: expected \"system\", \"user\", \"assistant\" or \"tool\"");
    if (!s->md->tmpl || !s->md->tok) return api_serr(s, DUET_ERR_NOT_FOUND, "the model has no chat template or tokenizer");
    if (!s->messages && s->n_hist) return api_serr(s, DUET_ERR_STATE, "the session holds raw tokens; clear it first");
    size_t n = strlen(content);
    for (size_t i = 0; i < n;) {
        int k = utf8_check((const unsigned char *)content + i, n - i);
        if (k <= 0) return api_serr(s, DUET_ERR_UTF8, "message content: invalid UTF-8 at byte %zu", i);
        i += (size_t)k;
    }
    if (!s->messages && !(s->messages = cJSON_CreateArray())) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddStringToObject(msg, "role", role) || !cJSON_AddStringToObject(msg, "content", content)) {
        cJSON_Delete(msg);
        return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    }
    cJSON_AddItemToArray(s->messages, msg);
    return DUET_OK;
}

/* Chat mode: renders the history with the generation prompt and makes it the
 * context, keeping the cached prefix that is unchanged. */
static int render_chat(duet_session *s)
{
    Err e;
    char *text = NULL;
    if (s->tools) {
        int trc = tools_render(s, &text);
        if (trc) return trc;
    } else if (!(text = chat_template_render(s->md->tmpl, s->messages, NULL, 1, &e))) {
        return api_serr(s, DUET_ERR_FORMAT, "%s", e.msg);
    }
    int *ids = NULL, n = 0;
    int rc = tokenizer_encode(s->md->tok, text, strlen(text), &ids, &n, &e);
    free(text);
    if (rc) return api_serr(s, DUET_ERR_UTF8, "%s", e.msg);
    if (n > s->o.n_ctx) {
        free(ids);
        return api_serr(s, DUET_ERR_CONTEXT_FULL, "the conversation is %d tokens; the context holds %d", n, s->o.n_ctx);
    }
    int c = 0;
    while (c < n && c < s->n_hist && ids[c] == s->hist[c]) c++;
    if (n) memcpy(s->hist, ids, (size_t)n * sizeof *ids);
    s->n_hist = n;
    if (s->n_past > c) s->n_past = c;
    free(ids);
    rebuild_counts(s);
    return DUET_OK;
}

/* Generated text: all of it, and how much the callback has seen. */
typedef struct Gen {
    char *buf;
    size_t len, cap, emitted;
} Gen;

static int gen_add(Gen *g, const char *p, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        size_t nc = (g->len + n + 1) * 2;
        char *b = realloc(g->buf, nc);
        if (!b) return -1;
        g->buf = b;
        g->cap = nc;
    }
    memcpy(g->buf + g->len, p, n);
    g->len += n;
    g->buf[g->len] = 0;
    return 0;
}

/* Where the first stop string starts in g (or -1); *hold receives how many
 * final bytes may still be the start of one. */
static long find_stop(const duet_session *s, const Gen *g, size_t *hold)
{
    long best = -1;
    *hold = 0;
    for (int i = 0; i < s->n_stops; i++) {
        size_t L = strlen(s->stops[i]);
        size_t from = g->emitted >= L ? g->emitted - L + 1 : 0;
        const char *f = g->len > from ? memmem(g->buf + from, g->len - from, s->stops[i], L) : NULL;
        if (f && (best < 0 || f - g->buf < best)) best = f - g->buf;
        for (size_t k = L - 1; k > *hold; k--)
            if (k <= g->len && !memcmp(g->buf + g->len - k, s->stops[i], k)) {
                *hold = k;
                break;
            }
    }
    return best;
}

static int is_stop_id(const duet_session *s, int tok)
{
    const ModelConfig *c = &s->md->m.cfg;
    if (!s->o.ignore_eos)
        for (int i = 0; i < c->n_eos; i++)
            if (c->eos_ids[i] == tok) return 1;
    for (int i = 0; i < s->o.n_stop_ids; i++)
        if (s->o.stop_ids[i] == tok) return 1;
    return 0;
}

/* duet_generate between marking the session active and idle. */
static int generate_body(duet_session *s, duet_token_cb cb, void *user)
{
    double t0 = now_s(), t1 = t0;
    memset(&s->stats, 0, sizeof s->stats);
    if (s->messages) {
        int rc = render_chat(s);
        if (rc) return rc;
    }
    if (s->n_hist == 0) return api_serr(s, DUET_ERR_STATE, "nothing to generate from: append a prompt first");
    if (s->n_past == s->n_hist) s->n_past--; /* all cached: feed the last token again for its logits */
    s->stats.n_prompt = s->n_hist - s->n_past;
    s->stats.n_cached = s->n_past;
    ToolGen *tg = NULL;
    if (s->tools) {
        int trc = tools_gen_begin(s, &tg);
        if (trc) return trc;
    }

    Gen g = {0};
    Detok d;
    detok_init(&d, s->md->tok);
    atomic_store(&s->generating, 1); /* the scheduler waits briefly for our next token */
    int finish = -1, rc = sched_run(s);
    while (finish < 0) {
        if (rc == DUET_ERR_STATE || atomic_load(&s->abort)) {
            finish = DUET_FINISH_ABORT;
            break;
        }
        if (rc) {
            char why[sizeof s->err];
            snprintf(why, sizeof why, "%s", s->err);
            finish = api_serr(s, rc, "forward pass failed: %s", why);
            break;
        }
        int tok;
        if (tg) {
            int left = s->o.n_ctx - s->n_hist;
            if (s->o.max_tokens && s->o.max_tokens - s->stats.n_gen < left) left = s->o.max_tokens - s->stats.n_gen;
            if ((tok = tools_gen_sample(tg, s, left)) < 0) {
                finish = tok;
                break;
            }
        } else if ((tok = sampler_sample(&s->smp, s->logits)) < 0) {
            finish = api_serr(s, DUET_ERR_FORMAT,
                              "the model produced non-finite logits (inf or NaN) at position %d: the weights, the adapter "
                              "or the cached keys and values overflow",
                              s->n_hist);
            break;
        }
        if (s->stats.n_gen++ == 0) t1 = now_s();
        if (s->n_hist == s->o.n_ctx) {
            finish = DUET_FINISH_CONTEXT;
            break;
        }
        s->hist[s->n_hist++] = tok;
        sampler_accept(&s->smp, tok);
        if (tg) tools_gen_accept(tg, s, tok);
        if (is_stop_id(s, tok)) {
            finish = DUET_FINISH_EOS;
            break;
        }
        size_t n = 0, hold;
        const char *piece = s->md->tok ? detok_push(&d, tok, &n, NULL) : NULL;
        if (piece && gen_add(&g, piece, n)) {
            finish = api_serr(s, DUET_ERR_NOMEM, "out of memory");
            break;
        }
        long at = find_stop(s, &g, &hold);
        size_t upto = at >= 0 ? (size_t)at : g.len - hold;
        if (upto < g.emitted) upto = g.emitted;
        int stop_cb = 0;
        if (cb) { /* the callback may take long (a slow consumer): the scheduler must not hold steps for us meanwhile */
            atomic_store(&s->generating, 0);
            stop_cb = tg ? tools_gen_emit(tg, cb, user, g.buf ? g.buf + g.emitted : "", upto - g.emitted, tok, 0)
                         : cb(user, g.buf ? g.buf + g.emitted : "", upto - g.emitted, tok);
            atomic_store(&s->generating, 1);
        }
        g.emitted = upto;
        if (at >= 0) {
            g.len = (size_t)at;
            g.buf[at] = 0;
            finish = DUET_FINISH_STOP;
        } else if (stop_cb) {
            finish = DUET_FINISH_CALLBACK;
        } else if (s->o.max_tokens && s->stats.n_gen >= s->o.max_tokens) {
            finish = DUET_FINISH_LENGTH;
        } else {
            rc = sched_run(s);
        }
    }
    if (finish != DUET_FINISH_STOP && finish >= 0 && s->md->tok) {
        size_t n = 0;
        const char *rest = detok_flush(&d, &n, NULL);
        if (rest && n) gen_add(&g, rest, n);
        if (cb && g.len > g.emitted) {
            if (tg) tools_gen_emit(tg, cb, user, g.buf + g.emitted, g.len - g.emitted, -1, 0);
            else cb(user, g.buf + g.emitted, g.len - g.emitted, -1);
        }
        g.emitted = g.len;
    }
    if (tg && cb && finish >= 0) tools_gen_emit(tg, cb, user, "", 0, -1, 1);
    detok_free(&d);
    if (tg) {
        cJSON *msg = finish >= 0 ? tools_gen_end(tg, s, g.buf ? g.buf : "") : NULL;
        if (msg && s->messages) cJSON_AddItemToArray(s->messages, msg);
        else cJSON_Delete(msg);
        tools_gen_free(tg);
    } else if (s->messages && finish >= 0) {
        cJSON *msg = cJSON_CreateObject();
        if (msg) {
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", g.buf ? g.buf : "");
            cJSON_AddItemToArray(s->messages, msg);
        }
    }
    free(g.buf);
    double t2 = now_s();
    s->stats.ttft_s = (s->stats.n_gen ? t1 : t2) - t0;
    s->stats.gen_s = s->stats.n_gen ? t2 - t1 : 0;
    atomic_store(&s->abort, 0);
    atomic_store(&s->generating, 0);
    duet_model *m = s->md;
    pthread_cond_broadcast(&m->work); /* the scheduler need not wait for us any more */
    return finish;
}

int duet_generate(duet_session *s, duet_token_cb cb, void *user)
{
    if (!s) return DUET_ERR_ARG;
    duet_model *m = s->md;
    pthread_mutex_lock(&m->lock);
    s->active = 1;
    pthread_mutex_unlock(&m->lock);
    int rc = generate_body(s, cb, user);
    pthread_mutex_lock(&m->lock); /* the last touch of s: a close waiting on another thread may free it now */
    s->active = 0;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int collect(void *user, const char *piece, size_t len, int token)
{
    (void)token;
    return gen_add(user, piece, len) ? 1 : 0;
}

int duet_generate_all(duet_session *s, char **text)
{
    if (!s || !text) return api_serr(s, DUET_ERR_ARG, "generate_all: NULL argument");
    Gen g = {0};
    int rc = duet_generate(s, collect, &g);
    if (rc < 0 || (!g.buf && gen_add(&g, "", 0))) {
        free(g.buf);
        *text = NULL;
        return rc < 0 ? rc : api_serr(s, DUET_ERR_NOMEM, "out of memory");
    }
    *text = g.buf;
    return rc;
}

void duet_session_abort(duet_session *s)
{
    if (s) atomic_store(&s->abort, 1);
}

void duet_session_abort_cancel(duet_session *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->md->lock);
    if (!s->active) atomic_store(&s->abort, 0); /* only an abort still waiting for the next generate */
    pthread_mutex_unlock(&s->md->lock);
}

void duet_session_clear(duet_session *s)
{
    if (!s) return;
    s->n_hist = s->n_past = 0;
    cJSON_Delete(s->messages);
    s->messages = NULL;
    sampler_reset(&s->smp);
    tools_session_clear(s);
}

int duet_session_n_tokens(const duet_session *s) { return s ? s->n_hist : 0; }
int duet_session_n_ctx(const duet_session *s) { return s ? s->o.n_ctx : 0; }

void duet_session_stats(const duet_session *s, duet_stats *out)
{
    if (s && out) *out = s->stats;
}
