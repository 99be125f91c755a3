/* fuzz_calib.c - libFuzzer target over a calibration file (JSON lines of
 * {"text"} or {"messages"}): line splitting, the JSON and message checks,
 * the chat template render and the tokenizer, with the tiny Qwen2
 * fixture's tokenizer and template loaded once. Seeds: fuzz/corpus/calib.
 * Run from the repository root (the fixture is read at start). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "compile/compile_int.h"

#define BASE "tests/fixtures/models/tiny-qwen2"

static Tokenizer *tok;
static ChatTemplate *ct;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    Err e;
    tok = tokenizer_load_file(BASE "/tokenizer.json", &e);
    ct = chat_template_load_file(BASE "/tokenizer_config.json", &e);
    if (!tok || !ct) abort(); /* run from the repository root */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CalibSet s;
    Err e;
    if (calib_load_buf(&s, (const char *)data, size, "fuzz.jsonl", tok, &ct, NULL, &e) == 0) calib_free(&s);
    return 0;
}
