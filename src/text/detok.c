/* detok.c - streaming detokenization (see detok.h). The held bytes are
 * always a valid but unfinished UTF-8 prefix; each new byte either extends
 * it, completes it, or proves it invalid - then the held prefix (the maximal
 * invalid subpart) becomes one U+FFFD and the byte starts afresh, which is
 * what from_utf8_lossy does on the whole string. */
#include "text/detok.h"

#include <stdlib.h>
#include <string.h>

#include "text/utf8.h"

void detok_init(Detok *d, const Tokenizer *t)
{
    memset(d, 0, sizeof *d);
    d->tok = t;
}

void detok_free(Detok *d)
{
    free(d->out);
    d->out = NULL;
    d->cap = 0;
}

static int reserve(Detok *d, size_t n, Err *e)
{
    if (n <= d->cap) return 0;
    size_t cap = d->cap ? d->cap : 64;
    while (cap < n) cap *= 2;
    char *nb = realloc(d->out, cap);
    if (!nb) return err_set(e, "detok: out of memory");
    d->out = nb;
    d->cap = cap;
    return 0;
}

static size_t put_fffd(char *o, size_t k)
{
    memcpy(o + k, "\xEF\xBF\xBD", 3);
    return k + 3;
}

const char *detok_push(Detok *d, int id, size_t *len, Err *e)
{
    size_t n;
    const unsigned char *b = (const unsigned char *)tokenizer_token_bytes(d->tok, id, &n);
    if (!b) {
        err_set(e, "detok: id %d is not in the vocabulary (size %d)", id, tokenizer_vocab_size(d->tok));
        return NULL;
    }
    /* worst case: every byte (and the held prefix) becomes a 3-byte U+FFFD */
    if (reserve(d, 3 * (n + 4) + 1, e) < 0) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        d->pend[d->npend++] = b[i];
        int r = utf8_check(d->pend, (size_t)d->npend);
        if (r > 0) { /* complete */
            memcpy(d->out + k, d->pend, (size_t)r);
            k += (size_t)r;
            d->npend = 0;
        } else if (r < 0) {
            /* held prefix (all but the new byte) is the invalid subpart... */
            int held = d->npend - 1;
            if (held == 0) { /* ...or the byte is invalid on its own */
                k = put_fffd(d->out, k);
                d->npend = 0;
                continue;
            }
            k = put_fffd(d->out, k);
            d->npend = 0;
            i--; /* the new byte starts afresh */
        }
    }
    d->out[k] = 0;
    if (len) *len = k;
    return d->out;
}

const char *detok_flush(Detok *d, size_t *len, Err *e)
{
    if (reserve(d, 4, e) < 0) return NULL;
    size_t k = d->npend ? put_fffd(d->out, 0) : 0;
    d->npend = 0;
    d->out[k] = 0;
    if (len) *len = k;
    return d->out;
}
