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

#define CALIB_MAX_TOKENS 512 /* per prompt: longer prompts are cut */

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
        } else {
            if (!*ct && base_dir) {
                char p[4096];
                snprintf(p, sizeof p, "%s/tokenizer_config.json", base_dir);
                *ct = chat_template_load_file(p, e);
            }
            if (!*ct && !base_dir) err_set(e, "no chat template");
            if (*ct) out = chat_template_render(*ct, msgs, NULL, 0, e);
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

int calib_collect(CalibStats *st, const Model *src, Kern *k, const CalibSet *s, Err *e)
{
    memset(st, 0, sizeof *st);
    const ModelConfig *c = &src->cfg;
    /* rows per split (every prompt runs once per adapter and once bare) and
     * the kept rows' budget: a quarter for the held-out split */
    long long rows[2] = {0, 0};
    for (int i = 0; i < s->n; i++) rows[calib_held_out(i, s->n)] += (long long)s->len[i] * (src->n_adapters + 1);
    int cap[2] = {rows[1] ? CALIB_SAMPLES - CALIB_SAMPLES / 4 : CALIB_SAMPLES, rows[1] ? CALIB_SAMPLES / 4 : 0};
    st->n_layers = c->n_layers;
    st->lin = calloc((size_t)c->n_layers * P_COUNT, sizeof *st->lin);
    int bad = !st->lin || lin_init(&st->head, c->dim, cap);
    for (int l = 0; !bad && l < c->n_layers; l++)
        for (int p = 0; !bad && p < P_COUNT; p++)
            if ((int)input_owner((Proj)p) == p) bad = lin_init(&st->lin[l * P_COUNT + p], proj_in(c, (Proj)p), cap);
    if (bad) {
        calib_stats_free(st);
        return err_set(e, "out of memory for calibration statistics");
    }
    /* keep every stride-th row, spreading the kept rows over the split */
    for (int h = 0; h < 2; h++) {
        int stride = cap[h] ? (int)(rows[h] / cap[h]) + 1 : 1;
        st->head.s[h].stride = stride;
        for (int i = 0; i < c->n_layers * P_COUNT; i++) st->lin[i].s[h].stride = stride;
    }
    Collect col = {st, 0};
    int maxn = 0;
    for (int i = 0; i < s->n; i++) maxn = s->len[i] > maxn ? s->len[i] : maxn;
    /* all positions' logits asked for, so the lm_head sees every row */
    float *lg = malloc((size_t)maxn * c->vocab_size * sizeof *lg);
    int rc = lg ? 0 : err_set(e, "out of memory");
    /* pooled over the base and every adapter: one shared quantized base
     * serves them all, so it should fit the inputs each of them produces */
    for (int run = 0; !rc && run <= src->n_adapters; run++)
    for (int i = 0; !rc && i < s->n; i++) {
        Seq q;
        if (seq_init(&q, src, s->len[i], KV_F32, run ? &src->adapters[run - 1] : NULL, e)) {
            rc = -1;
            break;
        }
        col.split = calib_held_out(i, s->n);
        q.s.on_input = on_input;
        q.s.on_input_ctx = &col;
        rc = seq_prefill(&q, k, s->ids[i], s->len[i], 0, NULL, lg, e);
        seq_free(&q);
    }
    free(lg);
    if (rc) calib_stats_free(st);
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
                  double *top1, double *kl, int *positions, Err *e)
{
    int V = ref->cfg.vocab_size, maxn = 0;
    for (int i = 0; i < s->n; i++) maxn = s->len[i] > maxn ? s->len[i] : maxn;
    float *a = malloc((size_t)maxn * V * sizeof *a), *b = malloc((size_t)maxn * V * sizeof *b);
    long *agree = calloc((size_t)nq, sizeof *agree), npos = 0;
    double *klsum = calloc((size_t)nq, sizeof *klsum);
    const Adapter *lr = ai >= 0 ? &ref->adapters[ai] : NULL;
    int rc = a && b && agree && klsum ? 0 : err_set(e, "out of memory for the quality report");
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
                agree[m] += ref_top[t] == top_id(rb, V);
                klsum[m] += negent[t] - dot + log_sum_exp(rb, V);
            }
        }
        npos += n;
        free(ref_top), free(negent);
    }
    if (!rc) {
        for (int m = 0; m < nq; m++) {
            top1[m] = npos ? (double)agree[m] / npos : 0;
            kl[m] = npos ? klsum[m] / npos : 0;
        }
        *positions = (int)npos;
    }
    free(a), free(b), free(agree), free(klsum);
    return rc;
}
