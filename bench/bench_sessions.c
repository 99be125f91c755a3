/* bench_sessions.c - aggregate decode throughput of one model serving 1, 2,
 * 4, 8 sessions at once through duet.h (the scheduler batches their decode
 * rows, so the weights are read once per step for all of them). Sessions
 * alternate between the base model and ADAPTER (if given).
 *
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude bench/bench_sessions.c build/libduet.a \
 *       -lcjson -lpcre2-8 -lutf8proc -lxxhash -lm -pthread -o build/bench_sessions
 *   build/bench_sessions MODEL [ADAPTER] [GEN_TOKENS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "duet.h"

typedef struct Job {
    duet_model *m;
    const char *adapter;
    int prompt[16], gen, rc;
    duet_stats st;
} Job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *run(void *arg)
{
    Job *j = arg;
    duet_session_options o;
    duet_session_options_default(&o);
    o.adapter = j->adapter;
    o.n_ctx = 16 + j->gen + 1;
    o.max_tokens = j->gen;
    o.ignore_eos = 1;
    duet_session *s;
    if ((j->rc = duet_session_create(j->m, &o, &s)) != DUET_OK) return NULL;
    j->rc = duet_session_append_tokens(s, j->prompt, 16);
    if (j->rc == DUET_OK) j->rc = duet_generate(s, NULL, NULL);
    duet_session_stats(s, &j->st);
    duet_session_close(s);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [ADAPTER] [GEN_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *adapter = argc > 2 && argv[2][0] ? argv[2] : NULL;
    int gen = argc > 3 ? atoi(argv[3]) : 32;
    duet_model *m;
    char err[512];
    if (duet_model_open(&m, argv[1], NULL, err, sizeof err) != DUET_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("sessions  aggregate tok/s  per-session tok/s  mean TTFT ms  mean inter-token ms\n");
    for (int ns = 1; ns <= 8; ns *= 2) {
        Job jb[8];
        pthread_t th[8];
        double t0 = now_s();
        for (int i = 0; i < ns; i++) {
            jb[i] = (Job){.m = m, .adapter = (i % 2 && adapter) ? adapter : NULL, .gen = gen};
            for (int k = 0; k < 16; k++) jb[i].prompt[k] = 1000 + 37 * k + i;
            pthread_create(&th[i], NULL, run, &jb[i]);
        }
        int tot = 0;
        double ttft = 0, itl = 0;
        for (int i = 0; i < ns; i++) {
            pthread_join(th[i], NULL);
            if (jb[i].rc < 0) fprintf(stderr, "session %d failed (%d)\n", i, jb[i].rc);
            tot += jb[i].st.n_gen;
            ttft += jb[i].st.ttft_s / ns;
            itl += jb[i].st.gen_s / (jb[i].st.n_gen > 1 ? jb[i].st.n_gen - 1 : 1) / ns;
        }
        double dt = now_s() - t0;
        printf("%8d  %15.1f  %17.1f  %12.1f  %19.1f\n", ns, tot / dt, tot / dt / ns, ttft * 1e3, itl * 1e3);
    }
    duet_model_close(m);
    return 0;
}
