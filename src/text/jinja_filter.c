/* jinja_filter.c - the filters (value|name(args)) of Jinja 3.1 that chat
 * templates use, with HF's tojson. Names are checked at parse time against
 * the list in jinja_builtin.c, so every name there has a case here. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/jinja_int.h"

/* Attribute lookup used by map/selectattr/sort: "a.b" walks dicts; "0" indexes lists. */
static Jv *attr_path(Jv *v, const char *path)
{
    while (*path && v) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (v->type == JV_DICT || v->type == JV_NS) v = jv_dict_get(v, path, n);
        else if (v->type == JV_LIST && n && path[0] >= '0' && path[0] <= '9') {
            size_t i = (size_t)atoll(path);
            v = i < v->u.l.n ? v->u.l.v[i] : NULL;
        } else v = NULL;
        path = dot ? dot + 1 : path + n;
    }
    return v ? v : jv_undef();
}

static Jv *as_list(JRender *r, const JNode *at, Jv *v)
{
    if (v->type == JV_LIST) return jv_ref(v);
    Jv *l = jv_list();
    if (!l) return jb_nomem(r, at);
    if (v->type == JV_DICT)
        for (size_t i = 0; i < v->u.d.n; i++) jv_list_push(l, jv_ref(v->u.d.k[i]));
    else if (v->type == JV_STR)
        for (size_t i = 0; i < v->u.s.n;) {
            size_t j = i + 1;
            while (j < v->u.s.n && ((unsigned char)v->u.s.p[j] & 0xC0) == 0x80) j++;
            jv_list_push(l, jv_str(v->u.s.p + i, j - i));
            i = j;
        }
    else if (v->type != JV_UNDEF) {
        jv_unref(l);
        jr_err(r, at, "'%s' object is not iterable", jv_type_name(v));
        return NULL;
    }
    return l;
}


typedef struct SortItem {
    Jv *key, *val;
    size_t idx;
    int rev;
} SortItem;

static int sort_cmp(const void *x, const void *y)
{
    const SortItem *a = x, *b = y;
    int c = 0;
    if (jv_compare(a->key, b->key, &c)) c = 0;
    if (a->rev) c = -c;
    return c ? c : (a->idx > b->idx) - (a->idx < b->idx); /* stable, as Python's sort */
}

/* jinja2's sort key: the item (or its attribute, or pair[which]); strings
 * lowered unless case_sensitive. A new reference, or NULL out of memory. */
static Jv *sort_key(Jv *v, const char *attr, int which, int icase)
{
    Jv *k = which >= 0 && v->type == JV_LIST && v->u.l.n > (size_t)which ? v->u.l.v[which] : attr ? attr_path(v, attr) : v;
    return icase && k->type == JV_STR ? jb_recase(k, 0) : jv_ref(k);
}

static Jv *sort_items(JRender *r, const JNode *at, Jv *l, const char *attr, int rev, int which, int icase)
{
    size_t n = l->u.l.n;
    SortItem *it = calloc(n ? n : 1, sizeof *it);
    if (!it) return jb_nomem(r, at);
    Jv *out = NULL;
    size_t made = 0;
    for (; made < n; made++) {
        Jv *v = l->u.l.v[made];
        it[made].val = v;
        it[made].idx = made;
        it[made].rev = rev;
        if (!(it[made].key = sort_key(v, attr, which, icase))) {
            jb_nomem(r, at);
            goto done;
        }
        int c;
        if (made && jv_compare(it[made].key, it[0].key, &c)) {
            jr_err(r, at, "sort: cannot compare %s with %s", jv_type_name(it[made].key), jv_type_name(it[0].key));
            made++;
            goto done;
        }
    }
    qsort(it, n, sizeof *it, sort_cmp);
    out = jv_list();
    for (size_t i = 0; out && i < n; i++)
        if (jv_list_push(out, jv_ref(it[i].val))) {
            jv_unref(out);
            out = NULL;
        }
    if (!out) jb_nomem(r, at);
done:
    for (size_t i = 0; i < made; i++) jv_unref(it[i].key);
    free(it);
    return out;
}

/* jinja2's indent(width=4, first=False, blank=False): s + "\n", split into
 * lines, lines after the first indented unless blank (or blank=True). */
static Jv *indent(JRender *r, const JNode *at, Jv *v, Jv **args, char **kw, int nargs)
{
    Jv *w = jb_arg(args, kw, nargs, 0, "width"), *first = jb_arg(args, kw, nargs, 1, "first");
    Jv *blank = jb_arg(args, kw, nargs, 2, "blank");
    char spaces[257];
    const char *ind = spaces;
    size_t il;
    if (w && w->type == JV_STR) {
        ind = w->u.s.p;
        il = w->u.s.n;
    } else if (!w || w->type == JV_INT || w->type == JV_BOOL) {
        long long k = !w ? 4 : w->type == JV_INT ? w->u.i : w->u.b;
        if (k > 256) {
            jr_err(r, at, "indent: width %lld is over the limit of 256", k);
            return NULL;
        }
        il = k < 0 ? 0 : (size_t)k;
        memset(spaces, ' ', il);
    } else {
        jr_err(r, at, "indent: width must be an integer or a string, not %s", jv_type_name(w));
        return NULL;
    }
    Jv *s = jb_str_of(v);
    if (!s) return jb_nomem(r, at);
    JBuf b = {0};
    b.max = jr_room(r);
    const char *p = s->u.s.p, *end = p + s->u.s.n;
    int all = blank && jv_truthy(blank);
    if (first && jv_truthy(first)) jbuf_put(&b, ind, il);
    for (int line = 0; p < end || line == 0; line++) {
        const char *q = p;
        size_t br = 0;
        while (q < end && !(br = jb_line_break(q, end))) q++;
        if (line) {
            jbuf_putc(&b, '\n');
            if (q > p || all) jbuf_put(&b, ind, il);
        }
        jbuf_put(&b, p, (size_t)(q - p));
        p = q + br;
        if (q >= end) break;
    }
    int safe = s->u.s.safe;
    jv_unref(s);
    if (b.nomem || b.over) return jr_buf_fail(r, at, &b);
    Jv *res = b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
    if (res) res->u.s.safe = safe;
    return res ? res : jb_nomem(r, at);
}

/* jinja2's round(value, precision=0, method='common'|'ceil'|'floor'). */
static Jv *round_filter(JRender *r, const JNode *at, Jv *v, Jv **args, char **kw, int nargs)
{
    Jv *pr = jb_arg(args, kw, nargs, 0, "precision"), *m = jb_arg(args, kw, nargs, 1, "method");
    long long p = pr && pr->type == JV_INT ? pr->u.i : 0;
    if (!jv_is_number(v)) {
        jr_err(r, at, "round: expected a number, got %s", jv_type_name(v));
        return NULL;
    }
    if (p < -300 || p > 300) p = p < 0 ? -300 : 300;
    const char *meth = m && m->type == JV_STR ? m->u.s.p : "common";
    double x = jv_num(v), f = pow(10, (double)p);
    if (!strcmp(meth, "ceil")) return jv_float(ceil(x * f) / f);
    if (!strcmp(meth, "floor")) return jv_float(floor(x * f) / f);
    if (strcmp(meth, "common")) {
        jr_err(r, at, "round: method must be common, ceil or floor");
        return NULL;
    }
    if (v->type != JV_FLOAT) return v->type == JV_INT ? jv_ref(v) : jv_int(v->u.b); /* round(int, n) is the int */
    if (!isfinite(x) || p < 0) return jv_float(p < 0 ? nearbyint(x * f) / f : x);
    char buf[400];
    snprintf(buf, sizeof buf, "%.*f", (int)p, x); /* correctly rounded, ties to even as Python */
    return jv_float(strtod(buf, NULL));
}

/* HF's tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False). */
static Jv *tojson(JRender *r, const JNode *at, Jv *v, Jv **args, char **kw, int nargs)
{
    Jv *ea = jb_arg(args, kw, nargs, 0, "ensure_ascii"), *ind = jb_arg(args, kw, nargs, 1, "indent");
    Jv *sep = jb_arg(args, kw, nargs, 2, "separators"), *sk = jb_arg(args, kw, nargs, 3, "sort_keys");
    JsonOpts o = {0};
    char spaces[65];
    o.ensure_ascii = ea && jv_truthy(ea);
    o.sort_keys = sk && jv_truthy(sk);
    if (ind && (ind->type == JV_INT || ind->type == JV_BOOL)) {
        long long k = ind->type == JV_INT ? ind->u.i : ind->u.b;
        k = k < 0 ? 0 : k > 64 ? 64 : k; /* json.dumps clamps nothing; 64 spaces is plenty */
        memset(spaces, ' ', (size_t)k);
        spaces[k] = 0;
        o.indent = spaces;
    } else if (ind && ind->type == JV_STR) {
        o.indent = ind->u.s.p;
    } else if (ind && ind->type != JV_NONE) {
        jr_err(r, at, "tojson: indent must be an integer, a string or none, not %s", jv_type_name(ind));
        return NULL;
    }
    if (sep && sep->type != JV_NONE) {
        if (sep->type != JV_LIST || sep->u.l.n != 2 || sep->u.l.v[0]->type != JV_STR || sep->u.l.v[1]->type != JV_STR) {
            jr_err(r, at, "tojson: separators must be a pair of strings (item, key)");
            return NULL;
        }
        o.item_sep = sep->u.l.v[0]->u.s.p;
        o.key_sep = sep->u.l.v[1]->u.s.p;
    }
    JBuf b = {0};
    b.max = r->out.max;
    Err e;
    if (jv_write_json(&b, v, &o, &e)) {
        free(b.p);
        jr_err(r, at, "%s", e.msg);
        return NULL;
    }
    return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
}

Jv *jinja_apply_filter(JRender *r, const JNode *at, const char *name, Jv *v, Jv **args, char **kw, int nargs)
{
    Jv *a0 = jb_arg(args, kw, nargs, 0, NULL), *res = NULL;
    if (!strcmp(name, "safe") || !strcmp(name, "escape") || !strcmp(name, "e") || !strcmp(name, "forceescape")) {
        /* Markup(v), escape(v): a string marked safe (see arith in jinja_eval.c) */
        if (v->type == JV_STR && v->u.s.safe && name[0] != 'f') return jv_ref(v);
        JBuf b = {0};
        b.max = r->out.max;
        if (name[0] == 's') jv_write_str(&b, v);
        else if (v->type == JV_STR) jv_write_escaped(&b, v->u.s.p, v->u.s.n);
        else {
            Jv *t = jb_str_of(v);
            if (t) jv_write_escaped(&b, t->u.s.p, t->u.s.n);
            else b.nomem = 1;
            jv_unref(t);
        }
        res = b.nomem || b.over ? NULL : b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
        if (!res) {
            free(b.p);
            return jb_nomem(r, at);
        }
        res->u.s.safe = 1;
        return res;
    }
    if (!strcmp(name, "indent")) return indent(r, at, v, args, kw, nargs);
    if (!strcmp(name, "sum")) {
        Jv *attr = jb_arg(args, kw, nargs, 0, "attribute"), *start = jb_arg(args, kw, nargs, 1, "start");
        Jv *l = as_list(r, at, v);
        if (!l) return NULL;
        long long si = 0;
        double sf = 0;
        int is_f = 0, ovf = 0;
        if (start && !jv_is_number(start)) ovf = 2;
        else if (start) {
            is_f = start->type == JV_FLOAT;
            sf = jv_num(start);
            si = start->type == JV_INT ? start->u.i : start->type == JV_BOOL ? start->u.b : 0;
        }
        for (size_t i = 0; i < l->u.l.n && !ovf; i++) {
            Jv *x = attr && attr->type == JV_STR ? attr_path(l->u.l.v[i], attr->u.s.p) : l->u.l.v[i];
            if (!jv_is_number(x)) ovf = 2;
            else if (x->type == JV_FLOAT || is_f) {
                sf = (is_f ? sf : (double)si) + jv_num(x);
                is_f = 1;
            } else if (__builtin_add_overflow(si, x->type == JV_INT ? x->u.i : x->u.b, &si)) ovf = 1;
        }
        jv_unref(l);
        if (ovf) {
            jr_err(r, at, ovf == 1 ? "sum: integer overflow" : "sum: unsupported operand type (numbers only)");
            return NULL;
        }
        return is_f ? jv_float(sf) : jv_int(si);
    }
    if (!strcmp(name, "batch") || !strcmp(name, "slice")) {
        /* batch(n, fill_with): rows of n items; slice(n, fill_with): n columns of near-equal length */
        Jv *cnt = jb_arg(args, kw, nargs, 0, name[0] == 'b' ? "linecount" : "slices"), *fill = jb_arg(args, kw, nargs, 1, "fill_with");
        if (fill && fill->type == JV_NONE) fill = NULL;
        if (!cnt || cnt->type != JV_INT || cnt->u.i <= 0 || cnt->u.i > 1000000) {
            jr_err(r, at, "%s: expected a positive count", name);
            return NULL;
        }
        Jv *l = as_list(r, at, v);
        if (!l) return NULL;
        size_t n = l->u.l.n, k = (size_t)cnt->u.i;
        res = jv_list();
        if (name[0] == 'b') {
            for (size_t i = 0; res && i < n; i += k) {
                Jv *row = jv_list();
                for (size_t j = i; row && j < i + k && (j < n || fill); j++)
                    if (jv_list_push(row, jv_ref(j < n ? l->u.l.v[j] : fill))) row = NULL;
                if (jv_list_push(res, row)) {
                    jv_unref(res);
                    res = NULL;
                }
            }
        } else {
            size_t per = n / k, extra = n % k, off = 0;
            for (size_t s = 0; res && s < k; s++) {
                size_t len = per + (s < extra);
                Jv *col = jv_list();
                for (size_t j = 0; col && j < len; j++)
                    if (jv_list_push(col, jv_ref(l->u.l.v[off + j]))) col = NULL;
                if (col && fill && s >= extra && jv_list_push(col, jv_ref(fill))) col = NULL;
                off += len;
                if (jv_list_push(res, col)) {
                    jv_unref(res);
                    res = NULL;
                }
            }
        }
        jv_unref(l);
        if (!res) return jb_nomem(r, at);
        res->u.l.gen = 1;
        return res;
    }
    if (!strcmp(name, "round")) return round_filter(r, at, v, args, kw, nargs);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        Jv *def = a0 ? a0 : jb_arg(args, kw, nargs, 0, "default_value");
        Jv *boolean = jb_arg(args, kw, nargs, 1, "boolean");
        int use = v->type == JV_UNDEF || (boolean && jv_truthy(boolean) && !jv_truthy(v));
        return use ? (def ? jv_ref(def) : jv_str("", 0)) : jv_ref(v);
    }
    if (!strcmp(name, "tojson")) return tojson(r, at, v, args, kw, nargs);
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        switch (v->type) {
        case JV_STR: return jv_int((long long)jb_cp_count(v));
        case JV_LIST:
            if (v->u.l.gen) break;
            return jv_int((long long)v->u.l.n);
        case JV_DICT:
        case JV_NS: return jv_int((long long)v->u.d.n);
        case JV_UNDEF: return jv_int(0);
        default: break;
        }
        jr_err(r, at, "object of type '%s' has no len()", v->type == JV_LIST ? "generator" : jv_type_name(v));
        return NULL;
    }
    if (!strcmp(name, "list") && v->type == JV_LIST && v->u.l.gen) {
        res = jv_list();
        for (size_t i = 0; res && i < v->u.l.n; i++)
            if (jv_list_push(res, jv_ref(v->u.l.v[i]))) {
                jv_unref(res);
                res = NULL;
            }
        return res ? res : jb_nomem(r, at);
    }
    if (!strcmp(name, "string")) return jb_str_of(v);
    if (!strcmp(name, "list")) return as_list(r, at, v);
    if (!strcmp(name, "items")) {
        if (v->type == JV_UNDEF) return jv_list();
        if (v->type != JV_DICT) {
            jr_err(r, at, "items: expected a dict, got %s", jv_type_name(v));
            return NULL;
        }
        if (!(res = jb_items(v))) return jb_nomem(r, at);
        res->u.l.gen = 1;
        return res;
    }
    if (!strcmp(name, "int") || !strcmp(name, "float")) {
        int is_int = name[0] == 'i';
        Jv *def = a0 ? a0 : jb_arg(args, kw, nargs, 0, "default");
        double f;
        if (v->type == JV_INT || v->type == JV_BOOL) f = (double)(v->type == JV_INT ? v->u.i : v->u.b);
        else if (v->type == JV_FLOAT) f = v->u.f;
        else if (v->type == JV_STR) {
            char *end;
            f = strtod(v->u.s.p, &end);
            while (*end == ' ' || *end == '\n' || *end == '\t') end++;
            if (end == v->u.s.p || *end) return def ? jv_ref(def) : is_int ? jv_int(0) : jv_float(0);
            if (is_int) {
                long long i = strtoll(v->u.s.p, &end, 10);
                while (*end == ' ' || *end == '\n' || *end == '\t') end++;
                if (!*end) return jv_int(i);
            }
        } else return def ? jv_ref(def) : is_int ? jv_int(0) : jv_float(0);
        if (is_int) return v->type == JV_INT ? jv_ref(v) : fabs(f) < 9.2e18 ? jv_int((long long)f) : jv_int(0);
        return jv_float(f);
    }
    if (!strcmp(name, "abs")) {
        if (v->type == JV_INT && v->u.i != LLONG_MIN) return jv_int(v->u.i < 0 ? -v->u.i : v->u.i);
        if (v->type == JV_FLOAT) return jv_float(fabs(v->u.f));
        jr_err(r, at, "abs: expected a number, got %s", jv_type_name(v));
        return NULL;
    }
    if (!strcmp(name, "join")) {
        Jv *sep = a0 ? a0 : jb_arg(args, kw, nargs, 0, "d"), *attr = jb_arg(args, kw, nargs, 1, "attribute");
        Jv *l = as_list(r, at, v);
        if (!l) return NULL;
        JBuf b = {0};
        b.max = jr_room(r); /* a long list joined with a long separator: refused before it is made */
        for (size_t i = 0; i < l->u.l.n; i++) {
            if (i && sep) jv_write_str(&b, sep);
            jv_write_str(&b, attr && attr->type == JV_STR ? attr_path(l->u.l.v[i], attr->u.s.p) : l->u.l.v[i]);
        }
        jv_unref(l);
        if (b.over || b.nomem) return jr_buf_fail(r, at, &b);
        return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last") || !strcmp(name, "reverse") || !strcmp(name, "unique") ||
        !strcmp(name, "max") || !strcmp(name, "min")) {
        if (!strcmp(name, "reverse") && v->type == JV_STR) {
            Jv *l = as_list(r, at, v);
            JBuf b = {0};
            for (size_t i = l ? l->u.l.n : 0; i-- > 0;) jv_write_str(&b, l->u.l.v[i]);
            jv_unref(l);
            return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
        }
        Jv *l = as_list(r, at, v);
        if (!l) return NULL;
        size_t n = l->u.l.n;
        if (name[0] == 'f') res = n ? jv_ref(l->u.l.v[0]) : jv_undef();
        else if (name[0] == 'l' && l->u.l.gen) {
            jv_unref(l);
            jr_err(r, at, "last: 'generator' object is not reversible");
            return NULL;
        } else if (name[0] == 'l') res = n ? jv_ref(l->u.l.v[n - 1]) : jv_undef();
        else if (name[0] == 'r') {
            res = jv_list();
            for (size_t i = n; res && i-- > 0;) jv_list_push(res, jv_ref(l->u.l.v[i]));
            if (res) res->u.l.gen = 1; /* reversed(): an iterator */
        } else {
            /* unique/max/min(case_sensitive=False, attribute=None): keys as sort's */
            Jv *cs = jb_arg(args, kw, nargs, 0, "case_sensitive"), *attr = jb_arg(args, kw, nargs, 1, "attribute");
            const char *ap = attr && attr->type == JV_STR ? attr->u.s.p : NULL;
            int icase = !(cs && jv_truthy(cs));
            Jv **keys = calloc(n ? n : 1, sizeof *keys);
            Jv *ukeys = name[0] == 'u' ? jv_list() : NULL;
            size_t best = 0;
            int bad = !keys || (name[0] == 'u' && !ukeys);
            res = name[0] == 'u' ? jv_list() : NULL;
            if (name[0] == 'u' && n > 1 && (r->steps += (long long)(n / 16 + 1) * (long long)n) > r->t->lim.max_steps) {
                bad = 3; /* each item is compared with those kept: n^2 work */
                jr_err(r, at, "evaluation step limit (%lld) exceeded", r->t->lim.max_steps);
            }
            for (size_t i = 0; i < n && !bad; i++) {
                int c;
                if (!(keys[i] = sort_key(l->u.l.v[i], ap, -1, icase))) bad = 1;
                else if (name[0] == 'u') {
                    int seen = 0;
                    for (size_t j = 0; j < ukeys->u.l.n && !seen; j++) seen = jv_equal(ukeys->u.l.v[j], keys[i]);
                    if (!seen && (jv_list_push(ukeys, jv_ref(keys[i])) || jv_list_push(res, jv_ref(l->u.l.v[i])))) bad = 1;
                } else if (i && jv_compare(keys[i], keys[best], &c)) {
                    bad = 2;
                } else if (i && (name[1] == 'a' ? c > 0 : c < 0)) {
                    best = i;
                }
            }
            for (size_t i = 0; keys && i < n; i++) jv_unref(keys[i]);
            free(keys);
            jv_unref(ukeys);
            if (bad) {
                jv_unref(res);
                jv_unref(l);
                if (bad == 2) jr_err(r, at, "%s: items cannot be compared", name);
                else if (bad == 1) jb_nomem(r, at);
                return NULL;
            }
            if (name[0] == 'u') {
                if (res) res->u.l.gen = 1;
            } else {
                res = n ? jv_ref(l->u.l.v[best]) : jv_undef();
            }
        }
        jv_unref(l);
        return res ? res : jb_nomem(r, at);
    }
    if (!strcmp(name, "sort") || !strcmp(name, "dictsort")) {
        /* sort(reverse, case_sensitive, attribute), dictsort(case_sensitive, by, reverse) */
        int is_sort = name[0] == 's';
        Jv *rev = jb_arg(args, kw, nargs, is_sort ? 0 : 2, "reverse");
        Jv *cs = jb_arg(args, kw, nargs, is_sort ? 1 : 0, "case_sensitive");
        Jv *attr = is_sort ? jb_arg(args, kw, nargs, 2, "attribute") : NULL;
        Jv *by = is_sort ? NULL : jb_arg(args, kw, nargs, 1, "by");
        int which = is_sort ? -1 : by && by->type == JV_STR && !strcmp(by->u.s.p, "value") ? 1 : 0;
        Jv *l = name[0] == 's' ? as_list(r, at, v) : v->type == JV_DICT ? jb_items(v) : NULL;
        if (!l) {
            if (name[0] == 'd') jr_err(r, at, "dictsort: expected a dict, got %s", jv_type_name(v));
            return NULL;
        }
        res = sort_items(r, at, l, attr && attr->type == JV_STR ? attr->u.s.p : NULL, rev && jv_truthy(rev), which,
                         !(cs && jv_truthy(cs)));
        jv_unref(l);
        return res;
    }
    if (!strcmp(name, "map") || !strcmp(name, "selectattr") || !strcmp(name, "rejectattr") ||
        !strcmp(name, "select") || !strcmp(name, "reject")) {
        /* jinja2 iterates only a truthy value: none and undefined give nothing */
        Jv *l = jv_truthy(v) ? as_list(r, at, v) : jv_list();
        if (!l) return NULL;
        res = jv_list();
        Jv *attr = name[0] == 'm' ? jb_arg(args, kw, nargs, 1 << 30, "attribute") : NULL;
        Jv *mdef = name[0] == 'm' ? jb_arg(args, kw, nargs, 1 << 30, "default") : NULL;
        int is_attr = !strcmp(name, "selectattr") || !strcmp(name, "rejectattr");
        int reject = name[0] == 'r';
        Jv *first = jb_arg(args, kw, nargs, 0, NULL);
        for (size_t i = 0; res && i < l->u.l.n; i++) {
            Jv *item = l->u.l.v[i];
            if (name[0] == 'm') {
                if (attr && attr->type == JV_STR) {
                    Jv *x = attr_path(item, attr->u.s.p);
                    jv_list_push(res, jv_ref(x->type == JV_UNDEF && mdef ? mdef : x));
                } else if (first && first->type == JV_STR && jinja_filter_known(first->u.s.p)) {
                    Jv *x = jinja_apply_filter(r, at, first->u.s.p, item, args + 1, kw ? kw + 1 : NULL, nargs - 1);
                    if (!x) {
                        jv_unref(res);
                        res = NULL;
                        break;
                    }
                    jv_list_push(res, x);
                } else {
                    jv_unref(res);
                    jv_unref(l);
                    jr_err(r, at, "map: expected attribute= or a filter name");
                    return NULL;
                }
                continue;
            }
            Jv *subject = item;
            int ti = 0; /* index of the test name among the positional args */
            if (is_attr) {
                if (!first || first->type != JV_STR) {
                    jv_unref(res);
                    jv_unref(l);
                    jr_err(r, at, "%s: expected an attribute name", name);
                    return NULL;
                }
                subject = attr_path(item, first->u.s.p);
                ti = 1;
            }
            Jv *test = jb_arg(args, kw, nargs, ti, NULL);
            int ok;
            if (!test) ok = jv_truthy(subject);
            else if (test->type != JV_STR || !jinja_test_known(test->u.s.p)) {
                jv_unref(res);
                jv_unref(l);
                jr_err(r, at, "%s: unknown test", name);
                return NULL;
            } else {
                Jv *targ = jb_arg(args, kw, nargs, ti + 1, NULL);
                if (jinja_apply_test(r, at, test->u.s.p, subject, &targ, targ ? 1 : 0, &ok)) {
                    jv_unref(res);
                    jv_unref(l);
                    return NULL;
                }
            }
            if (ok != reject) jv_list_push(res, jv_ref(item));
        }
        jv_unref(l);
        if (res) res->u.l.gen = 1;
        return res ? res : r->raised ? NULL : jb_nomem(r, at);
    }
    /* string filters */
    Jv *s = jb_str_of(v);
    if (!s) return jb_nomem(r, at);
    if (!strcmp(name, "trim")) res = jb_strip(s, a0 ? a0 : jb_arg(args, kw, nargs, 0, "chars"), 3);
    else if (!strcmp(name, "upper")) res = jb_recase(s, 1);
    else if (!strcmp(name, "lower")) res = jb_recase(s, 0);
    else if (!strcmp(name, "capitalize")) res = jb_recase(s, 2);
    else if (!strcmp(name, "title")) res = jb_recase(s, 3);
    else if (!strcmp(name, "wordcount")) {
        long long words = 0;
        int in = 0;
        for (size_t i = 0; i < s->u.s.n;) {
            utf8proc_int32_t c;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s->u.s.p + i, (utf8proc_ssize_t)(s->u.s.n - i), &c);
            if (k <= 0) {
                c = 0;
                k = 1;
            }
            i += (size_t)k;
            utf8proc_category_t cat = utf8proc_category(c);
            int w = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                    (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) || cat == UTF8PROC_CATEGORY_MN ||
                    cat == UTF8PROC_CATEGORY_MC;
            words += w && !in;
            in = w;
        }
        jv_unref(s);
        return jv_int(words);
    } else if (!strcmp(name, "center")) {
        Jv *w = jb_arg(args, kw, nargs, 0, "width");
        long long width = w && w->type == JV_INT ? w->u.i : 80, len = (long long)jb_cp_count(s);
        if (width > 1 << 20) {
            jv_unref(s);
            jr_err(r, at, "center: width %lld is over the limit of %d", width, 1 << 20);
            return NULL;
        }
        if (width <= len) return s;
        long long marg = width - len, left = marg / 2 + (marg & width & 1);
        JBuf b = {0};
        for (long long i = 0; i < left; i++) jbuf_putc(&b, ' ');
        jbuf_put(&b, s->u.s.p, s->u.s.n);
        for (long long i = 0; i < marg - left; i++) jbuf_putc(&b, ' ');
        res = b.nomem ? NULL : jv_str_take(b.p, b.n);
        if (!res) free(b.p);
    } else if (!strcmp(name, "format")) {
        Jv *l = jv_list();
        for (int i = 0; l && i < nargs; i++)
            if (!(kw && kw[i]) && jv_list_push(l, jv_ref(args[i]))) l = NULL;
        Jv *fa[1] = {l};
        res = l ? jinja_call_method(r, at, s, "__mod__", fa, NULL, 1) : NULL;
        jv_unref(l);
        jv_unref(s);
        return res ? res : r->raised ? NULL : jb_nomem(r, at);
    } else if (!strcmp(name, "replace")) {
        Jv *a1 = jb_arg(args, kw, nargs, 1, "new");
        if (!a0 || !a1) {
            jv_unref(s);
            jr_err(r, at, "replace: expected old and new strings");
            return NULL;
        }
        Jv *o = jb_str_of(a0), *nw = jb_str_of(a1), *cnt = jb_arg(args, kw, nargs, 2, "count");
        int over = 0;
        if (o && nw) res = jb_replace(s, o, nw, cnt && cnt->type == JV_INT ? cnt->u.i : -1, jr_room(r), &over);
        if (!res && over) {
            jv_unref(o);
            jv_unref(nw);
            jv_unref(s);
            JBuf fb = {.over = 1};
            return jr_buf_fail(r, at, &fb);
        }
        jv_unref(o);
        jv_unref(nw);
    } else {
        jv_unref(s);
        jr_err(r, at, "filter \"%s\" is not implemented", name);
        return NULL;
    }
    /* Markup's str methods return Markup (replace is str(s).replace when autoescape is off) */
    if (res && s->u.s.safe && strcmp(name, "replace")) res->u.s.safe = 1;
    jv_unref(s);
    return res ? res : jb_nomem(r, at);
}
