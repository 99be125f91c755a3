/* jinja_parse.c - tokens to a syntax tree, following Jinja2's grammar and
 * operator precedence (parser.py): condexpr < or < and < not < compare <
 * + - < ~ < * / // % < ** < unary; postfix (.attr [item] (call)) then
 * filters (|f) and tests (is t) bind tightest.
 *
 * Node operands: ATTR a.s; ITEM a[b]; SLICE a[b:c:d]; CALL a(args); FILTER
 * a|s(args); TEST a is [not] s(args); UNARY op a; BINARY a op b; COND
 * (b if a else c); OUTPUT {{ a }}; IF a body orelse; FOR args(targets) in a
 * [if b] body orelse; SET a = b, or a = body when b is NULL; MACRO s(args,
 * defaults in args.kw-order: params are N_NAME, default values in orelse). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_int.h"

#define MAX_NEST 200

typedef struct Parser {
    const JTokens *t;
    size_t pos;
    const char *name;
    Err *e;
    int depth;
} Parser;

static int perr(Parser *P, const JTok *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(Parser *P, const JTok *at, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(P->e, "%s:%d:%d: %s", P->name, at->line, at->col, msg);
}

static const JTok *cur(Parser *P) { return &P->t->v[P->pos]; }
static const JTok *next(Parser *P)
{
    const JTok *t = &P->t->v[P->pos];
    if (t->kind != TK_EOF) P->pos++;
    return t;
}
static int is_op(Parser *P, JOp op) { return cur(P)->kind == TK_OP && cur(P)->op == op; }
static int is_name(Parser *P, const char *s) { return cur(P)->kind == TK_NAME && !strcmp(cur(P)->s, s); }
static int peek_name(Parser *P, size_t ahead, const char *s)
{
    if (P->pos + ahead >= P->t->n) return 0;
    const JTok *t = &P->t->v[P->pos + ahead];
    return t->kind == TK_NAME && !strcmp(t->s, s);
}

static const char *tok_desc(const JTok *t, char buf[64])
{
    switch (t->kind) {
    case TK_EOF: return "end of template";
    case TK_TEXT: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "'%}'";
    case TK_NAME: snprintf(buf, 64, "name '%.40s'", t->s); return buf;
    case TK_STRING: return "string";
    case TK_INT:
    case TK_FLOAT: return "number";
    default: return "operator";
    }
}

static int expect_op(Parser *P, JOp op, const char *what)
{
    if (is_op(P, op)) {
        next(P);
        return 0;
    }
    char b[64];
    return perr(P, cur(P), "expected '%s', got %s", what, tok_desc(cur(P), b));
}

static int expect_kind(Parser *P, JTokKind k, const char *what)
{
    if (cur(P)->kind == k) {
        next(P);
        return 0;
    }
    char b[64];
    return perr(P, cur(P), "expected %s, got %s", what, tok_desc(cur(P), b));
}

static JNode *node(Parser *P, JNodeKind k, const JTok *at)
{
    JNode *n = calloc(1, sizeof *n);
    if (!n) {
        err_set(P->e, "out of memory");
        return NULL;
    }
    n->kind = k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static int list_push(Parser *P, JNodeList *l, JNode *n, const char *kw)
{
    if (!n) return -1;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        JNode **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (v) l->v = v;
        char **k = v ? realloc(l->kw, (size_t)cap * sizeof *k) : NULL;
        if (!k) {
            jinja_node_free(n);
            return err_set(P->e, "out of memory");
        }
        l->kw = k;
        l->cap = cap;
    }
    l->kw[l->n] = NULL;
    if (kw && !(l->kw[l->n] = strdup(kw))) {
        jinja_node_free(n);
        return err_set(P->e, "out of memory");
    }
    l->v[l->n++] = n;
    return 0;
}

static void list_free(JNodeList *l)
{
    for (int i = 0; i < l->n; i++) {
        jinja_node_free(l->v[i]);
        free(l->kw[i]);
    }
    free(l->v);
    free(l->kw);
}

void jinja_node_free(JNode *n)
{
    if (!n) return;
    free(n->s);
    jinja_node_free(n->a);
    jinja_node_free(n->b);
    jinja_node_free(n->c);
    jinja_node_free(n->d);
    list_free(&n->args);
    list_free(&n->body);
    list_free(&n->orelse);
    free(n);
}

static int set_str(Parser *P, JNode *n, const char *s, size_t len)
{
    n->s = malloc(len + 1);
    if (!n->s) return err_set(P->e, "out of memory");
    memcpy(n->s, s, len);
    n->s[len] = 0;
    n->n = len;
    return 0;
}

/* ---- expressions ---- */

static JNode *parse_expr(Parser *P, int with_cond);
static JNode *parse_unary(Parser *P, int with_filter);

static int parse_args(Parser *P, JNode *n) /* after '(' */
{
    while (!is_op(P, OP_RPAREN)) {
        const char *kw = NULL;
        if (cur(P)->kind == TK_NAME && P->pos + 1 < P->t->n && P->t->v[P->pos + 1].kind == TK_OP &&
            P->t->v[P->pos + 1].op == OP_ASSIGN) {
            kw = cur(P)->s;
            P->pos += 2;
        }
        if (list_push(P, &n->args, parse_expr(P, 1), kw)) return -1;
        if (!is_op(P, OP_COMMA)) break;
        next(P);
    }
    return expect_op(P, OP_RPAREN, ")");
}

static JNode *parse_primary(Parser *P)
{
    const JTok *t = cur(P);
    char b[64];
    JNode *n = NULL;
    switch (t->kind) {
    case TK_NAME:
        next(P);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") || !strcmp(t->s, "False")) {
            if ((n = node(P, N_BOOL, t))) n->i = t->s[0] == 't' || t->s[0] == 'T';
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            n = node(P, N_NONE, t);
        } else if ((n = node(P, N_NAME, t)) && set_str(P, n, t->s, t->n)) {
            jinja_node_free(n);
            n = NULL;
        }
        return n;
    case TK_STRING: {
        /* adjacent string literals concatenate, as in Python */
        size_t total = 0, i;
        for (i = P->pos; P->t->v[i].kind == TK_STRING; i++) total += P->t->v[i].n;
        if (!(n = node(P, N_STR, t))) return NULL;
        if (!(n->s = malloc(total + 1))) {
            free(n);
            err_set(P->e, "out of memory");
            return NULL;
        }
        n->n = 0;
        while (cur(P)->kind == TK_STRING) {
            const JTok *s = next(P);
            memcpy(n->s + n->n, s->s, s->n);
            n->n += s->n;
        }
        n->s[n->n] = 0;
        return n;
    }
    case TK_INT:
        next(P);
        if ((n = node(P, N_INT, t))) n->i = t->i;
        return n;
    case TK_FLOAT:
        next(P);
        if ((n = node(P, N_FLOAT, t))) n->f = t->f;
        return n;
    case TK_OP:
        if (t->op == OP_LPAREN) {
            next(P);
            if (is_op(P, OP_RPAREN)) {
                next(P);
                return node(P, N_TUPLE, t);
            }
            JNode *first = parse_expr(P, 1);
            if (!first) return NULL;
            if (!is_op(P, OP_COMMA)) {
                if (expect_op(P, OP_RPAREN, ")")) {
                    jinja_node_free(first);
                    return NULL;
                }
                return first;
            }
            if (!(n = node(P, N_TUPLE, t)) || list_push(P, &n->args, first, NULL)) {
                if (!n) jinja_node_free(first);
                jinja_node_free(n);
                return NULL;
            }
            while (is_op(P, OP_COMMA)) {
                next(P);
                if (is_op(P, OP_RPAREN)) break;
                if (list_push(P, &n->args, parse_expr(P, 1), NULL)) goto fail;
            }
            if (expect_op(P, OP_RPAREN, ")")) goto fail;
            return n;
        }
        if (t->op == OP_LBRACK) {
            next(P);
            if (!(n = node(P, N_LIST, t))) return NULL;
            while (!is_op(P, OP_RBRACK)) {
                if (list_push(P, &n->args, parse_expr(P, 1), NULL)) goto fail;
                if (!is_op(P, OP_COMMA)) break;
                next(P);
            }
            if (expect_op(P, OP_RBRACK, "]")) goto fail;
            return n;
        }
        if (t->op == OP_LBRACE) {
            next(P);
            if (!(n = node(P, N_DICT, t))) return NULL;
            while (!is_op(P, OP_RBRACE)) {
                if (list_push(P, &n->args, parse_expr(P, 1), NULL)) goto fail;
                if (expect_op(P, OP_COLON, ":")) goto fail;
                if (list_push(P, &n->args, parse_expr(P, 1), NULL)) goto fail;
                if (!is_op(P, OP_COMMA)) break;
                next(P);
            }
            if (expect_op(P, OP_RBRACE, "}")) goto fail;
            return n;
        }
        break;
    default: break;
    }
    perr(P, t, "expected an expression, got %s", tok_desc(t, b));
    return NULL;
fail:
    jinja_node_free(n);
    return NULL;
}

static JNode *parse_postfix(Parser *P, JNode *n)
{
    while (n) {
        const JTok *t = cur(P);
        if (is_op(P, OP_DOT)) {
            next(P);
            const JTok *nm = cur(P);
            JNode *m = NULL;
            if (nm->kind == TK_NAME) {
                next(P);
                if ((m = node(P, N_ATTR, nm)) && set_str(P, m, nm->s, nm->n)) {
                    jinja_node_free(m);
                    m = NULL;
                }
            } else if (nm->kind == TK_INT) { /* x.0 is x[0] */
                next(P);
                if ((m = node(P, N_ITEM, nm)) && !(m->b = node(P, N_INT, nm))) {
                    jinja_node_free(m);
                    m = NULL;
                }
                if (m) m->b->i = nm->i;
            } else {
                char b[64];
                perr(P, nm, "expected an attribute name after '.', got %s", tok_desc(nm, b));
            }
            if (!m) {
                jinja_node_free(n);
                return NULL;
            }
            m->a = n;
            n = m;
        } else if (is_op(P, OP_LBRACK)) {
            next(P);
            JNode *m = node(P, N_ITEM, t);
            if (!m) {
                jinja_node_free(n);
                return NULL;
            }
            m->a = n;
            n = m;
            JNode *parts[3] = {NULL, NULL, NULL};
            int k = 0, slice = 0;
            for (;;) {
                if (!is_op(P, OP_COLON) && !is_op(P, OP_RBRACK)) {
                    if (!(parts[k] = parse_expr(P, 1))) goto fail;
                }
                if (is_op(P, OP_COLON) && k < 2) {
                    next(P);
                    slice = 1;
                    k++;
                    continue;
                }
                break;
            }
            if (expect_op(P, OP_RBRACK, "]")) goto fail;
            if (slice) {
                m->kind = N_SLICE;
                m->b = parts[0];
                m->c = parts[1];
                m->d = parts[2];
            } else if (!parts[0]) {
                perr(P, t, "empty subscript");
                goto fail;
            } else {
                m->b = parts[0];
            }
            continue;
        fail:
            for (int i = 0; i < 3; i++) jinja_node_free(parts[i]);
            jinja_node_free(n);
            return NULL;
        } else if (is_op(P, OP_LPAREN)) {
            next(P);
            JNode *m = node(P, N_CALL, t);
            if (!m) {
                jinja_node_free(n);
                return NULL;
            }
            m->a = n;
            n = m;
            if (parse_args(P, m)) {
                jinja_node_free(n);
                return NULL;
            }
        } else {
            break;
        }
    }
    return n;
}

static int starts_test_arg(Parser *P)
{
    const JTok *t = cur(P);
    if (t->kind == TK_STRING || t->kind == TK_INT || t->kind == TK_FLOAT) return 1;
    if (t->kind == TK_OP) return t->op == OP_LBRACK || t->op == OP_LBRACE;
    if (t->kind != TK_NAME) return 0;
    static const char *stop[] = {"else", "or", "and", "if", "in", "not", "is", NULL};
    for (int i = 0; stop[i]; i++)
        if (!strcmp(t->s, stop[i])) return 0;
    return 1;
}

static JNode *parse_filters(Parser *P, JNode *n)
{
    while (n) {
        const JTok *t = cur(P);
        if (is_op(P, OP_PIPE)) {
            next(P);
            const JTok *nm = cur(P);
            if (nm->kind != TK_NAME) {
                char b[64];
                perr(P, nm, "expected a filter name after '|', got %s", tok_desc(nm, b));
                jinja_node_free(n);
                return NULL;
            }
            if (!jinja_filter_known(nm->s)) {
                perr(P, nm, "unknown filter \"%s\"", nm->s);
                jinja_node_free(n);
                return NULL;
            }
            next(P);
            JNode *m = node(P, N_FILTER, nm);
            if (!m || set_str(P, m, nm->s, nm->n)) {
                jinja_node_free(m);
                jinja_node_free(n);
                return NULL;
            }
            m->a = n;
            n = m;
            if (is_op(P, OP_LPAREN)) {
                next(P);
                if (parse_args(P, m)) {
                    jinja_node_free(n);
                    return NULL;
                }
            }
        } else if (is_name(P, "is")) {
            next(P);
            int neg = 0;
            if (is_name(P, "not")) {
                next(P);
                neg = 1;
            }
            const JTok *nm = cur(P);
            if (nm->kind != TK_NAME) {
                char b[64];
                perr(P, nm, "expected a test name after 'is', got %s", tok_desc(nm, b));
                jinja_node_free(n);
                return NULL;
            }
            if (!jinja_test_known(nm->s)) {
                perr(P, nm, "unknown test \"%s\"", nm->s);
                jinja_node_free(n);
                return NULL;
            }
            next(P);
            JNode *m = node(P, N_TEST, nm);
            if (!m || set_str(P, m, nm->s, nm->n)) {
                jinja_node_free(m);
                jinja_node_free(n);
                return NULL;
            }
            m->op = (JOp)neg;
            m->a = n;
            n = m;
            if (is_op(P, OP_LPAREN)) {
                next(P);
                if (parse_args(P, m)) {
                    jinja_node_free(n);
                    return NULL;
                }
            } else if (starts_test_arg(P)) {
                if (list_push(P, &m->args, parse_unary(P, 0), NULL)) {
                    jinja_node_free(n);
                    return NULL;
                }
            }
        } else if (is_op(P, OP_LPAREN)) {
            next(P);
            JNode *m = node(P, N_CALL, t);
            if (!m) {
                jinja_node_free(n);
                return NULL;
            }
            m->a = n;
            n = m;
            if (parse_args(P, m)) {
                jinja_node_free(n);
                return NULL;
            }
        } else {
            break;
        }
    }
    return n;
}

static JNode *parse_unary(Parser *P, int with_filter)
{
    const JTok *t = cur(P);
    JNode *n;
    if (++P->depth > MAX_NEST) {
        perr(P, t, "expression nested too deeply");
        return NULL;
    }
    if (is_op(P, OP_SUB) || is_op(P, OP_ADD)) {
        next(P);
        n = node(P, N_UNARY, t);
        if (n) {
            n->op = t->op == OP_SUB ? OP_NEG : OP_POS;
            if (!(n->a = parse_unary(P, 0))) {
                jinja_node_free(n);
                n = NULL;
            }
        }
    } else {
        n = parse_postfix(P, parse_primary(P));
    }
    if (with_filter) n = parse_filters(P, n);
    P->depth--;
    return n;
}

static JNode *binary(Parser *P, const JTok *at, JOp op, JNode *a, JNode *b)
{
    if (!a || !b) {
        jinja_node_free(a);
        jinja_node_free(b);
        return NULL;
    }
    JNode *n = node(P, N_BINARY, at);
    if (!n) {
        jinja_node_free(a);
        jinja_node_free(b);
        return NULL;
    }
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static JNode *parse_pow(Parser *P)
{
    JNode *n = parse_unary(P, 1);
    while (n && is_op(P, OP_POW)) {
        const JTok *t = next(P);
        n = binary(P, t, OP_POW, n, parse_unary(P, 1));
    }
    return n;
}

static JNode *parse_math2(Parser *P)
{
    JNode *n = parse_pow(P);
    while (n && (is_op(P, OP_MUL) || is_op(P, OP_DIV) || is_op(P, OP_FLOORDIV) || is_op(P, OP_MOD))) {
        const JTok *t = next(P);
        n = binary(P, t, t->op, n, parse_pow(P));
    }
    return n;
}

static JNode *parse_concat(Parser *P)
{
    JNode *n = parse_math2(P);
    while (n && is_op(P, OP_TILDE)) {
        const JTok *t = next(P);
        n = binary(P, t, OP_TILDE, n, parse_math2(P));
    }
    return n;
}

static JNode *parse_math1(Parser *P)
{
    JNode *n = parse_concat(P);
    while (n && (is_op(P, OP_ADD) || is_op(P, OP_SUB))) {
        const JTok *t = next(P);
        n = binary(P, t, t->op, n, parse_concat(P));
    }
    return n;
}

static JNode *parse_compare(Parser *P)
{
    JNode *n = parse_math1(P);
    while (n) {
        const JTok *t = cur(P);
        if (t->kind == TK_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT || t->op == OP_LE ||
                                 t->op == OP_GT || t->op == OP_GE)) {
            next(P);
            n = binary(P, t, t->op, n, parse_math1(P));
        } else if (is_name(P, "in")) {
            next(P);
            n = binary(P, t, OP_IN, n, parse_math1(P));
        } else if (is_name(P, "not") && peek_name(P, 1, "in")) {
            P->pos += 2;
            n = binary(P, t, OP_NOTIN, n, parse_math1(P));
        } else {
            break;
        }
    }
    return n;
}

static JNode *parse_not(Parser *P)
{
    if (is_name(P, "not")) {
        const JTok *t = next(P);
        if (++P->depth > MAX_NEST) {
            perr(P, t, "expression nested too deeply");
            return NULL;
        }
        JNode *a = parse_not(P);
        P->depth--;
        if (!a) return NULL;
        JNode *n = node(P, N_UNARY, t);
        if (!n) {
            jinja_node_free(a);
            return NULL;
        }
        n->op = OP_NOT;
        n->a = a;
        return n;
    }
    return parse_compare(P);
}

static JNode *parse_and(Parser *P)
{
    JNode *n = parse_not(P);
    while (n && is_name(P, "and")) {
        const JTok *t = next(P);
        n = binary(P, t, OP_AND, n, parse_not(P));
    }
    return n;
}

static JNode *parse_or(Parser *P)
{
    JNode *n = parse_and(P);
    while (n && is_name(P, "or")) {
        const JTok *t = next(P);
        n = binary(P, t, OP_OR, n, parse_and(P));
    }
    return n;
}

static JNode *parse_expr(Parser *P, int with_cond)
{
    if (++P->depth > MAX_NEST) {
        perr(P, cur(P), "expression nested too deeply");
        return NULL;
    }
    JNode *n = parse_or(P);
    while (with_cond && n && is_name(P, "if")) {
        const JTok *t = next(P);
        JNode *c = node(P, N_COND, t);
        if (!c) {
            jinja_node_free(n);
            n = NULL;
            break;
        }
        c->b = n;
        n = c;
        if (!(c->a = parse_or(P))) {
            jinja_node_free(n);
            n = NULL;
            break;
        }
        if (is_name(P, "else")) {
            next(P);
            if (!(c->c = parse_expr(P, 1))) {
                jinja_node_free(n);
                n = NULL;
            }
        }
    }
    P->depth--;
    return n;
}


/* ---- statements ---- */

static int parse_body(Parser *P, JNodeList *body, const char *const *stop, const JTok *opener);

static int end_tag(Parser *P) { return expect_kind(P, TK_BLOCK_END, "'%}'"); }

/* After "{% NAME": consumes "%}" and the body up to one of the stop names;
 * returns the stop name found (the "{% stop" is consumed, not its "%}"). */
static const char *body_until(Parser *P, JNodeList *body, const char *const *stop, const JTok *opener)
{
    if (parse_body(P, body, stop, opener)) return NULL;
    const char *s = cur(P)->s; /* parse_body stopped at NAME after BLOCK_BEGIN */
    next(P);
    return s;
}

static JNode *parse_if(Parser *P, const JTok *kw)
{
    static const char *const stop[] = {"elif", "else", "endif", NULL};
    JNode *n = node(P, N_IF, kw);
    if (!n) return NULL;
    if (!(n->a = parse_expr(P, 1)) || end_tag(P)) goto fail;
    const char *s = body_until(P, &n->body, stop, kw);
    if (!s) goto fail;
    if (!strcmp(s, "elif")) {
        if (list_push(P, &n->orelse, parse_if(P, &P->t->v[P->pos - 1]), NULL)) goto fail;
        return n; /* the nested if consumed endif */
    }
    if (!strcmp(s, "else")) {
        static const char *const stop2[] = {"endif", NULL};
        if (end_tag(P) || !body_until(P, &n->orelse, stop2, kw)) goto fail;
    }
    if (end_tag(P)) goto fail;
    return n;
fail:
    jinja_node_free(n);
    return NULL;
}

static JNode *parse_for(Parser *P, const JTok *kw)
{
    static const char *const stop[] = {"else", "endfor", NULL};
    JNode *n = node(P, N_FOR, kw);
    if (!n) return NULL;
    for (;;) {
        const JTok *t = cur(P);
        if (t->kind != TK_NAME) {
            char b[64];
            perr(P, t, "expected a loop variable name, got %s", tok_desc(t, b));
            goto fail;
        }
        next(P);
        JNode *v = node(P, N_NAME, t);
        if (!v || set_str(P, v, t->s, t->n)) {
            jinja_node_free(v);
            goto fail;
        }
        if (list_push(P, &n->args, v, NULL)) goto fail;
        if (!is_op(P, OP_COMMA)) break;
        next(P);
    }
    if (!is_name(P, "in")) {
        perr(P, cur(P), "expected 'in' in for loop");
        goto fail;
    }
    next(P);
    if (!(n->a = parse_expr(P, 0))) goto fail;
    if (is_name(P, "if")) {
        next(P);
        if (!(n->b = parse_expr(P, 0))) goto fail;
    }
    if (is_name(P, "recursive")) {
        perr(P, cur(P), "recursive for loops are not supported");
        goto fail;
    }
    if (end_tag(P)) goto fail;
    const char *s = body_until(P, &n->body, stop, kw);
    if (!s) goto fail;
    if (!strcmp(s, "else")) {
        static const char *const stop2[] = {"endfor", NULL};
        if (end_tag(P) || !body_until(P, &n->orelse, stop2, kw)) goto fail;
    }
    if (end_tag(P)) goto fail;
    return n;
fail:
    jinja_node_free(n);
    return NULL;
}

static JNode *parse_set(Parser *P, const JTok *kw)
{
    JNode *n = node(P, N_SET, kw);
    if (!n) return NULL;
    const JTok *t = cur(P);
    if (t->kind != TK_NAME) {
        char b[64];
        perr(P, t, "expected a variable name after 'set', got %s", tok_desc(t, b));
        goto fail;
    }
    next(P);
    JNode *target = node(P, N_NAME, t);
    if (!target || set_str(P, target, t->s, t->n)) {
        jinja_node_free(target);
        goto fail;
    }
    n->a = target;
    if (is_op(P, OP_DOT)) {
        next(P);
        const JTok *at = cur(P);
        if (at->kind != TK_NAME) {
            perr(P, at, "expected an attribute name after '.'");
            goto fail;
        }
        next(P);
        JNode *m = node(P, N_ATTR, at);
        if (!m || set_str(P, m, at->s, at->n)) {
            jinja_node_free(m);
            goto fail;
        }
        m->a = target;
        n->a = m;
    }
    if (is_op(P, OP_COMMA)) {
        perr(P, cur(P), "tuple assignment in set is not supported");
        goto fail;
    }
    if (is_op(P, OP_ASSIGN)) {
        next(P);
        if (!(n->b = parse_expr(P, 1)) || end_tag(P)) goto fail;
        return n;
    }
    if (n->a->kind != N_NAME) {
        perr(P, cur(P), "expected '=' after set target");
        goto fail;
    }
    static const char *const stop[] = {"endset", NULL};
    if (end_tag(P) || !body_until(P, &n->body, stop, kw) || end_tag(P)) goto fail;
    return n;
fail:
    jinja_node_free(n);
    return NULL;
}

static JNode *parse_macro(Parser *P, const JTok *kw)
{
    JNode *n = node(P, N_MACRO, kw);
    if (!n) return NULL;
    const JTok *t = cur(P);
    if (t->kind != TK_NAME) {
        perr(P, t, "expected a macro name");
        goto fail;
    }
    next(P);
    if (set_str(P, n, t->s, t->n) || expect_op(P, OP_LPAREN, "(")) goto fail;
    while (!is_op(P, OP_RPAREN)) {
        const JTok *pt = cur(P);
        if (pt->kind != TK_NAME) {
            perr(P, pt, "expected a parameter name");
            goto fail;
        }
        next(P);
        JNode *pn = node(P, N_NAME, pt);
        if (!pn || set_str(P, pn, pt->s, pt->n)) {
            jinja_node_free(pn);
            goto fail;
        }
        if (list_push(P, &n->args, pn, NULL)) goto fail;
        JNode *def = NULL;
        if (is_op(P, OP_ASSIGN)) {
            next(P);
            if (!(def = parse_expr(P, 1))) goto fail;
        } else if (!(def = node(P, N_NONE, pt))) {
            goto fail;
        } else {
            def->i = -1; /* marks "no default": the parameter is undefined */
        }
        if (list_push(P, &n->orelse, def, NULL)) goto fail;
        if (!is_op(P, OP_COMMA)) break;
        next(P);
    }
    static const char *const stop[] = {"endmacro", NULL};
    if (expect_op(P, OP_RPAREN, ")") || end_tag(P) || !body_until(P, &n->body, stop, kw)) goto fail;
    if (cur(P)->kind == TK_NAME) next(P); /* {% endmacro name %} */
    if (end_tag(P)) goto fail;
    return n;
fail:
    jinja_node_free(n);
    return NULL;
}

static JNode *parse_stmt(Parser *P, const JTok *kw)
{
    const char *s = kw->s;
    next(P);
    if (!strcmp(s, "if")) return parse_if(P, kw);
    if (!strcmp(s, "for")) return parse_for(P, kw);
    if (!strcmp(s, "set")) return parse_set(P, kw);
    if (!strcmp(s, "macro")) return parse_macro(P, kw);
    if (!strcmp(s, "break") || !strcmp(s, "continue")) {
        JNode *n = node(P, s[0] == 'b' ? N_BREAK : N_CONTINUE, kw);
        if (n && end_tag(P)) {
            jinja_node_free(n);
            return NULL;
        }
        return n;
    }
    if (!strcmp(s, "generation")) { /* HF's assistant-mask extension: renders its body */
        static const char *const stop[] = {"endgeneration", NULL};
        JNode *n = node(P, N_BODY, kw);
        if (!n || end_tag(P) || !body_until(P, &n->body, stop, kw) || end_tag(P)) {
            jinja_node_free(n);
            return NULL;
        }
        return n;
    }
    perr(P, kw, "unknown tag \"%s\"", s);
    return NULL;
}

static int in_list(const char *s, const char *const *l)
{
    for (; l && *l; l++)
        if (!strcmp(s, *l)) return 1;
    return 0;
}

/* Statements until EOF (stop == NULL) or a "{% NAME" with NAME in stop, where
 * it leaves the parser on NAME. `opener` is the tag whose end is awaited. */
static int parse_body(Parser *P, JNodeList *body, const char *const *stop, const JTok *opener)
{
    if (++P->depth > MAX_NEST) return perr(P, cur(P), "blocks nested too deeply");
    for (;;) {
        const JTok *t = cur(P);
        if (t->kind == TK_EOF) {
            if (stop) {
                P->depth--;
                const char *const *last = stop;
                while (last[1]) last++;
                return perr(P, opener, "unclosed {%% %s %%} (expected {%% %s %%} before end of template)",
                            opener->s, *last);
            }
            break;
        }
        if (t->kind == TK_TEXT) {
            next(P);
            JNode *n = node(P, N_TEXT, t);
            if (!n || set_str(P, n, t->s, t->n)) {
                jinja_node_free(n);
                return -1;
            }
            if (list_push(P, body, n, NULL)) return -1;
        } else if (t->kind == TK_VAR_BEGIN) {
            next(P);
            JNode *n = node(P, N_OUTPUT, t);
            if (!n) return -1;
            if (!(n->a = parse_expr(P, 1)) || expect_kind(P, TK_VAR_END, "'}}'")) {
                jinja_node_free(n);
                return -1;
            }
            if (list_push(P, body, n, NULL)) return -1;
        } else if (t->kind == TK_BLOCK_BEGIN) {
            next(P);
            const JTok *kw = cur(P);
            if (kw->kind != TK_NAME) {
                char b[64];
                return perr(P, kw, "expected a tag name after '{%%', got %s", tok_desc(kw, b));
            }
            if (in_list(kw->s, stop)) break;
            static const char *const enders[] = {"endif", "endfor", "endset", "endmacro", "endgeneration",
                                                 "elif", "else", NULL};
            if (in_list(kw->s, enders)) return perr(P, kw, "unexpected {%% %s %%}", kw->s);
            if (list_push(P, body, parse_stmt(P, kw), NULL)) return -1;
        } else {
            char b[64];
            return perr(P, t, "unexpected %s", tok_desc(t, b));
        }
    }
    P->depth--;
    return 0;
}

JNode *jinja_parse_tokens(const JTokens *t, const char *name, Err *e)
{
    Parser P = {t, 0, name, e, 0};
    JNode *root = node(&P, N_BODY, &t->v[0]);
    if (!root) return NULL;
    if (parse_body(&P, &root->body, NULL, NULL)) {
        jinja_node_free(root);
        return NULL;
    }
    return root;
}
