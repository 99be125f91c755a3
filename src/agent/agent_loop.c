/* agent_loop.c - duet_agent_run: generate, run the calls through a tool
 * callback, append the results, generate again, until an answer. Built on
 * duet.h (plus the session's record of the calls it ran). */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

int duet_agent_run(duet_session *s, const char *user_text, int max_steps, duet_tool_fn fn, void *fn_user,
                   duet_token_cb cb, void *cb_user, char **answer)
{
    if (answer) *answer = NULL;
    if (!s || !fn || max_steps < 0) return api_serr(s, DUET_ERR_ARG, "duet_agent_run: bad argument");
    if (!max_steps) max_steps = 8;
    api_agent_steps_reset(s);
    int rc = user_text ? duet_session_append_message(s, "user", user_text) : DUET_OK;
    if (rc) return rc;
    /* the choice set by the caller applies to the first round; later rounds
     * are "auto" (a forced call would loop), the last one "none" */
    char *choice = api_tool_choice_dup(s);
    int finish = DUET_FINISH_EOS;
    for (int step = 0; step < max_steps; step++) {
        if (step == max_steps - 1) rc = duet_session_set_tool_choice(s, "none");
        else if (step == 1 && choice && strcmp(choice, "none")) rc = duet_session_set_tool_choice(s, NULL);
        if (rc) break;
        finish = duet_generate(s, cb, cb_user);
        if (finish < 0) break;
        int n = duet_session_n_tool_calls(s);
        if (n == 0 || finish == DUET_FINISH_ABORT || finish == DUET_FINISH_CALLBACK) break;
        for (int i = 0; i < n; i++) {
            const duet_tool_call *c = duet_session_tool_call(s, i);
            char *id = strdup(c->id), *name = strdup(c->name), *args = strdup(c->arguments), *result = NULL;
            if (!id || !name || !args) {
                free(id), free(name), free(args);
                rc = api_serr(s, DUET_ERR_NOMEM, "out of memory");
                break;
            }
            int r = fn(fn_user, name, args, &result);
            if (r < 0 || !result) {
                free(result);
                result = strdup("{\"error\":\"the tool failed\"}");
            }
            rc = result ? api_agent_step_add(s, name, args, result) : DUET_ERR_NOMEM;
            if (!rc) rc = duet_session_append_tool_result(s, id, result);
            free(id), free(name), free(args), free(result);
            if (rc) break;
        }
        if (rc) break;
    }
    duet_session_set_tool_choice(s, choice);
    free(choice);
    if (rc) return rc;
    if (finish >= 0 && answer && !(*answer = strdup(duet_session_content(s))))
        return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    return finish;
}
