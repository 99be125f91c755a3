/* jinja_builtin.c - filters, tests, global functions (namespace, range,
 * raise_exception, strftime_now) and the string/dict methods templates call.
 * Semantics follow Jinja 3.1 and Python 3 (str.split, str.strip, ...); the
 * tojson filter is HF's: json.dumps(ensure_ascii=False). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "text/jinja_int.h"

static const char *const filters[] = {
    "tojson", "length", "count", "trim", "upper", "lower", "title", "capitalize", "default", "d", "join",
    "first", "last", "list", "string", "int", "float", "items", "selectattr", "rejectattr", "map", "replace",
    "safe", "abs", "reverse", "unique", "sort", "max", "min", "select", "reject", "dictsort", "escape", "e",
    "forceescape", "indent", "round", "format", "sum", "center", "wordcount", "batch", "slice", NULL};

static const char *const tests[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
    "boolean", "true", "false", "callable", "eq", "equalto", "ne", "lt", "gt", "le", "ge", "in", "odd", "even",
    "divisibleby", "sameas", "lower", "upper", "filter", "test", "escaped", NULL};

static int in_names(const char *s, const char *const *l)
{
    for (; *l; l++)
        if (!strcmp(s, *l)) return 1;
    return 0;
}

int jinja_filter_known(const char *name) { return in_names(name, filters); }
int jinja_test_known(const char *name) { return in_names(name, tests); }

/* The pos-th positional argument, or the keyword argument `name`: borrowed or NULL. */
Jv *jb_arg(Jv **args, char **kw, int n, int pos, const char *name)
{
    int p = 0;
    for (int i = 0; i < n; i++) {
        if (kw && kw[i]) {
            if (name && !strcmp(kw[i], name)) return args[i];
        } else if (p++ == pos) {
            return args[i];
        }
    }
    return NULL;
}

Jv *jb_str_of(const Jv *v)
{
    if (v->type == JV_STR) return jv_ref((Jv *)v);
    JBuf b = {0};
    jv_write_str(&b, v);
    if (b.nomem) {
        free(b.p);
        return NULL;
    }
    return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
}

Jv *jb_nomem(JRender *r, const JNode *at)
{
    jr_err(r, at, "out of memory");
    return NULL;
}

/* ---- Unicode helpers ---- */

static utf8proc_int32_t next_cp(const char *s, size_t n, size_t *i)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + *i, (utf8proc_ssize_t)(n - *i), &c);
    if (k <= 0) {
        c = (unsigned char)s[*i];
        k = 1;
    }
    *i += (size_t)k;
    return c;
}

static void put_cp(JBuf *b, utf8proc_int32_t c)
{
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t k = utf8proc_encode_char(c, tmp);
    jbuf_put(b, (const char *)tmp, (size_t)k);
}

int jb_is_space(int c)
{
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           (c > 0x7f && utf8proc_category(c) == UTF8PROC_CATEGORY_ZS) || c == 0x2028 || c == 0x2029;
}

/* Length of the line break at p (str.splitlines' set), 0 if none. */
size_t jb_line_break(const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    if (c == '\r') return p + 1 < end && p[1] == '\n' ? 2 : 1;
    if (c == '\n' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e)) return 1;
    if (c == 0xC2 && p + 1 < end && (unsigned char)p[1] == 0x85) return 2;
    if (c == 0xE2 && p + 2 < end && (unsigned char)p[1] == 0x80 && ((unsigned char)p[2] == 0xA8 || (unsigned char)p[2] == 0xA9))
        return 3;
    return 0;
}

Jv *jb_recase(const Jv *s, int mode)
{
    JBuf b = {0};
    int first = 1, start = 1;
    for (size_t i = 0; i < s->u.s.n;) {
        utf8proc_int32_t c = next_cp(s->u.s.p, s->u.s.n, &i);
        int up = mode == 1 || (mode == 2 && first) || (mode == 3 && start);
        first = 0;
        start = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || jb_is_space(c);
        put_cp(&b, up ? utf8proc_toupper(c) : utf8proc_tolower(c));
    }
    if (b.nomem) {
        free(b.p);
        return NULL;
    }
    return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
}

static int cp_in(utf8proc_int32_t c, const Jv *chars)
{
    if (!chars || chars->type != JV_STR) return jb_is_space(c);
    for (size_t i = 0; i < chars->u.s.n;)
        if (next_cp(chars->u.s.p, chars->u.s.n, &i) == c) return 1;
    return 0;
}

/* Python str.strip/lstrip/rstrip: which bit 1 left, 2 right. */
Jv *jb_strip(const Jv *s, const Jv *chars, int which)
{
    size_t a = 0, e = s->u.s.n;
    if (which & 1)
        while (a < e) {
            size_t j = a;
            if (!cp_in(next_cp(s->u.s.p, e, &j), chars)) break;
            a = j;
        }
    if (which & 2)
        while (e > a) {
            size_t j = e - 1;
            while (j > a && ((unsigned char)s->u.s.p[j] & 0xC0) == 0x80) j--;
            size_t k = j;
            if (!cp_in(next_cp(s->u.s.p, e, &k), chars)) break;
            e = j;
        }
    return jv_str(s->u.s.p + a, e - a);
}

size_t jb_cp_count(const Jv *s)
{
    size_t c = 0;
    for (size_t i = 0; i < s->u.s.n; i++) c += ((unsigned char)s->u.s.p[i] & 0xC0) != 0x80;
    return c;
}

Jv *jb_replace(const Jv *s, const Jv *old, const Jv *new_, long long count, size_t max, int *over)
{
    JBuf b = {0};
    b.max = max;
    const char *p = s->u.s.p, *end = p + s->u.s.n;
    long long done = 0;
    if (old->u.s.n == 0) { /* Python inserts new between every character */
        for (size_t i = 0; i <= s->u.s.n;) {
            if (count < 0 || done < count) {
                jbuf_put(&b, new_->u.s.p, new_->u.s.n);
                done++;
            }
            if (i == s->u.s.n) break;
            size_t j = i;
            next_cp(p, s->u.s.n, &j);
            jbuf_put(&b, p + i, j - i);
            i = j;
        }
    } else {
        while (p <= end) {
            const char *hit = count >= 0 && done >= count ? NULL : memmem(p, (size_t)(end - p), old->u.s.p, old->u.s.n);
            if (!hit) {
                jbuf_put(&b, p, (size_t)(end - p));
                break;
            }
            jbuf_put(&b, p, (size_t)(hit - p));
            jbuf_put(&b, new_->u.s.p, new_->u.s.n);
            p = hit + old->u.s.n;
            done++;
        }
    }
    *over = b.over;
    if (b.nomem || b.over) {
        free(b.p);
        return NULL;
    }
    return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
}

/* Python str.split(sep=None, maxsplit=-1). */
Jv *jb_split(const Jv *s, const Jv *sep, long long maxsplit)
{
    Jv *l = jv_list();
    if (!l) return NULL;
    const char *p = s->u.s.p, *end = p + s->u.s.n;
    long long done = 0;
    if (!sep || sep->type == JV_NONE) {
        for (;;) {
            while (p < end && jb_is_space((unsigned char)*p)) p++;
            if (p >= end) break;
            const char *q = p;
            if (maxsplit >= 0 && done >= maxsplit) q = end;
            else
                while (q < end && !jb_is_space((unsigned char)*q)) q++;
            if (q == end && maxsplit >= 0 && done >= maxsplit) {
                /* the remainder keeps inner spaces but loses trailing ones */
                while (q > p && jb_is_space((unsigned char)q[-1])) q--;
            }
            if (jv_list_push(l, jv_str(p, (size_t)(q - p)))) goto fail;
            done++;
            p = q;
        }
        return l;
    }
    for (;;) {
        const char *hit = maxsplit >= 0 && done >= maxsplit ? NULL : memmem(p, (size_t)(end - p), sep->u.s.p, sep->u.s.n);
        if (!hit) {
            if (jv_list_push(l, jv_str(p, (size_t)(end - p)))) goto fail;
            return l;
        }
        if (jv_list_push(l, jv_str(p, (size_t)(hit - p)))) goto fail;
        p = hit + sep->u.s.n;
        done++;
    }
fail:
    jv_unref(l);
    return NULL;
}

Jv *jb_items(const Jv *d)
{
    Jv *l = jv_list();
    for (size_t i = 0; l && i < d->u.d.n; i++) {
        Jv *pair = jv_list();
        if (pair) pair->u.l.tuple = 1;
        if (!pair || jv_list_push(pair, jv_ref(d->u.d.k[i])) || jv_list_push(pair, jv_ref(d->u.d.v[i])) ||
            jv_list_push(l, pair)) {
            jv_unref(l);
            return NULL;
        }
    }
    return l;
}


/* ---- tests ---- */

static int all_cased(const Jv *s, int upper)
{
    int any = 0;
    for (size_t i = 0; i < s->u.s.n;) {
        utf8proc_int32_t c = next_cp(s->u.s.p, s->u.s.n, &i);
        if (utf8proc_toupper(c) != utf8proc_tolower(c)) {
            any = 1;
            if ((upper ? utf8proc_toupper(c) : utf8proc_tolower(c)) != c) return 0;
        }
    }
    return any;
}

int jinja_apply_test(JRender *r, const JNode *at, const char *name, const Jv *v, Jv **args, int nargs, int *res)
{
    const Jv *a = nargs > 0 ? args[0] : NULL;
    int cmp = 0;
    if (!strcmp(name, "defined")) *res = v->type != JV_UNDEF;
    else if (!strcmp(name, "undefined")) *res = v->type == JV_UNDEF;
    else if (!strcmp(name, "none")) *res = v->type == JV_NONE;
    else if (!strcmp(name, "string")) *res = v->type == JV_STR;
    else if (!strcmp(name, "number")) *res = jv_is_number(v);
    else if (!strcmp(name, "integer")) *res = v->type == JV_INT;
    else if (!strcmp(name, "float")) *res = v->type == JV_FLOAT;
    else if (!strcmp(name, "boolean")) *res = v->type == JV_BOOL;
    else if (!strcmp(name, "true")) *res = v->type == JV_BOOL && v->u.b;
    else if (!strcmp(name, "false")) *res = v->type == JV_BOOL && !v->u.b;
    else if (!strcmp(name, "mapping")) *res = v->type == JV_DICT;
    else if (!strcmp(name, "iterable")) *res = v->type == JV_LIST || v->type == JV_STR || v->type == JV_DICT || v->type == JV_UNDEF;
    else if (!strcmp(name, "sequence")) *res = v->type == JV_LIST || v->type == JV_STR || v->type == JV_DICT;
    else if (!strcmp(name, "callable")) *res = v->type == JV_FUNC;
    else if (!strcmp(name, "escaped")) *res = v->type == JV_STR && v->u.s.safe;
    else if (!strcmp(name, "filter") || !strcmp(name, "test"))
        *res = v->type == JV_STR && (name[0] == 'f' ? jinja_filter_known(v->u.s.p) : jinja_test_known(v->u.s.p));
    else if (!strcmp(name, "lower") || !strcmp(name, "upper")) *res = v->type == JV_STR && all_cased(v, name[0] == 'u');
    else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        /* Python's bool is an int */
        long long d = name[0] == 'd' ? (a && a->type == JV_INT ? a->u.i : a && a->type == JV_BOOL ? a->u.b : 0) : 2;
        if ((v->type != JV_INT && v->type != JV_BOOL) || d == 0) return jr_err(r, at, "test \"%s\" needs integers", name);
        long long x = v->type == JV_INT ? v->u.i : v->u.b, m = d == -1 ? 0 : x % d;
        *res = name[0] == 'o' ? m != 0 : m == 0;
    } else {
        if (!a) return jr_err(r, at, "test \"%s\" needs an argument", name);
        if (!strcmp(name, "eq") || !strcmp(name, "equalto")) *res = jv_equal(v, a);
        else if (!strcmp(name, "ne")) *res = !jv_equal(v, a);
        else if (!strcmp(name, "sameas")) *res = v == a || (v->type <= JV_BOOL && jv_equal(v, a) && v->type == a->type);
        else if (!strcmp(name, "in")) {
            *res = 0;
            if (a->type == JV_LIST)
                for (size_t i = 0; i < a->u.l.n && !*res; i++) *res = jv_equal(a->u.l.v[i], v);
            else if (a->type == JV_STR && v->type == JV_STR)
                *res = !v->u.s.n || memmem(a->u.s.p, a->u.s.n, v->u.s.p, v->u.s.n) != NULL;
            else if (a->type == JV_DICT)
                *res = jv_hashable(v) && jv_dict_getv(a, v) != NULL;
            else return jr_err(r, at, "test \"in\" needs a container");
        } else {
            if (jv_compare(v, a, &cmp)) return jr_err(r, at, "cannot compare %s with %s", jv_type_name(v), jv_type_name(a));
            *res = !strcmp(name, "lt") ? cmp < 0 : !strcmp(name, "le") ? cmp <= 0 : !strcmp(name, "gt") ? cmp > 0 : cmp >= 0;
        }
    }
    return 0;
}

/* ---- global functions ---- */

Jv *jinja_call_builtin(JRender *r, const JNode *at, int id, Jv **args, char **kw, int nargs)
{
    switch (id) {
    case FN_NAMESPACE:
    case FN_DICT: {
        Jv *d = id == FN_NAMESPACE ? jv_ns() : jv_dict();
        if (!d || (id == FN_NAMESPACE && jr_track_ns(r, d))) {
            jv_unref(d);
            return jb_nomem(r, at);
        }
        for (int i = 0; i < nargs; i++) {
            int rc = 0;
            if (kw && kw[i]) rc = jv_dict_set(d, kw[i], strlen(kw[i]), jv_ref(args[i]));
            else if (args[i]->type == JV_DICT)
                for (size_t k = 0; k < args[i]->u.d.n && !rc; k++)
                    rc = jv_dict_setv(d, jv_ref(args[i]->u.d.k[k]), jv_ref(args[i]->u.d.v[k]));
            else {
                jv_unref(d);
                jr_err(r, at, "%s() takes keyword arguments or a dict", id == FN_NAMESPACE ? "namespace" : "dict");
                return NULL;
            }
            if (rc) {
                jv_unref(d);
                return jb_nomem(r, at);
            }
        }
        return d;
    }
    case FN_RANGE: {
        long long v[3] = {0, 0, 1};
        if (nargs < 1 || nargs > 3) {
            jr_err(r, at, "range() takes 1 to 3 integer arguments");
            return NULL;
        }
        for (int i = 0; i < nargs; i++) {
            if (args[i]->type != JV_INT) {
                jr_err(r, at, "range() arguments must be integers, not %s", jv_type_name(args[i]));
                return NULL;
            }
        }
        if (nargs == 1) v[1] = args[0]->u.i;
        else {
            v[0] = args[0]->u.i;
            v[1] = args[1]->u.i;
            if (nargs == 3) v[2] = args[2]->u.i;
        }
        if (v[2] == 0) {
            jr_err(r, at, "range() step must not be zero");
            return NULL;
        }
        /* in double: the int64 differences may overflow */
        double span = v[2] > 0 ? ((double)v[1] - (double)v[0]) / (double)v[2] : ((double)v[0] - (double)v[1]) / -(double)v[2];
        if (span > 1000000) {
            jr_err(r, at, "range() of more than 1000000 items");
            return NULL;
        }
        long long count = span <= 0 ? 0 : (long long)ceil(span);
        if (count > 1000000) {
            jr_err(r, at, "range() of %lld items is over the limit of 1000000", count);
            return NULL;
        }
        Jv *l = jv_list();
        for (long long i = 0; l && i < count; i++)
            if (jv_list_push(l, jv_int(v[0] + i * v[2]))) {
                jv_unref(l);
                l = NULL;
            }
        return l ? l : jb_nomem(r, at);
    }
    case FN_RAISE: {
        Jv *m = nargs > 0 ? jb_str_of(args[0]) : jv_strz("raise_exception() called");
        if (!m) return jb_nomem(r, at);
        /* HF raises TemplateError(message): the message is the whole error */
        err_set(r->e, "%s", m->u.s.p);
        r->raised = 1;
        jv_unref(m);
        return NULL;
    }
    case FN_STRFTIME: {
        Jv *f = jb_arg(args, kw, nargs, 0, "format");
        if (!f || f->type != JV_STR) {
            jr_err(r, at, "strftime_now() takes a format string");
            return NULL;
        }
        char out[512];
        time_t now = r->t->fixed_time ? (time_t)r->t->now : time(NULL);
        struct tm tm;
        if (r->t->fixed_time) gmtime_r(&now, &tm);
        else localtime_r(&now, &tm);
        size_t n = strftime(out, sizeof out, f->u.s.p, &tm);
        return jv_str(out, n);
    }
    default: jr_err(r, at, "unknown function"); return NULL;
    }
}

/* ---- methods ---- */

static const char *const str_methods[] = {
    "startswith", "endswith", "split", "strip", "lstrip", "rstrip", "replace", "upper", "lower", "title",
    "capitalize", "format", "find", "count", "join", "isdigit", "isalpha", "isspace", "rfind", "index", "rindex",
    "rsplit", "splitlines", "removeprefix", "removesuffix", "casefold", "isupper", "islower", "isalnum", NULL};
static const char *const dict_methods[] = {"get", "items", "keys", "values", NULL};

int jinja_has_method(const Jv *obj, const char *name)
{
    if (obj->type == JV_STR) return in_names(name, str_methods);
    if (obj->type == JV_DICT) return in_names(name, dict_methods);
    return 0;
}

static int affix(const Jv *s, const Jv *a, int end)
{
    if (a->type != JV_STR) return 0;
    if (a->u.s.n > s->u.s.n) return 0;
    return !memcmp(s->u.s.p + (end ? s->u.s.n - a->u.s.n : 0), a->u.s.p, a->u.s.n);
}

/* str.format: {} {0} {name}; no format specs. */
static Jv *str_format(JRender *r, const JNode *at, const Jv *s, Jv **args, char **kw, int nargs)
{
    JBuf b = {0};
    b.max = jr_room(r); /* '{0}{0}...' repeats an argument */
    int auto_idx = 0;
    const char *p = s->u.s.p, *end = p + s->u.s.n;
    while (p < end) {
        if ((*p == '{' || *p == '}') && p + 1 < end && p[1] == *p) {
            jbuf_putc(&b, *p);
            p += 2;
            continue;
        }
        if (*p == '{') {
            const char *q = memchr(p, '}', (size_t)(end - p));
            if (!q) break;
            char field[64];
            size_t fl = (size_t)(q - p - 1);
            if (fl >= sizeof field || memchr(p + 1, ':', fl) || memchr(p + 1, '!', fl)) break;
            memcpy(field, p + 1, fl);
            field[fl] = 0;
            Jv *v = NULL;
            if (!fl) v = jb_arg(args, kw, nargs, auto_idx++, NULL);
            else if (field[0] >= '0' && field[0] <= '9') v = jb_arg(args, kw, nargs, atoi(field), NULL);
            else v = jb_arg(args, kw, nargs, 1 << 30, field);
            if (!v) {
                free(b.p);
                jr_err(r, at, "format(): no argument for field {%s}", field);
                return NULL;
            }
            jv_write_str(&b, v);
            p = q + 1;
            continue;
        }
        if (*p == '}') break;
        jbuf_putc(&b, *p++);
    }
    if (b.over || b.nomem) return jr_buf_fail(r, at, &b);
    if (p < end) {
        free(b.p);
        jr_err(r, at, "format(): unsupported or malformed format string");
        return NULL;
    }
    return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
}

/* printf-style "fmt" % args: %s %r %d %i %%. */
static Jv *str_mod(JRender *r, const JNode *at, const Jv *s, Jv *a)
{
    JBuf b = {0};
    size_t k = 0;
    const char *p = s->u.s.p, *end = p + s->u.s.n;
    for (; p < end; p++) {
        if (*p != '%') {
            jbuf_putc(&b, *p);
            continue;
        }
        if (++p >= end) break;
        if (*p == '%') {
            jbuf_putc(&b, '%');
            continue;
        }
        const Jv *v = a->type == JV_LIST ? (k < a->u.l.n ? a->u.l.v[k] : NULL) : (k == 0 ? a : NULL);
        k++;
        if (!v || !strchr("srdi", *p)) break;
        if (*p == 'r') jv_write_repr(&b, v);
        else if (*p == 's') jv_write_str(&b, v);
        else if (v->type == JV_INT || v->type == JV_BOOL || v->type == JV_FLOAT) {
            char num[32];
            snprintf(num, sizeof num, "%lld", v->type == JV_INT ? v->u.i : v->type == JV_BOOL ? v->u.b : fabs(v->u.f) < 9.2e18 ? (long long)v->u.f : 0);
            jbuf_puts(&b, num);
        } else break;
    }
    if (p < end || (a->type == JV_LIST && k != a->u.l.n)) {
        free(b.p);
        jr_err(r, at, "%% formatting: unsupported format or wrong number of arguments");
        return NULL;
    }
    return b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
}

static long long int_arg(Jv *v, long long def) { return v && v->type == JV_INT ? v->u.i : def; }

Jv *jinja_call_method(JRender *r, const JNode *at, Jv *obj, const char *name, Jv **args, char **kw, int nargs)
{
    Jv *a0 = jb_arg(args, kw, nargs, 0, NULL), *a1 = jb_arg(args, kw, nargs, 1, NULL), *res = NULL;
    if (obj->type == JV_DICT) {
        if (!strcmp(name, "get")) {
            Jv *k = a0 ? a0 : jb_arg(args, kw, nargs, 0, "key");
            Jv *v = k && jv_hashable(k) ? jv_dict_getv(obj, k) : NULL;
            Jv *def = a1 ? a1 : jb_arg(args, kw, nargs, 1, "default");
            return jv_ref(v ? v : def ? def : jv_none());
        }
        if (!strcmp(name, "items")) res = jb_items(obj);
        else {
            res = jv_list();
            for (size_t i = 0; res && i < obj->u.d.n; i++)
                if (jv_list_push(res, jv_ref(name[0] == 'k' ? obj->u.d.k[i] : obj->u.d.v[i]))) {
                    jv_unref(res);
                    res = NULL;
                }
        }
        return res ? res : jb_nomem(r, at);
    }
    if (obj->type != JV_STR) {
        jr_err(r, at, "unknown method \"%s\" of %s", name, jv_type_name(obj));
        return NULL;
    }
    if (!strcmp(name, "__mod__")) return str_mod(r, at, obj, args[0]);
    if (!strcmp(name, "format")) return str_format(r, at, obj, args, kw, nargs);
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        int end = name[0] == 'e', hit = 0;
        if (!a0 || (a0->type != JV_STR && a0->type != JV_LIST)) {
            jr_err(r, at, "%s() takes a string or a tuple of strings", name);
            return NULL;
        }
        if (a0->type == JV_STR) hit = affix(obj, a0, end);
        else
            for (size_t i = 0; i < a0->u.l.n && !hit; i++) hit = affix(obj, a0->u.l.v[i], end);
        return jv_bool(hit);
    }
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        if (a0 && a0->type != JV_STR && a0->type != JV_NONE) {
            jr_err(r, at, "%s() takes a string of characters", name);
            return NULL;
        }
        res = jb_strip(obj, a0, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
    } else if (!strcmp(name, "split")) {
        Jv *sep = a0 ? a0 : jb_arg(args, kw, nargs, 0, "sep");
        if (sep && sep->type != JV_STR && sep->type != JV_NONE) {
            jr_err(r, at, "split() separator must be a string or none");
            return NULL;
        }
        if (sep && sep->type == JV_STR && sep->u.s.n == 0) {
            jr_err(r, at, "split(): empty separator");
            return NULL;
        }
        res = jb_split(obj, sep, int_arg(a1 ? a1 : jb_arg(args, kw, nargs, 1, "maxsplit"), -1));
    } else if (!strcmp(name, "replace")) {
        if (!a0 || !a1 || a0->type != JV_STR || a1->type != JV_STR) {
            jr_err(r, at, "replace() takes two strings");
            return NULL;
        }
        int over = 0;
        res = jb_replace(obj, a0, a1, int_arg(jb_arg(args, kw, nargs, 2, "count"), -1), jr_room(r), &over);
        if (!res && over) {
            JBuf b = {.over = 1};
            return jr_buf_fail(r, at, &b);
        }
    } else if (!strcmp(name, "upper")) res = jb_recase(obj, 1);
    else if (!strcmp(name, "lower")) res = jb_recase(obj, 0);
    else if (!strcmp(name, "title")) res = jb_recase(obj, 3);
    else if (!strcmp(name, "capitalize")) res = jb_recase(obj, 2);
    else if (!strcmp(name, "casefold")) res = jb_recase(obj, 0);
    else if (!strcmp(name, "isupper") || !strcmp(name, "islower")) return jv_bool(all_cased(obj, name[2] == 'u'));
    else if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
        if (!a0 || a0->type != JV_STR) {
            jr_err(r, at, "%s() takes a string", name);
            return NULL;
        }
        int end = name[6] == 's';
        if (!affix(obj, a0, end)) return jv_ref(obj);
        res = jv_str(obj->u.s.p + (end ? 0 : a0->u.s.n), obj->u.s.n - a0->u.s.n);
    } else if (!strcmp(name, "splitlines")) {
        res = jv_list();
        const char *p = obj->u.s.p, *e = p + obj->u.s.n;
        while (res && p < e) {
            const char *q = p;
            size_t br = 0;
            while (q < e && !(br = jb_line_break(q, e))) q++;
            if (jv_list_push(res, jv_str(p, (size_t)(q - p)))) {
                jv_unref(res);
                res = NULL;
            }
            p = q + br;
        }
    } else if (!strcmp(name, "rsplit")) {
        Jv *sep = a0 ? a0 : jb_arg(args, kw, nargs, 0, "sep");
        long long maxsplit = int_arg(a1 ? a1 : jb_arg(args, kw, nargs, 1, "maxsplit"), -1);
        if (!sep || sep->type != JV_STR || !sep->u.s.n) {
            jr_err(r, at, "rsplit() takes a non-empty separator string");
            return NULL;
        }
        /* split from the right: collect pieces backwards, then reverse */
        Jv *l = jv_list();
        const char *p = obj->u.s.p, *e = p + obj->u.s.n;
        long long done = 0;
        while (l) {
            const char *hit = NULL;
            if (maxsplit < 0 || done < maxsplit)
                for (const char *q = e - sep->u.s.n; q >= p && !hit; q--)
                    if (!memcmp(q, sep->u.s.p, sep->u.s.n)) hit = q;
            if (!hit) {
                if (jv_list_push(l, jv_str(p, (size_t)(e - p)))) l = NULL;
                break;
            }
            if (jv_list_push(l, jv_str(hit + sep->u.s.n, (size_t)(e - hit - sep->u.s.n)))) l = NULL;
            e = hit;
            done++;
        }
        if (l) {
            res = jv_list();
            for (size_t i = l->u.l.n; res && i-- > 0;)
                if (jv_list_push(res, jv_ref(l->u.l.v[i]))) {
                    jv_unref(res);
                    res = NULL;
                }
        }
        jv_unref(l);
    } else if (!strcmp(name, "find") || !strcmp(name, "count") || !strcmp(name, "rfind") || !strcmp(name, "index") ||
               !strcmp(name, "rindex")) {
        if (!a0 || a0->type != JV_STR) {
            jr_err(r, at, "%s() takes a string", name);
            return NULL;
        }
        if (name[0] != 'c') {
            const char *hit = NULL;
            if (name[0] == 'r') {
                for (const char *q = obj->u.s.p + obj->u.s.n - a0->u.s.n; q >= obj->u.s.p && !hit; q--)
                    if (!memcmp(q, a0->u.s.p, a0->u.s.n)) hit = q;
            } else {
                hit = memmem(obj->u.s.p, obj->u.s.n, a0->u.s.p, a0->u.s.n);
            }
            if (!hit && name[1] == 'n') {
                jr_err(r, at, "%s(): substring not found", name);
                return NULL;
            }
            if (!hit) return jv_int(-1);
            Jv tmp = {JV_STR, -1, {.s = {obj->u.s.p, (size_t)(hit - obj->u.s.p), 0}}, 0};
            return jv_int((long long)jb_cp_count(&tmp));
        }
        long long c = 0;
        if (!a0->u.s.n) return jv_int((long long)jb_cp_count(obj) + 1);
        for (const char *p = obj->u.s.p, *e = p + obj->u.s.n; (p = memmem(p, (size_t)(e - p), a0->u.s.p, a0->u.s.n)); p += a0->u.s.n) c++;
        return jv_int(c);
    } else if (!strcmp(name, "join")) {
        if (!a0 || a0->type != JV_LIST) {
            jr_err(r, at, "join() takes a list");
            return NULL;
        }
        JBuf b = {0};
        b.max = jr_room(r);
        for (size_t i = 0; i < a0->u.l.n; i++) {
            if (i) jbuf_put(&b, obj->u.s.p, obj->u.s.n);
            jv_write_str(&b, a0->u.l.v[i]);
        }
        if (b.over || b.nomem) return jr_buf_fail(r, at, &b);
        res = b.p ? jv_str_take(b.p, b.n) : jv_str("", 0);
    } else { /* isdigit isalpha isalnum isspace */
        int ok = obj->u.s.n > 0;
        for (size_t i = 0; i < obj->u.s.n && ok;) {
            utf8proc_int32_t c = next_cp(obj->u.s.p, obj->u.s.n, &i);
            utf8proc_category_t cat = utf8proc_category(c);
            if (name[2] == 'd') ok = cat == UTF8PROC_CATEGORY_ND;
            else if (name[2] == 'a' && name[4] == 'n')
                ok = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
            else if (name[2] == 'a') ok = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
            else ok = jb_is_space(c);
        }
        return jv_bool(ok);
    }
    return res ? res : jb_nomem(r, at);
}
