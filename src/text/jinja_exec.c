/* jinja_exec.c - executes statements (text, output, if, for, set, macro,
 * break/continue) and holds the public parse/render/free entry points. */
#include <stdlib.h>
#include <string.h>

#include "text/jinja_int.h"

static int exec_node(JRender *r, const JNode *n);

int jinja_exec(JRender *r, const JNodeList *body)
{
    for (int i = 0; i < body->n; i++) {
        if (exec_node(r, body->v[i])) return -1;
        if (r->loopctl) break;
    }
    return 0;
}

Jv *jinja_render_body(JRender *r, const JNodeList *body, const JNode *at)
{
    JBuf saved = r->out;
    r->out = (JBuf){0};
    /* the captured text counts against what is left of the output limit */
    if (saved.max) r->out.max = saved.max > saved.n ? saved.max - saved.n : 1;
    int rc = jinja_exec(r, body);
    JBuf got = r->out;
    r->out = saved;
    if (rc) {
        free(got.p);
        return NULL;
    }
    Jv *v = got.p ? jv_str_take(got.p, got.n) : jv_str("", 0);
    if (!v) jr_err(r, at, "out of memory");
    return v;
}

/* The items a for loop walks: a new list (dict keys, string characters). */
static Jv *iter_items(JRender *r, const JNode *at, Jv *v)
{
    Jv *l = NULL;
    switch (v->type) {
    case JV_LIST: return jv_ref(v);
    case JV_UNDEF: return jv_list();
    case JV_DICT:
        if (!(l = jv_list())) break;
        for (size_t i = 0; i < v->u.d.n; i++)
            if (jv_list_push(l, jv_ref(v->u.d.k[i]))) {
                jv_unref(l);
                return NULL;
            }
        return l;
    case JV_STR:
        if (!(l = jv_list())) break;
        for (size_t i = 0; i < v->u.s.n;) {
            size_t j = i + 1;
            while (j < v->u.s.n && ((unsigned char)v->u.s.p[j] & 0xC0) == 0x80) j++;
            if (jv_list_push(l, jv_str(v->u.s.p + i, j - i))) {
                jv_unref(l);
                return NULL;
            }
            i = j;
        }
        return l;
    default:
        jr_err(r, at, "'%s' object is not iterable", jv_type_name(v));
        return NULL;
    }
    jr_err(r, at, "out of memory");
    return NULL;
}

static int bind_targets(JRender *r, const JNode *n, JScope *s, Jv *item)
{
    if (n->args.n == 1) return jscope_set(s, n->args.v[0]->s, jv_ref(item)) ? jr_err(r, n, "out of memory") : 0;
    if (item->type != JV_LIST || item->u.l.n != (size_t)n->args.n)
        return jr_err(r, n, "cannot unpack %s into %d loop variables", jv_type_name(item), n->args.n);
    for (int k = 0; k < n->args.n; k++)
        if (jscope_set(s, n->args.v[k]->s, jv_ref(item->u.l.v[k]))) return jr_err(r, n, "out of memory");
    return 0;
}

static Jv *loop_obj(size_t i, size_t len, Jv *items)
{
    Jv *d = jv_dict();
    if (!d) return NULL;
    int rc = jv_dict_set(d, "index", 5, jv_int((long long)i + 1));
    rc |= jv_dict_set(d, "index0", 6, jv_int((long long)i));
    rc |= jv_dict_set(d, "revindex", 8, jv_int((long long)(len - i)));
    rc |= jv_dict_set(d, "revindex0", 9, jv_int((long long)(len - i - 1)));
    rc |= jv_dict_set(d, "first", 5, jv_bool(i == 0));
    rc |= jv_dict_set(d, "last", 4, jv_bool(i + 1 == len));
    rc |= jv_dict_set(d, "length", 6, jv_int((long long)len));
    rc |= jv_dict_set(d, "depth", 5, jv_int(1));
    rc |= jv_dict_set(d, "depth0", 6, jv_int(0));
    if (i > 0) rc |= jv_dict_set(d, "previtem", 8, jv_ref(items->u.l.v[i - 1]));
    if (i + 1 < len) rc |= jv_dict_set(d, "nextitem", 8, jv_ref(items->u.l.v[i + 1]));
    if (rc) {
        jv_unref(d);
        return NULL;
    }
    return d;
}

static int exec_for(JRender *r, const JNode *n)
{
    Jv *seq = jinja_eval(r, n->a);
    if (!seq) return -1;
    Jv *items = iter_items(r, n->a, seq);
    jv_unref(seq);
    if (!items) return -1;
    int rc = 0;
    if (n->b) { /* {% for x in xs if cond %}: filter first, so loop.length counts the kept */
        Jv *kept = jv_list();
        for (size_t i = 0; kept && i < items->u.l.n && !rc; i++) {
            JScope *s = jscope_new(r->scope);
            if (!s) {
                rc = jr_err(r, n, "out of memory");
                break;
            }
            JScope *saved = r->scope;
            r->scope = s;
            Jv *c = NULL;
            if (!(rc = bind_targets(r, n, s, items->u.l.v[i])) && (c = jinja_eval(r, n->b))) {
                if (jv_truthy(c) && jv_list_push(kept, jv_ref(items->u.l.v[i]))) rc = jr_err(r, n, "out of memory");
            } else {
                rc = -1;
            }
            jv_unref(c);
            r->scope = saved;
            jscope_free(s);
        }
        jv_unref(items);
        if (!kept) return jr_err(r, n, "out of memory");
        items = kept;
    }
    size_t len = items->u.l.n;
    for (size_t i = 0; i < len && !rc; i++) {
        /* an iteration makes a scope and a loop object: a few nodes' work */
        if ((r->steps += 8) > r->t->lim.max_steps) {
            rc = jr_err(r, n, "evaluation step limit (%lld) exceeded", r->t->lim.max_steps);
            break;
        }
        JScope *s = jscope_new(r->scope);
        Jv *loop = loop_obj(i, len, items);
        if (!s || !loop || jscope_set(s, "loop", loop)) {
            if (!s) jv_unref(loop);
            jscope_free(s);
            rc = jr_err(r, n, "out of memory");
            break;
        }
        JScope *saved = r->scope;
        r->scope = s;
        rc = bind_targets(r, n, s, items->u.l.v[i]);
        if (!rc) rc = jinja_exec(r, &n->body);
        r->scope = saved;
        jscope_free(s);
        int ctl = r->loopctl;
        r->loopctl = 0;
        if (ctl == 1) break;
    }
    jv_unref(items);
    if (!rc && len == 0) rc = jinja_exec(r, &n->orelse);
    return rc;
}

static int exec_set(JRender *r, const JNode *n)
{
    Jv *v = n->b ? jinja_eval(r, n->b) : jinja_render_body(r, &n->body, n);
    if (!v) return -1;
    if (n->a->kind == N_NAME) {
        if (jscope_set(r->scope, n->a->s, v)) return jr_err(r, n, "out of memory");
        return 0;
    }
    const JNode *base = n->a->a;
    Jv *obj = jscope_lookup(r, base->s);
    if (!obj || obj->type != JV_NS) {
        jv_unref(v);
        return jr_err(r, n->a, "cannot assign attribute \"%s\" on %s '%s' (only on a namespace)", n->a->s,
                      obj ? jv_type_name(obj) : "undefined", base->s);
    }
    if (jv_dict_set(obj, n->a->s, n->a->n, v)) return jr_err(r, n, "out of memory");
    return 0;
}

static int exec_stmt(JRender *r, const JNode *n);

static int exec_node(JRender *r, const JNode *n)
{
    if (++r->nest > JR_MAX_NEST) {
        r->nest--;
        return jr_err(r, n, "template nested too deeply (more than %d levels of blocks, expressions and macro calls)",
                      JR_MAX_NEST);
    }
    int rc = exec_stmt(r, n);
    r->nest--;
    return rc;
}

static int exec_stmt(JRender *r, const JNode *n)
{
    if (++r->steps > r->t->lim.max_steps)
        return jr_err(r, n, "evaluation step limit (%lld) exceeded", r->t->lim.max_steps);
    switch (n->kind) {
    case N_TEXT: return jr_out(r, n, n->s, n->n);
    case N_OUTPUT: {
        Jv *v = jinja_eval(r, n->a);
        if (!v) return -1;
        int rc = 0;
        if (v->type == JV_STR) rc = jr_out(r, n, v->u.s.p, v->u.s.n);
        else if (jv_write_str(&r->out, v))
            rc = jr_err(r, n, r->out.over ? "output size limit exceeded" : "out of memory");
        jv_unref(v);
        return rc;
    }
    case N_IF: {
        Jv *c = jinja_eval(r, n->a);
        if (!c) return -1;
        int t = jv_truthy(c);
        jv_unref(c);
        return jinja_exec(r, t ? &n->body : &n->orelse);
    }
    case N_FOR: return exec_for(r, n);
    case N_SET: return exec_set(r, n);
    case N_MACRO: {
        Jv *f = jv_func(0, n);
        if (!f || jscope_set(r->scope, n->s, f)) return jr_err(r, n, "out of memory");
        return 0;
    }
    case N_BREAK: r->loopctl = 1; return 0;
    case N_CONTINUE: r->loopctl = 2; return 0;
    case N_BODY: return jinja_exec(r, &n->body);
    case N_FILTBLOCK: {
        Jv *body = jinja_render_body(r, &n->body, n);
        if (!body) return -1;
        Jv *saved = r->blockval;
        r->blockval = body;
        Jv *v = jinja_eval(r, n->a);
        r->blockval = saved;
        jv_unref(body);
        if (!v) return -1;
        int rc = 0;
        if (v->type == JV_STR) rc = jr_out(r, n, v->u.s.p, v->u.s.n);
        else if (jv_write_str(&r->out, v))
            rc = jr_err(r, n, r->out.over ? "output size limit exceeded" : "out of memory");
        jv_unref(v);
        return rc;
    }
    default: return jr_err(r, n, "not a statement");
    }
}

/* ---- public entry points ---- */

JinjaTemplate *jinja_parse(const char *src, size_t len, const char *name, Err *e)
{
    if (!name) name = "template";
    JTokens toks;
    if (jinja_lex(src, len, name, &toks, e)) return NULL;
    JNode *root = jinja_parse_tokens(&toks, name, e);
    jinja_tokens_free(&toks);
    if (!root) return NULL;
    JinjaTemplate *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        jinja_node_free(root);
        err_set(e, "out of memory");
        return NULL;
    }
    t->root = root;
    t->lim = (JinjaLimits){16u << 20, 64, 4000000, 128u << 20};
    return t;
}

void jinja_set_limits(JinjaTemplate *t, const JinjaLimits *lim)
{
    if (lim->max_output) t->lim.max_output = lim->max_output;
    if (lim->max_depth > 0) t->lim.max_depth = lim->max_depth;
    if (lim->max_steps > 0) t->lim.max_steps = lim->max_steps;
    if (lim->max_memory) t->lim.max_memory = lim->max_memory;
}

void jinja_set_time(JinjaTemplate *t, long long unix_seconds)
{
    t->fixed_time = 1;
    t->now = unix_seconds;
}

char *jinja_render(const JinjaTemplate *t, const Jv *vars, size_t *out_len, Err *e)
{
    if (vars && vars->type != JV_DICT) {
        err_set(e, "%s: render variables must be a dict", t->name);
        return NULL;
    }
    JRender r = {0};
    r.t = t;
    r.e = e;
    r.vars = vars;
    r.out.max = t->lim.max_output;
    r.globals = r.scope = jscope_new(NULL);
    if (!r.globals) {
        err_set(e, "out of memory");
        return NULL;
    }
    int rc = jinja_exec(&r, &t->root->body);
    jscope_free(r.globals);
    /* only a namespace can hold itself (ns.x = [ns]): emptying them all frees every cycle */
    for (size_t i = 0; i < r.n_ns; i++) {
        Jv *ns = r.ns[i];
        Jv **k = ns->u.d.k, **v = ns->u.d.v;
        size_t n = ns->u.d.n;
        ns->u.d.k = ns->u.d.v = NULL;
        ns->u.d.n = ns->u.d.cap = 0;
        for (size_t j = 0; j < n; j++) {
            jv_unref(k[j]);
            jv_unref(v[j]);
        }
        free(k);
        free(v);
        jv_unref(ns);
    }
    free(r.ns);
    if (rc) {
        free(r.out.p);
        return NULL;
    }
    if (!r.out.p && !(r.out.p = calloc(1, 1))) {
        err_set(e, "out of memory");
        return NULL;
    }
    if (out_len) *out_len = r.out.n;
    return r.out.p;
}

void jinja_free(JinjaTemplate *t)
{
    if (!t) return;
    jinja_node_free(t->root);
    free(t->name);
    free(t);
}
