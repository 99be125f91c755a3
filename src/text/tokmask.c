/* tokmask.c - the vocabulary trie and the token masks of a JSON constraint. */
#include "text/tokmask.h"

#include <stdlib.h>
#include <string.h>

#include "text/utf8.h"

static const char OPEN_TAG[] = "<tool_call>", CLOSE_TAG[] = "</tool_call>";
#define OPEN_LEN ((int)sizeof OPEN_TAG - 1)
#define CLOSE_LEN ((int)sizeof CLOSE_TAG - 1)

/* ---- the trie ---- */

typedef struct TokRef {
    const unsigned char *p;
    int len, id;
} TokRef;

static int cmp_ref(const void *a, const void *b)
{
    const TokRef *x = a, *y = b;
    int m = x->len < y->len ? x->len : y->len, c = memcmp(x->p, y->p, (size_t)m);
    if (c) return c;
    if (x->len != y->len) return x->len - y->len;
    return x->id - y->id;
}

/* Code points of a plain token (all bytes plain string characters, whole
 * UTF-8 sequences), or -1. */
static int plain_cps(const unsigned char *p, int len)
{
    int cps = 0;
    for (int i = 0; i < len;) {
        if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\') return -1;
        int k = utf8_check(p + i, (size_t)(len - i));
        if (k <= 0) return -1;
        i += k;
        cps++;
    }
    return cps;
}

/* Builds the preorder trie of the sorted refs (duplicates share a node). */
static int trie_build(TrieNodes *t, const TokRef *r, int n, int32_t *dup, Err *e)
{
    size_t total = 1;
    for (int i = 0; i < n; i++) total += (size_t)r[i].len;
    t->byte = malloc(total);
    t->tok = malloc(total * sizeof *t->tok);
    t->end = malloc(total * sizeof *t->end);
    int32_t *path = malloc((total < 4096 ? total : 4096) * sizeof *path);
    if (!t->byte || !t->tok || !t->end || !path) {
        free(path);
        return err_set(e, "token trie: out of memory");
    }
    int depth = 0; /* path[0..depth) = nodes of the previous token */
    t->n = 0;
    for (int i = 0; i < n; i++) {
        int l = 0;
        if (i > 0) {
            int m = r[i - 1].len < r[i].len ? r[i - 1].len : r[i].len;
            while (l < m && l < depth && r[i - 1].p[l] == r[i].p[l]) l++;
        }
        if (i > 0 && l == r[i].len && r[i].len == r[i - 1].len) { /* same bytes as the previous token */
            int first = t->tok[path[l - 1]];
            while (dup[first] >= 0) first = dup[first];
            dup[first] = r[i].id;
            continue;
        }
        while (depth > l) {
            depth--;
            t->end[path[depth]] = t->n;
        }
        for (int k = l; k < r[i].len && k < 4096; k++) {
            int id = t->n++;
            t->byte[id] = r[i].p[k];
            t->tok[id] = -1;
            path[depth++] = id;
        }
        t->tok[path[depth - 1]] = r[i].id;
    }
    while (depth > 0) t->end[path[--depth]] = t->n;
    free(path);
    return 0;
}

void toktrie_free(TokTrie *tt)
{
    if (!tt) return;
    TrieNodes *ts[2] = {&tt->all, &tt->odd};
    for (int i = 0; i < 2; i++) {
        free(ts[i]->byte);
        free(ts[i]->tok);
        free(ts[i]->end);
    }
    free(tt->dup);
    free(tt->plain);
    free(tt->plain_ids);
    free(tt->plain_cps);
    memset(tt, 0, sizeof *tt);
}

static int cmp_cps(const void *a, const void *b)
{
    const int32_t *x = a, *y = b;
    return x[1] != y[1] ? x[1] - y[1] : x[0] - y[0];
}

int toktrie_build(TokTrie *tt, const Tokenizer *t, int n_vocab, Err *e)
{
    memset(tt, 0, sizeof *tt);
    int nid = tokenizer_vocab_size(t);
    if (nid > n_vocab) nid = n_vocab;
    tt->n_vocab = n_vocab;
    tt->words = (n_vocab + 31) / 32;
    TokRef *r = malloc((size_t)(nid ? nid : 1) * sizeof *r);
    int32_t *pairs = malloc((size_t)(nid ? nid : 1) * 2 * sizeof *pairs);
    tt->dup = malloc((size_t)n_vocab * sizeof *tt->dup);
    tt->plain = calloc((size_t)tt->words, sizeof *tt->plain);
    if (!r || !pairs || !tt->dup || !tt->plain) goto oom;
    for (int i = 0; i < n_vocab; i++) tt->dup[i] = -1;
    int n = 0, np = 0;
    for (int id = 0; id < nid; id++) {
        size_t len;
        const char *b = tokenizer_token_bytes(t, id, &len);
        if (!b || !len || tokenizer_is_added(t, id) || len > 4096) continue;
        r[n++] = (TokRef){(const unsigned char *)b, (int)len, id};
        if ((int)len > tt->max_len) tt->max_len = (int)len;
        int cps = plain_cps((const unsigned char *)b, (int)len);
        if (cps > 0) {
            tt->plain[id >> 5] |= 1u << (id & 31);
            pairs[2 * np] = id;
            pairs[2 * np + 1] = cps;
            np++;
        }
    }
    qsort(r, (size_t)n, sizeof *r, cmp_ref);
    if (trie_build(&tt->all, r, n, tt->dup, e)) goto fail;
    int no = 0; /* the odd tokens, still sorted */
    for (int i = 0; i < n; i++)
        if (!(tt->plain[r[i].id >> 5] >> (r[i].id & 31) & 1)) r[no++] = r[i];
    int32_t *dup2 = malloc((size_t)n_vocab * sizeof *dup2); /* duplicates are already chained in dup */
    if (!dup2) goto oom;
    for (int i = 0; i < n_vocab; i++) dup2[i] = -1;
    int rc = trie_build(&tt->odd, r, no, dup2, e);
    free(dup2);
    if (rc) goto fail;
    qsort(pairs, (size_t)np, 2 * sizeof *pairs, cmp_cps);
    tt->plain_ids = malloc((size_t)(np ? np : 1) * sizeof *tt->plain_ids);
    tt->plain_cps = malloc((size_t)(np ? np : 1) * sizeof *tt->plain_cps);
    if (!tt->plain_ids || !tt->plain_cps) goto oom;
    for (int i = 0; i < np; i++) {
        tt->plain_ids[i] = pairs[2 * i];
        tt->plain_cps[i] = pairs[2 * i + 1];
    }
    tt->n_plain = np;
    free(r);
    free(pairs);
    return 0;
oom:
    err_set(e, "token trie: out of memory");
fail:
    free(r);
    free(pairs);
    toktrie_free(tt);
    return -1;
}

/* ---- the constraint ---- */

int constraint_init(Constraint *c, const TokTrie *tt, const JsSchema *sch, int kind, int lazy, int open_id,
                    int close_id, const int *eos, int n_eos, Err *e)
{
    memset(c, 0, sizeof *c);
    c->tt = tt;
    c->sch = sch;
    c->kind = kind;
    c->lazy = kind == CK_CALLS && lazy;
    c->open_id = open_id;
    c->close_id = close_id;
    for (int i = 0; i < n_eos && i < 8; i++) c->eos[c->n_eos++] = eos[i];
    int depth = tt->max_len + 2;
    c->stk = malloc((size_t)depth * sizeof *c->stk);
    c->at = malloc((size_t)depth * sizeof *c->at);
    c->lim = malloc((size_t)depth * sizeof *c->lim);
    if (!c->stk || !c->at || !c->lim) {
        constraint_free(c);
        return err_set(e, "constraint: out of memory");
    }
    c->cur.phase = kind == CK_ANSWER ? PH_JSON : c->lazy ? PH_FREE : PH_OPEN;
    jm_init(&c->cur.js, sch);
    return 0;
}

void constraint_free(Constraint *c)
{
    if (!c) return;
    free(c->stk);
    free(c->at);
    free(c->lim);
    memset(c, 0, sizeof *c);
}

static void cs_copy(CState *d, const CState *s)
{
    d->phase = s->phase;
    d->pos = s->pos;
    d->ws = s->ws;
    jm_copy(&d->js, &s->js);
}

static int is_ws(int x) { return x == ' ' || x == '\n'; }

/* One byte through the phases: 1 accepted, 0 refused. */
static int cs_step(const Constraint *c, CState *s, int x)
{
    for (;;) {
        switch (s->phase) {
        case PH_FREE:
            if (c->lazy) { /* a call opened as text */
                s->pos = x == (unsigned char)OPEN_TAG[s->pos] ? s->pos + 1 : x == '<';
                if (s->pos == OPEN_LEN) {
                    s->phase = PH_JSON;
                    s->pos = 0;
                    jm_init(&s->js, c->sch);
                }
            }
            return 1;
        case PH_OPEN:
        case PH_AFTER:
        case PH_CLOSE: {
            int open = s->phase != PH_CLOSE, tid = open ? c->open_id : c->close_id;
            const char *tag = open ? OPEN_TAG : CLOSE_TAG;
            if (s->pos == 0 && is_ws(x)) {
                if (s->ws >= JM_MAX_WS) return 0;
                s->ws++;
                return 1;
            }
            if (tid >= 0 || x != (unsigned char)tag[s->pos]) return 0;
            if (tag[++s->pos]) return 1;
            s->pos = s->ws = 0;
            if (open) {
                s->phase = PH_JSON;
                jm_init(&s->js, c->sch);
            } else {
                s->phase = c->lazy ? PH_FREE : PH_AFTER;
            }
            return 1;
        }
        case PH_JSON: {
            int r = jm_step(&s->js, x);
            if (r == JM_REJECT) return 0;
            if (s->js.done) {
                s->phase = c->kind == CK_ANSWER ? PH_END : PH_CLOSE;
                s->pos = s->ws = 0;
            }
            if (r == JM_OK) return 1;
            continue; /* JM_END: the byte belongs to the next phase */
        }
        default: return 0;
        }
    }
}

static int cs_need(const Constraint *c, const CState *s)
{
    int close = c->kind == CK_CALLS ? (c->close_id >= 0 ? 1 : CLOSE_LEN) : 0;
    switch (s->phase) {
    case PH_OPEN: return (c->open_id >= 0 ? 1 : OPEN_LEN - s->pos) + c->sch->node[c->sch->root].minlen + close;
    case PH_JSON: return jm_need(&s->js) + close;
    case PH_CLOSE: return c->close_id >= 0 ? 1 : CLOSE_LEN - s->pos;
    default: return 0;
    }
}

int constraint_need(const Constraint *c) { return cs_need(c, &c->cur); }

int constraint_done(const Constraint *c)
{
    const CState *s = &c->cur;
    if (s->phase == PH_END || (s->phase == PH_FREE && !c->lazy)) return 1;
    if (s->phase == PH_FREE) return s->pos == 0;
    if (s->phase == PH_AFTER) return s->pos == 0;
    return c->kind == CK_ANSWER && s->phase == PH_JSON && jm_can_end(&s->js);
}

static void set_bit(uint32_t *mask, int id) { mask[id >> 5] |= 1u << (id & 31); }

/* Sets the bits of the tokens of `t` that the automaton takes from `start`.
 * steer: a token is allowed only if what is left after it fits `left - 1`. */
static void walk(Constraint *c, const TrieNodes *t, const CState *start, int steer, int left, uint32_t *mask)
{
    CState *st = c->stk;
    int d = 0;
    cs_copy(&st[0], start);
    c->at[0] = 0;
    c->lim[0] = t->n;
    for (;;) {
        if (c->at[d] >= c->lim[d]) {
            if (d == 0) return;
            d--;
            c->at[d] = t->end[c->at[d]];
            continue;
        }
        int i = c->at[d];
        cs_copy(&st[d + 1], &st[d]);
        if (!cs_step(c, &st[d + 1], t->byte[i])) {
            c->at[d] = t->end[i];
            continue;
        }
        if (t->tok[i] >= 0 && (!steer || cs_need(c, &st[d + 1]) <= left - 1))
            for (int id = t->tok[i]; id >= 0; id = c->tt->dup[id]) set_bit(mask, id);
        if (st[d + 1].phase == PH_FREE && d + 1 > 0) { /* lazy: past the closing tag, the rest is free */
            for (int j = i + 1; j < t->end[i]; j++)
                if (t->tok[j] >= 0)
                    for (int id = t->tok[j]; id >= 0; id = c->tt->dup[id]) set_bit(mask, id);
            c->at[d] = t->end[i];
            continue;
        }
        d++;
        c->at[d] = i + 1;
        c->lim[d] = t->end[i];
    }
}

static int is_eos(const Constraint *c, int id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] == id) return 1;
    return 0;
}

int constraint_mask(Constraint *c, const Tokenizer *tok, int left, uint32_t *mask)
{
    (void)tok;
    const TokTrie *tt = c->tt;
    CState *s = &c->cur;
    int root_min = c->sch->node[c->sch->root].minlen;
    int close = c->close_id >= 0 ? 1 : CLOSE_LEN;
    if (s->phase == PH_FREE) {
        if (!c->lazy || c->open_id < 0 || left <= 0 || left - 1 >= root_min + close) return 0;
        memset(mask, 0xff, (size_t)tt->words * sizeof *mask); /* no room for a call: only forbid opening one */
        mask[c->open_id >> 5] &= ~(1u << (c->open_id & 31));
        return 2;
    }
    memset(mask, 0, (size_t)tt->words * sizeof *mask);
    int need = cs_need(c, s);
    int steer = left > 0 && left - 1 < need + 512;
    int room;
    if (s->phase == PH_JSON && jm_in_free_string(&s->js, &room) && (!steer || need <= left - 1)) {
        /* plain characters keep the string open and the need unchanged */
        if (room < 0) {
            memcpy(mask, tt->plain, (size_t)tt->words * sizeof *mask);
        } else {
            for (int i = 0; i < tt->n_plain && tt->plain_cps[i] <= room; i++) set_bit(mask, tt->plain_ids[i]);
        }
        walk(c, &tt->odd, s, steer, left, mask);
    } else if (s->phase != PH_END) {
        walk(c, &tt->all, s, steer, left, mask);
    }
    /* the tag tokens and the end of sequence */
    int tag_free = s->pos == 0;
    if (c->open_id >= 0 && (s->phase == PH_OPEN || s->phase == PH_AFTER) && tag_free &&
        (left <= 0 || left - 1 >= root_min + close))
        set_bit(mask, c->open_id);
    if (c->close_id >= 0 && ((s->phase == PH_CLOSE && tag_free) || (s->phase == PH_JSON && c->kind == CK_CALLS &&
                                                                      jm_can_end(&s->js))))
        set_bit(mask, c->close_id);
    if ((s->phase == PH_END || (s->phase == PH_AFTER && tag_free) ||
         (s->phase == PH_JSON && c->kind == CK_ANSWER && jm_can_end(&s->js))))
        for (int i = 0; i < c->n_eos; i++)
            if (c->eos[i] >= 0 && c->eos[i] < tt->n_vocab) set_bit(mask, c->eos[i]);
    return 1;
}

int constraint_accept(Constraint *c, const Tokenizer *tok, int token)
{
    CState *s = &c->cur;
    if (s->phase == PH_FREE && (!c->lazy || token != c->open_id)) {
        if (!c->lazy) return 0;
        size_t len;
        const char *b = tokenizer_is_added(tok, token) ? NULL : tokenizer_token_bytes(tok, token, &len);
        if (!b) {
            s->pos = 0;
            return 0;
        }
        for (size_t i = 0; i < len; i++)
            if (!cs_step(c, s, (unsigned char)b[i])) { /* the JSON after a text tag went wrong: leave it free */
                c->broken = 1;
                s->phase = PH_FREE;
                s->pos = 0;
                return 0;
            }
        return 0;
    }
    if (token == c->open_id && (s->phase == PH_FREE || s->phase == PH_OPEN || s->phase == PH_AFTER)) {
        s->phase = PH_JSON;
        s->pos = s->ws = 0;
        jm_init(&s->js, c->sch);
        return 0;
    }
    if (token == c->close_id && c->close_id >= 0 && (s->phase == PH_CLOSE || s->phase == PH_JSON)) {
        s->phase = c->lazy ? PH_FREE : PH_AFTER;
        s->pos = s->ws = 0;
        return 0;
    }
    if (is_eos(c, token)) {
        s->phase = PH_END;
        return 0;
    }
    size_t len;
    const char *b = tokenizer_is_added(tok, token) ? NULL : tokenizer_token_bytes(tok, token, &len);
    if (!b) return -1;
    for (size_t i = 0; i < len; i++)
        if (!cs_step(c, s, (unsigned char)b[i])) return -1;
    return 0;
}
