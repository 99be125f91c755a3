/* api_compile.c - duet_compile_file(): the compile step of include/duet.h,
 * a thin public face over src/compile's duet_compile(). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "compile/compile.h"
#include "duet.h"
#include "load/limits.h"

#define MAX_ADAPTERS 32
#define MAX_TENSOR_TYPES 64

void duet_compile_options_default(duet_compile_options *o)
{
    if (o) memset(o, 0, sizeof *o);
}

/* Copies msg into err (err_len bytes; err may be NULL) and returns code. */
static int fail(char *err, size_t err_len, int code, const char *msg)
{
    if (err && err_len) snprintf(err, err_len, "%s", msg);
    return code;
}

typedef struct ProgressBridge {
    duet_progress_cb cb;
    void *user;
} ProgressBridge;

/* The public callback sees the stage and its done / total (per mille when
 * the stage counts bytes). */
static void bridge(void *ctx, const CompileProgress *p)
{
    ProgressBridge *b = ctx;
    if (p->total > 1e6) b->cb(b->user, p->stage, (int)(1000 * p->done / p->total), 1000);
    else b->cb(b->user, p->stage, (int)p->done, (int)p->total);
}

/* The status that fits a compile failure: a path that cannot be read is an
 * I/O error, anything else a malformed input. */
static int status_of(const char *base_dir, const duet_compile_options *o)
{
    struct stat st;
    if (stat(base_dir, &st) != 0) return DUET_ERR_IO;
    if (o->calib_path && stat(o->calib_path, &st) != 0) return DUET_ERR_IO;
    for (int i = 0; o->loras && o->loras[i]; i++) {
        const char *eq = strchr(o->loras[i], '=');
        if (eq && stat(eq + 1, &st) != 0) return DUET_ERR_IO;
    }
    return DUET_ERR_FORMAT;
}

int duet_compile_file(const char *base_dir, const char *out_path, const duet_compile_options *opt, char *err,
                      size_t err_len)
{
    duet_compile_options o;
    duet_compile_options_default(&o);
    if (opt) o = *opt;
    if (!base_dir || !out_path) return fail(err, err_len, DUET_ERR_ARG, "compile: base_dir and out_path are required");
    char msg[600];
    CompileAdapter ads[MAX_ADAPTERS];
    char names[MAX_ADAPTERS][64];
    int n = 0;
    for (int i = 0; o.loras && o.loras[i]; i++) {
        const char *v = o.loras[i], *eq = strchr(v, '=');
        if (n == MAX_ADAPTERS) return fail(err, err_len, DUET_ERR_ARG, "compile: loras: at most 32 adapters");
        if (!eq || eq == v || (size_t)(eq - v) >= sizeof names[0] || !eq[1]) {
            snprintf(msg, sizeof msg, "compile: loras[%d]: expected NAME=DIR, got \"%.200s\"", i, v);
            return fail(err, err_len, DUET_ERR_ARG, msg);
        }
        memcpy(names[n], v, (size_t)(eq - v));
        names[n][eq - v] = 0;
        Err ne;
        if (limit_adapter_name(names[n], eq + 1, &ne)) return fail(err, err_len, DUET_ERR_ARG, ne.msg);
        ads[n] = (CompileAdapter){names[n], eq + 1};
        n++;
    }
    const QuantRecipe *recipe = o.quant ? compile_recipe(o.quant) : NULL;
    int t = recipe ? (int)recipe_nominal(recipe) : dtype_from_name(o.quant ? o.quant : "bf16");
    if (t < 0) {
        snprintf(msg, sizeof msg,
                 "compile: quant: expected a recipe (q8, q6, q5, q4, q3, q4_0) or a type (f32, bf16, f16, q8, q6, q5, iq4, "
                 "iq3), got \"%.100s\"", o.quant);
        return fail(err, err_len, DUET_ERR_ARG, msg);
    }
    QLora lt = QLORA_AUTO;
    if (o.lora_type && !strcmp(o.lora_type, "f16")) lt = QLORA_F16;
    else if (o.lora_type && !strcmp(o.lora_type, "q8")) lt = QLORA_Q8;
    else if (o.lora_type && strcmp(o.lora_type, "auto")) {
        snprintf(msg, sizeof msg, "compile: lora_type: expected auto, f16 or q8, got \"%.100s\"", o.lora_type);
        return fail(err, err_len, DUET_ERR_ARG, msg);
    }
    int n_tt = 0;
    while (o.tensor_types && o.tensor_types[n_tt])
        if (++n_tt > MAX_TENSOR_TYPES) return fail(err, err_len, DUET_ERR_ARG, "compile: tensor_types: at most 64 rules");
    if (o.n_threads < 0 || o.n_threads > LIMIT_THREADS)
        return fail(err, err_len, DUET_ERR_ARG, "compile: n_threads: expected 0 .. 1024");
    ProgressBridge pb = {o.progress, o.progress_user};
    CompileReport rep;
    CompileOpts co = {
        .base_dir = base_dir,
        .adapters = n ? ads : NULL,
        .n_adapters = n,
        .quant = (DType)t,
        .recipe = recipe,
        .calib_path = o.calib_path,
        .out_path = out_path,
        .threads = o.n_threads,
        .lora = lt,
        .tensor_types = o.tensor_types,
        .n_tensor_types = n_tt,
        .progress = o.progress ? bridge : NULL,
        .progress_ctx = &pb,
        .report = &rep,
    };
    Err e = {{0}};
    if (duet_compile(&co, &e)) /* a rule the model has no tensor for is a bad option too */
        return fail(err, err_len, rep.bad_tensor_types ? DUET_ERR_ARG : status_of(base_dir, &o), e.msg);
    return DUET_OK;
}
