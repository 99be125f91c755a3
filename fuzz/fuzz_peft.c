/* fuzz_peft.c - libFuzzer target over adapter_config.json parsing: the JSON
 * reader, every LoraConfig field check, and PEFT's module selection (regex
 * target_modules, exclude_modules, layers_to_transform / layers_pattern,
 * rank_pattern / alpha_pattern) against a small Qwen2 base. Any crash, leak,
 * sanitizer report or hang is a finding; a refusal is a normal outcome.
 * Build and run: see fuzz/README-peft.md. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "load/config.h"
#include "load/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the tiny-qwen2 fixture's shapes; set here so the target needs no files */
    ModelConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.arch = ARCH_QWEN2;
    cfg.dim = 48;
    cfg.n_layers = 2;
    cfg.n_heads = 3;
    cfg.n_kv_heads = 1;
    cfg.head_dim = 16;
    cfg.hidden_dim = 128;
    cfg.vocab_size = 151936;
    Err e;
    peft_config_check((const char *)data, size, "fuzz/adapter_config.json", &cfg, &e);
    return 0;
}
