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

    struct TokTrie *trie;      /* (lock) token trie for JSON constraints, built at first use (session_tools.c) */
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
    int active;                /* (lock) inside duet_generate; close waits for 0 on `idle` */
    pthread_cond_t idle;

    duet_stats stats;
    char err[512];

    struct SessTools *tools;   /* tools, tool choice, JSON schema, last calls; NULL: none (session_tools.c) */
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

/* Tools and JSON constraints on a session (session_tools.c). The generate
 * loop calls these only when s->tools is set. */
typedef struct ToolGen ToolGen;
/* Renders the chat history with the tools (the template's own tool section
 * or the Hermes-style fallback) into *text (malloc'd). */
int tools_render(duet_session *s, char **text);
/* Starts one generate: *out is NULL when nothing constrains or filters it. */
int tools_gen_begin(duet_session *s, ToolGen **out);
/* Samples the next token from s->logits under the constraint, `left` tokens
 * left (<= 0: no budget). The token, or a negative status. */
int tools_gen_sample(ToolGen *g, duet_session *s, int left);
void tools_gen_accept(ToolGen *g, duet_session *s, int token);
/* Passes generated text to cb with the call blocks taken out; final = 1 at
 * the end (what was held back comes out). Returns cb's result. */
int tools_gen_emit(ToolGen *g, duet_token_cb cb, void *user, const char *piece, size_t len, int token, int final);
/* Ends the generate: parses the calls of text into the session and returns
 * the assistant message for the history (NULL when out of memory). */
cJSON *tools_gen_end(ToolGen *g, duet_session *s, const char *text);
void tools_gen_free(ToolGen *g);
/* Frees what set_tools and friends keep; clears the last calls. */
void tools_session_free(duet_session *s);
void tools_session_clear(duet_session *s);
void tools_model_free(duet_model *m);
/* The record of duet_agent_run's calls (src/agent/agent_loop.c). */
void api_agent_steps_reset(duet_session *s);
/* The session's tool choice, malloc'd; NULL for auto (or out of memory). */
char *api_tool_choice_dup(const duet_session *s);
int api_agent_step_add(duet_session *s, const char *name, const char *args, const char *result);

#endif
