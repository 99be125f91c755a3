/* rng.h - the tests' reproducible pseudo-random numbers (xorshift64), so
 * kernel tests draw their random inputs the same way. Seed s must be nonzero. */
#ifndef DUET_TEST_RNG_H
#define DUET_TEST_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s;
} Rng;

static inline uint32_t rng_u32(Rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 11);
}

/* uniform in [-1, 1] */
static inline float rng_f(Rng *r) { return (float)(rng_u32(r) % 2000001) / 1000000.0f - 1.0f; }

#endif
