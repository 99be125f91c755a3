/* kern.h - the compute kernels behind every forward pass: weight matrices in
 * the formats of the .duet file, products with float32 activations, and the
 * thread pool that splits them. A Kern is created once per model (backend
 * chosen from the CPU's features, threads started) and passed to every call;
 * there is no global state.
 *
 * Weight formats (the layout in a .duet file is the layout used here):
 *   DT_F32, DT_F16, DT_BF16: row-major rows x cols, `data` only. Data may come
 *       straight from a safetensors mapping, so it may be only 2-byte aligned.
 *   DT_Q8: each row is split in nb = ceil(cols/32) blocks of 32 values;
 *       `data` holds rows * nb * 32 int8 (a row's last block zero-padded),
 *       `scales` holds rows * nb f16 scales: value = q * scale.
 *   DT_Q4: same blocks; `data` holds rows * nb * 16 bytes; in block b, byte i
 *       (0..15) has element 32b+i in its low nibble and 32b+16+i in its high
 *       nibble; value = (nibble - 8) * scale; `scales` as for DT_Q8.
 *   DT_Q6, DT_Q5, DT_IQ4, DT_IQ3: the same blocks of 32 and f16 scales, a
 *       block's 32 levels in up to two planes per row: a row holds plane 0
 *       of all its nb blocks, then plane 1 of all of them (kern/qblock.h):
 *       Q6: plane 0 the low 4 bits as Q4's nibbles (16 bytes), plane 1 the
 *           top 2 bits (8 bytes: byte i, bits 2k..2k+1 = element 8k+i);
 *           value = (level - 32) * scale, level 0..63 (6.5 bits/weight);
 *       Q5: plane 0 as Q6's, plane 1 the top bit (4 bytes: bit e of the
 *           little-endian u32 = element e); value = (level - 16) * scale
 *           (5.5 bits/weight);
 *       IQ4: plane 0 nibbles as Q4 (16 bytes); value = grid4[nibble] *
 *           scale on the non-uniform grid kern_grid_iq4 (4.5 bits/weight);
 *       IQ3: plane 0 the low 2 bits as Q6's plane 1 (8 bytes), plane 1 the
 *           top bit as Q5's (4 bytes); value = grid3[level] * scale on
 *           kern_grid_iq3 (3.5 bits/weight).
 *       Padding levels of a row's last block are those of value 0 where the
 *       grid has one; activations are zero there, so they do not matter.
 *   DT_Q6K, DT_Q5K, DT_IQ4K, DT_IQ3K: `data` exactly as Q6, Q5, IQ4, IQ3;
 *       `scales` holds, per row, ceil(nb/8) super-blocks of 4 u16 words for
 *       blocks 8s .. 8s+7: word 0 an f16 D, words 1-3 the 48-bit little-
 *       endian number whose bits 6i .. 6i+5 are block 8s+i's sub-scale k_i
 *       in two's complement (-32 .. 31; unused ones 0). Block 8s+i's scale
 *       is f16(D * k_i): the f32 product (exact) rounded to nearest-even
 *       f16, so every reader derives the same f16 block scales, and the
 *       product is then the base type's (6.25, 5.25, 4.25, 3.25 bits/weight,
 *       as llama.cpp's Q6_K .. IQ3_S share one f16 per 256 weights).
 * `in_scale` (cols floats, or NULL) multiplies the activations column-wise
 * before the product: it is how activation-aware quantization (AWQ) stores
 * the per-channel scales it folded into the weights. */
#ifndef DUET_KERN_H
#define DUET_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef enum DType {
    DT_F32 = 0,
    DT_F16 = 1,
    DT_BF16 = 2,
    DT_Q8 = 3,
    DT_Q4 = 4,
    DT_Q6 = 5,
    DT_Q5 = 6,
    DT_IQ4 = 7,
    DT_IQ3 = 8,
    DT_Q6K = 9,
    DT_Q5K = 10,
    DT_IQ4K = 11,
    DT_IQ3K = 12,
    DT_COUNT = 13, /* types a reader knows: anything else is refused */
} DType;

/* Whether t is one of the block types (Q8 .. IQ3K): scales per block of 32
 * and int8 activations in the products. */
static inline int dtype_is_block(DType t) { return t >= DT_Q8 && t < DT_COUNT; }

/* Whether t is a super-block type (Q6K .. IQ3K: the levels of its base type,
 * block scales packed per 8 blocks), and the type whose levels it uses (t
 * itself for the others). */
static inline int dtype_is_super(DType t) { return t >= DT_Q6K && t <= DT_IQ3K; }
static inline DType dtype_base(DType t) { return dtype_is_super(t) ? (DType)(t - DT_Q6K + DT_Q6) : t; }

/* Block scales per super-block, and u16 words a super-block's scales take. */
enum { QSUPER = 8, QSUPER_WORDS = 4 };

/* The integer levels of the non-uniform grids (value = grid[level] * scale). */
extern const int8_t kern_grid_iq4[16], kern_grid_iq3[8];

#define QBLOCK 32

typedef struct QMat {
    DType type;
    int rows, cols;           /* out features, in features */
    const void *data;         /* see the formats above */
    const uint16_t *scales;   /* (rows, ceil(cols/32)) f16, block types only
                               * (super-block types: see above) */
    const float *in_scale;    /* (cols) or NULL */
} QMat;

/* Name of a dtype ("f32", "q4", "iq4", ...) and its inverse (-1 if unknown);
 * dtype_bits: bits per weight of a row of 256 (f32 32, q4 4.5, iq3 3.5). */
double dtype_bits(DType t);
const char *dtype_name(DType t);
int dtype_from_name(const char *s);

/* Bytes of `data` (and of `scales`) for a rows x cols matrix of type t. */
size_t qmat_data_bytes(DType t, int rows, int cols);
size_t qmat_scale_bytes(DType t, int rows, int cols);

typedef struct Kern Kern;

/* Creates the kernel context: `n_threads` workers (0 = one per physical core),
 * backend `isa` ("scalar", "avx2", "avx512", "amx" = AVX-512 plus AMX tiles
 * for products of 8+ tokens, "neon", or NULL for the best this CPU
 * supports). NULL with *e set if the ISA is unknown or unsupported. */
Kern *kern_create(int n_threads, const char *isa, Err *e);
void kern_destroy(Kern *k); /* safe on NULL */
const char *kern_isa(const Kern *k);
int kern_threads(const Kern *k);

/* Y (n x W->rows) = X (n x W->cols) * W^T, rows of X and Y contiguous.
 * n = 1 is the decode (matrix-vector) case. Threads split W's rows.
 * Float weights use f32 activations; for Q8/Q4 weights the activations are
 * first quantized to int8 blocks of 32 with an f32 scale per block (the error
 * per element is at most half a step, max|x_block| / 254; the amx backend's
 * tiles round them to bf16 instead, within the same bound, and BF16 weights
 * there see ~f32 activations as three bf16 parts). Not reentrant: one
 * call per Kern at a time. Falls back to kern_matmul_ref if scratch memory
 * cannot be allocated. */
void kern_matmul(Kern *k, float *Y, const QMat *W, const float *X, int n);

/* One LoRA product riding along a kern_matmul_lora: for each token t in
 * tok[0..n_tok) and each output row j in [r0, r1),
 *     u = B (A x_t),  Y[t][j] = (Y[t][j] + scale * u[j - r0]) * (dora ? dora[j - r0] : 1).
 * A and B are float matrices (f32, f16 or bf16) or 8-bit (DT_Q8), without
 * in_scale; A sees the activations as given (W's in_scale is W's own), in
 * float also when A is 8-bit. An 8-bit B is stored in blocks of 32 OUTPUT
 * rows, as B's rows are only r long (a rank of 16 is half a block): a DT_Q8
 * matrix of ceil((r1 - r0) / 32) * r rows of 32 columns, its row b * r + k
 * holding B[32b .. 32b + 31][k] (zero past the last row), so that the r x 32
 * weights that 32 output rows need are contiguous. kern_lora_b_row reads
 * either layout. */
typedef struct KernLora {
    int r0, r1;            /* output rows of W it adds to: 0 <= r0 < r1 <= W->rows */
    const QMat *A;         /* (r, W->cols), 1 <= r <= KERN_LORA_MAX_RANK */
    const QMat *B;         /* (r1 - r0, r) float, or DT_Q8 (ceil((r1 - r0) / 32) * r, 32) */
    float scale;
    const float *dora;     /* (r1 - r0) or NULL: DoRA's per-row factor */
    const int *tok;        /* indices into X's n rows, increasing and distinct */
    int n_tok;
} KernLora;

#define KERN_LORA_MAX_RANK 256

/* Row j of a LoRA B of rank `rank` (its rank values) into out, from
 * either layout above. */
void kern_lora_b_row(float *out, const QMat *B, int rank, int j);

/* Y (n x W->rows) = X W^T as kern_matmul, plus the LoRA products lo[0..n_lo)
 * applied in order (so a DoRA factor scales what the earlier ones added to
 * its rows). Below KERN_TILE_MIN_N tokens (decode) in ONE pass over the
 * pool: each thread computes its share of the A rows (t = A x), then streams
 * W's rows as kern_matmul does (one region per thread) and adds B's matching
 * rows times t after each piece; from there on (prefill) the A products
 * run first, split by tokens, then W's product through kern_matmul's tiles,
 * each piece of rows followed by its B parts while those rows of Y are in
 * cache. So the LoRA products use every thread at decode, where each is too
 * small for a pool job of its own, and at prefill, where their few rows
 * would give kern_matmul one task. Allocates n_tok * r floats per product,
 * plus n_tok * (r1 - r0) for B t unless the tokens go through lora_b's
 * on-stack blocks, plus n_tok * W->cols when tok is not simply 0 .. n-1: in
 * the Kern's scratch at decode, on the heap at prefill. Falls back to
 * kern_matmul_lora_ref if that memory or a backend kernel is missing.
 * Not reentrant, like kern_matmul. */
void kern_matmul_lora(Kern *k, float *Y, const QMat *W, const float *X, int n, const KernLora *lo, int n_lo);

/* The scalar twin of kern_matmul_lora (kern_matmul_ref, then each LoRA term
 * row by row in float); needs no heap memory. */
void kern_matmul_lora_ref(float *Y, const QMat *W, const float *X, int n, const KernLora *lo, int n_lo);

/* kern_matmul for float weights (F32/F16/BF16, in_scale NULL) on the calling
 * thread only, with no scratch: reentrant, and safe inside kern_parallel
 * tasks (attention uses it for its small per-head products). Other types,
 * or an in_scale, take the scalar reference path. */
void kern_matmul_local(const Kern *k, float *Y, const QMat *W, const float *X, int n);

/* Multi-threaded read bandwidth in GB/s: the best of `reps` passes summing a
 * freshly allocated buffer of `bytes` with the backend's widest loads, split
 * over the pool. -1 if bytes < 16 KiB, reps < 1 or out of memory. */
double kern_read_bandwidth(Kern *k, size_t bytes, int reps);

/* y += alpha * h over n halves of an f16 KV cache (h: IEEE halves, any
 * 2-byte alignment; prefill attention converts cached rows with it). Runs on
 * the calling thread with the Kern's SIMD backend; safe to call from inside
 * kern_parallel tasks. */
void kern_axpy_f16(const Kern *k, float *y, float alpha, const uint16_t *h, int n);

/* Decode attention of G query heads that share one KV head, over positions
 * 0 .. n-1 of an f16 cache: K and V point at position 0 of that head, rows
 * `stride` halves apart; q is (G, hd), already scaled by 1/sqrt(hd). For
 * each query g: m[g] = the largest score q_g . k_p, l[g] = sum over p of
 * exp(score - m[g]), acc[g * hd ..] = the same weights times the V rows,
 * unnormalized (out = acc / l), so that ranges of positions computed apart
 * can be merged. Each key and value row is converted once for all G
 * queries. On the calling thread (safe inside kern_parallel tasks); n >= 1,
 * G <= 16, hd <= 256. kern_attn_f16_ref is the scalar twin. */
void kern_attn_f16(const Kern *k, float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                   const uint16_t *V, size_t stride, int n);
void kern_attn_f16_ref(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                       const uint16_t *V, size_t stride, int n);

/* Prefill attention of nq queries that share one KV head, over an f16
 * cache: query i sees positions 0 .. vis[i]-1 (vis[i] >= 1); q (nq, hd) is
 * scaled, K, V, stride and the outputs m, l, acc (nq, hd, unnormalized) are
 * as kern_attn_f16's, per query. Each block of 64 keys is converted and
 * transposed once for all the queries, so scores need no horizontal sums,
 * and each query's weighted values are summed in registers. On the calling
 * thread (safe inside kern_parallel tasks). Returns -1, computing nothing,
 * when the backend has no such kernel, hd is above 256 or not a multiple of
 * its vector width (16 floats AVX-512, 8 AVX2, 4 NEON): the caller keeps its
 * own path. kern_attn_prefill_f16_ref is the scalar twin (any hd). */
int kern_attn_prefill_f16(const Kern *k, float *acc, float *m, float *l, const float *Q, int nq, int hd,
                          const uint16_t *K, const uint16_t *V, size_t stride, const int *vis);
void kern_attn_prefill_f16_ref(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                               const uint16_t *V, size_t stride, const int *vis);

/* The SwiGLU gate: y[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i]
 * for i < n, on the calling thread with the Kern's SIMD backend (an exp
 * polynomial within a few ulp of expf; the scalar backend is the twin
 * below). y may be g itself, or end at or before g (it is written in order,
 * each vector after its loads). */
void kern_silu_mul(const Kern *k, float *y, const float *g, const float *u, size_t n);
void kern_silu_mul_ref(float *y, const float *g, const float *u, size_t n);

/* Runs fn(ctx, task) for task = 0 .. n_tasks-1 on the pool (the caller's
 * thread takes tasks too; tasks are handed out dynamically); returns when all
 * are done. For work the kernels do not cover (attention over heads). fn must
 * not call kern_parallel or kern_matmul on the same Kern. */
void kern_parallel(Kern *k, int n_tasks, void (*fn)(void *ctx, int task), void *ctx);

/* The scalar twin of kern_matmul: the oracle tests compare every backend to. */
void kern_matmul_ref(float *Y, const QMat *W, const float *X, int n);

/* The f16 scales of the nb = ceil(cols/32) blocks of one row of W (block
 * types only): the stored ones, or those a super-block type derives. */
void qmat_block_scales(uint16_t *out, const QMat *W, int row);

/* One row of W as float32 (cols values): embedding lookup, merges, checks. */
void qmat_row_f32(float *out, const QMat *W, int row);

/* One row of W as f16 (cols values, round to nearest even). */
void qmat_row_f32_to_f16(uint16_t *out, const QMat *W, int row);

#endif
