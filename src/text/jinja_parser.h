/* jinja_parser.h - the parser state and token helpers shared by
 * jinja_parse.c (expressions) and jinja_stmt.c (statements). Internal. */
#ifndef DUET_JINJA_PARSER_H
#define DUET_JINJA_PARSER_H

#include "text/jinja_int.h"

#define MAX_NEST 200       /* nesting of expressions and blocks (recursion of the parser), elif chains */
#define MAX_EXPR_DEPTH 256 /* height of one expression's tree */

typedef struct Parser {
    const JTokens *t;
    size_t pos;
    const char *name;
    Err *e;
    int depth;
} Parser;

/* "NAME:LINE:COL: msg" into P->e at token `at`; returns -1. */
int jp_perr(Parser *P, const JTok *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const JTok *jp_cur(Parser *P);
const JTok *jp_next(Parser *P); /* returns the current token and advances (not past EOF) */
int jp_is_op(Parser *P, JOp op);
int jp_is_name(Parser *P, const char *s);
const char *jp_tok_desc(const JTok *t, char buf[64]);
int jp_expect_op(Parser *P, JOp op, const char *what);       /* consumes it, or -1 with the error */
int jp_expect_kind(Parser *P, JTokKind k, const char *what);
JNode *jp_node(Parser *P, JNodeKind k, const JTok *at);     /* zeroed node at the token's position */
int jp_list_push(Parser *P, JNodeList *l, JNode *n, const char *kw); /* takes n (freed on failure) */
int jp_set_str(Parser *P, JNode *n, const char *s, size_t len);
/* An expression; with_cond 0 leaves "x if c" to the caller (for-loop filters). */
JNode *jp_parse_expr(Parser *P, int with_cond);
/* "f(args) | g ..." applied to operand (taken, also on failure): the head of {% filter %}. */
JNode *jp_parse_filter_chain(Parser *P, JNode *operand);

#endif
