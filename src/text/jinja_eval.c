/* jinja_eval.c - evaluates the syntax tree: scopes, expressions, statements,
 * and the public parse/render entry points. Scoping follows Jinja: each loop
 * iteration and each macro call gets its own scope, so `set` inside them does
 * not leak out (hence namespace()); `if` opens no scope. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/jinja_int.h"

struct JScope {
    char **names;
    Jv **vals;
    int n, cap;
    JScope *parent;
};

JScope *jscope_new(JScope *parent)
{
    JScope *s = calloc(1, sizeof *s);
    if (s) s->parent = parent;
    return s;
}

void jscope_free(JScope *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->names[i]);
        jv_unref(s->vals[i]);
    }
    free(s->names);
    free(s->vals);
    free(s);
}

/* Takes v. */
int jscope_set(JScope *s, const char *name, Jv *v)
{
    if (!v) return -1;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            jv_unref(s->vals[i]);
            s->vals[i] = v;
            return 0;
        }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        char **nn = realloc(s->names, (size_t)cap * sizeof *nn);
        if (nn) s->names = nn;
        Jv **nv = nn ? realloc(s->vals, (size_t)cap * sizeof *nv) : NULL;
        if (!nv) {
            jv_unref(v);
            return -1;
        }
        s->vals = nv;
        s->cap = cap;
    }
    if (!(s->names[s->n] = strdup(name))) {
        jv_unref(v);
        return -1;
    }
    s->vals[s->n++] = v;
    return 0;
}

Jv *jscope_lookup(JRender *r, const char *name)
{
    for (JScope *s = r->scope; s; s = s->parent)
        for (int i = 0; i < s->n; i++)
            if (!strcmp(s->names[i], name)) return s->vals[i];
    if (r->vars) {
        Jv *v = jv_dict_get(r->vars, name, strlen(name));
        if (v) return v;
    }
    return NULL;
}

int jr_err(JRender *r, const JNode *at, const char *fmt, ...)
{
    if (r->raised) return -1;
    char msg[420];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->raised = 1;
    if (at) return err_set(r->e, "%s:%d:%d: %s", r->t->name, at->line, at->col, msg);
    return err_set(r->e, "%s: %s", r->t->name, msg);
}

int jr_charge(JRender *r, const JNode *at, size_t bytes)
{
    r->mem += bytes;
    if (r->mem > r->t->lim.max_memory)
        return jr_err(r, at, "memory limit (%zu bytes of values) exceeded", r->t->lim.max_memory);
    r->steps += (long long)(bytes >> 6);
    if (r->steps > r->t->lim.max_steps)
        return jr_err(r, at, "evaluation step limit (%lld) exceeded", r->t->lim.max_steps);
    return 0;
}

size_t jr_room(const JRender *r)
{
    return r->mem < r->t->lim.max_memory ? r->t->lim.max_memory - r->mem : 0;
}

Jv *jr_buf_fail(JRender *r, const JNode *at, JBuf *b)
{
    free(b->p);
    b->p = NULL;
    if (b->over) jr_err(r, at, "memory limit (%zu bytes of values) exceeded", r->t->lim.max_memory);
    else jr_err(r, at, "out of memory");
    return NULL;
}

int jr_track_ns(JRender *r, Jv *ns)
{
    if (r->n_ns == r->cap_ns) {
        size_t cap = r->cap_ns ? r->cap_ns * 2 : 8;
        Jv **v = realloc(r->ns, cap * sizeof *v);
        if (!v) return -1;
        r->ns = v;
        r->cap_ns = cap;
    }
    r->ns[r->n_ns++] = jv_ref(ns);
    return 0;
}

int jr_out(JRender *r, const JNode *at, const char *p, size_t n)
{
    if (jr_charge(r, at, n)) return -1;
    if (!jbuf_put(&r->out, p, n)) return 0;
    if (r->out.over) return jr_err(r, at, "output size limit exceeded (%zu bytes)", r->out.max);
    return jr_err(r, at, "out of memory");
}

static const char *undef_name(const JNode *n)
{
    return n->kind == N_NAME || n->kind == N_ATTR ? n->s : "value";
}

/* ---- indexing ---- */

/* Byte offsets of code points in a UTF-8 string: count, and offset of k-th. */
static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static size_t utf8_off(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    for (; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && k-- == 0) return i;
    return n;
}

static Jv *get_item(JRender *r, const JNode *at, Jv *obj, Jv *key)
{
    if (obj->type == JV_UNDEF) {
        jr_err(r, at, "'%s' is undefined", undef_name(at->a));
        return NULL;
    }
    if ((obj->type == JV_DICT || obj->type == JV_NS) && jv_hashable(key)) {
        Jv *v = jv_dict_getv(obj, key);
        return v ? jv_ref(v) : jv_undef();
    }
    if ((obj->type == JV_LIST || obj->type == JV_STR) && (key->type == JV_INT || key->type == JV_BOOL)) {
        long long i = key->type == JV_INT ? key->u.i : key->u.b;
        size_t len = obj->type == JV_LIST ? obj->u.l.n : utf8_len(obj->u.s.p, obj->u.s.n);
        if (i < 0) i += (long long)len;
        if (i < 0 || (size_t)i >= len) return jv_undef();
        if (obj->type == JV_LIST) return jv_ref(obj->u.l.v[i]);
        size_t a = utf8_off(obj->u.s.p, obj->u.s.n, (size_t)i), b = utf8_off(obj->u.s.p, obj->u.s.n, (size_t)i + 1);
        return jv_str(obj->u.s.p + a, b - a);
    }
    return jv_undef();
}

static int slice_bound(JRender *r, const JNode *n, long long *out)
{
    if (!n) return 1;
    Jv *v = jinja_eval(r, n);
    if (!v) return -1;
    int rc = 0;
    if (v->type == JV_INT) *out = v->u.i;
    else if (v->type == JV_NONE) rc = 1;
    else rc = jr_err(r, n, "slice indices must be integers or none, not %s", jv_type_name(v));
    jv_unref(v);
    return rc;
}

static Jv *eval_slice(JRender *r, const JNode *n)
{
    long long start = 0, stop = 0, step = 1;
    int hs, he, hp;
    if ((hs = slice_bound(r, n->b, &start)) < 0 || (he = slice_bound(r, n->c, &stop)) < 0 ||
        (hp = slice_bound(r, n->d, &step)) < 0)
        return NULL;
    if (step == 0) {
        jr_err(r, n, "slice step cannot be zero");
        return NULL;
    }
    Jv *obj = jinja_eval(r, n->a);
    if (!obj) return NULL;
    if (obj->type != JV_LIST && obj->type != JV_STR) {
        if (obj->type != JV_UNDEF) { /* jinja2: obj[slice] fails, getattr too: undefined */
            jv_unref(obj);
            return jv_undef();
        }
        jr_err(r, n, "'%s' is undefined", undef_name(n->a));
        return NULL;
    }
    long long len = obj->type == JV_LIST ? (long long)obj->u.l.n : (long long)utf8_len(obj->u.s.p, obj->u.s.n);
    /* CPython's PySlice_AdjustIndices */
    if (hs) start = step < 0 ? len - 1 : 0;
    else if (start < 0) start = start + len < 0 ? (step < 0 ? -1 : 0) : start + len;
    else if (start >= len) start = step < 0 ? len - 1 : len;
    if (he) stop = step < 0 ? -1 : len;
    else if (stop < 0) stop = stop + len < 0 ? (step < 0 ? -1 : 0) : stop + len;
    else if (stop >= len) stop = step < 0 ? len - 1 : len;
    if (step > len) step = len + 1; /* one item at most; keeps i += step from overflowing */
    if (step < -len) step = -len - 1;
    Jv *res = NULL;
    if (obj->type == JV_LIST) {
        res = jv_list();
        for (long long i = start; res && (step > 0 ? i < stop : i > stop); i += step)
            if (jv_list_push(res, jv_ref(obj->u.l.v[i]))) {
                jv_unref(res);
                res = NULL;
            }
    } else {
        JBuf b = {0};
        const char *s = obj->u.s.p;
        size_t sn = obj->u.s.n;
        for (long long i = start; step > 0 ? i < stop : i > stop; i += step) {
            size_t a = utf8_off(s, sn, (size_t)i), e = utf8_off(s, sn, (size_t)i + 1);
            jbuf_put(&b, s + a, e - a);
        }
        res = b.nomem ? NULL : b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
        if (!res) free(b.p);
    }
    jv_unref(obj);
    if (!res) jr_err(r, n, "out of memory");
    return res;
}

/* ---- operators ---- */

static int contains(const Jv *hay, const Jv *needle, int *res)
{
    if (hay->type == JV_STR) {
        if (needle->type != JV_STR) return -1;
        *res = needle->u.s.n == 0 || memmem(hay->u.s.p, hay->u.s.n, needle->u.s.p, needle->u.s.n) != NULL;
        return 0;
    }
    if (hay->type == JV_LIST) {
        *res = 0;
        for (size_t i = 0; i < hay->u.l.n && !*res; i++) *res = jv_equal(hay->u.l.v[i], needle);
        return 0;
    }
    if (hay->type == JV_DICT || hay->type == JV_NS) {
        *res = jv_hashable(needle) && jv_dict_getv(hay, needle) != NULL;
        return 0;
    }
    if (hay->type == JV_UNDEF) {
        *res = 0;
        return 0;
    }
    return -1;
}

static Jv *concat_str(const Jv *a, const Jv *b)
{
    JBuf buf = {0};
    jv_write_str(&buf, a);
    jv_write_str(&buf, b);
    if (buf.nomem) {
        free(buf.p);
        return NULL;
    }
    return buf.p ? jv_str_take(buf.p, buf.n) : jv_str("", 0);
}

static Jv *arith(JRender *r, const JNode *n, JOp op, Jv *a, Jv *b)
{
    if (op == OP_TILDE) return concat_str(a, b);
    if (a->type == JV_UNDEF || b->type == JV_UNDEF) {
        const JNode *u = a->type == JV_UNDEF ? n->a : n->b;
        jr_err(r, n, "'%s' is undefined", undef_name(u));
        return NULL;
    }
    if (op == OP_ADD && a->type == JV_STR && b->type == JV_STR && a->u.s.safe != b->u.s.safe) {
        /* Markup + str (or str + Markup) escapes the plain side; the sum is Markup */
        JBuf buf = {0};
        buf.max = r->out.max;
        if (a->u.s.safe) jbuf_put(&buf, a->u.s.p, a->u.s.n);
        else jv_write_escaped(&buf, a->u.s.p, a->u.s.n);
        if (b->u.s.safe) jbuf_put(&buf, b->u.s.p, b->u.s.n);
        else jv_write_escaped(&buf, b->u.s.p, b->u.s.n);
        Jv *res = buf.nomem || buf.over ? NULL : buf.p ? jv_str_take(buf.p, buf.n) : jv_str("", 0);
        if (!res) free(buf.p);
        else res->u.s.safe = 1;
        return res;
    }
    if (op == OP_ADD && a->type == JV_STR && b->type == JV_STR) {
        char *p = malloc(a->u.s.n + b->u.s.n + 1);
        if (!p) return NULL;
        memcpy(p, a->u.s.p, a->u.s.n);
        memcpy(p + a->u.s.n, b->u.s.p, b->u.s.n);
        p[a->u.s.n + b->u.s.n] = 0;
        Jv *res = jv_str_take(p, a->u.s.n + b->u.s.n);
        if (res) res->u.s.safe = a->u.s.safe;
        return res;
    }
    if (op == OP_ADD && a->type == JV_LIST && b->type == JV_LIST) {
        Jv *l = jv_list();
        for (size_t i = 0; l && i < a->u.l.n + b->u.l.n; i++)
            if (jv_list_push(l, jv_ref(i < a->u.l.n ? a->u.l.v[i] : b->u.l.v[i - a->u.l.n]))) {
                jv_unref(l);
                l = NULL;
            }
        return l;
    }
    if (op == OP_MUL && (a->type == JV_STR || a->type == JV_LIST) && b->type == JV_INT) {
        long long k = b->u.i < 0 ? 0 : b->u.i;
        size_t unit = a->type == JV_STR ? a->u.s.n : a->u.l.n * sizeof(Jv *);
        if (!unit) k = 0; /* '' * N and [] * N are empty at once */
        /* the size is known before anything is made: check it against what is left */
        if (k && (size_t)k > jr_room(r) / unit) {
            jr_err(r, n, "memory limit (%zu bytes of values) exceeded: %s repetition of %zu x %lld",
                   r->t->lim.max_memory, a->type == JV_STR ? "string" : "list", a->type == JV_STR ? unit : a->u.l.n, k);
            r->raised = 1;
            return NULL;
        }
        if (a->type == JV_STR) {
            JBuf buf = {0};
            for (long long i = 0; i < k; i++) jbuf_put(&buf, a->u.s.p, a->u.s.n);
            if (buf.nomem) {
                free(buf.p);
                return NULL;
            }
            return buf.p ? jv_str_take(buf.p, buf.n) : jv_str("", 0);
        }
        Jv *l = jv_list();
        for (long long i = 0; l && i < k; i++)
            for (size_t j = 0; l && j < a->u.l.n; j++)
                if (jv_list_push(l, jv_ref(a->u.l.v[j]))) {
                    jv_unref(l);
                    l = NULL;
                }
        return l;
    }
    if (op == OP_MOD && a->type == JV_STR) {
        Jv *args[1] = {b};
        return jinja_call_method(r, n, a, "__mod__", args, NULL, 1);
    }
    if (!jv_is_number(a) || !jv_is_number(b)) {
        static const char *sym[] = {[OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
                                    [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
        jr_err(r, n, "unsupported operand types for %s: %s and %s", sym[op], jv_type_name(a), jv_type_name(b));
        return NULL;
    }
    int ints = a->type != JV_FLOAT && b->type != JV_FLOAT;
    long long x = a->type == JV_INT ? a->u.i : a->u.b, y = b->type == JV_INT ? b->u.i : b->u.b;
    double fx = jv_num(a), fy = jv_num(b);
    if ((op == OP_DIV || op == OP_FLOORDIV || op == OP_MOD) && (ints ? y == 0 : fy == 0)) {
        jr_err(r, n, "division by zero");
        return NULL;
    }
    long long z = 0;
    int ovf = 0;
    switch (op) {
    case OP_ADD:
        if (!ints) return jv_float(fx + fy);
        ovf = __builtin_add_overflow(x, y, &z);
        break;
    case OP_SUB:
        if (!ints) return jv_float(fx - fy);
        ovf = __builtin_sub_overflow(x, y, &z);
        break;
    case OP_MUL:
        if (!ints) return jv_float(fx * fy);
        ovf = __builtin_mul_overflow(x, y, &z);
        break;
    case OP_DIV: return jv_float(fx / fy);
    case OP_FLOORDIV:
    case OP_MOD:
        if (!ints) {
            if (op == OP_FLOORDIV) return jv_float(__builtin_floor(fx / fy));
            double m = __builtin_fmod(fx, fy);
            if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
            return jv_float(m);
        }
        if (y == -1) { /* LLONG_MIN / -1 overflows; x % -1 is 0 */
            if (op == OP_MOD) return jv_int(0);
            ovf = __builtin_sub_overflow(0LL, x, &z);
            break;
        }
        if (op == OP_FLOORDIV) {
            z = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) z--;
        } else {
            z = x % y;
            if (z != 0 && ((z < 0) != (y < 0))) z += y;
        }
        break;
    case OP_POW:
        if (!ints || y < 0) return jv_float(__builtin_pow(fx, fy));
        z = 1;
        for (long long i = 0; i < y && !ovf && !(z == 0 || (z == 1 && x == 1)); i++) ovf = __builtin_mul_overflow(z, x, &z);
        break;
    default: jr_err(r, n, "bad operator"); return NULL;
    }
    if (ovf) {
        /* Python's ints are unbounded; ours are 64-bit */
        jr_err(r, n, "integer overflow");
        return NULL;
    }
    return jv_int(z);
}

static Jv *eval_binary(JRender *r, const JNode *n)
{
    Jv *a = jinja_eval(r, n->a);
    if (!a) return NULL;
    if (n->op == OP_AND || n->op == OP_OR) {
        if (jv_truthy(a) == (n->op == OP_OR)) return a;
        jv_unref(a);
        return jinja_eval(r, n->b);
    }
    Jv *b = jinja_eval(r, n->b);
    if (!b) {
        jv_unref(a);
        return NULL;
    }
    Jv *res = NULL;
    int c = 0;
    /* comparing or searching containers and strings: work in their size */
    if (n->op == OP_EQ || n->op == OP_NE || n->op == OP_IN || n->op == OP_NOTIN) {
        const Jv *big = n->op == OP_IN || n->op == OP_NOTIN ? b : a;
        size_t size = big->type == JV_LIST ? big->u.l.n * 8 : big->type == JV_STR ? big->u.s.n : 0;
        r->steps += (long long)(size >> 6);
    }
    switch (n->op) {
    case OP_EQ: res = jv_bool(jv_equal(a, b)); break;
    case OP_NE: res = jv_bool(!jv_equal(a, b)); break;
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE:
        if (jv_compare(a, b, &c)) {
            jr_err(r, n, "cannot compare %s with %s", jv_type_name(a), jv_type_name(b));
            break;
        }
        res = jv_bool(n->op == OP_LT ? c < 0 : n->op == OP_LE ? c <= 0 : n->op == OP_GT ? c > 0 : c >= 0);
        break;
    case OP_IN:
    case OP_NOTIN:
        if (contains(b, a, &c)) {
            jr_err(r, n, "'in <%s>' requires a %s", jv_type_name(b), b->type == JV_STR ? "string" : "container");
            break;
        }
        res = jv_bool(n->op == OP_IN ? c : !c);
        break;
    default:
        res = arith(r, n, n->op, a, b);
        if (!res) jr_err(r, n, "out of memory");
    }
    jv_unref(a);
    jv_unref(b);
    return res;
}

/* ---- calls ---- */

typedef struct Args {
    Jv *v[32];
    char *kw[32];
    int n;
} Args;

static void args_free(Args *a)
{
    for (int i = 0; i < a->n; i++) jv_unref(a->v[i]);
    a->n = 0;
}

static int eval_args(JRender *r, const JNode *n, Args *a)
{
    a->n = 0;
    if (n->args.n > 32) return jr_err(r, n, "too many arguments");
    for (int i = 0; i < n->args.n; i++) {
        Jv *v = jinja_eval(r, n->args.v[i]);
        if (!v) {
            args_free(a);
            return -1;
        }
        a->v[a->n] = v;
        a->kw[a->n++] = n->args.kw[i];
    }
    return 0;
}

Jv *jinja_call(JRender *r, const JNode *at, Jv *fn, Jv **args, char **kw, int nargs)
{
    if (fn->u.fn.builtin) return jinja_call_builtin(r, at, fn->u.fn.builtin, args, kw, nargs);
    const JNode *m = fn->u.fn.macro;
    if (r->depth >= r->t->lim.max_depth) {
        jr_err(r, at, "recursion depth limit (%d) exceeded", r->t->lim.max_depth);
        return NULL;
    }
    JScope *s = jscope_new(r->globals);
    Jv *varargs = jv_list(), *kwargs = jv_dict();
    if (!s || !varargs || !kwargs) goto nomem;
    varargs->u.l.tuple = 1;
    int pos = 0;
    for (int i = 0; i < nargs; i++) {
        if (kw && kw[i]) {
            int found = 0;
            for (int p = 0; p < m->args.n; p++)
                if (!strcmp(m->args.v[p]->s, kw[i])) {
                    found = 1;
                    if (jscope_set(s, kw[i], jv_ref(args[i]))) goto nomem;
                }
            if (!found && jv_dict_set(kwargs, kw[i], strlen(kw[i]), jv_ref(args[i]))) goto nomem;
        } else if (pos < m->args.n) {
            if (jscope_set(s, m->args.v[pos++]->s, jv_ref(args[i]))) goto nomem;
        } else if (jv_list_push(varargs, jv_ref(args[i]))) {
            goto nomem;
        }
    }
    JScope *saved = r->scope;
    r->scope = s;
    for (int p = 0; p < m->args.n; p++) {
        const char *pn = m->args.v[p]->s;
        int bound = 0;
        for (int k = 0; k < s->n; k++) bound |= !strcmp(s->names[k], pn);
        if (bound) continue;
        const JNode *def = m->orelse.v[p];
        Jv *dv = def->kind == N_NONE && def->i == -1 ? jv_undef() : jinja_eval(r, def);
        if (!dv || jscope_set(s, pn, dv)) {
            r->scope = saved;
            jscope_free(s);
            jv_unref(varargs);
            jv_unref(kwargs);
            if (!dv) return NULL;
            goto nomem2;
        }
    }
    jscope_set(s, "varargs", varargs);
    jscope_set(s, "kwargs", kwargs);
    r->depth++;
    Jv *res = jinja_render_body(r, &m->body, at);
    r->depth--;
    r->scope = saved;
    jscope_free(s);
    return res;
nomem:
    jscope_free(s);
    jv_unref(varargs);
    jv_unref(kwargs);
nomem2:
    jr_err(r, at, "out of memory");
    return NULL;
}

static Jv *eval_call(JRender *r, const JNode *n)
{
    Args a;
    Jv *res = NULL;
    if (n->a->kind == N_ATTR) {
        Jv *obj = jinja_eval(r, n->a->a);
        if (!obj) return NULL;
        if (jinja_has_method(obj, n->a->s)) {
            if (eval_args(r, n, &a)) {
                jv_unref(obj);
                return NULL;
            }
            res = jinja_call_method(r, n->a, obj, n->a->s, a.v, a.kw, a.n);
            args_free(&a);
            jv_unref(obj);
            return res;
        }
        if (obj->type == JV_STR || obj->type == JV_LIST || obj->type == JV_DICT) {
            jr_err(r, n->a, "unknown method \"%s\" of %s", n->a->s, jv_type_name(obj));
            jv_unref(obj);
            return NULL;
        }
        jv_unref(obj);
    }
    Jv *fn = jinja_eval(r, n->a);
    if (!fn) return NULL;
    if (fn->type != JV_FUNC) {
        if (fn->type == JV_UNDEF) jr_err(r, n->a, "'%s' is undefined", undef_name(n->a));
        else jr_err(r, n->a, "'%s' object is not callable", jv_type_name(fn));
        jv_unref(fn);
        return NULL;
    }
    if (!eval_args(r, n, &a)) {
        res = jinja_call(r, n, fn, a.v, a.kw, a.n);
        args_free(&a);
    }
    jv_unref(fn);
    return res;
}

static const struct { const char *name; int id; } builtins[] = {
    {"namespace", FN_NAMESPACE}, {"range", FN_RANGE}, {"raise_exception", FN_RAISE},
    {"strftime_now", FN_STRFTIME}, {"dict", FN_DICT},
};

static Jv *eval_node(JRender *r, const JNode *n);

/* Every evaluation passes here: the run-time nesting bound, then the new
 * value's size is charged and its nesting checked (values only grow a level
 * or a literal's height per evaluation, so checking here bounds them all). */
Jv *jinja_eval(JRender *r, const JNode *n)
{
    if (++r->nest > JR_MAX_NEST) {
        r->nest--;
        jr_err(r, n, "template nested too deeply (more than %d levels of blocks, expressions and macro calls)",
               JR_MAX_NEST);
        return NULL;
    }
    Jv *v = eval_node(r, n);
    r->nest--;
    if (!v || v->refs != 1 || (v->type != JV_STR && v->type != JV_LIST && v->type != JV_DICT)) return v;
    size_t bytes = v->type == JV_STR ? v->u.s.n : v->type == JV_LIST ? v->u.l.n * sizeof(Jv *) : v->u.d.n * 2 * sizeof(Jv *);
    if (jr_charge(r, n, bytes + sizeof *v)) {
        jv_unref(v);
        return NULL;
    }
    if ((v->type == JV_LIST || v->type == JV_DICT) && v->depth > JV_MAX_DEPTH) {
        jv_unref(v);
        jr_err(r, n, "value nested too deeply (more than %d levels)", JV_MAX_DEPTH);
        return NULL;
    }
    return v;
}

static Jv *eval_node(JRender *r, const JNode *n)
{
    if (++r->steps > r->t->lim.max_steps) {
        jr_err(r, n, "evaluation step limit (%lld) exceeded", r->t->lim.max_steps);
        return NULL;
    }
    Jv *v = NULL, *o = NULL;
    Args a;
    switch (n->kind) {
    case N_STR: v = jv_str(n->s, n->n); break;
    case N_INT: v = jv_int(n->i); break;
    case N_FLOAT: v = jv_float(n->f); break;
    case N_BOOL: return jv_bool((int)n->i);
    case N_NONE: return jv_none();
    case N_NAME:
        if ((v = jscope_lookup(r, n->s))) return jv_ref(v);
        for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
            if (!strcmp(n->s, builtins[i].name)) {
                v = jv_func(builtins[i].id, NULL);
                break;
            }
        if (!v) return jv_undef();
        break;
    case N_LIST:
    case N_TUPLE:
        if (!(v = jv_list())) break;
        v->u.l.tuple = n->kind == N_TUPLE;
        for (int i = 0; i < n->args.n; i++) {
            Jv *it = jinja_eval(r, n->args.v[i]);
            if (!it || jv_list_push(v, it)) {
                jv_unref(v);
                return NULL;
            }
        }
        return v;
    case N_DICT:
        if (!(v = jv_dict())) break;
        for (int i = 0; i + 1 < n->args.n; i += 2) {
            Jv *k = jinja_eval(r, n->args.v[i]);
            if (!k) goto fail;
            if (!jv_hashable(k)) {
                jr_err(r, n->args.v[i], "unhashable type: '%s' (dict keys are strings, numbers, booleans or none)",
                       jv_type_name(k));
                jv_unref(k);
                goto fail;
            }
            Jv *val = jinja_eval(r, n->args.v[i + 1]);
            if (!val) {
                jv_unref(k);
                goto fail;
            }
            if (jv_dict_setv(v, k, val)) {
                jr_err(r, n, "out of memory");
                goto fail;
            }
        }
        return v;
    case N_ATTR:
        if (!(o = jinja_eval(r, n->a))) return NULL;
        if (o->type == JV_UNDEF) {
            jr_err(r, n, "'%s' is undefined", undef_name(n->a));
            return NULL;
        }
        v = o->type == JV_DICT || o->type == JV_NS ? jv_dict_get(o, n->s, n->n) : NULL;
        v = v ? jv_ref(v) : jv_undef();
        jv_unref(o);
        return v;
    case N_ITEM: {
        if (!(o = jinja_eval(r, n->a))) return NULL;
        Jv *k = jinja_eval(r, n->b);
        if (k) v = get_item(r, n, o, k);
        jv_unref(o);
        jv_unref(k);
        return v;
    }
    case N_SLICE: return eval_slice(r, n);
    case N_CALL: return eval_call(r, n);
    case N_BLOCKVAL: return r->blockval ? jv_ref(r->blockval) : jv_str("", 0);
    case N_FILTER:
        if (n->i) {
            jr_err(r, n, "no filter named \"%s\"", n->s);
            return NULL;
        }
        if (!(o = jinja_eval(r, n->a))) return NULL;
        if (!eval_args(r, n, &a)) {
            v = jinja_apply_filter(r, n, n->s, o, a.v, a.kw, a.n);
            args_free(&a);
        }
        jv_unref(o);
        return v;
    case N_TEST: {
        if (n->i) {
            jr_err(r, n, "no test named \"%s\"", n->s);
            return NULL;
        }
        if (!(o = jinja_eval(r, n->a))) return NULL;
        int res = 0;
        if (!eval_args(r, n, &a)) {
            if (!jinja_apply_test(r, n, n->s, o, a.v, a.n, &res)) v = jv_bool(n->op ? !res : res);
            args_free(&a);
        }
        jv_unref(o);
        return v;
    }
    case N_UNARY:
        if (!(o = jinja_eval(r, n->a))) return NULL;
        if (n->op == OP_NOT) v = jv_bool(!jv_truthy(o));
        else if (o->type == JV_INT || o->type == JV_BOOL) {
            long long x = o->type == JV_INT ? o->u.i : o->u.b, neg;
            if (n->op == OP_NEG && __builtin_sub_overflow(0LL, x, &neg)) {
                jv_unref(o);
                jr_err(r, n, "integer overflow");
                return NULL;
            }
            v = jv_int(n->op == OP_NEG ? neg : x);
        } else if (o->type == JV_FLOAT) v = jv_float(n->op == OP_NEG ? -o->u.f : o->u.f);
        else {
            jr_err(r, n, "bad operand type for unary %c: %s", n->op == OP_NEG ? '-' : '+', jv_type_name(o));
            jv_unref(o);
            return NULL;
        }
        jv_unref(o);
        break;
    case N_BINARY: return eval_binary(r, n);
    case N_COND:
        if (!(o = jinja_eval(r, n->a))) return NULL;
        {
            int t = jv_truthy(o);
            jv_unref(o);
            if (t) return jinja_eval(r, n->b);
            return n->c ? jinja_eval(r, n->c) : jv_undef();
        }
    default: jr_err(r, n, "not an expression"); return NULL;
    }
    if (!v) jr_err(r, n, "out of memory");
    return v;
fail:
    jv_unref(v);
    return NULL;
}

