/* jinja_filter.c - the filters (value|name(args)) of Jinja 3.1 that chat
 * templates use, with HF's tojson. Names are checked at parse time against
 * the list in jinja_builtin.c, so every name there has a case here. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static Jv *sort_items(JRender *r, const JNode *at, Jv *l, const char *attr, int rev, int pairs_by_key)
{
    size_t n = l->u.l.n;
    SortItem *it = calloc(n ? n : 1, sizeof *it);
    if (!it) return jb_nomem(r, at);
    for (size_t i = 0; i < n; i++) {
        Jv *v = l->u.l.v[i];
        it[i].val = v;
        it[i].key = pairs_by_key ? v->u.l.v[0] : attr ? attr_path(v, attr) : v;
        it[i].idx = i;
        it[i].rev = rev;
        for (size_t j = 0; j < i; j++) {
            int c;
            if (jv_compare(it[i].key, it[j].key, &c)) {
                jr_err(r, at, "sort: cannot compare %s with %s", jv_type_name(it[i].key), jv_type_name(it[j].key));
                free(it);
                return NULL;
            }
            break;
        }
    }
    qsort(it, n, sizeof *it, sort_cmp);
    Jv *out = jv_list();
    for (size_t i = 0; out && i < n; i++)
        if (jv_list_push(out, jv_ref(it[i].val))) out = NULL;
    free(it);
    return out ? out : jb_nomem(r, at);
}

Jv *jinja_apply_filter(JRender *r, const JNode *at, const char *name, Jv *v, Jv **args, char **kw, int nargs)
{
    Jv *a0 = jb_arg(args, kw, nargs, 0, NULL), *res = NULL;
    if (!strcmp(name, "safe")) return jv_ref(v);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        Jv *def = a0 ? a0 : jb_arg(args, kw, nargs, 0, "default_value");
        Jv *boolean = jb_arg(args, kw, nargs, 1, "boolean");
        int use = v->type == JV_UNDEF || (boolean && jv_truthy(boolean) && !jv_truthy(v));
        return use ? (def ? jv_ref(def) : jv_str("", 0)) : jv_ref(v);
    }
    if (!strcmp(name, "tojson")) {
        Jv *ind = jb_arg(args, kw, nargs, 1, "indent"), *sk = jb_arg(args, kw, nargs, 3, "sort_keys");
        Jv *ea = jb_arg(args, kw, nargs, 0, "ensure_ascii"), *sep = jb_arg(args, kw, nargs, 2, "separators");
        if ((ea && jv_truthy(ea)) || (sep && sep->type != JV_NONE)) {
            jr_err(r, at, "tojson: ensure_ascii and separators are not supported");
            return NULL;
        }
        if (ind && ind->type != JV_INT && ind->type != JV_NONE) {
            jr_err(r, at, "tojson: indent must be an integer");
            return NULL;
        }
        JBuf b = {0};
        b.max = r->out.max;
        Err e;
        if (jv_write_json(&b, v, ind && ind->type == JV_INT ? (int)(ind->u.i < 0 ? 0 : ind->u.i > 64 ? 64 : ind->u.i) : -1,
                          sk && jv_truthy(sk), &e)) {
            free(b.p);
            jr_err(r, at, "%s", e.msg);
            return NULL;
        }
        return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        switch (v->type) {
        case JV_STR: return jv_int((long long)jb_cp_count(v));
        case JV_LIST: return jv_int((long long)v->u.l.n);
        case JV_DICT:
        case JV_NS: return jv_int((long long)v->u.d.n);
        case JV_UNDEF: return jv_int(0);
        default: jr_err(r, at, "object of type %s has no length", jv_type_name(v)); return NULL;
        }
    }
    if (!strcmp(name, "string")) return jb_str_of(v);
    if (!strcmp(name, "list")) return as_list(r, at, v);
    if (!strcmp(name, "items")) {
        if (v->type == JV_UNDEF) return jv_list();
        if (v->type != JV_DICT) {
            jr_err(r, at, "items: expected a dict, got %s", jv_type_name(v));
            return NULL;
        }
        return (res = jb_items(v)) ? res : jb_nomem(r, at);
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
        for (size_t i = 0; i < l->u.l.n; i++) {
            if (i && sep) jv_write_str(&b, sep);
            jv_write_str(&b, attr && attr->type == JV_STR ? attr_path(l->u.l.v[i], attr->u.s.p) : l->u.l.v[i]);
        }
        jv_unref(l);
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
        else if (name[0] == 'l') res = n ? jv_ref(l->u.l.v[n - 1]) : jv_undef();
        else if (name[0] == 'r') {
            res = jv_list();
            for (size_t i = n; res && i-- > 0;) jv_list_push(res, jv_ref(l->u.l.v[i]));
        } else if (name[0] == 'u') {
            res = jv_list();
            for (size_t i = 0; res && i < n; i++) {
                int seen = 0;
                for (size_t j = 0; j < res->u.l.n && !seen; j++) seen = jv_equal(res->u.l.v[j], l->u.l.v[i]);
                if (!seen) jv_list_push(res, jv_ref(l->u.l.v[i]));
            }
        } else {
            Jv *best = NULL;
            for (size_t i = 0; i < n; i++) {
                int c;
                if (!best) best = l->u.l.v[i];
                else if (jv_compare(l->u.l.v[i], best, &c)) {
                    jv_unref(l);
                    jr_err(r, at, "%s: items cannot be compared", name);
                    return NULL;
                } else if (name[1] == 'a' ? c > 0 : c < 0) best = l->u.l.v[i];
            }
            res = best ? jv_ref(best) : jv_undef();
        }
        jv_unref(l);
        return res ? res : jb_nomem(r, at);
    }
    if (!strcmp(name, "sort") || !strcmp(name, "dictsort")) {
        Jv *rev = jb_arg(args, kw, nargs, name[0] == 's' ? 0 : 2, "reverse");
        Jv *attr = jb_arg(args, kw, nargs, 2, "attribute");
        Jv *l = name[0] == 's' ? as_list(r, at, v) : v->type == JV_DICT ? jb_items(v) : NULL;
        if (!l) {
            if (name[0] == 'd') jr_err(r, at, "dictsort: expected a dict, got %s", jv_type_name(v));
            return NULL;
        }
        res = sort_items(r, at, l, attr && attr->type == JV_STR ? attr->u.s.p : NULL, rev && jv_truthy(rev), name[0] == 'd');
        jv_unref(l);
        return res;
    }
    if (!strcmp(name, "map") || !strcmp(name, "selectattr") || !strcmp(name, "rejectattr") ||
        !strcmp(name, "select") || !strcmp(name, "reject")) {
        Jv *l = as_list(r, at, v);
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
    else if (!strcmp(name, "replace")) {
        Jv *a1 = jb_arg(args, kw, nargs, 1, "new");
        if (!a0 || !a1) {
            jv_unref(s);
            jr_err(r, at, "replace: expected old and new strings");
            return NULL;
        }
        Jv *o = jb_str_of(a0), *nw = jb_str_of(a1), *cnt = jb_arg(args, kw, nargs, 2, "count");
        if (o && nw) res = jb_replace(s, o, nw, cnt && cnt->type == JV_INT ? cnt->u.i : -1);
        jv_unref(o);
        jv_unref(nw);
    } else {
        jv_unref(s);
        jr_err(r, at, "filter \"%s\" is not implemented", name);
        return NULL;
    }
    jv_unref(s);
    return res ? res : jb_nomem(r, at);
}
