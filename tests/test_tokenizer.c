/* test_tokenizer.c - the tokenizer against HF's goldens
 * (tests/fixtures/tokenizer/golden.json: Tokenizer.encode(text,
 * add_special_tokens=False).ids and decode(ids, skip_special_tokens=False)),
 * decode_ids.json, hand-checked cases, small synthetic tokenizer.json files
 * for the added-token flags, bad input, threads and streaming detok. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

#include "check.h"
#include "text/detok.h"
#include "text/tokenizer.h"
#include "util/json.h"

#define TOK_PATH "tests/fixtures/tokenizer/tokenizer.json"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* encodes s (NUL-terminated) and compares with want[0..nw) */
static int enc_eq(const Tokenizer *t, const char *s, const int *want, int nw)
{
    int *ids, n;
    Err e = {{0}};
    if (tokenizer_encode(t, s, strlen(s), &ids, &n, &e) < 0) {
        printf("  encode failed: %s\n", e.msg);
        return 0;
    }
    int ok = n == nw && (n == 0 || !memcmp(ids, want, (size_t)n * sizeof *ids));
    if (!ok) {
        printf("  got %d ids:", n);
        for (int i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
        printf("\n  want %d ids:", nw);
        for (int i = 0; i < nw && i < 40; i++) printf(" %d", want[i]);
        printf("\n");
    }
    free(ids);
    return ok;
}

/* encode(a) == encode(b) */
static int same_ids(const Tokenizer *t, const char *a, const char *b)
{
    int *ia, *ib, na, nb;
    if (tokenizer_encode(t, a, strlen(a), &ia, &na, NULL) < 0) return 0;
    if (tokenizer_encode(t, b, strlen(b), &ib, &nb, NULL) < 0) {
        free(ia);
        return 0;
    }
    int ok = na == nb && (na == 0 || !memcmp(ia, ib, (size_t)na * sizeof *ia));
    free(ia);
    free(ib);
    return ok;
}

/* decode(encode(s)) == want (want = s unless NFC changes it) */
static int roundtrip(const Tokenizer *t, const char *s, size_t len, const char *want, size_t wlen)
{
    int *ids, n;
    if (tokenizer_encode(t, s, len, &ids, &n, NULL) < 0) return 0;
    size_t dl;
    char *d = tokenizer_decode(t, ids, n, &dl, NULL);
    int ok = d && dl == wlen && !memcmp(d, want, wlen);
    free(ids);
    free(d);
    return ok;
}

static int ids_of_json(const cJSON *arr, int **out)
{
    int n = cJSON_GetArraySize(arr), i = 0;
    *out = malloc(((size_t)n + 1) * sizeof **out);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) (*out)[i++] = it->valueint;
    return n;
}

static void test_golden(const Tokenizer *t)
{
    Err e = {{0}};
    cJSON *g = json_parse_file("tests/fixtures/tokenizer/golden.json", &e);
    CHECK(g != NULL, "golden.json parses: %s", e.msg);
    if (!g) return;
    const cJSON *c;
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *dec = cJSON_GetObjectItem(c, "decoded")->valuestring;
        int *want, nw = ids_of_json(cJSON_GetObjectItem(c, "ids"), &want);
        CHECK(enc_eq(t, text, want, nw), "golden case %d encodes: \"%.40s\"", k, text);
        size_t dl;
        char *d = tokenizer_decode(t, want, nw, &dl, &e);
        CHECK(d && dl == strlen(dec) && !memcmp(d, dec, dl), "golden case %d decodes: \"%.40s\"", k, dec);
        free(d);
        free(want);
        k++;
    }
    CHECK(k >= 37, "golden.json has its %d cases", k);
    cJSON_Delete(g);

    g = json_parse_file("tests/fixtures/tokenizer/decode_ids.json", &e);
    CHECK(g != NULL, "decode_ids.json parses: %s", e.msg);
    if (!g) return;
    int bad = 0, n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        int *ids, ni = ids_of_json(cJSON_GetObjectItem(c, "ids"), &ids);
        const char *dec = cJSON_GetObjectItem(c, "decoded")->valuestring;
        size_t dl;
        char *d = tokenizer_decode(t, ids, ni, &dl, &e);
        if (!d || dl != strlen(dec) || memcmp(d, dec, dl)) {
            printf("  decode_ids case %d (id %d) differs\n", n, ids[0]);
            bad++;
        }
        free(d);
        free(ids);
        n++;
    }
    CHECK(n > 100 && bad == 0, "decode_ids.json: %d of %d cases decode exactly", n - bad, n);
    cJSON_Delete(g);
}

static void test_api(const Tokenizer *t)
{
    CHECK(tokenizer_vocab_size(t) == 151669, "vocab size %d", tokenizer_vocab_size(t));
    int im_start = tokenizer_token_id(t, "<|im_start|>"), im_end = tokenizer_token_id(t, "<|im_end|>");
    CHECK(im_start == 151644 && im_end == 151645, "<|im_start|> %d <|im_end|> %d", im_start, im_end);
    CHECK(tokenizer_token_id(t, "<tool_call>") == 151657, "<tool_call> id");
    CHECK(tokenizer_token_id(t, "Hello") == 9707, "Hello is 9707");
    CHECK(tokenizer_token_id(t, "no such token!!") == -1, "unknown token -> -1");
    CHECK(tokenizer_is_special(t, im_end) && !tokenizer_is_special(t, 151657) && !tokenizer_is_special(t, 9707),
          "special flags: <|im_end|> yes, <tool_call> and Hello no");
    size_t l;
    const char *b = tokenizer_token_bytes(t, tokenizer_token_id(t, "ĠHello"), &l);
    CHECK(b && l == 6 && !memcmp(b, " Hello", 6), "token bytes of ĠHello are \" Hello\"");
    b = tokenizer_token_bytes(t, tokenizer_token_id(t, "Ċ"), &l);
    CHECK(b && l == 1 && b[0] == '\n', "token bytes of Ċ are a newline");
    CHECK(tokenizer_token_bytes(t, -1, &l) == NULL && tokenizer_token_bytes(t, 151669, &l) == NULL,
          "token bytes of out-of-range ids are NULL");
    Err e = {{0}};
    int bad[] = {1, 151669};
    char *d = tokenizer_decode(t, bad, 2, &l, &e);
    CHECK(!d && strstr(e.msg, "151669"), "decode of an out-of-range id fails: %s", e.msg);
    free(d);
    d = tokenizer_decode(t, bad, 0, &l, &e);
    CHECK(d && l == 0 && d[0] == 0, "decode of no ids is \"\"");
    free(d);
}

/* cases worked out by hand from the pre-tokenizer rules and the vocab */
static void test_own_cases(const Tokenizer *t)
{
#define ID(s) tokenizer_token_id(t, s)
    {   /* Qwen splits digits one by one */
        int w[] = {ID("2"), ID("0"), ID("2"), ID("4"), ID("Ġ"), ID("9"), ID("9")};
        CHECK(enc_eq(t, "2024 99", w, 7), "digits are single tokens");
    }
    {   /* added tokens at the edges, back to back, and near-misses */
        int w[] = {151644, 151645, 151657, 151645};
        CHECK(enc_eq(t, "<|im_start|><|im_end|><tool_call><|im_end|>", w, 4), "back-to-back added tokens");
        CHECK(same_ids(t, "<|im_start<|im_end|>", "<|im_start<|im_end|>"), "near miss is stable");
        int *ids, n;
        tokenizer_encode(t, "x<|im_start|", 12, &ids, &n, NULL);
        int found = 0;
        for (int i = 0; i < n; i++) found |= ids[i] == 151644;
        CHECK(n > 1 && !found, "\"<|im_start|\" is plain text (%d tokens)", n);
        free(ids);
        int w3[] = {ID("hi"), 151645, ID("Ġthere")};
        CHECK(enc_eq(t, "hi<|im_end|> there", w3, 3), "text around an added token splits there");
    }
    /* NFC: decomposed input encodes like precomposed */
    CHECK(same_ids(t, "cafe\xCC\x81 nai\xCC\x88ve", "caf\xC3\xA9 na\xC3\xAFve"), "combining marks are NFC-composed");
    CHECK(same_ids(t, "\xE1\x84\x80\xE1\x85\xA1", "\xEA\xB0\x80"), "Hangul jamo compose to 가");
    CHECK(same_ids(t, "\xE2\x84\xAB", "\xC3\x85"), "Angstrom sign NFCs to Å");
    {
        int w[] = {ID("čĊ")};
        CHECK(enc_eq(t, "\r\n", w, 1), "\\r\\n is one token");
        int w2[] = {ID("a"), ID("Ġ")};
        CHECK(enc_eq(t, "a ", w2, 2), "trailing space is its own token");
    }
    /* round trips: text comes back byte for byte */
    static const char *rt[] = {
        "a                                b   \n\n   \t\t  x",
        "\xF0\x9F\x98\x80\xF0\x9F\x98\x81 \xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88 flags",
        "\xE4\xB8\xAD\xE6\x96\x87\xE6\xB5\x8B\xE8\xAF\x95\xEF\xBC\x8C\xE4\xBD\xA0\xE5\xA5\xBD",
        "tr\xC3\xA8s \xCE\xB1\xCE\xB2\xCE\xB3 \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xE0\xB8\xAA\xE0\xB8\xA7\xE0\xB8\xB1",
        "\x01\x02\x7f nul-free control bytes \x1b[0m",
        "trailing spaces    ",
        "   ",
        "line\r\n\r\nline\r",
        "CAPS'LL 'S 'Re it's",
    };
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++)
        CHECK(roundtrip(t, rt[i], strlen(rt[i]), rt[i], strlen(rt[i])), "round trip %zu", i);
    CHECK(roundtrip(t, "a\0b", 3, "a\0b", 3), "an embedded NUL survives the round trip");
    {   /* a long run of one letter and of spaces: BPE and the regex stay sane */
        size_t n = 200000;
        char *s = malloc(n + 1);
        memset(s, 'a', n);
        CHECK(roundtrip(t, s, n, s, n), "200 KB of 'a' round-trips");
        memset(s, ' ', n);
        s[n - 1] = 'x';
        CHECK(roundtrip(t, s, n, s, n), "200 KB of spaces round-trips");
        free(s);
    }
#undef ID
}

static void test_bad_text(const Tokenizer *t)
{
    static const struct {
        const char *s;
        size_t len, off;
    } bad[] = {
        {"ab\x80", 3, 2},           /* lone continuation */
        {"\xC0\xAF", 2, 0},         /* overlong */
        {"x\xED\xA0\x80", 4, 1},    /* surrogate */
        {"xy\xE4\xBD", 4, 2},       /* cut off at the end */
        {"\xF5\x80\x80\x80", 4, 0}, /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Err e = {{0}};
        int *ids = (int *)1, n = 7;
        int r = tokenizer_encode(t, bad[i].s, bad[i].len, &ids, &n, &e);
        char want[32];
        snprintf(want, sizeof want, "offset %zu", bad[i].off);
        CHECK(r < 0 && ids == NULL && n == 0 && strstr(e.msg, "invalid UTF-8") && strstr(e.msg, want),
              "invalid UTF-8 case %zu: %s", i, e.msg);
    }
}

typedef struct ThreadArg {
    const Tokenizer *t;
    const char *text;
    size_t len;
    const int *want;
    int nw, ok;
} ThreadArg;

static void *thread_main(void *p)
{
    ThreadArg *a = p;
    a->ok = 1;
    for (int r = 0; r < 5; r++) {
        int *ids, n;
        if (tokenizer_encode(a->t, a->text, a->len, &ids, &n, NULL) < 0) a->ok = 0;
        else if (n != a->nw || memcmp(ids, a->want, (size_t)n * sizeof *ids)) a->ok = 0;
        free(ids);
    }
    return NULL;
}

/* GPL-3 text from golden.json: speed, and four threads sharing one Tokenizer */
static void test_threads_and_speed(const Tokenizer *t)
{
    cJSON *g = json_parse_file("tests/fixtures/tokenizer/golden.json", NULL);
    if (!g) return;
    const cJSON *c, *big = NULL;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases"))
        if (!big || strlen(cJSON_GetObjectItem(c, "text")->valuestring) >
                        strlen(cJSON_GetObjectItem(big, "text")->valuestring))
            big = c;
    const char *text = cJSON_GetObjectItem(big, "text")->valuestring;
    int *want, nw = ids_of_json(cJSON_GetObjectItem(big, "ids"), &want);
    size_t len = strlen(text);
    double t0 = now_s();
    int *ids, n;
    tokenizer_encode(t, text, len, &ids, &n, NULL);
    double dt = now_s() - t0;
    free(ids);
    printf("  GPL-3 text: %zu bytes, %d tokens, encoded in %.2f ms\n", len, n, dt * 1e3);
    ThreadArg a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (ThreadArg){t, text, len, want, nw, 0};
        pthread_create(&th[i], NULL, thread_main, &a[i]);
    }
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok &= a[i].ok;
    }
    CHECK(ok, "4 threads encoding at once all get the golden ids");
    free(want);
    cJSON_Delete(g);
}

/* GPT-2 bytes_to_unicode, written out again as the test's own oracle */
static unsigned bl_char(unsigned char b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174)) n++;
    return 256 + n;
}

/* UTF-8 of a code point below U+0800; returns the length */
static int utf8_put2(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

static void test_detok(const Tokenizer *t)
{
    Detok d;
    detok_init(&d, t);
    /* "😀" is F0 9F 98 80; split it over byte tokens */
    int ids[4];
    const char *emoji = "\xF0\x9F\x98\x80";
    for (int i = 0; i < 4; i++) {
        char sp[4] = {0};
        utf8_put2(sp, bl_char((unsigned char)emoji[i]));
        ids[i] = tokenizer_token_id(t, sp);
    }
    size_t l;
    const char *o = detok_push(&d, ids[0], &l, NULL);
    CHECK(o && l == 0, "first byte of an emoji is held");
    detok_push(&d, ids[1], &l, NULL);
    detok_push(&d, ids[2], &l, NULL);
    CHECK(l == 0, "still held after three bytes");
    o = detok_push(&d, ids[3], &l, NULL);
    CHECK(o && l == 4 && !memcmp(o, emoji, 4), "emoji comes out whole on the fourth byte");
    /* invalid: lead byte then ASCII, and a lone lead at the end */
    int hello = tokenizer_token_id(t, "Hello");
    detok_push(&d, ids[0], &l, NULL);
    o = detok_push(&d, hello, &l, NULL);
    CHECK(o && l == 8 && !memcmp(o, "\xEF\xBF\xBDHello", 8), "a broken sequence is flushed as U+FFFD");
    detok_push(&d, ids[0], &l, NULL);
    detok_push(&d, ids[1], &l, NULL);
    o = detok_flush(&d, &l, NULL);
    CHECK(o && l == 3 && !memcmp(o, "\xEF\xBF\xBD", 3), "an unfinished sequence at the end is one U+FFFD");
    Err e = {{0}};
    CHECK(!detok_push(&d, 999999, &l, &e) && strstr(e.msg, "999999"), "detok refuses a bad id: %s", e.msg);
    /* random streams of byte tokens: concatenated pushes == decode */
    unsigned seed = 12345;
    int bad = 0;
    for (int r = 0; r < 2000; r++) {
        int n = 1 + r % 12, rid[12];
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            /* ids 0..255 are the single-byte tokens; mix in longer ones */
            rid[i] = (seed >> 8) % 4 ? (int)((seed >> 16) % 256) : (int)((seed >> 12) % 151643);
        }
        char buf[1024];
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            o = detok_push(&d, rid[i], &l, NULL);
            memcpy(buf + k, o, l);
            k += l;
        }
        o = detok_flush(&d, &l, NULL);
        memcpy(buf + k, o, l);
        k += l;
        size_t dl;
        char *dec = tokenizer_decode(t, rid, n, &dl, NULL);
        if (!dec || dl != k || memcmp(dec, buf, k)) bad++;
        free(dec);
    }
    CHECK(bad == 0, "2000 random streams: detok == decode (%d differ)", bad);
    detok_free(&d);
}

/* A small tokenizer.json: the 256 byte tokens (id = byte value) and the
 * extra vocab, merges, added tokens, normalizer and pre_tokenizer given as
 * JSON text. Returns a malloc'd string. */
static char *mini_json(const char *type, const char *vocab, const char *merges, const char *added, const char *norm,
                       const char *pre)
{
    size_t cap = 16384 + strlen(vocab) + strlen(merges) + strlen(added) + strlen(norm) + strlen(pre), k = 0;
    char *j = malloc(cap);
    k += (size_t)snprintf(j + k, cap - k, "{\"added_tokens\": %s, \"normalizer\": %s, \"pre_tokenizer\": %s,\n"
                          "\"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"%s\", \"vocab\": {",
                          added, norm, pre, type);
    for (int b = 0; b < 256; b++) {
        char u[4] = {0};
        int l = utf8_put2(u, bl_char((unsigned char)b));
        k += (size_t)snprintf(j + k, cap - k, "\"%s%.*s\": %d, ", (b == '"' || b == '\\') ? "\\" : "", l, u, b);
    }
    snprintf(j + k, cap - k, "%s}, \"merges\": %s}}", vocab, merges);
    return j;
}

static const char *const BL_PLAIN = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}";
static const char *const QWEN_PRE =
    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*"
    "|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false}, "
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}";

static Tokenizer *mini(const char *type, const char *vocab, const char *merges, const char *added, const char *norm,
                       const char *pre, Err *e)
{
    char *j = mini_json(type, vocab, merges, added, norm, pre);
    Tokenizer *t = tokenizer_load_json(j, strlen(j), "mini.json", e);
    free(j);
    return t;
}

static void test_synthetic(void)
{
    Err e = {{0}};
    const char *v = "\"ab\": 256, \"abc\": 257, \"bc\": 258, \"aa\": 259";
    Tokenizer *t = mini("BPE", v, "[\"a b\", \"ab c\"]", "[]", "null", BL_PLAIN, &e);
    CHECK(t != NULL, "mini tokenizer with \"a b\" merges loads: %s", e.msg);
    if (t) {
        int w[] = {257, 'a'};
        CHECK(enc_eq(t, "abca", w, 2), "merges \"a b\", \"ab c\": abca -> abc a");
        tokenizer_free(t);
    }
    t = mini("BPE", v, "[[\"b\", \"c\"], [\"a\", \"b\"]]", "[]", "null", BL_PLAIN, &e);
    CHECK(t != NULL, "mini tokenizer with pair merges loads: %s", e.msg);
    if (t) {
        int w[] = {'a', 258};
        CHECK(enc_eq(t, "abc", w, 2), "lower rank first: b c before a b");
        tokenizer_free(t);
    }
    t = mini("BPE", v, "[\"a a\"]", "[]", "null", BL_PLAIN, &e);
    if (t) {
        int w[] = {259, 'a'}, w2[] = {259, 259};
        CHECK(enc_eq(t, "aaa", w, 2) && enc_eq(t, "aaaa", w2, 2), "equal ranks merge leftmost first");
        tokenizer_free(t);
    }
    /* added-token flags, as HF's AddedVocabulary applies them */
    const char *added =
        "[{\"id\": 300, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true, \"single_word\": false,"
        "  \"normalized\": false, \"special\": true},"
        " {\"id\": 301, \"content\": \"tok\", \"lstrip\": false, \"rstrip\": false, \"single_word\": true,"
        "  \"normalized\": false, \"special\": false},"
        " {\"id\": 302, \"content\": \"e\\u0301\", \"lstrip\": false, \"rstrip\": false, \"single_word\": false,"
        "  \"normalized\": true, \"special\": false}]";
    t = mini("BPE", v, "[]", added, "{\"type\": \"NFC\"}", QWEN_PRE, &e);
    CHECK(t != NULL, "mini tokenizer with flagged added tokens loads: %s", e.msg);
    if (t) {
        CHECK(tokenizer_vocab_size(t) == 303 && tokenizer_is_special(t, 300) && !tokenizer_is_special(t, 301),
              "vocab size and special flags");
        int w[] = {'x', 300, 'y'};
        CHECK(enc_eq(t, "x  <m> \n y", w, 3), "lstrip/rstrip swallow the spaces around <m>");
        int w2[] = {301, ' ', 'h', 'i'}; /* no merges: " hi" is its three byte tokens */
        CHECK(enc_eq(t, "tok hi", w2, 4), "single_word token alone is matched");
        int w3[] = {'a', 't', 'o', 'k'};
        CHECK(enc_eq(t, "atok", w3, 4), "single_word token inside a word is plain text");
        int w4[] = {302, 302};
        CHECK(enc_eq(t, "\xC3\xA9" "e\xCC\x81", w4, 2), "normalized added token matches after NFC");
        size_t l;
        char *d = tokenizer_decode(t, w, 3, &l, NULL);
        CHECK(d && l == 5 && !memcmp(d, "x<m>y", 5), "decode of an added token gives its content");
        free(d);
        tokenizer_free(t);
    }
    /* bare ByteLevel with add_prefix_space */
    t = mini("BPE", v, "[]", "[]", "null", "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", &e);
    if (t) {
        int w[] = {' ', 'h', 'i', ' ', 'y', 'o'};
        CHECK(enc_eq(t, "hi yo", w, 6), "ByteLevel add_prefix_space adds one leading space");
        tokenizer_free(t);
    }
}

/* loading must fail with a message holding every string in `want` ("|"-separated) */
static void expect_load_error(const char *json, size_t len, const char *want, const char *what)
{
    Err e = {{0}};
    Tokenizer *t = tokenizer_load_json(json, len, "bad.json", &e);
    int ok = t == NULL && strchr(e.msg, '\n') == NULL && strstr(e.msg, "bad.json");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", want);
    for (char *p = strtok(buf, "|"); p; p = strtok(NULL, "|")) ok &= strstr(e.msg, p) != NULL;
    CHECK(ok, "%s: %s", what, e.msg);
    if (getenv("SHOWERR")) /* SHOWERR=1 prints every message for review */
        printf("  [%s] %s\n", what, e.msg);
    tokenizer_free(t);
}

static void expect_mini_error(const char *type, const char *vocab, const char *merges, const char *norm,
                              const char *pre, const char *want, const char *what)
{
    char *j = mini_json(type, vocab, merges, "[]", norm, pre);
    expect_load_error(j, strlen(j), want, what);
    free(j);
}

static void test_bad_json(void)
{
    size_t len;
    char *full = file_read(TOK_PATH, &len, NULL);
    if (full) {
        expect_load_error(full, len / 2, "invalid JSON at line", "truncated tokenizer.json");
        expect_load_error(full, 100, "invalid JSON", "tokenizer.json cut at 100 bytes");
        free(full);
    }
    Err e = {{0}};
    CHECK(!tokenizer_load_file("tests/fixtures/no-such/tokenizer.json", &e) && strstr(e.msg, "no-such") &&
              strstr(e.msg, "cannot open"),
          "missing file: %s", e.msg);
    expect_load_error("{\"model\": }", 11, "invalid JSON at line 1", "malformed JSON");
    expect_load_error("", 0, "invalid JSON", "empty file");
    expect_load_error("[1, 2]", 6, "model", "JSON that is not an object");
    expect_load_error("{\"model\": {\"type\": \"BPE\"}}", 26, "model.vocab", "model without vocab");
    expect_mini_error("Unigram", "\"x1\": 256", "[]", "null", BL_PLAIN, "model.type|Unigram|not supported",
                      "Unigram model");
    expect_mini_error("WordPiece", "\"x1\": 256", "[]", "null", BL_PLAIN, "model.type|WordPiece|not supported",
                      "WordPiece model");
    expect_mini_error("BPE", "\"ab\": 1.5", "[]", "null", BL_PLAIN, "model.vocab|\"ab\"|integer",
                      "vocab id 1.5");
    expect_mini_error("BPE", "\"ab\": \"x\"", "[]", "null", BL_PLAIN, "model.vocab|\"ab\"|integer",
                      "vocab id that is a string");
    expect_mini_error("BPE", "\"ab\": -3", "[]", "null", BL_PLAIN, "model.vocab|integer", "negative vocab id");
    expect_mini_error("BPE", "\"ab\": 256", "[\"ab zz\"]", "null", BL_PLAIN, "model.merges|\"zz\"|not in the vocabulary",
                      "merge with an unknown token");
    expect_mini_error("BPE", "\"ab\": 256", "[\"x y\"]", "null", BL_PLAIN, "model.merges|merged token \"xy\"|not in the vocabulary",
                      "merge whose result is unknown");
    expect_mini_error("BPE", "\"ab\": 256", "[\"a b c\"]", "null", BL_PLAIN, "model.merges|two tokens",
                      "merge with three parts");
    expect_mini_error("BPE", "\"ab\": 256", "[3]", "null", BL_PLAIN, "model.merges", "merge that is a number");
    expect_mini_error("BPE", "\"ab\": 256", "[]", "{\"type\": \"Lowercase\"}", BL_PLAIN, "normalizer|Lowercase",
                      "Lowercase normalizer");
    expect_mini_error("BPE", "\"ab\": 256", "[]", "null", "{\"type\": \"Metaspace\"}", "pre_tokenizer|Metaspace",
                      "Metaspace pre-tokenizer");
    expect_mini_error("BPE", "\"ab\": 256", "[]", "null",
                      "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
                      "\"(unclosed\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\"}]}",
                      "pre_tokenizer|does not compile", "bad Split regex");
    expect_mini_error("BPE", "\"ab\": 256", "[]", "null",
                      "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
                      "\"a\"}, \"behavior\": \"Removed\", \"invert\": false}, {\"type\": \"ByteLevel\"}]}",
                      "pre_tokenizer|Removed", "Split behavior Removed");
    expect_mini_error("BPE", "\"ab\": 256, \"cd\": 256", "[]", "null", BL_PLAIN, "model.vocab|both have id 256",
                      "two tokens with one id");
    expect_mini_error("BPE", "\"ab\": 99999999", "[]", "null", BL_PLAIN, "model.vocab|integer id",
                      "vocab id too large");
}

/* Issue 16 item 8: the split regex's work is bounded per call, not per
 * match. 12 MB of spaces (no merges, so BPE is linear) used to fail with
 * PCRE2's "match limit exceeded" (\s*[\r\n]+ backtracks over the whole
 * run once); a pattern whose every match backtracks ~45k steps used to run
 * to the end (20k letters: 9e8 steps, seconds) and is now refused naming
 * tokenizer.json once its budget is spent. */
static void test_regex_limits(void)
{
    Err e = {{0}};
    Tokenizer *t = mini("BPE", "\"aa\": 256", "[]", "[]", "null", QWEN_PRE, &e);
    CHECK(t != NULL, "Qwen-style split, no merges: %s", e.msg);
    size_t n = 12u << 20;
    char *s = malloc(n + 1);
    if (t && s) {
        memset(s, ' ', n);
        s[n - 1] = 'x';
        int *ids = NULL, ni = 0;
        double t0 = now_s();
        int rc = tokenizer_encode(t, s, n, &ids, &ni, &e);
        CHECK(rc == 0 && ni == (int)n, "12 MB of spaces encode (%d ids, %.2f s): %s", ni, now_s() - t0, rc ? e.msg : "");
        free(ids);
        memset(s, ' ', n);
        for (size_t i = 4096; i < n; i += 4096) s[i] = '\n'; /* runs of spaces between newlines */
        rc = tokenizer_encode(t, s, n, &ids, &ni, &e);
        CHECK(rc == 0 && ni == (int)n, "12 MB of spaces and newlines encode: %s", rc ? e.msg : "");
        free(ids);
    }
    tokenizer_free(t);
    const char *hostile = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
                          "\"a{0,64}a{0,64}a{0,64}b|a\"}, \"behavior\": \"Isolated\", \"invert\": false}, "
                          "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}";
    t = mini("BPE", "\"aa\": 256", "[]", "[]", "null", hostile, &e);
    CHECK(t != NULL, "a backtracking split pattern loads: %s", e.msg);
    if (t && s) {
        size_t m = 20000;
        memset(s, 'a', m);
        int *ids = NULL, ni = 0;
        double t0 = now_s();
        int rc = tokenizer_encode(t, s, m, &ids, &ni, &e);
        double dt = now_s() - t0;
        CHECK(rc == -1 && strstr(e.msg, "needs too much work") && strstr(e.msg, "tokenizer.json"),
              "20k letters under a backtracking pattern: refused naming tokenizer.json (%.2f s): %s", dt, e.msg);
        free(ids);
        memset(s, 'a', 100);
        rc = tokenizer_encode(t, s, 100, &ids, &ni, &e);
        CHECK(rc == 0 && ni == 100, "100 letters under it still encode (within the budget): %s", rc ? e.msg : "");
        free(ids);
    }
    tokenizer_free(t);
    free(s);
}

/* NFC's canonical ordering of combining marks is a stable sort per run of
 * marks (utf8proc's bubble sort took 7.6 s for one letter and 40,000
 * alternating marks of classes 230 and 220); the result equals utf8proc's
 * NFC on random mixes of letters, marks of several classes, Hangul jamo and
 * composed characters (their encodings compared). */
static void test_nfc_marks(const Tokenizer *t)
{
    size_t nm = 40000, n = 0;
    char *s = malloc(nm * 2 + 2);
    s[n++] = 'a';
    for (size_t i = 0; i < nm; i++) n += (size_t)utf8proc_encode_char(i % 2 ? 0x316 : 0x301, (utf8proc_uint8_t *)s + n);
    int *ids = NULL, ni = 0;
    Err e = {{0}};
    double t0 = now_s();
    int rc = tokenizer_encode(t, s, n, &ids, &ni, &e);
    double dt = now_s() - t0;
    CHECK(rc == 0 && dt < 1.0 * CHECK_SLOWDOWN, "a letter and 40,000 marks to reorder: %.2f s (%s)", dt, rc ? e.msg : "ok");
    free(ids);
    free(s);
    static const int pool[] = {'a', 'e', ' ', 0x300, 0x301, 0x316, 0x327, 0x345, 0x5B0, 0x5C4, 0x94D, 0x1100, 0x1161,
                               0x11A8, 0xAC00, 0x1E0A, 0x212B, 0xF900, 0x0F73, 0x0F81, 0x1D15E, 0x1D165, 0xC5, 0x3099,
                               0x304B, 0x0CC6, 0x0CD5};
    unsigned seed = 7;
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        utf8proc_uint8_t txt[200];
        utf8proc_ssize_t k = 0;
        int len = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 30;
        for (int j = 0; j < len; j++) {
            seed = seed * 1103515245u + 12345u;
            k += utf8proc_encode_char(pool[(seed >> 8) % (sizeof pool / sizeof *pool)], txt + k);
        }
        txt[k] = 0;
        utf8proc_uint8_t *ref = utf8proc_NFC(txt);
        int *a = NULL, *b = NULL, na = 0, nb = 0;
        Err e2 = {{0}};
        int ok = ref && tokenizer_encode(t, (const char *)txt, (size_t)k, &a, &na, &e2) == 0 &&
                 tokenizer_encode(t, (const char *)ref, strlen((const char *)ref), &b, &nb, &e2) == 0 && na == nb &&
                 (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
        bad += !ok;
        free(a);
        free(b);
        free(ref);
    }
    CHECK(bad == 0, "3000 random mixes of marks: text and its utf8proc NFC encode alike (%d differ)", bad);
}

/* Added tokens are found by a trie walk: 30,000 of them cost no more per
 * byte of text than 3 (the linear search compared every one at every '<':
 * 50,000 tokens and 1 MB of text took 57 s); the longest one at a position
 * wins; a token over ADDED_MAX_BYTES is refused at load. */
static void test_many_added(void)
{
    Err e = {{0}};
    int na = 30000;
    size_t cap = (size_t)na * 160 + 64, k = 0;
    char *added = malloc(cap);
    k += (size_t)snprintf(added + k, cap - k, "[");
    for (int i = 0; i < na; i++)
        k += (size_t)snprintf(added + k, cap - k, "%s{\"id\": %d, \"content\": \"<t%05d>\", \"special\": false}", i ? ", " : "",
                              1000 + i, i);
    k += (size_t)snprintf(added + k, cap - k, ", {\"id\": 999, \"content\": \"<t00042><b>\", \"special\": false}]");
    Tokenizer *t = mini("BPE", "\"aa\": 256", "[]", added, "null", BL_PLAIN, &e);
    CHECK(t != NULL, "30,000 added tokens load: %s", e.msg);
    if (t) {
        int w1[] = {1042, 'x', 999, 1007};
        CHECK(enc_eq(t, "<t00042>x<t00042><b><t00007>", w1, 4), "added tokens: exact and longest matches");
        size_t n = 40000 * 8;
        char *s = malloc(n + 1);
        for (size_t i = 0; i < n; i += 8) memcpy(s + i, "<t00000 ", 8); /* every '<' starts 30,000 candidates */
        int *ids = NULL, ni = 0;
        double t0 = now_s();
        int rc = tokenizer_encode(t, s, n, &ids, &ni, &e);
        double dt = now_s() - t0;
        CHECK(rc == 0 && dt < 1.0 * CHECK_SLOWDOWN, "320 KB of near-misses over 30,000 added tokens: %.2f s (%s)", dt,
              rc ? e.msg : "ok");
        free(ids);
        free(s);
        tokenizer_free(t);
    }
    char *big = malloc(4096);
    snprintf(big, 4096, "[{\"id\": 999, \"content\": \"%01100d\", \"special\": false}]", 0);
    t = mini("BPE", "\"aa\": 256", "[]", big, "null", BL_PLAIN, &e);
    CHECK(!t && strstr(e.msg, "added_tokens") && strstr(e.msg, "1100 bytes"), "an added token of 1,100 bytes refused: %s",
          t ? "loaded" : e.msg);
    tokenizer_free(t);
    free(big);
    free(added);
}

int main(void)
{
    Err e = {{0}};
    double t0 = now_s();
    Tokenizer *t = tokenizer_load_file(TOK_PATH, &e);
    double dt = now_s() - t0;
    CHECK(t != NULL, "load %s: %s", TOK_PATH, e.msg);
    if (!t) return check_summary("tokenizer");
    printf("  loaded %s in %.3f s\n", TOK_PATH, dt);
    test_golden(t);
    test_api(t);
    test_own_cases(t);
    test_bad_text(t);
    test_detok(t);
    test_threads_and_speed(t);
    test_nfc_marks(t);
    tokenizer_free(t);
    tokenizer_free(NULL);
    test_synthetic();
    test_bad_json();
    test_regex_limits();
    test_many_added();
    return check_summary("tokenizer");
}
