/* fuzz_tokenizer.c - libFuzzer target for the tokenizer.json loader and for
 * encode/decode/detok. Build and run: see fuzz/README.md.
 *
 * The first input byte picks the mode:
 *   even: the rest is a tokenizer.json; if it loads, encode its own text
 *         (and a fixed sample) with it, decode what comes back, stream it.
 *   odd:  the rest is text for the Qwen2 tokenizer (loaded once from
 *         $DUET_FUZZ_TOKENIZER, default tests/fixtures/tokenizer/tokenizer.json).
 * Checked besides memory safety: decode(encode(x)) == x for text that NFC
 * leaves alone, and the detok stream equals decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/detok.h"
#include "text/tokenizer.h"

static Tokenizer *qwen; /* the fuzzer's own state, loaded once */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *p = getenv("DUET_FUZZ_TOKENIZER");
    Err e = {{0}};
    qwen = tokenizer_load_file(p ? p : "tests/fixtures/tokenizer/tokenizer.json", &e);
    if (!qwen) fprintf(stderr, "fuzz_tokenizer: text mode disabled: %s\n", e.msg);
    return 0;
}

static int nfc_stable(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC) return 0;
    return 1;
}

static void exercise(const Tokenizer *t, const uint8_t *text, size_t n, int check_roundtrip)
{
    int *ids, k;
    Err e = {{0}};
    if (tokenizer_encode(t, (const char *)text, n, &ids, &k, &e) < 0) return;
    size_t dl;
    char *d = tokenizer_decode(t, ids, k, &dl, &e);
    if (!d) abort(); /* encode only returns ids the tokenizer has */
    if (check_roundtrip && nfc_stable(text, n) && (dl != n || memcmp(d, text, n))) abort();
    Detok dt;
    detok_init(&dt, t);
    char *s = malloc(3 * dl + 64);
    size_t sl = 0, l;
    for (int i = 0; i < k; i++) {
        const char *o = detok_push(&dt, ids[i], &l, &e);
        if (!o) abort();
        if (sl + l > 3 * dl + 64) abort();
        memcpy(s + sl, o, l);
        sl += l;
    }
    const char *o = detok_flush(&dt, &l, &e);
    if (!o || sl + l > 3 * dl + 64) abort();
    memcpy(s + sl, o, l);
    sl += l;
    if (sl != dl || memcmp(s, d, dl)) abort();
    for (int i = 0; i < k; i++) (void)tokenizer_is_special(t, ids[i]);
    free(s);
    detok_free(&dt);
    free(d);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        if (qwen) exercise(qwen, rest, n, 1);
        return 0;
    }
    Err e = {{0}};
    Tokenizer *t = tokenizer_load_json((const char *)rest, n, "fuzz.json", &e);
    if (!t) {
        if (!memchr(e.msg, 0, sizeof e.msg) || !e.msg[0]) abort(); /* a failure always says why */
        return 0;
    }
    static const char sample[] = "Hello, world! <|im_start|>user\n caf\xC3\xA9 123 \xF0\x9F\x98\x80  \r\n";
    exercise(t, (const uint8_t *)sample, sizeof sample - 1, 0);
    exercise(t, rest, n < 4096 ? n : 4096, 0);
    int ids[4] = {0, 1, tokenizer_vocab_size(t) - 1, tokenizer_vocab_size(t)};
    char *d = tokenizer_decode(t, ids, 4, NULL, &e);
    free(d);
    tokenizer_free(t);
    return 0;
}
