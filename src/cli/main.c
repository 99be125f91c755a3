/* main.c - the duet command: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} Command;

static const Command commands[] = {
    {"generate", cmd_generate, "MODEL (--ids 1,2,3 | --prompt TEXT | --chat TEXT) [--max-tokens N] [sampling] [--tools FILE [--tool-choice C] | --json-schema FILE | --json]"},
    {"chat", cmd_chat, "MODEL [--adapter NAME] [--system TEXT] [--lora NAME=DIR]... [--mmap] [--builtin] [--tools FILE.json]... [--mcp CMD] (interactive)"},
    {"logits", cmd_logits, "MODEL --ids 1,2,3 -o FILE [--all]"},
    {"tokenize", cmd_tokenize, "MODEL (--text TEXT | --file F)"},
    {"detokenize", cmd_detokenize, "MODEL --ids 1,2,3"},
    {"template", cmd_template, "MODEL --messages M.json [--tools T.json] [--no-generation-prompt]"},
    {"compile", cmd_compile, "BASE_DIR [--lora NAME=DIR]... [--quant f32|bf16|f16|q8|q4] [--round search|nearest] [--calib FILE] -o OUT.duet"},
    {"inspect", cmd_inspect, "FILE.duet [--json]"},
    {"synth", cmd_synth, "--like qwen2-0.5b|qwen2-1.5b|qwen2.5-3b -o DIR [--lora NAME=RANK]... [--seed S]"},
    {"serve", cmd_serve, "MODEL [--host H] [--port P] [--lora NAME=DIR]... [--lora-dir DIR] [--api-key KEY] [--parallel N] [--ctx N] [--kv-budget SIZE]"},
    {"bench", cmd_bench, "MODEL [--lora NAME=DIR] [--prompt-tokens N] [--gen-tokens N] [--reps R] [--json] | --memory"},
    {"agent", cmd_agent, "MODEL [--adapter NAME] [--builtin] [--tools FILE.json]... [--mcp \"CMD ARG...\"]... [--tool-choice auto|required|none|NAME] [--max-steps N] (--ask TEXT | interactive) [--list-tools] [--json]"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: duet COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nMODEL is a checkpoint folder or a .duet file. Options for the commands that run one:\n"
               "  --lora [NAME=]DIR (PEFT folder, repeatable)  --adapter NAME  --merge  --threads N\n"
               "  --kv f16|f32  --ctx N  --chunk N  --isa scalar|avx2|avx512|neon  --ram\n"
               "Sampling: --greedy --temperature T --top-k K --top-p P --min-p P --repeat-penalty R --seed S\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    return cli_error("unknown command \"%s\" (try duet --help)", argv[1]);
}
