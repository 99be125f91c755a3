/* json.h - reading JSON files from outside (config.json, tokenizer.json,
 * adapter_config.json ...) with cJSON, and typed field access whose errors
 * name the file, the field and what was expected. */
#ifndef DUET_JSON_H
#define DUET_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "util/err.h"

/* The most bytes file_read returns: a larger file (or an endless one,
 * /dev/zero) is an error once that much was read. */
#define FILE_READ_MAX (256 << 20)

/* Reads a whole file into a malloc'd, NUL-terminated buffer the caller frees.
 * *len (if non-NULL) receives the size without the NUL. NULL with *e set on
 * failure, including a file over FILE_READ_MAX bytes. */
char *file_read(const char *path, size_t *len, Err *e);

/* Parses text of length len; `name` (a path) is used in messages, which give
 * the line and column of a syntax error. Caller frees with cJSON_Delete. */
cJSON *json_parse(const char *text, size_t len, const char *name, Err *e);

/* file_read + json_parse. */
cJSON *json_parse_file(const char *path, Err *e);

/* Typed getters. `obj` must be an object; `key` the field. Each returns 0 on
 * success, 1 when the field is absent or null (and `required` is 0), and -1
 * with *e set ("FILE: field "KEY": expected ...") otherwise. */
int json_get_int(const cJSON *obj, const char *key, int required, long long *out, const char *file, Err *e);
int json_get_num(const cJSON *obj, const char *key, int required, double *out, const char *file, Err *e);
int json_get_bool(const cJSON *obj, const char *key, int required, int *out, const char *file, Err *e);
/* *out points into the cJSON tree (valid until it is deleted). */
int json_get_str(const cJSON *obj, const char *key, int required, const char **out, const char *file, Err *e);

#endif
