/* fuzz_config.c - libFuzzer target over config.json: config_parse (the
 * JSON reader, both rope layouts, every field check and the shared limits
 * of load/limits.h through config_check). A refusal is a normal outcome; a
 * crash, leak, sanitizer report or hang is a finding. Seeds:
 * fuzz/corpus/config. */
#include <stddef.h>
#include <stdint.h>

#include "load/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ModelConfig c;
    Err e;
    if (config_parse(&c, (const char *)data, size, "fuzz/config.json", &e) == 0 && config_check(&c, "fuzz", &e))
        __builtin_trap(); /* what config_parse accepts, config_check (the .duet reader's rule) must accept too */
    return 0;
}
