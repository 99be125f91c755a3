/* tokenizer_decode.c - ids -> bytes, the GPT-2 byte <-> character table, and
 * the UTF-8 helpers shared by encode, decode and detok. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_impl.h"
#include "text/utf8.h"

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes spell themselves, the
 * other 68 bytes (0-32, 127-160, 173) take 256, 257, ... in byte order. */
uint32_t bytelevel_char(unsigned char b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    uint32_t k = b <= 32 ? b : b <= 160 ? (uint32_t)b - 127 + 33 : 33 + 34;
    return 256 + k;
}

int bytelevel_byte(uint32_t c)
{
    if ((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255)) return (int)c;
    if (c < 256 || c > 256 + 67) return -1;
    uint32_t k = c - 256;
    return k <= 32 ? (int)k : k <= 66 ? (int)(k - 33 + 127) : 173;
}

int utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b < 0x80 || len < 2) {
        *cp = b;
        return 1;
    }
    if (b < 0xE0) {
        *cp = (uint32_t)(b & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if (b < 0xF0 || len < 4) {
        *cp = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return 4;
}

int utf8_put(unsigned char *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | c >> 6);
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | c >> 12);
        out[1] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | c >> 18);
    out[1] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

int utf8_check(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    if (b < 0x80) return 1;
    int width;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) width = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        width = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        width = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int i = 1; i < width; i++) {
        if ((size_t)i >= n) return 0;
        unsigned char c = s[i];
        if (i == 1 ? (c < lo || c > hi) : (c & 0xC0) != 0x80) return -i;
    }
    return width;
}

size_t utf8_valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs 8 bytes at a time */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= len) break;
        int k = utf8_check(s + i, len - i);
        if (k <= 0) return i;
        i += (size_t)k;
    }
    return len;
}

size_t utf8_lossy(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        int k = utf8_check(in + i, n - i);
        if (k > 0) {
            memcpy(out + o, in + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
            continue;
        }
        /* one U+FFFD per maximal invalid subpart (a cut-off sequence at the end too) */
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += k == 0 ? n - i : (size_t)-k;
    }
    return o;
}

char *tokenizer_decode(const Tokenizer *t, const int *ids, int n, size_t *len, Err *e)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !(t->flags[ids[i]] & TOK_PRESENT)) {
            err_set(e, "tokenizer_decode: id %d at position %d is not in the vocabulary (size %d)", ids[i], i,
                    t->n_ids);
            return NULL;
        }
        total += t->bytes_off[ids[i] + 1] - t->bytes_off[ids[i]];
    }
    unsigned char *raw = malloc(total + 1), *out = malloc(total * 3 + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        err_set(e, "tokenizer_decode: out of memory for %zu bytes", total);
        return NULL;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t l = t->bytes_off[ids[i] + 1] - t->bytes_off[ids[i]];
        memcpy(raw + k, t->bytes + t->bytes_off[ids[i]], l);
        k += l;
    }
    size_t o = utf8_lossy(raw, k, out);
    free(raw);
    out[o] = 0;
    if (len) *len = o;
    return (char *)out;
}

int tokenizer_vocab_size(const Tokenizer *t)
{
    return t->n_ids;
}

int tokenizer_token_id(const Tokenizer *t, const char *token)
{
    return strmap_get(&t->vocab, t, token, strlen(token));
}

const char *tokenizer_token_bytes(const Tokenizer *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n_ids || !(t->flags[id] & TOK_PRESENT)) return NULL;
    if (len) *len = t->bytes_off[id + 1] - t->bytes_off[id];
    return t->bytes + t->bytes_off[id];
}

int tokenizer_is_special(const Tokenizer *t, int id)
{
    return id >= 0 && id < t->n_ids && (t->flags[id] & TOK_SPECIAL) != 0;
}

int tokenizer_is_added(const Tokenizer *t, int id)
{
    return id >= 0 && id < t->n_ids && (t->flags[id] & TOK_ADDED) != 0;
}
