/* quant.h - float32 weights to the storage formats of kern.h: f16, bf16 and
 * the Q8 / Q4 blocks of 32 (round-to-nearest, one f16 scale per block).
 * Pure functions on caller-owned buffers; used by the compile step. */
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

/* f32 to f16 / bf16, round to nearest even, n values. */
void quant_f32_to_f16(uint16_t *out, const float *in, size_t n);
void quant_f32_to_bf16(uint16_t *out, const float *in, size_t n);

/* A rows x cols row-major f32 matrix into type t: `data` of
 * qmat_data_bytes(t, rows, cols), `scales` of qmat_scale_bytes (Q8/Q4 only,
 * else may be NULL). Returns 0, or -1 for an unknown type. */
int quant_matrix(DType t, void *data, uint16_t *scales, const float *w, int rows, int cols);

#endif
