/* kern.c - kernel context: backend choice, thread pool, per-call scratch and
 * the kern_matmul driver that prepares activations once and splits W's rows
 * over the pool. A Kern serves one kern_matmul / kern_parallel at a time. */
#include "kern/kern.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kern/kern_impl.h"
#include "kern/pool.h"

struct Kern {
    int n_threads;
    const KernOps *ops;
    Pool *pool;
    void *scratch;        /* activations prepared per call; grown on demand */
    size_t scratch_bytes;
};

Kern *kern_create(int n_threads, const char *isa, Err *e)
{
    CpuFeatures f;
    cpu_detect(&f);
    const KernOps *ops = NULL;
    const char *have =
#if defined(__x86_64__)
        f.amx ? "scalar, avx2, avx512, amx" : f.avx512 ? "scalar, avx2, avx512" : f.avx2 ? "scalar, avx2" : "scalar";
#elif defined(__aarch64__)
        f.dotprod ? "scalar, neon" : "scalar";
#else
        "scalar";
#endif
    if (!isa) {
        ops = &kern_ops_scalar;
#if defined(__x86_64__)
        if (f.amx && !cpu_amx_request()) ops = &kern_ops_amx;
        else if (f.avx512) ops = &kern_ops_avx512;
        else if (f.avx2) ops = &kern_ops_avx2;
#elif defined(__aarch64__)
        if (f.dotprod) ops = &kern_ops_neon;
#endif
    } else if (!strcmp(isa, "scalar")) {
        ops = &kern_ops_scalar;
#if defined(__x86_64__)
    } else if (!strcmp(isa, "avx2") && f.avx2) {
        ops = &kern_ops_avx2;
    } else if (!strcmp(isa, "avx512") && f.avx512) {
        ops = &kern_ops_avx512;
    } else if (!strcmp(isa, "amx") && f.amx && !cpu_amx_request()) {
        ops = &kern_ops_amx;
#elif defined(__aarch64__)
    } else if (!strcmp(isa, "neon") && f.dotprod) {
        ops = &kern_ops_neon;
#endif
    }
    if (ops && !ops->name) ops = isa ? NULL : &kern_ops_scalar; /* table without kernels */
    if (!ops) {
        int known = !strcmp(isa, "avx2") || !strcmp(isa, "avx512") || !strcmp(isa, "amx") || !strcmp(isa, "neon");
        err_set(e, "kernel backend \"%s\" is %s (this CPU has: %s)", isa,
                known ? "not supported on this CPU or build" : "unknown", have);
        return NULL;
    }
    if (n_threads < 0 || n_threads > 1024) {
        err_set(e, "thread count %d out of range (0 = one per physical core, max 1024)", n_threads);
        return NULL;
    }
    Kern *k = calloc(1, sizeof *k);
    if (!k) {
        err_set(e, "out of memory");
        return NULL;
    }
    k->n_threads = n_threads > 0 ? n_threads : cpu_physical_cores();
    k->ops = ops;
    k->pool = pool_create(k->n_threads);
    if (!k->pool) {
        free(k);
        err_set(e, "cannot start %d kernel threads", n_threads);
        return NULL;
    }
    return k;
}

void kern_destroy(Kern *k)
{
    if (!k) return;
    pool_destroy(k->pool);
    free(k->scratch);
    free(k);
}

const char *kern_isa(const Kern *k) { return k->ops->name; }
int kern_threads(const Kern *k) { return k->n_threads; }

void kern_parallel(Kern *k, int n_tasks, void (*fn)(void *ctx, int task), void *ctx)
{
    pool_run(k->pool, n_tasks, fn, ctx);
}

/* Returns 64-byte aligned scratch of at least `bytes`, or NULL. */
static void *scratch(Kern *k, size_t bytes)
{
    if (bytes <= k->scratch_bytes) return k->scratch;
    free(k->scratch);
    k->scratch_bytes = 0;
    k->scratch = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (k->scratch) k->scratch_bytes = bytes;
    return k->scratch;
}

const KernOps *kern_ops(const Kern *k) { return k->ops; }
Pool *kern_pool(Kern *k) { return k->pool; }
void *kern_scratch(Kern *k, size_t bytes) { return scratch(k, bytes); }

void act_quantize_row(int8_t *q, float *d, float *m, const float *x,
                      const float *in_scale, int cols)
{
    int nb = kern_nblocks(cols);
    for (int b = 0; b < nb; b++) {
        float v[QBLOCK], amax = 0;
        for (int i = 0; i < QBLOCK; i++) {
            int j = b * QBLOCK + i;
            v[i] = j < cols ? (in_scale ? x[j] * in_scale[j] : x[j]) : 0.0f;
            float a = fabsf(v[i]);
            if (a > amax) amax = a;
        }
        float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int i = 0; i < QBLOCK; i++) {
            int qi = (int)lrintf(v[i] * inv);
            qi = qi > 127 ? 127 : qi < -127 ? -127 : qi;
            q[b * QBLOCK + i] = (int8_t)qi;
            sum += qi;
        }
        d[b] = scale;
        m[b] = scale * (float)sum;
    }
}

typedef struct Job {
    const KernOps *ops;
    MMArgs a;
    ActQ *A;
    const float *X_in;    /* caller's activations */
    float *X_scaled;      /* in_scale applied, float types */
    void *Xt;             /* activations packed for tiles */
    int chunk;            /* rows per task (tasks of fixed size) */
    Region *reg;          /* n_reg regions (decode) */
    int n_reg;
    void (*after)(void *ctx, int r0, int r1); /* kern_matmul_then's callback, or NULL */
    void *after_ctx;
} Job;

static void pack_task(void *ctx, int g)
{
    Job *j = ctx;
    const QMat *W = j->a.W;
    j->ops->tile_pack(j->Xt, g, j->X_in, j->a.n, W->cols, W->in_scale, dtype_base(W->type));
}

size_t kern_actq_layout(ActQ *A, char *s, int n, int n_pad, int cols)
{
    int nb = kern_nblocks(cols);
    size_t nq = (size_t)n_pad * nb * QBLOCK, ns = (size_t)n_pad * nb, npat = (size_t)n * (nb / 4) * 16;
    if (A) {
        *A = (ActQ){.n = n, .nb = nb};
        A->pat = (float *)s;
        A->off = (int32_t *)(A->pat + npat);
        A->d = (float *)(A->off + npat);
        A->m = A->d + ns;
        A->q = (int8_t *)(A->m + ns);
        if (n_pad > n) {
            memset(A->q + (size_t)(n_pad - 16) * nb * QBLOCK, 0, (size_t)16 * nb * QBLOCK);
            memset(A->d + (size_t)(n_pad - 16) * nb, 0, (size_t)16 * nb * sizeof(float));
        }
    }
    return (nq + 4 * (2 * ns + 2 * npat) + 63) & ~(size_t)63;
}

int kern_row_chunk(int rows, int n_threads, int align)
{
    int chunk = (rows + n_threads * 8 - 1) / (n_threads * 8);
    chunk = (chunk + align - 1) & ~(align - 1);
    return chunk < align ? align : chunk;
}

void kern_prep_token(const KernOps *ops, ActQ *A, float *X_scaled, const QMat *W, const float *X, int t)
{
    const float *x = X + (size_t)t * W->cols;
    DType wt = dtype_base(W->type);
    if (A) {
        if (ops->act_quant) {
            ops->act_quant(A, t, x, W->in_scale, W->cols, wt);
            return;
        }
        size_t o = (size_t)t * A->nb;
        act_quantize_row(A->q + o * QBLOCK, A->d + o, A->m + o, x, W->in_scale, W->cols);
        if (ops->act_layout) ops->act_layout(A, t, wt);
    } else if (X_scaled) {
        float *y = X_scaled + (size_t)t * W->cols;
        for (int c = 0; c < W->cols; c++) y[c] = x[c] * W->in_scale[c];
    }
}

static void prep_task(void *ctx, int t)
{
    Job *j = ctx;
    kern_prep_token(j->ops, j->A, j->X_scaled, j->a.W, j->X_in, t);
}

static void mm_task(void *ctx, int t)
{
    Job *j = ctx;
    int r0 = t * j->chunk, r1 = r0 + j->chunk;
    if (r1 > j->a.W->rows) r1 = j->a.W->rows;
    j->ops->mm[j->a.W->type](&j->a, r0, r1);
    if (j->after) j->after(j->after_ctx, r0, r1);
}

/* Takes up to `want` units from the front (or back) of g; 0 when empty. */
static int region_take(Region *g, int want, int back, int *u0)
{
    uint64_t s = atomic_load_explicit(&g->span, memory_order_relaxed);
    for (;;) {
        uint32_t lo = (uint32_t)s, hi = (uint32_t)(s >> 32);
        if (lo >= hi) return 0;
        uint32_t take = (uint32_t)want < hi - lo ? (uint32_t)want : hi - lo;
        uint64_t next = back ? lo | (uint64_t)(hi - take) << 32 : (lo + take) | (uint64_t)hi << 32;
        if (atomic_compare_exchange_weak_explicit(&g->span, &s, next, memory_order_relaxed, memory_order_relaxed)) {
            *u0 = back ? (int)(hi - take) : (int)lo;
            return (int)take;
        }
    }
}

static int region_left(Region *g)
{
    uint64_t s = atomic_load_explicit(&g->span, memory_order_relaxed);
    uint32_t lo = (uint32_t)s, hi = (uint32_t)(s >> 32);
    return lo < hi ? (int)(hi - lo) : 0;
}

int kern_regions_init(Region *reg, int rows, int n_threads)
{
    int units = (rows + REGION_ROWS - 1) / REGION_ROWS, nr = n_threads < MAX_REGIONS ? n_threads : MAX_REGIONS;
    if (nr > units) nr = units;
    for (int i = 0; i < nr; i++) {
        uint64_t lo = (uint64_t)units * i / nr, hi = (uint64_t)units * (i + 1) / nr;
        atomic_init(&reg[i].span, lo | hi << 32);
    }
    return nr;
}

void kern_regions_walk(Region *reg, int n_reg, int t, int rows, void (*fn)(void *ctx, int r0, int r1), void *ctx)
{
    int u0, got;
    for (int d = 0; d < n_reg; d++) {
        Region *g = &reg[(t + d) % n_reg];
        for (;;) {
            int left = region_left(g), want = d ? (left + 1) / 2 : (left + 3) / 4;
            if (!(got = region_take(g, want > 64 ? 64 : want, d != 0, &u0))) break;
            int r0 = u0 * REGION_ROWS, r1 = (u0 + got) * REGION_ROWS;
            fn(ctx, r0, r1 < rows ? r1 : rows);
        }
    }
}

static void region_rows(void *ctx, int r0, int r1)
{
    Job *j = ctx;
    j->ops->mm[j->a.W->type](&j->a, r0, r1);
    if (j->after) j->after(j->after_ctx, r0, r1);
}

static void region_task(void *ctx, int t)
{
    Job *j = ctx;
    kern_regions_walk(j->reg, j->n_reg, t, j->a.W->rows, region_rows, j);
}

void kern_matmul(Kern *k, float *Y, const QMat *W, const float *X, int n)
{
    kern_matmul_then(k, Y, W, X, n, NULL, NULL);
}

/* kern_matmul_ref, then the callback over all rows. */
static void ref_then(float *Y, const QMat *W, const float *X, int n, void (*after)(void *, int, int), void *ctx)
{
    kern_matmul_ref(Y, W, X, n);
    if (after) after(ctx, 0, W->rows);
}

void kern_matmul_then(Kern *k, float *Y, const QMat *W, const float *X, int n, void (*after)(void *ctx, int r0, int r1),
                      void *after_ctx)
{
    if (n <= 0 || W->rows <= 0) return;
    if ((unsigned)W->type >= DT_COUNT || W->cols <= 0) {
        ref_then(Y, W, X, n, after, after_ctx);
        return;
    }
    Job j = {.ops = k->ops, .a = {.W = W, .Y = Y, .X = X, .n = n}, .X_in = X, .after = after, .after_ctx = after_ctx};
    ActQ A;
    int quant = dtype_is_block(W->type);
    size_t tile = k->ops->tile_bytes ? k->ops->tile_bytes(dtype_base(W->type), n, W->cols) : 0;
    if (tile) {
        j.Xt = scratch(k, tile);
        if (!j.Xt) {
            ref_then(Y, W, X, n, after, after_ctx);
            return;
        }
        pool_run(k->pool, kern_tile_groups(n), pack_task, &j);
        j.a = (MMArgs){.W = W, .Y = Y, .Xt = j.Xt, .n = n};
        quant = 0;
    } else if (quant) {
        /* from KERN_TILE_MIN_N tokens on, q and d are padded to a multiple of
         * 16 tokens, the padding zero: AMX tiles take 16 tokens at a time */
        int n16 = n >= KERN_TILE_MIN_N ? (n + 15) & ~15 : n;
        char *s = scratch(k, kern_actq_layout(NULL, NULL, n, n16, W->cols));
        if (!s) { /* out of memory: the slow path needs none */
            ref_then(Y, W, X, n, after, after_ctx);
            return;
        }
        kern_actq_layout(&A, s, n, n16, W->cols);
        j.A = &A;
        j.a.A = &A;
    } else if (W->in_scale) {
        j.X_scaled = scratch(k, (size_t)n * W->cols * sizeof(float));
        if (!j.X_scaled) {
            ref_then(Y, W, X, n, after, after_ctx);
            return;
        }
        j.a.X = j.X_scaled;
    }
    if (!tile && (quant || W->in_scale)) {
        if (n >= 8) pool_run(k->pool, n, prep_task, &j);
        else
            for (int t = 0; t < n; t++) prep_task(&j, t);
    }
    /* prefill: ~8 tasks per thread balance a noisy machine; multiples of 16
     * rows keep the backends on their fast multi-row tiles */
    int nt = k->n_threads, rows = W->rows;
    if ((size_t)rows * W->cols * n <= (1u << 16)) { /* a LoRA-sized product: waking the pool costs more */
        j.chunk = rows;
        mm_task(&j, 0);
        return;
    }
    if (n < KERN_TILE_MIN_N) {
        Region reg[MAX_REGIONS];
        j.reg = reg;
        j.n_reg = kern_regions_init(reg, rows, nt);
        pool_run(k->pool, j.n_reg, region_task, &j);
        return;
    }
    int chunk = kern_row_chunk(rows, nt, tile ? 32 : 16); /* tiles: pairs of 16-row panels */
    j.chunk = chunk;
    pool_run(k->pool, (rows + chunk - 1) / chunk, mm_task, &j);
}

void kern_matmul_local(const Kern *k, float *Y, const QMat *W, const float *X, int n)
{
    if (n <= 0 || W->rows <= 0) return;
    if ((unsigned)W->type > DT_BF16 || W->in_scale || W->cols <= 0) {
        kern_matmul_ref(Y, W, X, n);
        return;
    }
    MMArgs a = {.W = W, .Y = Y, .X = X, .n = n};
    k->ops->mm[W->type](&a, 0, W->rows);
}

void kern_axpy_f16(const Kern *k, float *y, float alpha, const uint16_t *h, int n)
{
    k->ops->axpy_f16(y, alpha, h, n);
}

void kern_attn_f16(const Kern *k, float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                   const uint16_t *V, size_t stride, int n)
{
    if (!k->ops->attn_f16 || k->ops->attn_f16(acc, m, l, q, G, hd, K, V, stride, n))
        kern_attn_f16_ref(acc, m, l, q, G, hd, K, V, stride, n);
}

int kern_attn_prefill_f16(const Kern *k, float *acc, float *m, float *l, const float *Q, int nq, int hd,
                          const uint16_t *K, const uint16_t *V, size_t stride, const int *vis)
{
    return k->ops->attn_prefill_f16 ? k->ops->attn_prefill_f16(acc, m, l, Q, nq, hd, K, V, stride, vis) : -1;
}

void kern_silu_mul(const Kern *k, float *y, const float *g, const float *u, size_t n)
{
    if (k->ops->silu_mul) k->ops->silu_mul(y, g, u, n);
    else kern_silu_mul_ref(y, g, u, n);
}

typedef struct BwJob {
    const KernOps *ops;
    const float *buf;
    size_t n, per_task;
    float sums[256];
} BwJob;

static void bw_task(void *ctx, int t)
{
    BwJob *b = ctx;
    size_t lo = (size_t)t * b->per_task, hi = lo + b->per_task;
    if (hi > b->n) hi = b->n;
    b->sums[t] = lo < hi ? b->ops->read_sum(b->buf + lo, hi - lo) : 0.0f;
}

double kern_read_bandwidth(Kern *k, size_t bytes, int reps)
{
    size_t n = bytes / sizeof(float);
    if (n < 4096 || reps < 1) return -1;
    float *buf = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
    if (!buf) return -1;
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    BwJob b = {.ops = k->ops, .buf = buf, .n = n};
    int tasks = k->n_threads * 16 > 256 ? 256 : k->n_threads * 16;
    b.per_task = ((n + tasks - 1) / tasks + 15) & ~(size_t)15;
    double best = 0;
    volatile float sink = 0;
    for (int r = 0; r < reps; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pool_run(k->pool, tasks, bw_task, &b);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        for (int t = 0; t < tasks; t++) sink += b.sums[t];
        double gbs = (double)n * sizeof(float) / s * 1e-9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    free(buf);
    return best;
}
