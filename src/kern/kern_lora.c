/* kern_lora.c - kern_matmul_lora (kern.h): a base product and the LoRA
 * products that add to its rows.
 *
 * Decode (fewer than KERN_TILE_MIN_N tokens): ONE pool job, one task per
 * thread. Task t first computes its share of the A products (t = A x; all
 * products' A rows in a row, split evenly), then walks W's rows as
 * kern_matmul does (its own region from the front, then the others' from
 * their backs), and after each piece of W's rows adds, for every product
 * overlapping the piece, B's matching rows times t (the backend's lora_b).
 * A piece needs the other tasks' A rows only after its own W rows: they are
 * almost always there. When they are not (a thread was preempted), the
 * piece does not wait: it leaves its LoRA part to the caller, who runs the
 * left-over ranges after the job, when every A is done.
 *
 * Prefill: a pool job computes the A products, one task per chunk of A_TOK
 * tokens of a product; then kern_matmul_then computes W's product through
 * its tiles and adds each piece's LoRA part right after the piece, while
 * those rows of Y are still in cache. */
#include "kern/kern.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kern/kern_impl.h"
#include "kern/pool.h"
#include "util/half.h"

enum { A_TOK = 16 }; /* tokens per A task: prefill-sized batches spread over the pool */
_Static_assert((int)KERN_TILE_MIN_N <= (int)A_TOK, "a decode batch must be one A chunk");

/* One LoRA product's buffers inside the Kern's scratch. */
typedef struct Seg {
    const KernLora *lo;
    const float *x;   /* (n_tok, cols): its tokens' activations (X itself when tok is 0 .. n-1) */
    float *t;         /* (n_tok, r) = A x */
    float *u;         /* (n_tok, r1 - r0) = B t, each piece filling its rows (unless u_block) */
    int n_chunks;     /* A tasks: ceil(n_tok / A_TOK) */
    atomic_int done;  /* A rows finished, summed over the chunks: r * n_chunks when t is complete */
} Seg;

typedef struct LJob {
    const KernOps *ops;
    MMArgs w;          /* the base product */
    const float *X_in; /* the caller's activations */
    float *X_scaled;   /* in_scale applied (float W with in_scale) */
    ActQ *A;           /* quantized activations (block-type W) */
    Seg *seg;
    int n_seg;
    int n_a;           /* A tasks: the segments' chunks in a row */
    Region *reg;       /* decode: W's rows in n_reg regions, one task each */
    int n_reg;
    int a_rows;        /* decode: the A rows of all products, split evenly over the regions' tasks */
    int *left;         /* (r0, r1) pairs: row ranges whose LoRA part is left to the caller */
    atomic_int n_left;
} LJob;

static int is_float(DType t) { return t == DT_F32 || t == DT_F16 || t == DT_BF16; }

/* Element (r, c) of a float matrix (f32, f16, bf16; any 2-byte alignment)
 * or of a DT_Q8 one. */
static float elem(const QMat *M, int r, int c)
{
    if (M->type == DT_Q8) {
        size_t nb = ((size_t)M->cols + QBLOCK - 1) / QBLOCK;
        return (float)((const int8_t *)M->data)[r * nb * QBLOCK + c] * f16_to_f32(M->scales[r * nb + c / QBLOCK]);
    }
    size_t i = (size_t)r * M->cols + c;
    if (M->type == DT_F32) {
        float f;
        memcpy(&f, (const char *)M->data + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)M->data + 2 * i, 2);
    return M->type == DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

/* Element (j, k) of a LoRA B of rank r in either layout of kern.h. */
static float b_elem(const QMat *B, int r, int j, int k)
{
    return B->type == DT_Q8 ? elem(B, j / QBLOCK * r + k, j % QBLOCK) : elem(B, j, k);
}

void kern_lora_b_row(float *out, const QMat *B, int rank, int j)
{
    for (int k = 0; k < rank; k++) out[k] = b_elem(B, rank, j, k);
}

/* y = dora * (y + scale * u) or y + scale * u, as the contract in kern.h. */
static inline float lora_out(float y, float u, const KernLora *lo, int j)
{
    float v = y + lo->scale * u;
    return lo->dora ? lo->dora[j] * v : v;
}

void kern_matmul_lora_ref(float *Y, const QMat *W, const float *X, int n, const KernLora *lo, int n_lo)
{
    kern_matmul_ref(Y, W, X, n);
    for (int l = 0; l < n_lo; l++) {
        const KernLora *L = &lo[l];
        int r = L->A->rows;
        float t[KERN_LORA_MAX_RANK];
        for (int i = 0; i < L->n_tok; i++) {
            const float *x = X + (size_t)L->tok[i] * W->cols;
            float *y = Y + (size_t)L->tok[i] * W->rows;
            for (int k = 0; k < r; k++) {
                double s = 0;
                for (int c = 0; c < W->cols; c++) s += (double)elem(L->A, k, c) * x[c];
                t[k] = (float)s;
            }
            for (int j = L->r0; j < L->r1; j++) {
                double s = 0;
                for (int k = 0; k < r; k++) s += (double)b_elem(L->B, r, j - L->r0, k) * t[k];
                y[j] = lora_out(y[j], (float)s, L, j - L->r0);
            }
        }
    }
}

static void prep_token(LJob *j, int t) { kern_prep_token(j->ops, j->A, j->X_scaled, j->w.W, j->X_in, t); }

/* Rows [k0, k1) of t = A x for the tokens of chunk c of segment s. */
static void a_rows(LJob *j, Seg *s, int c, int k0, int k1)
{
    const KernLora *lo = s->lo;
    int r = lo->A->rows, t0 = c * A_TOK, nt = lo->n_tok - t0 < A_TOK ? lo->n_tok - t0 : A_TOK;
    if (lo->A->type == DT_Q8) {
        j->ops->lora8_a(s->t + (size_t)t0 * r, lo->A, k0, k1, s->x + (size_t)t0 * lo->A->cols, nt);
    } else {
        MMArgs a = {.W = lo->A, .Y = s->t + (size_t)t0 * r, .X = s->x + (size_t)t0 * lo->A->cols, .n = nt};
        j->ops->mm[lo->A->type](&a, k0, k1);
    }
    atomic_fetch_add_explicit(&s->done, k1 - k0, memory_order_release);
}

static void a_task(LJob *j, int t)
{
    Seg *s = j->seg;
    while (t >= s->n_chunks) t -= s++->n_chunks;
    a_rows(j, s, t, 0, s->lo->A->rows);
}

enum { UB_FLOATS = 8192 }; /* lora_rows' on-stack u block (32 KB, L1-sized) */

/* Y's rows [a, b) of segment s's tokens += scale * u (u: n_tok rows of ldu,
 * column 0 = row a), through DoRA's factors when the product has them. */
static void add_u(LJob *j, const Seg *s, int a, int b, const float *u, int ldu)
{
    const KernLora *lo = s->lo;
    float sc = lo->scale;
    for (int i = 0; i < lo->n_tok; i++) {
        float *restrict y = j->w.Y + (size_t)lo->tok[i] * j->w.W->rows + a;
        const float *restrict ui = u + (size_t)i * ldu;
        if (lo->dora) {
            const float *restrict d = lo->dora + (a - lo->r0);
#pragma omp simd
            for (int c = 0; c < b - a; c++) y[c] = d[c] * (y[c] + sc * ui[c]);
        } else {
#pragma omp simd
            for (int c = 0; c < b - a; c++) y[c] += sc * ui[c];
        }
    }
}

/* Whether this backend has a kernel for B's up-projection (else, for a
 * float B, the mm kernel serves), and that kernel on rows [j0, j1). */
static int has_b_kernel(const KernOps *ops, const QMat *B) { return B->type == DT_Q8 || ops->lora_b; }
static void b_kernel(const KernOps *ops, float *u, int ldu, const KernLora *lo, int j0, int j1, const float *t, int n)
{
    if (lo->B->type == DT_Q8)
        ops->lora8_b(u, ldu, lo->B, lo->A->rows, j0, j1, t, n);
    else
        ops->lora_b(u, ldu, lo->B, j0, j1, t, n);
}

/* Rows of B per block of lora_rows' on-stack u for n tokens, or 0 when u
 * goes to the product's buffer (no B kernel, few or very many tokens). */
static int u_block(const KernOps *ops, const QMat *B, int n)
{
    if (!has_b_kernel(ops, B) || n < LORA_B_BATCH) return 0;
    int blk = (UB_FLOATS / n) & ~15;
    return blk >= 16 ? blk : 0;
}

/* The LoRA part of W's rows [r0, r1): B's matching rows times t, added. A
 * batch goes in blocks of rows whose u fits an L1-sized buffer, so u is not
 * written out to memory and read back. */
static void lora_rows(LJob *j, int r0, int r1)
{
    for (int si = 0; si < j->n_seg; si++) {
        Seg *s = &j->seg[si];
        const KernLora *lo = s->lo;
        int a = r0 > lo->r0 ? r0 : lo->r0, b = r1 < lo->r1 ? r1 : lo->r1, br = lo->r1 - lo->r0, n = lo->n_tok;
        if (a >= b) continue;
        int blk = u_block(j->ops, lo->B, n);
        if (blk) {
            float ub[UB_FLOATS];
            for (int c = a; c < b; c += blk) {
                int e = b - c < blk ? b : c + blk;
                b_kernel(j->ops, ub, e - c, lo, c - lo->r0, e - lo->r0, s->t, n);
                add_u(j, s, c, e, ub, e - c);
            }
            continue;
        }
        if (has_b_kernel(j->ops, lo->B)) {
            b_kernel(j->ops, s->u + (a - lo->r0), br, lo, a - lo->r0, b - lo->r0, s->t, n);
        } else {
            MMArgs m = {.W = lo->B, .Y = s->u, .X = s->t, .n = n};
            j->ops->mm[lo->B->type](&m, a - lo->r0, b - lo->r0);
        }
        add_u(j, s, a, b, s->u + (a - lo->r0), br);
    }
}

/* 1 if every A product that W's rows [r0, r1) need is done. */
static int a_ready(LJob *j, int r0, int r1)
{
    for (int si = 0; si < j->n_seg; si++) {
        Seg *s = &j->seg[si];
        if (r0 < s->lo->r1 && s->lo->r0 < r1 &&
            atomic_load_explicit(&s->done, memory_order_acquire) < s->lo->A->rows * s->n_chunks)
            return 0;
    }
    return 1;
}

/* Decode: W's rows [r0, r1) and their LoRA part, or, when an A product
 * they need is not finished, the range left to the caller. */
static void rows_piece(void *ctx, int r0, int r1)
{
    LJob *j = ctx;
    j->ops->mm[j->w.W->type](&j->w, r0, r1);
    if (!j->n_seg) return;
    if (a_ready(j, r0, r1)) {
        lora_rows(j, r0, r1);
    } else {
        int i = atomic_fetch_add_explicit(&j->n_left, 1, memory_order_relaxed);
        j->left[2 * i] = r0;
        j->left[2 * i + 1] = r1;
    }
}

static void a_task_job(void *ctx, int t) { a_task(ctx, t); }

/* Prefill: kern_matmul_then's callback once W's rows [r0, r1) are in Y
 * (every A is done). */
static void after_rows(void *ctx, int r0, int r1) { lora_rows(ctx, r0, r1); }

/* Decode: task t computes its share of the A rows (all products' rows in a
 * row, split evenly), then walks W's rows from region t on. */
static void region_task(void *ctx, int t)
{
    LJob *j = ctx;
    int k0 = (int)((long)j->a_rows * t / j->n_reg), k1 = (int)((long)j->a_rows * (t + 1) / j->n_reg);
    for (int si = 0, base = 0; si < j->n_seg && base < k1; base += j->seg[si++].lo->A->rows) {
        int r = j->seg[si].lo->A->rows, a = k0 > base ? k0 - base : 0, b = k1 < base + r ? k1 - base : r;
        if (a < b) a_rows(j, &j->seg[si], 0, a, b);
    }
    kern_regions_walk(j->reg, j->n_reg, t, j->w.W->rows, rows_piece, j);
}

static size_t up64(size_t b) { return (b + 63) & ~(size_t)63; }

void kern_matmul_lora(Kern *k, float *Y, const QMat *W, const float *X, int n, const KernLora *lo, int n_lo)
{
    if (n <= 0 || W->rows <= 0) return;
    int ok = (unsigned)W->type < DT_COUNT && W->cols > 0;
    for (int l = 0; l < n_lo && ok; l++)
        ok = (is_float(lo[l].A->type) || lo[l].A->type == DT_Q8) && (is_float(lo[l].B->type) || lo[l].B->type == DT_Q8) &&
             !lo[l].A->in_scale && !lo[l].B->in_scale &&
             lo[l].A->rows >= 1 && lo[l].A->rows <= KERN_LORA_MAX_RANK;
    const KernOps *ops = kern_ops(k);
    if (!ok) {
        kern_matmul_lora_ref(Y, W, X, n, lo, n_lo);
        return;
    }
    /* prefill (from KERN_TILE_MIN_N tokens on): kern_matmul pads and packs
     * the activations for tiles in the scratch, so the LoRA buffers go to
     * the heap; decode: W's rows in regions, as kern_matmul (n <
     * KERN_TILE_MIN_N <= A_TOK: one A chunk per product) */
    int prefill = n >= KERN_TILE_MIN_N;
    int quant = !prefill && dtype_is_block(W->type);
    int rows = W->rows, small = (size_t)rows * W->cols * n <= (1u << 16); /* not worth waking the pool */
    int n_units = (rows + REGION_ROWS - 1) / REGION_ROWS; /* decode: at most one left-over piece per unit */
    /* the Seg table, the left-over list, the activations for W, then per product t, u, gathered x */
    size_t need = up64((size_t)n_lo * sizeof(Seg)) + up64((size_t)n_units * 2 * sizeof(int)), act = need;
    size_t actq = quant ? kern_actq_layout(NULL, NULL, n, n, W->cols) : 0;
    need += quant ? actq : W->in_scale && !prefill ? up64((size_t)n * W->cols * sizeof(float)) : 0;
    for (int l = 0; l < n_lo; l++) {
        int ident = lo[l].n_tok == n && lo[l].tok[0] == 0 && lo[l].tok[n - 1] == n - 1; /* increasing + distinct */
        int nu = u_block(ops, lo[l].B, lo[l].n_tok) ? 0 : lo[l].r1 - lo[l].r0; /* u in the buffer */
        need += up64((size_t)lo[l].n_tok * (lo[l].A->rows + nu) * sizeof(float));
        if (!ident) need += up64((size_t)lo[l].n_tok * W->cols * sizeof(float));
    }
    char *s = prefill ? aligned_alloc(64, need) : kern_scratch(k, need);
    if (!s) {
        kern_matmul_lora_ref(Y, W, X, n, lo, n_lo);
        return;
    }
    LJob j = {.ops = ops, .w = {.W = W, .Y = Y, .X = X, .n = n}, .X_in = X, .seg = (Seg *)s, .n_seg = n_lo,
              .left = (int *)(s + up64((size_t)n_lo * sizeof(Seg)))};
    ActQ A;
    if (quant) {
        kern_actq_layout(&A, s + act, n, n, W->cols); /* the layout kern_matmul uses */
        j.A = &A;
        j.w.A = &A;
        act += actq;
    } else if (W->in_scale && !prefill) {
        j.X_scaled = (float *)(s + act);
        j.w.X = j.X_scaled;
        act += up64((size_t)n * W->cols * sizeof(float));
    }
    for (int l = 0; l < n_lo; l++) {
        const KernLora *L = &lo[l];
        Seg *g = &j.seg[l];
        int ident = L->n_tok == n && L->tok[0] == 0 && L->tok[n - 1] == n - 1;
        g->lo = L;
        g->t = (float *)(s + act);
        g->u = g->t + (size_t)L->n_tok * L->A->rows;
        act += up64((size_t)L->n_tok * (L->A->rows + (u_block(ops, L->B, L->n_tok) ? 0 : L->r1 - L->r0)) * sizeof(float));
        if (ident) {
            g->x = X;
        } else {
            float *xg = (float *)(s + act);
            for (int i = 0; i < L->n_tok; i++)
                memcpy(xg + (size_t)i * W->cols, X + (size_t)L->tok[i] * W->cols, (size_t)W->cols * sizeof(float));
            g->x = xg;
            act += up64((size_t)L->n_tok * W->cols * sizeof(float));
        }
        g->n_chunks = L->n_tok > 0 ? (L->n_tok + A_TOK - 1) / A_TOK : 0;
        atomic_init(&g->done, 0);
        j.n_a += g->n_chunks;
    }
    if (prefill) { /* every A first, then W's product with the LoRA part after each piece */
        if (j.n_a > 1) pool_run(kern_pool(k), j.n_a, a_task_job, &j);
        else if (j.n_a) a_task(&j, 0);
        kern_matmul_then(k, Y, W, X, n, after_rows, &j);
        free(s);
        return;
    }
    if (quant || j.X_scaled) /* W's activations (a few tokens) */
        for (int t = 0; t < n; t++) prep_token(&j, t);
    if (small) { /* on this thread alone: the A products first */
        for (int t = 0; t < j.n_a; t++) a_task(&j, t);
        rows_piece(&j, 0, rows);
        return;
    }
    Region reg[MAX_REGIONS];
    j.reg = reg;
    j.n_reg = kern_regions_init(reg, rows, kern_threads(k));
    for (int l = 0; l < n_lo; l++) j.a_rows += lo[l].A->rows;
    pool_run(kern_pool(k), j.n_reg, region_task, &j);
    for (int i = 0; i < atomic_load(&j.n_left); i++) /* every A is done now */
        lora_rows(&j, j.left[2 * i], j.left[2 * i + 1]);
}
