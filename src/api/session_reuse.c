/* session_reuse.c - what a server needs to reuse one session for many
 * requests: a new prompt or message history that keeps the cached prefix,
 * the tokens to compare prompts against, the log-probabilities of a
 * generated token, and the KV budget set after the open. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

int duet_session_set_prompt(duet_session *s, const int *ids, int n)
{
    if (!s || n < 0 || (n && !ids)) return api_serr(s, DUET_ERR_ARG, "set_prompt: bad argument");
    int c = 0;
    while (c < n && c < s->n_hist && ids[c] == s->hist[c]) c++;
    int keep = s->n_past < c ? s->n_past : c;
    cJSON_Delete(s->messages);
    s->messages = NULL;
    s->n_hist = c;
    sampler_reset(&s->smp);
    for (int i = 0; i < c; i++) sampler_accept(&s->smp, s->hist[i]);
    int rc = duet_session_append_tokens(s, ids + c, n - c);
    if (rc) {
        duet_session_clear(s);
        return rc;
    }
    s->n_past = keep;
    return DUET_OK;
}

int duet_session_set_messages(duet_session *s, const char *messages_json)
{
    if (!s || !messages_json) return api_serr(s, DUET_ERR_ARG, "set_messages: NULL argument");
    if (!s->md->tmpl || !s->md->tok) return api_serr(s, DUET_ERR_NOT_FOUND, "the model has no chat template or tokenizer");
    cJSON *in = cJSON_Parse(messages_json);
    if (!cJSON_IsArray(in)) {
        cJSON_Delete(in);
        return api_serr(s, DUET_ERR_ARG, "messages: expected a JSON array of {role, content}");
    }
    /* each message goes through duet_session_append_message_json (its checks
     * and normal form) into a fresh history; the tokens stay, so the next
     * generate's render keeps their common prefix */
    cJSON *old = s->messages;
    s->messages = cJSON_CreateArray();
    int i = 0, rc = s->messages ? DUET_OK : api_serr(s, DUET_ERR_NOMEM, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, in)
    {
        if (rc) break;
        char *t = cJSON_PrintUnformatted(m);
        rc = t ? duet_session_append_message_json(s, t) : api_serr(s, DUET_ERR_NOMEM, "out of memory");
        free(t);
        if (rc) {
            char why[sizeof s->err];
            snprintf(why, sizeof why, "%s", s->err);
            api_serr(s, rc, "messages[%d]: %s", i, why);
        }
        i++;
    }
    cJSON_Delete(in);
    if (rc) {
        cJSON_Delete(s->messages);
        s->messages = old;
        return rc;
    }
    cJSON_Delete(old);
    return DUET_OK;
}

char *duet_session_messages_json(const duet_session *s)
{
    return s && s->messages ? cJSON_PrintUnformatted(s->messages) : NULL;
}

const int *duet_session_tokens(const duet_session *s, int *n)
{
    if (n) *n = s ? s->n_hist : 0;
    return s ? s->hist : NULL;
}

int duet_session_logprobs(const duet_session *s, int token, float *logprob, duet_logprob *top, int top_n)
{
    if (!s || top_n < 0 || (top_n && !top)) return DUET_ERR_ARG;
    int V = s->md->m.cfg.vocab_size;
    if (token < 0 || token >= V) return DUET_ERR_ARG;
    const float *x = s->logits;
    float mx = x[argmax(x, V)];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)x[i] - mx);
    float lse = mx + (float)log(sum);
    if (logprob) *logprob = x[token] - lse;
    int k = 0;
    for (int i = 0; i < V; i++) { /* insertion into a short sorted list */
        if (k == top_n && (k == 0 || x[i] <= top[k - 1].logprob)) continue;
        int j = k < top_n ? k++ : k - 1;
        while (j > 0 && top[j - 1].logprob < x[i]) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (duet_logprob){i, x[i]};
    }
    for (int i = 0; i < k; i++) top[i].logprob -= lse;
    return k;
}

int duet_model_set_kv_budget(duet_model *m, size_t bytes)
{
    if (!m) return DUET_ERR_ARG;
    pthread_mutex_lock(&m->lock);
    int ok = !bytes || bytes >= m->kv_used;
    if (ok) m->kv_budget = bytes;
    pthread_mutex_unlock(&m->lock);
    return ok ? DUET_OK : api_merr(m, DUET_ERR_BUDGET, "kv budget %zu bytes: %zu are in use already", bytes, m->kv_used);
}
