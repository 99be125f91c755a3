/* compile.c - duet_compile(): check the output path, open the base and its
 * adapters, gather (or reuse) the calibration statistics, stream the
 * quantized tensors into OUT.tmp group by group, measure the written file
 * against the unquantized model on the held-out prompts, rename to OUT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile/compile_int.h"
#include "load/limits.h"
#include "util/clock.h"

#include <errno.h>
#include <sys/resource.h>

/* Opens the base folder and every adapter, with errors naming the adapter. */
static int open_all(Model *m, const CompileOpts *o, Err *e)
{
    if (model_open_dir(m, o->base_dir, e)) return -1;
    for (int i = 0; i < o->n_adapters; i++) {
        const CompileAdapter *a = &o->adapters[i];
        if (!a->name) return err_set(e, "adapter %d: no name", i + 1);
        if (limit_adapter_name(a->name, a->dir, e)) return -1; /* the rule a .duet reader applies */
        for (int j = 0; j < i; j++)
            if (!strcmp(o->adapters[j].name, a->name))
                return err_set(e, "adapter name \"%s\" is given twice (%s and %s)", a->name, o->adapters[j].dir, a->dir);
        if (model_add_lora(m, a->dir, a->name, e))
            return err_prefix(e, "adapter \"%s\" does not fit the base %s: ", a->name, o->base_dir);
    }
    return 0;
}

/* The progress of the whole compile, passed to CompileOpts.progress. */
typedef struct Prog {
    const CompileOpts *o;
    CompileProgress p;
    double t0;
} Prog;

static void prog_stage(Prog *pr, const char *stage, int k)
{
    pr->p.stage = stage;
    pr->p.stage_no = k;
    pr->p.done = 0;
    pr->p.total = 1;
    pr->p.stage_t0 = now_s() - pr->t0;
}

static void prog_tell(Prog *pr, double done, double total)
{
    if (!pr->o->progress) return;
    pr->p.done = done;
    pr->p.total = total;
    pr->p.elapsed = now_s() - pr->t0;
    pr->o->progress(pr->o->progress_ctx, &pr->p);
}

static void calib_prog(void *ctx, double done, double total) { prog_tell(ctx, done, total); }

/* Peak resident memory of this process so far, bytes. */
static size_t peak_rss(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) ? 0 : (size_t)ru.ru_maxrss * 1024;
}

/* The state duet_write's callbacks share. */
typedef struct Job {
    QFill fill;
    Prog *prog;
    const Model *src;
    const CalibSet *cs;
    const CompileOpts *o;
    CompileReport *rep;
    Kern *k;
    const char *tmp;
    int quality;          /* measure the written file (with --calib) */
} Job;

static int job_fill(void *ctx, QMat *const *qs, int n, Err *e) { return qfill_group(&((Job *)ctx)->fill, qs, n, e); }
static void job_release(void *ctx) { qfill_release(&((Job *)ctx)->fill); }

static void job_progress(void *ctx, uint64_t done, uint64_t total)
{
    Job *j = ctx;
    j->prog->p.bytes = done;
    prog_tell(j->prog, (double)done, (double)total);
}

static cJSON *quality_json(const CompileReport *r)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "prompts", r->prompts);
    cJSON_AddNumberToObject(c, "tokens", r->tokens);
    cJSON_AddStringToObject(c, "method", r->method);
    cJSON *pa = cJSON_AddArrayToObject(c, "per_adapter");
    for (int i = 0; i < r->n_quality; i++) {
        const CompileQuality *q = &r->quality[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", q->name);
        cJSON_AddNumberToObject(o, "positions", q->positions);
        cJSON_AddNumberToObject(o, "top1", q->top1);
        cJSON_AddNumberToObject(o, "kl", q->kl);
        cJSON_AddNumberToObject(o, "nll", q->nll);
        cJSON_AddNumberToObject(o, "nll_unquantized", q->nll_ref);
        cJSON_AddItemToArray(pa, o);
    }
    return c;
}

/* Meta bytes kept for the quality record: the method sentence and one
 * entry per run (six numbers of at most 24 characters and a name of 63). */
static size_t quality_reserve(int n_runs) { return 1024 + sizeof ((CompileReport *)0)->method + 400 * (size_t)n_runs; }

/* WriteJob.finish: the written file, opened as a reader would, against the
 * unquantized model on the held-out prompts (all prompts when none are held
 * out), per run; the record goes into the meta. */
static int job_finish(void *ctx, cJSON **cal, Err *e)
{
    Job *j = ctx;
    CompileReport *rep = j->rep;
    const QuantChoices *c = &j->fill.ch;
    if (c->matrices)
        snprintf(rep->method, sizeof rep->method,
                 "per matrix, closest to the unquantized products on held-out inputs: plain %d, nearest %d, "
                 "weighted %d, gptq %d of %d; statistics %s",
                 c->plain, c->nearest, c->weighted, c->gptq, c->matrices, rep->stats_reused ? "reused from the cache" : "collected");
    else if (!rep->method[0])
        snprintf(rep->method, sizeof rep->method, "none (%s is not a block type)", dtype_name(j->o->quant));
    if (!j->quality) return 0;
    Model m;
    if (model_open_duet(&m, j->tmp, 0, e)) return err_prefix(e, "reopening the file written: ");
    int split = j->cs->n >= CALIB_HOLDOUT ? 1 : -1, rc = 0;
    const Model *ms[1] = {&m};
    rep->n_quality = j->src->n_adapters + 1;
    prog_stage(j->prog, "quality report", 4);
    for (int i = 0; i < rep->n_quality && !rc; i++) {
        CompileQuality *q = &rep->quality[i];
        snprintf(q->name, sizeof q->name, "%s", i ? j->src->adapters[i - 1].name : "base");
        rc = calib_quality(j->src, ms, 1, i - 1, split, j->k, j->cs, &q->top1, &q->kl, &q->nll, &q->nll_ref, &q->positions, e);
        prog_tell(j->prog, i + 1, rep->n_quality);
    }
    model_close(&m);
    if (rc) return -1;
    if (!(*cal = quality_json(rep))) return err_set(e, "out of memory");
    return 0;
}

/* Creates the temporary OUT.tmp.XXXXXX (tmp, filled in by mkstemp) in
 * OUT's folder before any work, so that a path that cannot be written fails
 * at once. */
static FILE *open_out(const char *out, char *tmp, Err *e)
{
    int fd = mkstemp(tmp);
    if (fd < 0) {
        err_set(e, "%s: cannot create the output file: %s", out, strerror(errno));
        return NULL;
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "w+b");
    if (!f) {
        err_set(e, "%s: cannot open the temporary file %s: %s", out, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
    }
    return f;
}

int duet_compile(const CompileOpts *o, Err *e)
{
    double t0 = now_s();
    CompileReport local, *rep = o->report ? o->report : &local;
    memset(rep, 0, sizeof *rep);
    if (!o->base_dir || !o->out_path) return err_set(e, "compile: a base folder and an output path are needed");
    if (o->n_adapters > COMPILE_MAX_REPORT - 1) return err_set(e, "compile: at most %d adapters", COMPILE_MAX_REPORT - 1);
    if (o->quant < DT_F32 || o->quant >= DT_COUNT) return err_set(e, "compile: unknown quant type %d", (int)o->quant);
    Model src;
    memset(&src, 0, sizeof src);
    QModel plan = {0};
    CalibSet cs = {0};
    CalibStats st = {0};
    Kern *k = NULL;
    TensorTypes tt = {0};
    int rc = -1, quantized = dtype_is_block(o->quant);
    int calibrating = o->calib_path && quantized;
    Prog prog = {.o = o, .t0 = t0, .p = {.n_stages = o->calib_path ? 4 : 2}};
    /* the temporary beside OUT gets a fresh unpredictable name (mkstemp:
     * O_EXCL, so a planted OUT.tmp symlink cannot redirect the write) */
    size_t plen = strlen(o->out_path) + 16;
    char *tmp = malloc(plen);
    if (!tmp) return err_set(e, "out of memory");
    snprintf(tmp, plen, "%s.tmp.XXXXXX", o->out_path);
    FILE *f = open_out(o->out_path, tmp, e);
    if (!f) {
        free(tmp);
        return -1;
    }
    prog_stage(&prog, "load", 1);
    prog_tell(&prog, 0, 1);
    if (open_all(&src, o, e)) goto out;
    if (tensor_types_resolve(&tt, o->tensor_types, o->n_tensor_types, src.cfg.n_layers, src.cfg.tie_embeddings,
                             o->base_dir, e)) {
        rep->bad_tensor_types = 1;
        goto out;
    }
    if (!(k = kern_create(o->threads, NULL, e))) goto out;
    prog_tell(&prog, 1, 1);
    if (o->calib_path) {
        prog_stage(&prog, "calibration statistics", 2);
        if (calib_load(&cs, o->calib_path, o->base_dir, e)) goto out;
        rep->prompts = cs.n;
        rep->tokens = cs.tokens;
        if (calibrating && cs.n < CALIB_HOLDOUT) { /* nothing to judge a choice on: fitting data would overfit */
            calibrating = 0;
            snprintf(rep->method, sizeof rep->method,
                     "none: fewer than %d prompts, so none held out to check a choice on; the uncalibrated quantization is kept",
                     CALIB_HOLDOUT);
        }
        if (calibrating) {
            CalibProgress cp = {calib_prog, &prog};
            if (calib_stats_get(&st, &src, k, &cs, o->calib_cache, &cp, &rep->stats_reused, e)) goto out;
        } else if (!rep->method[0]) {
            snprintf(rep->method, sizeof rep->method, "none (%s is not quantized)", dtype_name(o->quant));
        }
    }
    QuantCfg qc = {.t = o->quant, .recipe = o->recipe, .round = o->round, .over = &tt,
                   .lora = o->lora, .lora_out = rep->lora};
    if (calibrating) {
        qc.stats = &st;
        qc.methods = QCAL_WEIGHTED | (o->no_gptq ? 0 : QCAL_GPTQ);
        qc.head_methods = qc.methods;
    }
    if (qmodel_plan(&plan, &src, &qc, e)) goto out;
    prog_stage(&prog, calibrating ? "calibrated quantization" : "quantization", o->calib_path ? 3 : 2);
    Job job = {.fill = {.plan = &plan, .src = &src, .cfg = &qc, .k = k, .drop_source = 1},
               .prog = &prog, .src = &src, .cs = &cs, .o = o, .rep = rep, .k = k, .tmp = tmp, .quality = o->calib_path != NULL};
    WriteJob wj = {.path = tmp, .f = f, .qm = &plan, .base_dir = o->base_dir, .ads = o->adapters, .quant = o->quant,
                   .meta_reserve = o->calib_path ? quality_reserve(src.n_adapters + 1) : 0,
                   .fill = job_fill, .release = job_release, .finish = job_finish, .progress = job_progress, .ctx = &job,
                   .rep = rep};
    int wrc = duet_write(&wj, e);
    qfill_release(&job.fill); /* after an error mid-group */
    if (wrc) goto out;
    if (fclose(f)) {
        f = NULL;
        err_set(e, "%s: write failed (disk full?)", tmp);
        goto out;
    }
    f = NULL;
    if (rename(tmp, o->out_path)) {
        err_set(e, "%s: cannot rename %s into place: %s", o->out_path, tmp, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f) fclose(f);
    if (rc) unlink(tmp);
    rep->seconds = now_s() - t0;
    rep->peak_rss = peak_rss();
    free(tmp);
    calib_stats_free(&st);
    calib_free(&cs);
    qmodel_free(&plan);
    tensor_types_free(&tt);
    kern_destroy(k);
    model_close(&src);
    return rc;
}
