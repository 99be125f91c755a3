/* fuzz_tensor_types.c - libFuzzer target over `duet compile --tensor-type`
 * rules through tensor_types_resolve (the PATTERN=TYPE
 * split, the type names, PCRE2 compile and match under their limits, the
 * first-rule-wins walk over a 6-layer model's tensor names). The input's
 * first byte picks a tied or an untied model; the rest is one rule per
 * line (at most 64). A refusal is a normal outcome; a crash, a leak, a
 * sanitizer report or a hang is a finding. Seeds: fuzz/corpus/tensor_types. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compile/tensor_types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int tied = data[0] & 1;
    char *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    const char *rules[64];
    int n = 0;
    for (char *p = buf; n < 64;) {
        rules[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    Err e;
    TensorTypes tt;
    if (tensor_types_resolve(&tt, rules, n, 6, tied, "fuzz", &e) == 0 && (!tt.layer || tt.n_layers != 6))
        __builtin_trap(); /* a resolved set has its per-layer table */
    tensor_types_free(&tt);
    free(buf);
    return 0;
}
