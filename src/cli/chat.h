/* chat.h - the parts of `duet chat`: the conversation and its answers
 * (cmd_chat.c), reading what the user types (chat_input.c: libedit line
 * editing and history at a terminal, lines from a pipe, """ blocks) and the
 * / commands (chat_cmd.c). Built on duet.h only. */
#ifndef DUET_CHAT_H
#define DUET_CHAT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>

#include "duet.h"

typedef struct ToolCallParser ToolCallParser;

typedef struct Chat {
    duet_model *m;
    duet_session *s;
    duet_session_options so;  /* the session's options as now set (/set changes them) */
    char adapter[64];         /* the adapter in use; "" for the base model */
    const char *path;         /* MODEL as given */
    const char *system;       /* --system, put back by /reset; NULL: none */
    duet_toolbox *tb;         /* --builtin / --tools / --mcp: the agent loop answers; NULL: plain chat */
    int max_steps;
    ToolCallParser *tp;
    atomic_int generating, quit;
    atomic_int seen_sigint;   /* SIGINTs already handled */
    int failed;               /* a message got an error: a piped chat exits 1 */
    int dropped;              /* the history lost messages since the last answer: the token count lags */
    pthread_mutex_t lock;     /* the watcher's check of `generating` and its abort are one step */
} Chat;

/* Runs a line that starts with '/' (it may be changed in place). Returns 1
 * for /quit (/bye, /exit), else 0; errors are printed and the chat goes on. */
int chat_command(Chat *c, char *line);

/* The commands, as printed by /help and at the end of duet chat --help. */
extern const char chat_commands_help[];

/* Keeps the first `keep` messages of the history (the cached prefix stays)
 * and sets c->dropped. 0, or a duet status with the session's message set. */
int chat_history_truncate(Chat *c, int keep);

/* Messages in the history (0 in raw mode). */
int chat_history_count(const Chat *c);

typedef struct ChatInput {
    int tty;               /* 1: libedit reads a terminal; 0: lines from stdin */
    char *hist_path;       /* the history file (malloc'd), NULL: none */
    char *line;            /* getline's buffer */
    size_t cap;
} ChatInput;

/* Sets in up: libedit with the history of $HOME/.duet_history at a terminal
 * (tty 1), plain lines otherwise. */
void chat_input_open(ChatInput *in, int tty);

/* Writes the history file back (the last 1000 lines) and frees in. */
void chat_input_close(ChatInput *in);

/* Reads one message: a line, or a block from a line starting with """ to
 * one ending with """ (the quotes dropped, the lines joined by "\n"; the
 * end of input ends a block too). Returns it malloc'd; NULL at the end of
 * input, or with *interrupted = 1 when a SIGINT (counted in *sigs) stopped
 * the reading (a block being typed is dropped). */
char *chat_input_read(ChatInput *in, volatile sig_atomic_t *sigs, int *interrupted);

#endif
