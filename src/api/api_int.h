/* api_int.h - what lies behind the duet.h handles: the model with its
 * scheduler, and the session state the scheduler and the client thread
 * share. The model lock guards every field marked (lock). */
#ifndef DUET_API_INT_H
#define DUET_API_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>

#include "duet.h"
#include "run/forward.h"
#include "run/sample.h"
#include "text/chat.h"
#include "text/tokenizer.h"

struct duet_model {
    Model m;
    Kern *k;                   /* used by the scheduler thread only */
    Tokenizer *tok;            /* NULL: no tokenizer.json found */
    ChatTemplate *tmpl;        /* NULL: no chat template */
    uint64_t hash;             /* identifies the weights, for session files */
    size_t kv_budget;          /* 0 = unlimited */
    int chunk;                 /* prefill tokens per step */

    pthread_mutex_t lock;
    pthread_cond_t work;       /* the scheduler waits here */
    pthread_t thread;
    int thread_started;
    int stop;                  /* (lock) the scheduler should exit */
    duet_session **sess;       /* (lock) open sessions, in creation order */
    int n_sess, cap_sess;
    int rr;                    /* (lock) next session to get a prefill chunk */
    size_t kv_used;            /* (lock) */
    Scratch scratch;           /* scheduler thread only */

    pthread_mutex_t err_lock;
    char err[512];

    /* adapters attached or removed while running (api_adapter.c): m.adapters
     * has room for DUET_MAX_ADAPTERS from the open on, so rows never see it move */
    int ad_refs[DUET_MAX_ADAPTERS];          /* (lock) sessions bound to each slot */
    unsigned char ad_gone[DUET_MAX_ADAPTERS]; /* (lock) AD_* */
};

/* ad_gone states: a live adapter, one unloaded but still bound to sessions,
 * a freed slot that a later load may take. */
enum { AD_LIVE = 0, AD_UNLOADED = 1, AD_FREE = 2 };

/* Gives m.adapters room for DUET_MAX_ADAPTERS (before the scheduler starts). */
int api_adapter_reserve(duet_model *m, Err *e);
/* Binds a session to adapter `name` (model lock NOT held): its slot index,
 * -1 for NULL (the base), or DUET_ERR_NOT_FOUND (message set on m). */
int api_adapter_ref(duet_model *m, const char *name);
/* Unbinds from slot idx (-1: nothing); frees an unloaded adapter's memory
 * when its last session lets go. Model lock NOT held. */
void api_adapter_unref(duet_model *m, int idx);

/* Session states as the scheduler sees them. */
enum { S_IDLE = 0, S_RUN = 1, S_DONE = 2 };

struct duet_session {
    duet_model *md;
    duet_session_options o;
    char *stops[DUET_MAX_STOPS];
    int n_stops;
    int adapter;               /* index, -1 = base */
    KVCache kv;
    Sampler smp;
    float *logits;             /* (vocab) of the last fed token */

    int *hist;                 /* (n_ctx) every token of the context */
    int n_hist;
    int n_past;                /* tokens of hist in the KV cache; (lock) while S_RUN */
    cJSON *messages;           /* chat mode: the message history, else NULL */

    /* client <-> scheduler: while state is S_RUN the scheduler feeds
     * hist[n_past .. n_hist) and sets S_DONE when the last one's logits are in. */
    int state;                 /* (lock) */
    int failed;                /* (lock) a forward error, message in err */
    pthread_cond_t done;       /* the client waits here */
    atomic_int abort;
    atomic_int generating;     /* inside duet_generate: between tokens it is sampling, not idle */

    duet_stats stats;
    char err[512];
};

/* Sets the session's message; returns `code`. */
int api_serr(duet_session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets the model's message (under its error lock); returns `code`. */
int api_merr(duet_model *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Starts / stops the scheduler thread of m. */
int sched_start(duet_model *m, Err *e);
void sched_stop(duet_model *m);

/* Feeds the session's pending tokens through the scheduler and waits until
 * the last one's logits are in s->logits. DUET_OK, DUET_ERR_STATE when aborted
 * (s->abort set; the tokens fed so far stay cached), or a negative status. */
int sched_run(duet_session *s);

#endif
