/* cli_text.c - the tokenizer and chat template of a model path for the CLI:
 * a checkpoint folder (tokenizer.json, tokenizer_config.json) or a compiled
 * .duet file (the bytes embedded in it). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "text/chat.h"
#include "text/tokenizer.h"

int cli_open_text(const char *model_path, Tokenizer **t, ChatTemplate **ct, Err *e);

/* Opens what is asked for (t and/or ct non-NULL) from a folder or a .duet.
 * The caller frees them (tokenizer_free, chat_template_free). 0 or -1 with *e set. */
int cli_open_text(const char *model_path, Tokenizer **t, ChatTemplate **ct, Err *e)
{
    struct stat st;
    if (t) *t = NULL;
    if (ct) *ct = NULL;
    if (stat(model_path, &st) != 0) return err_set(e, "%s: no such file or folder", model_path);
    char p[4096];
    if (S_ISDIR(st.st_mode)) {
        snprintf(p, sizeof p, "%s/tokenizer.json", model_path);
        if (t && !(*t = tokenizer_load_file(p, e))) return -1;
        snprintf(p, sizeof p, "%s/tokenizer_config.json", model_path);
        if (ct && !(*ct = chat_template_load_file(p, e))) goto fail;
        return 0;
    }
    Model m;
    if (model_open_duet(&m, model_path, e)) return -1;
    snprintf(p, sizeof p, "%s#tokenizer.json", model_path);
    if (t && !m.tokenizer_json) err_set(e, "%s: no tokenizer.json embedded", model_path);
    else if (t) *t = tokenizer_load_json(m.tokenizer_json, m.tokenizer_json_len, p, e);
    snprintf(p, sizeof p, "%s#tokenizer_config.json", model_path);
    if (ct && (!t || *t)) {
        if (!m.tokenizer_config) err_set(e, "%s: no tokenizer_config.json embedded", model_path);
        else *ct = chat_template_load_json(m.tokenizer_config, m.tokenizer_config_len, p, e);
    }
    model_close(&m);
    if ((t && !*t) || (ct && !*ct)) goto fail;
    return 0;
fail:
    if (t) tokenizer_free(*t), *t = NULL;
    if (ct) chat_template_free(*ct), *ct = NULL;
    return -1;
}
