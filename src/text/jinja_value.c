/* jinja_value.c - template values, Python-compatible formatting, json.dumps. */
#include "text/jinja_value.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---- */

int jbuf_put(JBuf *b, const char *p, size_t n)
{
    if (b->over || b->nomem) return -1;
    if (b->max && b->n + n > b->max) {
        b->over = 1;
        return -1;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->nomem = 1;
            return -1;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int jbuf_puts(JBuf *b, const char *s) { return jbuf_put(b, s, strlen(s)); }
int jbuf_putc(JBuf *b, char c) { return jbuf_put(b, &c, 1); }

/* ---- constructors ---- */

static Jv k_undef = {JV_UNDEF, -1, {0}, 0};
static Jv k_none = {JV_NONE, -1, {0}, 0};
static Jv k_true = {JV_BOOL, -1, {.b = 1}, 0};
static Jv k_false = {JV_BOOL, -1, {.b = 0}, 0};

Jv *jv_undef(void) { return &k_undef; }
Jv *jv_none(void) { return &k_none; }
Jv *jv_bool(int b) { return b ? &k_true : &k_false; }

static Jv *jv_new(JvType t)
{
    Jv *v = calloc(1, sizeof *v);
    if (v) {
        v->type = t;
        v->refs = 1;
    }
    return v;
}

Jv *jv_int(long long i)
{
    Jv *v = jv_new(JV_INT);
    if (v) v->u.i = i;
    return v;
}

Jv *jv_float(double f)
{
    Jv *v = jv_new(JV_FLOAT);
    if (v) v->u.f = f;
    return v;
}

Jv *jv_str_take(char *p, size_t n)
{
    Jv *v = jv_new(JV_STR);
    if (!v) {
        free(p);
        return NULL;
    }
    v->u.s.p = p;
    v->u.s.n = n;
    return v;
}

Jv *jv_str(const char *p, size_t n)
{
    char *q = malloc(n + 1);
    if (!q) return NULL;
    if (n) memcpy(q, p, n);
    q[n] = 0;
    return jv_str_take(q, n);
}

Jv *jv_strz(const char *s) { return jv_str(s, strlen(s)); }
Jv *jv_list(void) { return jv_new(JV_LIST); }
Jv *jv_dict(void) { return jv_new(JV_DICT); }
Jv *jv_ns(void) { return jv_new(JV_NS); }

Jv *jv_func(int builtin, const struct JNode *macro)
{
    Jv *v = jv_new(JV_FUNC);
    if (v) {
        v->u.fn.builtin = builtin;
        v->u.fn.macro = macro;
    }
    return v;
}

Jv *jv_ref(Jv *v)
{
    if (v && v->refs >= 0) v->refs++;
    return v;
}

/* Frees a dead value's own storage; its items go to `release`. */
static void free_shell(Jv *v, Jv ***stack, size_t *n, size_t *cap, Jv **local);

/* Drops one reference to each item of a dead container: values that die with
 * it are pushed for the caller's loop (no recursion, so a value nested a
 * million deep through namespaces is freed without deepening the C stack). */
static void push_dead(Jv *c, Jv ***stack, size_t *n, size_t *cap, Jv **local)
{
    if (!c || c->refs < 0 || --c->refs > 0) return;
    if (c->type != JV_LIST && c->type != JV_DICT && c->type != JV_NS) {
        if (c->type == JV_STR) free(c->u.s.p);
        free(c);
        return;
    }
    if (*n == *cap) {
        size_t ncap = *cap * 2;
        Jv **q = *stack == local ? malloc(ncap * sizeof *q) : realloc(*stack, ncap * sizeof *q);
        if (!q) { /* out of memory: free this one here, one level deeper */
            free_shell(c, stack, n, cap, local);
            return;
        }
        if (*stack == local) memcpy(q, local, *n * sizeof *q);
        *stack = q;
        *cap = ncap;
    }
    (*stack)[(*n)++] = c;
}

static void free_shell(Jv *v, Jv ***stack, size_t *n, size_t *cap, Jv **local)
{
    if (v->type == JV_LIST) {
        for (size_t i = 0; i < v->u.l.n; i++) push_dead(v->u.l.v[i], stack, n, cap, local);
        free(v->u.l.v);
    } else {
        for (size_t i = 0; i < v->u.d.n; i++) {
            push_dead(v->u.d.k[i], stack, n, cap, local);
            push_dead(v->u.d.v[i], stack, n, cap, local);
        }
        free(v->u.d.k);
        free(v->u.d.v);
    }
    free(v);
}

void jv_unref(Jv *v)
{
    if (!v || v->refs < 0 || --v->refs > 0) return;
    if (v->type != JV_LIST && v->type != JV_DICT && v->type != JV_NS) {
        if (v->type == JV_STR) free(v->u.s.p);
        free(v);
        return;
    }
    Jv *local[64], **stack = local;
    size_t n = 0, cap = 64;
    stack[n++] = v;
    while (n) {
        Jv *x = stack[--n];
        free_shell(x, &stack, &n, &cap, local);
    }
    if (stack != local) free(stack);
}

/* Nesting levels a container gains by holding v. */
static int held_depth(const Jv *v)
{
    return v->type == JV_LIST || v->type == JV_DICT ? v->depth + 1 : 0;
}

int jv_list_push(Jv *l, Jv *item)
{
    if (!item) return -1;
    if (l->u.l.n == l->u.l.cap) {
        size_t cap = l->u.l.cap ? l->u.l.cap * 2 : 4;
        Jv **v = realloc(l->u.l.v, cap * sizeof *v);
        if (!v) {
            jv_unref(item);
            return -1;
        }
        l->u.l.v = v;
        l->u.l.cap = cap;
    }
    l->u.l.v[l->u.l.n++] = item;
    int d = held_depth(item);
    if (d > l->depth) l->depth = d;
    return 0;
}

int jv_hashable(const Jv *v)
{
    return v->type == JV_NONE || v->type == JV_BOOL || v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_STR;
}

Jv *jv_dict_get(const Jv *d, const char *k, size_t kn)
{
    for (size_t i = 0; i < d->u.d.n; i++) {
        const Jv *key = d->u.d.k[i];
        if (key->type == JV_STR && key->u.s.n == kn && !memcmp(key->u.s.p, k, kn)) return d->u.d.v[i];
    }
    return NULL;
}

Jv *jv_dict_getv(const Jv *d, const Jv *key)
{
    if (key->type == JV_STR) return jv_dict_get(d, key->u.s.p, key->u.s.n);
    for (size_t i = 0; i < d->u.d.n; i++)
        if (d->u.d.k[i]->type != JV_STR && jv_equal(d->u.d.k[i], key)) return d->u.d.v[i];
    return NULL;
}

int jv_dict_setv(Jv *d, Jv *key, Jv *val)
{
    if (!key || !val) {
        jv_unref(key);
        jv_unref(val);
        return -1;
    }
    for (size_t i = 0; i < d->u.d.n; i++) {
        Jv *k = d->u.d.k[i];
        if (key->type == JV_STR ? k->type == JV_STR && k->u.s.n == key->u.s.n && !memcmp(k->u.s.p, key->u.s.p, k->u.s.n)
                                : k->type != JV_STR && jv_equal(k, key)) {
            jv_unref(key);
            jv_unref(d->u.d.v[i]);
            d->u.d.v[i] = val;
            goto depth;
        }
    }
    if (d->u.d.n == d->u.d.cap) {
        size_t cap = d->u.d.cap ? d->u.d.cap * 2 : 4;
        Jv **nk = realloc(d->u.d.k, cap * sizeof *nk);
        if (nk) d->u.d.k = nk;
        Jv **nv = nk ? realloc(d->u.d.v, cap * sizeof *nv) : NULL;
        if (!nv) {
            jv_unref(key);
            jv_unref(val);
            return -1;
        }
        d->u.d.v = nv;
        d->u.d.cap = cap;
    }
    d->u.d.k[d->u.d.n] = key;
    d->u.d.v[d->u.d.n++] = val;
depth:
    if (held_depth(val) > d->depth) d->depth = held_depth(val);
    return 0;
}

int jv_dict_set(Jv *d, const char *k, size_t kn, Jv *val)
{
    if (!val) return -1;
    Jv *key = jv_str(k, kn);
    if (!key) {
        jv_unref(val);
        return -1;
    }
    return jv_dict_setv(d, key, val);
}

Jv *jv_from_cjson(const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return jv_none();
    if (cJSON_IsTrue(j)) return jv_bool(1);
    if (cJSON_IsFalse(j)) return jv_bool(0);
    if (cJSON_IsNumber(j)) {
        /* cJSON keeps no lexical form: an integral value in int64 range is an
         * int (json.loads("5") is int; "5.0" would be float in Python). */
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9.2e18) return jv_int((long long)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j)) return jv_strz(j->valuestring ? j->valuestring : "");
    if (cJSON_IsArray(j)) {
        Jv *l = jv_list();
        if (!l) return NULL;
        for (const cJSON *c = j->child; c; c = c->next)
            if (jv_list_push(l, jv_from_cjson(c))) {
                jv_unref(l);
                return NULL;
            }
        return l;
    }
    if (cJSON_IsObject(j)) {
        Jv *d = jv_dict();
        if (!d) return NULL;
        for (const cJSON *c = j->child; c; c = c->next) {
            const char *k = c->string ? c->string : "";
            if (jv_dict_set(d, k, strlen(k), jv_from_cjson(c))) {
                jv_unref(d);
                return NULL;
            }
        }
        return d;
    }
    return jv_none();
}

/* ---- predicates ---- */

int jv_truthy(const Jv *v)
{
    switch (v->type) {
    case JV_UNDEF:
    case JV_NONE: return 0;
    case JV_BOOL: return v->u.b;
    case JV_INT: return v->u.i != 0;
    case JV_FLOAT: return v->u.f != 0;
    case JV_STR: return v->u.s.n != 0;
    case JV_LIST: return v->u.l.gen || v->u.l.n != 0; /* a generator is always true */
    case JV_DICT: return v->u.d.n != 0;
    default: return 1;
    }
}

int jv_is_number(const Jv *v) { return v->type == JV_INT || v->type == JV_FLOAT || v->type == JV_BOOL; }

double jv_num(const Jv *v)
{
    return v->type == JV_FLOAT ? v->u.f : v->type == JV_INT ? (double)v->u.i : v->type == JV_BOOL ? v->u.b : 0;
}

const char *jv_type_name(const Jv *v)
{
    static const char *names[] = {"undefined", "none", "bool", "int", "float", "string", "list", "dict", "namespace", "callable"};
    return names[v->type];
}

int jv_equal(const Jv *a, const Jv *b)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->type != JV_FLOAT && b->type != JV_FLOAT)
            return (a->type == JV_INT ? a->u.i : a->u.b) == (b->type == JV_INT ? b->u.i : b->u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a->type != b->type) return 0;
    switch (a->type) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    case JV_LIST:
        if (a->u.l.n != b->u.l.n || a->u.l.tuple != b->u.l.tuple) return 0;
        for (size_t i = 0; i < a->u.l.n; i++)
            if (!jv_equal(a->u.l.v[i], b->u.l.v[i])) return 0;
        return 1;
    case JV_DICT:
        if (a->u.d.n != b->u.d.n) return 0;
        for (size_t i = 0; i < a->u.d.n; i++) {
            const Jv *o = jv_dict_getv(b, a->u.d.k[i]);
            if (!o || !jv_equal(a->u.d.v[i], o)) return 0;
        }
        return 1;
    default: return a == b;
    }
}

int jv_compare(const Jv *a, const Jv *b, int *res)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->type == JV_INT && b->type == JV_INT)
            *res = (a->u.i > b->u.i) - (a->u.i < b->u.i);
        else {
            double x = jv_num(a), y = jv_num(b);
            *res = (x > y) - (x < y);
        }
        return 0;
    }
    if (a->type == JV_STR && b->type == JV_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int c = memcmp(a->u.s.p, b->u.s.p, n);
        *res = c ? (c > 0) - (c < 0) : (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
        return 0;
    }
    return -1;
}

/* ---- Python formatting ---- */

void jv_format_float(char out[40], double f)
{
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    /* shortest digits that round-trip, as Python's repr */
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]D[.DDD]e[+-]XX */
    const char *p = tmp;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int x = atoi(p + 1);
    char *o = out;
    if (neg) *o++ = '-';
    if (x >= -4 && x < 16) {
        if (x >= 0) {
            for (int i = 0; i <= x; i++) *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > x + 1)
                for (int i = x + 1; i < nd; i++) *o++ = digits[i];
            else
                *o++ = '0';
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -x - 1; i++) *o++ = '0';
            for (int i = 0; i < nd; i++) *o++ = digits[i];
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++) *o++ = digits[i];
        }
        sprintf(o, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    }
}

static int write_repr_str(JBuf *b, const char *s, size_t n)
{
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    if (jbuf_putc(b, q)) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '\\' || c == (unsigned char)q) {
            esc[0] = '\\';
            esc[1] = (char)c;
            esc[2] = 0;
        } else if (c == '\n') strcpy(esc, "\\n");
        else if (c == '\r') strcpy(esc, "\\r");
        else if (c == '\t') strcpy(esc, "\\t");
        else if (c < 0x20 || c == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", c);
        else {
            if (jbuf_putc(b, (char)c)) return -1;
            continue;
        }
        if (jbuf_puts(b, esc)) return -1;
    }
    return jbuf_putc(b, q);
}

static int write_py(JBuf *b, const Jv *v, int repr)
{
    char num[40];
    switch (v->type) {
    case JV_UNDEF: return repr ? jbuf_puts(b, "Undefined") : 0;
    case JV_NONE: return jbuf_puts(b, "None");
    case JV_BOOL: return jbuf_puts(b, v->u.b ? "True" : "False");
    case JV_INT: snprintf(num, sizeof num, "%lld", v->u.i); return jbuf_puts(b, num);
    case JV_FLOAT: jv_format_float(num, v->u.f); return jbuf_puts(b, num);
    case JV_STR: return repr ? write_repr_str(b, v->u.s.p, v->u.s.n) : jbuf_put(b, v->u.s.p, v->u.s.n);
    case JV_LIST:
        if (jbuf_putc(b, v->u.l.tuple ? '(' : '[')) return -1;
        for (size_t i = 0; i < v->u.l.n; i++)
            if ((i && jbuf_puts(b, ", ")) || write_py(b, v->u.l.v[i], 1)) return -1;
        if (v->u.l.tuple && v->u.l.n == 1 && jbuf_putc(b, ',')) return -1;
        return jbuf_putc(b, v->u.l.tuple ? ')' : ']');
    case JV_DICT:
        if (jbuf_putc(b, '{')) return -1;
        for (size_t i = 0; i < v->u.d.n; i++)
            if ((i && jbuf_puts(b, ", ")) || write_py(b, v->u.d.k[i], 1) || jbuf_puts(b, ": ") ||
                write_py(b, v->u.d.v[i], 1))
                return -1;
        return jbuf_putc(b, '}');
    case JV_NS: return jbuf_puts(b, "<Namespace>");
    case JV_FUNC: return jbuf_puts(b, "<function>");
    }
    return 0;
}

int jv_write_str(JBuf *b, const Jv *v) { return write_py(b, v, 0); }
int jv_write_repr(JBuf *b, const Jv *v) { return write_py(b, v, 1); }

/* ---- json.dumps ---- */

static int json_str(JBuf *b, const char *s, size_t n, int ascii)
{
    if (jbuf_putc(b, '"')) return -1;
    size_t run = 0; /* bytes copied verbatim, flushed in runs */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[32];
        size_t skip = 0;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20 || (ascii && c == 0x7f)) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            } else if (ascii && c >= 0x80) {
                /* decode one UTF-8 sequence; a stray byte stands for itself */
                unsigned long cp = c;
                int k = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
                if (k && i + (size_t)k < n) {
                    cp = c & (0x3F >> k);
                    for (int j = 1; j <= k; j++) cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3F);
                    skip = (size_t)k;
                }
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    snprintf(u, sizeof u, "\\u%04lx\\u%04lx", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
                } else {
                    snprintf(u, sizeof u, "\\u%04lx", cp);
                }
                esc = u;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        if (jbuf_put(b, s + i - run, run) || jbuf_puts(b, esc)) return -1;
        run = 0;
        i += skip;
    }
    if (jbuf_put(b, s + n - run, run)) return -1;
    return jbuf_putc(b, '"');
}

static int json_nl(JBuf *b, const JsonOpts *o, int level)
{
    if (jbuf_putc(b, '\n')) return -1;
    for (int i = 0; i < level; i++)
        if (jbuf_puts(b, o->indent)) return -1;
    return 0;
}

static int key_cmp(const void *x, const void *y)
{
    const Jv *a = **(Jv *const *const *)x, *c = **(Jv *const *const *)y;
    int r = 0;
    jv_compare(a, c, &r);
    return r;
}

/* Python's json key: strings as they are, numbers, booleans and None as text. */
static int json_key(JBuf *b, const Jv *k, const JsonOpts *o)
{
    char num[40];
    switch (k->type) {
    case JV_STR: return json_str(b, k->u.s.p, k->u.s.n, o->ensure_ascii);
    case JV_INT: snprintf(num, sizeof num, "\"%lld\"", k->u.i); return jbuf_puts(b, num);
    case JV_BOOL: return jbuf_puts(b, k->u.b ? "\"true\"" : "\"false\"");
    case JV_NONE: return jbuf_puts(b, "\"null\"");
    default:
        if (isnan(k->u.f)) return jbuf_puts(b, "\"NaN\"");
        if (isinf(k->u.f)) return jbuf_puts(b, k->u.f < 0 ? "\"-Infinity\"" : "\"Infinity\"");
        jv_format_float(num, k->u.f);
        return jbuf_putc(b, '"') || jbuf_puts(b, num) || jbuf_putc(b, '"');
    }
}

static int json_val(JBuf *b, const Jv *v, const JsonOpts *o, int level, Err *e)
{
    char num[40];
    if (level > 200) return err_set(e, "tojson: value nested too deeply");
    const char *isep = o->item_sep ? o->item_sep : o->indent ? "," : ", ", *ksep = o->key_sep ? o->key_sep : ": ";
    switch (v->type) {
    case JV_NONE: return jbuf_puts(b, "null");
    case JV_BOOL: return jbuf_puts(b, v->u.b ? "true" : "false");
    case JV_INT: snprintf(num, sizeof num, "%lld", v->u.i); return jbuf_puts(b, num);
    case JV_FLOAT:
        if (isnan(v->u.f)) return jbuf_puts(b, "NaN");
        if (isinf(v->u.f)) return jbuf_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
        jv_format_float(num, v->u.f);
        return jbuf_puts(b, num);
    case JV_STR: return json_str(b, v->u.s.p, v->u.s.n, o->ensure_ascii);
    case JV_LIST:
        if (v->u.l.gen) return err_set(e, "tojson: Object of type generator is not JSON serializable");
        if (!v->u.l.n) return jbuf_puts(b, "[]");
        if (jbuf_putc(b, '[')) return -1;
        for (size_t i = 0; i < v->u.l.n; i++) {
            if (i && jbuf_puts(b, isep)) return -1;
            if (o->indent && json_nl(b, o, level + 1)) return -1;
            if (json_val(b, v->u.l.v[i], o, level + 1, e)) return -1;
        }
        if (o->indent && json_nl(b, o, level)) return -1;
        return jbuf_putc(b, ']');
    case JV_DICT: {
        if (!v->u.d.n) return jbuf_puts(b, "{}");
        size_t n = v->u.d.n;
        Jv *const **order = malloc(n * sizeof *order);
        if (!order) return err_set(e, "out of memory");
        for (size_t i = 0; i < n; i++) order[i] = &v->u.d.k[i];
        if (o->sort_keys) {
            for (size_t i = 1; i < n; i++) {
                int c;
                if (jv_compare(v->u.d.k[0], v->u.d.k[i], &c)) {
                    free(order);
                    return err_set(e, "tojson: sort_keys: cannot compare %s with %s", jv_type_name(v->u.d.k[0]),
                                   jv_type_name(v->u.d.k[i]));
                }
            }
            qsort(order, n, sizeof *order, key_cmp);
        }
        int rc = jbuf_putc(b, '{');
        for (size_t i = 0; i < n && !rc; i++) {
            size_t k = (size_t)(order[i] - v->u.d.k);
            if (i && jbuf_puts(b, isep)) rc = -1;
            else if (o->indent && json_nl(b, o, level + 1)) rc = -1;
            else if (json_key(b, v->u.d.k[k], o) || jbuf_puts(b, ksep)) rc = -1;
            else rc = json_val(b, v->u.d.v[k], o, level + 1, e);
        }
        free(order);
        if (rc) return -1;
        if (o->indent && json_nl(b, o, level)) return -1;
        return jbuf_putc(b, '}');
    }
    default: return err_set(e, "tojson: Object of type %s is not JSON serializable", jv_type_name(v));
    }
}

int jv_write_json(JBuf *b, const Jv *v, const JsonOpts *o, Err *e)
{
    int rc = json_val(b, v, o, 0, e);
    if (rc && (b->over || b->nomem)) err_set(e, b->over ? "output size limit exceeded" : "out of memory");
    return rc;
}

int jv_write_escaped(JBuf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '"': esc = "&#34;"; break;
        case '\'': esc = "&#39;"; break;
        default: run++; continue;
        }
        if (jbuf_put(b, s + i - run, run) || jbuf_puts(b, esc)) return -1;
        run = 0;
    }
    return jbuf_put(b, s + n - run, run);
}
