/* serve.h - `duet serve`: the OpenAI and Ollama HTTP APIs over one duet_model.
 * It sits above include/duet.h only. The pieces:
 *   serve_req.c     request JSON -> GenReq (validation, OpenAI/Ollama mapping)
 *   serve_resp.c    GenReq results -> response bodies and stream chunks
 *   serve_pool.c    admission (--parallel, bounded queue) and the idle
 *                   sessions kept for prefix reuse (keyed by adapter + tokens)
 *   serve_gen.c     one generation on a session, streamed through a Chan
 *   serve_metrics.c counters and histograms, Prometheus text
 *   serve_http.c    libmicrohttpd: routing, limits, auth, streaming, drain
 * Nothing a request sends reads or writes files, except the adapter load
 * endpoint, which only takes folders under --lora-dir. */
#ifndef DUET_SERVE_H
#define DUET_SERVE_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "duet.h"

/* ---- options ---------------------------------------------------------- */

typedef struct ServeOpts {
    const char *model_path;     /* checkpoint folder or .duet */
    const char *name;           /* the base model's name in the API; NULL = file name */
    const char *host;           /* default 127.0.0.1 */
    int port;                   /* default 8080 */
    const char *loras[DUET_MAX_ADAPTERS + 1]; /* "NAME=DIR", NULL-terminated */
    int n_lora;
    const char *lora_dir;       /* load_lora_adapter only takes folders under it; NULL = endpoint off */
    const char *api_key;        /* NULL = no key needed */
    const char *cors;           /* --cors: "*" or the one browser origin allowed; NULL = off */
    int parallel;               /* generations at once (default 4) */
    int queue;                  /* requests that may wait for a slot (default 64) */
    double queue_timeout_s;     /* a waiting request gets 503 after this (default 60) */
    int ctx;                    /* context positions of each session (default min(4096, model)) */
    size_t kv_budget;           /* bytes of KV for running + idle sessions (0 = 2 x parallel sessions) */
    size_t max_body;            /* request body bytes (default 8 MiB) */
    int max_messages;           /* default 1024 */
    int timeout_s;              /* idle connection / slow body timeout (default 30) */
    double drain_s;             /* SIGTERM: wait this long for requests in flight (default 60) */
    int threads;                /* kernel threads (0 = physical cores) */
    const char *isa;
    int ram;                    /* --ram: .duet copied to huge pages */
    int quiet;                  /* no per-request log lines */
} ServeOpts;

void serve_opts_default(ServeOpts *o);

/* Opens the model, serves until SIGTERM / SIGINT, drains, closes. Returns
 * the exit status; errors print one line on stderr. */
int serve_run(const ServeOpts *o);

/* ---- requests ---------------------------------------------------------- */

typedef enum Api { API_CHAT, API_COMPLETION, API_OLLAMA_CHAT, API_OLLAMA_GENERATE } Api;

/* An error for the client: HTTP status, OpenAI error type, the offending
 * parameter (may be empty) and a one-line message. */
typedef struct ApiError {
    int status;
    const char *type;           /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *code;           /* NULL or "model_not_found", "context_length_exceeded", ... */
    char param[64];
    char msg[400];
} ApiError;

/* Sets *e and returns status. */
int api_error(ApiError *e, int status, const char *param, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

typedef struct ReqLimits {
    int max_messages;
    int max_tokens;             /* a request's max_tokens may not exceed this (the context) */
} ReqLimits;

/* Choices one request may ask for: n x the completions prompts. */
#define SERVE_MAX_CHOICES 32

/* One /v1/completions prompt: text, or token ids (checked against the
 * vocabulary when the server renders it). */
typedef struct PromptIn {
    char *text;                 /* NULL when ids are given */
    int *ids, n_ids;
} PromptIn;

/* One generation request, whatever API it came through. */
typedef struct GenReq {
    Api api;
    char *model;                /* as the client named it */
    char *messages;             /* chat: JSON array text of normalized messages */
    char *prompt;               /* Ollama generate: text */
    PromptIn *prompts;          /* OpenAI completions: one or more prompts */
    int n_prompts;
    char *suffix;               /* completions / Ollama generate: the text after the insertion (FIM), or NULL */
    int echo;                   /* completions: the prompt comes back before the answer */
    int n;                      /* choices per prompt (OpenAI n; default 1) */
    int seed_set;               /* the request gave a seed (else the server draws one) */
    int load_only;              /* Ollama: no prompt / messages: load (or unload) the model, generate nothing */
    int keep_alive_zero;        /* Ollama keep_alive 0: the model's idle sessions are dropped */
    char *system;               /* Ollama generate: system prompt, or NULL */
    int raw;                    /* Ollama generate raw: no template */
    char *tools;                /* JSON array text, or NULL */
    char *tool_choice;          /* "auto", "none", "required", a tool name, or NULL */
    char *schema;               /* JSON schema text the answer must follow, or NULL */
    int json_mode;              /* response_format json_object / Ollama format "json" */
    int parallel_tool_calls;    /* default 1 */
    int stream, include_usage;
    int logprobs, top_logprobs;
    int max_tokens;             /* 0 = until EOS or the context is full */
    duet_session_options so;    /* sampling; stop[] points into stops */
    char *stops[DUET_MAX_STOPS];
} GenReq;

/* Parses and validates a request body (len bytes, not NUL-terminated) of
 * API `api` into *r (zeroed first; free with genreq_free). Returns 0, or an
 * HTTP status with *e filled. Reads nothing but the body. */
int genreq_parse(Api api, const char *body, size_t len, const ReqLimits *lim, GenReq *r, ApiError *e);
void genreq_free(GenReq *r);

/* 1 if p[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int utf8_valid(const char *p, size_t n);

/* Parses body as a JSON object; NULL with *e set (400) otherwise. */
cJSON *body_json(const char *body, size_t len, ApiError *e);

/* ---- results and their encodings (serve_resp.c) ------------------------ */

typedef struct ToolCallOut {
    char *id, *name, *arguments;
} ToolCallOut;

/* What one generation produced. */
typedef struct GenResult {
    char *text;                 /* content (malloc'd); with echo the prompt first */
    size_t len;
    const char *finish;         /* "stop", "length", "tool_calls" */
    ToolCallOut *calls;
    int n_calls;
    int n_prompt;               /* all prompt tokens */
    int n_cached;               /* of them reused from the cache */
    int n_gen;
    double ttft_s, total_s, gen_s, prompt_s;
    cJSON *logprobs;            /* array of OpenAI token logprob objects, or NULL */
} GenResult;

void genresult_free(GenResult *g);

/* Full (non-stream) response body, malloc'd: the choices g[0..n) in index
 * order (Ollama: g[0]), usage from total. */
char *resp_body(const GenReq *r, const GenResult *g, int n, const GenResult *total, const char *id, long created,
                const char *model);
/* One stream chunk for a content piece of choice `index` (SSE "data:
 * ...\n\n" or an NDJSON line); lp: that piece's logprobs entries or NULL;
 * first: the choice's first chunk (it carries the role). malloc'd. */
char *resp_chunk(const GenReq *r, const char *id, long created, const char *model, int index, const char *piece,
                 size_t n, int first, const cJSON *lp);
/* The chunks that end choice `index` (its tool calls and finish reason;
 * Ollama: the done line with the timings); first: no chunk of the choice
 * went out yet (the role goes in this one). malloc'd. */
char *resp_choice_end(const GenReq *r, const GenResult *g, int index, int first, const char *id, long created,
                      const char *model);
/* The end of an OpenAI stream (the usage chunk when asked, [DONE]; "" for
 * Ollama). malloc'd. */
char *resp_stream_end(const GenReq *r, const GenResult *total, const char *id, long created, const char *model);
/* Ollama's answer to a request without prompt or messages (a model load,
 * or an unload with keep_alive 0). malloc'd. */
char *resp_ollama_load(const GenReq *r, const char *model);
/* The error body in the API's form (OpenAI error object or Ollama {"error"}). */
char *resp_error(Api api, const ApiError *e);
/* An error as the last event of a stream that has started. */
char *resp_stream_error(Api api, const ApiError *e);

/* ---- growable byte buffer ---------------------------------------------- */

typedef struct Buf {
    char *p;
    size_t len, cap;
} Buf;
int buf_add(Buf *b, const void *p, size_t n); /* 0 or -1 (out of memory) */
int buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- metrics (serve_metrics.c) ----------------------------------------- */

#define HIST_BUCKETS 14
typedef struct Hist {
    uint64_t count[HIST_BUCKETS + 1];
    double sum;
    uint64_t n;
} Hist;

typedef struct ReqCount {
    char model[64];
    int status;
    uint64_t n;
} ReqCount;

typedef struct Metrics {
    pthread_mutex_t lock;
    ReqCount req[256];
    int n_req;
    uint64_t prompt_tokens, cached_tokens, gen_tokens, aborted;
    Hist ttft, itl, e2e;
} Metrics;

void metrics_init(Metrics *m);
void metrics_destroy(Metrics *m);
void metrics_request(Metrics *m, const char *model, int status);
void metrics_result(Metrics *m, const GenResult *g, int aborted);
void metrics_itl(Metrics *m, double s);
/* Appends the Prometheus text; gauges given by the caller. */
int metrics_text(Metrics *m, Buf *b, int queued, int active, int idle, size_t kv_used, size_t kv_budget);

/* ---- sessions: admission and the prefix cache (serve_pool.c) ----------- */

typedef struct Idle {
    duet_session *s;
    char *adapter;              /* NULL = base */
    uint64_t used;              /* LRU tick */
    unsigned epoch;             /* the pool's unload epoch when taken / made */
} Idle;

typedef struct Pool {
    duet_model *m;
    duet_session_options base; /* n_ctx, kv type */
    pthread_mutex_t lock;
    pthread_cond_t cv;
    Idle *idle;
    int n_idle, cap_idle;
    int active, parallel;       /* generations holding a slot */
    int waiting, queue;         /* requests waiting for a slot */
    uint64_t tick;
    unsigned epoch;             /* bumped by every unload: sessions of older epochs with adapters are not kept */
    int draining;
} Pool;

int spool_init(Pool *p, duet_model *m, int n_ctx, int parallel, int queue);
void spool_destroy(Pool *p);     /* closes the idle sessions */

/* Waits for k (<= parallel) generation slots. 0: got them (give it back with spool_leave);
 * 503 with *e set: the queue is full, the wait timed out, or draining; 499:
 * *gone became set while waiting. */
int spool_enter(Pool *p, int k, double timeout_s, atomic_int *gone, ApiError *e);
void spool_leave(Pool *p, int k);

/* A session for `adapter` (NULL: base) whose cached tokens share the longest
 * prefix with ids[0..n) (n may be 0: no preference); a new one when none
 * shares any and the KV budget allows, evicting least recently used idle
 * sessions as needed. *epoch receives what spool_give needs. NULL with *e. */
duet_session *spool_take(Pool *p, const char *adapter, const int *ids, int n, unsigned *epoch, ApiError *e);
/* Returns a session to the idle set (or closes it: damaged, or its adapter
 * was unloaded since). */
void spool_give(Pool *p, duet_session *s, const char *adapter, unsigned epoch, int keep);
/* Closes the idle sessions of adapter `name` and bumps the epoch. */
void spool_forget_adapter(Pool *p, const char *name);
/* Closes the idle sessions of `adapter` (NULL: base): their KV is freed. */
void spool_drop_idle(Pool *p, const char *adapter);
void spool_counts(Pool *p, int *queued, int *active, int *idle);

/* ---- a generation streamed to the connection thread (serve_gen.c) ------ */

/* Bytes from the generation thread to the HTTP reader callback. */
typedef struct Chan {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    Buf b;
    size_t off;                 /* bytes already taken */
    int closed;                 /* the writer is done */
} Chan;

typedef struct Server Server;
typedef struct Job Job;

/* One prompt of a job, as the server rendered it. */
typedef struct Prompt {
    int *ids, n_ids;            /* the tokens (for the cache choice and the length check) */
    char *echo;                 /* the text echoed before the answer (completions echo), or NULL */
} Prompt;

/* One choice of a job: choice `index` of the response answers prompt `prompt`. */
typedef struct Choice {
    int index, prompt;
    GenResult res;
    int status;                 /* 0, or an HTTP status with err */
    ApiError err;
} Choice;

/* A session of a job and the thread that runs choices on it. */
typedef struct Worker {
    Job *j;
    duet_session *s;            /* set and cleared under srv->jobs_lock (the watcher aborts it) */
    unsigned epoch;
    int keep;                   /* the session may go back to the cache */
} Worker;

struct Job {
    Server *srv;
    GenReq req;
    char *adapter;              /* resolved: NULL = base */
    char model[128];            /* the name answered with */
    char id[48];
    long created;
    Prompt *prompts;
    int n_prompts;
    Choice *ch;                 /* n_prompts x req.n, in index order */
    int n_ch;
    Worker *w;                  /* min(n_ch, parallel) sessions, each with its slot */
    int n_w;
    atomic_int next;            /* the next choice a worker takes */
    atomic_int failed;          /* a choice failed: the others stop */
    atomic_int gone;            /* the client went away: stop */
    int fd;                     /* dup of the client socket, watched for hang-up; -1 none */
    int stream;
    Chan chan;
    atomic_int refs;            /* the stream: worker + HTTP response */
    GenResult res;              /* totals over the choices (usage, the log line) */
    int status;                 /* HTTP status for the log */
    double t0;
    char peer[64];
    char path[64];
};

/* Runs every choice of j on its workers' sessions (taken already; given
 * back to the pool here), filling j->ch and the totals j->res; streams
 * through j->chan when j->stream (each choice's end as it comes). 0, or an
 * HTTP status with *e set. */
int gen_run(Job *j, ApiError *e);

void chan_init(Chan *c);
void chan_destroy(Chan *c);
void chan_put(Chan *c, const char *p, size_t n);
void chan_close(Chan *c);
/* Takes up to max bytes, waiting up to wait_s seconds for some; 0 when
 * closed and empty, or with *idle = 1 when nothing came in time (then all
 * that was put has been taken: the stream is between two chunks). */
size_t chan_take(Chan *c, char *out, size_t max, double wait_s, int *idle);

/* ---- the server ---------------------------------------------------------- */

struct Server {
    ServeOpts o;
    duet_model *m;
    char base_name[128];
    Pool pool;
    Metrics met;
    ReqLimits lim;
    long started;
    char lora_root[4096];       /* realpath of --lora-dir, or "" */
    pthread_mutex_t jobs_lock;  /* the jobs whose clients are watched */
    Job **jobs;
    int n_jobs, cap_jobs;
    atomic_int draining;
    atomic_int in_flight;       /* generations running (drain waits for 0) */
    atomic_int responding;      /* generation responses not yet sent out (drain waits for 0) */
    pthread_mutex_t log_lock;
    pthread_rwlock_t ad_lock;   /* writers: adapter load / unload; readers: name lookups */
    const char *fim[3];         /* the model's fill-in-the-middle markers (prefix, suffix, middle), or NULLs */
    atomic_uint_fast64_t seeds; /* draws the seed of a request that gives none */
};

/* A response of the endpoints other than generation (serve_routes.c). */
typedef struct Resp {
    int status;
    const char *ctype;          /* NULL = application/json */
    char *body;                 /* malloc'd */
} Resp;

/* Answers the endpoints that do not generate (models, tokenize, adapters,
 * metrics, Ollama's tags / show / ps / version) into *out: 1 when `url`
 * is one of them, 0 when it is not (*out untouched). */
int route_other(Server *srv, const char *method, const char *url, const char *body, size_t len, Resp *out);

/* Starts the HTTP daemon (serve_http.c); NULL with err filled. */
struct MHD_Daemon;
struct MHD_Daemon *http_start(Server *srv, char *err, size_t n);

/* Registers / unregisters a job for the hang-up watcher. */
int server_watch(Server *srv, Job *j);
void server_unwatch(Server *srv, Job *j);
/* Marks j's client gone and aborts its sessions' generations; the caller
 * holds srv->jobs_lock. */
void job_abort(Job *j);
/* Polls the watched sockets once; aborts the jobs whose client hung up. */
void server_reap(Server *srv);
/* Resolves a requested model name to an adapter: 0 and *adapter (malloc'd,
 * NULL for the base); 404 with *e for an unknown one (in Ollama's words
 * when ollama). */
int server_resolve_model(Server *srv, const char *name, int ollama, char **adapter, ApiError *e);
/* One log line for a finished request. */
void server_log(Server *srv, const char *peer, const char *method, const char *path, int status, const Job *j,
                double secs);

#endif
