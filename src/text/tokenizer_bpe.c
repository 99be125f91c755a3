/* tokenizer_bpe.c - the hash maps of a Tokenizer and the BPE merge loop.
 * The merge loop follows HF's BPE::merge_word: repeatedly apply the merge of
 * lowest rank among adjacent symbol pairs, leftmost first, using a binary
 * heap with lazy invalidation, so a long word costs O(n log n). */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "text/tokenizer_impl.h"

uint64_t tok_hash(const void *p, size_t len)
{
    return XXH3_64bits(p, len);
}

int strmap_init(StrMap *m, size_t n_keys)
{
    size_t cap = 16;
    while (cap < n_keys * 2) cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot) return -1;
    memset(m->slot, 0xff, cap * sizeof *m->slot);
    m->mask = (uint32_t)(cap - 1);
    return 0;
}

void strmap_free(StrMap *m)
{
    free(m->slot);
    m->slot = NULL;
}

static int key_eq(const Tokenizer *t, int id, const char *s, size_t len)
{
    uint32_t a = t->str_off[id], b = t->str_off[id + 1];
    return b - a == len && memcmp(t->str + a, s, len) == 0;
}

void strmap_put(StrMap *m, const Tokenizer *t, int id)
{
    const char *s = t->str + t->str_off[id];
    size_t len = t->str_off[id + 1] - t->str_off[id];
    uint32_t h = (uint32_t)tok_hash(s, len) & m->mask;
    while (m->slot[h] >= 0 && !key_eq(t, m->slot[h], s, len)) h = (h + 1) & m->mask;
    m->slot[h] = id;
}

int strmap_get(const StrMap *m, const Tokenizer *t, const char *s, size_t len)
{
    uint32_t h = (uint32_t)tok_hash(s, len) & m->mask;
    while (m->slot[h] >= 0) {
        if (key_eq(t, m->slot[h], s, len)) return m->slot[h];
        h = (h + 1) & m->mask;
    }
    return -1;
}

static uint32_t merge_hash(uint64_t key, uint32_t mask)
{
    key ^= key >> 29;
    key *= 0xbf58476d1ce4e5b9ull;
    key ^= key >> 32;
    return (uint32_t)key & mask;
}

const MergeSlot *merge_get(const Tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h = merge_hash(key, t->merge_mask);
    for (;;) {
        const MergeSlot *s = &t->merge[h];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        h = (h + 1) & t->merge_mask;
    }
}

void merge_put(Tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t id)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h = merge_hash(key, t->merge_mask);
    while (t->merge[h].key != UINT64_MAX && t->merge[h].key != key) h = (h + 1) & t->merge_mask;
    t->merge[h].key = key;
    t->merge[h].rank = rank;
    t->merge[h].id = id;
}

int intvec_push(IntVec *v, int x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv) return -1;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

typedef struct BpeHeapEnt {
    uint32_t rank, pos;
    int32_t id;
} BpeHeapEnt;

void bpe_scratch_free(BpeScratch *s)
{
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->len);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static int scratch_reserve(BpeScratch *s, size_t n)
{
    if (n <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    int32_t *id = realloc(s->id, cap * sizeof *id);
    if (id) s->id = id;
    int32_t *prev = realloc(s->prev, cap * sizeof *prev);
    if (prev) s->prev = prev;
    int32_t *next = realloc(s->next, cap * sizeof *next);
    if (next) s->next = next;
    uint32_t *len = realloc(s->len, cap * sizeof *len);
    if (len) s->len = len;
    if (!id || !prev || !next || !len) return -1;
    s->cap = cap;
    return 0;
}

static int heap_less(const BpeHeapEnt *a, const BpeHeapEnt *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(BpeScratch *s, size_t *n, BpeHeapEnt e)
{
    if (*n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 128;
        BpeHeapEnt *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return -1;
        s->heap = h;
        s->heap_cap = cap;
    }
    BpeHeapEnt *h = s->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
    return 0;
}

static BpeHeapEnt heap_pop(BpeScratch *s, size_t *n)
{
    BpeHeapEnt *h = s->heap, top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0) h[i] = last;
    return top;
}

/* pushes the merge of symbol a with its right neighbour, if there is one */
static int push_pair(const Tokenizer *t, BpeScratch *s, size_t *hn, int32_t a)
{
    if (a < 0 || s->next[a] < 0) return 0;
    const MergeSlot *m = merge_get(t, s->id[a], s->id[s->next[a]]);
    if (!m) return 0;
    BpeHeapEnt e = {m->rank, (uint32_t)a, m->id};
    return heap_push(s, hn, e);
}

/* model.ignore_merges: a word spelled exactly like a vocab entry is that entry */
static int whole_word_id(const Tokenizer *t, const unsigned char *w, size_t len)
{
    char buf[512];
    size_t k = 0;
    if (len > sizeof buf / 2) return -1;
    for (size_t i = 0; i < len; i++) k += (size_t)utf8_put((unsigned char *)buf + k, bytelevel_char(w[i]));
    return strmap_get(&t->vocab, t, buf, k);
}

int bpe_word(const Tokenizer *t, const unsigned char *w, size_t len, BpeScratch *s, IntVec *out)
{
    if (t->ignore_merges) {
        int id = whole_word_id(t, w, len);
        if (id >= 0) return intvec_push(out, id);
    }
    if (scratch_reserve(s, len) < 0) return -1;
    int32_t ns = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t id = t->byte_id[w[i]];
        if (id < 0) continue; /* no unk token: HF drops the character */
        s->id[ns] = id;
        s->prev[ns] = ns - 1;
        s->next[ns] = ns + 1;
        s->len[ns] = 1;
        ns++;
    }
    if (ns == 0) return 0;
    s->next[ns - 1] = -1;
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        if (push_pair(t, s, &hn, i) < 0) return -1;
    while (hn > 0) {
        BpeHeapEnt e = heap_pop(s, &hn);
        int32_t a = (int32_t)e.pos;
        if (s->len[a] == 0 || s->next[a] < 0) continue;
        int32_t b = s->next[a];
        const MergeSlot *m = merge_get(t, s->id[a], s->id[b]);
        if (!m || m->id != e.id) continue; /* stale: a neighbour changed since the push */
        s->id[a] = m->id;
        s->len[a] += s->len[b];
        s->len[b] = 0;
        s->next[a] = s->next[b];
        if (s->next[b] >= 0) s->prev[s->next[b]] = a;
        if (push_pair(t, s, &hn, s->prev[a]) < 0 || push_pair(t, s, &hn, a) < 0) return -1;
    }
    for (int32_t i = 0; i >= 0; i = s->next[i])
        if (intvec_push(out, s->id[i]) < 0) return -1;
    return 0;
}
