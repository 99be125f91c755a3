/* duet agent MODEL [--adapter NAME] [--lora NAME=DIR]... [--builtin] [--sysroot DIR]
 *   [--tools FILE.json]... [--mcp "CMD ARG..."]... [--tool-choice auto|required|none|NAME]
 *   [--max-steps N] [--max-tokens N] [--system TEXT] [sampling] (--ask TEXT | interactive)
 *   [--list-tools] [--json]
 * The agent loop over duet.h: tools from the built-ins, command files and
 * MCP servers (a duet_toolbox), duet_agent_run for each question. The answer
 * streams to stdout; each tool call is shown on stderr as it runs. --json
 * prints one object at the end instead: {"answer", "steps": [{"tool",
 * "arguments", "result"}]}. --list-tools prints the tools' names and exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "duet.h"

#define MAX_SRC 16

typedef struct AgentCli {
    duet_toolbox *tb;
    int json, verbose;
} AgentCli;

static int print_piece(void *user, const char *piece, size_t len, int token)
{
    (void)token;
    AgentCli *a = user;
    if (!a->json) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

/* The tool callback: runs the call in the toolbox and shows it on stderr. */
static int run_tool(void *user, const char *name, const char *args, char **result)
{
    AgentCli *a = user;
    int rc = duet_toolbox_call(a->tb, name, args, result);
    if (!a->json) fprintf(stderr, "[tool] %s(%s) -> %s\n", name, args, *result ? *result : "(out of memory)");
    return rc;
}

static int print_json(duet_session *s, const char *answer)
{
    cJSON *o = cJSON_CreateObject(), *steps = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "answer", answer ? answer : "");
    for (int i = 0; i < duet_agent_n_steps(s); i++) {
        const duet_agent_step *st = duet_agent_step_at(s, i);
        cJSON *e = cJSON_CreateObject(), *args = cJSON_Parse(st->arguments);
        cJSON_AddStringToObject(e, "tool", st->name);
        cJSON_AddItemToObject(e, "arguments", args ? args : cJSON_CreateObject());
        cJSON_AddStringToObject(e, "result", st->result);
        cJSON_AddItemToArray(steps, e);
    }
    cJSON_AddItemToObject(o, "steps", steps);
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!t) return cli_error("out of memory");
    printf("%s\n", t);
    free(t);
    return 0;
}

int cmd_agent(int argc, char **argv)
{
    const char *path = NULL, *adapter = NULL, *ask = NULL, *choice = NULL, *sysroot = NULL, *system = NULL;
    const char *tool_files[MAX_SRC], *mcps[MAX_SRC], *lora_in[MAX_SRC], *loras[MAX_SRC + 1] = {0};
    int n_files = 0, n_mcp = 0, n_lora = 0, builtin = 0, list = 0, json = 0;
    int max_steps = 6, max_tokens = 256, threads = 0, timeout_ms = 10000, cap = 16384, seed = 0;
    double temp = 0;
    CliOpt own[] = {
        {CLI_STR, "--ask", NULL, &ask, "TEXT", NULL, "one question, then exit (default: read questions from stdin)"},
        {CLI_FLAG, "--builtin", NULL, &builtin, NULL, NULL, "the built-in device tools (docs/TOOLS.md)"},
        {CLI_LIST, "--tools", NULL, tool_files, "FILE.json", NULL, "command tools described in a JSON file", 0, MAX_SRC,
         &n_files},
        {CLI_LIST, "--mcp", NULL, mcps, "COMMAND", NULL, "an MCP server to start (stdio, no shell): words split on blanks, quotes as in sh, or a JSON array of strings", 0, MAX_SRC, &n_mcp},
        {CLI_STR, "--tool-choice", NULL, &choice, "C", NULL, "auto, required, none or a tool's name (default auto)"},
        {CLI_INT, "--max-steps", NULL, &max_steps, "N", "6", "tool calls per question at most", 1, 100},
        {CLI_FLAG, "--list-tools", NULL, &list, NULL, NULL, "print the tools' names and exit"},
        {CLI_FLAG, "--json", NULL, &json, NULL, NULL, "print each answer with its tool calls as JSON"},
        {CLI_STR, "--system", NULL, &system, "TEXT", NULL, "a system message"},
        {CLI_LIST, "--lora", NULL, lora_in, "[NAME=]DIR", NULL,
         "a PEFT adapter folder (NAME: the folder's name when left out); one given is used", 0, MAX_SRC, &n_lora},
        {CLI_STR, "--adapter", NULL, &adapter, "NAME", NULL, "the adapter to run (default: the one --lora gave, else none)"},
        {CLI_INT, "--max-tokens", "-n", &max_tokens, "N", "256", "tokens per answer at most", 1, 1 << 20},
        {CLI_FLOAT, "--temperature", "--temp", &temp, "T", "0", "randomness; 0: greedy", 0, 100},
        {CLI_INT, "--seed", "-s", &seed, "S", "0", "random seed", 0, 0x7fffffff},
        {CLI_INT, "--threads", "-t", &threads, "N", "0", "kernel threads; 0: one per physical core", 0, 1024},
        {CLI_INT, "--timeout-ms", NULL, &timeout_ms, "MS", "10000", "a tool call is killed after this", 1, 3600000},
        {CLI_INT, "--output-cap", NULL, &cap, "BYTES", "16384", "a tool's output is cut at this", 64, 1 << 26},
        {CLI_STR, "--sysroot", NULL, &sysroot, "DIR", NULL, "read /proc and /sys under DIR (for tests)"},
        {0}};
    const CliSpec spec = {
        .name = "agent",
        .summary = "Answers questions with MODEL calling tools: built-in device tools, command tools, MCP servers",
        .usage = "MODEL (--builtin | --tools FILE.json | --mcp \"CMD ARG...\")... [--ask TEXT] [options]",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder or a .duet file", .pos = &path,
        .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    char names[MAX_SRC][160];
    for (int i = 0; i < n_lora; i++) { /* NAME=DIR for duet.h */
        char name[64];
        const char *dir;
        cli_lora_split(lora_in[i], name, sizeof name, &dir);
        snprintf(names[i], sizeof names[i], "%s=%s", name, dir);
        loras[i] = names[i];
    }
    char one[64];
    if (n_lora == 1 && !adapter) { /* one adapter given: the one used, as in every command */
        const char *dir;
        cli_lora_split(lora_in[0], one, sizeof one, &dir);
        adapter = one;
    }
    if (adapter && !strcmp(adapter, "base")) adapter = NULL;
    if (!path && !list) return cli_error("agent: no MODEL given");
    if (!builtin && !n_files && !n_mcp) return cli_error("agent: no tools: give --builtin, --tools FILE or --mcp CMD");

    AgentCli ac = {0};
    ac.json = json;
    duet_toolbox_options to;
    duet_toolbox_options_default(&to);
    to.sysroot = sysroot;
    to.timeout_ms = (int)timeout_ms;
    to.output_cap = (size_t)cap;
    if (duet_toolbox_create(&ac.tb, &to)) return cli_error("out of memory");
    int rc = 1;
    duet_model *m = NULL;
    duet_session *s = NULL;
    if (builtin && duet_toolbox_add_builtin(ac.tb)) goto tb_fail;
    for (int i = 0; i < n_files; i++)
        if (duet_toolbox_add_commands(ac.tb, tool_files[i])) goto tb_fail;
    for (int i = 0; i < n_mcp; i++) {
        Err e;
        char **words = cmdline_split(mcps[i], &e);
        if (!words) {
            cli_error("agent: --mcp \"%s\": %s", mcps[i], e.msg);
            goto done;
        }
        int r = duet_toolbox_add_mcp(ac.tb, (const char *const *)words);
        free(words);
        if (r) goto tb_fail;
    }
    if (list) {
        cJSON *tools = cJSON_Parse(duet_toolbox_tools_json(ac.tb)), *t;
        cJSON_ArrayForEach(t, tools) printf("%s\n", cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name")));
        cJSON_Delete(tools);
        rc = 0;
        goto done;
    }

    char err[512];
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.n_threads = (int)threads;
    mo.loras = n_lora ? loras : NULL;
    if (duet_model_open(&m, path, &mo, err, sizeof err)) {
        cli_error("%s", err);
        goto done;
    }
    duet_session_options so;
    duet_session_options_default(&so);
    so.adapter = adapter;
    so.temperature = (float)temp;
    so.seed = (uint64_t)seed;
    so.max_tokens = (int)max_tokens;
    if (duet_session_create(m, &so, &s)) {
        cli_error("%s", duet_model_errmsg(m));
        goto done;
    }
    if (duet_session_set_tools(s, duet_toolbox_tools_json(ac.tb)) || (choice && duet_session_set_tool_choice(s, choice))) {
        cli_error("%s", duet_session_errmsg(s));
        goto done;
    }
    if (system && duet_session_append_message(s, "system", system)) {
        cli_error("%s", duet_session_errmsg(s));
        goto done;
    }
    if (!duet_model_tools_native(m)) fprintf(stderr, "duet: the chat template has no tool section: tools rendered "
                                                     "with duet's Hermes-style fallback\n");
    char line[8192];
    int tty = isatty(0);
    for (;;) {
        const char *q = ask;
        if (!ask) {
            if (tty) {
                printf("> ");
                fflush(stdout);
            }
            if (!fgets(line, sizeof line, stdin)) break;
            line[strcspn(line, "\n")] = 0;
            if (!line[0]) continue;
            q = line;
        }
        char *answer = NULL;
        int r = duet_agent_run(s, q, (int)max_steps, run_tool, &ac, print_piece, &ac, &answer);
        if (r < 0) {
            free(answer);
            cli_error("%s", duet_session_errmsg(s));
            goto done;
        }
        if (json) print_json(s, answer);
        else printf("\n");
        fflush(stdout);
        free(answer);
        if (ask) break;
    }
    rc = 0;
    goto done;
tb_fail:
    cli_error("%s", duet_toolbox_errmsg(ac.tb));
done:
    duet_session_close(s);
    duet_model_close(m);
    duet_toolbox_free(ac.tb);
    return rc;
}
