/* calibrate.c - the calibration set (JSON lines of {"text": ...} or
 * {"messages": [...]}), the activation statistics collected by running it
 * through the unquantized base model, and the quality report (top-1
 * agreement, KL) of a quantized model against the unquantized one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/compile_int.h"
#include "run/seq.h"
#include "text/chat.h"
#include "text/messages.h"
#include "text/tokenizer.h"
#include "util/json.h"

#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#define CALIB_MAX_TOKENS 2048 /* per prompt: longer prompts are cut (a tool list alone can take 1000) */

void calib_free(CalibSet *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->ids[i]);
    free(s->ids);
    free(s->len);
    memset(s, 0, sizeof *s);
}

/* Text of one line: "text" as is, "messages" through the chat template.
 * Returns a malloc'd string or NULL with *e set (naming path:line). */
static char *line_text(const char *line, size_t len, const char *path, int lineno, const char *base_dir,
                       ChatTemplate **ct, Err *e)
{
    char name[600];
    snprintf(name, sizeof name, "%s:%d", path, lineno);
    /* a NUL (raw, or \u0000 in a string) would cut the text where C strings end */
    if (memchr(line, 0, len)) return err_set(e, "%s: a NUL byte in the line", name), NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (line[i] == '\\') {
            if (line[i + 1] == 'u' && i + 5 < len && !memcmp(line + i + 2, "0000", 4))
                return err_set(e, "%s: \\u0000 (NUL) in a string: calibration text cannot hold NUL", name), NULL;
            i++; /* the escaped character */
        }
    cJSON *j = json_parse(line, len, name, e);
    if (!j) return NULL;
    char *out = NULL;
    const cJSON *txt = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
    if (!cJSON_IsObject(j)) {
        err_set(e, "%s: expected a JSON object with \"text\" or \"messages\"", name);
    } else if (txt) {
        if (!cJSON_IsString(txt) || !txt->valuestring[0]) err_set(e, "%s: field \"text\": expected a non-empty string", name);
        else if (!messages_utf8_ok(txt->valuestring, strlen(txt->valuestring)))
            err_set(e, "%s: field \"text\": invalid UTF-8", name);
        else if (!(out = strdup(txt->valuestring))) err_set(e, "out of memory");
    } else if (msgs) {
        char where[700];
        snprintf(where, sizeof where, "%s: field \"messages\"", name);
        if (messages_check(msgs, where, e)) {
            /* e says which message and field */
        } else if (tools && !cJSON_IsArray(tools)) {
            err_set(e, "%s: field \"tools\": expected an array of tool definitions", name);
        } else {
            if (!*ct && base_dir) {
                char p[4096];
                snprintf(p, sizeof p, "%s/tokenizer_config.json", base_dir);
                *ct = chat_template_load_file(p, e);
            }
            if (!*ct && !base_dir) err_set(e, "no chat template");
            if (*ct) out = chat_template_render(*ct, msgs, tools, 0, e);
            if (!out) err_prefix(e, "%s", name);
        }
    } else {
        err_set(e, "%s: expected a field \"text\" or \"messages\"", name);
    }
    cJSON_Delete(j);
    return out;
}

int calib_load_buf(CalibSet *s, const char *buf, size_t len, const char *path, const Tokenizer *tok, ChatTemplate **ct,
                   const char *base_dir, Err *e)
{
    memset(s, 0, sizeof *s);
    int rc = 0, lineno = 0, cap = 0;
    for (const char *p = buf; !rc && p < buf + len;) {
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
        lineno++;
        const char *line = p;
        p += ll + 1;
        size_t k = 0;
        while (k < ll && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == ll) continue; /* blank lines are allowed */
        char *text = line_text(line, ll, path, lineno, base_dir, ct, e);
        if (!text) {
            rc = -1;
            break;
        }
        int *ids = NULL, n = 0;
        if (tokenizer_encode(tok, text, strlen(text), &ids, &n, e)) {
            rc = err_prefix(e, "%s:%d", path, lineno);
        } else if (n == 0) {
            rc = err_set(e, "%s:%d: the text encodes to no tokens", path, lineno);
        } else {
            if (s->n == cap) {
                cap = cap ? 2 * cap : 16;
                int **ni = realloc(s->ids, (size_t)cap * sizeof *ni);
                if (ni) s->ids = ni;
                int *nl2 = realloc(s->len, (size_t)cap * sizeof *nl2);
                if (nl2) s->len = nl2;
                if (!ni || !nl2) rc = err_set(e, "out of memory");
            }
            if (!rc) {
                if (n > CALIB_MAX_TOKENS) n = CALIB_MAX_TOKENS;
                s->ids[s->n] = ids;
                s->len[s->n++] = n;
                s->tokens += n;
                ids = NULL;
            }
        }
        free(ids);
        free(text);
    }
    if (!rc && s->n == 0) rc = err_set(e, "%s: no calibration prompts (expected JSON lines of {\"text\": ...} or {\"messages\": [...]})", path);
    if (rc) calib_free(s);
    return rc;
}

int calib_load(CalibSet *s, const char *path, const char *base_dir, Err *e)
{
    memset(s, 0, sizeof *s);
    size_t len;
    char *buf = file_read(path, &len, e);
    if (!buf) return -1;
    char tp[4096];
    snprintf(tp, sizeof tp, "%s/tokenizer.json", base_dir);
    Tokenizer *tok = tokenizer_load_file(tp, e);
    ChatTemplate *ct = NULL;
    int rc = tok ? calib_load_buf(s, buf, len, path, tok, &ct, base_dir, e) : -1;
    tokenizer_free(tok);
    chat_template_free(ct);
    free(buf);
    return rc;
}

int calib_held_out(int i, int n) { return n >= CALIB_HOLDOUT && i % CALIB_HOLDOUT == CALIB_HOLDOUT - 1; }

static int lin_init(LinStats *l, int cols, const int cap[2])
{
    l->cols = cols;
    int bad = 0;
    for (int h = 0; h < 2; h++) {
        LinSplit *s = &l->s[h];
        s->sum_sq = calloc((size_t)cols, sizeof *s->sum_sq);
        s->sum_abs = calloc((size_t)cols, sizeof *s->sum_abs);
        s->cap = cap[h];
        s->x = cap[h] ? malloc((size_t)cap[h] * cols * sizeof *s->x) : NULL;
        bad |= !s->sum_sq || !s->sum_abs || (cap[h] && !s->x);
    }
    return bad ? -1 : 0;
}

static void lin_free(LinStats *l)
{
    for (int h = 0; h < 2; h++) {
        free(l->s[h].sum_sq);
        free(l->s[h].sum_abs);
        free(l->s[h].x);
    }
    memset(l, 0, sizeof *l);
}

void calib_stats_free(CalibStats *st)
{
    if (!st) return;
    for (int i = 0; st->lin && i < st->n_layers * P_COUNT; i++) lin_free(&st->lin[i]);
    free(st->lin);
    lin_free(&st->head);
    memset(st, 0, sizeof *st);
}

/* The projection whose statistics stand for p's input. */
static Proj input_owner(Proj p) { return p == P_K || p == P_V ? P_Q : p == P_UP ? P_GATE : p; }

const LinStats *calib_input(const CalibStats *st, int layer, Proj p)
{
    return &st->lin[layer * P_COUNT + input_owner(p)];
}

typedef struct Collect {
    CalibStats *st;
    int split;        /* of the prompt being run */
} Collect;

static void on_input(void *ctx, int layer, int proj, const float *x, int n, int cols)
{
    Collect *c = ctx;
    if (layer >= 0 && (int)input_owner((Proj)proj) != proj) return; /* same input as q / gate */
    LinStats *l = layer < 0 ? &c->st->head : &c->st->lin[layer * P_COUNT + proj];
    LinSplit *s = &l->s[c->split];
    if (l->cols != cols) return;
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * cols;
        for (int j = 0; j < cols; j++) {
            s->sum_sq[j] += (double)r[j] * r[j];
            s->sum_abs[j] += fabs(r[j]);
        }
        if (s->n_x < s->cap && s->count % s->stride == 0)
            memcpy(s->x + (size_t)s->n_x++ * cols, r, (size_t)cols * sizeof *r);
        s->count++;
    }
}

/* Allocates st for src's shapes with the kept-row budget cap[2]. */
static int stats_alloc(CalibStats *st, const ModelConfig *c, const int cap[2])
{
    memset(st, 0, sizeof *st);
    st->n_layers = c->n_layers;
    st->lin = calloc((size_t)c->n_layers * P_COUNT, sizeof *st->lin);
    int bad = !st->lin || lin_init(&st->head, c->dim, cap);
    for (int l = 0; !bad && l < c->n_layers; l++)
        for (int p = 0; !bad && p < P_COUNT; p++)
            if ((int)input_owner((Proj)p) == p) bad = lin_init(&st->lin[l * P_COUNT + p], proj_in(c, (Proj)p), cap);
    if (bad) calib_stats_free(st);
    return bad ? -1 : 0;
}

/* The statistics that exist (the owners of an input, and the head) in a
 * fixed order: i < n_layers * P_COUNT + 1, NULL for the others. */
static LinStats *stats_at(CalibStats *st, int i)
{
    if (i == st->n_layers * P_COUNT) return &st->head;
    return (int)input_owner((Proj)(i % P_COUNT)) == i % P_COUNT ? &st->lin[i] : NULL;
}

/* The kept-row budget per split: a quarter for the held-out prompts. */
static void split_caps(const CalibSet *s, int cap[2], long long rows[2])
{
    rows[0] = rows[1] = 0;
    for (int i = 0; i < s->n; i++) rows[calib_held_out(i, s->n)] += s->len[i];
    cap[0] = rows[1] ? CALIB_SAMPLES - CALIB_SAMPLES / 4 : CALIB_SAMPLES;
    cap[1] = rows[1] ? CALIB_SAMPLES / 4 : 0;
}

/* One run (adapter index ai, -1: base) of every prompt through src. */
static int collect_run(CalibStats *st, const Model *src, Kern *k, const CalibSet *s, int ai, const CalibProgress *p,
                       double done0, double total, Err *e)
{
    const ModelConfig *c = &src->cfg;
    int cap[2];
    long long rows[2];
    split_caps(s, cap, rows);
    if (stats_alloc(st, c, cap)) return err_set(e, "out of memory for calibration statistics");
    /* keep every stride-th row, spreading the kept rows over the split */
    for (int h = 0; h < 2; h++) {
        int stride = cap[h] ? (int)(rows[h] / cap[h]) + 1 : 1;
        for (int i = 0; i <= st->n_layers * P_COUNT; i++)
            if (stats_at(st, i)) stats_at(st, i)->s[h].stride = stride;
    }
    Collect col = {st, 0};
    int maxn = 0;
    for (int i = 0; i < s->n; i++) maxn = s->len[i] > maxn ? s->len[i] : maxn;
    /* all positions' logits asked for, so the lm_head sees every row */
    float *lg = malloc((size_t)maxn * c->vocab_size * sizeof *lg);
    int rc = lg ? 0 : err_set(e, "out of memory");
    for (int i = 0; !rc && i < s->n; i++) {
        Seq q;
        if (seq_init(&q, src, s->len[i], KV_F32, ai >= 0 ? &src->adapters[ai] : NULL, e)) {
            rc = -1;
            break;
        }
        col.split = calib_held_out(i, s->n);
        q.s.on_input = on_input;
        q.s.on_input_ctx = &col;
        rc = seq_prefill(&q, k, s->ids[i], s->len[i], 0, NULL, lg, e);
        seq_free(&q);
        if (p && p->tell) p->tell(p->ctx, done0 + i + 1, total);
    }
    free(lg);
    if (rc) calib_stats_free(st);
    return rc;
}

/* Adds run r of R runs into the pooled st: the sums, and the kept rows
 * whose index is r modulo R (so the pool keeps rows spread over every run
 * and every prompt). */
static void pool_add(CalibStats *st, const CalibStats *run, int r, int R)
{
    for (int i = 0; i <= st->n_layers * P_COUNT; i++) {
        LinStats *d = stats_at(st, i);
        const LinStats *sr = stats_at((CalibStats *)run, i);
        if (!d) continue;
        for (int h = 0; h < 2; h++) {
            LinSplit *a = &d->s[h];
            const LinSplit *b = &sr->s[h];
            a->count += b->count;
            for (int j = 0; j < d->cols; j++) a->sum_sq[j] += b->sum_sq[j], a->sum_abs[j] += b->sum_abs[j];
            for (int x = r; x < b->n_x && a->n_x < a->cap; x += R)
                memcpy(a->x + (size_t)a->n_x++ * d->cols, b->x + (size_t)x * d->cols, (size_t)d->cols * sizeof *a->x);
        }
    }
}

#define CACHE_MAGIC "DUETCAL1"

/* XXH3 of every safetensors file of the base, read (not mapped, so the
 * pages do not count against this process). */
static uint64_t base_hash(const Model *src)
{
    XXH3_state_t *h = XXH3_createState();
    if (!h) return 0;
    XXH3_64bits_reset(h);
    size_t cap = (size_t)4 << 20;
    char *buf = malloc(cap);
    for (int i = 0; buf && i < src->ckpt.n_files; i++) {
        FILE *f = fopen(src->ckpt.files[i].path, "rb");
        if (!f) continue;
        size_t n;
        while ((n = fread(buf, 1, cap, f)) > 0) XXH3_64bits_update(h, buf, n);
        fclose(f);
    }
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    free(buf);
    return v;
}

/* XXH3 of the calibration tokens and of what shapes the statistics. */
static uint64_t set_hash(const CalibSet *s)
{
    XXH3_state_t *h = XXH3_createState();
    if (!h) return 0;
    XXH3_64bits_reset(h);
    int hdr[3] = {s->n, CALIB_SAMPLES, CALIB_HOLDOUT};
    XXH3_64bits_update(h, hdr, sizeof hdr);
    for (int i = 0; i < s->n; i++) {
        XXH3_64bits_update(h, &s->len[i], sizeof s->len[i]);
        XXH3_64bits_update(h, s->ids[i], (size_t)s->len[i] * sizeof *s->ids[i]);
    }
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return v;
}

/* Reads run statistics from path into st (allocated for src's shapes);
 * 0, or -1 (missing or not matching: st freed). */
static int cache_read(CalibStats *st, const char *path, const ModelConfig *c, const CalibSet *s)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int cap[2];
    long long rows[2];
    split_caps(s, cap, rows);
    char magic[8];
    int32_t dims[4];
    int bad = fread(magic, 1, 8, f) != 8 || memcmp(magic, CACHE_MAGIC, 8) || fread(dims, sizeof dims, 1, f) != 1 ||
              dims[0] != c->n_layers || dims[1] != c->dim || dims[2] != cap[0] || dims[3] != cap[1] ||
              stats_alloc(st, c, cap);
    for (int i = 0; !bad && i <= st->n_layers * P_COUNT; i++) {
        LinStats *l = stats_at(st, i);
        if (!l) continue;
        for (int h = 0; !bad && h < 2; h++) {
            LinSplit *sp = &l->s[h];
            int64_t hd[3];
            bad = fread(hd, sizeof hd, 1, f) != 1 || hd[1] < 0 || hd[1] > sp->cap || hd[2] != l->cols;
            if (bad) break;
            sp->count = hd[0];
            sp->n_x = (int)hd[1];
            bad = fread(sp->sum_sq, sizeof *sp->sum_sq, (size_t)l->cols, f) != (size_t)l->cols ||
                  fread(sp->sum_abs, sizeof *sp->sum_abs, (size_t)l->cols, f) != (size_t)l->cols ||
                  fread(sp->x, sizeof *sp->x, (size_t)sp->n_x * l->cols, f) != (size_t)sp->n_x * l->cols;
        }
    }
    bad |= fgetc(f) != EOF;
    fclose(f);
    if (bad) calib_stats_free(st);
    return bad ? -1 : 0;
}

/* Saves run statistics st at path (via path.tmp and a rename); failures
 * are ignored: the cache is an optimisation. */
static void cache_write(const CalibStats *st, const char *path, const ModelConfig *c)
{
    char tmp[4200];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp) return; /* a cut name would write elsewhere: no cache then */
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    int32_t dims[4] = {c->n_layers, c->dim, st->head.s[0].cap, st->head.s[1].cap};
    int bad = fwrite(CACHE_MAGIC, 1, 8, f) != 8 || fwrite(dims, sizeof dims, 1, f) != 1;
    for (int i = 0; !bad && i <= st->n_layers * P_COUNT; i++) {
        const LinStats *l = stats_at((CalibStats *)st, i);
        if (!l) continue;
        for (int h = 0; !bad && h < 2; h++) {
            const LinSplit *sp = &l->s[h];
            int64_t hd[3] = {sp->count, sp->n_x, l->cols};
            bad = fwrite(hd, sizeof hd, 1, f) != 1 ||
                  fwrite(sp->sum_sq, sizeof *sp->sum_sq, (size_t)l->cols, f) != (size_t)l->cols ||
                  fwrite(sp->sum_abs, sizeof *sp->sum_abs, (size_t)l->cols, f) != (size_t)l->cols ||
                  fwrite(sp->x, sizeof *sp->x, (size_t)sp->n_x * l->cols, f) != (size_t)sp->n_x * l->cols;
        }
    }
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) unlink(tmp);
}

/* mkdir -p of dir (best effort). */
static void make_dirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            mkdir(p, 0755);
            *c = '/';
        }
    mkdir(p, 0755);
}

int calib_stats_get(CalibStats *st, const Model *src, Kern *k, const CalibSet *s, const char *cache_dir,
                    const CalibProgress *p, int *reused, Err *e)
{
    const ModelConfig *c = &src->cfg;
    int R = src->n_adapters + 1, cap[2], rc = 0, hits = 0;
    long long rows[2];
    split_caps(s, cap, rows);
    *reused = 0;
    if (stats_alloc(st, c, cap)) return err_set(e, "out of memory for calibration statistics");
    uint64_t bh = 0, sh = 0;
    if (cache_dir) {
        make_dirs(cache_dir);
        bh = base_hash(src);
        sh = set_hash(s);
    }
    /* pooled over the base and every adapter: one shared quantized base
     * serves them all, so it should fit the inputs each of them produces */
    for (int r = 0; r < R && !rc; r++) {
        CalibStats run;
        char path[4200] = "";
        if (cache_dir)
            snprintf(path, sizeof path, "%.4000s/calib-%016llx-%016llx-%016llx.stats", cache_dir, (unsigned long long)bh,
                     (unsigned long long)sh, (unsigned long long)(r ? src->adapters[r - 1].hash : 0));
        if (cache_dir && !cache_read(&run, path, c, s)) {
            hits++;
            if (p && p->tell) p->tell(p->ctx, (double)(r + 1) * s->n, (double)R * s->n);
        } else {
            if ((rc = collect_run(&run, src, k, s, r - 1, p, (double)r * s->n, (double)R * s->n, e))) break;
            if (cache_dir) cache_write(&run, path, c);
        }
        pool_add(st, &run, r, R);
        calib_stats_free(&run);
    }
    if (rc) calib_stats_free(st);
    *reused = !rc && hits == R;
    return rc;
}

/* log(sum(exp(x))) of n logits (expf: the terms are at most 1, summed in
 * double). */
static double log_sum_exp(const float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += expf(x[i] - mx);
    return mx + log(sum);
}

/* Index of the largest of n values (the first on ties), like argmax()
 * but keeping the best value in a register: the quality report runs it on
 * every position of every model over the whole vocabulary. */
static int top_id(const float *x, int n)
{
    int best = 0;
    float bv = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > bv) bv = x[i], best = i;
    return best;
}

/* All-position logits (n x vocab) of prompt ids through m with adapter lora. */
static int run_all(const Model *m, Kern *k, const Adapter *lora, const int *ids, int n, float *all, Err *e)
{
    Seq q;
    if (seq_init(&q, m, n, KV_F32, lora, e)) return -1;
    int rc = seq_prefill(&q, k, ids, n, 0, NULL, all, e);
    seq_free(&q);
    return rc;
}

int calib_quality(const Model *ref, const Model *const *qs, int nq, int ai, int split, Kern *k, const CalibSet *s,
                  double *top1, double *kl, double *nll, double *nll_ref, int *positions, Err *e)
{
    double *nlsum = calloc((size_t)nq, sizeof *nlsum), nl_ref = 0;
    long n_next = 0; /* positions with a next token */
    int V = ref->cfg.vocab_size, maxn = 0;
    for (int i = 0; i < s->n; i++) maxn = s->len[i] > maxn ? s->len[i] : maxn;
    float *a = malloc((size_t)maxn * V * sizeof *a), *b = malloc((size_t)maxn * V * sizeof *b);
    long *agree = calloc((size_t)nq, sizeof *agree), npos = 0;
    double *klsum = calloc((size_t)nq, sizeof *klsum);
    const Adapter *lr = ai >= 0 ? &ref->adapters[ai] : NULL;
    int rc = a && b && agree && klsum && nlsum ? 0 : err_set(e, "out of memory for the quality report");
    for (int i = 0; !rc && i < s->n; i++) {
        int n = s->len[i];
        if (split >= 0 && calib_held_out(i, s->n) != split) continue;
        if (run_all(ref, k, lr, s->ids[i], n, a, e)) {
            rc = -1;
            break;
        }
        int *ref_top = malloc((size_t)n * sizeof *ref_top);
        double *negent = malloc((size_t)n * sizeof *negent);
        if (!ref_top || !negent) {
            free(ref_top), free(negent);
            rc = err_set(e, "out of memory for the quality report");
            break;
        }
        /* the reference's probabilities replace its logits, with sum p log p
         * aside: then KL = sum p log p - sum p * logit_q + lse(logit_q) */
        for (int t = 0; t < n; t++) {
            float *ra = a + (size_t)t * V;
            ref_top[t] = top_id(ra, V);
            double la = log_sum_exp(ra, V), ne = 0;
            if (t + 1 < n) nl_ref += la - ra[s->ids[i][t + 1]];
            for (int j = 0; j < V; j++) {
                float lp = (float)((double)ra[j] - la), pj = expf(lp);
                ne += (double)pj * lp;
                ra[j] = pj;
            }
            negent[t] = ne;
        }
        for (int m = 0; !rc && m < nq; m++) {
            if (run_all(qs[m], k, ai >= 0 ? &qs[m]->adapters[ai] : NULL, s->ids[i], n, b, e)) {
                rc = -1;
                break;
            }
            for (int t = 0; t < n; t++) {
                const float *pa = a + (size_t)t * V, *rb = b + (size_t)t * V;
                double dot = 0;
                for (int j = 0; j < V; j++) dot += (double)pa[j] * rb[j];
                double lb = log_sum_exp(rb, V);
                agree[m] += ref_top[t] == top_id(rb, V);
                klsum[m] += negent[t] - dot + lb;
                if (t + 1 < n) nlsum[m] += lb - rb[s->ids[i][t + 1]];
            }
        }
        npos += n;
        n_next += n - 1;
        free(ref_top), free(negent);
    }
    if (!rc) {
        for (int m = 0; m < nq; m++) {
            top1[m] = npos ? (double)agree[m] / npos : 0;
            kl[m] = npos ? klsum[m] / npos : 0;
            nll[m] = n_next ? nlsum[m] / n_next : 0;
        }
        *nll_ref = n_next ? nl_ref / n_next : 0;
        *positions = (int)npos;
    }
    free(a), free(b), free(agree), free(klsum), free(nlsum);
    return rc;
}
