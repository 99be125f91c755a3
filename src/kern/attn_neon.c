/* attn_neon.c - the NEON backend's attention (kern.h's kern_attn_f16
 * and kern_attn_prefill_f16: f16 keys and values, online softmax in
 * blocks of ATT_B positions) and SiLU, on a vector exp. The scalar twins
 * are kern_ref.c's. */
#include <math.h>

#include "kern/neon.h"

/* exp(x), as exp16 in attn_avx512.c: clamped to |x| <= 87, Cephes'
 * polynomial on the reduced argument, 2^n in the exponent bits. */
INLINE float32x4_t exp4(float32x4_t x)
{
    x = vmaxq_f32(vminq_f32(x, vdupq_n_f32(87.0f)), vdupq_n_f32(-87.0f));
    float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_n_f32(x, n, 0.693359375f);
    r = vfmsq_n_f32(r, n, -2.12194440e-4f);
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

enum { ATT_B = 64 }; /* positions per block of the attention kernels */

/* The online-softmax step of one query over a block of scores s[0 .. v):
 * they become their weights exp(s - max); updates the running max *m and
 * sum *l, and returns the factor the query's accumulator must take (1: the
 * max held). */
static float softmax_block(float *s, int v, float *m, float *l)
{
    float bmax = -INFINITY, corr = 1;
    for (int b = 0; b < v; b++) bmax = s[b] > bmax ? s[b] : bmax;
    if (bmax > *m) {
        corr = expf(*m - bmax);
        *l *= corr;
        *m = bmax;
    }
    float32x4_t mg = vdupq_n_f32(*m), sum = vdupq_n_f32(0);
    int b = 0;
    for (; b + 4 <= v; b += 4) {
        float32x4_t w = exp4(vsubq_f32(vld1q_f32(s + b), mg));
        vst1q_f32(s + b, w);
        sum = vaddq_f32(sum, w);
    }
    float tail = 0;
    for (; b < v; b++) tail += s[b] = expf(s[b] - *m);
    *l += vaddvq_f32(sum) + tail;
    return corr;
}

/* kern_attn_f16 as the AVX-512 version (blocks of ATT_B positions; each key
 * and value row converted once, into row, for all G queries); hd a multiple
 * of 4. */
int attn_f16_neon(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                    const uint16_t *V, size_t stride, int n)
{
    if (hd % 4 || hd > 256 || G > 16) return -1;
    float s[16][ATT_B], row[256];
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY;
        l[g] = 0;
        for (int d = 0; d < hd; d++) acc[(size_t)g * hd + d] = 0;
    }
    for (int p0 = 0; p0 < n; p0 += ATT_B) {
        int nb = n - p0 < ATT_B ? n - p0 : ATT_B;
        for (int b = 0; b < nb; b++) {
            const uint16_t *kr = K + (size_t)(p0 + b) * stride;
            for (int d = 0; d < hd; d += 4) vst1q_f32(row + d, load_w4(kr, (size_t)d, DT_F16));
            for (int g = 0; g < G; g++) {
                const float *qg = q + (size_t)g * hd;
                float32x4_t d0 = vdupq_n_f32(0), d1 = d0;
                int d = 0;
                for (; d + 8 <= hd; d += 8) {
                    d0 = vfmaq_f32(d0, vld1q_f32(row + d), vld1q_f32(qg + d));
                    d1 = vfmaq_f32(d1, vld1q_f32(row + d + 4), vld1q_f32(qg + d + 4));
                }
                if (d < hd) d0 = vfmaq_f32(d0, vld1q_f32(row + d), vld1q_f32(qg + d));
                s[g][b] = vaddvq_f32(vaddq_f32(d0, d1));
            }
        }
        for (int g = 0; g < G; g++) {
            float corr = softmax_block(s[g], nb, &m[g], &l[g]);
            if (corr != 1) {
                for (int d = 0; d < hd; d += 4)
                    vst1q_f32(acc + (size_t)g * hd + d, vmulq_n_f32(vld1q_f32(acc + (size_t)g * hd + d), corr));
            }
        }
        for (int b = 0; b < nb; b++) {
            const uint16_t *vr = V + (size_t)(p0 + b) * stride;
            for (int d = 0; d < hd; d += 4) vst1q_f32(row + d, load_w4(vr, (size_t)d, DT_F16));
            for (int g = 0; g < G; g++) {
                float *a = acc + (size_t)g * hd, w = s[g][b];
                for (int d = 0; d < hd; d += 4) vst1q_f32(a + d, vfmaq_n_f32(vld1q_f32(a + d), vld1q_f32(row + d), w));
            }
        }
    }
    return 0;
}

/* kern_attn_prefill_f16 as the AVX2 version with 4 lanes: a query's 64
 * scores in 16 accumulators, the weighted values summed in registers 64
 * dimensions at a time. hd a multiple of 4, up to 256. */
int attn_prefill_f16_neon(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                            const uint16_t *V, size_t stride, const int *vis)
{
    if (hd % 4 || hd > 256) return -1;
    float KT[256 * ATT_B], Vb[ATT_B * 256], row[256], s[ATT_B];
    int n = 0;
    for (int i = 0; i < nq; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
        for (int d = 0; d < hd; d++) acc[(size_t)i * hd + d] = 0;
        n = vis[i] > n ? vis[i] : n;
    }
    for (int p0 = 0; p0 < n; p0 += ATT_B) {
        int nb = n - p0 < ATT_B ? n - p0 : ATT_B;
        for (int b = 0; b < ATT_B; b++) {
            if (b < nb) {
                for (int d = 0; d < hd; d += 4) vst1q_f32(row + d, load_w4(K + (size_t)(p0 + b) * stride, (size_t)d, DT_F16));
                for (int d = 0; d < hd; d += 4) vst1q_f32(Vb + (size_t)b * hd + d, load_w4(V + (size_t)(p0 + b) * stride, (size_t)d, DT_F16));
            } else {
                for (int d = 0; d < hd; d++) row[d] = 0;
            }
            for (int d = 0; d < hd; d++) KT[(size_t)d * ATT_B + b] = row[d];
        }
        for (int i = 0; i < nq; i++) {
            int v = vis[i] - p0 < nb ? vis[i] - p0 : nb;
            if (v <= 0) continue;
            const float *qi = Q + (size_t)i * hd;
            float32x4_t sc[16];
#pragma GCC unroll 16
            for (int g = 0; g < 16; g++) sc[g] = vdupq_n_f32(0);
            for (int d = 0; d < hd; d++) {
                const float *kt = KT + (size_t)d * ATT_B;
#pragma GCC unroll 16
                for (int g = 0; g < 16; g++) sc[g] = vfmaq_n_f32(sc[g], vld1q_f32(kt + 4 * g), qi[d]);
            }
#pragma GCC unroll 16
            for (int g = 0; g < 16; g++) vst1q_f32(s + 4 * g, sc[g]);
            float corr = softmax_block(s, v, &m[i], &l[i]);
            float *ai = acc + (size_t)i * hd;
            for (int d0 = 0; d0 < hd; d0 += 64) {
                int nv = hd - d0 < 64 ? (hd - d0) / 4 : 16;
                float32x4_t a[16];
#pragma GCC unroll 16
                for (int c = 0; c < 16; c++) a[c] = c < nv ? vmulq_n_f32(vld1q_f32(ai + d0 + 4 * c), corr) : vdupq_n_f32(0);
                for (int bb = 0; bb < v; bb++) {
                    const float *vb = Vb + (size_t)bb * hd + d0;
                    if (nv == 16) {
#pragma GCC unroll 16
                        for (int c = 0; c < 16; c++) a[c] = vfmaq_n_f32(a[c], vld1q_f32(vb + 4 * c), s[bb]);
                    } else {
                        for (int c = 0; c < nv; c++) a[c] = vfmaq_n_f32(a[c], vld1q_f32(vb + 4 * c), s[bb]);
                    }
                }
                for (int c = 0; c < nv; c++) vst1q_f32(ai + d0 + 4 * c, a[c]);
            }
        }
    }
    return 0;
}

void silu_mul_neon(float *y, const float *g, const float *u, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t x = vld1q_f32(g + i), v = vld1q_f32(u + i);
        float32x4_t s = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(x))));
        vst1q_f32(y + i, vmulq_f32(s, v));
    }
    if (i < n) kern_silu_mul_ref(y + i, g + i, u + i, n - i);
}
