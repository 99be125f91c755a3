/* qblock.h - the byte layout of the block types of kern.h (Q8 .. IQ3K) in
 * one place: plane sizes per block of 32, the portable decode of one
 * block's integer levels and of a row's super-block scales (a super-block
 * type's levels are its base type's, so the level helpers take either). Shared by the scalar kernels, the reference, the
 * SIMD backends' tails and the quantizer; not part of the public API. */
#ifndef DUET_QBLOCK_H
#define DUET_QBLOCK_H

#include <stdint.h>

#include "kern/kern.h"
#include "util/half.h"

/* Bytes per block of 32 in plane 0 and plane 1 of a row (see kern.h). */
static inline int qb_plane0(DType t)
{
    t = dtype_base(t);
    return t == DT_Q8 ? 32 : t == DT_IQ3 ? 8 : 16;
}

static inline int qb_plane1(DType t)
{
    t = dtype_base(t);
    return t == DT_Q6 ? 8 : (t == DT_Q5 || t == DT_IQ3) ? 4 : 0;
}

static inline int qb_bytes(DType t) { return qb_plane0(t) + qb_plane1(t); }

/* The offset K with value = (level - K) * scale for the uniform types (Q4
 * 8, Q6 32, Q5 16; Q8 0 as stored, signed); -1 for the grid types. */
static inline int qb_offset(DType t)
{
    t = dtype_base(t);
    return t == DT_Q4 ? 8 : t == DT_Q6 ? 32 : t == DT_Q5 ? 16 : t == DT_Q8 ? 0 : -1;
}

/* The unsigned levels (0 .. 2^bits - 1; Q8: the int8 value) of block b of a
 * row of nb blocks starting at `row`, into lv[32]. */
static inline void qb_levels(DType t, const uint8_t *row, int nb, int b, int lv[32])
{
    t = dtype_base(t);
    if (t == DT_Q8) {
        for (int e = 0; e < 32; e++) lv[e] = (int8_t)row[(size_t)b * 32 + e];
        return;
    }
    if (t == DT_IQ3) {
        const uint8_t *p0 = row + (size_t)b * 8, *p1 = row + (size_t)nb * 8 + (size_t)b * 4;
        for (int e = 0; e < 32; e++) lv[e] = (p0[e & 7] >> (2 * (e >> 3)) & 3) | (p1[e >> 3] >> (e & 7) & 1) << 2;
        return;
    }
    const uint8_t *nib = row + (size_t)b * 16;
    for (int e = 0; e < 32; e++) lv[e] = e < 16 ? nib[e] & 15 : nib[e - 16] >> 4;
    if (t == DT_Q6) {
        const uint8_t *p1 = row + (size_t)nb * 16 + (size_t)b * 8;
        for (int e = 0; e < 32; e++) lv[e] |= (p1[e & 7] >> (2 * (e >> 3)) & 3) << 4;
    } else if (t == DT_Q5) {
        const uint8_t *p1 = row + (size_t)nb * 16 + (size_t)b * 4;
        for (int e = 0; e < 32; e++) lv[e] |= (p1[e >> 3] >> (e & 7) & 1) << 4;
    }
}

/* The signed integer value of level l of type t (value * scale = weight). */
static inline int qb_value(DType t, int l)
{
    t = dtype_base(t);
    return t == DT_IQ4 ? kern_grid_iq4[l & 15] : t == DT_IQ3 ? kern_grid_iq3[l & 7] : l - qb_offset(t);
}

/* Signed values of block b (qb_levels then qb_value). */
static inline void qb_values(DType t, const uint8_t *row, int nb, int b, int v[32])
{
    qb_levels(t, row, nb, b, v);
    for (int e = 0; e < 32; e++) v[e] = qb_value(t, v[e]);
}

/* Sub-scale i (0 .. 7) of the super-block whose 4 words start at sb. */
static inline int qb_super_k(const uint16_t *sb, int i)
{
    uint64_t v = sb[1] | (uint64_t)sb[2] << 16 | (uint64_t)sb[3] << 32;
    int k = (int)(v >> (6 * i) & 63);
    return k >= 32 ? k - 64 : k;
}

/* Block scale of sub-scale k under super-block scale D (f16 bits). */
static inline uint16_t qb_super_scale(uint16_t D, int k) { return f32_to_f16(f16_to_f32(D) * (float)k); }

/* The f16 scale of block b of a row of block type t whose scales start at
 * sc: stored, or derived from its super-block (kern.h). */
static inline uint16_t qb_block_scale(DType t, const uint16_t *sc, int b)
{
    if (!dtype_is_super(t)) return sc[b];
    const uint16_t *sb = sc + (size_t)(b / QSUPER) * QSUPER_WORDS;
    return qb_super_scale(sb[0], qb_super_k(sb, b % QSUPER));
}

/* u16 words of scales per row of a block type (nb blocks). */
static inline size_t qb_scale_words(DType t, int nb)
{
    return dtype_is_super(t) ? (size_t)(nb + QSUPER - 1) / QSUPER * QSUPER_WORDS : (size_t)nb;
}

#endif
