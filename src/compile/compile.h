/* compile.h - the compile step: a base checkpoint folder + any number of PEFT
 * LoRA adapters (+ an optional calibration set) -> one self-contained,
 * mmap-able .duet file (docs/FORMAT.md). The .duet is read back by
 * model_open_duet() (src/run/duet_file.c). */
#ifndef DUET_COMPILE_H
#define DUET_COMPILE_H

#include <stdint.h>
#include <stddef.h>

#include "compile/qrow.h"
#include "kern/kern.h"
#include "util/err.h"

typedef struct CompileAdapter {
    const char *name;         /* unique within one compile */
    const char *dir;          /* PEFT folder */
} CompileAdapter;

#define COMPILE_MAX_REPORT 33 /* base + 32 adapters */

/* How the adapters' LoRA A and B are stored (`duet compile --lora-type`):
 * f16, or q8 (blocks of 32, B transposed: kern.h's KernLora), or AUTO:
 * q8 in files whose nominal type takes at most QLORA_AUTO_BITS per weight
 * (they are read for every token: at q8 an unmerged adapter adds half the
 * bytes), for each adapter whose every pair keeps its product B A within
 * QLORA_MAX_ERR (relative Frobenius norm) at q8, else f16. */
typedef enum QLora { QLORA_AUTO = 0, QLORA_F16 = 1, QLORA_Q8 = 2 } QLora;
#define QLORA_AUTO_BITS 4.5
#define QLORA_MAX_ERR 0.03

/* What was stored for one adapter: its type, and the largest relative
 * change of a pair's B A that q8 makes (measured also when f16 is kept). */
typedef struct QLoraChoice {
    DType type;
    double err;
} QLoraChoice;

/* Quality of the written model on the held-out calibration prompts (all
 * prompts when fewer than 4), per run (base, then each adapter), against
 * the unquantized model with the same adapter. */
typedef struct CompileQuality {
    char name[64];
    int positions;
    double top1, kl;             /* top-1 agreement, mean KL(unquantized || written) */
    double nll, nll_ref;         /* mean next-token NLL (nats) of the written and the unquantized model */
} CompileQuality;

typedef struct CompileReport {
    int n_tensors;
    size_t file_bytes, weight_bytes; /* whole file; tensor data + scales */
    int prompts, tokens;             /* calibration set (0 without --calib) */
    int n_quality;
    CompileQuality quality[COMPILE_MAX_REPORT];
    char method[256];                /* what calibration chose, e.g. "per matrix ...: plain 3, ... gptq 80 of 196" */
    int stats_reused;                /* the calibration statistics came from the cache */
    QLoraChoice lora[COMPILE_MAX_REPORT - 1]; /* per adapter, in order */
    double seconds;
    size_t peak_rss;                 /* the process's peak resident memory at the end, bytes */
    int bad_tensor_types;            /* the failure was a tensor_types rule (a bad option, not a bad input) */
} CompileReport;

/* Where a compile is, for a progress display: stage k of n, the stage's
 * done / total (bytes while writing), the bytes of the file written so far
 * and the seconds since the start. */
typedef struct CompileProgress {
    const char *stage;
    int stage_no, n_stages;
    double done, total;
    double stage_t0, elapsed;        /* seconds since the start: at the stage's start, now */
    uint64_t bytes;                  /* of the .duet written so far */
} CompileProgress;

/* The roles a recipe types apart: the token embedding (also the lm_head
 * when tied), an untied lm_head, the attention projections q/k/v/o, the
 * MLP gate/up/down. */
typedef enum { CG_EMBED, CG_LM_HEAD, CG_ATTN, CG_MLP, CG_COUNT } CompileGroup;

/* A named recipe of `duet compile --quant`: a block type per tensor role.
 * The "more bits" layers are llama.cpp's choice for its _M recipes: the
 * first and last eighth of the layers (2) and every third one between (1). */
typedef struct QuantRecipe {
    const char *name;      /* as --quant takes it */
    const char *about;     /* one line for --help */
    DType embed;           /* the embedding (and a tied or untied lm_head) */
    DType t[3][7];         /* [more-bits 0 / 1 / 2][Proj]: each projection's type by its layer's kind */
} QuantRecipe;

extern const QuantRecipe compile_recipes[];
extern const int compile_n_recipes;

/* The recipe named `name`, or NULL. */
const QuantRecipe *compile_recipe(const char *name);

/* The type recipe r gives to projection p (P_COUNT: the embedding or
 * lm_head, as `group` says) of layer `layer` of n_layers; `dflt` when r is
 * NULL. */
DType recipe_type(const QuantRecipe *r, int group, int p, int layer, int n_layers, DType dflt);

/* Bits per weight of recipe r over the 2-D weights of a Qwen2 model of
 * these shapes (tied embedding): the figure --help prints. */
double recipe_bits(const QuantRecipe *r, int dim, int hidden, int kv_dim, int n_layers, int vocab);

/* The file's nominal type under r (its "quant"): the q projection's. */
DType recipe_nominal(const QuantRecipe *r);

typedef struct CompileOpts {
    const char *base_dir;             /* Hugging Face checkpoint folder */
    const CompileAdapter *adapters;   /* n_adapters of them (may be NULL when 0) */
    int n_adapters;
    DType quant;                      /* base weights: any DType (with a recipe: its attn type) */
    const QuantRecipe *recipe;        /* NULL, or types per tensor role (compile_recipe) */
    /* mixed precision: n_tensor_types rules "PATTERN=TYPE" giving the
     * tensors they name another type (compile/tensor_types.h) */
    const char *const *tensor_types;
    int n_tensor_types;
    QRound round;                     /* Q8/Q4 block scales (default QROUND_SEARCH) */
    const char *calib_path;           /* JSON lines file, or NULL: no calibration */
    const char *out_path;             /* written as OUT.tmp then renamed */
    int threads;                      /* kernel threads (0: physical cores) */
    const char *calib_cache;          /* folder of cached calibration statistics, or NULL: none */
    int no_gptq;                      /* calibration without GPTQ's candidates */
    QLora lora;                       /* the adapters' A and B: auto (0), f16 or q8 */
    /* optional: called as work proceeds */
    void (*progress)(void *ctx, const CompileProgress *p);
    void *progress_ctx;
    CompileReport *report;            /* optional: filled on success */
} CompileOpts;

/* Compiles o->base_dir with its adapters into o->out_path, streaming one
 * tensor group at a time (OUT.tmp is created first, so an output path that
 * cannot be written fails before any work). 0, or -1 with *e set (a
 * duplicate adapter name, an adapter that does not fit the base, a
 * malformed calibration line naming its line number, an I/O error); on
 * failure no file is left at out_path or OUT.tmp. */
int duet_compile(const CompileOpts *o, Err *e);

#endif
