/* tokenizer.h - byte-level BPE tokenizer read from a Hugging Face
 * tokenizer.json (the format of the `tokenizers` library), as used by the
 * Qwen2 family. Encoding matches Tokenizer.encode(text,
 * add_special_tokens=False).ids; decoding matches decode(ids,
 * skip_special_tokens=False).
 *
 * A Tokenizer is immutable after loading: encode/decode may be called from
 * many threads at once (every per-call cache and scratch lives in the call).
 * The Tokenizer owns all its memory; free it with tokenizer_free(). */
#ifndef DUET_TOKENIZER_H
#define DUET_TOKENIZER_H

#include <stddef.h>

#include "util/err.h"

typedef struct Tokenizer Tokenizer;

/* Reads and loads the tokenizer.json at `path`. NULL with *e set (a one-line
 * message naming the file and the field) on failure. */
Tokenizer *tokenizer_load_file(const char *path, Err *e);

/* Loads from tokenizer.json text of `len` bytes (need not be NUL-terminated);
 * `name` names the source in messages. The text is not kept. */
Tokenizer *tokenizer_load_json(const char *text, size_t len, const char *name, Err *e);

/* Frees everything; safe on NULL. */
void tokenizer_free(Tokenizer *t);

/* Encodes `len` bytes of UTF-8 text. On success returns 0, *ids is a malloc'd
 * array of *n token ids the caller frees (NULL when *n is 0). Returns -1 with
 * *e set on invalid UTF-8 (the message gives the byte offset) or when out of
 * memory. Added tokens written in the text are matched first, as HF does. */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int **ids, int *n, Err *e);

/* Decodes n ids into a malloc'd, NUL-terminated byte string the caller
 * frees; *len (if non-NULL) receives its length. Invalid UTF-8 produced by
 * the token bytes is replaced by U+FFFD exactly as HF (Rust
 * String::from_utf8_lossy). NULL with *e set on an id that is out of range. */
char *tokenizer_decode(const Tokenizer *t, const int *ids, int n, size_t *len, Err *e);

/* Max id + 1 over the vocabulary and the added tokens. */
int tokenizer_vocab_size(const Tokenizer *t);

/* The id of a token given in its tokenizer.json spelling ("<|im_end|>",
 * "Ġhello"), added tokens first; -1 if there is none. */
int tokenizer_token_id(const Tokenizer *t, const char *token);

/* The raw bytes one token decodes to (not NUL-terminated; *len receives the
 * length); points into the Tokenizer. NULL when id names no token. */
const char *tokenizer_token_bytes(const Tokenizer *t, int id, size_t *len);

/* 1 if id is an added token marked "special": true, else 0. */
int tokenizer_is_special(const Tokenizer *t, int id);

/* 1 if id is an added token (special or not: <tool_call> too), else 0. */
int tokenizer_is_added(const Tokenizer *t, int id);

#endif
