#include "run/seq.h"

#include <stdlib.h>
#include <string.h>

int seq_init(Seq *q, const Model *m, int n_ctx, KvType kv_type, const Adapter *lora, Err *e)
{
    memset(q, 0, sizeof *q);
    q->m = m;
    q->lora = lora;
    return kv_init(&q->kv, &m->cfg, n_ctx, kv_type, e);
}

void seq_free(Seq *q)
{
    if (!q) return;
    kv_free(&q->kv);
    scratch_free(&q->s);
    memset(q, 0, sizeof *q);
}

void seq_reset(Seq *q) { q->n_past = 0; }

int seq_prefill(Seq *q, Kern *k, const int *tokens, int n, int chunk, float *logits_last, float *logits_all, Err *e)
{
    if (n <= 0) return err_set(e, "prefill needs at least one token");
    if (n > q->kv.n_ctx - q->n_past)
        return err_set(e, "%d tokens do not fit: %d of %d context positions are in use", n, q->n_past, q->kv.n_ctx);
    if (chunk <= 0 || chunk > n) chunk = n;
    BatchRow *rows = malloc((size_t)chunk * sizeof *rows);
    if (!rows) return err_set(e, "out of memory");
    int vocab = q->m->cfg.vocab_size, rc = 0;
    for (int s = 0; s < n && !rc; s += chunk) {
        int c = n - s < chunk ? n - s : chunk;
        for (int i = 0; i < c; i++) {
            int t = s + i;
            rows[i] = (BatchRow){tokens[t], q->n_past + i, &q->kv, q->lora, NULL};
            if (logits_all) rows[i].logits = logits_all + (size_t)t * vocab;
            else if (t == n - 1) rows[i].logits = logits_last;
        }
        rc = forward(q->m, k, &q->s, rows, c, e);
        if (!rc) q->n_past += c;
    }
    if (!rc && logits_all && logits_last) memcpy(logits_last, logits_all + (size_t)(n - 1) * vocab, vocab * sizeof(float));
    free(rows);
    return rc;
}

int seq_decode(Seq *q, Kern *k, int token, float *logits, Err *e)
{
    if (q->n_past >= q->kv.n_ctx) return err_set(e, "the context is full (%d tokens)", q->kv.n_ctx);
    BatchRow row = {token, q->n_past, &q->kv, q->lora, logits};
    if (forward(q->m, k, &q->s, &row, 1, e)) return -1;
    q->n_past++;
    return 0;
}
