/* chat.c - chat templates from tokenizer_config.json, rendered like HF's
 * apply_chat_template: render(messages=..., tools=..., documents=None,
 * add_generation_prompt=..., bos_token=..., eos_token=...). */
#include "text/chat.h"

#include <stdlib.h>
#include <string.h>

#include "text/jinja.h"
#include "util/json.h"

struct ChatTemplate {
    JinjaTemplate *jt;
    char *bos, *eos; /* NULL when the config has none */
};

void chat_template_free(ChatTemplate *t)
{
    if (!t) return;
    jinja_free(t->jt);
    free(t->bos);
    free(t->eos);
    free(t);
}

const char *chat_template_bos(const ChatTemplate *t) { return t->bos; }
const char *chat_template_eos(const ChatTemplate *t) { return t->eos; }

ChatTemplate *chat_template_from_source(const char *src, const char *bos, const char *eos, Err *e)
{
    ChatTemplate *t = calloc(1, sizeof *t);
    if (!t) {
        err_set(e, "out of memory");
        return NULL;
    }
    if ((bos && !(t->bos = strdup(bos))) || (eos && !(t->eos = strdup(eos)))) {
        chat_template_free(t);
        err_set(e, "out of memory");
        return NULL;
    }
    if (!(t->jt = jinja_parse(src, strlen(src), "template", e))) {
        chat_template_free(t);
        return NULL;
    }
    return t;
}

/* A special token field: a string, {"content": "..."}, null or absent. */
static int token_field(const cJSON *cfg, const char *key, const char **out, const char *name, Err *e)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *out = NULL;
    if (!f || cJSON_IsNull(f)) return 0;
    if (cJSON_IsObject(f)) f = cJSON_GetObjectItemCaseSensitive(f, "content");
    if (!cJSON_IsString(f))
        return err_set(e, "%s: field \"%s\": expected a string or an object with a string \"content\"", name, key);
    *out = f->valuestring;
    return 0;
}

ChatTemplate *chat_template_load_json(const char *text, size_t len, const char *name, Err *e)
{
    cJSON *cfg = json_parse(text, len, name, e);
    if (!cfg) return NULL;
    ChatTemplate *t = NULL;
    const char *bos, *eos, *src = NULL;
    if (!cJSON_IsObject(cfg)) {
        err_set(e, "%s: expected a JSON object", name);
        goto done;
    }
    if (token_field(cfg, "bos_token", &bos, name, e) || token_field(cfg, "eos_token", &eos, name, e)) goto done;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsString(ct)) {
        src = ct->valuestring;
    } else if (cJSON_IsArray(ct)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, ct) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(n) && !strcmp(n->valuestring, "default")) {
                if (!cJSON_IsString(s)) {
                    err_set(e, "%s: field \"chat_template\": entry \"default\" has no string \"template\"", name);
                    goto done;
                }
                src = s->valuestring;
            }
        }
        if (!src) {
            err_set(e, "%s: field \"chat_template\": no entry named \"default\"", name);
            goto done;
        }
    } else if (!ct || cJSON_IsNull(ct)) {
        err_set(e, "%s: no \"chat_template\" field (the model has no chat template)", name);
        goto done;
    } else {
        err_set(e, "%s: field \"chat_template\": expected a string or a list of {name, template}", name);
        goto done;
    }
    if (!(t = chat_template_from_source(src, bos, eos, e))) err_prefix(e, "%s: chat_template", name);
done:
    cJSON_Delete(cfg);
    return t;
}

ChatTemplate *chat_template_load_file(const char *path, Err *e)
{
    size_t len;
    char *text = file_read(path, &len, e);
    if (!text) return NULL;
    ChatTemplate *t = chat_template_load_json(text, len, path, e);
    free(text);
    return t;
}

char *chat_template_render_ex(const ChatTemplate *t, const cJSON *messages, const cJSON *tools,
                              int add_generation_prompt, const cJSON *extra, Err *e)
{
    if (!cJSON_IsArray(messages)) {
        err_set(e, "messages: expected a JSON array of {role, content} objects");
        return NULL;
    }
    if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools)) {
        err_set(e, "tools: expected a JSON array");
        return NULL;
    }
    if (extra && !cJSON_IsObject(extra)) {
        err_set(e, "template variables: expected a JSON object");
        return NULL;
    }
    Jv *vars = jv_dict();
    int rc = vars ? 0 : -1;
    if (!rc) rc = jv_dict_set(vars, "messages", 8, jv_from_cjson(messages));
    if (!rc) rc = jv_dict_set(vars, "tools", 5, tools ? jv_from_cjson(tools) : jv_none());
    if (!rc) rc = jv_dict_set(vars, "documents", 9, jv_none());
    if (!rc) rc = jv_dict_set(vars, "add_generation_prompt", 21, jv_bool(add_generation_prompt));
    if (!rc && t->bos) rc = jv_dict_set(vars, "bos_token", 9, jv_strz(t->bos));
    if (!rc && t->eos) rc = jv_dict_set(vars, "eos_token", 9, jv_strz(t->eos));
    if (extra)
        for (const cJSON *c = extra->child; c && !rc; c = c->next)
            rc = jv_dict_set(vars, c->string, strlen(c->string), jv_from_cjson(c));
    if (rc) {
        jv_unref(vars);
        err_set(e, "out of memory");
        return NULL;
    }
    char *out = jinja_render(t->jt, vars, NULL, e);
    jv_unref(vars);
    return out;
}

char *chat_template_render(const ChatTemplate *t, const cJSON *messages, const cJSON *tools,
                           int add_generation_prompt, Err *e)
{
    return chat_template_render_ex(t, messages, tools, add_generation_prompt, NULL, e);
}
