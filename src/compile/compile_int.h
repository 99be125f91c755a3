/* compile_int.h - the pieces of the compile step shared by write.c,
 * quantize.c and calibrate.c. Not a public API. */
#ifndef DUET_COMPILE_INT_H
#define DUET_COMPILE_INT_H

#include <cjson/cJSON.h>

#include "compile/compile.h"
#include "run/model.h"

/* Activation statistics of one linear layer's input over the calibration
 * set: per input column the mean of x^2 and of |x|, and up to CALIB_SAMPLES
 * input rows kept for the output-error search. */
#define CALIB_SAMPLES 128
typedef struct LinStats {
    int cols;
    long long count;    /* rows seen */
    double *sum_sq;     /* (cols) */
    double *sum_abs;    /* (cols) */
    float *x;           /* (n_x, cols) kept rows */
    int n_x;
} LinStats;

typedef struct CalibStats {
    int n_layers;
    LinStats *lin;      /* (n_layers * P_COUNT), [layer * P_COUNT + proj] */
    LinStats head;      /* lm_head input (final-normed hidden state) */
} CalibStats;

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

/* Builds q from src in type t. stats NULL: round-to-nearest; else
 * activation-aware (weighted block scales, AWQ in_scale with alpha searched
 * per layer on the kept activations). k runs the products of the search. */
int qmodel_build(QModel *q, const Model *src, DType t, const CalibStats *stats, Kern *k,
                 void (*progress)(void *, const char *, int, int), void *pctx, Err *e);
void qmodel_free(QModel *q); /* safe on zeroed */

/* Reads the JSON lines calibration file at path: {"text": ...} or
 * {"messages": [...]} rendered with the base folder's chat template. */
int calib_load(CalibSet *s, const char *path, const char *base_dir, Err *e);
void calib_free(CalibSet *s);

/* Runs every prompt through src, with no adapter and with each of its
 * adapters, pooling the statistics. */
int calib_collect(CalibStats *st, const Model *src, Kern *k, const CalibSet *s, Err *e);
void calib_stats_free(CalibStats *st);

/* Top-1 agreement and mean KL(ref || q) of model q against ref over the
 * prompts with adapter index ai (-1: base). */
int calib_quality(const Model *ref, const Model *q, int ai, Kern *k, const CalibSet *s, double *top1, double *kl,
                  int *positions, Err *e);

/* Writes the .duet file at path: qm's weights, src's adapters (as f32),
 * the tokenizer files of base_dir, and `calibration` (or NULL) in the meta. */
int duet_write(const char *path, const QModel *qm, const char *base_dir, const CompileAdapter *ads, DType quant,
               const cJSON *calibration, CompileReport *rep, Err *e);

#endif
