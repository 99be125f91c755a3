/* jinja_stmt.c - statements: the template body, if/elif/else, for/else,
 * set (plain, namespace attribute, block), macro, break/continue and HF's
 * generation block. Node operands are described in jinja_parse.c. */
#include <stdlib.h>
#include <string.h>

#include "text/jinja_parser.h"

/* ---- statements ---- */

static int parse_body(Parser *P, JNodeList *body, const char *const *stop, const JTok *opener);

static int end_tag(Parser *P) { return jp_expect_kind(P, TK_BLOCK_END, "'%}'"); }

/* After "{% NAME": consumes "%}" and the body up to one of the stop names;
 * returns the stop name found (the "{% stop" is consumed, not its "%}"). */
static const char *body_until(Parser *P, JNodeList *body, const char *const *stop, const JTok *opener)
{
    if (parse_body(P, body, stop, opener)) return NULL;
    const char *s = jp_cur(P)->s; /* parse_body stopped at NAME after BLOCK_BEGIN */
    jp_next(P);
    return s;
}

static JNode *parse_if(Parser *P, const JTok *kw)
{
    static const char *const stop[] = {"elif", "else", "endif", NULL};
    JNode *n = jp_node(P, N_IF, kw);
    if (!n) return NULL;
    if (!(n->a = jp_parse_expr(P, 1)) || end_tag(P)) goto fail;
    const char *s = body_until(P, &n->body, stop, kw);
    if (!s) goto fail;
    if (!strcmp(s, "elif")) { /* an elif is a nested if: counted as nesting */
        if (++P->depth > MAX_NEST) {
            jp_perr(P, &P->t->v[P->pos - 1], "more than %d elif branches or nested blocks", MAX_NEST);
            goto fail;
        }
        int rc = jp_list_push(P, &n->orelse, parse_if(P, &P->t->v[P->pos - 1]), NULL);
        P->depth--;
        if (rc) goto fail;
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
    JNode *n = jp_node(P, N_FOR, kw);
    if (!n) return NULL;
    for (;;) {
        const JTok *t = jp_cur(P);
        if (t->kind != TK_NAME) {
            char b[64];
            jp_perr(P, t, "expected a loop variable name, got %s", jp_tok_desc(t, b));
            goto fail;
        }
        jp_next(P);
        JNode *v = jp_node(P, N_NAME, t);
        if (!v || jp_set_str(P, v, t->s, t->n)) {
            jinja_node_free(v);
            goto fail;
        }
        if (jp_list_push(P, &n->args, v, NULL)) goto fail;
        if (!jp_is_op(P, OP_COMMA)) break;
        jp_next(P);
    }
    if (!jp_is_name(P, "in")) {
        jp_perr(P, jp_cur(P), "expected 'in' in for loop");
        goto fail;
    }
    jp_next(P);
    if (!(n->a = jp_parse_expr(P, 0))) goto fail;
    if (jp_is_name(P, "if")) {
        jp_next(P);
        if (!(n->b = jp_parse_expr(P, 0))) goto fail;
    }
    if (jp_is_name(P, "recursive")) {
        jp_perr(P, jp_cur(P), "recursive for loops are not supported");
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
    JNode *n = jp_node(P, N_SET, kw);
    if (!n) return NULL;
    const JTok *t = jp_cur(P);
    if (t->kind != TK_NAME) {
        char b[64];
        jp_perr(P, t, "expected a variable name after 'set', got %s", jp_tok_desc(t, b));
        goto fail;
    }
    jp_next(P);
    JNode *target = jp_node(P, N_NAME, t);
    if (!target || jp_set_str(P, target, t->s, t->n)) {
        jinja_node_free(target);
        goto fail;
    }
    n->a = target;
    if (jp_is_op(P, OP_DOT)) {
        jp_next(P);
        const JTok *at = jp_cur(P);
        if (at->kind != TK_NAME) {
            jp_perr(P, at, "expected an attribute name after '.'");
            goto fail;
        }
        jp_next(P);
        JNode *m = jp_node(P, N_ATTR, at);
        if (!m || jp_set_str(P, m, at->s, at->n)) {
            jinja_node_free(m);
            goto fail;
        }
        m->a = target;
        n->a = m;
    }
    if (jp_is_op(P, OP_COMMA)) {
        jp_perr(P, jp_cur(P), "tuple assignment in set is not supported");
        goto fail;
    }
    if (jp_is_op(P, OP_ASSIGN)) {
        jp_next(P);
        if (!(n->b = jp_parse_expr(P, 1)) || end_tag(P)) goto fail;
        return n;
    }
    if (n->a->kind != N_NAME) {
        jp_perr(P, jp_cur(P), "expected '=' after set target");
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
    JNode *n = jp_node(P, N_MACRO, kw);
    if (!n) return NULL;
    const JTok *t = jp_cur(P);
    if (t->kind != TK_NAME) {
        jp_perr(P, t, "expected a macro name");
        goto fail;
    }
    jp_next(P);
    if (jp_set_str(P, n, t->s, t->n) || jp_expect_op(P, OP_LPAREN, "(")) goto fail;
    while (!jp_is_op(P, OP_RPAREN)) {
        const JTok *pt = jp_cur(P);
        if (pt->kind != TK_NAME) {
            jp_perr(P, pt, "expected a parameter name");
            goto fail;
        }
        jp_next(P);
        JNode *pn = jp_node(P, N_NAME, pt);
        if (!pn || jp_set_str(P, pn, pt->s, pt->n)) {
            jinja_node_free(pn);
            goto fail;
        }
        if (jp_list_push(P, &n->args, pn, NULL)) goto fail;
        JNode *def = NULL;
        if (jp_is_op(P, OP_ASSIGN)) {
            jp_next(P);
            if (!(def = jp_parse_expr(P, 1))) goto fail;
        } else if (!(def = jp_node(P, N_NONE, pt))) {
            goto fail;
        } else {
            def->i = -1; /* marks "no default": the parameter is undefined */
        }
        if (jp_list_push(P, &n->orelse, def, NULL)) goto fail;
        if (!jp_is_op(P, OP_COMMA)) break;
        jp_next(P);
    }
    static const char *const stop[] = {"endmacro", NULL};
    if (jp_expect_op(P, OP_RPAREN, ")") || end_tag(P) || !body_until(P, &n->body, stop, kw)) goto fail;
    if (jp_cur(P)->kind == TK_NAME) jp_next(P); /* {% endmacro name %} */
    if (end_tag(P)) goto fail;
    return n;
fail:
    jinja_node_free(n);
    return NULL;
}

static JNode *parse_stmt(Parser *P, const JTok *kw)
{
    const char *s = kw->s;
    jp_next(P);
    if (!strcmp(s, "if")) return parse_if(P, kw);
    if (!strcmp(s, "for")) return parse_for(P, kw);
    if (!strcmp(s, "set")) return parse_set(P, kw);
    if (!strcmp(s, "macro")) return parse_macro(P, kw);
    if (!strcmp(s, "break") || !strcmp(s, "continue")) {
        JNode *n = jp_node(P, s[0] == 'b' ? N_BREAK : N_CONTINUE, kw);
        if (n && end_tag(P)) {
            jinja_node_free(n);
            return NULL;
        }
        return n;
    }
    if (!strcmp(s, "filter")) { /* {% filter f(args) | g %}body{% endfilter %}: the filters applied to the body's text */
        static const char *const stop[] = {"endfilter", NULL};
        JNode *n = jp_node(P, N_FILTBLOCK, kw);
        JNode *ph = n ? jp_node(P, N_BLOCKVAL, kw) : NULL;
        if (!ph || !(n->a = jp_parse_filter_chain(P, ph)) || end_tag(P) || !body_until(P, &n->body, stop, kw) ||
            end_tag(P)) {
            jinja_node_free(n);
            return NULL;
        }
        return n;
    }
    if (!strcmp(s, "generation")) { /* HF's assistant-mask extension: renders its body */
        static const char *const stop[] = {"endgeneration", NULL};
        JNode *n = jp_node(P, N_BODY, kw);
        if (!n || end_tag(P) || !body_until(P, &n->body, stop, kw) || end_tag(P)) {
            jinja_node_free(n);
            return NULL;
        }
        return n;
    }
    jp_perr(P, kw, "unknown tag \"%s\"", s);
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
    if (++P->depth > MAX_NEST) return jp_perr(P, jp_cur(P), "blocks nested too deeply");
    for (;;) {
        const JTok *t = jp_cur(P);
        if (t->kind == TK_EOF) {
            if (stop) {
                P->depth--;
                const char *const *last = stop;
                while (last[1]) last++;
                return jp_perr(P, opener, "unclosed {%% %s %%} (expected {%% %s %%} before end of template)",
                            opener->s, *last);
            }
            break;
        }
        if (t->kind == TK_TEXT) {
            jp_next(P);
            JNode *n = jp_node(P, N_TEXT, t);
            if (!n || jp_set_str(P, n, t->s, t->n)) {
                jinja_node_free(n);
                return -1;
            }
            if (jp_list_push(P, body, n, NULL)) return -1;
        } else if (t->kind == TK_VAR_BEGIN) {
            jp_next(P);
            JNode *n = jp_node(P, N_OUTPUT, t);
            if (!n) return -1;
            if (!(n->a = jp_parse_expr(P, 1)) || jp_expect_kind(P, TK_VAR_END, "'}}'")) {
                jinja_node_free(n);
                return -1;
            }
            if (jp_list_push(P, body, n, NULL)) return -1;
        } else if (t->kind == TK_BLOCK_BEGIN) {
            jp_next(P);
            const JTok *kw = jp_cur(P);
            if (kw->kind != TK_NAME) {
                char b[64];
                return jp_perr(P, kw, "expected a tag name after '{%%', got %s", jp_tok_desc(kw, b));
            }
            if (in_list(kw->s, stop)) break;
            static const char *const enders[] = {"endif", "endfor", "endset", "endmacro", "endgeneration", "endfilter",
                                                 "elif", "else", NULL};
            if (in_list(kw->s, enders)) return jp_perr(P, kw, "unexpected {%% %s %%}", kw->s);
            if (jp_list_push(P, body, parse_stmt(P, kw), NULL)) return -1;
        } else {
            char b[64];
            return jp_perr(P, t, "unexpected %s", jp_tok_desc(t, b));
        }
    }
    P->depth--;
    return 0;
}

/* jinja2 compiles an unknown filter or test to a run-time error only in a
 * "soft" frame: inside an {% if %} (test and branches) or an inline
 * `x if c else y`, up to the next for loop, macro or block, which start a new
 * frame. Anywhere else the template does not compile. 0, or -1 at the first
 * unknown name outside a soft frame. */
static int check_names(Parser *P, const JNode *n, int soft);

static int check_list(Parser *P, const JNodeList *l, int soft)
{
    for (int i = 0; i < l->n; i++)
        if (check_names(P, l->v[i], soft)) return -1;
    return 0;
}

static int check_names(Parser *P, const JNode *n, int soft)
{
    if (!n) return 0;
    if ((n->kind == N_FILTER || n->kind == N_TEST) && n->i && !soft)
        return err_set(P->e, "%s:%d:%d: unknown %s \"%s\"", P->name, n->line, n->col,
                       n->kind == N_FILTER ? "filter" : "test", n->s);
    int inner = soft; /* frame of the children */
    if (n->kind == N_IF || n->kind == N_COND) inner = 1;
    if (n->kind == N_FOR) {
        if (check_names(P, n->a, soft)) return -1;
        inner = 0;
        return check_names(P, n->b, 0) || check_list(P, &n->body, 0) || check_list(P, &n->orelse, 0) ? -1 : 0;
    }
    if (n->kind == N_MACRO || n->kind == N_BODY || n->kind == N_FILTBLOCK) inner = 0;
    if (n->kind == N_SET && !n->b) {
        if (check_list(P, &n->body, 0)) return -1;
        return check_names(P, n->c, 0);
    }
    return check_names(P, n->a, inner) || check_names(P, n->b, inner) || check_names(P, n->c, inner) ||
                   check_names(P, n->d, inner) || check_list(P, &n->args, inner) || check_list(P, &n->body, inner) ||
                   check_list(P, &n->orelse, inner)
               ? -1
               : 0;
}

JNode *jinja_parse_tokens(const JTokens *t, const char *name, Err *e)
{
    Parser P = {t, 0, name, e, 0};
    JNode *root = jp_node(&P, N_BODY, &t->v[0]);
    if (!root) return NULL;
    if (parse_body(&P, &root->body, NULL, NULL) || check_names(&P, root, 0)) {
        jinja_node_free(root);
        return NULL;
    }
    return root;
}
