/* agent_device.c - an agent on a device through duet.h only: the built-in
 * device tools in a duet_toolbox, the tools set on a chat session, and
 * duet_agent_run answering one question with as many tool calls as it needs.
 *
 *   build/examples/agent_device MODEL [NAME=PEFT_DIR] [QUESTION]
 *   build/examples/agent_device demo/base tools=demo/tools "What is the CPU temperature?"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duet.h"

static int print_piece(void *user, const char *piece, size_t len, int token)
{
    (void)user;
    (void)token;
    fwrite(piece, 1, len, stdout); /* the answer only: call blocks never reach here */
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [NAME=PEFT_DIR] [QUESTION]\n", argv[0]);
        return 2;
    }
    const char *loras[2] = {argc > 2 ? argv[2] : NULL, NULL};
    const char *question = argc > 3 ? argv[3] : "What is the CPU temperature?";
    char adapter[64] = "";
    if (loras[0]) snprintf(adapter, sizeof adapter, "%.*s", (int)strcspn(loras[0], "="), loras[0]);

    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.loras = loras[0] ? loras : NULL;
    duet_model *m = NULL;
    char err[512];
    if (duet_model_open(&m, argv[1], &mo, err, sizeof err)) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    duet_toolbox *tb = NULL;
    if (duet_toolbox_create(&tb, NULL) || duet_toolbox_add_builtin(tb)) {
        fprintf(stderr, "toolbox: %s\n", duet_toolbox_errmsg(tb));
        return 1;
    }
    duet_session_options so;
    duet_session_options_default(&so);
    so.adapter = adapter[0] ? adapter : NULL;
    so.max_tokens = 200;
    duet_session *s = NULL;
    int rc = 1;
    if (duet_session_create(m, &so, &s) || duet_session_set_tools(s, duet_toolbox_tools_json(tb))) {
        fprintf(stderr, "session: %s\n", s ? duet_session_errmsg(s) : duet_model_errmsg(m));
        goto done;
    }
    /* duet_toolbox_call has the duet_tool_fn shape: the toolbox runs the calls */
    if (duet_agent_run(s, question, 4, duet_toolbox_call, tb, print_piece, NULL, NULL) < 0) {
        fprintf(stderr, "agent: %s\n", duet_session_errmsg(s));
        goto done;
    }
    printf("\n");
    for (int i = 0; i < duet_agent_n_steps(s); i++) {
        const duet_agent_step *st = duet_agent_step_at(s, i);
        fprintf(stderr, "[%d] %s(%s) -> %s\n", i + 1, st->name, st->arguments, st->result);
    }
    rc = 0;
done:
    duet_session_close(s);
    duet_toolbox_free(tb);
    duet_model_close(m);
    return rc;
}
