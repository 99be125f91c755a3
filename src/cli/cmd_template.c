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

/* What every chat template reads in a message: an object with a string
 * "role" and a "content" (a string, a list of parts, or null/absent beside
 * "tool_calls"). Other fields and types are the template's business. 0, or
 * -1 with *e naming the file, the message and the field. */
static int check_messages(const cJSON *msgs, const char *path, Err *e)
{
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) return err_set(e, "%s: message %d: expected an object {\"role\", \"content\"}", path, i);
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role")))
            return err_set(e, "%s: message %d: field \"role\": expected a string (\"system\", \"user\", \"assistant\", "
                           "\"tool\")", path, i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if ((!c || cJSON_IsNull(c)) && !cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
            return err_set(e, "%s: message %d: field \"content\" is missing (expected a string)", path, i);
    }
    return 0;
}

int cmd_template(int argc, char **argv)
{
    const char *model = NULL, *msgs_path = NULL, *tools_path = NULL;
    int no_gen = 0;
    CliOpt own[] = {
        {CLI_STR, "--messages", "-m", &msgs_path, "M.json", NULL, "a JSON array of {\"role\", \"content\"} (required)"},
        {CLI_STR, "--tools", NULL, &tools_path, "T.json", NULL, "a JSON array of tools, passed to the template"},
        {CLI_FLAG, "--no-generation-prompt", NULL, &no_gen, NULL, NULL, "leave out the assistant header at the end"},
        {0}};
    const CliSpec spec = {
        .name = "template",
        .summary = "Prints the prompt the model's chat template renders for a list of messages, byte for byte",
        .usage = "MODEL --messages M.json [--tools T.json] [--no-generation-prompt]",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder, a .duet file or a tokenizer_config.json", .pos = &model,
        .pos_required = 1, .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    int gen = !no_gen;
    Err e = {{0}};
    if (!msgs_path) return cli_error("template: --messages is required");
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
    if (check_messages(msgs, msgs_path, &e)) { /* blamed on the file, not on the template that would trip on it */
        cli_error("%s", e.msg);
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
