/* calibrate.c - the calibration set (JSON lines of {"text": ...} or
 * {"messages": [...]}), the activation statistics collected by running it
 * through the unquantized base model, and the quality report (top-1
 * agreement, KL) of a quantized model against the unquantized one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/compile_int.h"
#include "run/sample.h"
#include "run/seq.h"
#include "text/chat.h"
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
    cJSON *j = json_parse(line, len, name, e);
    if (!j) return NULL;
    char *out = NULL;
    const cJSON *txt = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    if (!cJSON_IsObject(j)) {
        err_set(e, "%s: expected a JSON object with \"text\" or \"messages\"", name);
    } else if (txt) {
        if (!cJSON_IsString(txt) || !txt->valuestring[0]) err_set(e, "%s: field \"text\": expected a non-empty string", name);
        else if (!(out = strdup(txt->valuestring))) err_set(e, "out of memory");
    } else if (msgs) {
        if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
            err_set(e, "%s: field \"messages\": expected a non-empty array of {role, content}", name);
        } else {
            if (!*ct) {
                char p[4096];
                snprintf(p, sizeof p, "%s/tokenizer_config.json", base_dir);
                *ct = chat_template_load_file(p, e);
            }
            if (*ct) out = chat_template_render(*ct, msgs, NULL, 0, e);
            if (!out) err_prefix(e, "%s: ", name);
        }
    } else {
        err_set(e, "%s: expected a field \"text\" or \"messages\"", name);
    }
    cJSON_Delete(j);
    return out;
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
    int rc = tok ? 0 : -1, lineno = 0, cap = 0;
    for (char *p = buf; !rc && p < buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
        lineno++;
        char *line = p;
        p += ll + 1;
        size_t k = 0;
        while (k < ll && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == ll) continue; /* blank lines are allowed */
        char *text = line_text(line, ll, path, lineno, base_dir, &ct, e);
        if (!text) {
            rc = -1;
            break;
        }
        int *ids = NULL, n = 0;
        if (tokenizer_encode(tok, text, strlen(text), &ids, &n, e)) {
            rc = err_prefix(e, "%s:%d: ", path, lineno);
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
    tokenizer_free(tok);
    chat_template_free(ct);
    free(buf);
    if (rc) calib_free(s);
    return rc;
}

static int lin_init(LinStats *l, int cols)
{
    l->cols = cols;
    l->sum_sq = calloc((size_t)cols, sizeof *l->sum_sq);
    l->sum_abs = calloc((size_t)cols, sizeof *l->sum_abs);
    l->x = malloc((size_t)CALIB_SAMPLES * cols * sizeof *l->x);
    return l->sum_sq && l->sum_abs && l->x ? 0 : -1;
}

static void lin_free(LinStats *l)
{
    free(l->sum_sq);
    free(l->sum_abs);
    free(l->x);
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

typedef struct Collect {
    CalibStats *st;
    int stride;       /* keep every stride-th row seen */
} Collect;

static void on_input(void *ctx, int layer, int proj, const float *x, int n, int cols)
{
    Collect *c = ctx;
    LinStats *l = layer < 0 ? &c->st->head : &c->st->lin[layer * P_COUNT + proj];
    if (l->cols != cols) return;
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * cols;
        for (int j = 0; j < cols; j++) {
            l->sum_sq[j] += (double)r[j] * r[j];
            l->sum_abs[j] += fabs(r[j]);
        }
        if (l->n_x < CALIB_SAMPLES && l->count % c->stride == 0)
            memcpy(l->x + (size_t)l->n_x++ * cols, r, (size_t)cols * sizeof *r);
        l->count++;
    }
}

int calib_collect(CalibStats *st, const Model *src, Kern *k, const CalibSet *s, Err *e)
{
    memset(st, 0, sizeof *st);
    const ModelConfig *c = &src->cfg;
    st->n_layers = c->n_layers;
    st->lin = calloc((size_t)c->n_layers * P_COUNT, sizeof *st->lin);
    int bad = !st->lin || lin_init(&st->head, c->dim);
    for (int l = 0; !bad && l < c->n_layers; l++)
        for (int p = 0; !bad && p < P_COUNT; p++) bad = lin_init(&st->lin[l * P_COUNT + p], proj_in(c, (Proj)p));
    if (bad) {
        calib_stats_free(st);
        return err_set(e, "out of memory for calibration statistics");
    }
    /* spread the kept rows over the whole set */
    Collect col = {st, s->tokens / CALIB_SAMPLES + 1};
    int maxn = 0;
    for (int i = 0; i < s->n; i++) maxn = s->len[i] > maxn ? s->len[i] : maxn;
    /* all positions' logits asked for, so the lm_head sees every row */
    float *lg = malloc((size_t)maxn * c->vocab_size * sizeof *lg);
    int rc = lg ? 0 : err_set(e, "out of memory");
    /* pooled over the base and every adapter: one shared quantized base
     * serves them all, so it should fit the inputs each of them produces */
    col.stride = (s->tokens * (src->n_adapters + 1)) / CALIB_SAMPLES + 1;
    for (int run = 0; !rc && run <= src->n_adapters; run++)
    for (int i = 0; !rc && i < s->n; i++) {
        Seq q;
        if (seq_init(&q, src, s->len[i], KV_F32, run ? &src->adapters[run - 1] : NULL, e)) {
            rc = -1;
            break;
        }
        q.s.on_input = on_input;
        q.s.on_input_ctx = &col;
        rc = seq_prefill(&q, k, s->ids[i], s->len[i], 0, NULL, lg, e);
        seq_free(&q);
    }
    free(lg);
    if (rc) calib_stats_free(st);
    return rc;
}

/* log-softmax of n logits into out. */
static void log_softmax(double *out, const float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    double lse = mx + log(sum);
    for (int i = 0; i < n; i++) out[i] = x[i] - lse;
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

int calib_quality(const Model *ref, const Model *q, int ai, Kern *k, const CalibSet *s, double *top1, double *kl,
                  int *positions, Err *e)
{
    int V = ref->cfg.vocab_size, maxn = 0;
    for (int i = 0; i < s->n; i++) maxn = s->len[i] > maxn ? s->len[i] : maxn;
    float *a = malloc((size_t)maxn * V * sizeof *a), *b = malloc((size_t)maxn * V * sizeof *b);
    double *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    const Adapter *lr = ai >= 0 ? &ref->adapters[ai] : NULL, *lq = ai >= 0 ? &q->adapters[ai] : NULL;
    int rc = a && b && la && lb ? 0 : err_set(e, "out of memory for the quality report");
    long agree = 0, npos = 0;
    double klsum = 0;
    for (int i = 0; !rc && i < s->n; i++) {
        int n = s->len[i];
        if (run_all(ref, k, lr, s->ids[i], n, a, e) || run_all(q, k, lq, s->ids[i], n, b, e)) {
            rc = -1;
            break;
        }
        for (int t = 0; t < n; t++) {
            const float *ra = a + (size_t)t * V, *rb = b + (size_t)t * V;
            agree += argmax(ra, V) == argmax(rb, V);
            log_softmax(la, ra, V);
            log_softmax(lb, rb, V);
            double d = 0;
            for (int j = 0; j < V; j++) d += exp(la[j]) * (la[j] - lb[j]);
            klsum += d;
            npos++;
        }
    }
    if (!rc) {
        *top1 = npos ? (double)agree / npos : 0;
        *kl = npos ? klsum / npos : 0;
        *positions = (int)npos;
    }
    free(a), free(b), free(la), free(lb);
    return rc;
}
