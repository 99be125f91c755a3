/* attn_avx2.c - the AVX2 backend's attention (kern.h's kern_attn_f16
 * and kern_attn_prefill_f16: f16 keys and values, online softmax in
 * blocks of ATT_B positions) and SiLU, on a vector exp. The scalar twins
 * are kern_ref.c's. */
#include <math.h>

#include "kern/avx2.h"

/* exp(x), as exp16 in attn_avx512.c: clamped to |x| <= 87, Cephes'
 * polynomial on the reduced argument, 2^n in the exponent bits. */
INLINE __m256 exp8(__m256 x)
{
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(87.0f)), _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
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
    __m256 mg = _mm256_set1_ps(*m), sum = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= v; b += 8) {
        __m256 w = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + b), mg));
        _mm256_storeu_ps(s + b, w);
        sum = _mm256_add_ps(sum, w);
    }
    float tail = 0;
    for (; b < v; b++) tail += s[b] = expf(s[b] - *m);
    *l += hsum8(sum) + tail;
    return corr;
}

/* kern_attn_f16 as the AVX-512 version (blocks of ATT_B positions; each key
 * and value row converted once, into row, for all G queries); hd a multiple
 * of 8. */
int attn_f16_avx2(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                    const uint16_t *V, size_t stride, int n)
{
    if (hd % 8 || hd > 256 || G > 16) return -1;
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
            for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(row + d, load_w8(kr, (size_t)d, DT_F16));
            for (int g = 0; g < G; g++) {
                const float *qg = q + (size_t)g * hd;
                __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
                int d = 0;
                for (; d + 16 <= hd; d += 16) {
                    d0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + d), _mm256_loadu_ps(qg + d), d0);
                    d1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + d + 8), _mm256_loadu_ps(qg + d + 8), d1);
                }
                if (d < hd) d0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + d), _mm256_loadu_ps(qg + d), d0);
                s[g][b] = hsum8(_mm256_add_ps(d0, d1));
            }
        }
        for (int g = 0; g < G; g++) {
            float corr = softmax_block(s[g], nb, &m[g], &l[g]);
            if (corr != 1) {
                __m256 cv = _mm256_set1_ps(corr);
                for (int d = 0; d < hd; d += 8)
                    _mm256_storeu_ps(acc + (size_t)g * hd + d, _mm256_mul_ps(_mm256_loadu_ps(acc + (size_t)g * hd + d), cv));
            }
        }
        for (int b = 0; b < nb; b++) {
            const uint16_t *vr = V + (size_t)(p0 + b) * stride;
            for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(row + d, load_w8(vr, (size_t)d, DT_F16));
            for (int g = 0; g < G; g++) {
                float *a = acc + (size_t)g * hd;
                __m256 w = _mm256_set1_ps(s[g][b]);
                for (int d = 0; d < hd; d += 8)
                    _mm256_storeu_ps(a + d, _mm256_fmadd_ps(_mm256_loadu_ps(row + d), w, _mm256_loadu_ps(a + d)));
            }
        }
    }
    return 0;
}

/* kern_attn_prefill_f16 as the AVX-512 version, one query at a time: the
 * block's keys converted and transposed once (KT[d][p]), its values
 * converted once; a query's 64 scores in 8 accumulators (broadcast q[d]
 * times row d of KT), the weights by exp8, then the weighted values summed
 * in registers 64 dimensions at a time. hd a multiple of 8, up to 256. */
int attn_prefill_f16_avx2(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                            const uint16_t *V, size_t stride, const int *vis)
{
    if (hd % 8 || hd > 256) return -1;
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
                for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(row + d, load_w8(K + (size_t)(p0 + b) * stride, (size_t)d, DT_F16));
                for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(Vb + (size_t)b * hd + d, load_w8(V + (size_t)(p0 + b) * stride, (size_t)d, DT_F16));
            } else {
                for (int d = 0; d < hd; d++) row[d] = 0;
            }
            for (int d = 0; d < hd; d++) KT[(size_t)d * ATT_B + b] = row[d];
        }
        for (int i = 0; i < nq; i++) {
            int v = vis[i] - p0 < nb ? vis[i] - p0 : nb;
            if (v <= 0) continue;
            const float *qi = Q + (size_t)i * hd;
            __m256 sc[8];
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) sc[g] = _mm256_setzero_ps();
            for (int d = 0; d < hd; d++) {
                __m256 qd = _mm256_set1_ps(qi[d]);
                const float *kt = KT + (size_t)d * ATT_B;
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) sc[g] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kt + 8 * g), sc[g]);
            }
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) _mm256_storeu_ps(s + 8 * g, sc[g]);
            float corr = softmax_block(s, v, &m[i], &l[i]);
            float *ai = acc + (size_t)i * hd;
            __m256 cv = _mm256_set1_ps(corr);
            for (int d0 = 0; d0 < hd; d0 += 64) {
                int nv = hd - d0 < 64 ? (hd - d0) / 8 : 8;
                __m256 a[8];
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) a[c] = c < nv ? _mm256_mul_ps(_mm256_loadu_ps(ai + d0 + 8 * c), cv) : _mm256_setzero_ps();
                for (int bb = 0; bb < v; bb++) {
                    __m256 w = _mm256_set1_ps(s[bb]);
                    const float *vb = Vb + (size_t)bb * hd + d0;
                    if (nv == 8) {
#pragma GCC unroll 8
                        for (int c = 0; c < 8; c++) a[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vb + 8 * c), a[c]);
                    } else {
                        for (int c = 0; c < nv; c++) a[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vb + 8 * c), a[c]);
                    }
                }
                for (int c = 0; c < nv; c++) _mm256_storeu_ps(ai + d0 + 8 * c, a[c]);
            }
        }
    }
    return 0;
}

void silu_mul_avx2(float *y, const float *g, const float *u, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i), v = _mm256_loadu_ps(u + i);
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, v));
    }
    if (i < n) kern_silu_mul_ref(y + i, g + i, u + i, n - i);
}
