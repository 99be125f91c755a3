/* err.h - error reporting for library code: a message buffer filled by the
 * function that failed. Library functions return DUET_ERR (-1) or NULL and
 * fill *e; only main() prints and exits. An Err may be NULL when the caller
 * does not care about the message. */
#ifndef DUET_ERR_H
#define DUET_ERR_H

#include <stddef.h>

typedef struct Err {
    char msg[512];
} Err;

/* Formats the message into e (if non-NULL) and returns -1, so callers can
 * write `return err_set(e, "...")`. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message with more context ("while loading X: ..."). */
int err_prefix(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
