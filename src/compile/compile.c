/* compile.c - duet_compile(): open the base and its adapters, calibrate and
 * quantize, report the quality, write OUT.tmp and rename it to OUT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compile/compile_int.h"
#include "util/clock.h"

/* Opens the base folder and every adapter, with errors naming the adapter. */
static int open_all(Model *m, const CompileOpts *o, Err *e)
{
    if (model_open_dir(m, o->base_dir, e)) return -1;
    for (int i = 0; i < o->n_adapters; i++) {
        const CompileAdapter *a = &o->adapters[i];
        if (!a->name || !a->name[0] || strlen(a->name) > 63 || strpbrk(a->name, "\"\\/ \t\n")) {
            err_set(e, "adapter %d: name \"%s\" must be 1..63 characters without spaces, quotes or slashes", i + 1,
                    a->name ? a->name : "");
            return -1;
        }
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
    cJSON_AddStringToObject(c, "method", "awq+weighted");
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

int duet_compile(const CompileOpts *o, Err *e)
{
    double t0 = now_s();
    CompileReport local, *rep = o->report ? o->report : &local;
    memset(rep, 0, sizeof *rep);
    if (!o->base_dir || !o->out_path) return err_set(e, "compile: a base folder and an output path are needed");
    if (o->n_adapters > COMPILE_MAX_REPORT - 1) return err_set(e, "compile: at most %d adapters", COMPILE_MAX_REPORT - 1);
    if (o->quant < DT_F32 || o->quant > DT_Q4) return err_set(e, "compile: unknown quant type %d", (int)o->quant);
    Model src;
    QModel plain = {0}, cal = {0};
    CalibSet cs = {0};
    CalibStats st = {0};
    cJSON *cj = NULL;
    Kern *k = NULL;
    int rc = -1, quantized = o->quant == DT_Q8 || o->quant == DT_Q4;
    size_t plen = strlen(o->out_path) + 8;
    char *tmp = malloc(plen);
    if (!tmp) return err_set(e, "out of memory");
    snprintf(tmp, plen, "%s.tmp", o->out_path);
    if (open_all(&src, o, e)) goto out;
    if (o->progress) o->progress(o->progress_ctx, "load", 1, 1);
    if (!(k = kern_create(o->threads, NULL, e))) goto out;
    if (o->calib_path) {
        if (calib_load(&cs, o->calib_path, o->base_dir, e)) goto out;
        rep->prompts = cs.n;
        rep->tokens = cs.tokens;
        if (calib_collect(&st, &src, k, &cs, e)) goto out;
        if (o->progress) o->progress(o->progress_ctx, "calibration", 1, 1);
    }
    if (qmodel_build(&plain, &src, o->quant, NULL, k, o->progress, o->progress_ctx, e)) goto out;
    const QModel *final = &plain;
    if (o->calib_path && quantized) {
        if (qmodel_build(&cal, &src, o->quant, &st, k, o->progress, o->progress_ctx, e)) goto out;
        final = &cal;
    }
    if (o->calib_path) {
        rep->n_quality = src.n_adapters + 1;
        for (int i = 0; i < rep->n_quality; i++) {
            CompileQuality *q = &rep->quality[i];
            snprintf(q->name, sizeof q->name, "%s", i ? src.adapters[i - 1].name : "base");
            if (calib_quality(&src, &plain.m, i - 1, k, &cs, &q->top1_plain, &q->kl_plain, &q->positions, e)) goto out;
            if (final == &plain) {
                q->top1 = q->top1_plain;
                q->kl = q->kl_plain;
            } else if (calib_quality(&src, &cal.m, i - 1, k, &cs, &q->top1, &q->kl, &q->positions, e)) {
                goto out;
            }
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
    qmodel_free(&plain);
    kern_destroy(k);
    model_close(&src);
    return rc;
}
