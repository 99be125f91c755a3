/* test_sched.c - the scheduler through duet.h: eight threads with their own
 * sessions (base, alpha, beta) on one model give exactly the tokens each
 * gives alone and the transformers goldens; a 2,000-token prompt does not
 * stall another session's stream; abort from another thread. Prints the
 * measured gaps and the aggregate tokens per second per session count. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "duet.h"
#include "golden.h"

#define ALPHA "alpha=tests/fixtures/models/tiny-qwen2-lora-alpha"
#define BETA "beta=tests/fixtures/models/tiny-qwen2-lora-beta"
#define STEPS 24

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *runs[3] = {"base", "alpha", "beta"};

static int *golden_ids(const cJSON *g, const char *run, int p, const char *key, int *n)
{
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "runs"), run), p);
    const cJSON *ids = cJSON_GetObjectItem(r, key);
    *n = cJSON_GetArraySize(ids);
    int *v = malloc((size_t)*n * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(ids, i)->valueint;
    return v;
}

typedef struct Job {
    duet_model *m;
    const char *adapter;
    const int *prompt;
    int n_prompt, steps;
    int out[64];
    int n_out, rc;
    duet_stats st;
} Job;

static int collect_id(void *user, const char *piece, size_t len, int token)
{
    (void)piece;
    (void)len;
    Job *j = user;
    if (token >= 0 && j->n_out < 64) j->out[j->n_out++] = token;
    return 0;
}

static void *run_job(void *arg)
{
    Job *j = arg;
    duet_session_options o;
    duet_session_options_default(&o);
    o.adapter = j->adapter;
    o.n_ctx = j->n_prompt + j->steps + 1;
    o.kv_type = DUET_KV_F32;
    o.max_tokens = j->steps;
    o.ignore_eos = 1;
    duet_session *s;
    j->n_out = 0;
    j->rc = duet_session_create(j->m, &o, &s);
    if (j->rc) return NULL;
    j->rc = duet_session_append_tokens(s, j->prompt, j->n_prompt);
    if (!j->rc) j->rc = duet_generate(s, collect_id, j);
    duet_session_stats(s, &j->st);
    duet_session_close(s);
    return NULL;
}

/* A streaming session: timestamps of its tokens. */
typedef struct Stream {
    duet_session *s;
    double *t;
    atomic_int n;
    int cap;
    atomic_int rc;
} Stream;

static int stamp(void *user, const char *piece, size_t len, int token)
{
    (void)piece;
    (void)len;
    Stream *st = user;
    int i = atomic_load(&st->n);
    if (token >= 0 && i < st->cap) {
        st->t[i] = now_s();
        atomic_store(&st->n, i + 1);
    }
    return 0;
}

static void *run_stream(void *arg)
{
    Stream *st = arg;
    int rc = duet_generate(st->s, stamp, st);
    if (rc < 0) printf("stream: %s\n", duet_session_errmsg(st->s));
    st->rc = rc;
    return NULL;
}

static void test_threads(duet_model *m, const cJSON *g)
{
    Job alone[8], many[8];
    int *prompts[3], np[3];
    for (int p = 0; p < 3; p++) prompts[p] = golden_ids(g, "base", p, "prompt_ids", &np[p]);
    for (int i = 0; i < 8; i++) {
        alone[i] = (Job){m, i % 3 ? runs[i % 3] : NULL, prompts[(i / 3) % 2], np[(i / 3) % 2], STEPS, {0}, 0, 0, {0, 0, 0, 0, 0}};
        run_job(&alone[i]);
        CHECK(alone[i].rc == DUET_FINISH_LENGTH && alone[i].n_out == STEPS, "alone %d: rc %d, %d tokens", i,
              alone[i].rc, alone[i].n_out);
        /* the goldens: prompts 0 and 1 of base / alpha / beta */
        int n, *want = golden_ids(g, runs[i % 3], (i / 3) % 2, "greedy_ids", &n);
        CHECK(n == STEPS && !memcmp(want, alone[i].out, sizeof(int) * STEPS), "session %s prompt %d: golden greedy ids",
              runs[i % 3], (i / 3) % 2);
        free(want);
    }
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        many[i] = alone[i];
        pthread_create(&th[i], NULL, run_job, &many[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++)
        CHECK(many[i].rc == DUET_FINISH_LENGTH && many[i].n_out == STEPS &&
                  !memcmp(many[i].out, alone[i].out, sizeof(int) * STEPS),
              "8 threads: session %d (%s) gives the tokens it gives alone", i, runs[i % 3]);
    /* aggregate throughput against the number of sessions */
    for (int ns = 1; ns <= 8; ns *= 2) {
        Job jb[8];
        double t0 = now_s();
        for (int i = 0; i < ns; i++) {
            jb[i] = alone[i];
            jb[i].steps = 48;
            jb[i].prompt = prompts[1];
            jb[i].n_prompt = np[1];
            pthread_create(&th[i], NULL, run_job, &jb[i]);
        }
        int tot = 0;
        double ttft = 0, itl = 0;
        for (int i = 0; i < ns; i++) {
            pthread_join(th[i], NULL);
            tot += jb[i].n_out;
            ttft += jb[i].st.ttft_s / ns;
            itl += jb[i].st.gen_s / (jb[i].st.n_gen > 1 ? jb[i].st.n_gen - 1 : 1) / ns;
        }
        double dt = now_s() - t0;
        printf("throughput: %d sessions, %d tokens in %.3f s: %.0f tok/s aggregate; mean TTFT %.2f ms, "
               "mean inter-token %.2f ms\n", ns, tot, dt, tot / dt, ttft * 1e3, itl * 1e3);
    }
    for (int p = 0; p < 3; p++) free(prompts[p]);
}

static void test_long_prompt(duet_model *m, const cJSON *g)
{
    int np;
    int *p = golden_ids(g, "base", 2, "prompt_ids", &np);
    int nlong = 0, *lp = malloc(2048 * sizeof *lp);
    while (nlong + np <= 2000) {
        memcpy(lp + nlong, p, (size_t)np * sizeof *p);
        nlong += np;
    }
    memcpy(lp + nlong, p, (size_t)(2000 - nlong) * sizeof *p);
    nlong = 2000;
    duet_session_options o;
    duet_session_options_default(&o);
    o.ignore_eos = 1;
    o.n_ctx = 2048;
    o.kv_type = DUET_KV_F16; /* the default cache type */
    duet_session *a, *b, *c;
    Stream st = {0};

    st.cap = 1 << 16;
    st.t = malloc((size_t)st.cap * sizeof *st.t);
    int ok = !duet_session_create(m, &o, &a);
    o.max_tokens = 1; /* b and c: time to the first token = their prefill */
    ok = ok && !duet_session_create(m, &o, &b) && !duet_session_create(m, &o, &c);
    CHECK(ok, "long prompt: sessions: %s", duet_model_errmsg(m));
    if (!ok) return;
    /* one chunk's time: a 64-token prompt alone */
    duet_stats cs;
    double chunk_s = 1e9;
    for (int r = 0; r < 3; r++) {
        duet_session_clear(c);
        duet_session_append_tokens(c, lp, 64);
        duet_generate(c, NULL, NULL);
        duet_session_stats(c, &cs);
        if (cs.ttft_s < chunk_s) chunk_s = cs.ttft_s;
    }
    st.s = a;
    duet_session_append_tokens(a, p, 8);
    pthread_t th;
    pthread_create(&th, NULL, run_stream, &st);
    st.rc = -100;
    while (atomic_load(&st.n) < 5 && st.rc == -100) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    duet_session_append_tokens(b, lp, nlong);
    double t0 = now_s();
    int rb = duet_generate(b, NULL, NULL);
    (void)rb;
    duet_stats bs;
    duet_session_stats(b, &bs);
    double t1 = t0 + bs.ttft_s;
    duet_session_abort(a);
    double ta = now_s();
    pthread_join(th, NULL);
    double abort_s = now_s() - ta;
    int n = atomic_load(&st.n), during = 0;
    double gap = 0;
    for (int i = 1; i < n; i++) {
        if (st.t[i] < t0 || st.t[i - 1] > t1) continue;
        during++;
        if (st.t[i] - st.t[i - 1] > gap) gap = st.t[i] - st.t[i - 1];
    }
    printf("long prompt: %d tokens prefilled in %.1f ms; stream got %d tokens meanwhile, max gap %.2f ms; "
           "one 64-token chunk at position 0 %.2f ms; abort took %.2f ms\n",
           nlong, bs.ttft_s * 1e3, during, gap * 1e3, chunk_s * 1e3, abort_s * 1e3);
    CHECK(st.rc == DUET_FINISH_ABORT, "streaming session aborted from another thread (rc %d)", st.rc);
    CHECK(during >= 5, "the stream kept going during the long prefill (%d tokens)", during);
    /* a chunk late in the prompt costs more than one at its start (attention
     * over the cached positions); a gap may span two steps (the stream samples
     * while a prefill-only step runs), so allow 6 average chunks */
    double avg_chunk = bs.ttft_s / ((nlong + 63) / 64);
    CHECK(gap < 6 * avg_chunk + 0.002 && gap < bs.ttft_s / 3,
          "max gap %.2f ms bounded by chunks (average %.2f ms), not the prefill (%.1f ms)", gap * 1e3, avg_chunk * 1e3,
          bs.ttft_s * 1e3);
    CHECK(abort_s < 4 * chunk_s + 0.01, "abort stops within a step (%.2f ms)", abort_s * 1e3);
    duet_session_close(a);
    duet_session_close(b);
    duet_session_close(c);
    free(st.t);
    free(lp);
    free(p);
}

int main(void)
{
    const char *loras[] = {ALPHA, BETA, NULL};
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.loras = loras;
    duet_model *m;
    char err[512];
    cJSON *g = golden_load();
    int rc = duet_model_open(&m, GOLDEN_DIR, &mo, err, sizeof err);
    CHECK(rc == DUET_OK && g, "open: %s", err);
    if (rc || !g) return check_summary("sched");
    test_threads(m, g);
    test_long_prompt(m, g);
    CHECK(duet_model_close(m) == DUET_OK, "close: %s", duet_model_errmsg(m));
    cJSON_Delete(g);
    return check_summary("sched");
}
