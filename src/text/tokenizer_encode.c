/* tokenizer_encode.c - text -> ids, in HF's order: split out the added
 * tokens written in the raw text (leftmost, longest first), NFC-normalize
 * each remaining piece, split out the normalized added tokens, cut the piece
 * with the Split regexes (PCRE2, JIT), then run BPE on each pre-token's bytes.
 * Everything mutable lives in an Enc on the caller's stack, so one Tokenizer
 * serves many threads; the pre-token -> ids cache is per call too. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_impl.h"

/* pre-tokens up to this many bytes go through the per-call cache */
#define CACHE_MAX_WORD 64
#define CACHE_MAX_SLOTS (1u << 16)

/* Regex work (PCRE2 match-limit units, a few ns each with JIT). A split
 * match first runs under REGEX_FIRST units; one that needs more is retried
 * with the limit doubled, every attempt past the first charged to the
 * call's budget of REGEX_BASE + REGEX_PER_BYTE units per byte of text. A
 * plain pattern's match needs more than REGEX_FIRST only on long runs
 * (10 MB of spaces: ~10M units, once); a pattern that backtracks (a
 * hostile tokenizer.json) is stopped once the budget is spent, so the work
 * stays linear in the text (at most REGEX_FIRST per match + the budget). */
#define REGEX_FIRST 2048u
#define REGEX_BASE 100000000ull
#define REGEX_PER_BYTE 1024ull

typedef struct CacheEnt {
    uint64_t hash;
    uint32_t key_off, key_len; /* in Cache.keys */
    uint32_t ids_off, ids_n;   /* in Cache.ids; key_len 0 = empty slot */
} CacheEnt;

typedef struct Cache {
    CacheEnt *slot;
    uint32_t mask, used;
    unsigned char *keys;
    size_t keys_n, keys_cap;
    IntVec ids;
} Cache;

typedef struct Enc {
    const Tokenizer *t;
    IntVec out;
    BpeScratch bpe;
    Cache cache;
    pcre2_match_data *md[9]; /* one per split level: an outer match stays live while inner levels run */
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    unsigned char *pbuf; /* piece with the ByteLevel prefix space */
    size_t pcap;
    uint64_t regex_budget; /* units left for retried matches (REGEX_*) */
    Err *e;
} Enc;

static int oom(Enc *c)
{
    return err_set(c->e, "tokenizer_encode: out of memory");
}

static void enc_free(Enc *c)
{
    free(c->out.v);
    bpe_scratch_free(&c->bpe);
    free(c->cache.slot);
    free(c->cache.keys);
    free(c->cache.ids.v);
    for (int i = 0; i < 9; i++) pcre2_match_data_free(c->md[i]);
    pcre2_match_context_free(c->mctx);
    pcre2_jit_stack_free(c->jstack);
    free(c->pbuf);
}

static int cache_grow(Cache *k)
{
    uint32_t cap = k->slot ? (k->mask + 1) * 2 : 1024;
    CacheEnt *ns = calloc(cap, sizeof *ns);
    if (!ns) return -1;
    for (uint32_t i = 0; k->slot && i <= k->mask; i++) {
        if (!k->slot[i].key_len) continue;
        uint32_t h = (uint32_t)k->slot[i].hash & (cap - 1);
        while (ns[h].key_len) h = (h + 1) & (cap - 1);
        ns[h] = k->slot[i];
    }
    free(k->slot);
    k->slot = ns;
    k->mask = cap - 1;
    return 0;
}

/* BPE of one pre-token, through the cache */
static int word(Enc *c, const unsigned char *w, size_t n)
{
    if (n == 0) return 0;
    if (n > CACHE_MAX_WORD) return bpe_word(c->t, w, n, &c->bpe, &c->out) < 0 ? oom(c) : 0;
    Cache *k = &c->cache;
    uint64_t hash = tok_hash(w, n);
    uint32_t h = 0;
    if (k->slot) {
        for (h = (uint32_t)hash & k->mask; k->slot[h].key_len; h = (h + 1) & k->mask) {
            CacheEnt *s = &k->slot[h];
            if (s->hash == hash && s->key_len == n && !memcmp(k->keys + s->key_off, w, n)) {
                for (uint32_t i = 0; i < s->ids_n; i++)
                    if (intvec_push(&c->out, k->ids.v[s->ids_off + i]) < 0) return oom(c);
                return 0;
            }
        }
    }
    size_t start = c->out.n;
    if (bpe_word(c->t, w, n, &c->bpe, &c->out) < 0) return oom(c);
    /* remember it; a full cache simply stops learning */
    if (!k->slot || k->used * 2 >= k->mask + 1) {
        if ((k->slot && k->mask + 1 >= CACHE_MAX_SLOTS) || cache_grow(k) < 0) return 0;
        for (h = (uint32_t)hash & k->mask; k->slot[h].key_len; h = (h + 1) & k->mask) {}
    }
    if (k->keys_n + n > k->keys_cap) {
        size_t cap = k->keys_cap ? k->keys_cap * 2 : 4096;
        unsigned char *nk = realloc(k->keys, cap);
        if (!nk) return 0;
        k->keys = nk;
        k->keys_cap = cap;
    }
    CacheEnt ent = {hash, (uint32_t)k->keys_n, (uint32_t)n, (uint32_t)k->ids.n, (uint32_t)(c->out.n - start)};
    for (size_t i = start; i < c->out.n; i++)
        if (intvec_push(&k->ids, c->out.v[i]) < 0) return 0;
    memcpy(k->keys + k->keys_n, w, n);
    k->keys_n += n;
    k->slot[h] = ent;
    k->used++;
    return 0;
}

static int split_level(Enc *c, int level, const unsigned char *s, size_t n);

/* After the Split steps: ByteLevel's prefix space and regex, then BPE. */
static int piece(Enc *c, const unsigned char *s, size_t n)
{
    const Tokenizer *t = c->t;
    if (t->prefix_space && s[0] != ' ') {
        if (n + 1 > c->pcap) {
            size_t cap = (n + 1) * 2;
            unsigned char *nb = realloc(c->pbuf, cap);
            if (!nb) return oom(c);
            c->pbuf = nb;
            c->pcap = cap;
        }
        c->pbuf[0] = ' ';
        memcpy(c->pbuf + 1, s, n);
        s = c->pbuf;
        n++;
    }
    if (t->bl_split) return split_level(c, t->n_split, s, n);
    return word(c, s, n);
}

static int emit(Enc *c, int level, const unsigned char *s, size_t n)
{
    if (n == 0) return 0; /* HF drops empty pieces */
    if (level + 1 < c->t->n_split) return split_level(c, level + 1, s, n);
    if (level + 1 == c->t->n_split) return piece(c, s, n);
    return word(c, s, n); /* below the ByteLevel regex */
}

/* Isolated split: every match and every gap between matches is a piece. */
static int split_level(Enc *c, int level, const unsigned char *s, size_t n)
{
    const Tokenizer *t = c->t;
    const pcre2_code *re = level < t->n_split ? t->split[level] : t->bl_split;
    pcre2_match_data *md = c->md[level];
    size_t pos = 0, gap = 0;
    uint64_t limit = REGEX_FIRST;
    while (pos < n) {
        pcre2_set_match_limit(c->mctx, (uint32_t)limit);
        int rc = pcre2_match(re, s, n, pos, PCRE2_NO_UTF_CHECK, md, c->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !c->jstack) {
            /* a pathological piece: give JIT a larger stack and retry */
            c->jstack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
            if (!c->jstack) return oom(c);
            pcre2_jit_stack_assign(c->mctx, NULL, c->jstack);
            continue;
        }
        if (rc == PCRE2_ERROR_MATCHLIMIT) { /* retry with twice the limit, charged to the budget */
            uint64_t next = limit * 2 > UINT32_MAX ? UINT32_MAX : limit * 2;
            if (next > c->regex_budget || next == limit)
                return err_set(c->e,
                               "tokenizer_encode: the pre-tokenizer regex needs too much work at byte %zu of a "
                               "%zu-byte piece (the budget is %llu PCRE2 match steps + %llu per byte of text): the "
                               "Split pattern in tokenizer.json backtracks without bound (use the model's own "
                               "tokenizer.json)",
                               pos, n, REGEX_BASE, REGEX_PER_BYTE);
            c->regex_budget -= next;
            limit = next;
            continue;
        }
        limit = REGEX_FIRST;
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err_set(c->e, "tokenizer_encode: pre-tokenizer regex failed at byte %zu of a %zu-byte piece: %s (the Split pattern in tokenizer.json)", pos, n, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: nothing to isolate, step one character */
            pos = ms + 1;
            while (pos < n && (s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if (emit(c, level, s + gap, ms - gap) < 0 || emit(c, level, s + ms, me - ms) < 0) return -1;
        pos = gap = me;
    }
    return emit(c, level, s + gap, n - gap);
}

/* Rust's char::is_whitespace (the White_Space property) */
static int is_ws(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Rust's char::is_alphanumeric, approximated by the L and N categories */
static int is_word_char(uint32_t c)
{
    if (c == '_') return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* the code point ending just before s + i (valid UTF-8) */
static uint32_t prev_char(const unsigned char *s, size_t i, size_t *start)
{
    size_t j = i - 1;
    while (j > 0 && (s[j] & 0xC0) == 0x80) j--;
    uint32_t cp;
    utf8_next(s + j, i - j, &cp);
    *start = j;
    return cp;
}

typedef int (*GapFn)(Enc *c, const unsigned char *s, size_t n);

/* HF's AddedVocabulary::find_matches: added tokens found leftmost-longest,
 * non-overlapping; single_word / lstrip / rstrip as HF applies them. Text
 * between matches goes to `gap`. */
static int added_split(Enc *c, const AddedSet *set, const unsigned char *s, size_t n, GapFn gap)
{
    if (set->n == 0) return gap(c, s, n);
    size_t done = 0, i = 0; /* done: end of the last emitted token; i: where searching resumes */
    while (i < n) {
        const AddedTok *hit = NULL;
        size_t at = i;
        for (; at < n && !hit; at++) {
            if (!set->first[s[at]]) continue;
            int32_t node = 0, best = -1; /* the longest token at `at`: the deepest end on the trie walk */
            for (size_t j = at; j < n && (node = added_next(set, node, s[j])) >= 0; j++)
                if (set->term[node] >= 0) best = set->term[node];
            if (best >= 0) hit = &set->tok[best];
        }
        if (!hit) break;
        size_t start = at - 1, stop = start + hit->len, j;
        i = stop;
        if (hit->single_word) {
            uint32_t cp;
            int before = start > 0 && is_word_char(prev_char(s, start, &j));
            int after = stop < n && (utf8_next(s + stop, n - stop, &cp), is_word_char(cp));
            if (before || after) continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0 && is_ws(prev_char(s, ns, &j))) ns = j;
            start = ns > done ? ns : done;
        }
        if (hit->rstrip) {
            uint32_t cp;
            int l;
            while (stop < n && (l = utf8_next(s + stop, n - stop, &cp), is_ws(cp))) stop += (size_t)l;
            i = stop;
        }
        if (start > done && gap(c, s + done, start - done) < 0) return -1;
        if (intvec_push(&c->out, hit->id) < 0) return oom(c);
        done = stop;
    }
    return done < n ? gap(c, s + done, n - done) : 0;
}

static int pre_split(Enc *c, const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    return c->t->n_split ? split_level(c, 0, s, n) : piece(c, s, n);
}

/* A piece between raw added tokens: NFC, then the normalized added tokens. */
/* Stable sort of v[0..n) by combining class (ccc[i] the class of v[i]):
 * insertion for short runs, counting sort (classes are 1..254) otherwise. */
static int sort_marks(utf8proc_int32_t *v, unsigned char *ccc, size_t n)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && ccc[j - 1] > ccc[j]; j--) {
                utf8proc_int32_t t = v[j];
                unsigned char k = ccc[j];
                v[j] = v[j - 1], ccc[j] = ccc[j - 1];
                v[j - 1] = t, ccc[j - 1] = k;
            }
        return 0;
    }
    size_t at[257] = {0};
    utf8proc_int32_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return -1;
    for (size_t i = 0; i < n; i++) at[ccc[i] + 1]++;
    for (int k = 1; k <= 256; k++) at[k] += at[k - 1];
    for (size_t i = 0; i < n; i++) tmp[at[ccc[i]]++] = v[i];
    memcpy(v, tmp, n * sizeof *tmp);
    for (size_t i = 1; i < n; i++) ccc[i] = (unsigned char)utf8proc_get_property(v[i])->combining_class;
    free(tmp);
    return 0;
}

/* NFC of s[0..n) as utf8proc_map(STABLE | COMPOSE) makes it, but with the
 * canonical ordering of combining marks done per run of marks by a stable
 * sort: utf8proc's own is a bubble sort, quadratic in the run (one letter
 * and 40,000 marks: 7.6 s; HF's normalizer sorts). *out (malloc'd) gets
 * the UTF-8; returns its length or a utf8proc error (< 0). */
static utf8proc_ssize_t nfc(const unsigned char *s, size_t n, utf8proc_uint8_t **out)
{
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    size_t cap = n + 16, len = 0;
    utf8proc_int32_t *buf = malloc(cap * sizeof *buf);
    unsigned char *ccc = NULL;
    utf8proc_ssize_t r = buf ? 0 : UTF8PROC_ERROR_NOMEM;
    int bound = 0;
    for (size_t i = 0; r == 0 && i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0) {
            r = l < 0 ? l : UTF8PROC_ERROR_INVALIDUTF8;
            break;
        }
        i += (size_t)l;
        utf8proc_ssize_t d = utf8proc_decompose_char(cp, buf + len, (utf8proc_ssize_t)(cap - len - 1), opt, &bound);
        if (d >= 0 && (size_t)d >= cap - len - 1) { /* grow (a code point decomposes to at most 18) and redo */
            utf8proc_int32_t *nb = realloc(buf, (cap * 2 + (size_t)d + 1) * sizeof *buf);
            if (!nb) {
                r = UTF8PROC_ERROR_NOMEM;
                break;
            }
            buf = nb;
            cap = cap * 2 + (size_t)d + 1;
            d = utf8proc_decompose_char(cp, buf + len, (utf8proc_ssize_t)(cap - len - 1), opt, &bound);
        }
        if (d < 0) r = d;
        else len += (size_t)d;
    }
    if (r == 0 && !(ccc = malloc(len + 1))) r = UTF8PROC_ERROR_NOMEM;
    for (size_t i = 0; r == 0 && i < len; i++) ccc[i] = (unsigned char)utf8proc_get_property(buf[i])->combining_class;
    for (size_t i = 0; r == 0 && i < len;) { /* runs of non-starters, each sorted by class */
        if (!ccc[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && ccc[j]) j++;
        if (sort_marks(buf + i, ccc + i, j - i)) r = UTF8PROC_ERROR_NOMEM;
        i = j;
    }
    free(ccc);
    if (r == 0) r = utf8proc_reencode(buf, (utf8proc_ssize_t)len, opt); /* compose, then UTF-8 in place */
    if (r < 0) {
        free(buf);
        *out = NULL;
        return r;
    }
    *out = (utf8proc_uint8_t *)buf;
    return r;
}

static int normalize_piece(Enc *c, const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    int need = 0;
    if (c->t->nfc)
        for (size_t i = 0; i < n && !need; i++) need = s[i] >= 0xCC; /* code points below U+0300 are NFC-stable */
    if (!need) return added_split(c, &c->t->norm, s, n, pre_split);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = nfc(s, n, &dst);
    if (m < 0) {
        free(dst);
        return err_set(c->e, "tokenizer_encode: NFC failed: %s", utf8proc_errmsg(m));
    }
    int r = added_split(c, &c->t->norm, dst, (size_t)m, pre_split);
    free(dst);
    return r;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int **ids, int *n, Err *e)
{
    *ids = NULL;
    *n = 0;
    const unsigned char *s = (const unsigned char *)text;
    size_t ok = utf8_valid_prefix(s, len);
    if (ok != len)
        return err_set(e, "tokenizer_encode: invalid UTF-8 at byte offset %zu (byte 0x%02X)", ok, s[ok]);
    if (len > INT32_MAX) return err_set(e, "tokenizer_encode: text of %zu bytes is too long", len);
    Enc c = {.t = t, .e = e, .regex_budget = REGEX_BASE + REGEX_PER_BYTE * (uint64_t)len};
    int r = (c.mctx = pcre2_match_context_create(NULL)) ? 0 : oom(&c);
    for (int i = 0; r == 0 && i <= t->n_split; i++)
        if (!(c.md[i] = pcre2_match_data_create(1, NULL))) r = oom(&c);
    if (r == 0) r = added_split(&c, &t->raw, s, len, normalize_piece);
    if (r == 0 && c.out.n > INT32_MAX) r = err_set(e, "tokenizer_encode: too many tokens");
    if (r == 0) {
        *n = (int)c.out.n;
        *ids = c.out.v;
        c.out.v = NULL;
        if (*n == 0) {
            free(*ids);
            *ids = NULL;
        }
    }
    enc_free(&c);
    return r;
}
