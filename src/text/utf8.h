/* utf8.h - strict UTF-8 checks shared by the tokenizer and detok, following
 * the rules of Rust's str (what HF's tokenizers uses): no overlongs, no
 * surrogates, nothing above U+10FFFF. */
#ifndef DUET_UTF8_H
#define DUET_UTF8_H

#include <stddef.h>

/* Checks the sequence starting at s (n >= 1 bytes available). Returns its
 * length (1-4) when valid and complete; 0 when the n bytes are a valid but
 * unfinished start; -k when invalid, k being the length of the maximal
 * invalid subpart (the unit that Rust's from_utf8_lossy replaces by one
 * U+FFFD). */
int utf8_check(const unsigned char *s, size_t n);

/* Rust String::from_utf8_lossy: copies in to out (capacity >= 3 * n),
 * replacing each maximal invalid subpart by U+FFFD. Returns the out length. */
size_t utf8_lossy(const unsigned char *in, size_t n, unsigned char *out);

#endif
