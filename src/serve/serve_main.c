/* serve_main.c - the server's life: open the model, listen, watch clients,
 * wait for SIGTERM / SIGINT, then drain (new requests get 503, the ones in
 * flight finish, up to --drain seconds) and close everything. */
#include <limits.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"
#include "util/clock.h"

void serve_opts_default(ServeOpts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->parallel = 4;
    o->queue = 64;
    o->queue_timeout_s = 60;
    o->max_body = 8u << 20;
    o->max_messages = 1024;
    o->timeout_s = 30;
    o->drain_s = 60;
}

int server_resolve_model(Server *srv, const char *name, int ollama, char **adapter, ApiError *e)
{
    *adapter = NULL;
    char n[160];
    snprintf(n, sizeof n, "%s", name ? name : "");
    size_t l = strlen(n);
    if (l > 7 && !strcmp(n + l - 7, ":latest")) n[l - 7] = 0; /* Ollama's default tag */
    if (!strcmp(n, srv->base_name)) return 0;
    pthread_rwlock_rdlock(&srv->ad_lock);
    int found = 0;
    for (int i = 0, na = duet_model_n_adapters(srv->m); i < na && !found; i++) {
        const char *a = duet_model_adapter_name(srv->m, i);
        if (a && !strcmp(a, n)) found = (*adapter = strdup(a)) != NULL;
    }
    pthread_rwlock_unlock(&srv->ad_lock);
    if (found) return 0;
    if (ollama) /* Ollama's words: its clients look for "not found" */
        api_error(e, 404, "model", "model \"%s\" not found (GET /api/tags lists them)", name ? name : "");
    else
        api_error(e, 404, "model", "The model `%s` does not exist (GET /v1/models lists them)", name ? name : "");
    e->code = "model_not_found";
    return 404;
}

void server_log(Server *srv, const char *peer, const char *method, const char *path, int status, const Job *j,
                double secs)
{
    if (srv->o.quiet) return;
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pthread_mutex_lock(&srv->log_lock);
    if (j)
        fprintf(stderr, "%s %s %s %s %d model=%s stream=%d prompt=%d cached=%d gen=%d ttft=%.3f s=%.3f\n", ts, peer, method,
                path, status, j->model, j->stream, j->res.n_prompt, j->res.n_cached, j->res.n_gen, j->res.ttft_s, secs);
    else
        fprintf(stderr, "%s %s %s %s %d s=%.3f\n", ts, peer, method, path, status, secs);
    fflush(stderr);
    pthread_mutex_unlock(&srv->log_lock);
}

/* The hang-up watcher: polls the generating clients' sockets. */
static void *watcher(void *arg)
{
    Server *srv = arg;
    while (!atomic_load(&srv->draining) || atomic_load(&srv->in_flight) > 0) {
        server_reap(srv);
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
        if (atomic_load(&srv->draining) == 2) break;
    }
    return NULL;
}

/* The file name without folders and a .duet extension. */
static void default_name(const char *path, char *out, size_t n)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
    const char *b = strrchr(tmp, '/');
    b = b ? b + 1 : tmp;
    l = strlen(b) < n ? strlen(b) : n - 1; /* a longer name is cut to fit */
    memcpy(out, b, l);
    out[l] = 0;
    if (l > 5 && !strcmp(out + l - 5, ".duet")) out[l - 5] = 0;
}

/* The model's fill-in-the-middle markers into srv->fim: the first family
 * whose three markers are each one token of the vocabulary (Qwen2.5-Coder's
 * <|fim_*|>, StarCoder's <fim_*>); NULLs when none. */
static void find_fim(Server *srv)
{
    static const char *const fams[][3] = {{"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"},
                                          {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"}};
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        int ok = 1;
        for (int k = 0; k < 3 && ok; k++) {
            int *ids = NULL, n = 0;
            ok = duet_tokenize(srv->m, fams[f][k], strlen(fams[f][k]), &ids, &n) == DUET_OK && n == 1;
            free(ids);
        }
        if (ok) {
            for (int k = 0; k < 3; k++) srv->fim[k] = fams[f][k];
            return;
        }
    }
}

static int serve_body(Server *srv);

int serve_run(const ServeOpts *opts)
{
    Server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        fprintf(stderr, "duet: error: out of memory\n");
        return 1;
    }
    srv->o = *opts;
    int status = serve_body(srv);
    free(srv);
    return status;
}

/* serve_run's work on an allocated Server. */
static int serve_body(Server *srv)
{
    /* the signals go to sigwait below, never to a thread */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (srv->o.lora_dir && !realpath(srv->o.lora_dir, srv->lora_root)) {
        fprintf(stderr, "duet: error: --lora-dir %s: no such folder\n", srv->o.lora_dir);
        return 1;
    }
    if (srv->o.parallel < 1 || srv->o.queue < 0 || srv->o.timeout_s < 1) {
        fprintf(stderr, "duet: error: --parallel >= 1, --queue >= 0, --timeout >= 1 expected\n");
        return 1;
    }
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.n_threads = srv->o.threads;
    mo.isa = srv->o.isa;
    mo.load_to_ram = srv->o.ram;
    mo.loras = srv->o.n_lora ? srv->o.loras : NULL;
    char err[600];
    /* the budget is set after the open, when the session size is known */
    if (duet_model_open(&srv->m, srv->o.model_path, &mo, err, sizeof err)) {
        fprintf(stderr, "duet: error: %s\n", err);
        return 1;
    }
    int maxc = duet_model_max_context(srv->m);
    if (srv->o.ctx <= 0) srv->o.ctx = maxc < 4096 ? maxc : 4096;
    if (srv->o.ctx > maxc) {
        fprintf(stderr, "duet: error: --ctx %d: the model holds at most %d positions\n", srv->o.ctx, maxc);
        duet_model_close(srv->m);
        return 1;
    }
    size_t per = duet_model_kv_bytes(srv->m, srv->o.ctx, DUET_KV_F16);
    if (!srv->o.kv_budget) srv->o.kv_budget = per * (size_t)(2 * srv->o.parallel);
    if (srv->o.kv_budget < per * (size_t)srv->o.parallel) {
        fprintf(stderr,
                "duet: error: --kv-budget %zu bytes does not hold --parallel %d sessions of %d positions (%zu bytes each)\n",
                srv->o.kv_budget, srv->o.parallel, srv->o.ctx, per);
        duet_model_close(srv->m);
        return 1;
    }
    duet_model_set_kv_budget(srv->m, srv->o.kv_budget);
    if (srv->o.name) snprintf(srv->base_name, sizeof srv->base_name, "%s", srv->o.name);
    else default_name(srv->o.model_path, srv->base_name, sizeof srv->base_name);
    srv->lim.max_messages = srv->o.max_messages;
    srv->lim.max_tokens = srv->o.ctx;
    srv->started = (long)time(NULL);
    find_fim(srv);
    atomic_init(&srv->seeds, (uint64_t)(now_s() * 1e9) ^ ((uint64_t)getpid() << 32));
    pthread_mutex_init(&srv->jobs_lock, NULL);
    pthread_mutex_init(&srv->log_lock, NULL);
    pthread_rwlock_init(&srv->ad_lock, NULL);
    metrics_init(&srv->met);
    spool_init(&srv->pool, srv->m, srv->o.ctx, srv->o.parallel, srv->o.queue);

    struct MHD_Daemon *d = http_start(srv, err, sizeof err);
    int status = 0;
    pthread_t wt;
    int have_wt = 0;
    if (!d) {
        fprintf(stderr, "duet: error: %s\n", err);
        status = 1;
    } else {
        have_wt = pthread_create(&wt, NULL, watcher, srv) == 0;
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        if (di && di->port) srv->o.port = di->port; /* --port 0: the one the system chose */
        fprintf(stderr, "duet serve: %s on http://%s:%d (%d adapters, --parallel %d, --ctx %d, KV budget %.1f MiB)\n",
                srv->base_name, srv->o.host, srv->o.port, duet_model_n_adapters(srv->m), srv->o.parallel, srv->o.ctx,
                srv->o.kv_budget / 1048576.0);
        int sig = 0;
        sigwait(&sigs, &sig);
        fprintf(stderr, "duet serve: %s: draining %d requests\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                atomic_load(&srv->in_flight));
        atomic_store(&srv->draining, 1);
        pthread_mutex_lock(&srv->pool.lock);
        srv->pool.draining = 1; /* queued requests get 503 */
        pthread_cond_broadcast(&srv->pool.cv);
        pthread_mutex_unlock(&srv->pool.lock);
        double t0 = now_s();
        while ((atomic_load(&srv->in_flight) > 0 || atomic_load(&srv->responding) > 0) && now_s() - t0 < srv->o.drain_s) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&srv->in_flight) > 0) { /* past the drain time: stop them */
            pthread_mutex_lock(&srv->jobs_lock);
            for (int i = 0; i < srv->n_jobs; i++) job_abort(srv->jobs[i]);
            pthread_mutex_unlock(&srv->jobs_lock);
            while (atomic_load(&srv->in_flight) > 0) {
                struct timespec ts = {0, 20 * 1000000};
                nanosleep(&ts, NULL);
            }
        }
        atomic_store(&srv->draining, 2);
        MHD_stop_daemon(d); /* waits for the connection threads */
        fprintf(stderr, "duet serve: stopped\n");
    }
    if (have_wt) pthread_join(wt, NULL);
    spool_destroy(&srv->pool);
    metrics_destroy(&srv->met);
    free(srv->jobs);
    if (duet_model_close(srv->m)) {
        fprintf(stderr, "duet: error: %s\n", duet_model_errmsg(srv->m));
        status = 1;
    }
    pthread_rwlock_destroy(&srv->ad_lock);
    pthread_mutex_destroy(&srv->jobs_lock);
    pthread_mutex_destroy(&srv->log_lock);
    return status;
}
