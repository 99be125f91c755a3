/* session_reuse.c - what a server needs to reuse one session for many
 * requests: a new prompt or message history that keeps the cached prefix, the tokens to compare prompts against, and the
 * log-probabilities of a generated token. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "text/utf8.h"

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

/* Checks one message and returns a {role, content[, other fields]} copy with
 * content as a plain string (text parts joined); NULL with the message set. */
static cJSON *norm_message(duet_session *s, const cJSON *in, int i)
{
    if (!cJSON_IsObject(in)) return api_serr(s, DUET_ERR_ARG, "messages[%d]: expected an object", i), NULL;
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(in, "role");
    if (!cJSON_IsString(role) || (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
                                  strcmp(role->valuestring, "assistant") && strcmp(role->valuestring, "tool")))
        return api_serr(s, DUET_ERR_ARG, "messages[%d].role: expected system, user, assistant or tool", i), NULL;
    cJSON *out = cJSON_Duplicate(in, 1);
    if (!out) return api_serr(s, DUET_ERR_NOMEM, "out of memory"), NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(in, "content");
    char *text = NULL;
    size_t len = 0;
    if (cJSON_IsString(c)) {
        text = strdup(c->valuestring);
    } else if (!c || cJSON_IsNull(c)) {
        text = strdup("");
    } else if (cJSON_IsArray(c)) {
        text = strdup("");
        const cJSON *part;
        int k = 0;
        cJSON_ArrayForEach(part, c)
        {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
                free(text);
                cJSON_Delete(out);
                return api_serr(s, DUET_ERR_ARG, "messages[%d].content[%d]: expected {\"type\": \"text\", \"text\": string}", i,
                                k),
                       NULL;
            }
            size_t tl = strlen(tx->valuestring);
            char *t = text ? realloc(text, len + tl + 1) : NULL;
            if (!t) break;
            memcpy(t + len, tx->valuestring, tl + 1);
            text = t;
            len += tl;
            k++;
        }
    } else {
        cJSON_Delete(out);
        return api_serr(s, DUET_ERR_ARG, "messages[%d].content: expected a string, null or a list of text parts", i), NULL;
    }
    if (!text) {
        cJSON_Delete(out);
        return api_serr(s, DUET_ERR_NOMEM, "out of memory"), NULL;
    }
    size_t n = strlen(text);
    for (size_t j = 0; j < n;) {
        int k = utf8_check((const unsigned char *)text + j, n - j);
        if (k <= 0) {
            free(text);
            cJSON_Delete(out);
            return api_serr(s, DUET_ERR_UTF8, "messages[%d].content: invalid UTF-8 at byte %zu", i, j), NULL;
        }
        j += (size_t)k;
    }
    cJSON *str = cJSON_CreateString(text);
    free(text);
    if (!str || !cJSON_ReplaceItemInObjectCaseSensitive(out, "content", str)) {
        if (str && !cJSON_GetObjectItemCaseSensitive(out, "content") && cJSON_AddItemToObject(out, "content", str)) return out;
        cJSON_Delete(str);
        cJSON_Delete(out);
        return api_serr(s, DUET_ERR_NOMEM, "out of memory"), NULL;
    }
    return out;
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
    cJSON *out = cJSON_CreateArray();
    int i = 0, rc = out ? DUET_OK : api_serr(s, DUET_ERR_NOMEM, "out of memory");
    const cJSON *msg;
    cJSON_ArrayForEach(msg, in)
    {
        if (rc) break;
        cJSON *nm = norm_message(s, msg, i++);
        if (!nm) rc = strstr(s->err, "UTF-8") ? DUET_ERR_UTF8 : strstr(s->err, "memory") ? DUET_ERR_NOMEM : DUET_ERR_ARG;
        else cJSON_AddItemToArray(out, nm);
    }
    cJSON_Delete(in);
    if (rc) {
        cJSON_Delete(out);
        return rc;
    }
    /* the tokens stay: the next generate's render keeps their common prefix */
    cJSON_Delete(s->messages);
    s->messages = out;
    return DUET_OK;
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
