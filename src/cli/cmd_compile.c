/* cmd_compile.c - `duet compile BASE_DIR [--lora NAME=DIR]... [--quant T]
 * [--tensor-type GROUP=T]... [--round search|nearest] [--calib FILE]
 * [--threads N] -o OUT.duet`: one
 * .duet from a checkpoint folder and its adapters, with a progress bar on a
 * terminal and a summary. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "compile/compile.h"

static void progress(void *ctx, const char *stage, int done, int total)
{
    int tty = *(int *)ctx;
    if (tty) {
        int w = 30, f = total ? done * w / total : w;
        fprintf(stderr, "\r%-26s [%.*s%*s] %d/%d", stage, f, "##############################", w - f, "", done, total);
        if (done == total) fputc('\n', stderr);
    } else if (done == total) {
        fprintf(stderr, "duet compile: %s done\n", stage);
    }
}

int cmd_compile(int argc, char **argv)
{
    CompileAdapter ads[32];
    char names[32][64];
    CompileOpts o = {.adapters = ads};
    const char *loras[32], *ttypes[CG_COUNT * 2], *quant = NULL, *round = NULL;
    int n_lora = 0, n_tt = 0;
    CliOpt own[] = {
        {CLI_STR, "-o", "--output", &o.out_path, "OUT.duet", NULL, "the file to write (required)"},
        {CLI_LIST, "--lora", NULL, loras, "[NAME=]DIR", NULL,
         "a PEFT adapter folder to include (NAME: the folder's name when left out)", 0, 32, &n_lora},
        {CLI_CHOICE, "--quant", NULL, &quant, "f32|bf16|f16|q8|q6|q5|q4|q3|q4_0|iq4|iq3", "bf16",
         "the weights: a recipe, a block type per tensor role (bits/weight at Qwen2-1.5B shapes: q8 8.50, q6 6.50, "
         "q5 5.78, q4 5.06 the recommended 4-bit, q3 4.09, q4_0 4.50 the plain q4 type), or one type everywhere "
         "(f32, bf16, f16; iq4 4.50, iq3 3.50)"},
        {CLI_LIST, "--tensor-type", NULL, ttypes, "GROUP=TYPE", NULL,
         "another type for a group of tensors: embed, lm_head, attn or mlp", 0, CG_COUNT * 2, &n_tt},
        {CLI_CHOICE, "--round", NULL, &round, "search|nearest", "search",
         "block rounding: search each block's scale, or round to nearest"},
        {CLI_STR, "--calib", NULL, &o.calib_path, "FILE", NULL,
         "JSONL prompts to calibrate q8/q4 on (AWQ-style scales; default: none)"},
        {CLI_INT, "--threads", "-t", &o.threads, "N", "0", "threads; 0: one per physical core", 0, 1024},
        {0}};
    const CliSpec spec = {
        .name = "compile",
        .summary = "Compiles a Hugging Face checkpoint folder and its PEFT adapters into one .duet file",
        .usage = "BASE_DIR -o OUT.duet [options]",
        .pos_name = "BASE_DIR", .pos_help = "a checkpoint folder (config.json, *.safetensors, tokenizer.json)",
        .pos = &o.base_dir, .pos_required = 1, .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err e = {{0}};
    if (!o.out_path) return cli_error("compile: -o OUT.duet is required");
    if (cli_check_model_path(o.base_dir, "checkpoint", &e)) return cli_error("%s", e.msg);
    o.recipe = compile_recipe(quant);
    o.quant = o.recipe ? o.recipe->attn : (DType)dtype_from_name(quant);
    o.round = !strcmp(round, "nearest") ? QROUND_NEAREST : QROUND_SEARCH;
    for (int i = 0; i < n_lora; i++) {
        const char *dir;
        cli_lora_split(loras[i], names[i], sizeof names[i], &dir);
        if (!names[i][0] || !dir[0]) return cli_error("--lora: expected [NAME=]DIR, got \"%s\"", loras[i]);
        ads[o.n_adapters++] = (CompileAdapter){names[i], dir};
    }
    for (int i = 0; i < n_tt; i++) {
        const char *v = ttypes[i], *eq = strchr(v, '=');
        int g = -1, t = eq ? dtype_from_name(eq + 1) : -1;
        for (int k = 0; eq && k < CG_COUNT; k++)
            if (strlen(compile_group_names[k]) == (size_t)(eq - v) && !strncmp(v, compile_group_names[k], eq - v)) g = k;
        if (g < 0 || t < 0)
            return cli_error("--tensor-type: expected GROUP=TYPE with GROUP embed, lm_head, attn or mlp and TYPE "
                             "f32, bf16, f16, q8, q6, q5, q4, iq4 or iq3, got \"%s\"", v);
        o.group_type[g] = t + 1;
    }
    int tty = isatty(2);
    CompileReport rep;
    o.progress = progress;
    o.progress_ctx = &tty;
    o.report = &rep;
    if (duet_compile(&o, &e)) return cli_error("%s", e.msg);
    printf("wrote %s: %.2f MiB, %d tensors (%.2f MiB of weights, %s), %d adapter%s, %.2f s\n", o.out_path,
           rep.file_bytes / 1048576.0, rep.n_tensors, rep.weight_bytes / 1048576.0,
           o.recipe ? o.recipe->name : dtype_name(o.quant), o.n_adapters,
           o.n_adapters == 1 ? "" : "s", rep.seconds);
    if (rep.n_quality) {
        printf("calibration: %d prompts, %d tokens; %s\n", rep.prompts, rep.tokens, rep.method);
        printf("  on the calibration prompts: top-1 agreement and mean KL against the unquantized model\n");
        printf("  %-16s %10s %14s %12s %14s\n", "run", "top1", "top1 nearest", "KL", "KL nearest");
        for (int i = 0; i < rep.n_quality; i++) {
            const CompileQuality *q = &rep.quality[i];
            printf("  %-16s %9.2f%% %13.2f%% %12.6f %14.6f\n", q->name, 100 * q->top1, 100 * q->top1_plain, q->kl, q->kl_plain);
        }
    }
    return 0;
}
