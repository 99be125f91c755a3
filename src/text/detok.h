/* detok.h - streaming detokenization: push token ids one at a time and get
 * back the bytes that are now complete UTF-8. A token whose bytes stop inside
 * a UTF-8 sequence is held until the sequence completes; invalid bytes come
 * out as U+FFFD exactly where HF's decode (Rust from_utf8_lossy) puts them,
 * so the concatenation of every push and the final flush equals
 * tokenizer_decode() of all the ids.
 *
 * A Detok owns a small output buffer; the pointers it returns stay valid
 * until the next call on it. It keeps a pointer to the Tokenizer, which must
 * outlive it. One Detok per stream (not thread-safe; the Tokenizer is). */
#ifndef DUET_DETOK_H
#define DUET_DETOK_H

#include <stddef.h>

#include "text/tokenizer.h"
#include "util/err.h"

typedef struct Detok {
    const Tokenizer *tok;
    unsigned char pend[4]; /* start of an unfinished UTF-8 sequence */
    int npend;
    char *out;  /* (cap) output of the last call */
    size_t cap;
} Detok;

/* Starts an empty stream over t. */
void detok_init(Detok *d, const Tokenizer *t);

/* Frees the buffer; safe on a zeroed Detok. */
void detok_free(Detok *d);

/* Adds one token. Returns the bytes that became complete (*len of them,
 * possibly 0; NUL-terminated), or NULL with *e set when id is out of range
 * (the stream is unchanged then) or out of memory. */
const char *detok_push(Detok *d, int id, size_t *len, Err *e);

/* Ends the stream: returns what is still held (an unfinished sequence comes
 * out as one U+FFFD) and resets the Detok for a new stream. NULL only when
 * out of memory. */
const char *detok_flush(Detok *d, size_t *len, Err *e);

#endif
