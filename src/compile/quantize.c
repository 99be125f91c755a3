/* quantize.c - the base weights into the file's type: plain conversion for
 * f32/f16/bf16; Q8/Q4 blocks (qrow.c) with round-to-nearest or searched
 * block scales; and, with calibration statistics, a calibrated choice per
 * group of projections that read one input (q/k/v, o, gate/up, down) and
 * for the lm_head: candidates combine AWQ's per-channel scales (s_j =
 * mean|x_j|^alpha folded into the weights, 1/s stored as the group's one
 * shared in_scale), block scales weighted by the columns' mean x^2, and
 * GPTQ's error compensation; each candidate is fitted on the fitting
 * prompts' inputs and judged by how far its products with the held-out
 * prompts' inputs are from the unquantized ones (through the real kernels),
 * and it replaces the uncalibrated quantization only if it is closer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compile/compile_int.h"
#include "kern/quant.h"

static void *qalloc(QModel *q, size_t bytes)
{
    if (q->n_bufs == q->cap_bufs) {
        int cap = q->cap_bufs ? 2 * q->cap_bufs : 64;
        void **nb = realloc(q->bufs, (size_t)cap * sizeof *nb);
        if (!nb) return NULL;
        q->bufs = nb;
        q->cap_bufs = cap;
    }
    /* 64-byte aligned like the file, so the kernels see what a reader sees */
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p) q->bufs[q->n_bufs++] = p;
    return p;
}

void qmodel_free(QModel *q)
{
    if (!q) return;
    for (int i = 0; i < q->n_bufs; i++) free(q->bufs[i]);
    free(q->bufs);
    free(q->m.layers);
    memset(q, 0, sizeof *q);
}

#define AWQ_STEPS 4        /* alpha in 0, 1/4 .. 1 */
/* GPTQ's damping, a fraction of the mean diagonal: its usual 0.01 and a
 * stronger 0.1 (few calibration rows make H a noisy estimate) */
static const double GPTQ_DAMP[2] = {0.01, 0.1};
#define GPTQ_MAX_COLS 4096 /* wider inputs: the O(cols^3) factor costs too much */
#define QUANT_ROWS 64      /* rows per task of the parallel quantization */

/* How the rows of one matrix are quantized. */
typedef struct RowJob {
    void *data;
    uint16_t *scales;
    DType t;
    QRound round;
    const QMat *src;
    const float *s;    /* (cols) column scales folded into the weights, or NULL */
    const float *w;    /* (cols) block-scale search weights, or NULL */
    const float *U;    /* (cols, cols) GPTQ factor, or NULL */
    _Atomic int *oom;  /* set by a task without memory for its row */
} RowJob;

static void row_task(void *ctx, int task)
{
    const RowJob *j = ctx;
    int cols = j->src->cols, r1 = (task + 1) * QUANT_ROWS;
    if (r1 > j->src->rows) r1 = j->src->rows;
    size_t rb = qmat_data_bytes(j->t, 1, cols), sb = qmat_scale_bytes(j->t, 1, cols) / 2;
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) {
        *j->oom = 1;
        return;
    }
    for (int r = task * QUANT_ROWS; r < r1; r++) {
        qmat_row_f32(row, j->src, r);
        if (j->s)
            for (int c = 0; c < cols; c++) row[c] *= j->s[c];
        char *d = (char *)j->data + (size_t)r * rb;
        switch (j->t) {
        case DT_F32: memcpy(d, row, (size_t)cols * 4); break;
        case DT_F16: quant_f32_to_f16((uint16_t *)d, row, (size_t)cols); break;
        case DT_BF16: quant_f32_to_bf16((uint16_t *)d, row, (size_t)cols); break;
        default: qrow_quantize(d, j->scales + (size_t)r * sb, j->t, j->round, row, cols, j->w, j->U); break;
        }
    }
    free(row);
}

/* Quantizes all rows of j->src as j says, split over k's threads.
 * 0, or -1 with *e set when a task had no memory for its row. */
static int quant_rows(Kern *k, const RowJob *j, Err *e)
{
    _Atomic int oom = 0;
    RowJob jj = *j;
    jj.oom = &oom;
    kern_parallel(k, (j->src->rows + QUANT_ROWS - 1) / QUANT_ROWS, row_task, &jj);
    return oom ? err_set(e, "out of memory quantizing a %d x %d matrix", j->src->rows, j->src->cols) : 0;
}

/* Per-column mean x^2 and mean |x| over the splits in mask (bit h: split h). */
static void col_means(const LinStats *st, int mask, float *msq, float *mabs)
{
    long long n = 0;
    for (int h = 0; h < 2; h++) n += mask >> h & 1 ? st->s[h].count : 0;
    for (int j = 0; j < st->cols; j++) {
        double q = 0, a = 0;
        for (int h = 0; h < 2; h++)
            if (mask >> h & 1) q += st->s[h].sum_sq[j], a += st->s[h].sum_abs[j];
        msq[j] = n ? (float)(q / n) : 0.0f;
        mabs[j] = n ? (float)(a / n) : 0.0f;
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
            for (int i = 0; i < c; i++)
                for (int j = 0; j <= i; j++) H[(size_t)i * c + j] += (double)x[i] * x[j];
        }
    }
    for (int i = 0; i < c; i++)
        for (int j = 0; j <= i; j++) H[(size_t)j * c + i] = H[(size_t)i * c + j] /= n ? n : 1;
}

/* One candidate of the calibrated choice. */
typedef struct Cand {
    int alpha;         /* AWQ exponent, in 1/AWQ_STEPS */
    int weighted;      /* block scales weighted by mean x^2 */
    int gptq;          /* 0: none, 1 + i: GPTQ with damping GPTQ_DAMP[i] */
} Cand;

/* Matrices that read one input: q/k/v, o, gate/up, down, or the lm_head. */
typedef struct Group {
    int n;
    const QMat *src[3];
    QMat *dst[3];          /* allocated in t[i] */
    const LinStats *st;    /* their input's statistics, or NULL */
    unsigned methods;      /* QCAL_* allowed (no AWQ for the embedding: it is also a lookup) */
    DType t[3];            /* each matrix's type (the recipe's, or the group's) */
} Group;

/* Scratch of one group's search. */
typedef struct Search {
    int cols;
    float *msq, *mabs;     /* (cols) of the fitting mask */
    float *s, *cin, *w;    /* (cols) the candidate's scales, 1/s, weights */
    double *H;             /* (cols, cols) */
    float *U0, *U;         /* (cols, cols) GPTQ factor unscaled / for the candidate */
    int u0_key;            /* what U0 was made from: 1 + mask * 2 + damping index, 0: nothing */
} Search;

static void search_free(Search *S)
{
    free(S->msq), free(S->mabs), free(S->s), free(S->cin), free(S->w), free(S->H), free(S->U0), free(S->U);
    memset(S, 0, sizeof *S);
}

/* Fits candidate c on the splits in mask and quantizes the group's matrices
 * into data[i] / scales[i]; *in_scale = S->cin or NULL. */
static int cand_build(Search *S, const Group *g, const Cand *c, int mask, const QuantCfg *cfg, Kern *k, void **data,
                      uint16_t **scales, const float **in_scale, Err *e)
{
    int cols = S->cols;
    col_means(g->st, mask, S->msq, S->mabs);
    double lo = INFINITY, hi = 0;
    for (int j = 0; j < cols; j++) {
        double a = S->mabs[j] > 1e-8f ? S->mabs[j] : 1e-8;
        S->s[j] = c->alpha ? (float)pow(a, (double)c->alpha / AWQ_STEPS) : 1.0f;
        lo = fmin(lo, S->s[j]), hi = fmax(hi, S->s[j]);
    }
    float norm = (float)sqrt(lo * hi);
    for (int j = 0; j < cols; j++) {
        S->s[j] /= norm;
        S->cin[j] = 1.0f / S->s[j];
        S->w[j] = (S->msq[j] + 1e-12f) * S->cin[j] * S->cin[j]; /* the stored matrix sees x / s */
    }
    if (c->gptq) {
        int key = 1 + mask * 2 + (c->gptq - 1);
        if (S->u0_key != key) {
            gram(g->st, mask, S->H);
            if (qrow_gptq_factor(S->U0, S->H, cols, GPTQ_DAMP[c->gptq - 1]))
                return err_set(e, "GPTQ: the inputs' second moments of a %d-column matrix are not positive definite", cols);
            S->u0_key = key;
        }
        /* inputs x / s: the factor's columns scale by s */
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++) S->U[(size_t)i * cols + j] = S->U0[(size_t)i * cols + j] * S->s[j];
    }
    for (int i = 0; i < g->n; i++) {
        RowJob j = {data[i], scales[i], g->t[i], cfg->round, g->src[i], c->alpha ? S->s : NULL,
                    c->weighted ? S->w : NULL, c->gptq ? S->U : NULL, NULL};
        if (quant_rows(k, &j, e)) return -1;
    }
    *in_scale = c->alpha ? S->cin : NULL;
    return 0;
}

/* Sum over the group of the squared distance between the unquantized
 * products Yref[i] and the candidate's, on the kept rows of split h. */
static double cand_error(const Group *g, void **data, uint16_t **scales, const float *in_scale, int h, float **Yref,
                         float *y, Kern *k)
{
    const LinSplit *sp = &g->st->s[h];
    double err = 0;
    for (int i = 0; i < g->n; i++) {
        const QMat *W = g->src[i];
        QMat V = {.type = g->t[i], .rows = W->rows, .cols = W->cols, .data = data[i], .scales = scales[i], .in_scale = in_scale};
        kern_matmul(k, y, &V, sp->x, sp->n_x);
        for (size_t r = 0; r < (size_t)sp->n_x * W->rows; r++) {
            double d = (double)Yref[i][r] - y[r];
            err += d * d;
        }
    }
    return err;
}

/* Keeps candidate c (built into data / scales / in_scale) as g's result
 * if its error beats *best_err. */
static void keep_best(const Group *g, const Cand *c, double err, void **data, uint16_t **scales,
                      const float *in_scale, float *bin, Cand *best, double *best_err)
{
    if (!(err < *best_err)) return;
    *best_err = err;
    *best = *c;
    for (int i = 0; i < g->n; i++) {
        QMat *d = g->dst[i];
        memcpy((void *)d->data, data[i], qmat_data_bytes(g->t[i], d->rows, d->cols));
        memcpy((void *)d->scales, scales[i], qmat_scale_bytes(g->t[i], d->rows, d->cols));
        d->in_scale = in_scale ? bin : NULL;
    }
    if (in_scale) memcpy(bin, in_scale, (size_t)g->st->cols * sizeof *bin);
}

/* The calibrated choice for group g (see the file comment), into g->dst:
 * first the AWQ exponent and the weighting without GPTQ, then GPTQ at the
 * exponent found, each candidate fitted on the fitting split and judged on
 * the held-out one (both splits for both when there is no held-out split). */
static int group_calibrated(QModel *q, const Group *g, const QuantCfg *cfg, Kern *k, QuantChoices *ch, Err *e)
{
    const LinStats *st = g->st;
    int cols = st->cols, holdout = st->s[1].n_x > 0;
    int fit_mask = holdout ? 1 : 3, eval_h[2] = {holdout ? 1 : 0, holdout ? -1 : 1};
    int gptq_ok = (g->methods & QCAL_GPTQ) && cols <= GPTQ_MAX_COLS;
    Search S = {.cols = cols};
    void *data[3] = {0};
    uint16_t *scales[3] = {0};
    float *Yref[2][3] = {{0}}, *y = NULL, *bin = NULL;
    int max_rows = 0, rc = 0;
    for (int i = 0; i < g->n; i++) max_rows = g->src[i]->rows > max_rows ? g->src[i]->rows : max_rows;
    int nx = st->s[0].n_x > st->s[1].n_x ? st->s[0].n_x : st->s[1].n_x;
    S.msq = malloc((size_t)cols * sizeof *S.msq);
    S.mabs = malloc((size_t)cols * sizeof *S.mabs);
    S.s = malloc((size_t)cols * sizeof *S.s);
    S.cin = malloc((size_t)cols * sizeof *S.cin);
    S.w = malloc((size_t)cols * sizeof *S.w);
    y = malloc((size_t)(nx ? nx : 1) * max_rows * sizeof *y);
    int bad = !S.msq || !S.mabs || !S.s || !S.cin || !S.w || !y;
    if (gptq_ok) {
        S.H = malloc((size_t)cols * cols * sizeof *S.H);
        S.U0 = malloc((size_t)cols * cols * sizeof *S.U0);
        S.U = malloc((size_t)cols * cols * sizeof *S.U);
        bad |= !S.H || !S.U0 || !S.U;
    }
    if (g->methods & QCAL_AWQ) bad |= !(bin = qalloc(q, (size_t)cols * sizeof *bin));
    for (int i = 0; i < g->n; i++) {
        const QMat *W = g->src[i];
        data[i] = malloc(qmat_data_bytes(g->t[i], W->rows, W->cols));
        scales[i] = malloc(qmat_scale_bytes(g->t[i], W->rows, W->cols));
        bad |= !data[i] || !scales[i];
        for (int x = 0; x < 2; x++) {
            int h = eval_h[x];
            if (h < 0 || !st->s[h].n_x) continue;
            if (!(Yref[x][i] = malloc((size_t)st->s[h].n_x * W->rows * sizeof(float)))) bad = 1;
            else kern_matmul(k, Yref[x][i], W, st->s[h].x, st->s[h].n_x);
        }
    }
    if (bad) {
        rc = err_set(e, "out of memory searching the quantization of a %d-column matrix", cols);
        goto out;
    }
    /* candidate 0 is the uncalibrated quantization: the others must beat it */
    Cand best = {0, 0, 0}, cands[2 * (AWQ_STEPS + 1) + 2];
    /* weights only steer the scale search: round-to-nearest ignores them */
    int nc = 0, n_alpha = g->methods & QCAL_AWQ ? AWQ_STEPS : 0;
    int n_w = (g->methods & QCAL_WEIGHTED) && cfg->round == QROUND_SEARCH;
    for (int a = 0; a <= n_alpha; a++)
        for (int w = 0; w <= n_w; w++) cands[nc++] = (Cand){a, w, 0};
    double best_err = INFINITY;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* GPTQ at the exponent and weighting the first pass found */
            if (!gptq_ok) break;
            nc = 0;
            for (int d = 0; d < 2; d++) cands[nc++] = (Cand){best.alpha, best.weighted, 1 + d};
        }
        for (int ci = 0; ci < nc; ci++) {
            const float *in_scale = NULL;
            if (cand_build(&S, g, &cands[ci], fit_mask, cfg, k, data, scales, &in_scale, e)) {
                rc = -1;
                goto out;
            }
            double err = 0;
            for (int x = 0; x < 2; x++)
                if (eval_h[x] >= 0 && st->s[eval_h[x]].n_x)
                    err += cand_error(g, data, scales, in_scale, eval_h[x], Yref[x], y, k);
            keep_best(g, &cands[ci], err, data, scales, in_scale, bin, &best, &best_err);
        }
    }
    if (ch) {
        ch->groups++;
        ch->plain += !best.alpha && !best.weighted && !best.gptq;
        ch->awq += best.alpha > 0;
        ch->weighted += best.weighted;
        ch->gptq += best.gptq > 0;
    }
out:
    for (int i = 0; i < g->n; i++) free(data[i]), free(scales[i]), free(Yref[0][i]), free(Yref[1][i]);
    free(y);
    search_free(&S);
    return rc;
}

/* Quantizes group g into buffers of q: uncalibrated when cfg has no
 * statistics, g has none, or the type is not Q8/Q4. */
static int group_quant(QModel *q, Group *g, const QuantCfg *cfg, Kern *k, QuantChoices *ch, Err *e)
{
    for (int i = 0; i < g->n; i++) {
        const QMat *W = g->src[i];
        size_t db = qmat_data_bytes(g->t[i], W->rows, W->cols), sb = qmat_scale_bytes(g->t[i], W->rows, W->cols);
        void *data = qalloc(q, db);
        uint16_t *scales = sb ? qalloc(q, sb) : NULL;
        if (!data || (sb && !scales)) return err_set(e, "out of memory quantizing a %d x %d matrix", W->rows, W->cols);
        *g->dst[i] = (QMat){.type = g->t[i], .rows = W->rows, .cols = W->cols, .data = data, .scales = scales};
    }
    int quantized = 1;
    for (int i = 0; i < g->n; i++) quantized &= dtype_is_block(g->t[i]);
    if (quantized && g->st && (g->st->s[0].n_x || g->st->s[1].n_x) && g->methods)
        return group_calibrated(q, g, cfg, k, ch, e);
    for (int i = 0; i < g->n; i++) {
        RowJob j = {(void *)g->dst[i]->data, (uint16_t *)g->dst[i]->scales, g->t[i], cfg->round, g->src[i], NULL, NULL, NULL, NULL};
        if (quant_rows(k, &j, e)) return -1;
    }
    return 0;
}

/* One LoRA matrix (f32 from the loader) as f16 in q's storage. */
static int lora_f16(QModel *q, QMat *m)
{
    size_t n = (size_t)m->rows * m->cols;
    uint16_t *h = qalloc(q, n * sizeof *h);
    if (!h) return -1;
    for (int r = 0; r < m->rows; r++) qmat_row_f32_to_f16(h + (size_t)r * m->cols, m, r);
    m->type = DT_F16;
    m->data = h;
    return 0;
}

/* For q8/q4 builds the adapters' A and B are stored in f16 ("16-bit or
 * better"): they are read for every token, so halving them halves what an
 * unmerged adapter adds to decode's memory traffic. The copies live in q. */
static int adapters_f16(QModel *q, const Model *src, Err *e)
{
    if (!src->n_adapters) return 0;
    Adapter *ads = qalloc(q, (size_t)src->n_adapters * sizeof *ads);
    if (!ads) return err_set(e, "out of memory");
    size_t np = (size_t)src->cfg.n_layers * P_COUNT;
    for (int i = 0; i < src->n_adapters; i++) {
        ads[i] = src->adapters[i];
        ads[i].owned = NULL;
        LoraPair *pairs = qalloc(q, np * sizeof *pairs);
        if (!pairs) return err_set(e, "out of memory");
        memcpy(pairs, src->adapters[i].pairs, np * sizeof *pairs);
        for (size_t j = 0; j < np; j++)
            if (pairs[j].r && (lora_f16(q, &pairs[j].A) || lora_f16(q, &pairs[j].B))) return err_set(e, "out of memory");
        ads[i].pairs = pairs;
    }
    q->m.adapters = ads;
    return 0;
}

int qmodel_build(QModel *q, const Model *src, const QuantCfg *cfg, Kern *k,
                 void (*progress)(void *, const char *, int, int), void *pctx, QuantChoices *ch, Err *e)
{
    memset(q, 0, sizeof *q);
    if (ch) memset(ch, 0, sizeof *ch);
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
    const CalibStats *stats = cfg->stats;
    const char *stage = stats ? "calibrated quantization" : "quantization";
    int total = src->cfg.n_layers + 1;
    /* the embedding (a lookup, no in_scale possible) carries the lm_head's
     * calibration when tied */
    const LinStats *hs = stats ? &stats->head : NULL;
    unsigned hm = cfg->head_methods & ~(unsigned)QCAL_AWQ;
    QuantCfg gc[CG_COUNT]; /* each group's config: cfg with its own type when overridden */
    for (int i = 0; i < CG_COUNT; i++) {
        gc[i] = *cfg;
        if (cfg->group_type && cfg->group_type[i]) gc[i].t = (DType)(cfg->group_type[i] - 1);
    }
    /* --tensor-type overrides win over the recipe for their group */
    if (cfg->group_type && cfg->group_type[CG_EMBED]) gc[CG_EMBED].recipe = NULL;
    if (cfg->group_type && cfg->group_type[CG_LM_HEAD]) gc[CG_LM_HEAD].recipe = NULL;
    int nl = src->cfg.n_layers;
    Group ge = {1, {&src->embed}, {&q->m.embed}, src->cfg.tie_embeddings ? hs : NULL, hm,
                {recipe_type(gc[CG_EMBED].recipe, CG_EMBED, P_COUNT, 0, nl, gc[CG_EMBED].t)}};
    if (group_quant(q, &ge, &gc[CG_EMBED], k, ch, e)) goto fail;
    if (src->cfg.tie_embeddings) {
        q->m.lm_head = q->m.embed;
    } else {
        Group gh = {1, {&src->lm_head}, {&q->m.lm_head}, hs, hm,
                    {recipe_type(gc[CG_LM_HEAD].recipe, CG_LM_HEAD, P_COUNT, 0, nl, gc[CG_LM_HEAD].t)}};
        if (group_quant(q, &gh, &gc[CG_LM_HEAD], k, ch, e)) goto fail;
    }
    if (progress) progress(pctx, stage, 1, total);
    static const Proj groups[4][4] = {{P_Q, P_K, P_V, P_COUNT}, {P_O, P_COUNT}, {P_GATE, P_UP, P_COUNT}, {P_DOWN, P_COUNT}};
    for (int l = 0; l < src->cfg.n_layers; l++) {
        q->m.layers[l] = src->layers[l];
        for (int gi = 0; gi < 4; gi++) {
            Group g = {0};
            g.st = stats ? calib_input(stats, l, groups[gi][0]) : NULL;
            g.methods = cfg->methods;
            int cg = gi < 2 ? CG_ATTN : CG_MLP;
            for (int i = 0; groups[gi][i] != P_COUNT; i++, g.n++) {
                g.src[i] = &src->layers[l].w[groups[gi][i]];
                g.dst[i] = &q->m.layers[l].w[groups[gi][i]];
                g.t[i] = recipe_type(cfg->group_type && cfg->group_type[cg] ? NULL : cfg->recipe, cg, groups[gi][i], l,
                                     nl, gc[cg].t);
            }
            if (group_quant(q, &g, &gc[gi < 2 ? CG_ATTN : CG_MLP], k, ch, e)) goto fail;
        }
        if (progress) progress(pctx, stage, l + 2, total);
    }
    if ((dtype_is_block(cfg->t) || cfg->recipe) && adapters_f16(q, src, e)) goto fail;
    return 0;
fail:
    qmodel_free(q);
    return -1;
}
