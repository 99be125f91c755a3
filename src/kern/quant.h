/* quant.h - float32 weights to the storage formats of kern.h: f16, bf16 and
 * the block types (Q8, Q4, Q6, Q5, IQ4, IQ3: blocks of 32, one f16 scale
 * per block; Q6K .. IQ3K: the same levels, scales per super-block of 8). Pure functions on caller-owned buffers; used by the compile
 * step.
 *
 * Importance: the functions that choose scales take `imp`, one non-negative
 * weight per input column of the row (NULL = all ones): the scale search
 * minimises sum_j imp[j] * (x_j - dequant_j)^2, so calibration statistics
 * (e.g. each column's mean squared activation) steer every format. */
#ifndef DUET_QUANT_H
#define DUET_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "kern/kern.h"

/* One row of cols floats to ceil(cols/32) Q8 blocks: q = round(x / d) with
 * d = max|x| / 127 (the f16-rounded d is the one used); `q` gets nb * 32
 * bytes (padding zero), `scales` nb f16 values. */
void quant_row_q8(int8_t *q, uint16_t *scales, const float *x, int cols);

/* One row to Q4 blocks (nb * 16 bytes, nibble layout of kern.h, padding
 * nibbles 8 = value 0). Per block, the symmetric scale is chosen from a grid
 * of candidates (max|x| / 6 .. max|x| / 8, the largest element mapped to +7
 * or -8) to minimise the squared error. */
void quant_row_q4(uint8_t *q, uint16_t *scales, const float *x, int cols);

/* As quant_row_q4, but each block's scale minimises
 * sum_j importance[j] * (x_j - dequant_j)^2: activation-aware calibration,
 * importance = mean squared activation of input column j (cols floats,
 * non-negative). NULL importance = all ones. */
void quant_row_q4_weighted(uint8_t *q, uint16_t *scales, const float *x, int cols,
                           const float *importance);

/* The levels of block type t: quant_nlevels(t) of them (Q8 255, Q4 16, Q6
 * 64, Q5 32, IQ4 16, IQ3 8), level l meaning the integer value
 * quant_level_value(t, l), increasing with l (value * scale = weight). */
int quant_nlevels(DType t);
int quant_level_value(DType t, int l);

/* The level whose value is nearest to v (v in units of the scale; beyond
 * the ends, the end levels). */
int quant_nearest(DType t, float v);

/* The f16 scale of one block of n <= 32 values x of block type t, searched
 * to minimise the imp-weighted squared error (imp: n weights or NULL):
 * candidate scales around max|x| / the grid's extreme value (negative ones
 * too, which mirror an asymmetric grid), the best refitted by least squares
 * on its rounding, the f16 rounding included. 0 for an all-zero block. */
uint16_t quant_block_scale(DType t, const float *x, const float *imp, int n);

/* Stores the levels lv[0..31] of block b into `row`, a row of cols columns
 * of type t in kern.h's layout (planes per row). */
void quant_block_pack(DType t, void *row, int cols, int b, const int lv[32]);

/* The super-block scales (kern.h: D and 8 sub-scales, 4 words into out) of
 * the nblk <= 8 blocks of x (ncols values, imp weights or NULL) for base
 * type bt, from the f16 scales h0[] each block would take alone: D puts the
 * extreme block scale on sub-scale 31 (or -32); with `search`, D also
 * within +-3% of that and each sub-scale the better of its two neighbours,
 * by the blocks' weighted squared error. The f16 block scales the words
 * then give go to h[0..nblk). */
void quant_super_fit(DType bt, const float *x, const float *imp, int ncols, const uint16_t *h0, int nblk, int search,
                     uint16_t out[4], uint16_t *h);

/* One row of cols floats into type t (a block type): each block's scale by
 * quant_block_scale with imp (cols weights or NULL), packed per super-block
 * by quant_super_fit(search) for the super-block types; levels by
 * quant_nearest; padding levels of the last block are quant_nearest(0).
 * `scales` takes qb_scale_words(t, nb) words. */
void quant_row(DType t, void *row, uint16_t *scales, const float *x, int cols, const float *imp);

/* f32 to f16 / bf16, round to nearest even, n values. */
void quant_f32_to_f16(uint16_t *out, const float *in, size_t n);
void quant_f32_to_bf16(uint16_t *out, const float *in, size_t n);

/* A rows x cols row-major f32 matrix into type t: `data` of
 * qmat_data_bytes(t, rows, cols), `scales` of qmat_scale_bytes (block types
 * only, else may be NULL); Q6 .. IQ3 by quant_row with uniform importance.
 * Returns 0, or -1 for an unknown type. */
int quant_matrix(DType t, void *data, uint16_t *scales, const float *w, int rows, int cols);

#endif
