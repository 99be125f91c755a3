/* cmd_template.c - `duet template MODEL --messages M.json [--tools T.json]
 * [--no-generation-prompt]`: prints the prompt the model's chat template
 * renders, byte for byte (no newline added), as transformers'
 * apply_chat_template(tokenize=False) would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "text/chat.h"
#include "util/json.h"

int cmd_template(int argc, char **argv)
{
    const char *model = NULL, *msgs_path = NULL, *tools_path = NULL;
    int gen = 1;
    Err e = {{0}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--messages")) {
            if (cli_arg_str(argc, argv, &i, &msgs_path, &e)) return cli_error("%s", e.msg);
        } else if (!strcmp(argv[i], "--tools")) {
            if (cli_arg_str(argc, argv, &i, &tools_path, &e)) return cli_error("%s", e.msg);
        } else if (!strcmp(argv[i], "--no-generation-prompt")) {
            gen = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_error("template: unknown option \"%s\"", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else {
            return cli_error("template: unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!model || !msgs_path)
        return cli_error("usage: duet template MODEL --messages M.json [--tools T.json] [--no-generation-prompt]");
    ChatTemplate *t = NULL;
    if (cli_open_text(model, NULL, &t, &e)) return cli_error("%s", e.msg);
    int rc = 1;
    cJSON *msgs = json_parse_file(msgs_path, &e), *tools = NULL;
    char *out = NULL;
    if (!msgs) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (tools_path && !(tools = json_parse_file(tools_path, &e))) {
        cli_error("%s", e.msg);
        goto done;
    }
    if (!cJSON_IsArray(msgs)) {
        cli_error("%s: expected a JSON array of messages", msgs_path);
        goto done;
    }
    if (!(out = chat_template_render(t, msgs, tools, gen, &e))) {
        cli_error("%s", e.msg);
        goto done;
    }
    size_t n = strlen(out);
    if (fwrite(out, 1, n, stdout) != n || fflush(stdout)) {
        cli_error("writing the prompt to stdout failed");
        goto done;
    }
    rc = 0;
done:
    free(out);
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    chat_template_free(t);
    return rc;
}
