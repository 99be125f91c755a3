/* lora8.c - the portable kernels of LoRA products with 8-bit A and B
 * (kern_impl.h's lora8_a, lora8_b): the scalar backend's, and the edges of
 * the SIMD backends' (lora8_b's sums are defined bit for bit, so every
 * backend hands its unaligned rows here). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kern/kern_impl.h"
#include "util/half.h"

void lora8_a_portable(float *t, const QMat *A, int k0, int k1, const float *x, int n)
{
    int cols = A->cols, nb = (cols + QBLOCK - 1) / QBLOCK, r = A->rows;
    for (int k = k0; k < k1; k++) {
        const int8_t *q = (const int8_t *)A->data + (size_t)k * nb * QBLOCK;
        const uint16_t *sc = A->scales + (size_t)k * nb;
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * cols;
            float s = 0;
            for (int b = 0; b < nb; b++) {
                int e1 = cols - b * QBLOCK < QBLOCK ? cols - b * QBLOCK : QBLOCK;
                float p = 0;
                for (int e = 0; e < e1; e++) p += (float)q[b * QBLOCK + e] * xi[b * QBLOCK + e];
                s += p * f16_to_f32(sc[b]);
            }
            t[(size_t)i * r + k] = s;
        }
    }
}

void lora8_b_portable(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n)
{
    for (int i = 0; i < n; i++) memset(u + (size_t)i * ldu, 0, (size_t)(j1 - j0) * sizeof(float));
    for (int k = 0; k < r; k++) {
        for (int j = j0; j < j1; j++) {
            size_t row = lora8_row(r, j, k);
            float w = (float)((const int8_t *)B->data)[row * QBLOCK + j % QBLOCK] * f16_to_f32(B->scales[row]); /* exact */
            for (int i = 0; i < n; i++) {
                float *o = u + (size_t)i * ldu + (j - j0);
                *o = fmaf(t[(size_t)i * r + k], w, *o);
            }
        }
    }
}
