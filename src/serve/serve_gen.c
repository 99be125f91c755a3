/* serve_gen.c - one request's generation on its session: options, prompt
 * (chat messages or raw tokens, keeping the cached prefix), the token
 * callback that collects text and logprobs and streams chunks, and the
 * finish reason. Also the Chan that carries stream bytes to the HTTP
 * connection thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"
#include "util/clock.h"

void chan_init(Chan *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cv, NULL);
}

void chan_destroy(Chan *c)
{
    free(c->b.p);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->lock);
}

void chan_put(Chan *c, const char *p, size_t n)
{
    pthread_mutex_lock(&c->lock);
    if (c->off == c->b.len) c->off = c->b.len = 0; /* all taken: start over */
    buf_add(&c->b, p, n);                            /* on failure the client gets a short stream */
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->lock);
}

void chan_close(Chan *c)
{
    pthread_mutex_lock(&c->lock);
    c->closed = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->lock);
}

size_t chan_take(Chan *c, char *out, size_t max, double wait_s, int *idle)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)wait_s;
    dl.tv_nsec += (long)((wait_s - (double)(time_t)wait_s) * 1e9);
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    *idle = 0;
    pthread_mutex_lock(&c->lock);
    while (c->off == c->b.len && !c->closed)
        if (pthread_cond_timedwait(&c->cv, &c->lock, &dl)) {
            *idle = c->off == c->b.len && !c->closed; /* all taken: a chunk boundary */
            if (*idle) break;
        }
    size_t n = c->b.len - c->off;
    if (n > max) n = max;
    if (n) memcpy(out, c->b.p + c->off, n);
    c->off += n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* State of the token callback: one choice on one worker's session. */
typedef struct Ctx {
    Job *j;
    Worker *w;
    Choice *ch;
    Buf text;
    int first;                 /* no chunk of the choice sent yet */
    double t_last;             /* time of the previous token, 0 = none */
    double t_first;
    cJSON *pending;            /* logprob entries not yet sent in a chunk */
} Ctx;

/* The OpenAI entry {"token", "logprob", "bytes", "top_logprobs"} for a token. */
static cJSON *lp_entry(duet_model *m, duet_session *s, int token, int top_n)
{
    float lp = 0;
    duet_logprob top[20];
    int k = duet_session_logprobs(s, token, &lp, top, top_n > 20 ? 20 : top_n);
    if (k < 0) return NULL;
    cJSON *o = cJSON_CreateObject();
    char *t = NULL;
    for (int i = -1; i < k; i++) {
        int id = i < 0 ? token : top[i].token;
        cJSON *x = i < 0 ? o : cJSON_CreateObject();
        if (duet_detokenize(m, &id, 1, &t) != DUET_OK) t = NULL;
        cJSON_AddStringToObject(x, "token", t ? t : "");
        cJSON_AddNumberToObject(x, "logprob", i < 0 ? lp : top[i].logprob);
        cJSON *bytes = cJSON_AddArrayToObject(x, "bytes");
        for (const unsigned char *b = (const unsigned char *)(t ? t : ""); *b; b++)
            cJSON_AddItemToArray(bytes, cJSON_CreateNumber(*b));
        free(t);
        if (i < 0) cJSON_AddArrayToObject(o, "top_logprobs");
        else cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, "top_logprobs"), x);
    }
    return o;
}

static void put_chunk(Ctx *c, const char *piece, size_t len)
{
    Job *j = c->j;
    char *ch = resp_chunk(&j->req, j->id, j->created, j->model, c->ch->index, piece, len, c->first, c->pending);
    if (ch) chan_put(&j->chan, ch, strlen(ch));
    free(ch);
    c->first = 0;
    cJSON_Delete(c->pending);
    c->pending = NULL;
}

static int on_piece(void *user, const char *piece, size_t len, int token)
{
    Ctx *c = user;
    Job *j = c->j;
    double t = now_s();
    if (token >= 0) {
        if (c->t_last > 0) metrics_itl(&j->srv->met, t - c->t_last);
        else c->t_first = t;
        c->t_last = t;
    }
    if (j->req.logprobs && token >= 0) {
        cJSON *e = lp_entry(j->srv->m, c->w->s, token, j->req.top_logprobs);
        if (e) {
            GenResult *g = &c->ch->res;
            if (!g->logprobs) g->logprobs = cJSON_CreateArray();
            cJSON_AddItemToArray(g->logprobs, cJSON_Duplicate(e, 1));
            if (!c->pending) c->pending = cJSON_CreateArray();
            cJSON_AddItemToArray(c->pending, e);
        }
    }
    if (len && buf_add(&c->text, piece, len)) return 1;
    if (j->stream && (len || (c->pending && token < 0))) put_chunk(c, piece, len);
    return atomic_load(&j->gone) || atomic_load(&j->failed);
}

/* HTTP status and message for a failed duet call on the session. */
static int session_error(duet_session *s, int rc, ApiError *e)
{
    const char *msg = duet_session_errmsg(s);
    if (rc == DUET_ERR_CONTEXT_FULL) {
        api_error(e, 400, "messages", "%s", msg);
        e->code = "context_length_exceeded";
        return 400;
    }
    if (rc == DUET_ERR_ARG || rc == DUET_ERR_UTF8 || rc == DUET_ERR_FORMAT || rc == DUET_ERR_NOT_FOUND)
        return api_error(e, 400, "", "%s", msg);
    return api_error(e, 500, "", "generation failed: %s", msg);
}

/* Runs choice ch on w's session: ch->res, or ch->status with ch->err.
 * Streams its pieces and, when it ends well, its closing chunks. */
static int run_choice(Worker *w, Choice *ch)
{
    Job *j = w->j;
    GenReq *r = &j->req;
    const Prompt *pr = &j->prompts[ch->prompt];
    duet_session *s = w->s;
    ApiError *e = &ch->err;
    duet_session_options so = r->so;
    so.seed = r->so.seed + (uint64_t)ch->index; /* n > 1: each choice its own sample */
    int room = duet_session_n_ctx(s) - pr->n_ids;
    so.max_tokens = r->max_tokens && r->max_tokens < room ? r->max_tokens : room;
    int rc = duet_session_set_options(s, &so);
    if (!rc) rc = r->messages ? duet_session_set_messages(s, r->messages) : duet_session_set_prompt(s, pr->ids, pr->n_ids);
    /* a reused session carries the last request's tools: set all three every time */
    if (!rc) rc = duet_session_set_tools(s, r->tools);
    if (!rc) rc = duet_session_set_tool_choice(s, r->tools ? r->tool_choice : NULL);
    if (!rc) rc = duet_session_set_json_schema(s, r->schema);
    if (rc) return ch->status = session_error(s, rc, e);
    Ctx c = {.j = j, .w = w, .ch = ch, .first = 1};
    if (pr->echo) {
        if (buf_add(&c.text, pr->echo, strlen(pr->echo))) return ch->status = api_error(e, 500, "", "out of memory");
        if (j->stream) put_chunk(&c, pr->echo, strlen(pr->echo));
    }
    double t0 = now_s();
    int fin = duet_generate(s, on_piece, &c);
    double t1 = now_s();
    cJSON_Delete(c.pending);
    if (fin < 0) {
        free(c.text.p);
        return ch->status = session_error(s, fin, e);
    }
    duet_stats st;
    duet_session_stats(s, &st);
    GenResult *g = &ch->res;
    g->text = c.text.p ? c.text.p : strdup("");
    g->len = c.text.len;
    g->n_cached = st.n_cached;
    g->n_prompt = st.n_prompt + st.n_cached;
    g->n_gen = st.n_gen;
    g->ttft_s = (c.t_first > 0 ? c.t_first : t1) - j->t0;
    g->prompt_s = (c.t_first > 0 ? c.t_first : t1) - t0;
    g->gen_s = c.t_first > 0 ? t1 - c.t_first : 0;
    g->total_s = t1 - j->t0;
    g->finish = fin == DUET_FINISH_LENGTH || fin == DUET_FINISH_CONTEXT ? "length" : "stop";
    int nc = r->tools ? duet_session_n_tool_calls(s) : 0;
    if (nc > 1 && !r->parallel_tool_calls) nc = 1; /* the client asked for one call at most */
    if (nc > 0 && !(g->calls = calloc((size_t)nc, sizeof *g->calls))) return ch->status = api_error(e, 500, "", "out of memory");
    for (int i = 0; i < nc; i++) {
        const duet_tool_call *tc = duet_session_tool_call(s, i);
        char id[64];
        /* ids unique across requests and choices (a session numbers its own calls) */
        if (j->n_ch > 1) snprintf(id, sizeof id, "call_%.12s_%d_%d", j->id + strlen(j->id) - 12, ch->index, i);
        else snprintf(id, sizeof id, "call_%.12s_%d", j->id + strlen(j->id) - 12, i);
        g->calls[i].id = strdup(id);
        g->calls[i].name = strdup(tc && tc->name ? tc->name : "");
        g->calls[i].arguments = strdup(tc && tc->arguments ? tc->arguments : "{}");
        g->n_calls++;
        if (!g->calls[i].id || !g->calls[i].name || !g->calls[i].arguments)
            return ch->status = api_error(e, 500, "", "out of memory");
    }
    if (g->n_calls) g->finish = "tool_calls";
    if (fin == DUET_FINISH_ABORT || fin == DUET_FINISH_CALLBACK || atomic_load(&j->gone) || atomic_load(&j->failed))
        return ch->status = api_error(e, 499, "", "the client closed the connection");
    if (!g->text) return ch->status = api_error(e, 500, "", "out of memory");
    if (j->stream) {
        char *end = resp_choice_end(r, g, ch->index, c.first, j->id, j->created, j->model);
        if (end) chan_put(&j->chan, end, strlen(end));
        free(end);
    }
    return 0;
}

/* A worker: takes choices until none is left, then gives its session back
 * (kept for the cache only when every choice it ran ended well). */
static void *worker_main(void *arg)
{
    Worker *w = arg;
    Job *j = w->j;
    Server *srv = j->srv;
    int ok = 1;
    for (;;) {
        int k = atomic_fetch_add(&j->next, 1);
        if (k >= j->n_ch) break;
        Choice *ch = &j->ch[k];
        if (atomic_load(&j->gone) || atomic_load(&j->failed)) {
            ch->status = api_error(&ch->err, 499, "", "the client closed the connection");
        } else if (run_choice(w, ch) && ch->status != 499) {
            atomic_store(&j->failed, 1);
        }
        ok &= ch->status == 0;
    }
    /* out of the watcher's reach; an abort that came as the last generation
     * ended would stop the session's next request: withdrawn */
    pthread_mutex_lock(&srv->jobs_lock);
    duet_session *s = w->s;
    w->s = NULL;
    pthread_mutex_unlock(&srv->jobs_lock);
    if (s && ok) duet_session_abort_cancel(s);
    w->keep = ok;
    spool_give(&srv->pool, s, j->adapter, w->epoch, ok);
    return NULL;
}

int gen_run(Job *j, ApiError *e)
{
    pthread_t t[SERVE_MAX_CHOICES];
    int started[SERVE_MAX_CHOICES] = {0};
    for (int i = 1; i < j->n_w; i++) started[i] = pthread_create(&t[i], NULL, worker_main, &j->w[i]) == 0;
    worker_main(&j->w[0]);
    for (int i = 1; i < j->n_w; i++) {
        if (started[i]) pthread_join(t[i], NULL);
        else worker_main(&j->w[i]); /* no thread: its choices ran on the others; this gives its session back */
    }
    GenResult *tot = &j->res;
    int st = 0, n = j->req.n > 0 ? j->req.n : 1;
    tot->ttft_s = -1;
    for (int i = 0; i < j->n_ch; i++) {
        const Choice *ch = &j->ch[i];
        if (ch->status && (!st || st == 499)) {
            st = ch->status;
            *e = ch->err;
        }
        const GenResult *g = &ch->res;
        if (ch->index % n == 0) { /* the prompt counts once, as OpenAI's usage does */
            tot->n_prompt += g->n_prompt;
            tot->n_cached += g->n_cached;
        }
        tot->n_gen += g->n_gen;
        if (g->n_gen && (tot->ttft_s < 0 || g->ttft_s < tot->ttft_s)) tot->ttft_s = g->ttft_s;
        if (g->total_s > tot->total_s) tot->total_s = g->total_s;
    }
    if (tot->ttft_s < 0) tot->ttft_s = tot->total_s;
    return st;
}
