/* duet_file.h - the .duet reader (docs/FORMAT.md). model_open_duet() maps
 * the file and calls duet_parse(); the fuzz target calls duet_parse() on a
 * memory buffer. */
#ifndef DUET_DUET_FILE_H
#define DUET_DUET_FILE_H

#include "run/model.h"

/* Version 2 added the block types q6, q5, iq4 and iq3, version 3 the
 * super-block types, version 4 8-bit LoRA matrices; a reader reads every
 * older version too (whose files hold none of those). */
#define DUET_FORMAT_VERSION 4
#define DUET_FORMAT_MIN_VERSION 1

/* Checks and opens a .duet image of len bytes at buf (64-byte aligned, as a
 * mapping is) as Model m: every check of FORMAT.md's reading rules, then the
 * weights, norms, adapters and tokenizer bytes point into buf, which must
 * outlive m (model_close(m) does not free it). `name` is used in messages.
 * 0, or -1 with *e set and m zeroed. */
int duet_parse(Model *m, const void *buf, size_t len, const char *name, Err *e);

#endif
