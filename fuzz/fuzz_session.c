/* fuzz_session.c - libFuzzer target over session files with valid
 * checksums: the input is a session file without its last 8 bytes; the
 * target writes it with the model and adapter hashes of the tiny fixture
 * (bytes 16..31) and the XXH64 checksum appended, so mutations reach the
 * checks behind them (counts, token ids, the message history, the cached
 * keys and values). A file that loads is then generated from for 2 tokens
 * (a forward pass over the loaded cache). Seeds: fuzz/corpus/session. Run
 * from the repository root. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "duet.h"

static duet_model *m;
static duet_session *raw;
static unsigned char hashes[16];
static char path[4096];

static void cleanup(void)
{
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.n_threads = 1;
    if (duet_model_open(&m, "tests/fixtures/models/tiny-qwen2", &mo, err, sizeof err)) abort();
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 128;
    o.max_tokens = 2;
    if (duet_session_create(m, &o, &raw)) abort();
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/fuzz-session-%d.sess", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    atexit(cleanup);
    int t[] = {1, 2, 3};
    duet_session_append_tokens(raw, t, 3);
    if (duet_session_save(raw, path)) abort(); /* for the model's hash */
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 16, SEEK_SET) || fread(hashes, 1, 16, f) != 16) abort();
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 32 || size > (1u << 20)) return 0;
    unsigned char *b = malloc(size + 8);
    if (!b) return 0;
    memcpy(b, data, size);
    memcpy(b + 16, hashes, 16); /* this model's hash, the base's adapter hash */
    uint64_t sum = XXH64(b, size, 0);
    memcpy(b + size, &sum, 8);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b, 1, size + 8, f);
        fclose(f);
        if (duet_session_load(raw, path) == DUET_OK) {
            char *text = NULL;
            duet_generate_all(raw, &text);
            free(text);
        }
        duet_session_clear(raw);
    }
    free(b);
    return 0;
}
