/* tokmask.h - JSON-schema constraints at the level of tokens.
 *
 * A TokTrie holds every ordinary token's bytes (added tokens left out) in a
 * trie laid out in preorder, built once per vocabulary: a token mask is a walk
 * of the trie that steps a copy of the byte automaton (jmatch.h) along each
 * branch and drops a whole subtree at the first byte the automaton refuses,
 * so tokens that span several JSON pieces ('",', '"}}', ' {"') are handled
 * byte by byte. Inside a free string the tokens made only of plain characters
 * (most of the vocabulary) come from a precomputed set and only the others
 * are walked.
 *
 * A Constraint is the state of one generation: a JSON answer (then the end
 * of sequence), or tool calls (<tool_call> JSON </tool_call>) that are either
 * forced from the first token or lazy (free text until the model opens a
 * call). When the tokens left come close to the shortest completion, only
 * tokens that keep a completion within the budget are allowed.
 * A TokTrie is immutable once built and may be shared by threads; a
 * Constraint belongs to one generation. */
#ifndef DUET_TOKMASK_H
#define DUET_TOKMASK_H

#include <stdint.h>

#include "text/jmatch.h"
#include "text/tokenizer.h"

typedef struct TrieNodes {
    uint8_t *byte;  /* (n) the byte leading to node i */
    int32_t *tok;   /* (n) the token ending at node i, or -1 */
    int32_t *end;   /* (n) index just after node i's subtree */
    int n;
} TrieNodes;

typedef struct TokTrie {
    int n_vocab;          /* bits in a mask (the model's vocabulary size) */
    int words;            /* uint32 words of a mask */
    TrieNodes all;        /* every ordinary token */
    TrieNodes odd;        /* the tokens that are not plain string characters */
    int32_t *dup;         /* (n_vocab) next token with the same bytes, or -1 */
    uint32_t *plain;      /* (words) tokens of plain string characters */
    int32_t *plain_ids;   /* (n_plain) those tokens by code point count, ascending */
    int32_t *plain_cps;   /* (n_plain) their counts */
    int n_plain;
    int max_len;          /* bytes of the longest token */
} TokTrie;

/* Builds the trie of t's ordinary tokens with ids below n_vocab. 0, or -1
 * with *e set (out of memory). */
int toktrie_build(TokTrie *tt, const Tokenizer *t, int n_vocab, Err *e);
void toktrie_free(TokTrie *tt); /* safe on a zeroed TokTrie */

enum { CK_ANSWER, CK_CALLS };
enum { PH_FREE, PH_OPEN, PH_JSON, PH_CLOSE, PH_AFTER, PH_END };

typedef struct CState {
    int phase;
    int pos;        /* bytes of a text tag matched */
    int ws;         /* whitespace bytes before a tag */
    JmState js;
} CState;

typedef struct Constraint {
    const TokTrie *tt;
    const JsSchema *sch;
    int kind;             /* CK_ANSWER or CK_CALLS */
    int lazy;             /* calls: free text until the model opens one */
    int open_id, close_id;/* the <tool_call> / </tool_call> tokens, or -1: written as text */
    int eos[8], n_eos;
    int broken;           /* lazy: a call opened by text could not be followed */
    CState cur;
    CState *stk;          /* (tt->max_len + 2) states of the trie walk */
    int32_t *at, *lim;    /* (tt->max_len + 2) */
} Constraint;

/* Starts a constraint. For CK_CALLS, open_id / close_id are the tag tokens
 * (or -1); eos the end-of-sequence ids (at most 8 used). 0, or -1 with *e
 * set when out of memory. */
int constraint_init(Constraint *c, const TokTrie *tt, const JsSchema *sch, int kind, int lazy, int open_id,
                    int close_id, const int *eos, int n_eos, Err *e);
void constraint_free(Constraint *c); /* safe on a zeroed Constraint */

/* The fewest tokens that finish what is open now (0 when nothing is). */
int constraint_need(const Constraint *c);

/* Fills mask (tt->words words; bit i = token i allowed) for the next token,
 * `left` tokens being left in the budget (this one included; <= 0: no
 * budget). Returns 1 when a mask was written, 0 when every token is allowed
 * (free text: the mask is untouched), 2 when the mask written only refuses
 * the open tag (free text with no room left for a call), so a sampler can
 * ban that one token and otherwise sample as if unconstrained. */
int constraint_mask(Constraint *c, const Tokenizer *tok, int left, uint32_t *mask);

/* Advances past the sampled token. Returns 0, or -1 when the token breaks the
 * constraint (a caller bug: it did not apply the mask). */
int constraint_accept(Constraint *c, const Tokenizer *tok, int token);

/* 1 when the constraint is satisfied so far that generation may stop here. */
int constraint_done(const Constraint *c);

#endif
