/* hostile.h - what the two hostile-input tests share (test_hostile.c:
 * adapters, options, limits, folders; test_hostile_files.c: .duet and
 * session files): the tiny fixture's paths, a chat prompt of its
 * tokenizer, paths under a test's temporary folder and a one-adapter
 * compile. */
#ifndef DUET_TEST_HOSTILE_H
#define DUET_TEST_HOSTILE_H

#include <stddef.h>

#define BASE "tests/fixtures/models/tiny-qwen2"
#define ALPHA "tests/fixtures/models/tiny-qwen2-lora-alpha"
#define VOCAB 151936
#define N_TOKENS 151669 /* ids below this have a token; the rest pad the embedding */

/* "<|im_start|>user\nWhat is the CPU temperature?<|im_end|>\n<|im_start|>assistant\n" */
extern const int hostile_prompt[];
#define HOSTILE_NP 14

/* dir/name in one of 8 rotating buffers: valid until the 8th call after. */
char *hostile_path(const char *dir, const char *name);

/* Compiles base (+ one adapter spec "NAME=DIR", or NULL) at quant into out
 * through the public API; its status, the message in err (n bytes). */
int hostile_compile(const char *base, const char *spec, const char *quant, const char *out, char *err, size_t n);

#endif
