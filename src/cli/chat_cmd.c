/* chat_cmd.c - duet chat's / commands: /help, /adapter, /set, /show, /reset
 * (/clear), /save, /load, /quit (/bye, /exit). Ollama's spellings work too
 * ("/set parameter temperature 0.7"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/chat.h"
#include "cli/cli_opt.h"

const char chat_commands_help[] =
    "in the chat:\n"
    "  /help                      the commands\n"
    "  /adapter [NAME|base]       switch adapter; without NAME: the current one and the list\n"
    "  /set NAME VALUE            temperature, top_k, top_p, min_p, repeat_penalty, frequency_penalty,\n"
    "                             presence_penalty, seed, max_tokens (as the flags; /set alone lists them)\n"
    "  /show                      the model, adapter, sampling settings and context use\n"
    "  /reset, /clear             forget the conversation\n"
    "  /save FILE, /load FILE     save or restore the conversation\n"
    "  /quit, /bye                leave (also Ctrl-D; Ctrl-C twice at the prompt)\n"
    "  \"\"\"                        start and end a message of several lines\n"
    "  Ctrl-C stops an answer; the chat goes on. Up/Down recall earlier lines ($HOME/.duet_history).\n";

int chat_history_count(const Chat *c)
{
    char *j = duet_session_messages_json(c->s);
    cJSON *a = j ? cJSON_Parse(j) : NULL;
    int n = cJSON_GetArraySize(a);
    cJSON_Delete(a);
    free(j);
    return n;
}

int chat_history_truncate(Chat *c, int keep)
{
    char *j = duet_session_messages_json(c->s);
    if (!j) return DUET_OK; /* no history */
    cJSON *a = cJSON_Parse(j);
    free(j);
    if (!a) return DUET_ERR_NOMEM;
    while (cJSON_GetArraySize(a) > keep) cJSON_DeleteItemFromArray(a, cJSON_GetArraySize(a) - 1);
    char *t = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    int rc = t ? duet_session_set_messages(c->s, t) : DUET_ERR_NOMEM;
    free(t);
    c->dropped = 1;
    return rc;
}

static void list_adapters(const Chat *c)
{
    int n = duet_model_n_adapters(c->m);
    fprintf(stderr, "[adapter: %s; in the model: base", c->adapter[0] ? c->adapter : "base (none)");
    for (int i = 0; i < n; i++) fprintf(stderr, ", %s", duet_model_adapter_name(c->m, i));
    fprintf(stderr, "]\n");
}

static int set_adapter(Chat *c, const char *arg)
{
    const char *name = strcmp(arg, "base") && strcmp(arg, "none") ? arg : NULL;
    int rc = duet_session_set_adapter(c->s, name);
    if (rc) return rc;
    snprintf(c->adapter, sizeof c->adapter, "%s", name ? name : "");
    fprintf(stderr, "[adapter: %s]\n", name ? name : "base");
    return DUET_OK;
}

/* The settings /set changes: name, alias, and where they live. */
typedef struct Setting {
    const char *name, *alias;
    char kind; /* 'f' float, 'i' int, 'u' seed */
    size_t off;
} Setting;

#define SO(f) offsetof(duet_session_options, f)
static const Setting settings[] = {
    {"temperature", "temp", 'f', SO(temperature)},
    {"top_k", "top-k", 'i', SO(top_k)},
    {"top_p", "top-p", 'f', SO(top_p)},
    {"min_p", "min-p", 'f', SO(min_p)},
    {"repeat_penalty", "repetition_penalty", 'f', SO(repetition_penalty)},
    {"frequency_penalty", "frequency-penalty", 'f', SO(frequency_penalty)},
    {"presence_penalty", "presence-penalty", 'f', SO(presence_penalty)},
    {"seed", NULL, 'u', SO(seed)},
    {"max_tokens", "num_predict", 'i', SO(max_tokens)},
};
#define N_SETTINGS (sizeof settings / sizeof *settings)

static void show_settings(const Chat *c)
{
    const duet_session_options *o = &c->so;
    fprintf(stderr,
            "[temperature %g, top_k %d, top_p %g, min_p %g, repeat_penalty %g, frequency_penalty %g, "
            "presence_penalty %g, seed %llu, max_tokens %d]\n",
            o->temperature, o->top_k, o->top_p, o->min_p, o->repetition_penalty, o->frequency_penalty,
            o->presence_penalty, (unsigned long long)o->seed, o->max_tokens);
}

/* /set NAME VALUE (or /set parameter NAME VALUE): the session's option, checked by duet.h. */
static void set_option(Chat *c, char *arg)
{
    char *name = arg ? strtok(arg, " \t") : NULL;
    if (name && !strcmp(name, "parameter")) name = strtok(NULL, " \t");
    char *val = name ? strtok(NULL, " \t") : NULL;
    if (!name) {
        show_settings(c);
        return;
    }
    const Setting *st = NULL;
    const char *names[N_SETTINGS];
    for (size_t i = 0; i < N_SETTINGS; i++) {
        names[i] = settings[i].name;
        if (!strcmp(name, settings[i].name) || (settings[i].alias && !strcmp(name, settings[i].alias)))
            st = &settings[i];
    }
    if (!st) {
        const char *near = cli_suggest(name, names, (int)N_SETTINGS);
        fprintf(stderr, "duet: error: /set %s: no such setting%s%s%s (/set alone lists them)\n", name,
                near ? "; did you mean " : "", near ? near : "", near ? "?" : "");
        return;
    }
    char *end = NULL;
    double v = val ? strtod(val, &end) : NAN;
    if (!val || end == val || *end || !isfinite(v) || (st->kind != 'f' && (v != floor(v) || v < 0 || v > 4e18))) {
        fprintf(stderr, "duet: error: /set %s: expected %s\n", st->name, st->kind == 'f' ? "a number" : "a whole number");
        return;
    }
    duet_session_options o = c->so;
    char *p = (char *)&o + st->off;
    if (st->kind == 'f') *(float *)p = (float)v;
    else if (st->kind == 'i') *(int *)p = v > 1 << 30 ? 1 << 30 : (int)v;
    else *(uint64_t *)p = (uint64_t)v;
    if (duet_session_set_options(c->s, &o)) {
        fprintf(stderr, "duet: error: /set %s: %s\n", st->name, duet_session_errmsg(c->s));
        return;
    }
    c->so = o;
    fprintf(stderr, "[%s %s]\n", st->name, val);
}

/* Positions the conversation takes: the session's count, or after messages
 * were dropped (which the session sees at the next answer) the history as
 * the template renders it. */
static int context_used(const Chat *c)
{
    char *j = c->dropped && !c->tb ? duet_session_messages_json(c->s) : NULL, *text = NULL;
    int *ids = NULL, n = duet_session_n_tokens(c->s);
    if (j && !duet_apply_template(c->m, j, 0, &text) && !duet_tokenize(c->m, text, strlen(text), &ids, &n)) free(ids);
    free(text);
    free(j);
    return n;
}

static void show(const Chat *c)
{
    fprintf(stderr, "[model: %s, %d positions at most, vocabulary %d]\n", c->path, duet_model_max_context(c->m),
            duet_model_vocab(c->m));
    list_adapters(c);
    show_settings(c);
    fprintf(stderr, "[context: %d of %d positions in use, %d messages%s%s]\n", context_used(c),
            duet_session_n_ctx(c->s), chat_history_count(c), c->system ? ", system: " : "",
            c->system ? c->system : "");
}

int chat_command(Chat *c, char *line)
{
    char *arg = strchr(line, ' ');
    if (arg) {
        *arg++ = 0;
        while (*arg == ' ') arg++;
        if (!*arg) arg = NULL;
    }
    int rc = DUET_OK;
    if (!strcmp(line, "/quit") || !strcmp(line, "/bye") || !strcmp(line, "/exit")) return 1;
    if (!strcmp(line, "/help") || !strcmp(line, "/?")) {
        fputs(chat_commands_help, stderr);
    } else if (!strcmp(line, "/adapter")) {
        if (arg) rc = set_adapter(c, arg);
        else list_adapters(c);
    } else if (!strcmp(line, "/set")) {
        set_option(c, arg);
    } else if (!strcmp(line, "/show")) {
        show(c);
    } else if (!strcmp(line, "/reset") || !strcmp(line, "/clear")) {
        duet_session_clear(c->s);
        c->dropped = 0;
        if (c->system) rc = duet_session_append_message(c->s, "system", c->system);
        if (!rc) fprintf(stderr, "[context cleared]\n");
    } else if (!strcmp(line, "/save") && arg) {
        rc = duet_session_save(c->s, arg);
        if (!rc) fprintf(stderr, "[saved %d tokens to %s]\n", duet_session_n_tokens(c->s), arg);
    } else if (!strcmp(line, "/load") && arg) {
        rc = duet_session_load(c->s, arg);
        if (!rc) fprintf(stderr, "[loaded %d tokens from %s]\n", duet_session_n_tokens(c->s), arg);
    } else if (!strcmp(line, "/save") || !strcmp(line, "/load")) {
        fprintf(stderr, "duet: error: %s FILE: the file is missing\n", line);
    } else {
        static const char *const cmds[] = {"/help", "/adapter", "/set", "/show", "/reset", "/clear",
                                           "/save", "/load", "/quit", "/bye", "/exit"};
        const char *near = cli_suggest(line, cmds, (int)(sizeof cmds / sizeof *cmds));
        fprintf(stderr, "duet: error: unknown command %s%s%s%s; /help lists the commands\n", line,
                near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
    }
    if (rc) fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c->s));
    return 0;
}
