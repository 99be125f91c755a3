/* main.c - the duet command: dispatches to the subcommands, prints the
 * command list (duet --help), a command's help (duet help CMD) and the
 * version, and suggests the closest command for a misspelt one. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "duet.h"

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* one line for duet --help; the command's own table has the rest */
} Command;

static const Command commands[] = {
    {"chat", cmd_chat, "chat with a model in the terminal"},
    {"generate", cmd_generate, "generate from one prompt (text, chat message or token ids)"},
    {"compile", cmd_compile, "compile a checkpoint folder and PEFT adapters into one .duet file"},
    {"inspect", cmd_inspect, "check a .duet file and show what it holds"},
    {"agent", cmd_agent, "answer with tools: built-in device tools, command tools, MCP servers"},
    {"serve", cmd_serve, "serve the OpenAI and Ollama HTTP APIs"},
    {"bench", cmd_bench, "measure prefill and decode speed, or memory bandwidth"},
    {"synth", cmd_synth, "write a random checkpoint with a real model's shapes"},
    {"tokenize", cmd_tokenize, "text to token ids"},
    {"detokenize", cmd_detokenize, "token ids to text"},
    {"template", cmd_template, "render messages through the model's chat template"},
    {"logits", cmd_logits, "write a prompt's logits to a file"},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: duet COMMAND [options]     (duet %s)\n\ncommands:\n", duet_version());
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nMODEL is a Hugging Face checkpoint folder or a .duet file (duet compile).\n"
               "duet help COMMAND (or duet COMMAND --help) lists a command's options and their defaults.\n"
               "duet --version prints the version.\n");
}

static const Command *find(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

/* Ollama's and llama.cpp's names for what a duet command does. */
static const char *const others[][2] = {
    {"run", "chat MODEL (as ollama run)"},          {"show", "inspect FILE.duet (as ollama show)"},
    {"create", "compile DIR -o FILE.duet (as ollama create)"}, {"quantize", "compile DIR --quant q4 -o FILE.duet"},
    {"convert", "compile DIR -o FILE.duet"},     {"cli", "chat MODEL or generate MODEL (as llama-cli)"},
    {"server", "serve MODEL (as llama-server)"},
};

static int unknown_command(const char *name)
{
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        if (!strcmp(name, others[i][0])) return cli_error("unknown command \"%s\": use duet %s", name, others[i][1]);
    const char *names[N_COMMANDS + 1];
    for (int i = 0; i < N_COMMANDS; i++) names[i] = commands[i].name;
    names[N_COMMANDS] = "help";
    const char *s = cli_suggest(name, names, N_COMMANDS + 1);
    if (s) return cli_error("unknown command \"%s\" (did you mean %s?)", name, s);
    return cli_error("unknown command \"%s\" (duet --help lists the commands)", name);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *a = argv[1];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(a, "--version") || !strcmp(a, "-V") || !strcmp(a, "version")) {
        printf("duet %s\n", duet_version());
        return 0;
    }
    if (!strcmp(a, "help")) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        const Command *c = find(argv[2]);
        if (!c) return unknown_command(argv[2]);
        char *hv[] = {argv[2], "--help", NULL};
        return c->run(2, hv);
    }
    if (a[0] == '-') return cli_error("unknown option \"%s\" before the command (duet --help lists the commands)", a);
    const Command *c = find(a);
    if (!c) return unknown_command(a);
    return c->run(argc - 1, argv + 1);
}
