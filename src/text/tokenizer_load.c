/* tokenizer_load.c - tokenizer.json -> Tokenizer. Accepts what the Qwen2
 * family (and GPT-2 style byte-level BPE) uses and refuses the rest with a
 * message naming the file and the field: model.type BPE; normalizer null,
 * NFC or a Sequence of NFC; pre_tokenizer ByteLevel, or a Sequence of Split
 * (Isolated, not inverted) ending in ByteLevel; decoder ByteLevel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_impl.h"
#include "util/json.h"

/* the pattern the ByteLevel pre-tokenizer uses when use_regex is true */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ids above this are refused: per-id arrays are sized by the largest id */
#define MAX_ID (1 << 24)

void tokenizer_free(Tokenizer *t)
{
    if (!t) return;
    free(t->flags);
    free(t->str_off);
    free(t->str);
    free(t->bytes_off);
    free(t->bytes);
    strmap_free(&t->vocab);
    free(t->merge);
    for (int s = 0; s < 2; s++) {
        AddedSet *set = s ? &t->norm : &t->raw;
        for (int i = 0; i < set->n; i++) free((char *)set->tok[i].text);
        free(set->tok);
        free(set->term);
        free(set->edge_key);
        free(set->edge_to);
    }
    for (int i = 0; i < t->n_split; i++) pcre2_code_free(t->split[i]);
    pcre2_code_free(t->bl_split);
    free(t);
}

static int get_id(const cJSON *v, const char *file, const char *field, const char *key, int *out, Err *e)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble >= MAX_ID)
        return err_set(e, "%s: field \"%s\": entry \"%.60s\": expected an integer id in [0, %d)", file, field, key,
                       MAX_ID);
    *out = (int)v->valuedouble;
    return 0;
}

static int check_utf8(const char *s, const char *file, const char *field, Err *e)
{
    size_t n = strlen(s);
    if (utf8_valid_prefix((const unsigned char *)s, n) != n)
        return err_set(e, "%s: field \"%s\": \"%.60s\" is not valid UTF-8", file, field, s);
    return 0;
}

/* Compiles a split pattern with PCRE2 (UTF, UCP, JIT when available). */
static pcre2_code *compile_pattern(const char *pat, size_t len, int literal, const char *file, Err *e)
{
    int code;
    PCRE2_SIZE off;
    uint32_t opt = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opt, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        err_set(e, "%s: field \"pre_tokenizer\": Split pattern does not compile at offset %zu: %s", file,
                (size_t)off, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT, pcre2_match interprets: slower, same result */
    return re;
}

static int load_normalizer(Tokenizer *t, const cJSON *root, const char *file, Err *e)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!n || cJSON_IsNull(n)) return 0;
    const char *type = NULL;
    if (!cJSON_IsObject(n) || json_get_str(n, "type", 1, &type, file, e) < 0)
        return err_set(e, "%s: field \"normalizer\": expected null or an object with a \"type\"", file);
    if (!strcmp(type, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *it;
        if (!cJSON_IsArray(list))
            return err_set(e, "%s: field \"normalizer.normalizers\": expected an array", file);
        cJSON_ArrayForEach(it, list) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "NFC"))
                return err_set(e, "%s: field \"normalizer.normalizers\": type \"%s\" is not supported (only NFC)",
                               file, cJSON_IsString(ty) ? ty->valuestring : "?");
            t->nfc = 1;
        }
        return 0;
    }
    return err_set(e, "%s: field \"normalizer.type\": \"%s\" is not supported (expected null, NFC or a Sequence of NFC)",
                   file, type);
}

static int load_split(Tokenizer *t, const cJSON *p, const char *file, Err *e)
{
    const char *beh = NULL;
    int invert = 0;
    if (json_get_str(p, "behavior", 1, &beh, file, e) < 0 || json_get_bool(p, "invert", 0, &invert, file, e) < 0)
        return -1;
    if (strcmp(beh, "Isolated"))
        return err_set(e, "%s: field \"pre_tokenizer\": Split behavior \"%s\" is not supported (only Isolated)", file,
                       beh);
    if (invert) return err_set(e, "%s: field \"pre_tokenizer\": Split with invert true is not supported", file);
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *s = cJSON_IsString(re) ? re : lit;
    if (!cJSON_IsString(s))
        return err_set(e, "%s: field \"pre_tokenizer\": Split pattern: expected {\"Regex\": ...} or {\"String\": ...}",
                       file);
    if (t->n_split == (int)(sizeof t->split / sizeof t->split[0]))
        return err_set(e, "%s: field \"pre_tokenizer\": too many Split steps", file);
    pcre2_code *c = compile_pattern(s->valuestring, strlen(s->valuestring), s == lit, file, e);
    if (!c) return -1;
    t->split[t->n_split++] = c;
    return 0;
}

static int load_pre_tokenizer(Tokenizer *t, const cJSON *root, const char *file, Err *e)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), *list = NULL, *it;
    const char *type = NULL;
    if (!cJSON_IsObject(p) || json_get_str(p, "type", 1, &type, file, e) < 0)
        return err_set(e, "%s: field \"pre_tokenizer\": expected an object with a \"type\" (ByteLevel or Sequence)",
                       file);
    int n = 1, i = 0, seen_bl = 0;
    if (!strcmp(type, "Sequence")) {
        list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return err_set(e, "%s: field \"pre_tokenizer.pretokenizers\": expected an array", file);
        n = cJSON_GetArraySize(list);
        it = list->child;
    } else {
        it = (cJSON *)p;
    }
    for (; i < n && it; i++, it = it->next) {
        const char *ty = NULL;
        if (!cJSON_IsObject(it) || json_get_str(it, "type", 1, &ty, file, e) < 0)
            return err_set(e, "%s: field \"pre_tokenizer\": step %d: expected an object with a \"type\"", file, i);
        if (seen_bl)
            return err_set(e, "%s: field \"pre_tokenizer\": step %d (%s) after ByteLevel is not supported", file, i,
                           ty);
        if (!strcmp(ty, "Split")) {
            if (load_split(t, it, file, e) < 0) return -1;
        } else if (!strcmp(ty, "ByteLevel")) {
            int aps = 1, use_regex = 1; /* HF's defaults */
            if (json_get_bool(it, "add_prefix_space", 0, &aps, file, e) < 0 ||
                json_get_bool(it, "use_regex", 0, &use_regex, file, e) < 0)
                return -1;
            t->prefix_space = aps;
            if (use_regex && !(t->bl_split = compile_pattern(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, file, e)))
                return -1;
            seen_bl = 1;
        } else {
            return err_set(e, "%s: field \"pre_tokenizer\": type \"%s\" is not supported (expected Split or ByteLevel)",
                           file, ty);
        }
    }
    if (!seen_bl)
        return err_set(e, "%s: field \"pre_tokenizer\": no ByteLevel step (only byte-level BPE is supported)", file);
    return 0;
}

static int check_decoder(const cJSON *root, const char *file, Err *e)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(d, "type");
    if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "ByteLevel"))
        return err_set(e, "%s: field \"decoder.type\": expected \"ByteLevel\", got %s%s%s", file,
                       cJSON_IsString(ty) ? "\"" : "", cJSON_IsString(ty) ? ty->valuestring : "none",
                       cJSON_IsString(ty) ? "\"" : "");
    return 0;
}

/* model fields this loader cannot honour: refuse rather than encode wrongly */
static int check_model_options(Tokenizer *t, const cJSON *model, const char *file, Err *e)
{
    double dropout = 0;
    const char *s = NULL;
    int r = json_get_num(model, "dropout", 0, &dropout, file, e);
    if (r < 0) return -1;
    if (r == 0 && dropout > 0)
        return err_set(e, "%s: field \"model.dropout\": BPE dropout is not supported (expected null)", file);
    static const char *const affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        if ((r = json_get_str(model, affix[i], 0, &s, file, e)) < 0) return -1;
        if (r == 0 && *s)
            return err_set(e, "%s: field \"model.%s\": \"%s\" is not supported (expected null or \"\")", file, affix[i],
                           s);
    }
    return json_get_bool(model, "ignore_merges", 0, &t->ignore_merges, file, e) < 0 ? -1 : 0;
}

/* First pass: the largest id and the spelling of every id. */
static int collect_ids(Tokenizer *t, const cJSON *vocab, const cJSON *added, const char *file, Err *e)
{
    const cJSON *it;
    int max_id = -1, id;
    cJSON_ArrayForEach(it, vocab) {
        if (get_id(it, file, "model.vocab", it->string, &id, e) < 0) return -1;
        if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(it, added) {
        long long v;
        const char *content;
        if (!cJSON_IsObject(it) || json_get_int(it, "id", 1, &v, file, e) < 0 ||
            json_get_str(it, "content", 1, &content, file, e) < 0)
            return err_set(e, "%s: field \"added_tokens\": expected objects with an integer \"id\" and a \"content\"",
                           file);
        if (v < 0 || v >= MAX_ID)
            return err_set(e, "%s: field \"added_tokens\": id %lld out of range [0, %d)", file, v, MAX_ID);
        if (v > max_id) max_id = (int)v;
    }
    t->n_ids = max_id + 1;
    t->flags = calloc((size_t)t->n_ids + 1, 1);
    t->str_off = calloc((size_t)t->n_ids + 2, sizeof *t->str_off);
    const char **spell = calloc((size_t)t->n_ids + 1, sizeof *spell);
    if (!t->flags || !t->str_off || !spell) {
        free(spell);
        return err_set(e, "%s: out of memory for %d token ids", file, t->n_ids);
    }
    cJSON_ArrayForEach(it, vocab) {
        get_id(it, file, "model.vocab", it->string, &id, e);
        if (spell[id]) {
            err_set(e, "%s: field \"model.vocab\": \"%.60s\" and \"%.60s\" both have id %d", file, spell[id],
                    it->string, id);
            free(spell);
            return -1;
        }
        if (check_utf8(it->string, file, "model.vocab", e) < 0) {
            free(spell);
            return -1;
        }
        spell[id] = it->string;
    }
    cJSON_ArrayForEach(it, added) {
        const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        id = (int)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        if (spell[id] && strcmp(spell[id], c)) {
            err_set(e, "%s: field \"added_tokens\": id %d is \"%.60s\" but the vocab spells it \"%.60s\"", file, id, c,
                    spell[id]);
            free(spell);
            return -1;
        }
        if (check_utf8(c, file, "added_tokens", e) < 0) {
            free(spell);
            return -1;
        }
        spell[id] = c;
        t->flags[id] |= TOK_ADDED;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"))) t->flags[id] |= TOK_SPECIAL;
    }
    /* spellings and decoded bytes, each in one arena */
    size_t total = 0;
    for (int i = 0; i < t->n_ids; i++) total += spell[i] ? strlen(spell[i]) : 0;
    t->str = malloc(total + 1);
    t->bytes = malloc(total + 1);
    t->bytes_off = calloc((size_t)t->n_ids + 2, sizeof *t->bytes_off);
    if (total >= UINT32_MAX || !t->str || !t->bytes || !t->bytes_off) {
        free(spell);
        return err_set(e, "%s: out of memory for %zu bytes of token text", file, total);
    }
    size_t so = 0, bo = 0;
    for (int i = 0; i < t->n_ids; i++) {
        t->str_off[i] = (uint32_t)so;
        t->bytes_off[i] = (uint32_t)bo;
        if (!spell[i]) continue;
        t->flags[i] |= TOK_PRESENT;
        size_t l = strlen(spell[i]), b0 = bo;
        memcpy(t->str + so, spell[i], l);
        /* HF's ByteLevel decoder: every character maps to its byte, else the token's own UTF-8 */
        const unsigned char *s = (const unsigned char *)spell[i];
        for (size_t k = 0; k < l;) {
            uint32_t cp;
            k += (size_t)utf8_next(s + k, l - k, &cp);
            int b = bytelevel_byte(cp);
            if (b < 0) {
                memcpy(t->bytes + b0, s, l);
                bo = b0 + l;
                break;
            }
            t->bytes[bo++] = (char)b;
        }
        so += l;
    }
    t->str_off[t->n_ids] = (uint32_t)so;
    t->bytes_off[t->n_ids] = (uint32_t)bo;
    free(spell);
    if (strmap_init(&t->vocab, (size_t)t->n_ids) < 0) return err_set(e, "%s: out of memory for the vocab map", file);
    for (int i = 0; i < t->n_ids; i++)
        if (t->flags[i] & TOK_PRESENT) strmap_put(&t->vocab, t, i);
    return 0;
}

static int merge_side(const Tokenizer *t, const char *s, size_t len, const char *what, const char *file, int idx,
                      Err *e)
{
    int id = strmap_get(&t->vocab, t, s, len);
    if (id < 0)
        err_set(e, "%s: field \"model.merges\"[%d]: %s \"%.*s\" is not in the vocabulary", file, idx, what,
                (int)(len > 60 ? 60 : len), s);
    return id;
}

static int load_merges(Tokenizer *t, const cJSON *merges, const char *file, Err *e)
{
    int n = cJSON_GetArraySize(merges), idx = 0;
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    t->merge = malloc(cap * sizeof *t->merge);
    if (!t->merge) return err_set(e, "%s: out of memory for %d merges", file, n);
    memset(t->merge, 0xff, cap * sizeof *t->merge);
    t->merge_mask = (uint32_t)(cap - 1);
    char buf[1024];
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(it)) {
            a = it->valuestring;
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return err_set(e, "%s: field \"model.merges\"[%d]: \"%.60s\": expected two tokens separated by one space",
                               file, idx, a);
            la = (size_t)(sp - a);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) && cJSON_IsString(it->child->next)) {
            a = it->child->valuestring;
            b = it->child->next->valuestring;
            la = strlen(a);
            lb = strlen(b);
        } else {
            return err_set(e, "%s: field \"model.merges\"[%d]: expected \"a b\" or [\"a\", \"b\"]", file, idx);
        }
        int ia = merge_side(t, a, la, "token", file, idx, e);
        int ib = ia < 0 ? -1 : merge_side(t, b, lb, "token", file, idx, e);
        if (ia < 0 || ib < 0) return -1;
        if (la + lb > sizeof buf)
            return err_set(e, "%s: field \"model.merges\"[%d]: merged token longer than %zu bytes", file, idx,
                           sizeof buf);
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int ic = merge_side(t, buf, la + lb, "merged token", file, idx, e);
        if (ic < 0) return -1;
        merge_put(t, ia, ib, (uint32_t)idx, ic);
        idx++;
    }
    return 0;
}

static int cmp_len_desc(const void *pa, const void *pb)
{
    const AddedTok *a = pa, *b = pb;
    return a->len < b->len ? 1 : a->len > b->len ? -1 : a->id - b->id;
}

static size_t edge_slot(const AddedSet *set, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h ^ (h >> 29)) & set->edge_mask;
    while (set->edge_key[i] && set->edge_key[i] != key) i = (i + 1) & set->edge_mask;
    return i;
}

int32_t added_next(const AddedSet *set, int32_t node, unsigned char b)
{
    size_t i = edge_slot(set, (uint64_t)node * 256 + b + 1);
    return set->edge_key[i] ? set->edge_to[i] : -1;
}

/* Builds set's trie from its tokens (sorted longest first: of two equal
 * spellings the first is kept, as the linear search kept it). 0 or -1. */
static int added_trie(AddedSet *set)
{
    size_t total = 1;
    for (int k = 0; k < set->n; k++) total += set->tok[k].len;
    size_t cap = 16;
    while (cap < 2 * total) cap *= 2;
    set->term = malloc(total * sizeof *set->term);
    set->edge_key = calloc(cap, sizeof *set->edge_key);
    set->edge_to = malloc(cap * sizeof *set->edge_to);
    if (!set->term || !set->edge_key || !set->edge_to) return -1;
    set->edge_mask = cap - 1;
    set->term[0] = -1;
    int32_t n_nodes = 1;
    for (int k = 0; k < set->n; k++) {
        int32_t node = 0;
        for (size_t j = 0; j < set->tok[k].len; j++) {
            uint64_t key = (uint64_t)node * 256 + (unsigned char)set->tok[k].text[j] + 1;
            size_t i = edge_slot(set, key);
            if (!set->edge_key[i]) {
                set->edge_key[i] = key;
                set->edge_to[i] = n_nodes;
                set->term[n_nodes++] = -1;
            }
            node = set->edge_to[i];
        }
        if (set->term[node] < 0) set->term[node] = k;
    }
    return 0;
}

static int load_added(Tokenizer *t, const cJSON *added, const char *file, Err *e)
{
    int n = cJSON_GetArraySize(added);
    t->raw.tok = calloc((size_t)n + 1, sizeof(AddedTok));
    t->norm.tok = calloc((size_t)n + 1, sizeof(AddedTok));
    if (!t->raw.tok || !t->norm.tok) return err_set(e, "%s: out of memory for added tokens", file);
    const cJSON *it;
    cJSON_ArrayForEach(it, added) {
        AddedTok a = {0};
        int sw = 0, ls = 0, rs = 0, norm = 1; /* HF's defaults */
        if (json_get_bool(it, "single_word", 0, &sw, file, e) < 0 || json_get_bool(it, "lstrip", 0, &ls, file, e) < 0 ||
            json_get_bool(it, "rstrip", 0, &rs, file, e) < 0 || json_get_bool(it, "normalized", 0, &norm, file, e) < 0)
            return -1;
        const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        if (!*c) continue; /* an empty token never matches */
        a.id = (int)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        a.single_word = (unsigned char)sw;
        a.lstrip = (unsigned char)ls;
        a.rstrip = (unsigned char)rs;
        a.normalized = (unsigned char)(norm && t->nfc);
        /* a normalized token is matched on normalized text, so it is normalized too */
        a.text = a.normalized ? (char *)utf8proc_NFC((const utf8proc_uint8_t *)c) : strdup(c);
        if (!a.text) return err_set(e, "%s: added token \"%.60s\" cannot be normalized", file, c);
        a.len = strlen(a.text);
        if (a.len > ADDED_MAX_BYTES) {
            free((char *)a.text);
            return err_set(e, "%s: field \"added_tokens\": token %d is %zu bytes long (expected at most %d)", file, a.id,
                           a.len, ADDED_MAX_BYTES);
        }
        AddedSet *set = a.normalized ? &t->norm : &t->raw;
        set->tok[set->n++] = a;
        set->first[(unsigned char)a.text[0]] = 1;
    }
    qsort(t->raw.tok, (size_t)t->raw.n, sizeof(AddedTok), cmp_len_desc);
    qsort(t->norm.tok, (size_t)t->norm.n, sizeof(AddedTok), cmp_len_desc);
    if (added_trie(&t->raw) || added_trie(&t->norm)) return err_set(e, "%s: out of memory for added tokens", file);
    return 0;
}

/* The start symbol of each byte: its byte-level character, else <0xXX> with
 * byte_fallback, else unk_token, else none (HF then drops it). */
static int load_byte_ids(Tokenizer *t, const cJSON *model, const char *file, Err *e)
{
    int fallback = 0, unk = -1;
    const char *unk_s = NULL;
    if (json_get_bool(model, "byte_fallback", 0, &fallback, file, e) < 0) return -1;
    int r = json_get_str(model, "unk_token", 0, &unk_s, file, e);
    if (r < 0) return -1;
    if (r == 0) unk = strmap_get(&t->vocab, t, unk_s, strlen(unk_s));
    for (int b = 0; b < 256; b++) {
        unsigned char u[4];
        char hex[8];
        int l = utf8_put(u, bytelevel_char((unsigned char)b));
        int id = strmap_get(&t->vocab, t, (const char *)u, (size_t)l);
        if (id < 0 && fallback) {
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            id = strmap_get(&t->vocab, t, hex, strlen(hex));
        }
        t->byte_id[b] = id >= 0 ? id : unk;
    }
    return 0;
}

Tokenizer *tokenizer_load_json(const char *text, size_t len, const char *name, Err *e)
{
    cJSON *root = json_parse(text, len, name, e);
    if (!root) return NULL;
    Tokenizer *t = calloc(1, sizeof *t);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const char *type = NULL;
    int ok = 0;
    if (!t) {
        err_set(e, "%s: out of memory", name);
    } else if (!cJSON_IsObject(model)) {
        err_set(e, "%s: field \"model\": expected an object", name);
    } else if (json_get_str(model, "type", 1, &type, name, e) < 0) {
        err_set(e, "%s: field \"model.type\": expected a string such as \"BPE\"", name);
    } else if (strcmp(type, "BPE")) {
        err_set(e, "%s: field \"model.type\": \"%s\" is not supported (only BPE)", name, type);
    } else if (!cJSON_IsObject(vocab)) {
        err_set(e, "%s: field \"model.vocab\": expected an object of token -> id", name);
    } else if (!cJSON_IsArray(merges)) {
        err_set(e, "%s: field \"model.merges\": expected an array", name);
    } else if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
        err_set(e, "%s: field \"added_tokens\": expected an array", name);
    } else if (check_model_options(t, model, name, e) == 0 && load_normalizer(t, root, name, e) == 0 &&
               load_pre_tokenizer(t, root, name, e) == 0 && check_decoder(root, name, e) == 0 &&
               collect_ids(t, vocab, cJSON_IsArray(added) ? added : NULL, name, e) == 0 &&
               load_merges(t, merges, name, e) == 0 &&
               load_added(t, cJSON_IsArray(added) ? added : NULL, name, e) == 0 &&
               load_byte_ids(t, model, name, e) == 0) {
        ok = 1;
    }
    cJSON_Delete(root);
    if (!ok) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

Tokenizer *tokenizer_load_file(const char *path, Err *e)
{
    size_t len;
    char *text = file_read(path, &len, e);
    if (!text) return NULL;
    Tokenizer *t = tokenizer_load_json(text, len, path, e);
    free(text);
    return t;
}
