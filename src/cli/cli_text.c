/* cli_text.c - the tokenizer and chat template of a model for the CLI: from
 * a checkpoint folder (tokenizer.json, tokenizer_config.json), from a
 * compiled .duet file (the bytes embedded in it), or from one of those JSON
 * files named directly. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "text/chat.h"
#include "text/tokenizer.h"

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

int cli_model_text(const Model *m, const char *path, Tokenizer **t, ChatTemplate **ct, Err *e)
{
    char p[4096];
    if (t) *t = NULL;
    if (ct) *ct = NULL;
    if (t) {
        snprintf(p, sizeof p, "%s%s", path, m->tokenizer_json ? "#tokenizer.json" : "/tokenizer.json");
        *t = m->tokenizer_json ? tokenizer_load_json(m->tokenizer_json, m->tokenizer_json_len, p, e)
                               : tokenizer_load_file(p, e);
        if (!*t) return -1;
    }
    if (ct) {
        snprintf(p, sizeof p, "%s%s", path, m->tokenizer_config ? "#tokenizer_config.json" : "/tokenizer_config.json");
        *ct = m->tokenizer_config ? chat_template_load_json(m->tokenizer_config, m->tokenizer_config_len, p, e)
                                  : chat_template_load_file(p, e);
        if (!*ct) {
            if (t) tokenizer_free(*t), *t = NULL;
            return -1;
        }
    }
    return 0;
}

int cli_open_text(const char *path, Tokenizer **t, ChatTemplate **ct, Err *e)
{
    struct stat st;
    if (t) *t = NULL;
    if (ct) *ct = NULL;
    if (stat(path, &st) != 0) return err_set(e, "%s: no such file or folder", path);
    if (!S_ISDIR(st.st_mode) && ends_with(path, ".json")) {
        /* a tokenizer.json or tokenizer_config.json given directly */
        if (t && !(*t = tokenizer_load_file(path, e))) return -1;
        if (ct && !(*ct = chat_template_load_file(path, e))) {
            if (t) tokenizer_free(*t), *t = NULL;
            return -1;
        }
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        Model none = {0}; /* a folder: the files are read from it */
        return cli_model_text(&none, path, t, ct, e);
    }
    Model m;
    if (model_open_duet(&m, path, 0, e)) return -1;
    if ((t && !m.tokenizer_json) || (ct && !m.tokenizer_config)) {
        model_close(&m);
        return err_set(e, "%s: no %s embedded (compile from a folder that has it)", path,
                       t && !m.tokenizer_json ? "tokenizer.json" : "tokenizer_config.json");
    }
    int rc = cli_model_text(&m, path, t, ct, e);
    model_close(&m);
    return rc;
}
