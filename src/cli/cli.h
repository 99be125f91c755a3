/* cli.h - the duet command: one cmd_NAME(argc, argv) per subcommand, each in
 * its own file, returning the process exit status. argv[0] is the subcommand
 * name. Errors go to stderr as one line "duet: error: ..." (cli_error). */
#ifndef DUET_CLI_H
#define DUET_CLI_H

#include <stddef.h>

#include "util/err.h"

int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "duet: error: MSG" on stderr and returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses "1,2,3" (commas or spaces) into a malloc'd int array; NULL with *e
 * set on a malformed list or an empty one. */
int *cli_parse_ids(const char *s, int *n, Err *e);

/* Option value helpers: parse argv[*i + 1] as the value of option argv[*i],
 * advancing *i. Return 0, or -1 with *e set ("--top-k: expected an integer"). */
int cli_arg_str(int argc, char **argv, int *i, const char **out, Err *e);
int cli_arg_int(int argc, char **argv, int *i, long *out, long lo, long hi, Err *e);
int cli_arg_float(int argc, char **argv, int *i, double *out, double lo, double hi, Err *e);

#endif

/* Options shared by the commands that run a model (generate, logits, ...). */
#include "run/forward.h"

#define CLI_MAX_LORAS 32

typedef struct ModelOpts {
    const char *path;               /* checkpoint folder or .duet file */
    const char *lora_spec[CLI_MAX_LORAS]; /* "[NAME=]DIR" */
    int n_lora;
    const char *adapter;            /* --adapter NAME */
    int merge;                      /* --merge */
    int threads;                    /* --threads N (0: physical cores) */
    const char *isa;                /* --isa NAME (kernel backend) */
    KvType kv_type;                 /* --kv f16|f32 */
    int ctx;                        /* --ctx N (0: prompt + output) */
    int chunk;                      /* --chunk N prefill chunk (0: 512) */
    int ram;                        /* --ram: .duet weights copied to huge pages (MODEL_OPEN_RAM) */
} ModelOpts;

/* duet generate with tools or a JSON schema: run through duet.h sessions
 * (cmd_generate_tools.c). Returns the exit status. */
typedef struct GenStructured {
    const char *path, *adapter, *tools_path, *tool_choice, *schema_path;
    const char *const *loras;       /* "NAME=DIR" */
    int n_lora, threads, json_object, max_tokens, top_k;
    const char *chat, *system, *prompt; /* chat: one user message; else prompt as raw text */
    float temperature, top_p;
    uint64_t seed;
} GenStructured;
int cli_generate_structured(const GenStructured *g);

/* Text front-end types (src/text). */
typedef struct Tokenizer Tokenizer;
typedef struct ChatTemplate ChatTemplate;

/* The tokenizer and/or chat template (pass NULL for what is not wanted) of
 * an opened model: from the bytes a .duet embeds, else from the checkpoint
 * folder `path`. The caller frees them. 0, or -1 with *e set. */
int cli_model_text(const Model *m, const char *path, Tokenizer **t, ChatTemplate **ct, Err *e);

/* The same from a path alone: a folder, a .duet file, or a tokenizer.json /
 * tokenizer_config.json named directly. */
int cli_open_text(const char *path, Tokenizer **t, ChatTemplate **ct, Err *e);

/* If argv[*i] is one of the options above, consumes it (and its value) and
 * returns 1; returns 0 if it is not one; -1 with *e set on a bad value. */
int cli_model_opt(ModelOpts *o, int argc, char **argv, int *i, Err *e);

/* Opens o->path with its adapters, merges if asked, creates the kernel
 * context. *adapter receives the chosen adapter (NULL: base, or the merged one). */
int cli_model_open(const ModelOpts *o, Model *m, Kern **k, const Adapter **adapter, Err *e);
