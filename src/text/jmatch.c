/* jmatch.c - the byte automaton of a compiled JSON schema. */
#include "text/jmatch.h"

#include <math.h>
#include <string.h>

/* frame step results */
enum { R_REJECT, R_OK, R_POP_OK, R_POP_AGAIN, R_AGAIN };

/* object states */
enum { OS_START, OS_FIRST, OS_KEY, OS_COLON, OS_VALUE, OS_AFTER, OS_NEXT };
/* array states */
enum { AS_START, AS_FIRST, AS_AFTER, AS_NEXT };
/* string states */
enum { SS_START, SS_IN, SS_ESC, SS_U };
/* number states */
enum { NS_START, NS_MINUS, NS_INT, NS_DOT, NS_FRAC };

/* The call program: {"name":NAME,"arguments":ARGS} with gaps. */
enum { C_LIT, C_WS, C_NAME, C_ARGS };
static const struct {
    int op;
    const char *lit;
} CALL[] = {{C_LIT, "{"},  {C_WS, 0}, {C_LIT, "\"name\""},      {C_WS, 0}, {C_LIT, ":"}, {C_WS, 0},
            {C_NAME, 0},   {C_WS, 0}, {C_LIT, ","},            {C_WS, 0}, {C_LIT, "\"arguments\""},
            {C_WS, 0},     {C_LIT, ":"}, {C_WS, 0},            {C_ARGS, 0}, {C_WS, 0}, {C_LIT, "}"}};
#define CALL_N ((int)(sizeof CALL / sizeof CALL[0]))

static int is_ws(int x) { return x == ' ' || x == '\n'; }

void jm_init(JmState *m, const JsSchema *s)
{
    m->s = s;
    m->n = m->done = m->ws = 0;
}

void jm_copy(JmState *dst, const JmState *src)
{
    dst->s = src->s;
    dst->n = src->n;
    dst->done = src->done;
    dst->ws = src->ws;
    memcpy(dst->f, src->f, (size_t)src->n * sizeof *src->f);
}

static int push(JmState *m, int node)
{
    if (m->n == JM_MAX_FRAMES) return -1;
    JmFrame *f = &m->f[m->n++];
    memset(f, 0, sizeof *f);
    f->node = node;
    return 0;
}

/* ---- numbers ---- */

/* Fewest more integer digits k after magnitude v of nd digits (sign neg)
 * such that some integer so written is in [ilo, ihi]; -1 if none. */
static int num_min_k(const JsNode *n, int neg, double v, int nd)
{
    double p = 1;
    for (int k = 0; nd + k <= 15; k++, p *= 10) {
        double lo, hi;
        if (nd == 0) {
            if (k == 0) continue;
            lo = p / 10;
            hi = p - 1;
        } else {
            if (v == 0 && k > 0) break; /* no digits after a leading zero */
            lo = v * p;
            hi = v * p + p - 1;
        }
        double a = neg ? -hi : lo, b = neg ? -lo : hi;
        if (a <= n->ihi && b >= n->ilo) return k;
    }
    return -1;
}

/* ---- numbers inside one unit (JsNode.cell): [-]P.F, P and the sign fixed ---- */

static int cell_pdigits(const JsNode *n)
{
    int d = 1;
    for (double v = n->cell_p; v >= 10; v /= 10) d++;
    return d;
}

/* Digit i (from the left) of the integer part. */
static int cell_pdigit(const JsNode *n, int i)
{
    double p = 1;
    for (int k = cell_pdigits(n) - 1 - i; k > 0; k--) p *= 10;
    return (int)fmod(floor(n->cell_p / p), 10);
}

static int cell_accepting(const JsNode *n, const JmFrame *f)
{
    return f->st == NS_FRAC && jschema_cell_digits(n, f->c, f->b, 0) == 0;
}

static int step_cell(const JsNode *n, JmFrame *f, int x)
{
    switch (f->st) {
    case NS_START:
        if (n->cell_neg) {
            if (x != '-') return R_REJECT;
            f->st = NS_MINUS;
            return R_OK;
        }
        /* fall through */
    case NS_MINUS:
    case NS_INT:
        if (f->a < cell_pdigits(n)) {
            if (x != '0' + cell_pdigit(n, f->a)) return R_REJECT;
            f->a++;
            f->st = NS_INT;
            return R_OK;
        }
        if (x != '.') return R_REJECT;
        f->st = NS_DOT;
        return R_OK;
    default: /* NS_DOT, NS_FRAC */
        if (x >= '0' && x <= '9' && f->b < 6 && jschema_cell_digits(n, f->c * 10 + (x - '0'), f->b + 1, 0) >= 0) {
            f->c = f->c * 10 + (x - '0');
            f->b++;
            f->st = NS_FRAC;
            return R_OK;
        }
        return cell_accepting(n, f) ? R_POP_AGAIN : R_REJECT;
    }
}

static int need_cell(const JsNode *n, const JmFrame *f)
{
    switch (f->st) {
    case NS_START: return n->minlen;
    case NS_MINUS:
    case NS_INT: return cell_pdigits(n) - f->a + 1 + jschema_cell_digits(n, 0, 0, 1);
    default: {
        int j = jschema_cell_digits(n, f->c, f->b, f->st == NS_DOT);
        return j < 0 ? 1 << 20 : j;
    }
    }
}

static int num_accepting(const JsNode *n, const JmFrame *f)
{
    if (n->cell) return cell_accepting(n, f);
    if (f->st == NS_FRAC) return 1;
    return f->st == NS_INT && num_min_k(n, f->neg, f->v, f->a) == 0;
}

static int frac_ok(const JsNode *n, const JmFrame *f)
{
    if (f->neg) return -(f->v + 1) >= n->lo && -f->v <= n->ihi && -f->v >= n->ilo;
    return f->v >= n->ilo && f->v + 1 <= n->hi && f->v <= n->ihi;
}

static int step_number(const JsNode *n, JmFrame *f, int x)
{
    if (n->cell) return step_cell(n, f, x);
    int digit = x >= '0' && x <= '9';
    switch (f->st) {
    case NS_START:
        if (x == '-') {
            if (num_min_k(n, 1, 0, 0) < 0) return R_REJECT;
            f->neg = 1;
            f->st = NS_MINUS;
            return R_OK;
        }
        /* fall through */
    case NS_MINUS:
    case NS_INT:
        if (digit) {
            if (f->st == NS_INT && f->a == 1 && f->v == 0) break; /* leading zero */
            if (f->st == NS_MINUS && x == '0') return R_REJECT;   /* no -0 */
            double v = f->v * 10 + (x - '0');
            if (num_min_k(n, f->neg, v, f->a + 1) < 0) return R_REJECT;
            f->v = v;
            f->a++;
            f->st = NS_INT;
            return R_OK;
        }
        if (f->st == NS_INT && x == '.' && n->kind == JS_NUMBER && num_accepting(n, f) && frac_ok(n, f)) {
            f->st = NS_DOT;
            return R_OK;
        }
        break;
    case NS_DOT:
    case NS_FRAC:
        if (digit && f->b < 6) {
            f->b++;
            f->st = NS_FRAC;
            return R_OK;
        }
        if (f->st == NS_DOT) return R_REJECT;
        break;
    }
    return num_accepting(n, f) ? R_POP_AGAIN : R_REJECT;
}

static int need_number(const JsNode *n, const JmFrame *f)
{
    if (n->cell) return need_cell(n, f);
    switch (f->st) {
    case NS_START: return n->minlen;
    case NS_DOT: return 1;
    case NS_FRAC: return 0;
    default: {
        int k = num_min_k(n, f->neg, f->v, f->a);
        return k < 0 ? 1 << 20 : k;
    }
    }
}

/* ---- strings ---- */

static int step_string(const JsNode *n, JmFrame *f, int x)
{
    switch (f->st) {
    case SS_START:
        if (x != '"') return R_REJECT;
        f->st = SS_IN;
        return R_OK;
    case SS_IN:
        if (f->b) { /* inside a UTF-8 sequence */
            int lo = 0x80, hi = 0xBF;
            if (f->c == 0xE0) lo = 0xA0;
            else if (f->c == 0xED) hi = 0x9F;
            else if (f->c == 0xF0) lo = 0x90;
            else if (f->c == 0xF4) hi = 0x8F;
            if (x < lo || x > hi) return R_REJECT;
            f->c = 0;
            f->b--;
            return R_OK;
        }
        if (x == '"') return f->a >= n->min_len ? R_POP_OK : R_REJECT;
        if (x < 0x20) return R_REJECT;
        if (n->max_len >= 0 && f->a >= n->max_len) return R_REJECT;
        if (x == '\\') {
            f->a++;
            f->st = SS_ESC;
            return R_OK;
        }
        if (x < 0x80) {
            f->a++;
            return R_OK;
        }
        if (x >= 0xC2 && x <= 0xDF) f->b = 1;
        else if (x >= 0xE0 && x <= 0xEF) f->b = 2;
        else if (x >= 0xF0 && x <= 0xF4) f->b = 3;
        else return R_REJECT;
        f->c = x;
        f->a++;
        return R_OK;
    case SS_ESC:
        if (x == 'u') {
            f->st = SS_U;
            f->b = f->c = 0;
            return R_OK;
        }
        if (!strchr("\"\\/bfnrt", x) || !x) return R_REJECT;
        f->st = SS_IN;
        return R_OK;
    case SS_U: {
        int h = x >= '0' && x <= '9' ? x - '0' : x >= 'a' && x <= 'f' ? x - 'a' + 10 : x >= 'A' && x <= 'F' ? x - 'A' + 10 : -1;
        if (h < 0) return R_REJECT;
        if (f->b == 0 && h == 0xD) f->c = 1;
        else if (f->b == 1 && f->c == 1 && h >= 8) return R_REJECT; /* surrogate */
        if (++f->b == 4) {
            f->st = SS_IN;
            f->b = f->c = 0;
        }
        return R_OK;
    }
    }
    return R_REJECT;
}

static int need_string(const JsNode *n, const JmFrame *f)
{
    int more = n->min_len > f->a ? n->min_len - f->a : 0;
    switch (f->st) {
    case SS_START: return n->minlen;
    case SS_IN: return f->b + more + 1;
    case SS_ESC: return 1 + more + 1;
    default: return 4 - f->b + more + 1;
    }
}

/* ---- literals (enum, const, true, false, null) and the call's names ---- */

static int same_prefix(const JsNode *n, int i, int j, int len)
{
    return n->llen[j] >= len && !memcmp(n->lit[i], n->lit[j], (size_t)len);
}

/* Advances candidate *cand at *pos by x: 1 consumed, 0 no candidate takes x. */
static int lit_take(const JsNode *n, int32_t *cand, int32_t *pos, int x)
{
    for (int j = 0; j < n->n; j++)
        if (n->llen[j] > *pos && same_prefix(n, *cand, j, *pos) && (unsigned char)n->lit[j][*pos] == x) {
            *cand = j;
            (*pos)++;
            return 1;
        }
    return 0;
}

/* 1 if some candidate equal so far is longer than pos; 2 if one ends exactly at pos (bit mask). */
static int lit_status(const JsNode *n, int cand, int pos)
{
    int r = 0;
    for (int j = 0; j < n->n; j++)
        if (same_prefix(n, cand, j, pos)) r |= n->llen[j] > pos ? 1 : n->llen[j] == pos ? 2 : 0;
    return r;
}

static int step_literal(const JsNode *n, JmFrame *f, int x)
{
    if (lit_take(n, &f->a, &f->b, x)) return lit_status(n, f->a, f->b) & 1 ? R_OK : R_POP_OK;
    return f->b > 0 && (lit_status(n, f->a, f->b) & 2) ? R_POP_AGAIN : R_REJECT;
}

static int need_literal(const JsNode *n, const JmFrame *f)
{
    int best = 1 << 20;
    for (int j = 0; j < n->n; j++)
        if (same_prefix(n, f->a, j, f->b) && n->llen[j] - f->b < best) best = n->llen[j] - f->b;
    return best;
}

/* ---- objects ---- */

/* Last property index a key may name next: the first required one from a. */
static int key_limit(const JsNode *n, int a)
{
    for (int j = a; j < n->n; j++)
        if (n->req[j]) return j;
    return n->n - 1;
}

static int key_ok(const JsNode *n, int a, int j, int b, int c)
{
    return j >= a && j <= key_limit(n, a) && n->klen[j] >= c && !memcmp(n->key[j], n->key[b], (size_t)c);
}

static int step_object(JmState *m, const JsNode *n, JmFrame *f, int x)
{
    const JsSchema *s = m->s;
    switch (f->st) {
    case OS_START:
        if (x != '{') return R_REJECT;
        f->st = OS_FIRST;
        return R_OK;
    case OS_FIRST:
    case OS_NEXT:
    case OS_COLON:
    case OS_VALUE:
    case OS_AFTER:
        if (is_ws(x)) {
            if (f->ws >= JM_MAX_WS) return R_REJECT;
            f->ws++;
            return R_OK;
        }
        f->ws = 0;
        if (f->st == OS_COLON) {
            if (x != ':') return R_REJECT;
            f->st = OS_VALUE;
            return R_OK;
        }
        if (f->st == OS_VALUE) {
            f->st = OS_AFTER;
            return push(m, n->free_keys ? (n->item >= 0 ? n->item : s->any) : n->prop[f->b]) ? R_REJECT : R_AGAIN;
        }
        if (f->st == OS_AFTER) {
            if (x == '}') return n->req_after[f->a] == 0 ? R_POP_OK : R_REJECT;
            if (x != ',' || !(n->free_keys || f->a < n->n)) return R_REJECT;
            f->st = OS_NEXT;
            return R_OK;
        }
        if (x == '}' && f->st == OS_FIRST) return n->req_after[0] == 0 ? R_POP_OK : R_REJECT;
        if (x != '"') return R_REJECT;
        if (n->free_keys) {
            f->st = OS_COLON;
            if (push(m, s->str_any)) return R_REJECT;
            m->f[m->n - 1].st = SS_IN;
            return R_OK;
        }
        if (f->a >= n->n) return R_REJECT;
        f->st = OS_KEY;
        f->b = f->a;
        f->c = 0;
        return R_OK;
    case OS_KEY:
        /* a key byte first: a '"' inside a key is escaped, so it never ends one */
        for (int j = f->a; j < n->n; j++)
            if (key_ok(n, f->a, j, f->b, f->c) && n->klen[j] > f->c && (unsigned char)n->key[j][f->c] == x) {
                f->b = j;
                f->c++;
                return R_OK;
            }
        if (x == '"')
            for (int j = f->a; j < n->n; j++)
                if (key_ok(n, f->a, j, f->b, f->c) && n->klen[j] == f->c) {
                    f->b = j;
                    f->a = j + 1;
                    f->st = OS_COLON;
                    return R_OK;
                }
        return R_REJECT;
    }
    return R_REJECT;
}

static int need_object(const JmState *m, const JsNode *n, const JmFrame *f)
{
    const JsSchema *s = m->s;
    int anymin = n->free_keys ? s->node[n->item >= 0 ? n->item : s->any].minlen : 0; /* a free key's value */
    switch (f->st) {
    case OS_START: return n->minlen;
    case OS_FIRST: return n->req_after[0] - (n->req_after[0] ? 1 : 0) + 1;
    case OS_AFTER: return n->req_after[f->a] + 1;
    case OS_VALUE:
        if (n->free_keys) return anymin + 1;
        return s->node[n->prop[f->b]].minlen + n->req_after[f->a] + 1;
    case OS_COLON:
        if (n->free_keys) return 1 + anymin + 1;
        return 1 + s->node[n->prop[f->b]].minlen + n->req_after[f->a] + 1;
    case OS_NEXT:
    case OS_KEY: {
        if (n->free_keys) return 2 + 1 + anymin + 1;
        int best = 1 << 20, c = f->st == OS_KEY ? f->c : 0, b = f->st == OS_KEY ? f->b : f->a;
        for (int j = f->a; j < n->n; j++)
            if (key_ok(n, f->a, j, b, c)) {
                int v = (f->st == OS_NEXT ? 1 : 0) + n->klen[j] - c + 2 + s->node[n->prop[j]].minlen +
                        n->req_after[j + 1] + 1;
                if (v < best) best = v;
            }
        return best;
    }
    }
    return 1 << 20;
}

/* ---- arrays ---- */

static int step_array(JmState *m, const JsNode *n, JmFrame *f, int x)
{
    if (f->st == AS_START) {
        if (x != '[') return R_REJECT;
        f->st = AS_FIRST;
        return R_OK;
    }
    if (is_ws(x)) {
        if (f->ws >= JM_MAX_WS) return R_REJECT;
        f->ws++;
        return R_OK;
    }
    f->ws = 0;
    if (f->st == AS_AFTER) {
        if (x == ']') return f->a >= n->min_items ? R_POP_OK : R_REJECT;
        if (x != ',' || (n->max_items >= 0 && f->a >= n->max_items)) return R_REJECT;
        f->st = AS_NEXT;
        return R_OK;
    }
    if (x == ']' && f->st == AS_FIRST) return n->min_items == 0 ? R_POP_OK : R_REJECT;
    if (n->max_items >= 0 && f->a >= n->max_items) return R_REJECT;
    f->a++;
    f->st = AS_AFTER;
    return push(m, n->item) ? R_REJECT : R_AGAIN;
}

static int need_array(const JmState *m, const JsNode *n, const JmFrame *f)
{
    int ml = m->s->node[n->item].minlen, rem = n->min_items - f->a;
    switch (f->st) {
    case AS_START: return n->minlen;
    case AS_FIRST: return n->min_items ? n->min_items * (ml + 1) : 1;
    case AS_AFTER: return (rem > 0 ? rem * (ml + 1) : 0) + 1;
    default: return ml + (rem - 1 > 0 ? (rem - 1) * (ml + 1) : 0) + 1;
    }
}

/* ---- tool calls: st = program step, a = bytes of a literal, b = tool, c = name bytes ---- */

static int step_call(JmState *m, const JsNode *n, JmFrame *f, int x)
{
    for (;;) {
        if (f->st >= CALL_N) return R_REJECT;
        switch (CALL[f->st].op) {
        case C_WS:
            if (is_ws(x) && f->ws < JM_MAX_WS) {
                f->ws++;
                return R_OK;
            }
            f->ws = 0;
            f->st++;
            continue;
        case C_LIT: {
            const char *l = CALL[f->st].lit;
            if ((unsigned char)l[f->a] != x) return R_REJECT;
            if (l[++f->a]) return R_OK;
            f->a = 0;
            return ++f->st == CALL_N ? R_POP_OK : R_OK;
        }
        case C_NAME:
            if (!lit_take(n, &f->b, &f->c, x)) return R_REJECT;
            if (n->llen[f->b] == f->c) f->st++; /* names are JSON strings: no prefix of another */
            return R_OK;
        case C_ARGS:
            f->st++;
            return push(m, n->alt[f->b]) ? R_REJECT : R_AGAIN;
        }
    }
}

static int need_call(const JmState *m, const JsNode *n, const JmFrame *f)
{
    int lits = 0;
    for (int i = f->st; i < CALL_N; i++)
        if (CALL[i].op == C_LIT) lits += (int)strlen(CALL[i].lit) - (i == f->st ? f->a : 0);
    if (f->st > 6) return lits + (f->st <= 14 ? m->s->node[n->alt[f->b]].minlen : 0);
    int best = 1 << 20;
    for (int j = 0; j < n->n; j++)
        if (same_prefix(n, f->b, j, f->c)) {
            int v = n->llen[j] - f->c + m->s->node[n->alt[j]].minlen;
            if (v < best) best = v;
        }
    return lits + best;
}

/* ---- the stack ---- */

static int step_frame(JmState *m, JmFrame *f, int x)
{
    const JsNode *n = &m->s->node[f->node];
    switch (n->kind) {
    case JS_OBJECT: return step_object(m, n, f, x);
    case JS_ARRAY: return step_array(m, n, f, x);
    case JS_STRING: return step_string(n, f, x);
    case JS_NUMBER:
    case JS_INTEGER: return step_number(n, f, x);
    case JS_LITERALS: return step_literal(n, f, x);
    case JS_CALL: return step_call(m, n, f, x);
    case JS_UNION:
        for (int i = 0; i < n->n; i++)
            if (js_first_has(&m->s->node[n->alt[i]], x)) {
                int node = n->alt[i];
                memset(f, 0, sizeof *f);
                f->node = node;
                return R_AGAIN;
            }
        return R_REJECT;
    }
    return R_REJECT;
}

int jm_step(JmState *m, int x)
{
    if (m->done) return JM_END;
    if (m->n == 0) {
        if (is_ws(x)) {
            if (m->ws >= JM_MAX_WS) return JM_REJECT;
            m->ws++;
            return JM_OK;
        }
        push(m, m->s->root);
    }
    for (;;) {
        switch (step_frame(m, &m->f[m->n - 1], x)) {
        case R_REJECT: return JM_REJECT;
        case R_OK: return JM_OK;
        case R_POP_OK:
            if (--m->n == 0) m->done = 1;
            return JM_OK;
        case R_POP_AGAIN:
            if (--m->n == 0) {
                m->done = 1;
                return JM_END;
            }
            continue;
        default: continue;
        }
    }
}

int jm_can_end(const JmState *m)
{
    if (m->done) return 1;
    if (m->n != 1) return 0;
    const JmFrame *f = &m->f[0];
    const JsNode *n = &m->s->node[f->node];
    if (n->kind == JS_NUMBER || n->kind == JS_INTEGER) return num_accepting(n, f);
    if (n->kind == JS_LITERALS) return f->b > 0 && (lit_status(n, f->a, f->b) & 2);
    return 0;
}

int jm_need(const JmState *m)
{
    if (m->done) return 0;
    if (m->n == 0) return m->s->node[m->s->root].minlen;
    long sum = 0;
    for (int i = 0; i < m->n; i++) {
        const JmFrame *f = &m->f[i];
        const JsNode *n = &m->s->node[f->node];
        switch (n->kind) {
        case JS_OBJECT: sum += need_object(m, n, f); break;
        case JS_ARRAY: sum += need_array(m, n, f); break;
        case JS_STRING: sum += need_string(n, f); break;
        case JS_NUMBER:
        case JS_INTEGER: sum += need_number(n, f); break;
        case JS_LITERALS: sum += need_literal(n, f); break;
        case JS_CALL: sum += need_call(m, n, f); break;
        case JS_UNION: sum += n->minlen; break;
        }
    }
    return sum > 1 << 20 ? 1 << 20 : (int)sum;
}

int jm_in_free_string(const JmState *m, int *room)
{
    if (m->done || m->n == 0) return 0;
    const JmFrame *f = &m->f[m->n - 1];
    const JsNode *n = &m->s->node[f->node];
    if (n->kind != JS_STRING || f->st != SS_IN || f->b) return 0;
    *room = n->max_len < 0 ? -1 : n->max_len - f->a;
    return 1;
}
