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
    Err e = {{0}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--text")) {
            if (cli_arg_str(argc, argv, &i, &text, &e)) return cli_error("%s", e.msg);
        } else if (!strcmp(argv[i], "--file")) {
            if (cli_arg_str(argc, argv, &i, &file, &e)) return cli_error("%s", e.msg);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_error("tokenize: unknown option \"%s\"", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else {
            return cli_error("tokenize: unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!model || (!text == !file))
        return cli_error("usage: duet tokenize MODEL (--text TEXT | --file F)");
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
    Err e = {{0}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ids")) {
            if (cli_arg_str(argc, argv, &i, &list, &e)) return cli_error("%s", e.msg);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_error("detokenize: unknown option \"%s\"", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else {
            return cli_error("detokenize: unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!model || !list) return cli_error("usage: duet detokenize MODEL --ids 1,2,3");
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
