/* serve_http.c - the HTTP side on libmicrohttpd (one thread per
 * connection): the body with its size and time limits, the API key, the
 * routes, and the generation endpoints, streamed (SSE / NDJSON from a
 * worker thread through a Chan) or not (generated on the connection
 * thread). A watcher polls each generating client's socket, so a client
 * that hangs up stops its generation within one scheduler step. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"
#include "util/clock.h"

/* Per-request state across the access handler's calls. */
typedef struct Req {
    Buf body;
    double t0;
    int too_big;
    int answered;
    int counted;               /* in srv->responding until completed() */
    char peer[64];
} Req;

/* ---- small helpers ------------------------------------------------------ */

/* --cors: lets a browser page of the allowed origin read the response. */
static void add_cors(Server *srv, struct MHD_Connection *c, struct MHD_Response *r)
{
    const char *allow = srv->o.cors;
    if (!allow) return;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!strcmp(allow, "*")) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    } else if (origin && !strcmp(origin, allow)) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
    }
}

/* A CORS preflight (OPTIONS with --cors): 204 with the methods and headers allowed. */
static enum MHD_Result send_preflight(Server *srv, struct MHD_Connection *c)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    add_cors(srv, c, r);
    const char *want = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, HEAD, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            want && strlen(want) < 1024 ? want : "Authorization, Content-Type, X-Api-Key");
    MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    enum MHD_Result rc = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_text(Server *srv, struct MHD_Connection *c, int status, const char *ctype, const char *body, size_t n)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    add_cors(srv, c, r);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_json(Server *srv, struct MHD_Connection *c, int status, const char *json)
{
    return send_text(srv, c, status, "application/json", json ? json : "{}", json ? strlen(json) : 2);
}

static enum MHD_Result send_error(Server *srv, struct MHD_Connection *c, Api api, const ApiError *e)
{
    char *s = resp_error(api, e);
    enum MHD_Result rc = send_json(srv, c, e->status, s);
    free(s);
    return rc;
}

static void peer_name(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, n, "-");
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    else if (sa->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

/* Constant-time comparison: the time depends on the lengths only. */
static int key_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < lb; i++) d |= (unsigned char)(b[i] ^ a[i < la ? i : 0]);
    return d == 0;
}

static int authorized(Server *srv, struct MHD_Connection *c)
{
    if (!srv->o.api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *key = NULL;
    if (h && !strncasecmp(h, "Bearer ", 7)) key = h + 7;
    if (!key) key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
    return key && key_equal(key, srv->o.api_key);
}

/* ---- the hang-up watcher -------------------------------------------------- */

int server_watch(Server *srv, Job *j)
{
    pthread_mutex_lock(&srv->jobs_lock);
    if (srv->n_jobs == srv->cap_jobs) {
        int nc = srv->cap_jobs ? 2 * srv->cap_jobs : 32;
        Job **nj = realloc(srv->jobs, (size_t)nc * sizeof *nj);
        if (!nj) {
            pthread_mutex_unlock(&srv->jobs_lock);
            return -1;
        }
        srv->jobs = nj;
        srv->cap_jobs = nc;
    }
    srv->jobs[srv->n_jobs++] = j;
    pthread_mutex_unlock(&srv->jobs_lock);
    return 0;
}

void server_unwatch(Server *srv, Job *j)
{
    pthread_mutex_lock(&srv->jobs_lock);
    for (int i = 0; i < srv->n_jobs; i++)
        if (srv->jobs[i] == j) {
            srv->jobs[i] = srv->jobs[--srv->n_jobs];
            break;
        }
    pthread_mutex_unlock(&srv->jobs_lock);
}

void job_abort(Job *j)
{
    atomic_store(&j->gone, 1);
    for (int i = 0; i < j->n_w; i++)
        if (j->w[i].s) duet_session_abort(j->w[i].s);
}

void server_reap(Server *srv)
{
    pthread_mutex_lock(&srv->jobs_lock);
    for (int i = 0; i < srv->n_jobs; i++) {
        Job *j = srv->jobs[i];
        if (j->fd < 0 || atomic_load(&j->gone)) continue;
        struct pollfd p = {j->fd, POLLRDHUP, 0};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) job_abort(j);
    }
    pthread_mutex_unlock(&srv->jobs_lock);
}

/* ---- jobs ------------------------------------------------------------------ */

static Job *job_new(Server *srv, struct MHD_Connection *c, const Req *rq, const char *path)
{
    Job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->srv = srv;
    j->fd = -1;
    j->t0 = rq->t0;
    snprintf(j->peer, sizeof j->peer, "%s", rq->peer);
    snprintf(j->path, sizeof j->path, "%s", path);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) j->fd = dup(ci->connect_fd);
    chan_init(&j->chan);
    atomic_init(&j->refs, 1);
    j->created = (long)time(NULL);
    return j;
}

static void job_set_id(Job *j)
{
    const char *pre = j->req.api == API_CHAT ? "chatcmpl-" : "cmpl-";
    unsigned long long x = (unsigned long long)(now_s() * 1e9) ^ ((unsigned long long)(size_t)j << 20);
    static const char hex[] = "0123456789abcdef";
    size_t k = strlen(pre);
    memcpy(j->id, pre, k);
    for (int i = 0; i < 24; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        j->id[k + (size_t)i] = hex[x & 15];
    }
    j->id[k + 24] = 0;
}

static void job_release(Job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1) return;
    genreq_free(&j->req);
    genresult_free(&j->res);
    for (int i = 0; i < j->n_ch; i++) genresult_free(&j->ch[i].res);
    free(j->ch);
    for (int i = 0; i < j->n_prompts; i++) {
        free(j->prompts[i].ids);
        free(j->prompts[i].echo);
    }
    free(j->prompts);
    free(j->w);
    chan_destroy(&j->chan);
    free(j->adapter);
    if (j->fd >= 0) close(j->fd);
    free(j);
}

/* After gen_run (the sessions are back in the pool): the slots freed, the
 * counters and the log line. */
static void job_settle(Job *j, int status)
{
    Server *srv = j->srv;
    server_unwatch(srv, j);
    spool_leave(&srv->pool, j->n_w);
    j->status = status;
    metrics_request(&srv->met, j->model, status);
    for (int i = 0; i < j->n_ch; i++) metrics_result(&srv->met, &j->ch[i].res, j->ch[i].status == 499);
    if (j->req.keep_alive_zero) spool_drop_idle(&srv->pool, j->adapter); /* Ollama's unload after the answer */
    server_log(srv, j->peer, "POST", j->path, status, j, now_s() - j->t0);
}

static void *stream_worker(void *arg)
{
    Job *j = arg;
    ApiError e;
    int st = gen_run(j, &e);
    char *tail = st ? resp_stream_error(j->req.api, &e) : resp_stream_end(&j->req, &j->res, j->id, j->created, j->model);
    if (tail) chan_put(&j->chan, tail, strlen(tail));
    free(tail);
    chan_close(&j->chan);
    job_settle(j, st ? st : 200);
    atomic_fetch_sub(&j->srv->in_flight, 1);
    job_release(j);
    return NULL;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    Job *j = cls;
    /* while the prompt is prefilled nothing else would go out: a heartbeat
     * every half --timeout keeps the connection (and proxies) from timing out */
    double wait = j->srv->o.timeout_s / 2.0;
    for (;;) {
        int idle;
        size_t n = chan_take(&j->chan, buf, max, wait > 10 ? 10 : wait, &idle);
        if (n) return (ssize_t)n;
        if (!idle) return MHD_CONTENT_READER_END_OF_STREAM;
        char *hb = j->req.api == API_CHAT || j->req.api == API_COMPLETION
                       ? strdup(": keep-alive\n\n") /* an SSE comment: clients skip it */
                       : resp_chunk(&j->req, j->id, j->created, j->model, 0, "", 0, 0, NULL); /* Ollama: an empty chunk */
        size_t hn = hb ? strlen(hb) : 0;
        if (hn && hn <= max) {
            memcpy(buf, hb, hn);
            free(hb);
            return (ssize_t)hn;
        }
        free(hb);
    }
}

static void stream_free(void *cls)
{
    Job *j = cls;
    pthread_mutex_lock(&j->chan.lock);
    int done = j->chan.closed; /* the generation is over: nothing to stop */
    pthread_mutex_unlock(&j->chan.lock);
    if (!done) { /* the connection ended first: the client went away */
        pthread_mutex_lock(&j->srv->jobs_lock);
        job_abort(j);
        pthread_mutex_unlock(&j->srv->jobs_lock);
    }
    job_release(j);
}

/* ---- prompt tokens, for the cache choice and the length check --------------- */

/* Prompt i's tokens (text, or ids checked against the vocabulary) and its
 * echo text. With a suffix the text is wrapped in the model's
 * fill-in-the-middle markers. */
static int render_prompt(Server *srv, Job *j, Prompt *pr, const char *text, const int *ids, int n_ids, ApiError *e)
{
    GenReq *r = &j->req;
    const char *param = r->messages ? "messages" : "prompt";
    char *tmp = NULL;
    int rc;
    if (ids) {
        int V = duet_model_vocab(srv->m);
        for (int k = 0; k < n_ids; k++)
            if (ids[k] >= V) return api_error(e, 400, "prompt", "prompt: token id %d is outside the vocabulary [0, %d)", ids[k], V);
        if (!(pr->ids = malloc((size_t)n_ids * sizeof *pr->ids))) return api_error(e, 500, "", "out of memory");
        memcpy(pr->ids, ids, (size_t)n_ids * sizeof *ids);
        pr->n_ids = n_ids;
        if (r->echo && duet_detokenize(srv->m, ids, n_ids, &pr->echo)) return api_error(e, 500, "", "out of memory");
    } else {
        if (r->suffix) {
            Buf b = {0};
            if (buf_printf(&b, "%s%s%s%s%s", srv->fim[0], text, srv->fim[1], r->suffix, srv->fim[2]))
                return api_error(e, 500, "", "out of memory");
            tmp = b.p;
        }
        const char *t = tmp ? tmp : text;
        rc = duet_tokenize(srv->m, t, strlen(t), &pr->ids, &pr->n_ids);
        free(tmp);
        if (rc) return api_error(e, 400, param, "%s", duet_model_errmsg(srv->m));
        if (r->echo && !(pr->echo = strdup(text))) return api_error(e, 500, "", "out of memory");
    }
    if (pr->n_ids == 0 && !r->messages) return api_error(e, 400, "prompt", "prompt: empty");
    if (pr->n_ids >= srv->o.ctx) {
        api_error(e, 400, param, "This model's maximum context length is %d tokens. However, your %s resulted in %d tokens.",
                  srv->o.ctx, param, pr->n_ids);
        e->code = "context_length_exceeded";
        return 400;
    }
    return 0;
}

/* The job's prompts, choices and workers. */
static int render_ids(Server *srv, Job *j, ApiError *e)
{
    GenReq *r = &j->req;
    if (r->suffix && !srv->fim[0]) {
        if (r->api == API_OLLAMA_GENERATE) return api_error(e, 400, "suffix", "%s does not support insert", j->model);
        return api_error(e, 400, "suffix",
                         "suffix: the model %s has no fill-in-the-middle tokens (<|fim_prefix|>, <|fim_suffix|>, "
                         "<|fim_middle|> or <fim_prefix>, ...): only a code model trained for infilling can complete between a prompt and a suffix",
                         srv->base_name);
    }
    int np = r->messages || !r->prompts ? 1 : r->n_prompts, n = r->n > 0 ? r->n : 1;
    if (!(j->prompts = calloc((size_t)np, sizeof *j->prompts))) return api_error(e, 500, "", "out of memory");
    j->n_prompts = np;
    if (r->messages) {
        char *text = NULL;
        int rc = duet_apply_template_tools(srv->m, r->messages, r->tools, 1, &text);
        if (rc) return api_error(e, 400, "messages", "%s", duet_model_errmsg(srv->m));
        rc = render_prompt(srv, j, &j->prompts[0], text, NULL, 0, e);
        free(text);
        if (rc) return rc;
    } else if (!r->prompts) {
        int rc = render_prompt(srv, j, &j->prompts[0], r->prompt ? r->prompt : "", NULL, 0, e);
        if (rc) return rc;
    } else {
        for (int i = 0; i < np; i++) {
            const PromptIn *in = &r->prompts[i];
            int rc = render_prompt(srv, j, &j->prompts[i], in->text, in->text ? NULL : in->ids, in->n_ids, e);
            if (rc) return rc;
        }
    }
    j->n_ch = np * n;
    j->n_w = j->n_ch < srv->o.parallel ? j->n_ch : srv->o.parallel;
    if (!(j->ch = calloc((size_t)j->n_ch, sizeof *j->ch)) || !(j->w = calloc((size_t)j->n_w, sizeof *j->w)))
        return api_error(e, 500, "", "out of memory");
    for (int i = 0; i < j->n_ch; i++) {
        j->ch[i].index = i;
        j->ch[i].prompt = i / n;
    }
    for (int i = 0; i < j->n_w; i++) j->w[i].j = j;
    return 0;
}

/* Ollama generate without raw: the prompt (and system) as chat messages. */
static int generate_as_chat(GenReq *r, ApiError *e)
{
    if (r->raw || r->suffix) return 0; /* a suffix: the fill-in-the-middle prompt, no chat template */
    cJSON *a = cJSON_CreateArray();
    if (r->system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", r->system);
        cJSON_AddItemToArray(a, m);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", r->prompt ? r->prompt : "");
    cJSON_AddItemToArray(a, m);
    r->messages = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return r->messages ? 0 : api_error(e, 500, "", "out of memory");
}

/* A request's seed when it gives none: drawn, so that sampling differs
 * between requests as OpenAI's and Ollama's do (splitmix64 of a counter). */
static uint64_t draw_seed(Server *srv)
{
    uint64_t z = atomic_fetch_add(&srv->seeds, 0x9E3779B97F4A7C15ull) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Takes a session for each worker (prefix match on its first choice's
 * prompt); on failure gives back those taken. 0 or a status with *e. */
static int take_sessions(Server *srv, Job *j, ApiError *e)
{
    for (int i = 0; i < j->n_w; i++) {
        const Prompt *pr = &j->prompts[j->ch[i].prompt];
        duet_session *s = spool_take(&srv->pool, j->adapter, pr->ids, pr->n_ids, &j->w[i].epoch, e);
        if (!s) {
            for (int k = 0; k < i; k++) {
                pthread_mutex_lock(&srv->jobs_lock);
                duet_session *t = j->w[k].s;
                j->w[k].s = NULL;
                pthread_mutex_unlock(&srv->jobs_lock);
                spool_give(&srv->pool, t, j->adapter, j->w[k].epoch, !atomic_load(&j->gone));
            }
            return e->status;
        }
        pthread_mutex_lock(&srv->jobs_lock);
        j->w[i].s = s;
        pthread_mutex_unlock(&srv->jobs_lock);
    }
    return 0;
}

/* Ollama's load / unload request (no prompt, no messages): answered at
 * once; keep_alive 0 drops the model's idle sessions. */
static enum MHD_Result ollama_load(Server *srv, struct MHD_Connection *c, Req *rq, Job *j, const char *path)
{
    if (j->req.keep_alive_zero) spool_drop_idle(&srv->pool, j->adapter);
    char *body = resp_ollama_load(&j->req, j->model);
    metrics_request(&srv->met, j->model, 200);
    server_log(srv, rq->peer, "POST", path, 200, NULL, now_s() - rq->t0);
    enum MHD_Result rc = send_json(srv, c, body ? 200 : 500, body);
    free(body);
    job_release(j);
    return rc;
}

static enum MHD_Result handle_generate(Server *srv, struct MHD_Connection *c, Req *rq, Api api, const char *path)
{
    ApiError e;
    Job *j = job_new(srv, c, rq, path);
    if (!j) {
        api_error(&e, 500, "", "out of memory");
        return send_error(srv, c, api, &e);
    }
    int st = genreq_parse(api, rq->body.p ? rq->body.p : "", rq->body.len, &srv->lim, &j->req, &e);
    if (!st && !j->req.load_only && api == API_OLLAMA_GENERATE) st = generate_as_chat(&j->req, &e);
    if (!st) st = server_resolve_model(srv, j->req.model, api == API_OLLAMA_CHAT || api == API_OLLAMA_GENERATE, &j->adapter, &e);
    snprintf(j->model, sizeof j->model, "%s", j->req.model ? j->req.model : "-");
    if (!st && j->req.load_only) return ollama_load(srv, c, rq, j, path);
    if (!st && !j->req.seed_set) j->req.so.seed = draw_seed(srv);
    job_set_id(j);
    if (!st) st = render_ids(srv, j, &e);
    if (st) {
        metrics_request(&srv->met, j->model, st);
        server_log(srv, rq->peer, "POST", path, st, NULL, now_s() - rq->t0);
        job_release(j);
        return send_error(srv, c, api, &e);
    }
    /* watched from here: a client that hangs up while queued stops waiting */
    server_watch(srv, j);
    st = spool_enter(&srv->pool, j->n_w, srv->o.queue_timeout_s, &j->gone, &e);
    if (!st && (st = take_sessions(srv, j, &e))) spool_leave(&srv->pool, j->n_w);
    if (st) {
        server_unwatch(srv, j);
        if (st == 499) api_error(&e, 499, "", "the client closed the connection");
        metrics_request(&srv->met, j->model, st);
        server_log(srv, rq->peer, "POST", path, st, NULL, now_s() - rq->t0);
        job_release(j);
        return send_error(srv, c, api, &e);
    }
    j->stream = j->req.stream;
    atomic_fetch_add(&srv->in_flight, 1);
    atomic_fetch_add(&srv->responding, 1); /* until the answer is out: completed() */
    rq->counted = 1;
    if (!j->stream) {
        st = gen_run(j, &e);
        char *body = NULL;
        if (!st) {
            GenResult *g = calloc((size_t)j->n_ch, sizeof *g);
            for (int i = 0; g && i < j->n_ch; i++) g[i] = j->ch[i].res; /* shallow: owned by the choices */
            body = g ? resp_body(&j->req, g, j->n_ch, &j->res, j->id, j->created, j->model) : NULL;
            free(g);
            if (!body) st = api_error(&e, 500, "", "out of memory");
        }
        if (st) body = resp_error(api, &e);
        job_settle(j, st ? st : 200);
        enum MHD_Result rc = send_json(srv, c, st ? e.status : 200, body);
        free(body);
        atomic_fetch_sub(&srv->in_flight, 1);
        job_release(j);
        return rc;
    }
    atomic_fetch_add(&j->refs, 1); /* the response's reference; the worker keeps the first */
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, stream_free);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int ok = r && pthread_create(&t, &at, stream_worker, j) == 0;
    pthread_attr_destroy(&at);
    if (!ok) {
        if (r) MHD_destroy_response(r); /* calls stream_free: drops the response's reference */
        else job_release(j);
        for (int i = 0; i < j->n_w; i++) {
            pthread_mutex_lock(&srv->jobs_lock);
            duet_session *t = j->w[i].s;
            j->w[i].s = NULL;
            pthread_mutex_unlock(&srv->jobs_lock);
            spool_give(&srv->pool, t, j->adapter, j->w[i].epoch, 0);
        }
        job_settle(j, 500);
        atomic_fetch_sub(&srv->in_flight, 1);
        job_release(j);
        api_error(&e, 500, "", "cannot start the stream");
        return send_error(srv, c, api, &e);
    }
    int ollama = api == API_OLLAMA_CHAT || api == API_OLLAMA_GENERATE;
    MHD_add_response_header(r, "Content-Type", ollama ? "application/x-ndjson" : "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: pass chunks on at once */
    add_cors(srv, c, r);
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- the access handler ------------------------------------------------------ */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    Server *srv = cls;
    Req *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        rq->t0 = now_s();
        peer_name(c, rq->peer, sizeof rq->peer);
        *con_cls = rq;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (len > srv->o.max_body) rq->too_big = 1; /* read and dropped: the 413 goes out at its end */
        if (len / 64 > srv->o.max_body) {
            /* far too big to read: answered at once (MHD then closes the connection) */
            ApiError e;
            rq->answered = 1;
            api_error(&e, 413, "", "the request body is larger than %zu bytes", srv->o.max_body);
            metrics_request(&srv->met, "-", 413);
            server_log(srv, rq->peer, method, url, 413, NULL, 0);
            return send_error(srv, c, !strncmp(url, "/api/", 5) ? API_OLLAMA_CHAT : API_CHAT, &e);
        }
        return MHD_YES;
    }
    if (rq->answered) { /* an error went out before the body ended: drop the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    ApiError e;
    Api api = !strncmp(url, "/api/", 5) ? API_OLLAMA_CHAT : API_CHAT;
    /* the OpenAI paths without /v1, as llama-server answers them (clients given a base URL without it) */
    if (!strcmp(url, "/chat/completions") || !strcmp(url, "/completions") || !strcmp(url, "/models"))
        url = !strcmp(url, "/models") ? "/v1/models" : !strcmp(url, "/completions") ? "/v1/completions" : "/v1/chat/completions";
    if (*upload_size) {
        /* a body without a length that grows past the limit is dropped (the
         * 413 goes out at its end); one that trickles in past the timeout
         * closes the connection (no response can be queued mid-body) */
        if (now_s() - rq->t0 > srv->o.timeout_s) {
            metrics_request(&srv->met, "-", 408);
            server_log(srv, rq->peer, method, url, 408, NULL, now_s() - rq->t0);
            return MHD_NO;
        }
        if (!rq->too_big && rq->body.len + *upload_size > srv->o.max_body) {
            rq->too_big = 1;
            free(rq->body.p);
            memset(&rq->body, 0, sizeof rq->body);
        }
        if (!rq->too_big && buf_add(&rq->body, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->too_big) {
        api_error(&e, 413, "", "the request body is larger than %zu bytes", srv->o.max_body);
        server_log(srv, rq->peer, method, url, 413, NULL, now_s() - rq->t0);
        return send_error(srv, c, api, &e);
    }
    const char *body = rq->body.p ? rq->body.p : "";
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), is_post = !strcmp(method, "POST");
    /* a preflight carries no key: answered before the key check */
    if (!strcmp(method, "OPTIONS") && srv->o.cors) return send_preflight(srv, c);
    if (is_get && (!strcmp(url, "/health") || !strcmp(url, "/"))) {
        int draining = atomic_load(&srv->draining);
        if (!strcmp(url, "/")) return send_text(srv, c, 200, "text/plain", "Ollama is running", 17);
        return send_json(srv, c, draining ? 503 : 200, draining ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}");
    }
    if (!authorized(srv, c)) {
        api_error(&e, 401, "", "a valid API key is needed (Authorization: Bearer KEY)");
        e.code = "invalid_api_key";
        metrics_request(&srv->met, "-", 401);
        server_log(srv, rq->peer, method, url, 401, NULL, now_s() - rq->t0);
        return send_error(srv, c, api, &e);
    }
    static const struct {
        const char *path;
        Api api;
    } gen[] = {{"/v1/chat/completions", API_CHAT},
               {"/v1/completions", API_COMPLETION},
               {"/api/chat", API_OLLAMA_CHAT},
               {"/api/generate", API_OLLAMA_GENERATE}};
    for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++) {
        if (strcmp(url, gen[i].path)) continue;
        if (!is_post) {
            api_error(&e, 405, "", "%s: use POST", url);
            return send_error(srv, c, gen[i].api, &e);
        }
        if (atomic_load(&srv->draining)) {
            api_error(&e, 503, "", "the server is shutting down");
            return send_error(srv, c, gen[i].api, &e);
        }
        return handle_generate(srv, c, rq, gen[i].api, gen[i].path);
    }
    Resp out = {0};
    if (!route_other(srv, method, url, body, rq->body.len, &out)) {
        api_error(&e, 404, "", "%s %s: no such endpoint", method, url);
        out.status = 404;
        out.ctype = "application/json";
        out.body = resp_error(api, &e);
    }
    if (out.status != 200 || strcmp(url, "/metrics")) server_log(srv, rq->peer, method, url, out.status, NULL, now_s() - rq->t0);
    metrics_request(&srv->met, "-", out.status);
    enum MHD_Result rc = send_text(srv, c, out.status, out.ctype ? out.ctype : "application/json", out.body ? out.body : "",
                                   out.body ? strlen(out.body) : 0);
    free(out.body);
    return rc;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode tc)
{
    (void)c, (void)tc;
    Server *srv = cls;
    Req *rq = *con_cls;
    if (!rq) return;
    if (rq->counted) atomic_fetch_sub(&srv->responding, 1);
    free(rq->body.p);
    free(rq);
    *con_cls = NULL;
}

struct MHD_Daemon *http_start(Server *srv, char *err, size_t n)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, srv->o.host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)srv->o.port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, srv->o.host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)srv->o.port);
        flags |= MHD_USE_IPv6;
        sl = sizeof *a6;
    } else {
        snprintf(err, n, "--host %s: expected an IPv4 or IPv6 address", srv->o.host);
        return NULL;
    }
    (void)sl;
    unsigned conn_limit = (unsigned)(srv->o.parallel + srv->o.queue + 64);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)srv->o.port, NULL, NULL, handler, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->o.timeout_s, MHD_OPTION_CONNECTION_LIMIT, conn_limit,
        MHD_OPTION_NOTIFY_COMPLETED, completed, srv, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(4u << 20),
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!d) snprintf(err, n, "cannot listen on %s port %d: %s", srv->o.host, srv->o.port, strerror(errno));
    return d;
}
