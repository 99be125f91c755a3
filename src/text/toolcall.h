/* toolcall.h - tool calls out of generated text: Qwen / Hermes style
 * <tool_call>{"name": ..., "arguments": {...}}</tool_call> blocks.
 *
 * The streaming parser is fed the text of each generated token as it comes.
 * Ordinary text is passed through at once, holding back only a tail that may
 * be the start of "<tool_call>"; a call is queued when "</tool_call>" closes
 * it. A block whose JSON is malformed becomes an error entry (with its raw
 * text), never a failure of the stream. One parser per stream; not shared
 * between threads. */
#ifndef DUET_TOOLCALL_H
#define DUET_TOOLCALL_H

#include <stddef.h>

#include "util/err.h"

typedef struct ToolCall {
    char *name;      /* the function name; NULL for an error entry */
    char *arguments; /* the arguments as compact JSON text ("{}" when absent); NULL for an error entry */
    char *raw;       /* the text between the tags, as generated */
    char *error;     /* NULL, or why the block is not a valid call */
} ToolCall;

typedef struct ToolCallParser ToolCallParser;

/* NULL when out of memory. */
ToolCallParser *toolcall_parser_new(void);
void toolcall_parser_free(ToolCallParser *p); /* safe on NULL; drops queued calls */

/* Feeds one piece of generated text (n bytes). Returns a malloc'd string (the
 * caller frees; often "") of ordinary text that can be shown now; NULL with
 * *e set only when out of memory. */
char *toolcall_feed(ToolCallParser *p, const char *piece, size_t n, Err *e);

/* At the end of generation: returns the text still held back (a partial tag
 * that never completed). An unclosed <tool_call> block is queued as an error
 * entry. The parser can then be fed a new stream. */
char *toolcall_finish(ToolCallParser *p, Err *e);

/* Takes the oldest completed call into *out (the caller frees it with
 * toolcall_clear): 1, or 0 when none is queued. */
int toolcall_next(ToolCallParser *p, ToolCall *out);

void toolcall_clear(ToolCall *c); /* frees the strings; safe on a zeroed ToolCall */

/* Whole-text convenience: the text outside the blocks into *content (malloc'd)
 * and the calls into *calls (malloc'd array of *ncalls; free each with
 * toolcall_clear, then the array). 0, or -1 with *e set when out of memory. */
int toolcall_parse(const char *text, size_t n, char **content, ToolCall **calls, int *ncalls, Err *e);

#endif
