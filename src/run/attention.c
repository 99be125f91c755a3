#include "run/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "load/limits.h"
#include "util/half.h"

/* cached positions per block: one block of keys (and of values, transposed)
 * in f32 is 2 * ATT_NB * head_dim floats, 64 KB at head_dim 128 */
#define ATT_NB 64
/* bound on the queries (rows x heads) x head_dim of one task, so the task's
 * working set (query tile, accumulators, product) stays small on the stack */
#define ATT_QFLOATS 8192
/* and on its queries (rows x heads of a group): the score tile is
 * ATT_QROWS x ATT_NB floats. Every tile is a fixed array sized by these and
 * by LIMIT_HEAD_DIM (config checks), never by the model's numbers. */
#define ATT_QROWS 256
/* splits of one decode row's positions at most (their weights are merged
 * on the stack) */
#define ATT_MAX_SPLIT 256

/* runs shorter than this (decode) go per row: kern_attn_f16 per KV head
 * (f16 cache) or position by position per query head (f32) */
#define ATT_MIN_RUN 4

/* decode rows over an f16 cache: positions per split at least this, so
 * that a split's setup and merge stay small next to its work */
#define ATT_MIN_SPLIT 128

typedef struct AttnTask {
    int r0, nr; /* rows r0 .. r0+nr-1: one sequence, consecutive positions */
    int head;   /* nr >= ATT_MIN_RUN or part >= 0: the KV head; otherwise a query head */
    int p0, p1; /* part >= 0: the positions of this split */
    int part;   /* >= 0: a decode split through kern_attn_f16, its slot in AttnJob.part */
} AttnTask;

typedef struct AttnJob {
    const ModelConfig *c;
    Kern *k;
    const BatchRow *rows;
    const float *q;
    float *out;
    int layer;
    const AttnTask *tasks;
    float *part; /* per split: acc (G, hd), then m (G), then l (G) */
} AttnJob;

/* Row `pos` of head `kvh` of a cache half (k or v) as f32 in dst (hd floats). */
static void kv_row(Kern *k, float *dst, const KVCache *kv, const void *half, int layer, int pos, int kvh, int hd)
{
    size_t off = ((size_t)layer * kv->n_ctx + pos) * kv->kv_dim + (size_t)kvh * hd;
    if (kv->type == KV_F32) {
        memcpy(dst, (const float *)half + off, hd * sizeof(float));
    } else {
        memset(dst, 0, hd * sizeof(float));
        kern_axpy_f16(k, dst, 1.0f, (const uint16_t *)half + off, hd);
    }
}

/* One (row, query head) of an f32 cache, position by position, as an online
 * softmax over blocks of positions (f16 caches go through kern_attn_f16). */
static void attn_row(const AttnJob *j, int r, int h)
{
    const ModelConfig *c = j->c;
    int hd = c->head_dim, nh = c->n_heads, kvh = h / (nh / c->n_kv_heads);
    const BatchRow *row = &j->rows[r];
    const KVCache *kv = row->kv;
    const float *q = j->q + ((size_t)r * nh + h) * hd;
    float *o = j->out + ((size_t)r * nh + h) * hd;
    size_t base = (size_t)j->layer * kv->n_ctx * kv->kv_dim + (size_t)kvh * hd, stride = (size_t)kv->kv_dim;
    float acc[LIMIT_HEAD_DIM], sc[ATT_NB], mx = -INFINITY, sum = 0, scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < hd; i++) acc[i] = 0;
    for (int t0 = 0; t0 <= row->pos; t0 += ATT_NB) {
        int nb = row->pos + 1 - t0 < ATT_NB ? row->pos + 1 - t0 : ATT_NB;
        float bm = -INFINITY;
        for (int b = 0; b < nb; b++) {
            const float *kr = (const float *)kv->k + base + (size_t)(t0 + b) * stride;
            float d = 0;
#pragma omp simd reduction(+ : d)
            for (int i = 0; i < hd; i++) d += q[i] * kr[i];
            sc[b] = d * scale;
            bm = sc[b] > bm ? sc[b] : bm;
        }
        if (bm > mx) {
            float corr = expf(mx - bm);
            sum *= corr;
            for (int i = 0; i < hd; i++) acc[i] *= corr;
            mx = bm;
        }
        for (int b = 0; b < nb; b++) {
            const float *vr = (const float *)kv->v + base + (size_t)(t0 + b) * stride;
            float p = expf(sc[b] - mx);
            sum += p;
#pragma omp simd
            for (int i = 0; i < hd; i++) acc[i] += p * vr[i];
        }
    }
    for (int i = 0; i < hd; i++) o[i] = acc[i] / sum;
}

/* One split of a decode row's KV head: its G queries over positions
 * p0 .. p1-1, unnormalized, into the task's part slot. */
static void attn_split(const AttnJob *j, const AttnTask *t)
{
    const ModelConfig *c = j->c;
    int hd = c->head_dim, nh = c->n_heads, G = nh / c->n_kv_heads;
    const KVCache *kv = j->rows[t->r0].kv;
    float Qs[ATT_QFLOATS], scale = 1.0f / sqrtf((float)hd), *part = j->part + (size_t)t->part * G * (hd + 2);
    float *Q = G * hd <= ATT_QFLOATS ? Qs : malloc((size_t)G * hd * sizeof *Q); /* wide groups: up to 64 x 512 */
    const float *q = j->q + ((size_t)t->r0 * nh + (size_t)t->head * G) * hd;
    if (!Q) { /* no memory: this split counts for nothing (weight 0 in the merge) */
        for (int g = 0; g < G; g++) part[G * hd + G + g] = 0;
        return;
    }
    for (int i = 0; i < G * hd; i++) Q[i] = q[i] * scale;
    size_t off = ((size_t)j->layer * kv->n_ctx + t->p0) * kv->kv_dim + (size_t)t->head * hd;
    kern_attn_f16(j->k, part, part + G * hd, part + G * hd + G, Q, G, hd, (const uint16_t *)kv->k + off,
                  (const uint16_t *)kv->v + off, (size_t)kv->kv_dim, t->p1 - t->p0);
    if (Q != Qs) free(Q);
}

/* The splits of one (decode row, KV head) merged into its G output heads. */
static void attn_merge(const AttnJob *j, const AttnTask *t, int n_split)
{
    const ModelConfig *c = j->c;
    int hd = c->head_dim, nh = c->n_heads, G = nh / c->n_kv_heads;
    size_t stride = (size_t)G * (hd + 2);
    const float *part = j->part + (size_t)t->part * stride;
    for (int g = 0; g < G; g++) {
        float M = -INFINITY, L = 0, w[ATT_MAX_SPLIT]; /* n_split <= ATT_MAX_SPLIT (attention()) */
        for (int sp = 0; sp < n_split; sp++) M = fmaxf(M, part[sp * stride + G * hd + g]);
        for (int sp = 0; sp < n_split; sp++) {
            const float *ps = part + sp * stride;
            w[sp] = ps[G * hd + G + g] > 0 ? expf(ps[G * hd + g] - M) : 0;
            L += w[sp] * ps[G * hd + G + g];
        }
        float *o = j->out + ((size_t)t->r0 * nh + (size_t)t->head * G + g) * hd;
        for (int d = 0; d < hd; d++) {
            float a = 0;
            for (int sp = 0; sp < n_split; sp++) a += w[sp] * part[sp * stride + (size_t)g * hd + d];
            o[d] = a / L;
        }
    }
}

/* A run's m = rows x G queries, unnormalized (acc, sum), into the output. */
static void attn_out(const AttnJob *j, const AttnTask *t, const float *acc, const float *sum, int m)
{
    int hd = j->c->head_dim, nh = j->c->n_heads, G = nh / j->c->n_kv_heads;
    for (int i = 0; i < m; i++) {
        float *o = j->out + ((size_t)(t->r0 + i / G) * nh + t->head * G + i % G) * hd;
        for (int d = 0; d < hd; d++) o[d] = acc[i * hd + d] / sum[i];
    }
}

static void attn_run(void *ctx, int ti)
{
    const AttnJob *j = ctx;
    const ModelConfig *c = j->c;
    const AttnTask *t = &j->tasks[ti];
    if (t->part >= 0) {
        attn_split(j, t);
        return;
    }
    if (t->nr < ATT_MIN_RUN) {
        for (int r = t->r0; r < t->r0 + t->nr; r++) attn_row(j, r, t->head);
        return;
    }
    int hd = c->head_dim, nh = c->n_heads, G = nh / c->n_kv_heads;
    int m = t->nr * G; /* queries: row-major over (row, head of the group) */
    const BatchRow *rows = j->rows + t->r0;
    const KVCache *kv = rows[0].kv;
    int last = rows[t->nr - 1].pos; /* rows are in increasing position order */
    float scale = 1.0f / sqrtf((float)hd);

    /* m * hd <= ATT_QFLOATS and m <= ATT_QROWS (attention()'s max_rows) */
    float Q[ATT_QFLOATS], acc[ATT_QFLOATS], pv[ATT_QFLOATS], S[ATT_QROWS * ATT_NB], mx[ATT_QROWS], sum[ATT_QROWS];
    float Kb[ATT_NB * LIMIT_HEAD_DIM], Vt[LIMIT_HEAD_DIM * ATT_NB], tmp[LIMIT_HEAD_DIM];
    for (int i = 0; i < m; i++) {
        const float *src = j->q + ((size_t)(t->r0 + i / G) * nh + t->head * G + i % G) * hd;
        for (int d = 0; d < hd; d++) Q[i * hd + d] = src[d] * scale;
        mx[i] = -INFINITY;
        sum[i] = 0;
    }
    if (kv->type == KV_F16) { /* the backend's blocked kernel, when it has one for this head size */
        int vis[ATT_QROWS];
        for (int i = 0; i < m; i++) vis[i] = rows[i / G].pos + 1;
        size_t off = (size_t)j->layer * kv->n_ctx * kv->kv_dim + (size_t)t->head * hd;
        if (!kern_attn_prefill_f16(j->k, acc, mx, sum, Q, m, hd, (const uint16_t *)kv->k + off,
                                   (const uint16_t *)kv->v + off, (size_t)kv->kv_dim, vis)) {
            attn_out(j, t, acc, sum, m);
            return;
        }
    }
    memset(acc, 0, (size_t)m * hd * sizeof *acc);
    for (int p0 = 0; p0 <= last; p0 += ATT_NB) {
        int nb = last + 1 - p0 < ATT_NB ? last + 1 - p0 : ATT_NB;
        for (int b = 0; b < nb; b++) {
            kv_row(j->k, Kb + b * hd, kv, kv->k, j->layer, p0 + b, t->head, hd);
            kv_row(j->k, tmp, kv, kv->v, j->layer, p0 + b, t->head, hd);
            for (int d = 0; d < hd; d++) Vt[d * nb + b] = tmp[d];
        }
        QMat Km = {.type = DT_F32, .rows = nb, .cols = hd, .data = Kb};
        kern_matmul_local(j->k, S, &Km, Q, m); /* S (m, nb) */
        int any = 0;
        for (int i = 0; i < m; i++) {
            float *s = S + (size_t)i * nb;
            int vis = rows[i / G].pos - p0 + 1; /* causal: positions <= the row's own */
            if (vis > nb) vis = nb;
            if (vis <= 0) { /* nothing visible in this block: contributes 0 */
                for (int b = 0; b < nb; b++) s[b] = 0;
                continue;
            }
            any = 1;
            float bm = -INFINITY;
            for (int b = 0; b < vis; b++) bm = s[b] > bm ? s[b] : bm;
            if (bm > mx[i]) {
                float corr = expf(mx[i] - bm);
                sum[i] *= corr;
                for (int d = 0; d < hd; d++) acc[i * hd + d] *= corr;
                mx[i] = bm;
            }
            for (int b = 0; b < vis; b++) {
                s[b] = expf(s[b] - mx[i]);
                sum[i] += s[b];
            }
            for (int b = vis; b < nb; b++) s[b] = 0;
        }
        if (!any) continue;
        QMat Vm = {.type = DT_F32, .rows = hd, .cols = nb, .data = Vt};
        kern_matmul_local(j->k, pv, &Vm, S, m); /* pv (m, hd) = P V */
        for (int i = 0; i < m * hd; i++) acc[i] += pv[i];
    }
    attn_out(j, t, acc, sum, m);
}

/* The end of the run that starts at row r: consecutive positions of one
 * sequence, at most max_rows rows. */
static int run_end(const BatchRow *rows, int n, int r, int max_rows)
{
    int end = r + 1;
    while (end < n && end - r < max_rows && rows[end].kv == rows[r].kv && rows[end].pos == rows[end - 1].pos + 1) end++;
    return end;
}

int attention(const ModelConfig *c, Kern *k, const BatchRow *rows, int n, int layer, const float *q, float *out, Err *e)
{
    int G = c->n_heads / c->n_kv_heads;
    int max_rows = ATT_QFLOATS / (G * c->head_dim);
    if (max_rows > ATT_QROWS / G) max_rows = ATT_QROWS / G;
    if (max_rows < 1) max_rows = 1;
    /* runs of consecutive rows of one sequence, cut at max_rows, times KV
     * heads; decode-sized runs: per row, times KV heads and splits of the
     * positions (f16 cache, kern_attn_f16) or times query heads (f32) */
    int n_dec = 0;
    for (int r = 0, end; r < n; r = end) {
        end = run_end(rows, n, r, max_rows);
        if (end - r < ATT_MIN_RUN) n_dec += end - r;
    }
    /* enough splits that every thread has work, none under ATT_MIN_SPLIT positions */
    int want = n_dec ? (kern_threads(k) + n_dec * c->n_kv_heads - 1) / (n_dec * c->n_kv_heads) : 1;
    if (want > ATT_MAX_SPLIT) want = ATT_MAX_SPLIT;
    int max_tasks = n * (c->n_heads > c->n_kv_heads * want ? c->n_heads : c->n_kv_heads * want);
    AttnTask *tasks = malloc((size_t)max_tasks * sizeof *tasks);
    float *part = NULL;
    int n_tasks = 0, n_part = 0;
    if (tasks && n_dec)
        part = malloc((size_t)n_dec * c->n_kv_heads * want * G * (c->head_dim + 2) * sizeof(float));
    if (!tasks || (n_dec && !part)) {
        free(tasks);
        return err_set(e, "out of memory for the attention tasks of %d rows", n);
    }
    for (int r = 0, end; r < n; r = end) {
        end = run_end(rows, n, r, max_rows);
        if (end - r >= ATT_MIN_RUN) {
            for (int h = 0; h < c->n_kv_heads; h++) tasks[n_tasks++] = (AttnTask){r, end - r, h, 0, 0, -1};
            continue;
        }
        for (int i = r; i < end; i++) {
            if (rows[i].kv->type != KV_F16) {
                for (int h = 0; h < c->n_heads; h++) tasks[n_tasks++] = (AttnTask){i, 1, h, 0, 0, -1};
                continue;
            }
            int np = rows[i].pos + 1, ns = np / ATT_MIN_SPLIT < want ? np / ATT_MIN_SPLIT : want;
            if (ns < 1) ns = 1;
            for (int h = 0; h < c->n_kv_heads; h++)
                for (int sp = 0; sp < ns; sp++)
                    tasks[n_tasks++] = (AttnTask){i, 1, h, (int)((long)np * sp / ns), (int)((long)np * (sp + 1) / ns),
                                                  n_part++};
        }
    }
    AttnJob job = {c, k, rows, q, out, layer, tasks, part};
    kern_parallel(k, n_tasks, attn_run, &job);
    /* merge each (decode row, KV head)'s splits: they are consecutive tasks */
    for (int t = 0; t < n_tasks;) {
        if (tasks[t].part < 0) {
            t++;
            continue;
        }
        int ns = 1;
        while (t + ns < n_tasks && tasks[t + ns].part >= 0 && tasks[t + ns].r0 == tasks[t].r0 &&
               tasks[t + ns].head == tasks[t].head)
            ns++;
        attn_merge(&job, &tasks[t], ns);
        t += ns;
    }
    free(part);
    free(tasks);
    return 0;
}

void attention_ref(const ModelConfig *c, const BatchRow *rows, int n, int layer, const float *q, float *out)
{
    int hd = c->head_dim, nh = c->n_heads, G = nh / c->n_kv_heads;
    for (int r = 0; r < n; r++) {
        const KVCache *kv = rows[r].kv;
        for (int h = 0; h < nh; h++) {
            const float *qh = q + ((size_t)r * nh + h) * hd;
            double acc[LIMIT_HEAD_DIM], mx = -INFINITY, sum = 0, *sc = malloc(((size_t)rows[r].pos + 1) * sizeof *sc);
            if (!sc) { /* the reference for tests: no memory gives NaN */
                for (int i = 0; i < hd; i++) out[((size_t)r * nh + h) * hd + i] = NAN;
                continue;
            }
            for (int p = 0; p <= rows[r].pos; p++) {
                size_t off = ((size_t)layer * kv->n_ctx + p) * kv->kv_dim + (size_t)(h / G) * hd;
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)qh[i] * (kv->type == KV_F32 ? ((const float *)kv->k)[off + i]
                                                             : f16_to_f32(((const uint16_t *)kv->k)[off + i]));
                sc[p] = d / sqrt((double)hd);
                if (sc[p] > mx) mx = sc[p];
            }
            for (int i = 0; i < hd; i++) acc[i] = 0;
            for (int p = 0; p <= rows[r].pos; p++) {
                size_t off = ((size_t)layer * kv->n_ctx + p) * kv->kv_dim + (size_t)(h / G) * hd;
                double w = exp(sc[p] - mx);
                sum += w;
                for (int i = 0; i < hd; i++)
                    acc[i] += w * (kv->type == KV_F32 ? ((const float *)kv->v)[off + i]
                                                      : f16_to_f32(((const uint16_t *)kv->v)[off + i]));
            }
            for (int i = 0; i < hd; i++) out[((size_t)r * nh + h) * hd + i] = (float)(acc[i] / sum);
            free(sc);
        }
    }
}
