/* jinja_value.h - the values a template computes with: a small refcounted
 * tagged union (undefined, none, bool, int, float, string, list, dict,
 * namespace, callable), conversion from cJSON, Python-compatible str()/repr()
 * and json.dumps() formatting.
 *
 * Ownership: constructors return a new reference; jv_unref drops one. The
 * shared constants (undefined, none, true, false) are immortal (refs < 0) and
 * never written, so different threads may use them at once. A value built
 * during one render is used by that render's thread only. */
#ifndef DUET_JINJA_VALUE_H
#define DUET_JINJA_VALUE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "util/err.h"

typedef enum JvType {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC
} JvType;

struct JNode;

typedef struct Jv Jv;
struct Jv {
    JvType type;
    int refs; /* < 0: immortal constant */
    union {
        int b;
        long long i;
        double f;
        struct { char *p; size_t n; int safe; } s;     /* UTF-8 bytes, NUL-terminated; safe: a Markup (|safe) */
        struct { Jv **v; size_t n, cap; short gen, tuple; } l; /* list items; gen: made by map/select/... (a generator
                                                        * in jinja2); tuple: a Python tuple (prints with parentheses) */
        struct { Jv **k; Jv **v; size_t n, cap; } d;   /* dict / namespace: scalar keys (namespace: strings), insertion order */
        struct { int builtin; const struct JNode *macro; } fn; /* builtin id or macro node */
    } u;
    int depth; /* lists and dicts: levels of nesting below (0 when flat); namespaces count as a leaf */
};

/* Growable output buffer with a size cap; `over` is set once a put would pass max. */
typedef struct JBuf {
    char *p;
    size_t n, cap, max;
    int over, nomem;
} JBuf;

int jbuf_put(JBuf *b, const char *p, size_t n); /* 0, or -1 (over max / out of memory) */
int jbuf_puts(JBuf *b, const char *s);
int jbuf_putc(JBuf *b, char c);

Jv *jv_undef(void);
Jv *jv_none(void);
Jv *jv_bool(int b);
Jv *jv_int(long long i);
Jv *jv_float(double f);
Jv *jv_str(const char *p, size_t n);       /* copies */
Jv *jv_strz(const char *s);                /* copies a NUL-terminated string */
Jv *jv_str_take(char *p, size_t n);        /* takes a malloc'd buffer of n+1 bytes */
Jv *jv_list(void);
Jv *jv_dict(void);
Jv *jv_ns(void);
Jv *jv_func(int builtin, const struct JNode *macro);
/* All constructors return NULL only when out of memory. */

Jv *jv_ref(Jv *v);
void jv_unref(Jv *v); /* safe on NULL */

int jv_list_push(Jv *l, Jv *item);                    /* takes item; -1 when out of memory */
int jv_dict_set(Jv *d, const char *k, size_t kn, Jv *val); /* takes val; replaces an old value */
Jv *jv_dict_get(const Jv *d, const char *k, size_t kn); /* borrowed, NULL when absent */
/* Keys of any scalar type (none, bool, int, float, string) with Python's
 * equality (1, 1.0 and True are one key). setv takes key and val. */
int jv_dict_setv(Jv *d, Jv *key, Jv *val);
Jv *jv_dict_getv(const Jv *d, const Jv *key);
int jv_hashable(const Jv *v);

/* Converts a cJSON tree (numbers without a fraction or exponent become ints
 * when integral). NULL when out of memory. */
Jv *jv_from_cjson(const cJSON *j);

int jv_truthy(const Jv *v);
int jv_is_number(const Jv *v); /* int, float or bool (Python's bool is an int) */
double jv_num(const Jv *v);
const char *jv_type_name(const Jv *v);

/* Python semantics: 1 == 1.0 == True, lists and dicts compare deeply. */
int jv_equal(const Jv *a, const Jv *b);
/* Orders numbers with numbers and strings with strings: *res is <0, 0, >0.
 * Returns -1 (no message) when the two cannot be ordered. */
int jv_compare(const Jv *a, const Jv *b, int *res);

/* Appends Python's str(v) (repr for the items of lists and dicts). Undefined
 * renders as "". Returns -1 when the buffer overflows. */
int jv_write_str(JBuf *b, const Jv *v);
int jv_write_repr(JBuf *b, const Jv *v);
/* Python's repr(float). */
void jv_format_float(char out[40], double f);

/* json.dumps options: indent NULL for None (else the string one level adds),
 * separators NULL for Python's defaults (", " / ": ", or "," / ": " when indented). */
typedef struct JsonOpts {
    const char *indent;
    const char *item_sep, *key_sep;
    int sort_keys, ensure_ascii;
} JsonOpts;

/* json.dumps(v, ...) as Python writes it. -1 with *e set for values JSON cannot
 * hold ("Object of type X is not JSON serializable"). */
int jv_write_json(JBuf *b, const Jv *v, const JsonOpts *o, Err *e);

/* Markup's escape(): & < > " ' as &amp; &lt; &gt; &#34; &#39;. */
int jv_write_escaped(JBuf *b, const char *s, size_t n);

#endif
