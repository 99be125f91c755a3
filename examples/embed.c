/* embed.c - duet embedded in a C program through duet.h only: open a model
 * with a LoRA adapter, start a chat session bound to it, stream one reply.
 *
 *   build/examples/embed MODEL [NAME=PEFT_DIR] [QUESTION]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet.h"

static int print_piece(void *user, const char *piece, size_t len, int token)
{
    (void)user;
    (void)token;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop the reply here */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [NAME=PEFT_DIR] [QUESTION]\n", argv[0]);
        return 2;
    }
    const char *loras[2] = {argc > 2 ? argv[2] : NULL, NULL};
    const char *question = argc > 3 ? argv[3] : "What is the capital of France?";

    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.loras = loras;
    duet_model *m;
    char err[512];
    if (duet_model_open(&m, argv[1], &mo, err, sizeof err) != DUET_OK) {
        fprintf(stderr, "embed: %s\n", err);
        return 1;
    }

    duet_session_options so;
    duet_session_options_default(&so);
    so.adapter = duet_model_n_adapters(m) ? duet_model_adapter_name(m, 0) : NULL;
    so.n_ctx = 1024;
    so.max_tokens = 64;
    so.temperature = 0.7f;
    so.seed = 42;
    duet_session *s;
    if (duet_session_create(m, &so, &s) != DUET_OK) {
        fprintf(stderr, "embed: %s\n", duet_model_errmsg(m));
        duet_model_close(m);
        return 1;
    }
    int rc = duet_session_append_message(s, "system", "You are a helpful assistant.");
    if (rc == DUET_OK) rc = duet_session_append_message(s, "user", question);
    if (rc == DUET_OK) rc = duet_generate(s, print_piece, NULL);
    putchar('\n');
    if (rc < 0) fprintf(stderr, "embed: %s\n", duet_session_errmsg(s));
    duet_stats st;
    duet_session_stats(s, &st);
    fprintf(stderr, "%d tokens, first after %.1f ms (adapter %s)\n", st.n_gen, st.ttft_s * 1e3,
            so.adapter ? so.adapter : "none");
    duet_session_close(s);
    duet_model_close(m);
    return rc < 0;
}
