/* qrow.h - one weight row into the Q8 / Q4 blocks of kern.h, with the block
 * scale chosen by round-to-nearest or by a search, and optionally GPTQ's
 * error compensation (qrow.c). Pure functions on caller-owned buffers. */
#ifndef DUET_QROW_H
#define DUET_QROW_H

#include <stdint.h>

#include "kern/kern.h"

/* How a block's f16 scale d is chosen: QROUND_NEAREST is the plain
 * round-to-nearest of llama.cpp's Q8_0 / Q4_0 (d = max|x| / 127; Q4:
 * max|x| / 8 with the largest element on level -8 when it is negative, else
 * max|x| / 7 on +7, the nearest our positive-scale Q4 comes to Q4_0);
 * QROUND_SEARCH takes the best of d = max|x| / s over a grid of s (Q8 124 ..
 * 140, Q4 6 .. 8) by the (weighted) squared error of the block. The other
 * block types (Q6 .. IQ3): QROUND_SEARCH is quant_block_scale's search
 * (quant.h), QROUND_NEAREST the largest element on its sign's end level. */
typedef enum QRound { QROUND_SEARCH = 0, QROUND_NEAREST = 1 } QRound;

/* The f16 scale of one block of n <= 32 values v; w (n, or NULL for ones)
 * weights the squared errors of the search. 0 for an all-zero block. */
uint16_t qrow_block_scale(DType t, QRound round, const float *v, const float *w, int n);

/* The super-block of a super-block type t that starts at block b of row x
 * (cols floats; w as below): each block's scale by qrow_block_scale of the
 * base type, then quant_super_fit (searching with QROUND_SEARCH). The 4
 * words go to sc, the blocks' f16 scales to h (up to 8). */
void qrow_super(uint16_t *sc, uint16_t *h, DType t, QRound round, const float *x, int cols, const float *w, int b);

/* Quantizes row x (cols floats; overwritten as scratch) of block type t into
 * dst (ceil(cols/32) blocks in kern.h's layout, padding 0) and
 * scales (ceil(cols/32) f16; super-block types: their 4 words per 8 blocks,
 * each super-block's scales chosen when its first block is reached). w (cols, or NULL) weights the block-scale
 * search. U (cols x cols, row-major, upper triangular, or NULL): GPTQ, from
 * qrow_gptq_factor() of the inputs that this row multiplies; with it, each
 * block's scale is chosen from the values after the earlier blocks' errors
 * were spread, the columns are rounded in order and each one's error
 * (x_j - q_j) / U_jj times U_j,c is subtracted from every later column c. */
void qrow_quantize(void *dst, uint16_t *scales, DType t, QRound round, float *x, int cols, const float *w,
                   const float *U);

/* GPTQ's factor U (n x n floats, upper triangular, U^T U = (H + damp *
 * mean(diag H) I)^-1) of the n x n second-moment matrix H of the inputs
 * (row-major doubles). The damping grows tenfold (up to five times) while
 * the matrix is not positive definite. 0, or -1 (out of memory, or H still
 * not positive definite). */
int qrow_gptq_factor(float *U, const double *H, int n, double damp);

#endif
