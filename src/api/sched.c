/* sched.c - the scheduler thread: the one place forward() runs for a
 * duet_model. Each step takes, under the model lock, one row from every
 * running session with a single pending token (decode) and up to `chunk`
 * rows of ONE session with a longer pending prompt (prefill, the sessions
 * taking turns), runs them as one batch (each row with its own KV cache and
 * adapter), then wakes the sessions whose last pending token now has logits.
 * So a long prompt delays the other streams by one chunk per step, not by
 * the whole prompt. Sampling happens on the client threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "util/clock.h"

typedef struct Part {
    duet_session *s;
    int n;                     /* rows of this session in the batch */
} Part;

static const Adapter *adapter_of(const duet_session *s)
{
    return s->adapter >= 0 ? &s->md->m.adapters[s->adapter] : NULL;
}

/* Adds rows for s's pending tokens hist[n_past .. n_past + n). */
static void add_rows(duet_session *s, int n, BatchRow *rows, int *nr)
{
    for (int i = 0; i < n; i++) {
        int p = s->n_past + i;
        rows[(*nr)++] = (BatchRow){s->hist[p], p, &s->kv, adapter_of(s), p == s->n_hist - 1 ? s->logits : NULL};
    }
}

/* Builds the next batch (model lock held). Returns the number of rows. */
static int build_batch(duet_model *m, BatchRow *rows, Part *parts, int *np)
{
    int nr = 0, prefill = -1;
    *np = 0;
    for (int i = 0; i < m->n_sess; i++) {
        duet_session *s = m->sess[i];
        if (s->state != S_RUN) continue;
        if (atomic_load(&s->abort)) {
            s->state = S_DONE;
            pthread_cond_signal(&s->done);
            continue;
        }
        if (s->n_hist - s->n_past == 1) {
            parts[(*np)++] = (Part){s, 1};
            add_rows(s, 1, rows, &nr);
        }
    }
    /* one prefill session, taking turns from m->rr */
    for (int j = 0; j < m->n_sess && prefill < 0; j++) {
        int i = (m->rr + j) % m->n_sess;
        duet_session *s = m->sess[i];
        if (s->state == S_RUN && s->n_hist - s->n_past > 1) prefill = i;
    }
    if (prefill >= 0) {
        duet_session *s = m->sess[prefill];
        int n = s->n_hist - s->n_past;
        if (n > m->chunk) n = m->chunk;
        parts[(*np)++] = (Part){s, n};
        add_rows(s, n, rows, &nr);
        m->rr = (prefill + 1) % m->n_sess;
    }
    return nr;
}

/* Sessions inside duet_generate that are between two tokens (sampling):
 * they will submit a decode row within a fraction of a millisecond. */
static int sampling(const duet_model *m)
{
    int n = 0;
    for (int i = 0; i < m->n_sess; i++)
        if (m->sess[i]->state != S_RUN && atomic_load(&m->sess[i]->generating)) n++;
    return n;
}

/* How long a step may be held back for sampling sessions, so that their
 * decode rows share one pass over the weights instead of taking turns. */
#define BATCH_WAIT_S 0.002

static int any_running(const duet_model *m)
{
    for (int i = 0; i < m->n_sess; i++)
        if (m->sess[i]->state == S_RUN) return 1;
    return 0;
}

static void *sched_main(void *arg)
{
    duet_model *m = arg;
    BatchRow *rows = NULL;
    Part *parts = NULL;
    int cap = 0;
    double hold_since = 0;
    Err e;
    pthread_mutex_lock(&m->lock);
    for (;;) {
        while (!m->stop && !any_running(m)) pthread_cond_wait(&m->work, &m->lock);
        if (m->stop) break;
        if (cap < m->n_sess + m->chunk) {
            int nc = m->n_sess + m->chunk + 16;
            BatchRow *r = realloc(rows, (size_t)nc * sizeof *r);
            if (r) rows = r;
            Part *p = realloc(parts, (size_t)nc * sizeof *p);
            if (p) parts = p;
            if (!r || !p) {
                /* fail every running session rather than spin */
                for (int i = 0; i < m->n_sess; i++)
                    if (m->sess[i]->state == S_RUN) {
                        m->sess[i]->failed = 1;
                        snprintf(m->sess[i]->err, sizeof m->sess[i]->err, "scheduler: out of memory");
                        m->sess[i]->state = S_DONE;
                        pthread_cond_signal(&m->sess[i]->done);
                    }
                continue;
            }
            cap = nc;
        }
        int np, nr = build_batch(m, rows, parts, &np);
        if (nr == 0) continue;
        if (sampling(m)) {
            /* a session that just got its token is sampling the next one: hold
             * the step a little so its row joins this pass over the weights */
            double t = now_s();
            if (hold_since == 0) hold_since = t;
            if (t - hold_since < BATCH_WAIT_S) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&m->work, &m->lock, &ts);
                continue;
            }
        }
        hold_since = 0;
        pthread_mutex_unlock(&m->lock);
        int rc = forward(&m->m, m->k, &m->scratch, rows, nr, &e);
        pthread_mutex_lock(&m->lock);
        for (int i = 0; i < np; i++) {
            duet_session *s = parts[i].s;
            if (rc) {
                s->failed = 1;
                snprintf(s->err, sizeof s->err, "%s", e.msg);
                s->state = S_DONE;
            } else {
                s->n_past += parts[i].n;
                if (s->n_past == s->n_hist) s->state = S_DONE;
            }
            if (s->state == S_DONE) pthread_cond_signal(&s->done);
        }
    }
    pthread_mutex_unlock(&m->lock);
    free(rows);
    free(parts);
    return NULL;
}

int sched_start(duet_model *m, Err *e)
{
    if (pthread_create(&m->thread, NULL, sched_main, m)) return err_set(e, "cannot start the scheduler thread");
    m->thread_started = 1;
    return 0;
}

void sched_stop(duet_model *m)
{
    if (!m->thread_started) return;
    pthread_mutex_lock(&m->lock);
    m->stop = 1;
    pthread_cond_broadcast(&m->work);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->thread_started = 0;
}

int sched_run(duet_session *s)
{
    duet_model *m = s->md;
    if (s->n_past >= s->n_hist) return DUET_OK;
    pthread_mutex_lock(&m->lock);
    s->failed = 0;
    s->state = S_RUN;
    pthread_cond_signal(&m->work);
    while (s->state == S_RUN) pthread_cond_wait(&s->done, &m->lock);
    s->state = S_IDLE;
    int failed = s->failed, done = s->n_past == s->n_hist;
    pthread_mutex_unlock(&m->lock);
    if (failed) return DUET_ERR_INTERNAL;
    return done ? DUET_OK : DUET_ERR_STATE;
}
