/* test_options.c - duet_session_set_options: sampling options changed on a
 * live session take effect at the next generate (a seed repeats a sampled
 * run exactly; temperature 0 is greedy again), out-of-range values are
 * refused with nothing changed, and the fixed fields are ignored. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "duet.h"

static const int prompt[] = {151644, 872, 198, 3838, 374, 279, 13940, 2730, 30, 151645, 198, 151644, 77091, 198};
#define NP ((int)(sizeof prompt / sizeof prompt[0]))

typedef struct Ids {
    int v[64];
    int n;
} Ids;

static int grab(void *user, const char *piece, size_t len, int token)
{
    (void)piece;
    (void)len;
    Ids *d = user;
    if (token >= 0 && d->n < 64) d->v[d->n++] = token;
    return 0;
}

/* Clears s, appends the prompt and generates into *out; the finish code. */
static int run(duet_session *s, Ids *out)
{
    memset(out, 0, sizeof *out);
    duet_session_clear(s);
    if (duet_session_append_tokens(s, prompt, NP)) return -100;
    return duet_generate(s, grab, out);
}

int main(void)
{
    duet_model *m;
    char err[512];
    if (duet_model_open(&m, "tests/fixtures/models/tiny-qwen2", NULL, err, sizeof err)) {
        CHECK(0, "open: %s", err);
        return check_summary("options");
    }
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 128;
    o.max_tokens = 16;
    o.ignore_eos = 1;
    duet_session *s;
    CHECK(duet_session_create(m, &o, &s) == DUET_OK, "create: %s", duet_model_errmsg(m));

    Ids greedy, a, b, g2;
    CHECK(run(s, &greedy) == DUET_FINISH_LENGTH && greedy.n == 16, "greedy run: %d tokens", greedy.n);

    o.temperature = 1.5f;
    o.top_k = 0;
    o.seed = 1234;
    o.max_tokens = 12;
    CHECK(duet_session_set_options(s, &o) == DUET_OK, "set_options: %s", duet_session_errmsg(s));
    run(s, &a);
    CHECK(a.n == 12, "max_tokens from set_options: %d generated", a.n);
    CHECK(duet_session_set_options(s, &o) == DUET_OK, "set_options again");
    run(s, &b);
    CHECK(a.n == b.n && !memcmp(a.v, b.v, sizeof(int) * (size_t)a.n), "the same seed repeats the sampled run");
    CHECK(memcmp(a.v, greedy.v, sizeof(int) * 12) != 0, "temperature 1.5 departs from greedy");

    duet_session_options bad = o;
    bad.top_p = 0;
    CHECK(duet_session_set_options(s, &bad) == DUET_ERR_ARG, "top_p 0 refused");
    CHECK(strstr(duet_session_errmsg(s), "top_p") != NULL, "message names top_p: %s", duet_session_errmsg(s));
    bad = o;
    bad.temperature = -1;
    CHECK(duet_session_set_options(s, &bad) == DUET_ERR_ARG, "negative temperature refused");
    run(s, &b);
    CHECK(b.n == 12 && memcmp(b.v, greedy.v, sizeof(int) * 12) != 0, "a refused call changed nothing (still sampled, 12 tokens)");

    o.temperature = 0;
    o.max_tokens = 16;
    o.n_ctx = 99999; /* fixed at create: ignored */
    o.stop[0] = "\xff-never";
    CHECK(duet_session_set_options(s, &o) == DUET_OK, "set_options back to greedy: %s", duet_session_errmsg(s));
    run(s, &g2);
    CHECK(g2.n == 16 && !memcmp(g2.v, greedy.v, sizeof(int) * 16), "greedy again gives the greedy run");
    CHECK(duet_session_n_ctx(s) == 128, "n_ctx unchanged");
    CHECK(duet_session_set_options(NULL, &o) == DUET_ERR_ARG, "NULL session");

    duet_session_close(s);
    duet_model_close(m);
    return check_summary("options");
}
