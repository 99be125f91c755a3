/* gptq.h - GPTQ's error feedback over a batch of weight rows at once (the
 * "lazy batch" form): each block of 32 columns is rounded row by row with
 * the errors spread inside the block, then the block's errors of every row
 * of the batch update all later columns in one cache-friendly pass, so the
 * factor's rows are read once per batch instead of once per row. Gives the
 * same result as qrow_quantize() with U, much faster (gptq.c). */
#ifndef DUET_GPTQ_H
#define DUET_GPTQ_H

#include "compile/qrow.h"

/* Whether gptq_rows() handles type t (every block type). */
int gptq_supports(DType t);

/* Quantizes rows r0 .. r1-1 of W (any float or block type readable by
 * qmat_row_f32) into data / scales (the whole matrix's buffers, in kern.h's
 * layout for t) with GPTQ: U is qrow_gptq_factor() of the inputs (cols x
 * cols), w (cols, or NULL) the importance weights of each block's scale
 * search (qrow_block_scale). 0, or -1 when out of memory. */
int gptq_rows(void *data, uint16_t *scales, DType t, QRound round, const QMat *W, int r0, int r1, const float *U,
              const float *w);

#endif
