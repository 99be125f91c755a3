/* jinja_int.h - internals shared by the lexer, parser, evaluator and
 * built-ins of the template interpreter (not for use outside src/text/jinja*). */
#ifndef DUET_JINJA_INT_H
#define DUET_JINJA_INT_H

#include <stddef.h>

#include "text/jinja.h"

/* ---- tokens (jinja_lex.c) ---- */

typedef enum JTokKind {
    TK_EOF, TK_TEXT, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END,
    TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP
} JTokKind;

typedef enum JOp {
    OP_NONE, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_TILDE,
    OP_LBRACK, OP_RBRACK, OP_LPAREN, OP_RPAREN, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE, OP_ASSIGN, OP_DOT, OP_COLON, OP_PIPE, OP_COMMA,
    /* produced by the parser only */
    OP_AND, OP_OR, OP_NOT, OP_IN, OP_NOTIN, OP_NEG, OP_POS
} JOp;

typedef struct JTok {
    JTokKind kind;
    JOp op;
    int line, col;
    char *s;      /* TEXT, NAME, STRING (decoded): malloc'd, NUL-terminated */
    size_t n;
    long long i;  /* INT */
    double f;     /* FLOAT */
} JTok;

typedef struct JTokens {
    JTok *v;
    size_t n, cap;
} JTokens;

/* Tokenizes src with trim_blocks, lstrip_blocks and Jinja's newline handling
 * (\r\n and \r become \n; one trailing newline is dropped). Comments vanish.
 * 0, or -1 with *e set ("NAME:LINE:COL: ..."). */
int jinja_lex(const char *src, size_t len, const char *name, JTokens *out, Err *e);
void jinja_tokens_free(JTokens *t);

/* ---- syntax tree (jinja_parse.c) ---- */

typedef enum JNodeKind {
    /* expressions */
    N_STR, N_INT, N_FLOAT, N_BOOL, N_NONE, N_LIST, N_TUPLE, N_DICT, N_NAME, N_ATTR, N_ITEM,
    N_SLICE, N_CALL, N_FILTER, N_TEST, N_UNARY, N_BINARY, N_COND,
    N_BLOCKVAL, /* the rendered body of the enclosing {% filter %} block */
    /* statements */
    N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_MACRO, N_BREAK, N_CONTINUE, N_BODY, N_FILTBLOCK
} JNodeKind;

typedef struct JNode JNode;
typedef struct JNodeList {
    JNode **v;
    char **kw; /* per item: keyword name of a call argument, or NULL (may itself be NULL) */
    int n, cap;
} JNodeList;

struct JNode {
    JNodeKind kind;
    int line, col;
    int h;           /* expressions: height of the tree below (1 for a leaf), bounded at parse */
    JOp op;          /* UNARY/BINARY operator; TEST: 1 when negated ("is not") */
    char *s;         /* STR/TEXT bytes, NAME, ATTR name, FILTER/TEST name, MACRO name */
    size_t n;
    long long i;     /* INT, BOOL */
    double f;        /* FLOAT */
    JNode *a, *b, *c, *d; /* operands: see jinja_parse.c for each kind */
    JNodeList args;  /* call/filter/test args, list/tuple items, dict k,v pairs, FOR targets, MACRO params */
    JNodeList body, orelse; /* statements */
};

void jinja_node_free(JNode *n);

/* Parses tokens into a body node. NULL with *e set. */
JNode *jinja_parse_tokens(const JTokens *t, const char *name, Err *e);

/* ---- built-ins (jinja_builtin.c) ---- */

enum { FN_NAMESPACE = 1, FN_RANGE, FN_RAISE, FN_STRFTIME, FN_DICT, FN_LOOP_CYCLE };

int jinja_filter_known(const char *name);
int jinja_test_known(const char *name);

struct JinjaTemplate {
    char *name;
    JNode *root;
    JinjaLimits lim;
    int fixed_time;      /* strftime_now shows `now` (UTC) instead of the clock */
    long long now;
};

/* Render state of one jinja_render call. */
typedef struct JScope JScope;
typedef struct JRender {
    const JinjaTemplate *t;
    Err *e;
    JBuf out;
    JScope *scope;   /* innermost */
    JScope *globals; /* the template's top level */
    const Jv *vars;  /* the caller's variables (a dict), below the scopes */
    int depth;       /* macro calls */
    int nest;        /* jinja_eval + statement recursion, bounded by JR_MAX_NEST */
    long long steps;
    size_t mem;      /* bytes of values made so far (limit: lim.max_memory) */
    Jv **ns;         /* namespaces made by this render: emptied at its end, which breaks cycles */
    size_t n_ns, cap_ns;
    int loopctl;     /* 1 break, 2 continue pending */
    Jv *blockval;    /* body text of the innermost {% filter %} block being applied */
    int raised;      /* error already has its final text (raise_exception) */
} JRender;

/* Scopes (jinja_eval.c). jscope_set takes v; jscope_lookup returns a
 * borrowed value or NULL (not the built-in functions). */
JScope *jscope_new(JScope *parent);
void jscope_free(JScope *s);
int jscope_set(JScope *s, const char *name, Jv *v);
Jv *jscope_lookup(JRender *r, const char *name);

#define JR_MAX_NEST 768    /* levels of evaluation at run time */
#define JV_MAX_DEPTH 1000  /* nesting of a value (cJSON parses 1000 levels) */

/* Adds `bytes` of values made to the memory count and bytes/64 to the step
 * count: 0, or -1 with "memory limit ..." / "step limit ..." set at `at`. */
int jr_charge(JRender *r, const JNode *at, size_t bytes);
/* Bytes of values the render may still make (for the max of a JBuf). */
size_t jr_room(const JRender *r);
/* Sets "memory limit (N bytes) exceeded" or "out of memory" after a JBuf failed; returns NULL. */
Jv *jr_buf_fail(JRender *r, const JNode *at, JBuf *b);
/* Keeps a reference to a namespace the render made (emptied at the end). -1 out of memory. */
int jr_track_ns(JRender *r, Jv *ns);

/* Appends rendered text; -1 with the error set past the output limit. */
int jr_out(JRender *r, const JNode *at, const char *p, size_t n);
/* Executes statements into r->out (jinja_exec.c). */
int jinja_exec(JRender *r, const JNodeList *body);
/* Executes statements into a fresh buffer and returns it as a string value
 * (macro calls, block set). */
Jv *jinja_render_body(JRender *r, const JNodeList *body, const JNode *at);

/* Formats "NAME:LINE:COL: msg" into r->e and returns -1 (unless already set). */
int jr_err(JRender *r, const JNode *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Evaluates an expression: a new reference, or NULL with the error set. */
Jv *jinja_eval(JRender *r, const JNode *n);
/* Calls a callable value (macro or builtin) with evaluated positional args and
 * keyword args (kw[i] NULL for positional). */
Jv *jinja_call(JRender *r, const JNode *at, Jv *fn, Jv **args, char **kw, int nargs);

Jv *jinja_apply_filter(JRender *r, const JNode *at, const char *name, Jv *v, Jv **args, char **kw, int nargs);
int jinja_apply_test(JRender *r, const JNode *at, const char *name, const Jv *v, Jv **args, int nargs, int *res);
/* obj.name(args): string/dict/list methods. NULL with error when unknown. */
Jv *jinja_call_method(JRender *r, const JNode *at, Jv *obj, const char *name, Jv **args, char **kw, int nargs);
Jv *jinja_call_builtin(JRender *r, const JNode *at, int id, Jv **args, char **kw, int nargs);
/* Whether obj has a method called name (so obj.name is a bound method). */
int jinja_has_method(const Jv *obj, const char *name);

/* Shared helpers of the built-ins (jinja_builtin.c). */
Jv *jb_arg(Jv **args, char **kw, int n, int pos, const char *name); /* borrowed or NULL */
Jv *jb_str_of(const Jv *v);                      /* str(v) as a new string value */
Jv *jb_nomem(JRender *r, const JNode *at);       /* sets "out of memory", returns NULL */
Jv *jb_recase(const Jv *s, int mode);            /* 0 lower, 1 upper, 2 capitalize, 3 Jinja title */
int jb_is_space(int codepoint);
size_t jb_line_break(const char *p, const char *end); /* bytes of a str.splitlines break at p, or 0 */
Jv *jb_strip(const Jv *s, const Jv *chars, int which); /* which: 1 left, 2 right, 3 both */
size_t jb_cp_count(const Jv *s);
/* Python str.replace; NULL with *over set past max bytes (else out of memory). */
Jv *jb_replace(const Jv *s, const Jv *old, const Jv *new_, long long count, size_t max, int *over);
Jv *jb_split(const Jv *s, const Jv *sep, long long maxsplit);
Jv *jb_items(const Jv *d);                       /* [[k, v], ...] */

#endif
