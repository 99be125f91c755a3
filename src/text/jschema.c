/* jschema.c - JSON Schema (the tool subset) -> JsNode graph. */
#include "text/jschema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 24     /* schema nesting; the matcher's stack holds 32 frames */
#define INT_LIMIT 999999999999999.0 /* 15 digits */

static const char *const ANNOTATIONS[] = {"title", "description", "default", "examples", "$schema", "$id", "$comment",
                                          "deprecated", "readOnly", "writeOnly", NULL};
static const char *const KEYWORDS[] = {"type", "properties", "required", "additionalProperties", "enum", "const",
                                       "anyOf", "items", "minItems", "maxItems", "minLength", "maxLength", "minimum",
                                       "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};

static int in_list(const char *k, const char *const *l)
{
    for (; *l; l++)
        if (!strcmp(k, *l)) return 1;
    return 0;
}

static void set_first(JsNode *n, int b) { n->first[b >> 3] |= (uint8_t)(1u << (b & 7)); }

/* A new zeroed node; its index, or -1 when out of memory. Pointers into
 * s->node are invalidated. */
static int node_new(JsSchema *s, JsKind kind, Err *e)
{
    if (s->n == s->cap) {
        int nc = s->cap ? 2 * s->cap : 16;
        JsNode *nn = realloc(s->node, (size_t)nc * sizeof *nn);
        if (!nn) return err_set(e, "schema: out of memory");
        s->node = nn;
        s->cap = nc;
    }
    JsNode *n = &s->node[s->n];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->item = -1;
    n->max_items = n->max_len = -1;
    n->ilo = n->lo = -INFINITY;
    n->ihi = n->hi = INFINITY;
    return s->n++;
}

void jschema_free(JsSchema *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        JsNode *n = &s->node[i];
        for (int j = 0; j < n->n; j++) {
            if (n->key) free(n->key[j]);
            if (n->lit) free(n->lit[j]);
        }
        free(n->key);
        free(n->klen);
        free(n->prop);
        free(n->req);
        free(n->req_after);
        free(n->lit);
        free(n->llen);
        free(n->alt);
    }
    free(s->node);
    memset(s, 0, sizeof *s);
}

/* Digits of a positive integer-valued double. */
static int ndigits(double v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* The value of [-]P.F with F = k units of 1e-6, as a JSON parser reads
 * those digits: P * 1e6 + k is an exact integer below 2^53 and one division
 * rounds it correctly, as strtod does. */
static double cell_value(int neg, double p, int k)
{
    double v = (p * 1e6 + k) / 1e6;
    return neg ? -v : v;
}

/* A number range with no integer in it lies inside one unit: fixes the sign
 * and integer part and finds the fraction units in range. */
static int finish_cell(JsNode *n, const char *where, Err *e)
{
    double i0 = floor(n->lo); /* lo .. hi lie in (i0, i0 + 1) */
    if (!isfinite(n->lo) || !isfinite(n->hi) || fabs(i0) >= 1e9)
        return err_set(e, "%s: minimum/maximum leave no integer part in range (supported for values under 1e9)", where);
    n->cell = 1;
    n->cell_neg = i0 < 0;
    n->cell_p = i0 < 0 ? -i0 - 1 : i0;
    /* value(k) rises with k for a positive number, falls for a negative one */
    int lo = 0, hi = 1000000; /* first k with value(k) >= lo (positive) / <= hi (negative) */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        double v = cell_value(n->cell_neg, n->cell_p, mid);
        if (n->cell_neg ? v <= n->hi : v >= n->lo) hi = mid;
        else lo = mid + 1;
    }
    n->kmin = lo;
    lo = -1, hi = 999999; /* last k with value(k) <= hi (positive) / >= lo (negative) */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        double v = cell_value(n->cell_neg, n->cell_p, mid);
        if (n->cell_neg ? v >= n->lo : v <= n->hi) lo = mid;
        else hi = mid - 1;
    }
    n->kmax = lo;
    if (n->kmin > n->kmax || n->kmin > 999999)
        return err_set(e, "%s: minimum/maximum leave no number of at most 6 fraction digits in range", where);
    n->minlen = n->cell_neg + ndigits(n->cell_p) + 1 + jschema_cell_digits(n, 0, 0, 1);
    if (n->cell_neg) set_first(n, '-');
    else set_first(n, '0' + (int)(n->cell_p / pow(10, ndigits(n->cell_p) - 1)));
    return 0;
}

int jschema_cell_digits(const JsNode *n, int f, int b, int at_least_one)
{
    static const int P10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    int lo = f * P10[6 - b], top = lo + P10[6 - b] - 1; /* units reachable from here */
    for (int j = at_least_one ? 1 : 0; j <= 6 - b; j++) {
        int step = P10[6 - b - j], from = lo > n->kmin ? lo : n->kmin;
        int k = lo + (from - lo + step - 1) / step * step; /* the first j-digit ending at or above kmin */
        if (k <= top && k <= n->kmax) return j;
    }
    return -1;
}

/* Bounds, minlen and first bytes of a number / integer node. */
static int finish_number(JsNode *n, const char *where, Err *e)
{
    if (n->ilo < -INT_LIMIT) n->ilo = -INT_LIMIT;
    if (n->ihi > INT_LIMIT) n->ihi = INT_LIMIT;
    if (n->ilo > n->ihi && n->kind == JS_NUMBER) return finish_cell(n, where, e);
    if (n->ilo > n->ihi)
        return err_set(e, "%s: minimum/maximum leave no %s in range (numbers without an integer in their range "
                          "are not supported)", where, n->kind == JS_INTEGER ? "integer" : "integer part");
    if (n->ilo <= 0 && n->ihi >= 0) n->minlen = 1;
    else if (n->ilo > 0) n->minlen = ndigits(n->ilo);
    else n->minlen = 1 + ndigits(-n->ihi);
    if (n->ilo <= -1) set_first(n, '-');
    if (n->ilo <= 0 && n->ihi >= 0) set_first(n, '0');
    for (int d = 1; d <= 9; d++) {
        double p = 1;
        for (int k = 1; k <= 15; k++, p *= 10) {
            double a = d * p, b = (d + 1) * p - 1;
            if (a <= n->ihi && b >= n->ilo) {
                set_first(n, '0' + d);
                break;
            }
        }
    }
    return 0;
}

/* JSON text of a string without the quotes, malloc'd; *len its length. */
static char *escaped(const char *str, int *len)
{
    cJSON *j = cJSON_CreateString(str);
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!t) return NULL;
    size_t n = strlen(t);
    memmove(t, t + 1, n - 2);
    t[n - 2] = 0;
    *len = (int)n - 2;
    return t;
}

static int any_node(JsSchema *s, Err *e);

static int literals_node(JsSchema *s, const cJSON *vals, const char *where, Err *e)
{
    int cnt = cJSON_GetArraySize(vals);
    if (cnt == 0) return err_set(e, "%s: enum: expected at least one value", where);
    int id = node_new(s, JS_LITERALS, e);
    if (id < 0) return -1;
    JsNode *n = &s->node[id];
    n->lit = calloc((size_t)cnt, sizeof *n->lit);
    n->llen = calloc((size_t)cnt, sizeof *n->llen);
    if (!n->lit || !n->llen) return err_set(e, "schema: out of memory");
    n->minlen = 1 << 30;
    const cJSON *v;
    cJSON_ArrayForEach(v, vals)
    {
        char *t = cJSON_PrintUnformatted(v);
        if (!t) return err_set(e, "schema: out of memory");
        n->lit[n->n] = t;
        n->llen[n->n] = (int)strlen(t);
        if (n->llen[n->n] < n->minlen) n->minlen = n->llen[n->n];
        set_first(n, (unsigned char)t[0]);
        n->n++;
    }
    return id;
}

static int union_node(JsSchema *s, const int *alts, int cnt, Err *e)
{
    int id = node_new(s, JS_UNION, e);
    if (id < 0) return -1;
    JsNode *n = &s->node[id];
    if (!(n->alt = malloc((size_t)cnt * sizeof *n->alt))) return err_set(e, "schema: out of memory");
    memcpy(n->alt, alts, (size_t)cnt * sizeof *alts);
    n->n = cnt;
    n->minlen = 1 << 30;
    /* the first branch a byte fits is taken: a branch whose first bytes all
     * belong to earlier ones is never entered, and its shortest value does
     * not count (anyOf [{"required": [...]}, {}] is at least the first) */
    for (int i = 0; i < cnt; i++) {
        const JsNode *a = &s->node[alts[i]];
        int own = 0;
        for (int b = 0; b < 32; b++) own |= a->first[b] & ~n->first[b];
        if (own && a->minlen < n->minlen) n->minlen = a->minlen;
        for (int b = 0; b < 32; b++) n->first[b] |= a->first[b];
    }
    return id;
}

/* Any JSON value: a union of a free object, a free array, a free string, a
 * number and true/false/null. Built once per schema (it is cyclic). */
static int any_node(JsSchema *s, Err *e)
{
    static const char *const lits = "[true,false,null]";
    if (s->any >= 0) return s->any;
    int u = node_new(s, JS_UNION, e);
    if (u < 0) return -1;
    int obj = node_new(s, JS_OBJECT, e), arr = node_new(s, JS_ARRAY, e), str = node_new(s, JS_STRING, e);
    int num = node_new(s, JS_NUMBER, e);
    if (obj < 0 || arr < 0 || str < 0 || num < 0) return -1;
    cJSON *l = cJSON_Parse(lits);
    int lit = l ? literals_node(s, l, "any", e) : err_set(e, "schema: out of memory");
    cJSON_Delete(l);
    if (lit < 0) return -1;
    JsNode *o = &s->node[obj], *a = &s->node[arr], *st = &s->node[str];
    o->free_keys = 1;
    o->minlen = 2;
    if (!(o->req_after = calloc(1, sizeof *o->req_after))) return err_set(e, "schema: out of memory");
    set_first(o, '{');
    a->item = u;
    a->min_items = 0;
    a->minlen = 2;
    set_first(a, '[');
    st->minlen = 2;
    set_first(st, '"');
    if (finish_number(&s->node[num], "any", e)) return -1;
    JsNode *un = &s->node[u];
    int alts[5] = {obj, arr, str, num, lit};
    if (!(un->alt = malloc(sizeof alts))) return err_set(e, "schema: out of memory");
    memcpy(un->alt, alts, sizeof alts);
    un->n = 5;
    un->minlen = 1;
    for (int i = 0; i < 5; i++)
        for (int b = 0; b < 32; b++) un->first[b] |= s->node[alts[i]].first[b];
    s->str_any = str;
    s->any = u;
    return u;
}

static int get_count(const cJSON *sch, const char *key, int *out, const char *where, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sch, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != floor(v->valuedouble))
        return err_set(e, "%s: %s: expected a non-negative integer", where, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_bound(const cJSON *sch, const char *key, double *out, int *have, const char *where, Err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sch, key);
    *have = 0;
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return err_set(e, "%s: %s: expected a number", where, key);
    *out = v->valuedouble;
    *have = 1;
    return 0;
}

static int compile_node(JsSchema *s, const cJSON *sch, int lenient, const char *where, int depth, Err *e);

static int object_node(JsSchema *s, const cJSON *sch, int lenient, const char *where, int depth, Err *e)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties");
    if (props && !cJSON_IsObject(props)) return err_set(e, "%s: properties: expected an object", where);
    if (req && !cJSON_IsArray(req)) return err_set(e, "%s: required: expected an array of names", where);
    if (addl && !cJSON_IsBool(addl) && !cJSON_IsObject(addl) && !lenient)
        return err_set(e, "%s: additionalProperties: expected true, false or a schema", where);
    /* a schema for other keys: the values of an object without properties;
     * beside properties only declared keys are written, so it is only checked */
    int addl_node = -1;
    if (cJSON_IsObject(addl)) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.additionalProperties", where);
        if ((addl_node = compile_node(s, addl, lenient, sub, depth + 1, e)) < 0) return -1;
    }
    int np = props ? cJSON_GetArraySize(props) : 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, req)
    {
        if (!cJSON_IsString(r)) return err_set(e, "%s: required: expected an array of names", where);
        if (!props || !cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
            return err_set(e, "%s: required: \"%s\" is not in properties", where, r->valuestring);
    }
    int id = node_new(s, JS_OBJECT, e);
    if (id < 0) return -1;
    int cap = np ? np : 1;
    JsNode *n = &s->node[id];
    n->key = calloc((size_t)cap, sizeof *n->key);
    n->klen = calloc((size_t)cap, sizeof *n->klen);
    n->prop = calloc((size_t)cap, sizeof *n->prop);
    n->req = calloc((size_t)cap, 1);
    n->req_after = calloc((size_t)cap + 1, sizeof *n->req_after);
    if (!n->key || !n->klen || !n->prop || !n->req || !n->req_after) return err_set(e, "schema: out of memory");
    n->free_keys = !props && !cJSON_IsFalse(addl); /* "properties": {} declares none */
    n->item = n->free_keys ? addl_node : -1;
    if (n->free_keys && any_node(s, e) < 0) return -1; /* the keys are free strings */
    const cJSON *p;
    int i = 0;
    cJSON_ArrayForEach(p, props)
    {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.properties.%s", where, p->string);
        int child = compile_node(s, p, lenient, sub, depth + 1, e);
        if (child < 0) return -1;
        n = &s->node[id];
        if (!(n->key[i] = escaped(p->string, &n->klen[i]))) return err_set(e, "schema: out of memory");
        n->prop[i] = child;
        cJSON_ArrayForEach(r, req) if (!strcmp(r->valuestring, p->string)) n->req[i] = 1;
        n->n = ++i;
    }
    int nreq = 0;
    for (i = np - 1; i >= 0; i--) {
        n->req_after[i] = n->req_after[i + 1];
        if (n->req[i]) {
            n->req_after[i] += 1 + n->klen[i] + 3 + s->node[n->prop[i]].minlen;
            nreq++;
        }
    }
    n->minlen = 2 + n->req_after[0] - (nreq ? 1 : 0);
    set_first(n, '{');
    return id;
}

static int array_node(JsSchema *s, const cJSON *sch, int lenient, const char *where, int depth, Err *e)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(sch, "items");
    int mn = 0, mx = -1, item;
    if (get_count(sch, "minItems", &mn, where, e) || get_count(sch, "maxItems", &mx, where, e)) return -1;
    if (mx >= 0 && mn > mx) return err_set(e, "%s: minItems %d > maxItems %d", where, mn, mx);
    if (items && !cJSON_IsObject(items) && !cJSON_IsBool(items))
        return err_set(e, "%s: items: only one schema for every item is supported (not a list)", where);
    char sub[512];
    snprintf(sub, sizeof sub, "%s.items", where);
    item = items ? compile_node(s, items, lenient, sub, depth + 1, e) : any_node(s, e);
    if (item < 0) return -1;
    int id = node_new(s, JS_ARRAY, e);
    if (id < 0) return -1;
    JsNode *n = &s->node[id];
    n->item = item;
    n->min_items = mn;
    n->max_items = mx;
    long ml = 2 + (long)mn * s->node[item].minlen + (mn ? mn - 1 : 0);
    if (ml > 1 << 20) return err_set(e, "%s: minItems %d makes the shortest value %ld bytes", where, mn, ml);
    n->minlen = (int)ml;
    set_first(n, '[');
    return id;
}

/* One node for a schema restricted to one type name. */
static int typed_node(JsSchema *s, const cJSON *sch, const char *type, int lenient, const char *where, int depth,
                      Err *e)
{
    if (!strcmp(type, "object")) return object_node(s, sch, lenient, where, depth, e);
    if (!strcmp(type, "array")) return array_node(s, sch, lenient, where, depth, e);
    if (!strcmp(type, "boolean") || !strcmp(type, "null")) {
        cJSON *l = cJSON_Parse(type[0] == 'b' ? "[true,false]" : "[null]");
        int id = l ? literals_node(s, l, where, e) : err_set(e, "schema: out of memory");
        cJSON_Delete(l);
        return id;
    }
    if (!strcmp(type, "string")) {
        int mn = 0, mx = -1;
        if (get_count(sch, "minLength", &mn, where, e) || get_count(sch, "maxLength", &mx, where, e)) return -1;
        if (mx >= 0 && mn > mx) return err_set(e, "%s: minLength %d > maxLength %d", where, mn, mx);
        int id = node_new(s, JS_STRING, e);
        if (id < 0) return -1;
        JsNode *n = &s->node[id];
        n->min_len = mn;
        n->max_len = mx;
        n->minlen = 2 + mn;
        set_first(n, '"');
        return id;
    }
    if (!strcmp(type, "number") || !strcmp(type, "integer")) {
        double lo = -INFINITY, hi = INFINITY, xlo = 0, xhi = 0;
        int hlo, hhi, hxlo, hxhi;
        if (get_bound(sch, "minimum", &lo, &hlo, where, e) || get_bound(sch, "maximum", &hi, &hhi, where, e) ||
            get_bound(sch, "exclusiveMinimum", &xlo, &hxlo, where, e) ||
            get_bound(sch, "exclusiveMaximum", &xhi, &hxhi, where, e))
            return -1;
        int id = node_new(s, type[0] == 'i' ? JS_INTEGER : JS_NUMBER, e);
        if (id < 0) return -1;
        JsNode *n = &s->node[id];
        n->lo = lo;
        n->hi = hi;
        n->ilo = ceil(lo);
        n->ihi = floor(hi);
        if (hxlo) {
            if (xlo >= n->lo) n->lo = nextafter(xlo, INFINITY);
            if (floor(xlo) + 1 > n->ilo) n->ilo = floor(xlo) + 1;
        }
        if (hxhi) {
            if (xhi <= n->hi) n->hi = nextafter(xhi, -INFINITY);
            if (ceil(xhi) - 1 < n->ihi) n->ihi = ceil(xhi) - 1;
        }
        return finish_number(n, where, e) ? -1 : id;
    }
    return err_set(e, "%s: type \"%s\": expected string, number, integer, boolean, null, object or array", where, type);
}

static int compile_node(JsSchema *s, const cJSON *sch, int lenient, const char *where, int depth, Err *e)
{
    if (depth > MAX_DEPTH) return err_set(e, "%s: schema nested deeper than %d levels", where, MAX_DEPTH);
    if (cJSON_IsTrue(sch)) return any_node(s, e);
    if (cJSON_IsFalse(sch)) return err_set(e, "%s: the schema false accepts no value", where);
    if (!cJSON_IsObject(sch)) return err_set(e, "%s: expected a schema object", where);
    const cJSON *k;
    cJSON_ArrayForEach(k, sch)
    {
        if (in_list(k->string, KEYWORDS) || in_list(k->string, ANNOTATIONS)) continue;
        if (!lenient)
            return err_set(e, "%s: keyword \"%s\" is not supported (supported: type, properties, required, "
                              "additionalProperties, enum, const, anyOf, items, minItems, maxItems, minLength, "
                              "maxLength, minimum, maximum, exclusiveMinimum, exclusiveMaximum)",
                           where, k->string);
    }
    const cJSON *cst = cJSON_GetObjectItemCaseSensitive(sch, "const");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(sch, "enum");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(sch, "anyOf");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(sch, "type");
    if (cst) {
        cJSON *l = cJSON_CreateArray();
        cJSON *c = cJSON_Duplicate(cst, 1);
        if (!l || !c) {
            cJSON_Delete(l);
            cJSON_Delete(c);
            return err_set(e, "schema: out of memory");
        }
        cJSON_AddItemToArray(l, c);
        int id = literals_node(s, l, where, e);
        cJSON_Delete(l);
        return id;
    }
    if (en) {
        if (!cJSON_IsArray(en)) return err_set(e, "%s: enum: expected an array", where);
        return literals_node(s, en, where, e);
    }
    if (any) {
        int cnt = cJSON_GetArraySize(any);
        if (!cJSON_IsArray(any) || cnt == 0) return err_set(e, "%s: anyOf: expected a non-empty array", where);
        if (type) return err_set(e, "%s: anyOf together with type is not supported (put type in each branch)", where);
        int *alts = malloc((size_t)cnt * sizeof *alts), i = 0, rc = 0;
        if (!alts) return err_set(e, "schema: out of memory");
        const cJSON *a;
        cJSON_ArrayForEach(a, any)
        {
            char sub[512];
            snprintf(sub, sizeof sub, "%s.anyOf[%d]", where, i);
            if ((alts[i++] = compile_node(s, a, lenient, sub, depth + 1, e)) < 0) {
                rc = -1;
                break;
            }
        }
        int id = rc ? -1 : union_node(s, alts, cnt, e);
        free(alts);
        return id;
    }
    if (!type) {
        if (cJSON_GetObjectItemCaseSensitive(sch, "properties") || cJSON_GetObjectItemCaseSensitive(sch, "required"))
            return object_node(s, sch, lenient, where, depth, e);
        if (cJSON_GetObjectItemCaseSensitive(sch, "items")) return array_node(s, sch, lenient, where, depth, e);
        return any_node(s, e);
    }
    if (cJSON_IsString(type)) return typed_node(s, sch, type->valuestring, lenient, where, depth, e);
    int cnt = cJSON_GetArraySize(type);
    if (!cJSON_IsArray(type) || cnt == 0 || cnt > 7)
        return err_set(e, "%s: type: expected a type name or a list of them", where);
    int alts[7], i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, type)
    {
        if (!cJSON_IsString(t)) return err_set(e, "%s: type: expected a type name or a list of them", where);
        if ((alts[i++] = typed_node(s, sch, t->valuestring, lenient, where, depth, e)) < 0) return -1;
    }
    return union_node(s, alts, cnt, e);
}

int jschema_compile(JsSchema *s, const cJSON *schema, int lenient, const char *where, Err *e)
{
    memset(s, 0, sizeof *s);
    s->str_any = s->any = -1;
    s->root = compile_node(s, schema, lenient, where ? where : "schema", 0, e);
    if (s->root < 0) {
        jschema_free(s);
        return -1;
    }
    if (any_node(s, e) < 0) { /* free keys need it even when unused */
        jschema_free(s);
        return -1;
    }
    return 0;
}

int jschema_compile_tools(JsSchema *s, const cJSON *tools, const char *only, Err *e)
{
    memset(s, 0, sizeof *s);
    s->str_any = s->any = -1;
    if (!cJSON_IsArray(tools)) return err_set(e, "tools: expected a JSON array");
    int cnt = cJSON_GetArraySize(tools), id = -1, i = 0;
    if (any_node(s, e) < 0) goto fail;
    if ((id = node_new(s, JS_CALL, e)) < 0) goto fail;
    JsNode *n = &s->node[id];
    n->lit = calloc((size_t)cnt + 1, sizeof *n->lit);
    n->llen = calloc((size_t)cnt + 1, sizeof *n->llen);
    n->alt = calloc((size_t)cnt + 1, sizeof *n->alt);
    if (!n->lit || !n->llen || !n->alt) {
        err_set(e, "schema: out of memory");
        goto fail;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        char where[320];
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        if (!cJSON_IsObject(t) || (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "function")))) {
            err_set(e, "tools[%d]: expected {\"type\": \"function\", \"function\": {...}}", i);
            goto fail;
        }
        if (!cJSON_IsObject(fn) || !cJSON_IsString(name) || !name->valuestring[0]) {
            err_set(e, "tools[%d].function.name: expected a non-empty string", i);
            goto fail;
        }
        for (int j = 0; j < s->node[id].n; j++) {
            char *q = escaped(name->valuestring, &(int){0});
            int dup = q && !strncmp(s->node[id].lit[j] + 1, q, strlen(q)) &&
                      s->node[id].llen[j] == (int)strlen(q) + 2;
            free(q);
            if (dup) {
                err_set(e, "tools[%d].function.name: \"%s\" is declared twice", i, name->valuestring);
                goto fail;
            }
        }
        i++;
        if (only && strcmp(only, name->valuestring)) continue;
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        snprintf(where, sizeof where, "tools[%d] (%.200s).function.parameters", i - 1, name->valuestring);
        int args;
        if (params) args = compile_node(s, params, 0, where, 0, e);
        else {
            cJSON *empty = cJSON_Parse("{\"type\":\"object\",\"additionalProperties\":false}");
            args = empty ? compile_node(s, empty, 0, where, 0, e) : err_set(e, "schema: out of memory");
            cJSON_Delete(empty);
        }
        if (args < 0) goto fail;
        if (s->node[args].kind != JS_OBJECT) {
            err_set(e, "%s: expected an object schema (\"type\": \"object\")", where);
            goto fail;
        }
        n = &s->node[id];
        int ql;
        char *q = escaped(name->valuestring, &ql);
        char *lit = q ? malloc((size_t)ql + 3) : NULL;
        if (!lit) {
            free(q);
            err_set(e, "schema: out of memory");
            goto fail;
        }
        snprintf(lit, (size_t)ql + 3, "\"%s\"", q);
        free(q);
        n->lit[n->n] = lit;
        n->llen[n->n] = ql + 2;
        n->alt[n->n] = args;
        n->n++;
    }
    n = &s->node[id];
    if (only && n->n == 0) {
        err_set(e, "tool choice \"%s\": no tool of that name", only);
        goto fail;
    }
    if (n->n == 0) {
        err_set(e, "tools: the list is empty");
        goto fail;
    }
    /* {"name":NAME,"arguments":ARGS} */
    n->minlen = 1 << 30;
    for (int j = 0; j < n->n; j++) {
        int l = 8 + n->llen[j] + 13 + s->node[n->alt[j]].minlen + 1;
        if (l < n->minlen) n->minlen = l;
    }
    set_first(n, '{');
    s->root = id;
    return 0;
fail:
    jschema_free(s);
    return -1;
}

void jschema_strip_unknown(cJSON *schema)
{
    if (!cJSON_IsObject(schema)) return;
    cJSON *k = schema->child;
    while (k) {
        cJSON *next = k->next;
        if (!in_list(k->string, KEYWORDS) && !in_list(k->string, ANNOTATIONS)) cJSON_DetachItemViaPointer(schema, k), cJSON_Delete(k);
        else if (!strcmp(k->string, "properties")) {
            for (cJSON *p = k->child; p; p = p->next) jschema_strip_unknown(p);
        } else if (!strcmp(k->string, "items")) {
            if (cJSON_IsArray(k)) cJSON_DeleteItemFromObjectCaseSensitive(schema, "items");
            else jschema_strip_unknown(k);
        } else if (!strcmp(k->string, "anyOf")) {
            for (cJSON *p = k->child; p; p = p->next) jschema_strip_unknown(p);
        } else if (!strcmp(k->string, "additionalProperties") && !cJSON_IsBool(k)) {
            cJSON_DeleteItemFromObjectCaseSensitive(schema, "additionalProperties");
        }
        k = next;
    }
    /* anyOf beside type is outside the subset: keep anyOf */
    if (cJSON_GetObjectItemCaseSensitive(schema, "anyOf")) cJSON_DeleteItemFromObjectCaseSensitive(schema, "type");
}
