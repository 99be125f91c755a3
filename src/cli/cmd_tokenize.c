/* cmd_tokenize.c - `duet tokenize MODEL (--text TEXT | --file F)` prints the
 * token ids space-separated on one line; `duet detokenize MODEL --ids 1,2,3`
 * prints the decoded text byte for byte, no newline added. Both use
 * add_special_tokens=False / skip_special_tokens=False semantics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "util/json.h"

/* The tokenizer of MODEL (a folder, a .duet file or a tokenizer.json);
 * the caller frees it. NULL with *e set. */
static Tokenizer *tokenizer_open_model(const char *model_path, Err *e)
{
    Tokenizer *t = NULL;
    return cli_open_text(model_path, &t, NULL, e) ? NULL : t;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *file = NULL;
    CliOpt own[] = {{CLI_STR, "--text", NULL, &text, "TEXT", NULL, "the text to encode"},
                    {CLI_STR, "--file", "-f", &file, "F", NULL, "the file to encode"},
                    {0}};
    const CliSpec spec = {
        .name = "tokenize",
        .summary = "Prints the token ids of a text, space-separated (no special tokens added)",
        .usage = "MODEL (--text TEXT | --file F)",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder, a .duet file or a tokenizer.json", .pos = &model,
        .pos_required = 1, .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err e = {{0}};
    if (!text == !file) return cli_error("tokenize: give one of --text TEXT or --file F");
    size_t len = 0;
    char *buf = NULL;
    if (file) {
        if (!(buf = file_read(file, &len, &e))) return cli_error("%s", e.msg);
        text = buf;
    } else {
        len = strlen(text);
    }
    Tokenizer *t = tokenizer_open_model(model, &e);
    int *ids = NULL, n = 0, rc = 0;
    if (!t || tokenizer_encode(t, text, len, &ids, &n, &e) < 0) {
        rc = cli_error("%s", e.msg);
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
        if (fflush(stdout) != 0) rc = cli_error("tokenize: cannot write the output");
    }
    free(ids);
    free(buf);
    tokenizer_free(t);
    return rc;
}

int cmd_detokenize(int argc, char **argv)
{
    const char *model = NULL, *list = NULL;
    CliOpt own[] = {{CLI_STR, "--ids", NULL, &list, "1,2,3", NULL, "the token ids to decode (required)"}, {0}};
    const CliSpec spec = {
        .name = "detokenize",
        .summary = "Prints the text of token ids, byte for byte, no newline added",
        .usage = "MODEL --ids 1,2,3",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder, a .duet file or a tokenizer.json", .pos = &model,
        .pos_required = 1, .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err e = {{0}};
    if (!list) return cli_error("detokenize: --ids is required");
    int n = 0;
    int *ids = cli_parse_ids(list, &n, &e);
    if (!ids) return cli_error("%s", e.msg);
    Tokenizer *t = tokenizer_open_model(model, &e);
    size_t len = 0;
    char *text = t ? tokenizer_decode(t, ids, n, &len, &e) : NULL;
    int rc = 0;
    if (!text) rc = cli_error("%s", e.msg);
    else if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
        rc = cli_error("detokenize: cannot write the output");
    free(text);
    free(ids);
    tokenizer_free(t);
    return rc;
}
