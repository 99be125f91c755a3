/* agent_loop.c - duet_agent_run: generate, run the calls through a tool
 * callback, append the results, generate again, until an answer. Built on
 * duet.h (plus the session's record of the calls it ran). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "api/api_int.h"

#define MSG_OVERHEAD 48 /* tokens a tool message's template tags may take, with a margin */

/* Tokens of text under the session's tokenizer; -1 when it cannot say. */
static int count_tokens(duet_session *s, const char *text)
{
    int *ids = NULL, n = 0;
    int rc = duet_tokenize(s->md, text, strlen(text), &ids, &n);
    free(ids);
    return rc ? -1 : n;
}

/* A tool's result made to fit in `budget` tokens, so a tool that floods
 * cannot end the conversation: its first bytes (cut at a UTF-8 boundary) and
 * a note saying how much was left out; an error result when not even that
 * fits. result is freed; NULL when out of memory. *used: its tokens. */
static char *fit_result(duet_session *s, char *result, int budget, int *used)
{
    int n = count_tokens(s, result);
    *used = n < 0 ? 0 : n;
    if (n <= budget) return result;
    char note[160];
    int note_len = snprintf(note, sizeof note, "\n[cut: the tool's output was %d tokens; %d fit in the context]", n,
                            budget);
    size_t len = strlen(result), keep = len;
    for (int tries = 0; budget >= 2 * MSG_OVERHEAD && tries < 12; tries++) {
        keep = (size_t)((double)keep * (budget - 24) / (n > 0 ? n : 1) * 0.9);
        while (keep > 0 && ((unsigned char)result[keep] & 0xC0) == 0x80) keep--;
        char *t = malloc(keep + (size_t)note_len + 1);
        if (!t) break;
        memcpy(t, result, keep);
        memcpy(t + keep, note, (size_t)note_len + 1);
        n = count_tokens(s, t);
        if (n >= 0 && n <= budget) {
            free(result);
            *used = n;
            return t;
        }
        free(t);
    }
    free(result);
    *used = 16;
    return strdup("{\"error\":\"the tool's output does not fit in the context\"}");
}

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
        /* room for this round's results: the context less what is there, the
         * next answer and each message's tags */
        int reserve = (s->o.max_tokens > 0 ? s->o.max_tokens : 256) + MSG_OVERHEAD * n;
        int room = duet_session_n_ctx(s) - duet_session_n_tokens(s) - reserve;
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
            result = tool_text_fix(result); /* any callback's bytes: the prompt takes UTF-8 only */
            int used = 0;
            if (result) result = fit_result(s, result, room / (n - i), &used);
            room -= used;
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
