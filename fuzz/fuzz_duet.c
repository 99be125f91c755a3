/* fuzz_duet.c - libFuzzer target over the .duet reader: header, hashes,
 * the JSON meta, the tensor directory, the config and the adapter table
 * (duet_parse on a 64-byte aligned copy, as a mapping is). A refusal is a
 * normal outcome; a crash, leak, sanitizer report or hang is a finding.
 * Checksums make most random mutations fail early (the seed is
 * fuzz/corpus/duet/qwen2-s2-f32.duet); the header and length checks before
 * them are what this target exercises most. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/duet_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *buf = aligned_alloc(64, (size + 63) / 64 * 64 + 64);
    if (!buf) return 0;
    memcpy(buf, data, size);
    Model m;
    Err e;
    if (duet_parse(&m, buf, size, "fuzz.duet", &e) == 0) model_close(&m);
    free(buf);
    return 0;
}
