/* neon.h - inline helpers the NEON kernel files share (kern_neon.c,
 * attn_neon.c): f16 / bf16 / f32 rows as f32 vectors. Included only by
 * files built with the NEON flags. */
#ifndef DUET_KERN_NEON_H
#define DUET_KERN_NEON_H

#include <arm_neon.h>
#include <stddef.h>

#include "kern/kern_impl.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float32x4_t load_w4(const void *base, size_t i, DType t)
{
    if (t == DT_F32) return vld1q_f32((const float *)base + i);
    uint16x4_t h = vld1_u16((const uint16_t *)base + i);
    if (t == DT_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}
#endif
