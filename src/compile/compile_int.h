/* compile_int.h - the pieces of the compile step shared by write.c,
 * quantize.c and calibrate.c. Not a public API. */
#ifndef DUET_COMPILE_INT_H
#define DUET_COMPILE_INT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "compile/compile.h"
#include "compile/qrow.h"
#include "compile/tensor_types.h"
#include "run/model.h"
#include "text/chat.h"
#include "text/tokenizer.h"

/* Activation statistics of one linear layer's input over the calibration
 * set, in two splits: [0] the fitting prompts, [1] the held-out prompts
 * (every CALIB_HOLDOUT-th prompt, when there are at least two) on which a
 * calibrated choice must beat the uncalibrated one. Per split: rows seen,
 * per input column the sums of x^2 and |x|, and up to `cap` input rows kept
 * (spread over the split) for the output-error measurements and GPTQ's
 * second moments. Projections that read the same input (q/k/v, gate/up)
 * share one LinStats: calib_input() finds it. */
#define CALIB_SAMPLES 256 /* kept rows per input, both splits together */
#define CALIB_HOLDOUT 4
typedef struct LinSplit {
    long long count;
    double *sum_sq;     /* (cols) */
    double *sum_abs;    /* (cols) */
    float *x;           /* (cap, cols) kept rows, n_x of them */
    int n_x, cap, stride;
} LinSplit;

typedef struct LinStats {
    int cols;
    LinSplit s[2];
} LinStats;

typedef struct CalibStats {
    int n_layers;
    LinStats *lin;      /* (n_layers * P_COUNT), [layer * P_COUNT + proj]; only q, o, gate, down used */
    LinStats head;      /* lm_head input (final-normed hidden state) */
} CalibStats;

/* The statistics of projection p's input in layer l (shared by q/k/v and
 * by gate/up). */
const LinStats *calib_input(const CalibStats *st, int layer, Proj p);

typedef struct CalibSet {
    int n;              /* prompts */
    int **ids;          /* (n) token arrays */
    int *len;           /* (n) */
    int tokens;         /* total */
} CalibSet;

/* A quantized copy of a Model: its own layers / embed / lm_head QMats over
 * buffers it owns; norms, biases and adapters borrowed from the source
 * (which must outlive it). `m` is never passed to model_close. */
typedef struct QModel {
    Model m;
    void **bufs;
    int n_bufs, cap_bufs;
} QModel;

/* What the calibrated choice may try, for the projections and for the
 * lm_head (the embedding when tied: never, it is also the lookup table). */
enum {
    QCAL_WEIGHTED = 1, /* block-scale search weighted by the columns' importance (mean x^2) */
    QCAL_GPTQ = 4,     /* GPTQ's error feedback with the inputs' second moments */
};

typedef struct QuantCfg {
    DType t;                 /* base weights' type */
    const QuantRecipe *recipe; /* NULL, or the types per tensor role (then t is the recipe's nominal type) */
    const TensorTypes *over; /* NULL, or --tensor-type's types per tensor, over the recipe's */
    QRound round;
    const CalibStats *stats; /* NULL: no calibration */
    unsigned methods;        /* QCAL_* the projections' calibrated choice may try */
    unsigned head_methods;   /* the same for an untied lm_head */
    QLora lora;              /* how the adapters' A and B are stored */
    QLoraChoice *lora_out;   /* NULL, or per adapter: what qmodel_adapters chose */
} QuantCfg;

/* What the calibrated choices were, counted over matrices. */
typedef struct QuantChoices {
    int matrices, plain, nearest, weighted, gptq;
} QuantChoices;

/* Plans q from src as cfg says: every matrix with its type and shape and
 * data NULL (duet_write asks qfill_group for them group by group); norms,
 * biases and adapters borrowed from src, the adapters' A and B stored as
 * qmodel_adapters says for a block-type build (or any build with
 * QLORA_Q8). */
int qmodel_plan(QModel *q, const Model *src, const QuantCfg *cfg, Err *e);
void qmodel_free(QModel *q); /* safe on zeroed */

/* bytes (64-byte aligned) owned by q, freed by qmodel_free; NULL if out
 * of memory. */
void *qalloc(QModel *q, size_t bytes);

/* Moves every buffer of `from` into q's ownership; 0, or -1 if out of
 * memory (then the buffers not moved stay from's). */
int qmodel_take(QModel *q, QModel *from);

/* The adapters of q (src's, whose A and B are f32 from the loader) with A
 * and B copied into q's storage as cfg->lora says: f16, or q8 (B
 * transposed, kern.h's KernLora); QLORA_AUTO takes q8 for files of at most
 * QLORA_AUTO_BITS per weight, per adapter, unless a pair's product B A
 * would change by more than QLORA_MAX_ERR (relative Frobenius norm). The
 * choices go to cfg->lora_out when given. 0, or -1 with *e set. */
int qmodel_adapters(QModel *q, const Model *src, const QuantCfg *cfg, Err *e);

/* Produces planned matrices on demand (WriteJob.fill / release). */
typedef struct QFill {
    QModel *plan;            /* from qmodel_plan */
    const Model *src;
    const QuantCfg *cfg;
    Kern *k;
    int drop_source;         /* release() lets the kernel drop the source's mapped pages */
    QModel scratch;          /* the buffers of the group being written */
    const QMat *srcs[3];
    QMat *dsts[3];
    int n_src;
    QuantChoices ch;         /* the calibrated choices so far */
} QFill;

/* Fills the n planned matrices qs (one group: q/k/v, o, gate/up, down, the
 * embedding or the lm_head, pointers into f->plan) from their sources,
 * calibrated when f->cfg has statistics. 0, or -1 with *e set. */
int qfill_group(QFill *f, QMat *const *qs, int n, Err *e);
/* Frees the group's buffers (the planned matrices' data is NULL again). */
void qfill_release(QFill *f);

/* Reads the JSON lines calibration file at path: {"text": ...} or
 * {"messages": [...]} rendered with the base folder's chat template. */
int calib_load(CalibSet *s, const char *path, const char *base_dir, Err *e);
/* The same over the file's bytes (buf, len; `path` for messages) with the
 * tokenizer given; *ct is the chat template, loaded from base_dir when a
 * line needs it and *ct is NULL (base_dir may be NULL: then none). The
 * fuzz target calls it. */
int calib_load_buf(CalibSet *s, const char *buf, size_t len, const char *path, const Tokenizer *tok, ChatTemplate **ct,
                   const char *base_dir, Err *e);
void calib_free(CalibSet *s);

/* Progress of a long calibration step: done of total. */
typedef struct CalibProgress {
    void (*tell)(void *ctx, double done, double total);
    void *ctx;
} CalibProgress;

/* Runs every prompt through src, with no adapter and with each of its
 * adapters, pooling the statistics. With cache_dir (may be NULL), each
 * run's statistics are read from, or saved to, a file in it named by the
 * hashes of the base weights, the calibration tokens and the run (the
 * adapter's source hash), so that a later compile with other adapters
 * collects only for the runs it has not seen; *reused is set when every run
 * came from the cache. A cache file that cannot be read or written is
 * ignored (the statistics are collected). */
int calib_stats_get(CalibStats *st, const Model *src, Kern *k, const CalibSet *s, const char *cache_dir,
                    const CalibProgress *p, int *reused, Err *e);
void calib_stats_free(CalibStats *st);

/* Top-1 agreement top1[m], mean KL(ref || model) kl[m] and mean next-token
 * NLL nll[m] of each of the nq models qs[m] against ref (one reference
 * pass; *nll_ref its own NLL) over the prompts with adapter index ai (-1:
 * base): all prompts (split -1), the fitting ones (0) or the held-out ones
 * (1); *positions gets the positions compared. */
int calib_quality(const Model *ref, const Model *const *qs, int nq, int ai, int split, Kern *k, const CalibSet *s,
                  double *top1, double *kl, double *nll, double *nll_ref, int *positions, Err *e);

/* Whether calibration prompt i of n is held out: every CALIB_HOLDOUT-th
 * one, none when there are fewer than CALIB_HOLDOUT prompts. */
int calib_held_out(int i, int n);

/* One streamed write of a .duet file (duet_write). */
typedef struct WriteJob {
    const char *path;             /* the file being written, for messages */
    FILE *f;                      /* open for writing; header, meta and blob go here */
    const QModel *qm;             /* the model to write: matrices whose data is NULL are produced by fill() */
    const char *base_dir;         /* its tokenizer files are embedded */
    const CompileAdapter *ads;    /* the adapters' folders (their configs are re-read) */
    DType quant;                  /* the file's default type */
    const cJSON *calibration;     /* the meta's "calibration" record, or NULL */
    size_t meta_reserve;          /* meta bytes kept free for a record finish() may return */
    /* fills data (and scales) of the n matrices of one group, valid until release() */
    int (*fill)(void *ctx, QMat *const *qs, int n, Err *e);
    void (*release)(void *ctx);
    /* optional: called once the file is complete and valid (flushed); may set *cal to
     * a new calibration record, which then replaces the meta's (the writer frees it) */
    int (*finish)(void *ctx, cJSON **cal, Err *e);
    /* optional: blob bytes written of the total */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
    CompileReport *rep;           /* optional: n_tensors, file_bytes, weight_bytes */
} WriteJob;

/* Writes the .duet file as j says (docs/FORMAT.md): qm's weights, its
 * adapters, the tokenizer files, the calibration record. Tensors stream:
 * each lazy group is filled, written and released in turn, so memory holds
 * one group at a time. 0, or -1 with *e set (the caller removes the file). */
int duet_write(const WriteJob *j, Err *e);

#endif
