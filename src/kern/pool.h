/* pool.h - a persistent thread pool for the kernels. Workers start once and
 * wait for jobs by spinning briefly, then sleeping on a condition variable;
 * the calling thread runs tasks too, so a pool of n threads has n - 1
 * workers. One job at a time: pool_run is not reentrant and must not be
 * called from inside a task or from two threads at once. */
#ifndef DUET_POOL_H
#define DUET_POOL_H

typedef struct Pool Pool;

/* Starts n_threads - 1 workers (n_threads >= 1). NULL if out of memory or
 * threads cannot be created. */
Pool *pool_create(int n_threads);
void pool_destroy(Pool *p); /* joins the workers; safe on NULL */

/* Runs fn(ctx, task) for task = 0 .. n_tasks-1 across the pool (tasks are
 * handed out dynamically); returns when all are done. */
void pool_run(Pool *p, int n_tasks, void (*fn)(void *ctx, int task), void *ctx);

#endif
