/* pool.c - see pool.h. A job is published under the mutex (fields, then
 * open = 1, then gen++); workers spin ~100 us on gen, then sleep on the
 * condition variable. A worker joins a job only while it is open, and the
 * caller waits for the job's tasks to be done, not for the workers: on a
 * busy machine a descheduled worker costs nothing, the caller just takes more
 * tasks. Before the next job's fields are written the caller waits until no
 * worker is still inside the previous job (`active`). Decode issues ~200 jobs
 * per token, so a job must cost a few microseconds at most. */
#include "kern/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax(void) { __asm__ volatile("yield"); }
#else
static inline void cpu_relax(void) {}
#endif

struct Pool {
    int n_workers;
    pthread_t *threads;
    pthread_mutex_t mu;       /* guards publishing a job, joining it, sleeping */
    pthread_cond_t cv;
    _Atomic unsigned gen;     /* bumped once per job */
    atomic_int open;          /* the current job may be joined */
    atomic_int active;        /* workers inside a job */
    atomic_int sleepers;      /* workers blocked on cv */
    atomic_int next;          /* next task index to hand out */
    atomic_int done;          /* tasks finished */
    atomic_int stop;
    /* the current job: written under mu while no worker is active */
    int n_tasks;
    void (*fn)(void *ctx, int task);
    void *ctx;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static void take_tasks(Pool *p)
{
    int n = p->n_tasks;
    for (int t; (t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed)) < n;) {
        p->fn(p->ctx, t);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *worker(void *arg)
{
    Pool *p = arg;
    unsigned seen = 0;
    for (;;) {
        /* spin for a new generation, then sleep */
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g == seen) {
            double t0 = now_us();
            for (int i = 1;; i++) {
                cpu_relax();
                g = atomic_load_explicit(&p->gen, memory_order_acquire);
                if (g != seen || atomic_load(&p->stop)) break;
                if ((i & 63) == 0 && now_us() - t0 > 100) break;
            }
        }
        pthread_mutex_lock(&p->mu);
        if (g == seen && !atomic_load(&p->stop)) {
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
        }
        if (atomic_load(&p->stop)) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = atomic_load(&p->gen);
        int join = atomic_load(&p->open);
        if (join) atomic_fetch_add(&p->active, 1);
        pthread_mutex_unlock(&p->mu);
        if (!join) continue;
        take_tasks(p);
        atomic_fetch_sub_explicit(&p->active, 1, memory_order_release);
    }
}

Pool *pool_create(int n_threads)
{
    Pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_workers = n_threads > 1 ? n_threads - 1 : 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (p->n_workers) {
        p->threads = calloc((size_t)p->n_workers, sizeof *p->threads);
        if (!p->threads) {
            free(p);
            return NULL;
        }
    }
    for (int i = 0; i < p->n_workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p)) {
            p->n_workers = i; /* join the ones that did start */
            pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void pool_destroy(Pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

void pool_run(Pool *p, int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    if (n_tasks <= 0) return;
    if (p->n_workers == 0 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t);
        return;
    }
    /* a worker still inside the previous job reads its fields: let it leave
     * (joining needs mu and open, so none can enter while we hold mu) */
    for (int i = 1;; i++) {
        pthread_mutex_lock(&p->mu);
        if (atomic_load_explicit(&p->active, memory_order_acquire) == 0) break;
        pthread_mutex_unlock(&p->mu);
        cpu_relax();
        if ((i & 255) == 0) sched_yield();
    }
    p->n_tasks = n_tasks;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store(&p->open, 1);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    take_tasks(p);
    for (int i = 1; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; i++) {
        cpu_relax();
        if ((i & 1023) == 0) sched_yield(); /* the worker running a task was preempted */
    }
    atomic_store(&p->open, 0);
}
