/* compile.c - duet_compile(): open the base and its adapters, calibrate and
 * quantize, report the quality, write OUT.tmp and rename it to OUT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile/compile_int.h"
#include "load/limits.h"
#include "util/clock.h"

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
        cJSON_AddNumberToObject(o, "top1_plain", q->top1_plain);
        cJSON_AddNumberToObject(o, "kl_plain", q->kl_plain);
        cJSON_AddItemToArray(pa, o);
    }
    return c;
}

/* Mean KL(unquantized || q) over the held-out calibration prompts, pooled
 * over the base and every adapter. */
static int held_kl(const Model *src, const Model *q, Kern *k, const CalibSet *cs, double *kl, Err *e)
{
    double sum = 0;
    long n = 0;
    for (int a = -1; a < src->n_adapters; a++) {
        double t1, k1;
        int np;
        if (calib_quality(src, &q, 1, a, 1, k, cs, &t1, &k1, &np, e)) return -1;
        sum += k1 * np;
        n += np;
    }
    *kl = n ? sum / n : 0;
    return 0;
}

/* A calibrated step must lower the held-out KL by this fraction to be kept:
 * a few held-out prompts make the KL a noisy measure, and a smaller gain
 * is as likely noise as not. */
#define CALIB_MIN_GAIN 0.02

/* The calibrated quantization, in steps that each must lower the KL on the
 * held-out prompts (which the per-group choices never fit on) to be kept:
 * the projections with GPTQ and weighted block scales, then AWQ added,
 * then an untied lm_head calibrated too (a tied one is also the embedding
 * table, whose lookup errors no lm_head statistic weighs: on tiny-qwen2
 * GPTQ on it always lost on the held-out prompts). With fewer
 * than CALIB_HOLDOUT prompts nothing can be checked: the first step is
 * taken as is. Returns 1 with the chosen model in *out, 0 when nothing beat
 * plain (*out zeroed), -1 on error. */
static int calibrated(QModel *out, const QModel *plain, const Model *src, QuantCfg qc, Kern *k, const CalibSet *cs,
                      const CompileOpts *o, char *method, size_t mlen, Err *e)
{
    int checked = cs->n >= CALIB_HOLDOUT;
    double best_kl = 0, plain_kl = 0;
    if (checked && held_kl(src, &plain->m, k, cs, &plain_kl, e)) return -1;
    best_kl = plain_kl;
    QModel best = {0}, cand;
    QuantChoices best_ch = {0}, ch;
    unsigned lay = 0, head = 0;
    static const struct { unsigned lay, head; const char *what; } steps[3] = {
        {QCAL_GPTQ | QCAL_WEIGHTED, 0, "gptq"},
        {QCAL_GPTQ | QCAL_WEIGHTED | QCAL_AWQ, 0, "+awq"},
        {0, QCAL_GPTQ | QCAL_WEIGHTED, "+lm_head"},
    };
    char tried[96] = "";
    int n_steps = !checked ? 1 : src->cfg.tie_embeddings ? 2 : 3;
    for (int i = 0; i < n_steps; i++) {
        qc.methods = steps[i].lay ? steps[i].lay : lay;
        qc.head_methods = steps[i].head ? steps[i].head : head;
        if (qmodel_build(&cand, src, &qc, k, o->progress, o->progress_ctx, &ch, e)) {
            qmodel_free(&best);
            return -1;
        }
        double kl = 0;
        if (checked && held_kl(src, &cand.m, k, cs, &kl, e)) {
            qmodel_free(&cand);
            qmodel_free(&best);
            return -1;
        }
        int keep = !checked || kl < best_kl * (1 - CALIB_MIN_GAIN);
        snprintf(tried + strlen(tried), sizeof tried - strlen(tried), "%s%s %s", i ? ", " : "", steps[i].what,
                 keep ? "kept" : "dropped");
        if (keep) {
            qmodel_free(&best);
            best = cand;
            best_kl = kl;
            best_ch = ch;
            lay = qc.methods;
            head = qc.head_methods;
        } else {
            qmodel_free(&cand);
        }
    }
    *out = best; /* zeroed when nothing was kept */
    if (checked && !lay && !head)
        snprintf(method, mlen, "%s: uncalibrated kept; held-out KL %.4f", tried, plain_kl);
    else if (checked)
        snprintf(method, mlen, "%s; gptq %d, awq %d, weighted %d, plain %d of %d groups; held-out KL %.4f (uncalibrated %.4f)",
                 tried, best_ch.gptq, best_ch.awq, best_ch.weighted, best_ch.plain, best_ch.groups, best_kl, plain_kl);
    else
        snprintf(method, mlen, "gptq unchecked (fewer than %d prompts); gptq %d, weighted %d, plain %d of %d groups",
                 CALIB_HOLDOUT, best_ch.gptq, best_ch.weighted, best_ch.plain, best_ch.groups);
    return lay || head;
}

const char *const compile_group_names[CG_COUNT] = {"embed", "lm_head", "attn", "mlp"};

int duet_compile(const CompileOpts *o, Err *e)
{
    double t0 = now_s();
    CompileReport local, *rep = o->report ? o->report : &local;
    memset(rep, 0, sizeof *rep);
    if (!o->base_dir || !o->out_path) return err_set(e, "compile: a base folder and an output path are needed");
    if (o->n_adapters > COMPILE_MAX_REPORT - 1) return err_set(e, "compile: at most %d adapters", COMPILE_MAX_REPORT - 1);
    if (o->quant < DT_F32 || o->quant >= DT_COUNT) return err_set(e, "compile: unknown quant type %d", (int)o->quant);
    for (int g = 0; g < CG_COUNT; g++)
        if (o->group_type[g] < 0 || o->group_type[g] > DT_COUNT)
            return err_set(e, "compile: unknown type %d for the %s tensors", o->group_type[g] - 1, compile_group_names[g]);
    Model src;
    QModel plain = {0}, rtn = {0}, cal = {0};
    CalibSet cs = {0};
    CalibStats st = {0};
    cJSON *cj = NULL;
    Kern *k = NULL;
    int rc = -1, quantized = dtype_is_block(o->quant);
    /* the temporary beside OUT gets a fresh unpredictable name (mkstemp:
     * O_EXCL, so a planted OUT.tmp symlink cannot redirect the write) */
    size_t plen = strlen(o->out_path) + 16;
    char *tmp = malloc(plen);
    if (!tmp) return err_set(e, "out of memory");
    snprintf(tmp, plen, "%s.tmp.XXXXXX", o->out_path);
    int tfd = mkstemp(tmp);
    if (tfd < 0) {
        err_set(e, "%s: cannot create a temporary file beside it", o->out_path);
        free(tmp);
        return -1;
    }
    fchmod(tfd, 0644);
    close(tfd);
    if (open_all(&src, o, e)) goto out;
    if (o->group_type[CG_LM_HEAD] && src.cfg.tie_embeddings) {
        err_set(e, "%s: the lm_head is the embedding (tie_word_embeddings): give its type as embed=TYPE, not lm_head=",
                o->base_dir);
        goto out;
    }
    if (o->progress) o->progress(o->progress_ctx, "load", 1, 1);
    if (!(k = kern_create(o->threads, NULL, e))) goto out;
    if (o->calib_path) {
        if (calib_load(&cs, o->calib_path, o->base_dir, e)) goto out;
        rep->prompts = cs.n;
        rep->tokens = cs.tokens;
        if (calib_collect(&st, &src, k, &cs, e)) goto out;
        if (o->progress) o->progress(o->progress_ctx, "calibration", 1, 1);
    }
    QuantCfg qc = {.t = o->quant, .recipe = o->recipe, .round = o->round, .group_type = o->group_type};
    if (qmodel_build(&plain, &src, &qc, k, o->progress, o->progress_ctx, NULL, e)) goto out;
    const QModel *final = &plain, *nearest = &plain;
    if (o->calib_path && quantized && o->round != QROUND_NEAREST) { /* the report's baseline */
        QuantCfg nc = {.t = o->quant, .recipe = o->recipe, .round = QROUND_NEAREST, .group_type = o->group_type};
        if (qmodel_build(&rtn, &src, &nc, k, NULL, NULL, NULL, e)) goto out;
        nearest = &rtn;
    }
    if (o->calib_path && quantized) {
        qc.stats = &st;
        int kept = calibrated(&cal, &plain, &src, qc, k, &cs, o, rep->method, sizeof rep->method, e);
        if (kept < 0) goto out;
        if (kept) final = &cal;
    } else if (o->calib_path) {
        snprintf(rep->method, sizeof rep->method, "none (%s is not quantized)", dtype_name(o->quant));
    }
    if (o->calib_path) {
        rep->n_quality = src.n_adapters + 1;
        for (int i = 0; i < rep->n_quality; i++) {
            CompileQuality *q = &rep->quality[i];
            snprintf(q->name, sizeof q->name, "%s", i ? src.adapters[i - 1].name : "base");
            /* the written model against plain round-to-nearest (once when
             * they are the same) */
            const Model *ms[2] = {&final->m, &nearest->m};
            double t1[2], k1[2];
            int nm = final == nearest ? 1 : 2;
            if (calib_quality(&src, ms, nm, i - 1, -1, k, &cs, t1, k1, &q->positions, e)) goto out;
            q->top1 = t1[0], q->kl = k1[0];
            q->top1_plain = t1[nm - 1], q->kl_plain = k1[nm - 1];
            if (o->progress) o->progress(o->progress_ctx, "quality report", i + 1, rep->n_quality);
        }
        if (!(cj = quality_json(rep))) {
            err_set(e, "out of memory");
            goto out;
        }
    }
    if (duet_write(tmp, final, o->base_dir, o->adapters, o->quant, cj, rep, e)) goto out;
    if (rename(tmp, o->out_path)) {
        err_set(e, "%s: cannot rename %s into place", o->out_path, tmp);
        goto out;
    }
    if (o->progress) o->progress(o->progress_ctx, "write", 1, 1);
    rc = 0;
out:
    if (rc) unlink(tmp);
    rep->seconds = now_s() - t0;
    free(tmp);
    cJSON_Delete(cj);
    calib_stats_free(&st);
    calib_free(&cs);
    qmodel_free(&cal);
    qmodel_free(&rtn);
    qmodel_free(&plain);
    kern_destroy(k);
    model_close(&src);
    return rc;
}
