/* duet chat MODEL [--adapter NAME] [--system TEXT] [--lora [NAME=]DIR]...
 *   [--builtin] [--tools FILE.json]... [--mcp "CMD ARG..."]... [--sysroot DIR]
 *   [--tool-choice C] [--max-steps N]: with tools each line is answered by the
 *   agent loop (docs/AGENT.md), the calls shown on stderr as they run.
 * Interactive chat through the model's chat template, built on duet.h only
 * (plus the tool-call parser for showing calls). What the user types is read
 * by chat_input.c, lines starting with / are run by chat_cmd.c. Ctrl-C stops
 * the answer being generated; Ctrl-C twice at the prompt quits. When the
 * conversation outgrows the context the oldest turns are dropped (as Ollama
 * does); a message that cannot fit even alone is an error and is not kept.
 * From a pipe it reads one message per line and prints answers only. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "cli/chat.h"
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

/* Turns a Ctrl-C during generation into duet_session_abort (which also
 * stops a long prompt between two chunks). */
static void *watcher(void *arg)
{
    Chat *c = arg;
    while (!atomic_load(&c->quit)) {
        pthread_mutex_lock(&c->lock);
        if (atomic_load(&c->generating) && sigint_count != atomic_load(&c->seen_sigint)) {
            atomic_store(&c->seen_sigint, sigint_count);
            duet_session_abort(c->s);
        }
        pthread_mutex_unlock(&c->lock);
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

/* The history as it was, minus its oldest turn (the first message after
 * any system ones, and the replies up to the next user message); NULL when
 * only the last message is left to drop. */
static const char *role_at(const cJSON *a, int i)
{
    const char *r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(a, i), "role"));
    return r ? r : "";
}

static char *drop_oldest_turn(const char *json, int *dropped)
{
    cJSON *a = cJSON_Parse(json);
    int n = cJSON_GetArraySize(a), i = 0;
    while (i < n && !strcmp(role_at(a, i), "system")) i++;
    int j = i + 1; /* the turn: message i and what follows it up to the next user message */
    while (j < n && strcmp(role_at(a, j), "user")) j++;
    char *out = NULL;
    if (j < n) { /* the last message (the new one) stays */
        for (int k = i; k < j; k++) cJSON_DeleteItemFromArray(a, i);
        *dropped += j - i;
        out = cJSON_PrintUnformatted(a);
    }
    cJSON_Delete(a);
    return out;
}

/* Generates the answer to the messages in the session. When the
 * conversation does not fit the context, the oldest turns are dropped until
 * it does; when the last message alone does not fit, the history goes back
 * to what it was before it. */
static void answer(Chat *c, int n_before)
{
    atomic_store(&c->generating, 1);
    int rc = duet_generate(c->s, on_piece, c), dropped = 0;
    char *orig = NULL, *cur = NULL;
    while (rc == DUET_ERR_CONTEXT_FULL) { /* the rendered conversation is longer than the context */
        if (!orig && !(orig = duet_session_messages_json(c->s))) break;
        char *next = drop_oldest_turn(cur ? cur : orig, &dropped);
        free(cur);
        if (!(cur = next) || duet_session_set_messages(c->s, cur)) break;
        rc = duet_generate(c->s, on_piece, c);
    }
    pthread_mutex_lock(&c->lock);
    atomic_store(&c->generating, 0);
    duet_session_abort_cancel(c->s); /* a Ctrl-C that came as the answer ended must not stop the next one */
    pthread_mutex_unlock(&c->lock);
    char *rest = toolcall_finish(c->tp, NULL);
    if (rest) {
        fputs(rest, stdout);
        free(rest);
    }
    show_calls(c);
    putchar('\n');
    fflush(stdout);
    if (rc == DUET_ERR_CONTEXT_FULL) {
        fprintf(stderr, "duet: error: the message does not fit the context (%s): it was not kept; --ctx N gives more\n",
                duet_session_errmsg(c->s));
        if (orig) duet_session_set_messages(c->s, orig);
        chat_history_truncate(c, n_before);
        c->failed = 1;
    } else if (rc < 0) {
        fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c->s));
        chat_history_truncate(c, n_before);
        c->failed = 1;
    } else {
        if (dropped)
            fprintf(stderr, "[the context was full: the %d oldest message%s dropped]\n", dropped,
                    dropped > 1 ? "s were" : " was");
        duet_stats st;
        duet_session_stats(c->s, &st);
        c->dropped = 0;
        if (st.n_gen == 0 && rc == DUET_FINISH_ABORT) { /* stopped in the prompt: no answer, no first token */
            chat_history_truncate(c, n_before);
            fprintf(stderr, "[stopped before the first token: the message was not kept]\n");
        } else {
            fprintf(stderr, "[%d tokens, %.1f tok/s, first token %.0f ms, context %d/%d%s]\n", st.n_gen,
                    st.n_gen > 1 && st.gen_s > 0 ? (st.n_gen - 1) / st.gen_s : 0.0, st.ttft_s * 1e3,
                    duet_session_n_tokens(c->s), duet_session_n_ctx(c->s), rc == DUET_FINISH_ABORT ? ", stopped" : "");
        }
        if (rc == DUET_FINISH_CONTEXT)
            fprintf(stderr, "[the context is full (%d positions): the next message drops the oldest turns; /reset starts "
                            "over; --ctx N gives more]\n", duet_session_n_ctx(c->s));
    }
    free(orig);
    free(cur);
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
    if (rc < 0) {
        fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c->s));
        c->failed = 1;
    }
}

int cmd_chat(int argc, char **argv)
{
    ModelOpts o = {0};
    CliSampling cs;
    const char *system = NULL, *tool_files[16], *mcps[16], *sysroot = NULL, *choice = NULL;
    int max_tokens = 1024, ignore_eos = 0, mmap_it = 0, verbose = 0;
    int n_files = 0, n_mcp = 0, builtin = 0, max_steps = 6;
    CliOpt own[] = {
        {CLI_STR, "--system", NULL, &system, "TEXT", NULL, "a system message at the start of the chat"},
        {CLI_INT, "--max-tokens", "-n", &max_tokens, "N", "1024", "tokens per answer at most; 0: until the context is full",
         0, 1 << 24},
        {CLI_FLAG, "--ignore-eos", NULL, &ignore_eos, NULL, NULL, "go on past the end-of-sequence token"},
        {CLI_FLAG, "--mmap", NULL, &mmap_it, NULL, NULL,
         "map a .duet file instead of reading it into memory (faster start, slower decode)"},
        {CLI_FLAG, "--verbose", "-v", &verbose, NULL, NULL, "print the sampling settings and the seed on stderr"},
        {0}};
    CliOpt tools[] = {
        {CLI_FLAG, "--builtin", NULL, &builtin, NULL, NULL, "the built-in device tools (docs/TOOLS.md)"},
        {CLI_LIST, "--tools", NULL, tool_files, "FILE.json", NULL, "command tools described in a JSON file", 0, 16,
         &n_files},
        {CLI_LIST, "--mcp", NULL, mcps, "COMMAND", NULL, "an MCP server to start (stdio, no shell): words split on blanks, quotes as in sh, or a JSON array of strings", 0,
         16, &n_mcp},
        {CLI_STR, "--tool-choice", NULL, &choice, "C", NULL, "auto, required, none or a tool's name (default auto)"},
        {CLI_INT, "--max-steps", NULL, &max_steps, "N", "6", "tool calls per message at most", 1, 100},
        {CLI_STR, "--sysroot", NULL, &sysroot, "DIR", NULL, "read /proc and /sys under DIR (for tests)"},
        {0}};
    CliOpt model[CLI_GROUP_MAX], sampling[CLI_GROUP_MAX];
    cli_model_opts(&o, model, "f16", "context positions; 0: 4096 or the model's, whichever is less", 0);
    cli_sampling_opts(&cs, sampling);
    const CliSpec spec = {
        .name = "chat",
        .summary = "Chats with MODEL in the terminal (line editing, history), or answers one message per line from a pipe",
        .usage = "MODEL [--adapter NAME | --lora [NAME=]DIR] [--system TEXT] [options]",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder or a .duet file", .pos = &o.path, .pos_required = 1,
        .groups = {own, model, sampling, tools}, .titles = {"options", "model", "sampling", "tools (the agent loop answers)"},
        .notes = chat_commands_help};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    const char *path = o.path;
    /* every --lora as NAME=DIR for duet.h, the name from the folder when not given */
    char names[CLI_MAX_LORAS][160];
    const char *loras[CLI_MAX_LORAS + 1] = {0};
    for (int i = 0; i < o.n_lora; i++) {
        char name[64];
        const char *dir;
        cli_lora_split(o.lora_spec[i], name, sizeof name, &dir);
        snprintf(names[i], sizeof names[i], "%s=%s", name, dir);
        loras[i] = names[i];
    }
    duet_model_options mo;
    duet_session_options so;
    duet_model_options_default(&mo);
    duet_session_options_default(&so);
    /* a chat lives long enough that reading the .duet into huge pages once
     * (~1-2 s per GB) pays for itself in decode speed; --mmap maps it instead */
    mo.load_to_ram = !mmap_it;
    mo.loras = loras;
    mo.n_threads = o.threads;
    mo.isa = o.isa;
    mo.prefill_chunk = o.chunk;
    so.kv_type = !strcmp(o.kv, "f32") ? DUET_KV_F32 : DUET_KV_F16;
    so.max_tokens = max_tokens;
    so.ignore_eos = ignore_eos;
    duet_model *m;
    char err[512];
    Err pe;
    if (cli_check_model_path(path, "model", &pe)) return cli_error("%s", pe.msg);
    if (duet_model_open(&m, path, &mo, err, sizeof err)) return cli_error("%s", err);
    /* the adapter: --adapter NAME ("base": none), else the one --lora gave */
    if (o.adapter && strcmp(o.adapter, "base")) so.adapter = o.adapter;
    else if (!o.adapter && o.n_lora == 1) so.adapter = duet_model_adapter_name(m, duet_model_n_adapters(m) - 1);
    else if (!o.adapter && o.n_lora > 1) {
        duet_model_close(m);
        return cli_error("chat: %d adapters given: choose one with --adapter NAME", o.n_lora);
    }
    so.n_ctx = o.ctx ? o.ctx : 4096;
    if (so.n_ctx > duet_model_max_context(m)) so.n_ctx = duet_model_max_context(m);
    cli_session_sampling(m, &cs, &so);
    if (verbose)
        fprintf(stderr, "adapter %s; sampling: temperature %g, top_k %d, top_p %g, min_p %g, repeat_penalty %g, seed %llu\n",
                so.adapter ? so.adapter : "none (base)", so.temperature, so.top_k, so.top_p, so.min_p,
                so.repetition_penalty, (unsigned long long)so.seed);
    Chat c = {0};
    pthread_mutex_init(&c.lock, NULL);
    if (duet_session_create(m, &so, &c.s)) {
        int rc = cli_error("%s", duet_model_errmsg(m));
        duet_model_close(m);
        return rc;
    }
    c.m = m;
    c.so = so;
    c.path = path;
    c.system = system;
    snprintf(c.adapter, sizeof c.adapter, "%s", so.adapter ? so.adapter : "");
    c.max_steps = max_steps;
    if (builtin || n_files || n_mcp) {
        duet_toolbox_options to;
        duet_toolbox_options_default(&to);
        to.sysroot = sysroot;
        int bad = duet_toolbox_create(&c.tb, &to) || (builtin && duet_toolbox_add_builtin(c.tb));
        for (int i = 0; !bad && i < n_files; i++) bad = duet_toolbox_add_commands(c.tb, tool_files[i]) != 0;
        for (int i = 0; !bad && i < n_mcp; i++) {
            Err e;
            char **words = cmdline_split(mcps[i], &e);
            if (!words) {
                cli_error("chat: --mcp \"%s\": %s", mcps[i], e.msg);
                bad = 3;
                break;
            }
            bad = duet_toolbox_add_mcp(c.tb, (const char *const *)words) != 0;
            free(words);
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
    if (tty) {
        fprintf(stderr, "duet chat: %s%s%s", path, c.adapter[0] ? " + " : "", c.adapter);
        int na = duet_model_n_adapters(m);
        for (int i = 0; !c.adapter[0] && i < na; i++) /* the base model runs: say which adapters there are */
            fprintf(stderr, "%s%s", i ? ", " : ", the base model (its adapters: ", duet_model_adapter_name(m, i));
        fprintf(stderr, "%s. /help for commands, \"\"\" for several lines, Ctrl-C stops an answer, Ctrl-D quits.\n",
                !c.adapter[0] && na ? "; /adapter NAME switches)" : "");
    }
    ChatInput in;
    chat_input_open(&in, tty);
    int prompt_sigints = 0;
    for (;;) {
        int interrupted;
        char *line = chat_input_read(&in, &sigint_count, &interrupted);
        if (!line) {
            if (!interrupted) break;
            atomic_store(&c.seen_sigint, sigint_count);
            if (++prompt_sigints >= 2) break;
            fputs("\n(Ctrl-C again to quit)\n", stderr);
            continue;
        }
        prompt_sigints = 0;
        if (!line[0]) {
            free(line);
            continue;
        }
        if (line[0] == '/') {
            int quit = chat_command(&c, line);
            free(line);
            if (quit) break;
            continue;
        }
        atomic_store(&c.seen_sigint, sigint_count);
        if (c.tb) { /* duet_agent_run appends the message itself */
            answer_agent(&c, line);
            free(line);
            continue;
        }
        int n_before = chat_history_count(&c);
        int rc = duet_session_append_message(c.s, "user", line);
        free(line);
        if (rc) {
            fprintf(stderr, "duet: error: %s\n", duet_session_errmsg(c.s));
            c.failed = 1;
            continue;
        }
        answer(&c, n_before);
    }
    chat_input_close(&in);
    atomic_store(&c.quit, 1);
    if (have_watcher) pthread_join(wt, NULL);
    toolcall_parser_free(c.tp);
    duet_session_close(c.s);
    duet_toolbox_free(c.tb);
    duet_model_close(m);
    return c.failed && !tty ? 1 : 0;
}
