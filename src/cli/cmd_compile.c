/* cmd_compile.c - `duet compile BASE_DIR [--lora NAME=DIR]... [--quant T]
 * [--tensor-type PATTERN=T]... [--round search|nearest] [--calib FILE]
 * [--threads N] -o OUT.duet`: one
 * .duet from a checkpoint folder and its adapters, with a progress bar on a
 * terminal and a summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "compile/compile.h"

/* The progress line's state: shown on a terminal unless -q. */
typedef struct Bar {
    int on;
    double last;          /* elapsed at the last line drawn */
    int stage_no;
} Bar;

static void clock_str(char *out, size_t cap, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, cap, "%ld:%02ld", t / 60, t % 60);
}

/* "[k/n] stage [####......]  45%  396/875 MB  0:21 elapsed, ETA 0:25" on
 * one rewritten line, at most ten times a second, and a newline when a stage
 * ends. */
static void progress(void *ctx, const CompileProgress *p)
{
    Bar *b = ctx;
    if (!b->on) return;
    int end = p->done >= p->total;
    if (!end && p->stage_no == b->stage_no && p->elapsed - b->last < 0.1) return;
    b->last = p->elapsed;
    b->stage_no = p->stage_no;
    double f = p->total > 0 ? p->done / p->total : 1;
    if (f > 1) f = 1;
    int w = 24, n = (int)(f * w);
    char el[16], eta[32] = "";
    clock_str(el, sizeof el, p->elapsed);
    double in_stage = p->elapsed - p->stage_t0;
    if (!end && f > 0.01 && in_stage > 1) {
        clock_str(eta + 6, sizeof eta - 6, in_stage * (1 - f) / f);
        memcpy(eta, ", ETA ", 6);
    }
    char mb[48] = "";
    if (p->bytes) snprintf(mb, sizeof mb, "  %.0f/%.0f MB", p->done / 1e6, p->total / 1e6);
    fprintf(stderr, "\r\033[K[%d/%d] %-24s [%.*s%*s] %3.0f%%%s  %s elapsed%s", p->stage_no, p->n_stages, p->stage, n,
            "########################", w - n, "", 100 * f, mb, el, eta);
    if (end) fputc('\n', stderr);
}

/* $XDG_CACHE_HOME/duet, else $HOME/.cache/duet, into out; 0 if neither is set. */
static int default_cache(char *out, size_t cap)
{
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (x && x[0]) snprintf(out, cap, "%s/duet", x);
    else if (h && h[0]) snprintf(out, cap, "%s/.cache/duet", h);
    else return 0;
    return 1;
}

/* The recipes for --help: name, bits per weight at Qwen2-1.5B shapes
 * (computed from the recipe table, so they cannot go stale), what each is. */
static void recipe_notes(char *buf, size_t n)
{
    size_t at = (size_t)snprintf(buf, n, "recipes (bits per weight over the 2-D weights at Qwen2-1.5B shapes):\n");
    for (int i = 0; i < compile_n_recipes && at < n; i++) {
        const QuantRecipe *r = &compile_recipes[i];
        at += (size_t)snprintf(buf + at, n - at, "  %-5s %5.2f  %s\n", r->name,
                               recipe_bits(r, 1536, 8960, 256, 28, 151936), r->about);
    }
}

int cmd_compile(int argc, char **argv)
{
    char notes[2048];
    recipe_notes(notes, sizeof notes);
    CompileAdapter ads[32];
    char names[32][64];
    CompileOpts o = {.adapters = ads};
    const char *loras[32], *ttypes[64], *quant = NULL, *round = NULL, *cache = NULL, *lora_type = NULL;
    int n_lora = 0, n_tt = 0, quiet = 0, verbose = 0;
    CliOpt own[] = {
        {CLI_STR, "-o", "--output", &o.out_path, "OUT.duet", NULL, "the file to write (required)"},
        {CLI_LIST, "--lora", NULL, loras, "[NAME=]DIR", NULL,
         "a PEFT adapter folder to include (NAME: the folder's name when left out)", 0, 32, &n_lora},
        {CLI_CHOICE, "--quant", NULL, &quant, "f32|bf16|f16|q8|q6|q5|q4|q4s|q3|q4_0|q6k|q5k|iq4k|iq3k|iq4|iq3", "bf16",
         "the weights: a recipe, a block type per tensor role (listed below; q4 the recommended 4-bit), or one "
         "type everywhere (f32, bf16, f16; super-block types q6k 6.25, q5k 5.25, iq4k 4.25, iq3k 3.25 bits/weight; "
         "iq4 4.50, iq3 3.50)"},
        {CLI_LIST, "--tensor-type", NULL, ttypes, "PATTERN=TYPE", NULL,
         "another type for the tensors PATTERN names: embed, lm_head, attn, mlp, or a regular expression searched in "
         "the checkpoint's tensor names (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, "
         "model.layers.N.mlp.down_proj.weight, ...); a tensor takes the first rule that names it, over the recipe",
         0, 64, &n_tt},
        {CLI_CHOICE, "--lora-type", NULL, &lora_type, "auto|f16|q8", "auto",
         "the adapters' A and B: auto = q8 in files of at most 4.5 bits per weight (q4, q4s, q3, q4_0, iq4k, ...) "
         "where q8 changes no LoRA product by more than 3%, else f16"},
        {CLI_CHOICE, "--round", NULL, &round, "search|nearest", "search",
         "block rounding: search each block's scale, or round to nearest"},
        {CLI_STR, "--calib", NULL, &o.calib_path, "FILE", NULL,
         "JSONL prompts to calibrate the block types on (every 4th held out to judge each matrix's choice; default: none)"},
        {CLI_STR, "--calib-cache", NULL, &cache, "DIR", NULL,
         "where calibration statistics are cached (default $XDG_CACHE_HOME/duet or ~/.cache/duet; none: off)"},
        {CLI_FLAG, "--quiet", "-q", &quiet, NULL, NULL, "no progress line"},
        {CLI_FLAG, "--verbose", "-v", &verbose, NULL, NULL, "also print the peak memory (RSS)"},
        {CLI_INT, "--threads", "-t", &o.threads, "N", "0", "threads; 0: one per physical core", 0, 1024},
        {0}};
    const CliSpec spec = {
        .name = "compile",
        .summary = "Compiles a Hugging Face checkpoint folder and its PEFT adapters into one .duet file",
        .usage = "BASE_DIR -o OUT.duet [options]",
        .pos_name = "BASE_DIR", .pos_help = "a checkpoint folder (config.json, *.safetensors, tokenizer.json)",
        .pos = &o.base_dir, .pos_required = 1, .groups = {own}, .notes = notes};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err e = {{0}};
    if (!o.out_path) return cli_error("compile: -o OUT.duet is required");
    if (cli_check_model_path(o.base_dir, "checkpoint", &e)) return cli_error("%s", e.msg);
    o.recipe = compile_recipe(quant);
    o.quant = o.recipe ? recipe_nominal(o.recipe) : (DType)dtype_from_name(quant);
    o.round = !strcmp(round, "nearest") ? QROUND_NEAREST : QROUND_SEARCH;
    o.lora = !strcmp(lora_type, "q8") ? QLORA_Q8 : !strcmp(lora_type, "f16") ? QLORA_F16 : QLORA_AUTO;
    for (int i = 0; i < n_lora; i++) {
        const char *dir;
        cli_lora_split(loras[i], names[i], sizeof names[i], &dir);
        if (!names[i][0] || !dir[0]) return cli_error("--lora: expected [NAME=]DIR, got \"%s\"", loras[i]);
        ads[o.n_adapters++] = (CompileAdapter){names[i], dir};
    }
    o.tensor_types = (const char *const *)ttypes;
    o.n_tensor_types = n_tt;
    char cdir[4096];
    if (!cache && default_cache(cdir, sizeof cdir)) cache = cdir;
    if (cache && !strcmp(cache, "none")) cache = NULL;
    o.calib_cache = cache;
    Bar bar = {.on = isatty(2) && !quiet};
    CompileReport rep;
    o.progress = progress;
    o.progress_ctx = &bar;
    o.report = &rep;
    if (duet_compile(&o, &e)) {
        if (bar.on) fputc('\n', stderr);
        return cli_error("%s", e.msg);
    }
    printf("wrote %s: %.2f MiB, %d tensors (%.2f MiB of weights, %s), %d adapter%s, %.2f s\n", o.out_path,
           rep.file_bytes / 1048576.0, rep.n_tensors, rep.weight_bytes / 1048576.0,
           o.recipe ? o.recipe->name : dtype_name(o.quant), o.n_adapters,
           o.n_adapters == 1 ? "" : "s", rep.seconds);
    if (verbose) printf("peak memory (RSS): %.1f MiB\n", rep.peak_rss / 1048576.0);
    int block = o.recipe || dtype_is_block(o.quant) || o.lora == QLORA_Q8; /* else the loader's f32 stays */
    for (int i = 0; block && i < o.n_adapters; i++)
        printf("adapter %s: LoRA A and B in %s (at q8 its largest product B A changes by %.2f%%)\n", ads[i].name,
               dtype_name(rep.lora[i].type), 100 * rep.lora[i].err);
    if (rep.n_quality) {
        printf("calibration: %d prompts, %d tokens; %s\n", rep.prompts, rep.tokens, rep.method);
        printf("  on the %s prompts, against the unquantized model: top-1 agreement, mean KL, next-token NLL\n",
               rep.prompts >= 4 ? "held-out" : "calibration");
        printf("  %-16s %8s %10s %10s %14s\n", "run", "top1", "KL", "NLL", "NLL unquant.");
        for (int i = 0; i < rep.n_quality; i++) {
            const CompileQuality *q = &rep.quality[i];
            printf("  %-16s %7.2f%% %10.6f %10.4f %14.4f\n", q->name, 100 * q->top1, q->kl, q->nll, q->nll_ref);
        }
    }
    return 0;
}
