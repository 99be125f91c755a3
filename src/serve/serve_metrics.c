/* serve_metrics.c - the counters behind /metrics, in Prometheus' text format
 * (version 0.0.4): requests by model and status, token counts, and
 * histograms of time to first token, inter-token gaps and request time. */
#include <stdio.h>
#include <string.h>

#include "serve/serve.h"

/* upper bounds in seconds, shared by the three histograms */
static const double bounds[HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10,   30};

void metrics_init(Metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}

void metrics_destroy(Metrics *m) { pthread_mutex_destroy(&m->lock); }

static void hist_add(Hist *h, double v)
{
    int i = 0;
    while (i < HIST_BUCKETS && v > bounds[i]) i++;
    h->count[i]++;
    h->sum += v;
    h->n++;
}

void metrics_request(Metrics *m, const char *model, int status)
{
    pthread_mutex_lock(&m->lock);
    int i;
    for (i = 0; i < m->n_req; i++)
        if (m->req[i].status == status && !strcmp(m->req[i].model, model)) break;
    if (i == m->n_req && m->n_req < (int)(sizeof m->req / sizeof m->req[0])) {
        snprintf(m->req[i].model, sizeof m->req[i].model, "%s", model);
        m->req[i].status = status;
        m->n_req++;
    }
    if (i < m->n_req) m->req[i].n++; /* past 256 (model, status) pairs new ones are not counted */
    pthread_mutex_unlock(&m->lock);
}

void metrics_result(Metrics *m, const GenResult *g, int aborted)
{
    pthread_mutex_lock(&m->lock);
    m->prompt_tokens += (uint64_t)g->n_prompt;
    m->cached_tokens += (uint64_t)g->n_cached;
    m->gen_tokens += (uint64_t)g->n_gen;
    m->aborted += aborted ? 1 : 0;
    if (g->n_gen) hist_add(&m->ttft, g->ttft_s);
    hist_add(&m->e2e, g->total_s);
    pthread_mutex_unlock(&m->lock);
}

void metrics_itl(Metrics *m, double s)
{
    pthread_mutex_lock(&m->lock);
    hist_add(&m->itl, s);
    pthread_mutex_unlock(&m->lock);
}

/* Prometheus label values escape \ " and newline. */
static void label(Buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') buf_add(b, "\\", 1);
        if (*s == '\n') buf_add(b, "\\n", 2);
        else buf_add(b, s, 1);
    }
}

static void hist_text(Buf *b, const char *name, const char *help, const Hist *h)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t acc = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        acc += h->count[i];
        buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)acc);
    }
    acc += h->count[HIST_BUCKETS];
    buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)acc, name, h->sum,
               name, (unsigned long long)h->n);
}

int metrics_text(Metrics *m, Buf *b, int queued, int active, int idle, size_t kv_used, size_t kv_budget)
{
    pthread_mutex_lock(&m->lock);
    buf_printf(b, "# HELP duet_requests_total HTTP requests by model and status.\n# TYPE duet_requests_total counter\n");
    for (int i = 0; i < m->n_req; i++) {
        buf_printf(b, "duet_requests_total{model=\"");
        label(b, m->req[i].model);
        buf_printf(b, "\",status=\"%d\"} %llu\n", m->req[i].status, (unsigned long long)m->req[i].n);
    }
    buf_printf(b, "# HELP duet_prompt_tokens_total Prompt tokens of finished generations.\n# TYPE duet_prompt_tokens_total counter\n"
                  "duet_prompt_tokens_total %llu\n",
               (unsigned long long)m->prompt_tokens);
    buf_printf(b, "# HELP duet_cached_prompt_tokens_total Prompt tokens reused from the prefix cache.\n"
                  "# TYPE duet_cached_prompt_tokens_total counter\nduet_cached_prompt_tokens_total %llu\n",
               (unsigned long long)m->cached_tokens);
    buf_printf(b, "# HELP duet_generated_tokens_total Generated tokens.\n# TYPE duet_generated_tokens_total counter\n"
                  "duet_generated_tokens_total %llu\n",
               (unsigned long long)m->gen_tokens);
    buf_printf(b, "# HELP duet_aborted_total Generations stopped because the client went away.\n"
                  "# TYPE duet_aborted_total counter\nduet_aborted_total %llu\n",
               (unsigned long long)m->aborted);
    hist_text(b, "duet_time_to_first_token_seconds", "Request arrival to first generated token.", &m->ttft);
    hist_text(b, "duet_inter_token_seconds", "Time between consecutive generated tokens.", &m->itl);
    hist_text(b, "duet_request_seconds", "Request arrival to the last token.", &m->e2e);
    pthread_mutex_unlock(&m->lock);
    buf_printf(b, "# HELP duet_queue_depth Requests waiting for a generation slot.\n# TYPE duet_queue_depth gauge\n"
                  "duet_queue_depth %d\n",
               queued);
    buf_printf(b, "# HELP duet_requests_running Requests holding a generation slot.\n# TYPE duet_requests_running gauge\n"
                  "duet_requests_running %d\n",
               active);
    buf_printf(b, "# HELP duet_idle_sessions Finished sessions kept for prefix reuse.\n# TYPE duet_idle_sessions gauge\n"
                  "duet_idle_sessions %d\n",
               idle);
    buf_printf(b, "# HELP duet_kv_bytes_in_use KV cache bytes held by running and idle sessions.\n"
                  "# TYPE duet_kv_bytes_in_use gauge\nduet_kv_bytes_in_use %zu\n",
               kv_used);
    return buf_printf(b, "# HELP duet_kv_bytes_budget The KV budget (--kv-budget).\n# TYPE duet_kv_bytes_budget gauge\n"
                         "duet_kv_bytes_budget %zu\n",
                      kv_budget);
}
