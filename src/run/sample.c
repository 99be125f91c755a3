#include "run/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

SampleParams sample_defaults(void)
{
    SampleParams p = {0};
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    return p;
}

SampleParams sample_model_defaults(const GenDefaults *g)
{
    SampleParams p = sample_defaults();
    if (!g->set) {
        p.temperature = 0.8f;
        p.top_k = 40;
        p.top_p = 0.95f;
        p.min_p = 0.05f;
        return p;
    }
    p.repetition_penalty = g->repetition_penalty;
    if (!g->do_sample) return p;
    p.temperature = g->temperature;
    p.top_k = g->top_k;
    p.top_p = g->top_p;
    p.min_p = g->min_p;
    return p;
}

int sampler_init(Sampler *s, const SampleParams *p, int vocab)
{
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->vocab = vocab;
    s->rng = p->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    s->prob = malloc((size_t)vocab * sizeof *s->prob);
    s->counts = calloc((size_t)vocab, sizeof *s->counts);
    s->sorted = malloc((size_t)vocab * sizeof *s->sorted);
    if (!s->cand || !s->prob || !s->counts || !s->sorted) {
        sampler_free(s);
        return -1;
    }
    return 0;
}

void sampler_free(Sampler *s)
{
    if (!s) return;
    free(s->cand);
    free(s->prob);
    free(s->counts);
    free(s->sorted);
    free(s->ban);
    memset(s, 0, sizeof *s);
}

void sampler_accept(Sampler *s, int token)
{
    if (token >= 0 && token < s->vocab) s->counts[token]++;
}

void sampler_reset(Sampler *s)
{
    memset(s->counts, 0, (size_t)s->vocab * sizeof *s->counts);
}

int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* splitmix64: small, fast, good enough for sampling */
static double rng_uniform(uint64_t *st)
{
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* descending logit, then ascending id: a total order, so results do not depend on qsort */
static int cmp_cand(const void *a, const void *b)
{
    const Cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

static void apply_penalties(Sampler *s, float *logits)
{
    const SampleParams *p = &s->p;
    if (p->repetition_penalty == 1.0f && p->frequency_penalty == 0 && p->presence_penalty == 0) return;
    for (int i = 0; i < s->vocab; i++) {
        int c = s->counts[i];
        if (!c) continue;
        if (p->repetition_penalty != 1.0f)
            logits[i] = logits[i] < 0 ? logits[i] * p->repetition_penalty : logits[i] / p->repetition_penalty;
        logits[i] -= (float)c * p->frequency_penalty + p->presence_penalty;
    }
}

int sampler_ban(Sampler *s, int id)
{
    if (id < 0 || id >= s->vocab) return 0;
    if (s->n_ban == s->cap_ban) {
        int nc = s->cap_ban ? 2 * s->cap_ban : 64;
        int *nb = realloc(s->ban, (size_t)nc * sizeof *nb);
        if (!nb) return -1;
        s->ban = nb;
        s->cap_ban = nc;
    }
    s->ban[s->n_ban++] = id;
    return 0;
}

int sampler_sample(Sampler *s, float *logits)
{
    const SampleParams *p = &s->p;
    int bad = 0;
    for (int i = 0; i < s->vocab; i++) bad |= !(logits[i] < INFINITY); /* NaN or +inf */
    if (bad) return -1;
    for (int i = 0; i < s->n_ban; i++) logits[s->ban[i]] = -INFINITY;
    apply_penalties(s, logits);
    int best = argmax(logits, s->vocab);
    if (!(logits[best] > -INFINITY)) return -1; /* every id banned or -inf */
    if (p->temperature < 1e-6f) return best;
    float mx = logits[best];
    /* candidates: tokens within exp(-30) of the best; the rest carry < 1e-8 of the mass */
    int n = 0;
    float cut = mx - 30.0f * p->temperature;
    for (int i = 0; i < s->vocab; i++)
        if (logits[i] >= cut && logits[i] > -INFINITY) s->cand[n++] = i; /* at least the best: mx is finite */
    for (int i = 0; i < n; i++) {
        s->sorted[i].id = s->cand[i];
        s->sorted[i].logit = (float)(((double)logits[s->cand[i]] - mx) / p->temperature); /* in -30 .. 0 */
    }
    qsort(s->sorted, (size_t)n, sizeof *s->sorted, cmp_cand);
    for (int i = 0; i < n; i++) s->cand[i] = s->sorted[i].id;
    if (p->top_k > 0 && n > p->top_k) n = p->top_k;
    double sum = 0, m = s->sorted[0].logit;
    for (int i = 0; i < n; i++) sum += (s->prob[i] = (float)exp(s->sorted[i].logit - m));
    if (p->top_p < 1.0f) {
        double acc = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += s->prob[i] / sum;
            if (acc >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0) {
        int keep = 1;
        while (keep < n && s->prob[keep] >= p->min_p * s->prob[0]) keep++;
        n = keep;
    }
    sum = 0;
    for (int i = 0; i < n; i++) sum += s->prob[i];
    double r = rng_uniform(&s->rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->prob[i];
        if (r < acc) return s->cand[i];
    }
    return s->cand[n - 1];
}

void sampler_set_params(Sampler *s, const SampleParams *p)
{
    s->p = *p;
    s->rng = p->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
}

/* Temperature sampling without truncation: the softmax over every token in
 * id order (the same distribution as sampler_sample's sorted walk, in O(vocab)). */
static int sample_plain(Sampler *s, const float *logits)
{
    float mx = logits[argmax(logits, s->vocab)], t = s->p.temperature;
    float cut = mx - 30.0f * t;
    double sum = 0;
    for (int i = 0; i < s->vocab; i++)
        if (logits[i] >= cut) sum += exp((logits[i] - mx) / t);
    double r = rng_uniform(&s->rng) * sum, acc = 0;
    int last = 0;
    for (int i = 0; i < s->vocab; i++)
        if (logits[i] >= cut) {
            acc += exp((logits[i] - mx) / t);
            last = i;
            if (r < acc) return i;
        }
    return last;
}

int sampler_sample_masked(Sampler *s, float *logits, const uint32_t *mask)
{
    int any = 0;
    for (int w = 0; w < (s->vocab + 31) / 32; w++) {
        uint32_t m = mask[w];
        if (m == 0xffffffffu) {
            any = 1;
            continue;
        }
        int lo = w * 32, hi = lo + 32 < s->vocab ? lo + 32 : s->vocab;
        for (int i = lo; i < hi; i++)
            if (!((m >> (i - lo)) & 1)) logits[i] = -INFINITY;
            else any = 1;
    }
    if (!any) return -1;
    const SampleParams *p = &s->p;
    if (p->temperature >= 1e-6f && p->top_k == 0 && p->top_p >= 1.0f && p->min_p <= 0) {
        for (int i = 0; i < s->vocab; i++)
            if (!(logits[i] < INFINITY)) return -1; /* NaN or +inf */
        for (int i = 0; i < s->n_ban; i++) logits[s->ban[i]] = -INFINITY;
        apply_penalties(s, logits);
        if (!(logits[argmax(logits, s->vocab)] > -INFINITY)) return -1;
        return sample_plain(s, logits);
    }
    return sampler_sample(s, logits);
}
