/* serve_pool.c - generation slots and the prefix cache. At most `parallel`
 * requests generate at once (the scheduler batches their decode steps);
 * up to `queue` more wait, in arrival order of wake-up, and the rest get a
 * 503. A finished request's session stays idle with its tokens and KV
 * cache; the next request of the same adapter takes the idle session whose
 * tokens share the longest prefix with its prompt, so only the rest is
 * prefilled. Idle sessions are closed least recently used first when a new
 * one would go over the model's KV budget. Sessions are never shared across
 * adapters: a session's cache is only reused under the adapter it was
 * computed with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"

int spool_init(Pool *p, duet_model *m, int n_ctx, int parallel, int queue)
{
    memset(p, 0, sizeof *p);
    p->m = m;
    duet_session_options_default(&p->base);
    p->base.n_ctx = n_ctx;
    p->parallel = parallel;
    p->queue = queue;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cv, NULL);
    return 0;
}

void spool_destroy(Pool *p)
{
    for (int i = 0; i < p->n_idle; i++) {
        duet_session_close(p->idle[i].s);
        free(p->idle[i].adapter);
    }
    free(p->idle);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->lock);
    memset(p, 0, sizeof *p);
}

int spool_enter(Pool *p, int k, double timeout_s, atomic_int *gone, ApiError *e)
{
    pthread_mutex_lock(&p->lock);
    if (p->draining) {
        pthread_mutex_unlock(&p->lock);
        return api_error(e, 503, "", "the server is shutting down");
    }
    if (k < 1 || k > p->parallel) k = k < 1 ? 1 : p->parallel;
    if (p->active + k <= p->parallel && p->waiting == 0) {
        p->active += k;
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    if (p->waiting >= p->queue) {
        pthread_mutex_unlock(&p->lock);
        return api_error(e, 503, "", "the server is busy: %d requests running and %d waiting; retry later", p->parallel,
                         p->queue);
    }
    p->waiting++;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    double waited = 0;
    int rc = 0;
    while (!(p->active + k <= p->parallel)) {
        if (gone && atomic_load(gone)) {
            rc = 499;
            break;
        }
        if (p->draining) {
            rc = api_error(e, 503, "", "the server is shutting down");
            break;
        }
        if (waited >= timeout_s) {
            rc = api_error(e, 503, "", "the server is busy: waited %.0f s for a slot; retry later", timeout_s);
            break;
        }
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 100000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->cv, &p->lock, &dl);
        waited += 0.1; /* an upper bound of the time waited: wake-ups come early, never late */
    }
    p->waiting--;
    if (!rc) p->active += k;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void spool_leave(Pool *p, int k)
{
    pthread_mutex_lock(&p->lock);
    p->active -= k < 1 ? 1 : k > p->parallel ? p->parallel : k;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
}

static int same_adapter(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static void drop_idle(Pool *p, int i)
{
    duet_session_close(p->idle[i].s);
    free(p->idle[i].adapter);
    p->idle[i] = p->idle[--p->n_idle];
}

duet_session *spool_take(Pool *p, const char *adapter, const int *ids, int n, unsigned *epoch, ApiError *e)
{
    pthread_mutex_lock(&p->lock);
    *epoch = p->epoch;
    int best = -1, best_c = 0;
    for (int i = 0; i < p->n_idle; i++) {
        if (!same_adapter(p->idle[i].adapter, adapter)) continue;
        int m;
        const int *t = duet_session_tokens(p->idle[i].s, &m);
        int c = 0;
        while (c < n && c < m && t[c] == ids[c]) c++;
        if (c > best_c || (c == best_c && best >= 0 && c > 0 && p->idle[i].used > p->idle[best].used)) {
            best = i;
            best_c = c;
        }
    }
    if (best >= 0 && best_c > 0) {
        duet_session *s = p->idle[best].s;
        free(p->idle[best].adapter);
        p->idle[best] = p->idle[--p->n_idle];
        pthread_mutex_unlock(&p->lock);
        return s;
    }
    duet_session_options o = p->base;
    o.adapter = adapter;
    duet_session *s = NULL;
    for (;;) {
        int rc = duet_session_create(p->m, &o, &s);
        if (rc == DUET_OK) break;
        if (rc != DUET_ERR_BUDGET || p->n_idle == 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s", duet_model_errmsg(p->m));
            pthread_mutex_unlock(&p->lock);
            if (rc == DUET_ERR_NOT_FOUND) {
                api_error(e, 404, "model", "%s", msg);
                e->code = "model_not_found";
            } else {
                api_error(e, 503, "", "no session available: %s", msg);
            }
            return NULL;
        }
        int lru = 0; /* close the least recently used idle session and try again */
        for (int i = 1; i < p->n_idle; i++)
            if (p->idle[i].used < p->idle[lru].used) lru = i;
        drop_idle(p, lru);
    }
    pthread_mutex_unlock(&p->lock);
    return s;
}

void spool_give(Pool *p, duet_session *s, const char *adapter, unsigned epoch, int keep)
{
    if (!s) return;
    pthread_mutex_lock(&p->lock);
    char *ad = adapter ? strdup(adapter) : NULL;
    if (!keep || p->draining || (adapter && (epoch != p->epoch || !ad))) {
        pthread_mutex_unlock(&p->lock);
        free(ad);
        duet_session_close(s);
        return;
    }
    if (p->n_idle == p->cap_idle) {
        int nc = p->cap_idle ? 2 * p->cap_idle : 16;
        Idle *ni = realloc(p->idle, (size_t)nc * sizeof *ni);
        if (!ni) {
            pthread_mutex_unlock(&p->lock);
            free(ad);
            duet_session_close(s);
            return;
        }
        p->idle = ni;
        p->cap_idle = nc;
    }
    p->idle[p->n_idle++] = (Idle){s, ad, ++p->tick, p->epoch};
    pthread_mutex_unlock(&p->lock);
}

void spool_forget_adapter(Pool *p, const char *name)
{
    pthread_mutex_lock(&p->lock);
    p->epoch++;
    for (int i = 0; i < p->n_idle;)
        if (p->idle[i].adapter && !strcmp(p->idle[i].adapter, name)) drop_idle(p, i);
        else i++;
    pthread_mutex_unlock(&p->lock);
}

void spool_drop_idle(Pool *p, const char *adapter)
{
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n_idle;)
        if (same_adapter(p->idle[i].adapter, adapter)) drop_idle(p, i);
        else i++;
    pthread_mutex_unlock(&p->lock);
}

void spool_counts(Pool *p, int *queued, int *active, int *idle)
{
    pthread_mutex_lock(&p->lock);
    *queued = p->waiting;
    *active = p->active;
    *idle = p->n_idle;
    pthread_mutex_unlock(&p->lock);
}
