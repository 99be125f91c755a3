/* messages.h - the one check of a chat message list that comes from outside
 * (a session file, a calibration line, duet_session_append_message): what
 * the chat template may be given. */
#ifndef DUET_MESSAGES_H
#define DUET_MESSAGES_H

#include <cjson/cJSON.h>

#include "util/err.h"

/* 1 if role is "system", "user", "assistant" or "tool". */
int messages_role_ok(const char *role);

/* Checks msgs: a non-empty array of objects, each with a known "role" and a
 * "content" that is a string (or null / absent for an assistant turn with
 * "tool_calls"); every string in them valid UTF-8. `where` prefixes the
 * message ("FILE:3: field \"messages\""). 0, or -1 with *e set naming the
 * message index and field. */
int messages_check(const cJSON *msgs, const char *where, Err *e);

/* 1 if the n bytes at s are valid UTF-8 (Rust str rules, text/utf8.h). */
int messages_utf8_ok(const char *s, size_t n);

#endif
