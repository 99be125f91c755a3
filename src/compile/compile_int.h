/* compile_int.h - the pieces of the compile step shared by write.c,
 * quantize.c and calibrate.c. Not a public API. */
#ifndef DUET_COMPILE_INT_H
#define DUET_COMPILE_INT_H

#include <cjson/cJSON.h>

#include "compile/compile.h"
#include "compile/qrow.h"
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

/* What the calibrated choice may use, per group of projections that read
 * one input (q/k/v, o, gate/up, down) and for the lm_head. */
enum {
    QCAL_WEIGHTED = 1, /* block-scale search weighted by the columns' mean x^2 */
    QCAL_AWQ = 2,      /* per-channel scales s = mean|x|^alpha, one in_scale per group */
    QCAL_GPTQ = 4,     /* error compensation with the inputs' second moments */
};

typedef struct QuantCfg {
    DType t;                 /* base weights' type */
    const QuantRecipe *recipe; /* NULL, or the types per tensor role (then t is the recipe's nominal type) */
    const int *group_type;   /* NULL, or CompileOpts.group_type: per-group overrides of t */
    QRound round;
    const CalibStats *stats; /* NULL: no calibration */
    unsigned methods;        /* QCAL_* the projections' calibrated choice may try */
    unsigned head_methods;   /* the same for the lm_head (the embedding when tied; never AWQ) */
} QuantCfg;

/* What the calibrated choices were, counted over matrix groups (the
 * lm_head one of them when calibrated). */
typedef struct QuantChoices {
    int groups, plain, weighted, awq, gptq;
} QuantChoices;

/* Builds q from src as cfg says. k runs the products of the search;
 * progress (may be NULL) is told per layer; ch (may be NULL) gets the
 * choices made. */
int qmodel_build(QModel *q, const Model *src, const QuantCfg *cfg, Kern *k,
                 void (*progress)(void *, const char *, int, int), void *pctx, QuantChoices *ch, Err *e);
void qmodel_free(QModel *q); /* safe on zeroed */

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

/* Runs every prompt through src, with no adapter and with each of its
 * adapters, pooling the statistics. */
int calib_collect(CalibStats *st, const Model *src, Kern *k, const CalibSet *s, Err *e);
void calib_stats_free(CalibStats *st);

/* Top-1 agreement top1[m] and mean KL(ref || model) kl[m] of each of the
 * nq models qs[m] against ref (one reference pass) over the prompts with
 * adapter index ai (-1: base): all prompts (split -1), the fitting ones
 * (0) or the held-out ones (1); *positions gets the positions compared. */
int calib_quality(const Model *ref, const Model *const *qs, int nq, int ai, int split, Kern *k, const CalibSet *s,
                  double *top1, double *kl, int *positions, Err *e);

/* Whether calibration prompt i of n is held out: every CALIB_HOLDOUT-th
 * one, none when there are fewer than CALIB_HOLDOUT prompts. */
int calib_held_out(int i, int n);

/* Writes the .duet file at path: qm's weights, src's adapters (as f32),
 * the tokenizer files of base_dir, and `calibration` (or NULL) in the meta. */
int duet_write(const char *path, const QModel *qm, const char *base_dir, const CompileAdapter *ads, DType quant,
               const cJSON *calibration, CompileReport *rep, Err *e);

#endif
