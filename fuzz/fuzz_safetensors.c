/* fuzz_safetensors.c - libFuzzer target for the safetensors header parser.
 * Build and run: see fuzz/README.md. Any input must give success or a clean
 * error, never a crash, a hang or a leak. */
#include <stddef.h>
#include <stdint.h>

#include "load/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    StFile f;
    Err e;
    if (st_parse(&f, data, size, "fuzz", &e) == 0) {
        for (int i = 0; i < f.n; i++) {
            /* touch every byte the parser vouched for */
            volatile uint8_t sink = 0;
            const uint8_t *p = f.t[i].data;
            for (size_t j = 0; j < f.t[i].nbytes; j++) sink ^= p[j];
            (void)sink;
        }
        st_close(&f);
    }
    return 0;
}
