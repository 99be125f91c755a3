/* jinja.h - a Jinja2-subset template interpreter for chat templates, matching
 * what transformers' apply_chat_template renders (ImmutableSandboxedEnvironment
 * with trim_blocks, lstrip_blocks and the loopcontrols extension).
 *
 * A JinjaTemplate is parsed once and is immutable afterwards: any number of
 * threads may render the same const template at once (each render allocates
 * its own values). Unknown tags, filters and tests are rejected at parse time
 * with "NAME:LINE:COL: ..." messages; run-time errors carry the same position. */
#ifndef DUET_JINJA_H
#define DUET_JINJA_H

#include <stddef.h>

#include "text/jinja_value.h"
#include "util/err.h"

typedef struct JinjaTemplate JinjaTemplate;

/* Limits that guard a render against runaway templates; each ends the render
 * with "NAME:LINE:COL: ... limit ... exceeded". A chat template renders on
 * every turn: real ones take a few thousand steps and well under 1 MB.
 * Fixed limits besides these (docs/LIMITS.md): an expression's tree at most
 * 256 levels tall, blocks and elif chains 200 deep, 768 levels of evaluation
 * at run time (blocks, expressions, macro calls together), values nested
 * 1,000 deep. */
typedef struct JinjaLimits {
    size_t max_output;   /* bytes of rendered text */
    int max_depth;       /* nested macro calls */
    long long max_steps; /* work: evaluated nodes, loop iterations, and one step per 64 bytes made */
    size_t max_memory;   /* bytes of strings, lists and dicts the render makes, added up */
} JinjaLimits;

/* Parses src (len bytes, need not be NUL-terminated). `name` prefixes error
 * messages ("template" when NULL). Returns a template the caller frees with
 * jinja_free, or NULL with *e set ("NAME:LINE:COL: unknown filter \"xyz\""). */
JinjaTemplate *jinja_parse(const char *src, size_t len, const char *name, Err *e);

/* Sets the render limits (defaults: 16 MiB output, 64 macro calls deep,
 * 4M steps, 128 MiB of values). A zero field keeps its default. */
void jinja_set_limits(JinjaTemplate *t, const JinjaLimits *lim);

/* Pins strftime_now() to a fixed time (seconds since the epoch, shown as UTC)
 * instead of the local clock: for tests that compare renders. */
void jinja_set_time(JinjaTemplate *t, long long unix_seconds);

/* Renders with the variables of `vars` (a JV_DICT; borrowed, not modified) as
 * globals, on top of the built-in globals (namespace, range, raise_exception,
 * strftime_now). Returns a malloc'd NUL-terminated string the caller frees
 * (*out_len, if non-NULL, gets its length), or NULL with *e set. */
char *jinja_render(const JinjaTemplate *t, const Jv *vars, size_t *out_len, Err *e);

/* Frees a template; safe on NULL. */
void jinja_free(JinjaTemplate *t);

#endif
