/* kern_impl.h - what kern.c shares with the backends (kern_scalar.c,
 * kern_avx2.c, kern_avx512.c, kern_neon.c and their attn_ / lora8_ files);
 * not part of the public API.
 *
 * A backend is a constant table of row-range kernels, chosen once in
 * kern_create. kern.c prepares the activations once per kern_matmul call
 * (in_scale applied; for Q8/Q4 weights quantized to int8 blocks) and then
 * hands each thread a range of weight rows to compute for all n tokens. */
#ifndef DUET_KERN_IMPL_H
#define DUET_KERN_IMPL_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "kern/kern.h"

/* Activations quantized to int8 in blocks of 32 with one f32 scale per block
 * (like ggml's Q8_1): x ~= q * d. Owned by the Kern's scratch, shared by all
 * threads during one kern_matmul. */
typedef struct ActQ {
    int n, nb;    /* tokens, blocks per token */
    int8_t *q;    /* (n, nb * 32); natural order unless the backend's
                   * act_layout / act_quant hook arranged it otherwise */
    float *d;     /* (n, nb) block scale (same caveat) */
    float *m;     /* (n, nb) d * sum(q of the block): offset term for
                   * unsigned-weight dot products */
    float *pat;   /* (n, nb / 4 * 16) per-lane scale patterns, AVX-512 only */
    int32_t *off; /* (n, nb / 4 * 16) per-lane dot offsets, AVX-512 only */
} ActQ;

typedef struct MMArgs {
    const QMat *W;
    float *Y;          /* (n, W->rows) */
    const float *X;    /* (n, W->cols) with in_scale applied; float types */
    const ActQ *A;     /* quantized activations; Q8/Q4 types */
    const void *Xt;    /* activations packed by the backend's tile_pack
                        * (then X and A are unset), or NULL */
    int n;
} MMArgs;

/* From this many tokens on, the AMX backend runs Q8/Q4 products on tiles and
 * kern_matmul pads the quantized activations to a multiple of 16 tokens. */
enum { KERN_TILE_MIN_N = 8 };

/* Computes Y[t][r] for r in [r0, r1) and all t < a->n. */
typedef void (*MMFn)(const MMArgs *a, int r0, int r1);

/* A super-block type's activations (A, Xt) are prepared as for its base
 * type (dtype_base); its kernel reads the packed scales itself. */

enum { LORA_B_BATCH = 4 }; /* lora_b: tokens from which a transposed block pays */

typedef struct KernOps {
    const char *name;
    MMFn mm[DT_COUNT];                /* indexed by DType */
    /* Optional: rearranges token t of A in place for weights of type wt
     * after the natural-order quantization (NULL = keep natural order). */
    void (*act_layout)(ActQ *A, int t, DType wt);
    /* Optional: does act_quantize_row + act_layout for token t in one SIMD
     * pass, with identical results (NULL = the portable pair). */
    void (*act_quant)(ActQ *A, int t, const float *x, const float *in_scale, int cols, DType wt);
    /* kern_axpy_f16 (kern.h): y += alpha * h over an f16 KV cache row. */
    void (*axpy_f16)(float *y, float alpha, const uint16_t *h, int n);
    /* Optional: the LoRA up-projection for rows [j0, j1) of a float B of
     * r = B->cols columns: u[i * ldu + j - j0] = sum_k B[j][k] * t[i * r + k]
     * for tokens i < n. B's rows are short (the rank), so the SIMD versions
     * reduce several rows at once instead of one dot product per row, and
     * from LORA_B_BATCH tokens on transpose a block of rows once and sum
     * every token in rank order (NULL = the mm kernel). Deterministic per
     * row: the same u for any j0, j1, and for any n on the same side of
     * LORA_B_BATCH. */
    void (*lora_b)(float *u, int ldu, const QMat *B, int j0, int j1, const float *t, int n);
    /* Required (the scalar backend's are lora8.c's): t[i * A->rows + k] = row k of a
     * DT_Q8 A (r, cols) dotted with float activations x[i * cols ..], for
     * k in [k0, k1) and tokens i < n. */
    void (*lora8_a)(float *t, const QMat *A, int k0, int k1, const float *x, int n);
    /* Required: lora_b for a DT_Q8 B of rank r in
     * kern.h's blocks of 32 output rows: u[i * ldu + j - j0] for j in
     * [j0, j1) sums, in rank order from 0 with one fused multiply-add each,
     * t[i * r + k] times the weight q * scale (exact in f32: 8 x 11
     * significant bits). Every backend gives the same bits for any j0, j1
     * and n. */
    void (*lora8_b)(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n);
    /* Optional: kern_attn_f16 (kern.h); returns -1 for a shape it does not
     * take (head_dim not a multiple of its vector width), then the twin runs. */
    int (*attn_f16)(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                    const uint16_t *V, size_t stride, int n);
    /* Optional: kern_attn_prefill_f16 (kern.h); returns -1 for a shape it
     * does not take, then the caller's own path runs. */
    int (*attn_prefill_f16)(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                            const uint16_t *V, size_t stride, const int *vis);
    /* kern_silu_mul (kern.h). */
    void (*silu_mul)(float *y, const float *g, const float *u, size_t n);
    /* Sum of n floats with the widest loads available (bandwidth probe). */
    float (*read_sum)(const float *p, size_t n);
    /* Optional, for backends with matrix tiles: the bytes of packed
     * activations a product of n tokens x cols with weights of type wt
     * takes, 0 if it does not use tiles; and the packing of token group g
     * (tokens 16g..16g+15 of X, in_scale applied; zeros past n). kern_matmul
     * packs groups 0 .. tile_groups(n) - 1 and passes the result as Xt. */
    size_t (*tile_bytes)(DType wt, int n, int cols);
    void (*tile_pack)(void *dst, int g, const float *X, int n, int cols, const float *in_scale, DType wt);
} KernOps;

/* Token groups of 16 that tile_pack fills for n tokens: an even number. */
static inline int kern_tile_groups(int n) { return ((n + 15) / 16 + 1) & ~1; }

/* The row of kern.h's 8-bit LoRA B (rank r, blocks of 32 output rows)
 * that holds weight (j, k): at column j % 32, with its scale. */
static inline size_t lora8_row(int r, int j, int k) { return (size_t)(j / QBLOCK) * r + k; }

/* Each SIMD backend's attention and SiLU (attn_ISA.c) are KernOps's
 * attn_f16, attn_prefill_f16 and silu_mul.
 *
 * The portable 8-bit LoRA kernels (lora8.c): the scalar backend's, and the
 * heads and tails of the SIMD ones (lora8_b_portable on [ja, jb) of a call
 * for [j0, j1) writes at u + ja - j0). */
void lora8_a_portable(float *t, const QMat *A, int k0, int k1, const float *x, int n);
void lora8_b_portable(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n);
#if defined(__x86_64__)
void lora8_a_avx2(float *t, const QMat *A, int k0, int k1, const float *x, int n);
void lora8_b_avx2(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n);
int attn_f16_avx2(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                  const uint16_t *V, size_t stride, int n);
int attn_prefill_f16_avx2(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                          const uint16_t *V, size_t stride, const int *vis);
void silu_mul_avx2(float *y, const float *g, const float *u, size_t n);
void lora8_a_avx512(float *t, const QMat *A, int k0, int k1, const float *x, int n);
void lora8_b_avx512(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n);
int attn_f16_avx512(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                    const uint16_t *V, size_t stride, int n);
int attn_prefill_f16_avx512(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                            const uint16_t *V, size_t stride, const int *vis);
void silu_mul_avx512(float *y, const float *g, const float *u, size_t n);
#endif
#if defined(__aarch64__)
void lora8_a_neon(float *t, const QMat *A, int k0, int k1, const float *x, int n);
void lora8_b_neon(float *u, int ldu, const QMat *B, int r, int j0, int j1, const float *t, int n);
int attn_f16_neon(float *acc, float *m, float *l, const float *q, int G, int hd, const uint16_t *K,
                  const uint16_t *V, size_t stride, int n);
int attn_prefill_f16_neon(float *acc, float *m, float *l, const float *Q, int nq, int hd, const uint16_t *K,
                          const uint16_t *V, size_t stride, const int *vis);
void silu_mul_neon(float *y, const float *g, const float *u, size_t n);
#endif

extern const KernOps kern_ops_scalar;
#if defined(__x86_64__)
extern const KernOps kern_ops_avx2;
extern const KernOps kern_ops_avx512;
extern const KernOps kern_ops_amx;
#endif
#if defined(__aarch64__)
extern const KernOps kern_ops_neon;
#endif

/* kern.c's internals for the other drivers (kern_lora.c): the backend
 * table, the pool, and the per-call scratch (64-byte aligned, grown on
 * demand, NULL if out of memory; valid until the next call on the Kern). */
struct Pool;
const KernOps *kern_ops(const Kern *k);
struct Pool *kern_pool(Kern *k);
void *kern_scratch(Kern *k, size_t bytes);
/* kern_matmul, calling after(ctx, r0, r1) as soon as rows [r0, r1) of Y
 * are final for all n tokens, on the thread that computed them; the ranges
 * cover W's rows once and may run concurrently. kern_matmul_lora's prefill
 * adds the LoRA part there, while those rows of Y are still in cache. Uses
 * the scratch, as kern_matmul does. */
void kern_matmul_then(Kern *k, float *Y, const QMat *W, const float *X, int n, void (*after)(void *ctx, int r0, int r1),
                      void *after_ctx);

/* CPU features that matter to the backends; cpu.c. */
typedef struct CpuFeatures {
    int avx2;     /* AVX2 + FMA + F16C, OS saves ymm */
    int avx512;   /* F/BW/VL/DQ/VNNI/BF16, OS saves zmm */
    int amx;      /* avx512 + AMX-TILE/INT8/BF16, OS saves the tiles */
    int neon;     /* aarch64 Advanced SIMD */
    int dotprod;  /* aarch64 SDOT/UDOT (asimddp) */
} CpuFeatures;

void cpu_detect(CpuFeatures *f);

/* Asks the OS for the AMX tile state (Linux arch_prctl; once per process).
 * 0 if AMX instructions may now be used, -1 if not. */
int cpu_amx_request(void);

/* Number of physical cores this process may run on (>= 1). */
int cpu_physical_cores(void);

/* Quantized activations of n tokens of `cols` values, q and d padded with
 * zeros to n_pad >= n tokens (a multiple of 16 for tiles, else n): with A
 * and s, carves A out of s (64-byte aligned) and zeroes the padding.
 * Returns the bytes it needs either way (call with A = s = NULL to size). */
size_t kern_actq_layout(ActQ *A, char *s, int n, int n_pad, int cols);

/* Rows per task when a product's rows are split in fixed chunks: ~8 tasks
 * per thread (they balance a noisy machine), a multiple of `align`. */
int kern_row_chunk(int rows, int n_threads, int align);

/* Decode splits W's rows in one region per thread; a region's rows are
 * handed out from its front to its owner and from its back to threads that
 * ran out of their own, so each thread streams one long run of rows (the
 * backends' prefetch runs ahead across the pieces) and the ends still
 * balance. span = first | end << 32, in units of REGION_ROWS rows. */
enum { REGION_ROWS = 16, MAX_REGIONS = 64 };
typedef struct Region {
    _Alignas(64) _Atomic uint64_t span;
} Region;

/* Splits `rows` into min(n_threads, MAX_REGIONS, units) regions of about
 * equal size in reg[]; returns how many. */
int kern_regions_init(Region *reg, int rows, int n_threads);

/* Task t's share of the rows: fn(ctx, r0, r1) for each piece it takes, from
 * the front of region t first (a quarter of what is left at a time, so a
 * thief still finds some), then from the backs of the others (half of what
 * is left). Every row of every region is passed to exactly one call. */
void kern_regions_walk(Region *reg, int n_reg, int t, int rows, void (*fn)(void *ctx, int r0, int r1), void *ctx);

/* Prepares token t of X (n x W->cols) for a product with W: with A, quantizes
 * it into A (the backend's act_quant, or act_quantize_row + act_layout);
 * otherwise, with X_scaled, writes x * W->in_scale there; else nothing.
 * Shared by kern_matmul and kern_matmul_lora (kern.c). */
void kern_prep_token(const KernOps *ops, ActQ *A, float *X_scaled, const QMat *W, const float *X, int t);

/* Quantizes one row of cols activations (times in_scale if non-NULL) into
 * nb = ceil(cols/32) blocks, natural order, last block zero-padded:
 * d = max|x| / 127, q = round(x / d). Portable; the oracle for all backends. */
void act_quantize_row(int8_t *q, float *d, float *m, const float *x,
                      const float *in_scale, int cols);

/* Number of 32-blocks for cols columns. */
static inline int kern_nblocks(int cols) { return (cols + QBLOCK - 1) / QBLOCK; }

#endif
