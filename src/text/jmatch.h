/* jmatch.h - a pushdown automaton over bytes that accepts the JSON values a
 * compiled JsSchema generates (jschema.h says which: a subset of what the
 * schema accepts). One frame per open value; each frame knows the fewest
 * bytes that complete it, so the token mask can steer to the shortest
 * completion when the token budget runs low.
 *
 * Whitespace: at most JM_MAX_WS bytes of ' ' or '\n' in each gap between
 * tokens of the JSON text (before the value, after ':' and ',', around
 * brackets). Strings are valid UTF-8 (no overlong forms, no surrogates), with
 * the JSON escapes; \u escapes of surrogates are refused.
 *
 * A JmState is a plain value: copying it (jm_copy) forks the automaton, which
 * is how the token mask explores tokens. It points to the schema, which must
 * outlive it. */
#ifndef DUET_JMATCH_H
#define DUET_JMATCH_H

#include <stdint.h>

#include "text/jschema.h"

#define JM_MAX_FRAMES 32
#define JM_MAX_WS 6

typedef struct JmFrame {
    int32_t node;   /* schema node */
    uint8_t st;     /* state within the value (per kind) */
    uint8_t ws;     /* whitespace bytes in the current gap */
    uint8_t neg;    /* number: a '-' was written */
    uint8_t pad;
    int32_t a, b, c; /* per kind: object next property / key candidate / key bytes; array items begun;
                        string code points / pending UTF-8 bytes or \u digits / lead byte; number
                        integer / fraction digits; literal candidate / bytes matched; call see jmatch.c */
    double v;       /* number: magnitude of the integer part */
} JmFrame;

typedef struct JmState {
    const JsSchema *s;
    int n;          /* frames in use */
    int done;       /* the root value is complete */
    int ws;         /* whitespace before the root value */
    JmFrame f[JM_MAX_FRAMES];
} JmState;

enum { JM_REJECT = 0, JM_OK = 1, JM_END = 2 };

/* Starts before the root value of s. */
void jm_init(JmState *m, const JsSchema *s);

/* Copies src into dst (only the frames in use). */
void jm_copy(JmState *dst, const JmState *src);

/* Feeds one byte: JM_OK (consumed), JM_REJECT (no valid value continues
 * so; *m is then unspecified: step a copy), or JM_END (the root value ended
 * just before this byte, which was not consumed: a number needs the next
 * byte to know it is complete). */
int jm_step(JmState *m, int byte);

/* 1 if the bytes so far are a complete value (also a number that could go on). */
int jm_can_end(const JmState *m);

/* The fewest bytes that complete the value from here (0 when complete). */
int jm_need(const JmState *m);

/* 1 if the automaton is inside a string where any run of plain characters
 * (no '"', '\\', control bytes; whole UTF-8 sequences) may follow; *room
 * receives how many more code points fit (-1: no limit). */
int jm_in_free_string(const JmState *m, int *room);

#endif
