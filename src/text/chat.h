/* chat.h - a model's chat template: the Jinja source from tokenizer_config.json
 * rendered the way transformers' apply_chat_template does (messages, tools,
 * add_generation_prompt, bos_token, eos_token as template variables).
 *
 * A ChatTemplate is parsed once at load and never modified afterwards, so
 * several threads may render with the same const ChatTemplate at once. */
#ifndef DUET_CHAT_H
#define DUET_CHAT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "util/err.h"

typedef struct ChatTemplate ChatTemplate;

/* Reads tokenizer_config.json at path. NULL with *e set on a missing file,
 * bad JSON, no chat_template, or a template that does not parse. */
ChatTemplate *chat_template_load_file(const char *tokenizer_config_path, Err *e);

/* The same from the file's contents (len bytes). `chat_template` may be a
 * string or a list of {name, template} (the one named "default" is used);
 * bos_token / eos_token may be strings, {content: ...} objects or null.
 * `name` (a path) is used in messages. */
ChatTemplate *chat_template_load_json(const char *text, size_t len, const char *name, Err *e);

/* From a Jinja source; bos / eos may be NULL (then undefined in the template). */
ChatTemplate *chat_template_from_source(const char *src, const char *bos, const char *eos, Err *e);

/* Renders messages (a JSON array of {role, content, ...}; tool_calls and tool
 * messages passed through as they are) with tools (a JSON array, or NULL /
 * JSON null for none). Returns a malloc'd NUL-terminated prompt the caller
 * frees, or NULL with *e set (raise_exception's message, template errors as
 * "template:LINE:COL: ..."). */
char *chat_template_render(const ChatTemplate *t, const cJSON *messages, const cJSON *tools,
                           int add_generation_prompt, Err *e);

/* Same, with extra template variables (e.g. {"enable_thinking": false});
 * extra may be NULL. Its keys override the standard ones. */
char *chat_template_render_ex(const ChatTemplate *t, const cJSON *messages, const cJSON *tools,
                              int add_generation_prompt, const cJSON *extra, Err *e);

/* The bos / eos token strings read at load (NULL when absent). Borrowed. */
const char *chat_template_bos(const ChatTemplate *t);
const char *chat_template_eos(const ChatTemplate *t);

/* Frees; safe on NULL. */
void chat_template_free(ChatTemplate *t);

#endif
