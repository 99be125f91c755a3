/* quantize.c - the base weights into the file's type, one group of
 * matrices at a time as the writer streams them (qmodel_plan, qfill_group):
 * plain conversion for f32/f16/bf16; block types (qrow.c; a recipe gives
 * each tensor role its own) with round-to-nearest or searched block scales; and, with calibration
 * statistics, a choice per matrix among candidates fitted on the fitting
 * prompts' inputs: the uncalibrated quantization, plain round-to-nearest,
 * block scales searched with the input columns' importance (mean x^2) as
 * weights, and GPTQ's error feedback (gptq.c) on top of those. Each is
 * judged by how far its products with the held-out prompts' inputs are from
 * the unquantized ones (through the real kernels); the closest is kept, so
 * a matrix never ends up further than round-to-nearest on held-out inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compile/compile_int.h"
#include "compile/gptq.h"
#include "kern/quant.h"

/* Registers p (malloc'd) as one of q's buffers; 0, or -1 if out of memory. */
static int qkeep(QModel *q, void *p)
{
    if (q->n_bufs == q->cap_bufs) {
        int cap = q->cap_bufs ? 2 * q->cap_bufs : 64;
        void **nb = realloc(q->bufs, (size_t)cap * sizeof *nb);
        if (!nb) return -1;
        q->bufs = nb;
        q->cap_bufs = cap;
    }
    q->bufs[q->n_bufs++] = p;
    return 0;
}

void *qalloc(QModel *q, size_t bytes)
{
    /* 64-byte aligned like the file, so the kernels see what a reader sees */
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p && qkeep(q, p)) {
        free(p);
        return NULL;
    }
    return p;
}

int qmodel_take(QModel *q, QModel *from)
{
    int i = 0;
    while (i < from->n_bufs && !qkeep(q, from->bufs[i])) i++;
    if (i < from->n_bufs) /* what stays from's */
        memmove(from->bufs, from->bufs + i, (size_t)(from->n_bufs - i) * sizeof *from->bufs);
    from->n_bufs -= i;
    return from->n_bufs ? -1 : 0;
}

/* Frees q's buffers, keeping its model. */
static void qbufs_free(QModel *q)
{
    for (int i = 0; i < q->n_bufs; i++) free(q->bufs[i]);
    free(q->bufs);
    q->bufs = NULL;
    q->n_bufs = q->cap_bufs = 0;
}

void qmodel_free(QModel *q)
{
    if (!q) return;
    qbufs_free(q);
    free(q->m.layers);
    memset(q, 0, sizeof *q);
}

/* GPTQ's damping, a fraction of the mean diagonal of the inputs' second
 * moments: 0.1 rather than GPTQ's usual 0.01, since a few hundred
 * calibration rows make H a noisy estimate */
#define GPTQ_DAMP 0.1
#define GPTQ_MAX_COLS 4096 /* wider inputs: the O(cols^3) factor costs too much */
#define QUANT_ROWS 64      /* rows per task of the parallel quantization */
/* A candidate replaces the one chosen so far only when its held-out error
 * is this fraction lower: a few hundred held-out rows make the error a noisy
 * measure, and a smaller gain is as likely noise as not */
#define CALIB_MARGIN 0.05

/* How the rows of one matrix are quantized. */
typedef struct RowJob {
    void *data;
    uint16_t *scales;
    DType t;
    QRound round;
    const QMat *src;
    const float *w;    /* (cols) importance weights of the block-scale search, or NULL */
    const float *U;    /* (cols, cols) GPTQ factor, or NULL */
    _Atomic int failed; /* set by a task out of memory */
} RowJob;

static void row_task(void *ctx, int task)
{
    RowJob *j = ctx;
    int cols = j->src->cols, r0 = task * QUANT_ROWS, r1 = r0 + QUANT_ROWS;
    if (r1 > j->src->rows) r1 = j->src->rows;
    if (j->U) {
        if (gptq_rows(j->data, j->scales, j->t, j->round, j->src, r0, r1, j->U, j->w)) j->failed = 1;
        return;
    }
    size_t rb = qmat_data_bytes(j->t, 1, cols), sb = qmat_scale_bytes(j->t, 1, cols) / 2;
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) {
        j->failed = 1;
        return;
    }
    for (int r = r0; r < r1; r++) {
        qmat_row_f32(row, j->src, r);
        char *d = (char *)j->data + (size_t)r * rb;
        switch (j->t) {
        case DT_F32: memcpy(d, row, (size_t)cols * 4); break;
        case DT_F16: quant_f32_to_f16((uint16_t *)d, row, (size_t)cols); break;
        case DT_BF16: quant_f32_to_bf16((uint16_t *)d, row, (size_t)cols); break;
        default: qrow_quantize(d, j->scales + (size_t)r * sb, j->t, j->round, row, cols, j->w, NULL); break;
        }
    }
    free(row);
}

/* Quantizes all rows of j->src as j says, split over k's threads. */
static int quant_rows(Kern *k, RowJob *j, Err *e)
{
    j->failed = 0;
    kern_parallel(k, (j->src->rows + QUANT_ROWS - 1) / QUANT_ROWS, row_task, j);
    return j->failed ? err_set(e, "out of memory quantizing a %d x %d matrix", j->src->rows, j->src->cols) : 0;
}

/* Per-column mean x^2 over the splits in mask (bit h: split h). */
static void col_msq(const LinStats *st, int mask, float *msq)
{
    long long n = 0;
    for (int h = 0; h < 2; h++) n += mask >> h & 1 ? st->s[h].count : 0;
    for (int j = 0; j < st->cols; j++) {
        double q = 0;
        for (int h = 0; h < 2; h++)
            if (mask >> h & 1) q += st->s[h].sum_sq[j];
        msq[j] = n ? (float)(q / n) + 1e-12f : 1.0f;
    }
}

/* H = mean of x x^T over the kept rows of the splits in mask (cols x cols). */
static void gram(const LinStats *st, int mask, double *H)
{
    int c = st->cols, n = 0;
    memset(H, 0, (size_t)c * c * sizeof *H);
    for (int h = 0; h < 2; h++) {
        if (!(mask >> h & 1)) continue;
        for (int r = 0; r < st->s[h].n_x; r++, n++) {
            const float *x = st->s[h].x + (size_t)r * c;
            for (int i = 0; i < c; i++) {
                double xi = x[i], *hi = H + (size_t)i * c;
#pragma omp simd
                for (int j = 0; j <= i; j++) hi[j] += xi * x[j];
            }
        }
    }
    for (int i = 0; i < c; i++)
        for (int j = 0; j <= i; j++) H[(size_t)j * c + i] = H[(size_t)i * c + j] /= n ? n : 1;
}

/* The candidates of the calibrated choice, in order of preference on ties:
 * the uncalibrated quantization (cfg->round, no weights), round-to-nearest,
 * the block-scale search weighted by importance (only for matrices GPTQ
 * cannot take), then GPTQ (with the weights when the search uses them). */
enum { C_PLAIN, C_NEAREST, C_WEIGHTED, C_GPTQ, C_COUNT };

/* Scratch of one group's choice. */
typedef struct Search {
    int cols, fit_mask, eval_h[2];
    float *msq;            /* (cols) importance: mean x^2 of the fitting split */
    float *U;              /* (cols, cols) GPTQ factor, or NULL */
} Search;

/* Sum of the squared distances between Yref[x] (the unquantized products
 * with the kept rows of split S->eval_h[x]) and V's. */
static double cand_error(const Search *S, const LinStats *st, const QMat *V, float *const *Yref, float *y, Kern *k)
{
    double err = 0;
    for (int x = 0; x < 2; x++) {
        int h = S->eval_h[x];
        if (h < 0 || !st->s[h].n_x) continue;
        const LinSplit *sp = &st->s[h];
        kern_matmul(k, y, V, sp->x, sp->n_x);
        for (size_t r = 0; r < (size_t)sp->n_x * V->rows; r++) {
            double d = (double)Yref[x][r] - y[r];
            err += d * d;
        }
    }
    return err;
}

/* The calibrated choice for matrix W (input statistics st) into dst, whose
 * buffers are allocated; counts the choice in ch. */
static int matrix_calibrated(QMat *dst, const QMat *W, const LinStats *st, const Search *S, const QuantCfg *cfg, Kern *k,
                             QuantChoices *ch, Err *e)
{
    int rc = 0, nx = st->s[0].n_x > st->s[1].n_x ? st->s[0].n_x : st->s[1].n_x;
    DType t = dst->type;
    size_t db = qmat_data_bytes(t, W->rows, W->cols), sb = qmat_scale_bytes(t, W->rows, W->cols);
    void *data = malloc(db);
    uint16_t *scales = malloc(sb);
    float *y = malloc((size_t)(nx ? nx : 1) * W->rows * sizeof *y), *Yref[2] = {NULL, NULL};
    int bad = !data || !scales || !y;
    for (int x = 0; x < 2 && !bad; x++) {
        int h = S->eval_h[x];
        if (h < 0 || !st->s[h].n_x) continue;
        if (!(Yref[x] = malloc((size_t)st->s[h].n_x * W->rows * sizeof(float)))) bad = 1;
        else kern_matmul(k, Yref[x], W, st->s[h].x, st->s[h].n_x);
    }
    if (bad) {
        rc = err_set(e, "out of memory searching the quantization of a %d x %d matrix", W->rows, W->cols);
        goto out;
    }
    int search = cfg->round == QROUND_SEARCH, best = -1;
    double best_err = INFINITY;
    for (int c = 0; c < C_COUNT; c++) {
        /* the weighted search alone only where GPTQ (which runs it inside) cannot: a third full
         * quantization of the matrix that rarely won there kept calibrated compiles 3x plain */
        if ((c == C_NEAREST && !search) ||
            (c == C_WEIGHTED && (!search || !(cfg->methods & QCAL_WEIGHTED) || S->U)) || (c == C_GPTQ && !S->U))
            continue;
        RowJob j = {data, scales, t, c == C_NEAREST ? QROUND_NEAREST : cfg->round, W,
                    c == C_WEIGHTED || (c == C_GPTQ && search && (cfg->methods & QCAL_WEIGHTED)) ? S->msq : NULL,
                    c == C_GPTQ ? S->U : NULL, 0};
        if ((rc = quant_rows(k, &j, e))) goto out;
        QMat V = {.type = t, .rows = W->rows, .cols = W->cols, .data = data, .scales = scales};
        double err = cand_error(S, st, &V, Yref, y, k);
        if (err < best_err * (c == C_PLAIN ? 1 : 1 - CALIB_MARGIN)) {
            best_err = err, best = c;
            memcpy((void *)dst->data, data, db);
            memcpy((void *)dst->scales, scales, sb);
        }
    }
    if (ch) {
        ch->matrices++;
        ch->plain += best == C_PLAIN;
        ch->nearest += best == C_NEAREST;
        ch->weighted += best == C_WEIGHTED;
        ch->gptq += best == C_GPTQ;
    }
out:
    free(data), free(scales), free(y), free(Yref[0]), free(Yref[1]);
    return rc;
}

/* The calibrated choice for each of the n matrices src[i] that read the
 * input of statistics st, into dst[i] (allocated): the importance and the
 * GPTQ factor come from the fitting split, the choice from the held-out
 * one (both splits for both when there is no held-out split). */
static int group_calibrated(const QMat *const *src, QMat *const *dst, int n, const LinStats *st, const QuantCfg *cfg,
                            Kern *k, QuantChoices *ch, Err *e)
{
    int cols = st->cols, holdout = st->s[1].n_x > 0;
    Search S = {.cols = cols, .fit_mask = holdout ? 1 : 3, .eval_h = {holdout ? 1 : 0, holdout ? -1 : 1}};
    double *H = NULL;
    int rc = 0;
    if (!(S.msq = malloc((size_t)cols * sizeof *S.msq))) return err_set(e, "out of memory");
    col_msq(st, S.fit_mask, S.msq);
    int n_fit = st->s[0].n_x + (holdout ? 0 : st->s[1].n_x);
    int gptq_ok = (cfg->methods & QCAL_GPTQ) && cols <= GPTQ_MAX_COLS && n_fit > 0;
    for (int i = 0; i < n; i++) gptq_ok &= gptq_supports(dst[i]->type);
    if (gptq_ok) {
        H = malloc((size_t)cols * cols * sizeof *H);
        S.U = malloc((size_t)cols * cols * sizeof *S.U);
        if (!H || !S.U) {
            rc = err_set(e, "out of memory for GPTQ on a %d-column matrix", cols);
            goto out;
        }
        gram(st, S.fit_mask, H);
        if (qrow_gptq_factor(S.U, H, cols, GPTQ_DAMP)) { /* inputs that never vary: no GPTQ for this group */
            free(S.U);
            S.U = NULL;
        }
        free(H);
        H = NULL;
    }
    for (int i = 0; i < n && !rc; i++) rc = matrix_calibrated(dst[i], src[i], st, &S, cfg, k, ch, e);
out:
    free(H), free(S.msq), free(S.U);
    return rc;
}

/* Quantizes the n matrices src[i] into dst[i] (each in the type the plan
 * gave it) with buffers from q: calibrated when st has kept rows and every
 * type is a block type. */
static int group_quant(QModel *q, const QMat *const *src, QMat *const *dst, int n, const LinStats *st,
                       const QuantCfg *cfg, Kern *k, QuantChoices *ch, Err *e)
{
    for (int i = 0; i < n; i++) {
        const QMat *W = src[i];
        DType t = dst[i]->type;
        size_t db = qmat_data_bytes(t, W->rows, W->cols), sb = qmat_scale_bytes(t, W->rows, W->cols);
        void *data = qalloc(q, db);
        uint16_t *scales = sb ? qalloc(q, sb) : NULL;
        if (!data || (sb && !scales)) return err_set(e, "out of memory quantizing a %d x %d matrix", W->rows, W->cols);
        *dst[i] = (QMat){.type = t, .rows = W->rows, .cols = W->cols, .data = data, .scales = scales};
    }
    int block = 1;
    for (int i = 0; i < n; i++) block &= dtype_is_block(dst[i]->type);
    if (block && st && (st->s[0].n_x || st->s[1].n_x) && cfg->methods)
        return group_calibrated(src, dst, n, st, cfg, k, ch, e);
    for (int i = 0; i < n; i++) {
        RowJob j = {(void *)dst[i]->data, (uint16_t *)dst[i]->scales, dst[i]->type, cfg->round, src[i], NULL, NULL, 0};
        if (quant_rows(k, &j, e)) return -1;
    }
    return 0;
}

/* The type of projection p (P_COUNT: the embedding or lm_head, as g says)
 * of layer l in group g under cfg: the tensor's --tensor-type type, else
 * the recipe's type for the role, else cfg->t. */
static DType plan_type(const QuantCfg *cfg, CompileGroup g, int p, int l, int n_layers)
{
    const TensorTypes *o = cfg->over;
    int t = !o || !o->layer ? 0 : g == CG_EMBED ? o->embed : g == CG_LM_HEAD ? o->lm_head : o->layer[(size_t)l * P_COUNT + p];
    if (t) return (DType)(t - 1);
    return recipe_type(cfg->recipe, g, p, l, n_layers, cfg->t);
}

int qmodel_plan(QModel *q, const Model *src, const QuantCfg *cfg, Err *e)
{
    memset(q, 0, sizeof *q);
    q->m = *src;
    q->m.layers = calloc((size_t)src->cfg.n_layers, sizeof *q->m.layers);
    if (!q->m.layers) return err_set(e, "out of memory");
    /* borrowed: the source's storage must not be freed through the copy */
    memset(&q->m.ckpt, 0, sizeof q->m.ckpt);
    q->m.floats = NULL;
    q->m.owned = NULL;
    q->m.n_owned = 0;
    q->m.file_map = NULL;
    q->m.duet = NULL;
    QMat *m = &q->m.embed;
    int nl = src->cfg.n_layers;
    *m = (QMat){.type = plan_type(cfg, CG_EMBED, P_COUNT, 0, nl), .rows = src->embed.rows, .cols = src->embed.cols};
    if (src->cfg.tie_embeddings) q->m.lm_head = q->m.embed;
    else q->m.lm_head = (QMat){.type = plan_type(cfg, CG_LM_HEAD, P_COUNT, 0, nl), .rows = src->lm_head.rows, .cols = src->lm_head.cols};
    for (int l = 0; l < src->cfg.n_layers; l++) {
        q->m.layers[l] = src->layers[l];
        for (int p = 0; p < P_COUNT; p++) {
            const QMat *W = &src->layers[l].w[p];
            q->m.layers[l].w[p] = (QMat){.type = plan_type(cfg, p <= P_O ? CG_ATTN : CG_MLP, p, l, nl), .rows = W->rows, .cols = W->cols};
        }
    }
    if ((dtype_is_block(cfg->t) || cfg->recipe || cfg->lora == QLORA_Q8) && qmodel_adapters(q, src, cfg, e)) {
        qmodel_free(q);
        return -1;
    }
    return 0;
}

/* Lets the kernel drop the pages of a mapped source matrix (the checkpoint
 * stays in the page cache; this process's resident size shrinks). */
static void drop_pages(const QMat *W)
{
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)W->data, b = a + qmat_data_bytes(W->type, W->rows, W->cols);
    a = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    b &= ~((uintptr_t)pg - 1);
    if (pg > 0 && b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

int qfill_group(QFill *f, QMat *const *qs, int n, Err *e)
{
    const Model *src = f->src;
    QModel *plan = f->plan;
    const QMat *s[3];
    const LinStats *st = NULL;
    QuantCfg cfg = *f->cfg;
    const CalibStats *stats = cfg.stats;
    if (n < 1 || n > 3) return err_set(e, "internal: a group of %d matrices", n);
    if (qs[0] == &plan->m.embed || qs[0] == &plan->m.lm_head) {
        int embed = qs[0] == &plan->m.embed;
        s[0] = embed ? &src->embed : &src->lm_head;
        cfg.t = qs[0]->type;
        /* the lm_head's statistics; a tied embedding (also the lookup
         * table, whose errors no lm_head statistic weighs) is never calibrated */
        if (stats && !(embed && src->cfg.tie_embeddings)) st = &stats->head;
        cfg.methods = cfg.head_methods;
    } else {
        ptrdiff_t l = ((const char *)qs[0] - (const char *)plan->m.layers) / (ptrdiff_t)sizeof(Layer);
        if (l < 0 || l >= src->cfg.n_layers) return err_set(e, "internal: a matrix outside the plan");
        ptrdiff_t p = qs[0] - plan->m.layers[l].w;
        if (p < 0 || p + n > P_COUNT) return err_set(e, "internal: a matrix outside the plan");
        for (int i = 0; i < n; i++) s[i] = &src->layers[l].w[p + i];
        cfg.t = qs[0]->type;
        if (stats) st = calib_input(stats, (int)l, (Proj)p);
    }
    QMat *dst[3];
    for (int i = 0; i < n; i++) dst[i] = qs[i];
    f->n_src = n;
    for (int i = 0; i < n; i++) f->srcs[i] = s[i], f->dsts[i] = qs[i];
    int rc = group_quant(&f->scratch, s, dst, n, st, &cfg, f->k, &f->ch, e);
    if (!rc && qs[0] == &plan->m.embed && src->cfg.tie_embeddings) plan->m.lm_head = plan->m.embed;
    return rc;
}

void qfill_release(QFill *f)
{
    qbufs_free(&f->scratch);
    for (int i = 0; i < f->n_src; i++) {
        if (f->drop_source) drop_pages(f->srcs[i]);
        f->dsts[i]->data = NULL;
        f->dsts[i]->scales = NULL;
        if (f->dsts[i] == &f->plan->m.embed && f->src->cfg.tie_embeddings) f->plan->m.lm_head = f->plan->m.embed;
    }
    f->n_src = 0;
}
