/* jinja_parse.c - expressions: tokens to a syntax tree, following Jinja2's grammar and
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

#include "text/jinja_parser.h"

int jp_perr(Parser *P, const JTok *at, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(P->e, "%s:%d:%d: %s", P->name, at->line, at->col, msg);
}

const JTok *jp_cur(Parser *P) { return &P->t->v[P->pos]; }
const JTok *jp_next(Parser *P)
{
    const JTok *t = &P->t->v[P->pos];
    if (t->kind != TK_EOF) P->pos++;
    return t;
}
int jp_is_op(Parser *P, JOp op) { return jp_cur(P)->kind == TK_OP && jp_cur(P)->op == op; }
int jp_is_name(Parser *P, const char *s) { return jp_cur(P)->kind == TK_NAME && !strcmp(jp_cur(P)->s, s); }
static int peek_name(Parser *P, size_t ahead, const char *s)
{
    if (P->pos + ahead >= P->t->n) return 0;
    const JTok *t = &P->t->v[P->pos + ahead];
    return t->kind == TK_NAME && !strcmp(t->s, s);
}

const char *jp_tok_desc(const JTok *t, char buf[64])
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

int jp_expect_op(Parser *P, JOp op, const char *what)
{
    if (jp_is_op(P, op)) {
        jp_next(P);
        return 0;
    }
    char b[64];
    return jp_perr(P, jp_cur(P), "expected '%s', got %s", what, jp_tok_desc(jp_cur(P), b));
}

int jp_expect_kind(Parser *P, JTokKind k, const char *what)
{
    if (jp_cur(P)->kind == k) {
        jp_next(P);
        return 0;
    }
    char b[64];
    return jp_perr(P, jp_cur(P), "expected %s, got %s", what, jp_tok_desc(jp_cur(P), b));
}

JNode *jp_node(Parser *P, JNodeKind k, const JTok *at)
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

int jp_list_push(Parser *P, JNodeList *l, JNode *n, const char *kw)
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

int jp_set_str(Parser *P, JNode *n, const char *s, size_t len)
{
    n->s = malloc(len + 1);
    if (!n->s) return err_set(P->e, "out of memory");
    memcpy(n->s, s, len);
    n->s[len] = 0;
    n->n = len;
    return 0;
}

/* ---- expressions ---- */

/* Sets n->h from its operands and refuses trees taller than MAX_EXPR_DEPTH, so
 * that evaluating, checking and freeing them recurses a bounded depth (long
 * left-leaning chains such as 1+1+...+1 or a|f|f|... are built in loops).
 * Returns n, or NULL (n freed) with the error set. */
static JNode *hcheck(Parser *P, JNode *n)
{
    if (!n) return NULL;
    int h = 0;
    const JNode *ops[4] = {n->a, n->b, n->c, n->d};
    for (int i = 0; i < 4; i++)
        if (ops[i] && ops[i]->h > h) h = ops[i]->h;
    for (int i = 0; i < n->args.n; i++)
        if (n->args.v[i]->h > h) h = n->args.v[i]->h;
    n->h = h + 1;
    if (n->h > MAX_EXPR_DEPTH) {
        err_set(P->e, "%s:%d:%d: expression nested too deeply (more than %d levels)", P->name, n->line, n->col,
                MAX_EXPR_DEPTH);
        jinja_node_free(n);
        return NULL;
    }
    return n;
}

JNode *jp_parse_expr(Parser *P, int with_cond);
static JNode *parse_unary(Parser *P, int with_filter);

static int parse_args(Parser *P, JNode *n) /* after '(' */
{
    while (!jp_is_op(P, OP_RPAREN)) {
        const char *kw = NULL;
        if (jp_cur(P)->kind == TK_NAME && P->pos + 1 < P->t->n && P->t->v[P->pos + 1].kind == TK_OP &&
            P->t->v[P->pos + 1].op == OP_ASSIGN) {
            kw = jp_cur(P)->s;
            P->pos += 2;
        }
        if (jp_list_push(P, &n->args, jp_parse_expr(P, 1), kw)) return -1;
        if (!jp_is_op(P, OP_COMMA)) break;
        jp_next(P);
    }
    return jp_expect_op(P, OP_RPAREN, ")");
}

static JNode *parse_primary(Parser *P)
{
    const JTok *t = jp_cur(P);
    char b[64];
    JNode *n = NULL;
    switch (t->kind) {
    case TK_NAME:
        jp_next(P);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") || !strcmp(t->s, "False")) {
            if ((n = jp_node(P, N_BOOL, t))) n->i = t->s[0] == 't' || t->s[0] == 'T';
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            n = jp_node(P, N_NONE, t);
        } else if ((n = jp_node(P, N_NAME, t)) && jp_set_str(P, n, t->s, t->n)) {
            jinja_node_free(n);
            n = NULL;
        }
        return n;
    case TK_STRING: {
        /* adjacent string literals concatenate, as in Python */
        size_t total = 0, i;
        for (i = P->pos; P->t->v[i].kind == TK_STRING; i++) total += P->t->v[i].n;
        if (!(n = jp_node(P, N_STR, t))) return NULL;
        if (!(n->s = malloc(total + 1))) {
            free(n);
            err_set(P->e, "out of memory");
            return NULL;
        }
        n->n = 0;
        while (jp_cur(P)->kind == TK_STRING) {
            const JTok *s = jp_next(P);
            memcpy(n->s + n->n, s->s, s->n);
            n->n += s->n;
        }
        n->s[n->n] = 0;
        return n;
    }
    case TK_INT:
        jp_next(P);
        if ((n = jp_node(P, N_INT, t))) n->i = t->i;
        return n;
    case TK_FLOAT:
        jp_next(P);
        if ((n = jp_node(P, N_FLOAT, t))) n->f = t->f;
        return n;
    case TK_OP:
        if (t->op == OP_LPAREN) {
            jp_next(P);
            if (jp_is_op(P, OP_RPAREN)) {
                jp_next(P);
                return jp_node(P, N_TUPLE, t);
            }
            JNode *first = jp_parse_expr(P, 1);
            if (!first) return NULL;
            if (!jp_is_op(P, OP_COMMA)) {
                if (jp_expect_op(P, OP_RPAREN, ")")) {
                    jinja_node_free(first);
                    return NULL;
                }
                return first;
            }
            if (!(n = jp_node(P, N_TUPLE, t)) || jp_list_push(P, &n->args, first, NULL)) {
                if (!n) jinja_node_free(first);
                jinja_node_free(n);
                return NULL;
            }
            while (jp_is_op(P, OP_COMMA)) {
                jp_next(P);
                if (jp_is_op(P, OP_RPAREN)) break;
                if (jp_list_push(P, &n->args, jp_parse_expr(P, 1), NULL)) goto fail;
            }
            if (jp_expect_op(P, OP_RPAREN, ")")) goto fail;
            return hcheck(P, n);
        }
        if (t->op == OP_LBRACK) {
            jp_next(P);
            if (!(n = jp_node(P, N_LIST, t))) return NULL;
            while (!jp_is_op(P, OP_RBRACK)) {
                if (jp_list_push(P, &n->args, jp_parse_expr(P, 1), NULL)) goto fail;
                if (!jp_is_op(P, OP_COMMA)) break;
                jp_next(P);
            }
            if (jp_expect_op(P, OP_RBRACK, "]")) goto fail;
            return hcheck(P, n);
        }
        if (t->op == OP_LBRACE) {
            jp_next(P);
            if (!(n = jp_node(P, N_DICT, t))) return NULL;
            while (!jp_is_op(P, OP_RBRACE)) {
                if (jp_list_push(P, &n->args, jp_parse_expr(P, 1), NULL)) goto fail;
                if (jp_expect_op(P, OP_COLON, ":")) goto fail;
                if (jp_list_push(P, &n->args, jp_parse_expr(P, 1), NULL)) goto fail;
                if (!jp_is_op(P, OP_COMMA)) break;
                jp_next(P);
            }
            if (jp_expect_op(P, OP_RBRACE, "}")) goto fail;
            return hcheck(P, n);
        }
        break;
    default: break;
    }
    jp_perr(P, t, "expected an expression, got %s", jp_tok_desc(t, b));
    return NULL;
fail:
    jinja_node_free(n);
    return NULL;
}

static JNode *parse_postfix(Parser *P, JNode *n)
{
    while ((n = hcheck(P, n))) {
        const JTok *t = jp_cur(P);
        if (jp_is_op(P, OP_DOT)) {
            jp_next(P);
            const JTok *nm = jp_cur(P);
            JNode *m = NULL;
            if (nm->kind == TK_NAME) {
                jp_next(P);
                if ((m = jp_node(P, N_ATTR, nm)) && jp_set_str(P, m, nm->s, nm->n)) {
                    jinja_node_free(m);
                    m = NULL;
                }
            } else if (nm->kind == TK_INT) { /* x.0 is x[0] */
                jp_next(P);
                if ((m = jp_node(P, N_ITEM, nm)) && !(m->b = jp_node(P, N_INT, nm))) {
                    jinja_node_free(m);
                    m = NULL;
                }
                if (m) m->b->i = nm->i;
            } else {
                char b[64];
                jp_perr(P, nm, "expected an attribute name after '.', got %s", jp_tok_desc(nm, b));
            }
            if (!m) {
                jinja_node_free(n);
                return NULL;
            }
            m->a = n;
            n = m;
        } else if (jp_is_op(P, OP_LBRACK)) {
            jp_next(P);
            JNode *m = jp_node(P, N_ITEM, t);
            if (!m) {
                jinja_node_free(n);
                return NULL;
            }
            m->a = n;
            n = m;
            JNode *parts[3] = {NULL, NULL, NULL};
            int k = 0, slice = 0;
            for (;;) {
                if (!jp_is_op(P, OP_COLON) && !jp_is_op(P, OP_RBRACK)) {
                    if (!(parts[k] = jp_parse_expr(P, 1))) goto fail;
                }
                if (jp_is_op(P, OP_COLON) && k < 2) {
                    jp_next(P);
                    slice = 1;
                    k++;
                    continue;
                }
                break;
            }
            if (jp_expect_op(P, OP_RBRACK, "]")) goto fail;
            if (slice) {
                m->kind = N_SLICE;
                m->b = parts[0];
                m->c = parts[1];
                m->d = parts[2];
            } else if (!parts[0]) {
                jp_perr(P, t, "empty subscript");
                goto fail;
            } else {
                m->b = parts[0];
            }
            continue;
        fail:
            for (int i = 0; i < 3; i++) jinja_node_free(parts[i]);
            jinja_node_free(n);
            return NULL;
        } else if (jp_is_op(P, OP_LPAREN)) {
            jp_next(P);
            JNode *m = jp_node(P, N_CALL, t);
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
    const JTok *t = jp_cur(P);
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
    while ((n = hcheck(P, n))) {
        const JTok *t = jp_cur(P);
        if (jp_is_op(P, OP_PIPE)) {
            jp_next(P);
            const JTok *nm = jp_cur(P);
            if (nm->kind != TK_NAME) {
                char b[64];
                jp_perr(P, nm, "expected a filter name after '|', got %s", jp_tok_desc(nm, b));
                jinja_node_free(n);
                return NULL;
            }
            jp_next(P);
            JNode *m = jp_node(P, N_FILTER, nm);
            if (!m || jp_set_str(P, m, nm->s, nm->n)) {
                jinja_node_free(m);
                jinja_node_free(n);
                return NULL;
            }
            m->i = !jinja_filter_known(nm->s); /* an error at parse or at run: see jinja_check_names */
            m->a = n;
            n = m;
            if (jp_is_op(P, OP_LPAREN)) {
                jp_next(P);
                if (parse_args(P, m)) {
                    jinja_node_free(n);
                    return NULL;
                }
            }
        } else if (jp_is_name(P, "is")) {
            jp_next(P);
            int neg = 0;
            if (jp_is_name(P, "not")) {
                jp_next(P);
                neg = 1;
            }
            const JTok *nm = jp_cur(P);
            if (nm->kind != TK_NAME) {
                char b[64];
                jp_perr(P, nm, "expected a test name after 'is', got %s", jp_tok_desc(nm, b));
                jinja_node_free(n);
                return NULL;
            }
            jp_next(P);
            JNode *m = jp_node(P, N_TEST, nm);
            if (!m || jp_set_str(P, m, nm->s, nm->n)) {
                jinja_node_free(m);
                jinja_node_free(n);
                return NULL;
            }
            m->i = !jinja_test_known(nm->s);
            m->op = (JOp)neg;
            m->a = n;
            n = m;
            if (jp_is_op(P, OP_LPAREN)) {
                jp_next(P);
                if (parse_args(P, m)) {
                    jinja_node_free(n);
                    return NULL;
                }
            } else if (starts_test_arg(P)) {
                if (jp_list_push(P, &m->args, parse_unary(P, 0), NULL)) {
                    jinja_node_free(n);
                    return NULL;
                }
            }
        } else if (jp_is_op(P, OP_LPAREN)) {
            jp_next(P);
            JNode *m = jp_node(P, N_CALL, t);
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

JNode *jp_parse_filter_chain(Parser *P, JNode *operand)
{
    const JTok *nm = jp_cur(P);
    if (nm->kind != TK_NAME) {
        char b[64];
        jp_perr(P, nm, "expected a filter name, got %s", jp_tok_desc(nm, b));
        jinja_node_free(operand);
        return NULL;
    }
    jp_next(P);
    JNode *m = jp_node(P, N_FILTER, nm);
    if (!m || jp_set_str(P, m, nm->s, nm->n)) {
        jinja_node_free(m);
        jinja_node_free(operand);
        return NULL;
    }
    m->i = !jinja_filter_known(nm->s);
    m->a = operand;
    if (jp_is_op(P, OP_LPAREN)) {
        jp_next(P);
        if (parse_args(P, m)) {
            jinja_node_free(m);
            return NULL;
        }
    }
    return parse_filters(P, m);
}

static JNode *parse_unary(Parser *P, int with_filter)
{
    const JTok *t = jp_cur(P);
    JNode *n;
    if (++P->depth > MAX_NEST) {
        jp_perr(P, t, "expression nested too deeply");
        return NULL;
    }
    if (jp_is_op(P, OP_SUB) || jp_is_op(P, OP_ADD)) {
        jp_next(P);
        n = jp_node(P, N_UNARY, t);
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
    return hcheck(P, n);
}

static JNode *binary(Parser *P, const JTok *at, JOp op, JNode *a, JNode *b)
{
    if (!a || !b) {
        jinja_node_free(a);
        jinja_node_free(b);
        return NULL;
    }
    JNode *n = jp_node(P, N_BINARY, at);
    if (!n) {
        jinja_node_free(a);
        jinja_node_free(b);
        return NULL;
    }
    n->op = op;
    n->a = a;
    n->b = b;
    return hcheck(P, n);
}

static JNode *parse_pow(Parser *P)
{
    JNode *n = parse_unary(P, 1);
    while (n && jp_is_op(P, OP_POW)) {
        const JTok *t = jp_next(P);
        n = binary(P, t, OP_POW, n, parse_unary(P, 1));
    }
    return n;
}

static JNode *parse_math2(Parser *P)
{
    JNode *n = parse_pow(P);
    while (n && (jp_is_op(P, OP_MUL) || jp_is_op(P, OP_DIV) || jp_is_op(P, OP_FLOORDIV) || jp_is_op(P, OP_MOD))) {
        const JTok *t = jp_next(P);
        n = binary(P, t, t->op, n, parse_pow(P));
    }
    return n;
}

static JNode *parse_concat(Parser *P)
{
    JNode *n = parse_math2(P);
    while (n && jp_is_op(P, OP_TILDE)) {
        const JTok *t = jp_next(P);
        n = binary(P, t, OP_TILDE, n, parse_math2(P));
    }
    return n;
}

static JNode *parse_math1(Parser *P)
{
    JNode *n = parse_concat(P);
    while (n && (jp_is_op(P, OP_ADD) || jp_is_op(P, OP_SUB))) {
        const JTok *t = jp_next(P);
        n = binary(P, t, t->op, n, parse_concat(P));
    }
    return n;
}

static JNode *parse_compare(Parser *P)
{
    JNode *n = parse_math1(P);
    while (n) {
        const JTok *t = jp_cur(P);
        if (t->kind == TK_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT || t->op == OP_LE ||
                                 t->op == OP_GT || t->op == OP_GE)) {
            jp_next(P);
            n = binary(P, t, t->op, n, parse_math1(P));
        } else if (jp_is_name(P, "in")) {
            jp_next(P);
            n = binary(P, t, OP_IN, n, parse_math1(P));
        } else if (jp_is_name(P, "not") && peek_name(P, 1, "in")) {
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
    if (jp_is_name(P, "not")) {
        const JTok *t = jp_next(P);
        if (++P->depth > MAX_NEST) {
            jp_perr(P, t, "expression nested too deeply");
            return NULL;
        }
        JNode *a = parse_not(P);
        P->depth--;
        if (!a) return NULL;
        JNode *n = jp_node(P, N_UNARY, t);
        if (!n) {
            jinja_node_free(a);
            return NULL;
        }
        n->op = OP_NOT;
        n->a = a;
        return hcheck(P, n);
    }
    return parse_compare(P);
}

static JNode *parse_and(Parser *P)
{
    JNode *n = parse_not(P);
    while (n && jp_is_name(P, "and")) {
        const JTok *t = jp_next(P);
        n = binary(P, t, OP_AND, n, parse_not(P));
    }
    return n;
}

static JNode *parse_or(Parser *P)
{
    JNode *n = parse_and(P);
    while (n && jp_is_name(P, "or")) {
        const JTok *t = jp_next(P);
        n = binary(P, t, OP_OR, n, parse_and(P));
    }
    return n;
}

JNode *jp_parse_expr(Parser *P, int with_cond)
{
    if (++P->depth > MAX_NEST) {
        jp_perr(P, jp_cur(P), "expression nested too deeply");
        return NULL;
    }
    JNode *n = parse_or(P);
    while (with_cond && n && jp_is_name(P, "if")) {
        const JTok *t = jp_next(P);
        JNode *c = jp_node(P, N_COND, t);
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
        if (jp_is_name(P, "else")) {
            jp_next(P);
            if (!(c->c = jp_parse_expr(P, 1))) {
                jinja_node_free(n);
                n = NULL;
            }
        }
    }
    P->depth--;
    return hcheck(P, n);
}


