/* tokenizer_impl.h - the inside of a Tokenizer, shared by tokenizer_*.c only.
 * Files: tokenizer_load.c (tokenizer.json -> this struct), tokenizer_bpe.c
 * (hash maps and the BPE merge loop), tokenizer_encode.c (added tokens, NFC,
 * regex split, per-call cache), tokenizer_decode.c (ids -> bytes, UTF-8). */
#ifndef DUET_TOKENIZER_IMPL_H
#define DUET_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* per-id flags */
enum { TOK_PRESENT = 1, TOK_ADDED = 2, TOK_SPECIAL = 4 };

/* String -> id map, open addressing; the keys live in the Tokenizer's string
 * arena, so a slot holds only the id (-1 = empty). */
typedef struct StrMap {
    int32_t *slot; /* (mask + 1) */
    uint32_t mask;
} StrMap;

/* (left id, right id) -> (rank, merged id), open addressing. */
typedef struct MergeSlot {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t id;
} MergeSlot;

typedef struct AddedTok {
    const char *text; /* matched content (NFC-normalized if `normalized`), in str arena */
    size_t len;
    int id;
    unsigned char single_word, lstrip, rstrip, normalized;
} AddedTok;

/* One set of added tokens matched on the same text (raw or normalized):
 * sorted longest first, so the first hit at a position is the longest. */
typedef struct AddedSet {
    AddedTok *tok; /* (n) */
    int n;
    unsigned char first[256]; /* 1 if some token starts with this byte */
    /* a byte trie of the tokens, so the longest token at a position is found
     * in one walk (at most ADDED_MAX_BYTES steps), whatever their number:
     * node 0 the root; term[node] the token spelled up to it, or -1; the
     * edges in an open-addressing table keyed by node * 256 + byte + 1 */
    int32_t *term;
    uint64_t *edge_key; /* 0: empty slot */
    int32_t *edge_to;
    size_t edge_mask;
} AddedSet;

/* the longest added token content, in bytes */
#define ADDED_MAX_BYTES 1024

/* The trie child of `node` by byte b, or -1. */
int32_t added_next(const AddedSet *set, int32_t node, unsigned char b);

struct Tokenizer {
    int n_ids;             /* max id + 1 */
    unsigned char *flags;  /* (n_ids) TOK_* */
    uint32_t *str_off;     /* (n_ids + 1) spelling of id i = str + str_off[i] .. str_off[i+1] */
    char *str;             /* spelling arena (tokenizer.json form) */
    uint32_t *bytes_off;   /* (n_ids + 1) decoded bytes of id i, like str_off */
    char *bytes;           /* decoded bytes arena */
    StrMap vocab;          /* spelling -> id (vocab, then added tokens override) */
    MergeSlot *merge;      /* (merge_mask + 1) */
    uint32_t merge_mask;
    int32_t byte_id[256];  /* BPE start symbol for each byte; -1: dropped */
    int ignore_merges;     /* model.ignore_merges: a word in the vocab is one token */
    AddedSet raw, norm;    /* added tokens matched before / after normalization */
    int nfc;               /* normalizer is NFC */
    pcre2_code *split[8];  /* Split pre-tokenizers (behavior Isolated), applied in order */
    int n_split;
    int prefix_space;      /* ByteLevel add_prefix_space: each piece gets a leading ' ' */
    pcre2_code *bl_split;  /* ByteLevel use_regex: the GPT-2 pattern, applied last; or NULL */
};

/* bytes_to_unicode of GPT-2: the code point each byte is spelled as. */
uint32_t bytelevel_char(unsigned char b);
/* Inverse: the byte spelled by code point c, or -1. */
int bytelevel_byte(uint32_t c);

/* Decodes one UTF-8 character at s (len >= 1 bytes, already valid UTF-8);
 * returns its length and stores the code point. */
int utf8_next(const unsigned char *s, size_t len, uint32_t *cp);
/* Writes code point c as UTF-8 into out (>= 4 bytes); returns the length. */
int utf8_put(unsigned char *out, uint32_t c);
/* Length of the valid UTF-8 prefix of s: returns len when all is valid. */
size_t utf8_valid_prefix(const unsigned char *s, size_t len);

/* Hashing and maps (tokenizer_bpe.c). */
uint64_t tok_hash(const void *p, size_t len);
int strmap_init(StrMap *m, size_t n_keys);
void strmap_free(StrMap *m);
/* Inserts id under the spelling of id (overwriting an equal key). */
void strmap_put(StrMap *m, const Tokenizer *t, int id);
int strmap_get(const StrMap *m, const Tokenizer *t, const char *s, size_t len);
/* Returns the merge slot for (a, b) or NULL. */
const MergeSlot *merge_get(const Tokenizer *t, int32_t a, int32_t b);
/* Inserts or overwrites (a later duplicate wins, as in HF's HashMap). */
void merge_put(Tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t id);

/* Growable int array for encode output and scratch. */
typedef struct IntVec {
    int *v;
    size_t n, cap;
} IntVec;
int intvec_push(IntVec *v, int x);

/* Scratch for the BPE of one word; reused across words of one call. */
typedef struct BpeScratch {
    int32_t *id, *prev, *next;
    uint32_t *len;
    struct BpeHeapEnt *heap;
    size_t cap, heap_cap;
} BpeScratch;
void bpe_scratch_free(BpeScratch *s);

/* Appends the BPE ids of one pre-token (raw bytes) to out. -1 on no memory. */
int bpe_word(const Tokenizer *t, const unsigned char *w, size_t len, BpeScratch *s, IntVec *out);

#endif
