/* kern.c - kernel context. Single-threaded scalar dispatch for now: the SIMD
 * backends and the thread pool plug in here. */
#include "kern/kern.h"

#include <stdlib.h>
#include <string.h>

struct Kern {
    int n_threads;
    const char *isa;
};

Kern *kern_create(int n_threads, const char *isa, Err *e)
{
    if (isa && strcmp(isa, "scalar")) {
        err_set(e, "kernel backend \"%s\" is not available (have: scalar)", isa);
        return NULL;
    }
    Kern *k = calloc(1, sizeof *k);
    if (!k) {
        err_set(e, "out of memory");
        return NULL;
    }
    k->n_threads = n_threads > 0 ? n_threads : 1;
    k->isa = "scalar";
    return k;
}

void kern_destroy(Kern *k) { free(k); }
const char *kern_isa(const Kern *k) { return k->isa; }
int kern_threads(const Kern *k) { return k->n_threads; }

void kern_matmul(Kern *k, float *Y, const QMat *W, const float *X, int n)
{
    (void)k;
    kern_matmul_ref(Y, W, X, n);
}

void kern_parallel(Kern *k, int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    (void)k;
    for (int i = 0; i < n_tasks; i++) fn(ctx, i);
}
