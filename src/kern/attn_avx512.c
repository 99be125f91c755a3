/* attn_avx512.c - the AVX-512 backend's attention (kern.h's
 * kern_attn_f16 and kern_attn_prefill_f16: f16 keys and values, online
 * softmax in blocks of ATT_B positions) and SiLU, on a vector exp. The
 * scalar twins are kern_ref.c's. */
#include <math.h>

#include "kern/avx512.h"

/* exp(x) for |x| <= 87 (clamped there): x = n ln2 + r, |r| <= ln2 / 2,
 * Cephes' degree-6 polynomial for e^r, times 2^n built in the exponent
 * bits; within 2 ulp of expf. */
INLINE __m512 exp16(__m512 x)
{
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(87.0f)), _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

enum { ATT_B = 64 }; /* positions per block of the attention kernels */

/* The online-softmax step of one query over a block of scores s[0 ..
 * ATT_B): the first v are visible (v <= 0: none) and become their weights
 * exp(s - max), the rest 0; updates the running max *m and sum *l, and
 * returns the factor the query's accumulator must take (1: the max held). */
static float softmax_block(float *s, int v, float *m, float *l)
{
    if (v <= 0) {
        for (int b = 0; b < ATT_B; b++) s[b] = 0;
        return 1;
    }
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int b = 0; b < v; b += 16) {
        __mmask16 bm = v - b >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (v - b)) - 1);
        mx = _mm512_mask_max_ps(mx, bm, mx, _mm512_loadu_ps(s + b));
    }
    float bmax = _mm512_reduce_max_ps(mx), corr = 1;
    if (bmax > *m) {
        corr = expf(*m - bmax);
        *l *= corr;
        *m = bmax;
    }
    __m512 mg = _mm512_set1_ps(*m), sum = _mm512_setzero_ps();
    for (int b = 0; b < ATT_B; b += 16) {
        __mmask16 bm = v - b >= 16 ? (__mmask16)0xFFFF : v - b > 0 ? (__mmask16)((1u << (v - b)) - 1) : 0;
        __m512 w = _mm512_maskz_mov_ps(bm, exp16(_mm512_sub_ps(_mm512_loadu_ps(s + b), mg)));
        _mm512_storeu_ps(s + b, w);
        sum = _mm512_add_ps(sum, w);
    }
    *l += _mm512_reduce_add_ps(sum);
    return corr;
}

/* kern_attn_f16 in blocks of ATT_B positions: the block's scores for all G
 * queries (each key row converted once), the online-softmax rescale, the
 * weights by exp16, then each value row converted once and added into the
 * G accumulators (kept in acc, in L1). Any hd <= 256 (the last 16 masked). */
INLINE void attn_t(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K, const uint16_t *V,
                   size_t stride, int n, const int NC)
{
    int nc = NC ? NC : (hd + 15) / 16;
    __mmask16 last = !NC && hd % 16 ? (__mmask16)((1u << (hd % 16)) - 1) : (__mmask16)0xFFFF;
    float s[16][ATT_B];
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY;
        l[g] = 0;
        for (int d = 0; d < hd; d++) acc[(size_t)g * hd + d] = 0;
    }
    for (int p0 = 0; p0 < n; p0 += ATT_B) {
        int nb = n - p0 < ATT_B ? n - p0 : ATT_B;
        for (int b = 0; b < nb; b++) {
            const uint16_t *kr = K + (size_t)(p0 + b) * stride;
            __m512 kz[16];
            for (int c = 0; c < nc; c++) kz[c] = load_w16_mask(kr, (size_t)16 * c, DT_F16, c == nc - 1 ? last : 0xFFFF);
            for (int g = 0; g < G; g++) {
                const float *qg = q + (size_t)g * hd;
                __m512 d0 = _mm512_setzero_ps(), d1 = _mm512_setzero_ps();
                int c = 0;
                for (; c + 1 < nc; c += 2) {
                    d0 = _mm512_fmadd_ps(kz[c], _mm512_loadu_ps(qg + 16 * c), d0);
                    d1 = _mm512_fmadd_ps(kz[c + 1], _mm512_maskz_loadu_ps(c + 1 == nc - 1 ? last : 0xFFFF, qg + 16 * c + 16), d1);
                }
                if (c < nc) d0 = _mm512_fmadd_ps(kz[c], _mm512_maskz_loadu_ps(last, qg + 16 * c), d0);
                s[g][b] = _mm512_reduce_add_ps(_mm512_add_ps(d0, d1));
            }
        }
        for (int g = 0; g < G; g++) {
            float corr = softmax_block(s[g], nb, &m[g], &l[g]);
            if (corr != 1) {
                __m512 cv = _mm512_set1_ps(corr);
                for (int c = 0; c < nc; c++) {
                    __mmask16 cm = c == nc - 1 ? last : 0xFFFF;
                    float *a = acc + (size_t)g * hd + 16 * c;
                    _mm512_mask_storeu_ps(a, cm, _mm512_mul_ps(_mm512_maskz_loadu_ps(cm, a), cv));
                }
            }
        }
        for (int b = 0; b < nb; b++) {
            const uint16_t *vr = V + (size_t)(p0 + b) * stride;
            __m512 vz[16];
            for (int c = 0; c < nc; c++) vz[c] = load_w16_mask(vr, (size_t)16 * c, DT_F16, c == nc - 1 ? last : 0xFFFF);
            for (int g = 0; g < G; g++) {
                __m512 w = _mm512_set1_ps(s[g][b]);
                float *a = acc + (size_t)g * hd;
                for (int c = 0; c < nc; c++) {
                    __mmask16 cm = c == nc - 1 ? last : 0xFFFF;
                    _mm512_mask_storeu_ps(a + 16 * c, cm, _mm512_fmadd_ps(vz[c], w, _mm512_maskz_loadu_ps(cm, a + 16 * c)));
                }
            }
        }
    }
}

/* kern_attn_prefill_f16, in blocks of ATT_B positions: the block's keys
 * converted and transposed once for all queries (KT[d][p], 16 positions
 * a vector), its values converted once (Vb[p][d]); then per query its
 * visible scores as 4 vectors of 16 positions (broadcast q[d] times row d
 * of KT, no horizontal sums), the online-softmax rescale, exp16, and the
 * weighted values summed into the query's accumulator held in registers.
 * hd = 16 * NC (NC 0: hd / 16 at run time). */
INLINE void attn_pre_t(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                       const uint16_t *V, size_t stride, const int *vis, const int NC)
{
    int nc = NC ? NC : hd / 16, n = 0;
    _Alignas(64) float KT[256 * ATT_B], Vb[ATT_B * 256], s[2][ATT_B];
    for (int i = 0; i < nq; i++) {
        m[i] = -INFINITY;
        l[i] = 0;
        for (int d = 0; d < hd; d++) acc[(size_t)i * hd + d] = 0;
        n = vis[i] > n ? vis[i] : n;
    }
    for (int p0 = 0; p0 < n; p0 += ATT_B) {
        int nb = n - p0 < ATT_B ? n - p0 : ATT_B, ng = (nb + 15) / 16;
        for (int g = 0; g < ng; g++)
            for (int c = 0; c < nc; c++) {
                __m512 t[16];
#pragma GCC unroll 16
                for (int jj = 0; jj < 16; jj++)
                    t[jj] = 16 * g + jj < nb ? load_w16(K + (size_t)(p0 + 16 * g + jj) * stride, (size_t)16 * c, DT_F16)
                                             : _mm512_setzero_ps();
                transpose16(t);
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) _mm512_store_ps(KT + (size_t)(16 * c + q) * ATT_B + 16 * g, t[q]);
            }
        for (int b = 0; b < nb; b++)
            for (int c = 0; c < nc; c++)
                _mm512_store_ps(Vb + (size_t)b * hd + 16 * c, load_w16(V + (size_t)(p0 + b) * stride, (size_t)16 * c, DT_F16));
        for (int i = 0; i < nq; i += 2) { /* queries in pairs: twice the chains, each KT and Vb load shared */
            int two = i + 1 < nq, v0 = vis[i] - p0 < nb ? vis[i] - p0 : nb, v1 = two ? vis[i + 1] - p0 : 0;
            v1 = v1 < nb ? v1 : nb;
            int v = v0 > v1 ? v0 : v1;
            if (v <= 0) continue;
            const float *q0 = Q + (size_t)i * hd, *q1 = two ? q0 + hd : q0;
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
            if (v > 48) {
                for (int d = 0; d < hd; d++) {
                    __m512 a0 = _mm512_set1_ps(q0[d]), a1 = _mm512_set1_ps(q1[d]);
                    const float *kt = KT + (size_t)d * ATT_B;
                    __m512 k0 = _mm512_load_ps(kt), k1 = _mm512_load_ps(kt + 16);
                    __m512 k2 = _mm512_load_ps(kt + 32), k3 = _mm512_load_ps(kt + 48);
                    s0 = _mm512_fmadd_ps(a0, k0, s0);
                    s1 = _mm512_fmadd_ps(a0, k1, s1);
                    s2 = _mm512_fmadd_ps(a0, k2, s2);
                    s3 = _mm512_fmadd_ps(a0, k3, s3);
                    t0 = _mm512_fmadd_ps(a1, k0, t0);
                    t1 = _mm512_fmadd_ps(a1, k1, t1);
                    t2 = _mm512_fmadd_ps(a1, k2, t2);
                    t3 = _mm512_fmadd_ps(a1, k3, t3);
                }
            } else {
                int vg = (v + 15) / 16;
                for (int d = 0; d < hd; d++) {
                    __m512 a0 = _mm512_set1_ps(q0[d]), a1 = _mm512_set1_ps(q1[d]);
                    const float *kt = KT + (size_t)d * ATT_B;
                    __m512 k0 = _mm512_load_ps(kt);
                    s0 = _mm512_fmadd_ps(a0, k0, s0);
                    t0 = _mm512_fmadd_ps(a1, k0, t0);
                    if (vg > 1) {
                        __m512 k1 = _mm512_load_ps(kt + 16);
                        s1 = _mm512_fmadd_ps(a0, k1, s1);
                        t1 = _mm512_fmadd_ps(a1, k1, t1);
                    }
                    if (vg > 2) {
                        __m512 k2 = _mm512_load_ps(kt + 32);
                        s2 = _mm512_fmadd_ps(a0, k2, s2);
                        t2 = _mm512_fmadd_ps(a1, k2, t2);
                    }
                }
            }
            _mm512_store_ps(s[0], s0);
            _mm512_store_ps(s[0] + 16, s1);
            _mm512_store_ps(s[0] + 32, s2);
            _mm512_store_ps(s[0] + 48, s3);
            _mm512_store_ps(s[1], t0);
            _mm512_store_ps(s[1] + 16, t1);
            _mm512_store_ps(s[1] + 32, t2);
            _mm512_store_ps(s[1] + 48, t3);
            float corr0 = softmax_block(s[0], v0, &m[i], &l[i]), corr1 = two ? softmax_block(s[1], v1, &m[i + 1], &l[i + 1]) : 0;
            float *ai = acc + (size_t)i * hd, *aj = two ? ai + hd : ai;
            __m512 x[16] = {0}, y[16] = {0}, c0 = _mm512_set1_ps(corr0), c1 = _mm512_set1_ps(corr1);
#pragma GCC unroll 16
            for (int c = 0; c < nc; c++) {
                x[c] = _mm512_mul_ps(_mm512_loadu_ps(ai + 16 * c), c0);
                y[c] = _mm512_mul_ps(_mm512_loadu_ps(aj + 16 * c), c1);
            }
            for (int b = 0; b < v; b++) {
                __m512 w0 = _mm512_set1_ps(s[0][b]), w1 = _mm512_set1_ps(s[1][b]);
                const float *vb = Vb + (size_t)b * hd;
#pragma GCC unroll 16
                for (int c = 0; c < nc; c++) {
                    __m512 vv = _mm512_load_ps(vb + 16 * c);
                    x[c] = _mm512_fmadd_ps(w0, vv, x[c]);
                    y[c] = _mm512_fmadd_ps(w1, vv, y[c]);
                }
            }
#pragma GCC unroll 16
            for (int c = 0; c < nc; c++) {
                _mm512_storeu_ps(ai + 16 * c, x[c]);
                if (two) _mm512_storeu_ps(aj + 16 * c, y[c]);
            }
        }
    }
}

int attn_prefill_f16_avx512(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                            const uint16_t *V, size_t stride, const int *vis)
{
    if (hd % 16 || hd > 256) return -1;
    if (hd == 128) attn_pre_t(acc, m, l, Q, nq, hd, K, V, stride, vis, 8); /* Qwen2's head: unrolled */
    else if (hd == 64) attn_pre_t(acc, m, l, Q, nq, hd, K, V, stride, vis, 4);
    else attn_pre_t(acc, m, l, Q, nq, hd, K, V, stride, vis, 0);
    return 0;
}

int attn_f16_avx512(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                    const uint16_t *V, size_t stride, int n)
{
    if (hd > 256 || G > 16) return -1;
    if (hd == 128) attn_t(acc, m, l, q, G, hd, K, V, stride, n, 8); /* Qwen2's head: unrolled, no masks */
    else if (hd == 64) attn_t(acc, m, l, q, G, hd, K, V, stride, n, 4);
    else attn_t(acc, m, l, q, G, hd, K, V, stride, n, 0);
    return 0;
}

void silu_mul_avx512(float *y, const float *g, const float *u, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, g + i), v = _mm512_maskz_loadu_ps(m, u + i);
        __m512 s = _mm512_div_ps(x, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, v));
    }
}

