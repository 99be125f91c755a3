/* chat_input.c - what duet chat reads: at a terminal through libedit's
 * readline (line editing, Up/Down history kept in $HOME/.duet_history), from
 * a pipe one line at a time; either way a message of several lines between
 * """ marks, as in Ollama. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <editline/readline.h>

#include "cli/chat.h"

#define HISTORY_LINES 1000

void chat_input_open(ChatInput *in, int tty)
{
    memset(in, 0, sizeof *in);
    in->tty = tty;
    if (!tty) return;
    rl_readline_name = "duet";
    rl_catch_signals = 0;      /* our SIGINT handler (no SA_RESTART) ends the read; libedit's would kill(0, SIGINT) */
    rl_inhibit_completion = 1; /* Tab is text, not file name completion */
    using_history();
    stifle_history(HISTORY_LINES);
    const char *home = getenv("HOME");
    if (home && *home) {
        size_t n = strlen(home) + sizeof "/.duet_history";
        if ((in->hist_path = malloc(n))) {
            snprintf(in->hist_path, n, "%s/.duet_history", home);
            read_history(in->hist_path); /* none yet is fine */
        }
    }
}

void chat_input_close(ChatInput *in)
{
    if (in->hist_path) write_history(in->hist_path);
    free(in->hist_path);
    free(in->line);
    memset(in, 0, sizeof *in);
}

/* One line without its end of line: malloc'd, NULL at the end of input or
 * on an interrupted read (errno EINTR). */
static char *read_one(ChatInput *in, const char *prompt)
{
    if (in->tty) {
        errno = 0;
        char *l = readline(prompt);
        if (l && *l) add_history(l);
        return l;
    }
    errno = 0;
    ssize_t len = getline(&in->line, &in->cap, stdin);
    if (len < 0) {
        if (errno == EINTR) clearerr(stdin);
        return NULL;
    }
    while (len > 0 && (in->line[len - 1] == '\n' || in->line[len - 1] == '\r')) in->line[--len] = 0;
    return strdup(in->line);
}

/* 1 if s (length n) ends with """. */
static int ends_quotes(const char *s, size_t n)
{
    return n >= 3 && !memcmp(s + n - 3, "\"\"\"", 3);
}

char *chat_input_read(ChatInput *in, volatile sig_atomic_t *sigs, int *interrupted)
{
    *interrupted = 0;
    int before = *sigs;
    char *l = read_one(in, "> ");
    if (!l) {
        *interrupted = *sigs != before;
        return NULL;
    }
    if (strncmp(l, "\"\"\"", 3)) return l;
    /* """text...: the block runs to a line ending with """ */
    size_t n = strlen(l) - 3;
    memmove(l, l + 3, n + 1);
    if (ends_quotes(l, n)) {
        l[n - 3] = 0;
        return l;
    }
    for (;;) {
        char *more = read_one(in, "... ");
        if (!more) {
            if (*sigs == before) return l; /* the input ended inside the block: it ends there too */
            *interrupted = 1;              /* Ctrl-C drops the block */
            free(l);
            return NULL;
        }
        size_t k = strlen(more);
        int last = ends_quotes(more, k);
        if (last) more[k -= 3] = 0;
        char *t = realloc(l, n + 1 + k + 1);
        if (!t) {
            free(more);
            free(l);
            return NULL;
        }
        l = t;
        l[n++] = '\n';
        memcpy(l + n, more, k + 1);
        n += k;
        free(more);
        if (last) return l;
    }
}
