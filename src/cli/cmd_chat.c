/* duet chat MODEL [--adapter NAME] [--system TEXT] [--lora NAME=DIR]...
 *   [--builtin] [--tools FILE.json]... [--mcp "CMD ARG..."]... [--sysroot DIR]
 *   [--tool-choice C] [--max-steps N]: with tools each line is answered by the
 *   agent loop (docs/AGENT.md), the calls shown on stderr as they run.
 * Interactive chat through the model's chat template, built on duet.h only
 * (plus the tool-call parser for showing calls). Lines starting with / are
 * commands: /adapter NAME|base, /reset, /save FILE, /load FILE, /quit, /help.
 * Ctrl-C stops the answer being generated; Ctrl-C twice at the prompt quits.
 * From a pipe it reads one message per line and prints answers only. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "duet.h"
#include "text/toolcall.h"

/* The one permitted static: set by the SIGINT handler, read by the watcher. */
static volatile sig_atomic_t sigint_count;

static void on_sigint(int sig)
{
    (void)sig;
    sigint_count++;
}

typedef struct Chat {
    duet_session *s;
    duet_toolbox *tb;         /* --builtin / --tools / --mcp: the agent loop answers; NULL: plain chat */
    int max_steps;
    ToolCallParser *tp;
    atomic_int generating, quit;
    atomic_int seen_sigint;   /* sigint_count already handled */
} Chat;

/* Turns a Ctrl-C during generation into duet_session_abort (which also
 * stops a long prompt between two chunks). */
static void *watcher(void *arg)
{
    Chat *c = arg;
    while (!atomic_load(&c->quit)) {
        if (atomic_load(&c->generating) && sigint_count != atomic_load(&c->seen_sigint)) {
            atomic_store(&c->seen_sigint, sigint_count);
            duet_session_abort(c->s);
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void show_calls(Chat *c)
{
    ToolCall tc;
    while (toolcall_next(c->tp, &tc)) {
        if (tc.error) printf("\n[tool call error: %s] %s\n", tc.error, tc.raw ? tc.raw : "");
        else printf("\n[tool call] %s(%s)\n", tc.name, tc.arguments);
        toolcall_clear(&tc);
    }
}

static int on_piece(void *user, const char *piece, size_t len, int token)
{
    (void)token;
    Chat *c = user;
    char *text = toolcall_feed(c->tp, piece, len, NULL);
    if (text) {
        fputs(text, stdout);
        free(text);
    }
    show_calls(c);
    fflush(stdout);
    return 0;
}

static void answer(Chat *c, int tty)
{
    atomic_store(&c->generating, 1);
    int rc = duet_generate(c->s, on_piece, c);
    atomic_store(&c->generating, 0);
    char *rest = toolcall_finish(c->tp, NULL);
    if (rest) {
        fputs(rest, stdout);
        free(rest);
    }
    show_calls(c);
    putchar('\n');
    fflush(stdout);
    if (rc < 0) {
        fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c->s));
        return;
    }
    duet_stats st;
    duet_session_stats(c->s, &st);
    fprintf(stderr, "[%d tokens, %.1f tok/s, first token %.0f ms, context %d/%d%s]\n", st.n_gen,
            st.n_gen > 1 && st.gen_s > 0 ? (st.n_gen - 1) / st.gen_s : 0.0, st.ttft_s * 1e3, duet_session_n_tokens(c->s),
            duet_session_n_ctx(c->s), rc == DUET_FINISH_ABORT ? ", stopped" : "");
    (void)tty;
}

/* The agent's tool callback: runs the call, shows it on stderr. */
static int run_tool(void *user, const char *name, const char *args, char **result)
{
    Chat *c = user;
    int rc = duet_toolbox_call(c->tb, name, args, result);
    fprintf(stderr, "[tool] %s(%s) -> %s\n", name, args, *result ? *result : "(out of memory)");
    return rc;
}

static int agent_piece(void *user, const char *piece, size_t len, int token)
{
    (void)user;
    (void)token;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* With tools: the agent loop answers the line (calls run, results go back). */
static void answer_agent(Chat *c, const char *line)
{
    atomic_store(&c->generating, 1);
    int rc = duet_agent_run(c->s, line, c->max_steps, run_tool, c, agent_piece, c, NULL);
    atomic_store(&c->generating, 0);
    putchar('\n');
    fflush(stdout);
    if (rc < 0) fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c->s));
}

static void command(Chat *c, char *line, const char *system)
{
    char *arg = strchr(line, ' ');
    if (arg) {
        *arg++ = 0;
        while (*arg == ' ') arg++;
    }
    int rc = DUET_OK;
    if (!strcmp(line, "/adapter")) {
        const char *name = arg && *arg && strcmp(arg, "base") && strcmp(arg, "none") ? arg : NULL;
        rc = duet_session_set_adapter(c->s, name);
        if (!rc) fprintf(stderr, "[adapter: %s]\n", name ? name : "base");
    } else if (!strcmp(line, "/reset")) {
        duet_session_clear(c->s);
        if (system) rc = duet_session_append_message(c->s, "system", system);
        if (!rc) fprintf(stderr, "[context cleared]\n");
    } else if (!strcmp(line, "/save") && arg && *arg) {
        rc = duet_session_save(c->s, arg);
        if (!rc) fprintf(stderr, "[saved %d tokens to %s]\n", duet_session_n_tokens(c->s), arg);
    } else if (!strcmp(line, "/load") && arg && *arg) {
        rc = duet_session_load(c->s, arg);
        if (!rc) fprintf(stderr, "[loaded %d tokens from %s]\n", duet_session_n_tokens(c->s), arg);
    } else {
        fprintf(stderr, "commands: /adapter NAME|base, /reset, /save FILE, /load FILE, /quit\n");
    }
    if (rc) fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c->s));
}

int cmd_chat(int argc, char **argv)
{
    const char *path = NULL, *system = NULL, *loras[CLI_MAX_LORAS + 1] = {0}, *s_str;
    const char *tool_files[16], *mcps[16], *sysroot = NULL, *choice = NULL;
    int n_lora = 0, n_files = 0, n_mcp = 0, builtin = 0;
    long max_steps = 6;
    long n;
    double d;
    Err e = {{0}};
    duet_model_options mo;
    duet_session_options so;
    duet_model_options_default(&mo);
    duet_session_options_default(&so);
    /* a chat lives long enough that reading the .duet into huge pages once
     * (~1-2 s per GB) pays for itself in decode speed; --mmap maps it instead */
    mo.load_to_ram = 1;
    so.n_ctx = 4096;
    so.max_tokens = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = 0;
        if (!strcmp(a, "--adapter")) r = cli_arg_str(argc, argv, &i, &so.adapter, &e);
        else if (!strcmp(a, "--ignore-eos")) so.ignore_eos = 1;
        else if (!strcmp(a, "--mmap")) mo.load_to_ram = 0;
        else if (!strcmp(a, "--system")) r = cli_arg_str(argc, argv, &i, &system, &e);
        else if (!strcmp(a, "--builtin")) builtin = 1;
        else if (!strcmp(a, "--sysroot")) r = cli_arg_str(argc, argv, &i, &sysroot, &e);
        else if (!strcmp(a, "--tool-choice")) r = cli_arg_str(argc, argv, &i, &choice, &e);
        else if (!strcmp(a, "--max-steps")) r = cli_arg_int(argc, argv, &i, &max_steps, 1, 100, &e);
        else if (!strcmp(a, "--tools") || !strcmp(a, "--mcp")) {
            int *cnt = a[2] == 't' ? &n_files : &n_mcp;
            if (*cnt == 16) return cli_error("chat: at most 16 %s", a);
            if (!(r = cli_arg_str(argc, argv, &i, &s_str, &e))) (a[2] == 't' ? tool_files : mcps)[(*cnt)++] = s_str;
        }
        else if (!strcmp(a, "--lora")) {
            if (n_lora == CLI_MAX_LORAS) return cli_error("chat: at most %d --lora", CLI_MAX_LORAS);
            if (!(r = cli_arg_str(argc, argv, &i, &s_str, &e))) loras[n_lora++] = s_str;
        } else if (!strcmp(a, "--threads")) {
            if (!(r = cli_arg_int(argc, argv, &i, &n, 0, 1024, &e))) mo.n_threads = (int)n;
        } else if (!strcmp(a, "--ctx")) {
            if (!(r = cli_arg_int(argc, argv, &i, &n, 16, 1 << 20, &e))) so.n_ctx = (int)n;
        } else if (!strcmp(a, "--max-tokens")) {
            if (!(r = cli_arg_int(argc, argv, &i, &n, 0, 1 << 20, &e))) so.max_tokens = (int)n;
        } else if (!strcmp(a, "--temperature")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, 0, 100, &e))) so.temperature = (float)d;
        } else if (!strcmp(a, "--top-p")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, 0.001, 1, &e))) so.top_p = (float)d;
        } else if (!strcmp(a, "--seed")) {
            if (!(r = cli_arg_int(argc, argv, &i, &n, 0, 0x7fffffffL, &e))) so.seed = (uint64_t)n;
        } else if (!strcmp(a, "--kv")) {
            if (!(r = cli_arg_str(argc, argv, &i, &s_str, &e))) {
                if (!strcmp(s_str, "f32")) so.kv_type = DUET_KV_F32;
                else if (strcmp(s_str, "f16")) return cli_error("--kv: expected f16 or f32");
            }
        } else if (a[0] == '-' || path) {
            return cli_error("chat: unknown argument \"%s\"", a);
        } else {
            path = a;
        }
        if (r < 0) return cli_error("%s", e.msg);
    }
    if (!path) return cli_error("chat: no MODEL given (a checkpoint folder or a .duet file)");
    mo.loras = loras;
    duet_model *m;
    char err[512];
    if (duet_model_open(&m, path, &mo, err, sizeof err)) return cli_error("%s", err);
    if (so.n_ctx > duet_model_max_context(m)) so.n_ctx = duet_model_max_context(m);
    Chat c = {0};
    if (duet_session_create(m, &so, &c.s)) {
        int rc = cli_error("%s", duet_model_errmsg(m));
        duet_model_close(m);
        return rc;
    }
    c.max_steps = (int)max_steps;
    if (builtin || n_files || n_mcp) {
        duet_toolbox_options to;
        duet_toolbox_options_default(&to);
        to.sysroot = sysroot;
        int bad = duet_toolbox_create(&c.tb, &to) || (builtin && duet_toolbox_add_builtin(c.tb));
        for (int i = 0; !bad && i < n_files; i++) bad = duet_toolbox_add_commands(c.tb, tool_files[i]) != 0;
        for (int i = 0; !bad && i < n_mcp; i++) {
            char *buf = strdup(mcps[i]), *words[64];
            int k = 0;
            for (char *w = buf ? strtok(buf, " \t") : NULL; w && k < 63; w = strtok(NULL, " \t")) words[k++] = w;
            words[k] = NULL;
            bad = !k || duet_toolbox_add_mcp(c.tb, (const char *const *)words) != 0;
            free(buf);
        }
        if (!bad && (duet_session_set_tools(c.s, duet_toolbox_tools_json(c.tb)) ||
                     (choice && duet_session_set_tool_choice(c.s, choice)))) {
            fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c.s));
            bad = 2;
        }
        if (bad) {
            if (bad == 1) cli_error("%s", c.tb ? duet_toolbox_errmsg(c.tb) : "out of memory");
            duet_toolbox_free(c.tb);
            duet_session_close(c.s);
            duet_model_close(m);
            return 1;
        }
    }
    int tty = isatty(0) && isatty(1);
    c.tp = toolcall_parser_new();
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts the read at the prompt */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    pthread_t wt;
    int have_watcher = !pthread_create(&wt, NULL, watcher, &c);
    if (system && duet_session_append_message(c.s, "system", system))
        fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c.s));
    if (tty) fprintf(stderr, "duet chat: %s%s%s. /help for commands, Ctrl-C stops an answer, twice at the prompt quits.\n",
                     path, so.adapter ? " + " : "", so.adapter ? so.adapter : "");
    char *line = NULL;
    size_t cap = 0;
    int prompt_sigints = 0;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        int before = sigint_count;
        errno = 0;
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) {
            if (errno == EINTR && sigint_count != before) {
                clearerr(stdin);
                atomic_store(&c.seen_sigint, sigint_count);
                if (++prompt_sigints >= 2) break;
                fputs("\n(Ctrl-C again to quit)\n", stderr);
                continue;
            }
            break;
        }
        prompt_sigints = 0;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (line[0] == '/') {
            command(&c, line, system);
            continue;
        }
        atomic_store(&c.seen_sigint, sigint_count);
        if (c.tb) { /* duet_agent_run appends the message itself */
            answer_agent(&c, line);
            continue;
        }
        if (duet_session_append_message(c.s, "user", line)) {
            fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c.s));
            continue;
        }
        answer(&c, tty);
    }
    atomic_store(&c.quit, 1);
    if (have_watcher) pthread_join(wt, NULL);
    free(line);
    toolcall_parser_free(c.tp);
    duet_session_close(c.s);
    duet_toolbox_free(c.tb);
    duet_model_close(m);
    return 0;
}
