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
    CompileOpts o = {.quant = DT_BF16, .adapters = ads};
    Err e = {{0}};
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--lora")) {
            if (cli_arg_str(argc, argv, &i, &v, &e)) return cli_error("%s", e.msg);
            if (o.n_adapters == 32) return cli_error("--lora: at most 32 adapters");
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || (size_t)(eq - v) >= 64 || !eq[1]) return cli_error("--lora: expected NAME=DIR, got \"%s\"", v);
            memcpy(names[o.n_adapters], v, (size_t)(eq - v));
            names[o.n_adapters][eq - v] = 0;
            ads[o.n_adapters] = (CompileAdapter){names[o.n_adapters], eq + 1};
            o.n_adapters++;
        } else if (!strcmp(argv[i], "--quant")) {
            if (cli_arg_str(argc, argv, &i, &v, &e)) return cli_error("%s", e.msg);
            int t = dtype_from_name(v);
            if (t < 0) return cli_error("--quant: expected f32, bf16, f16, q8 or q4, got \"%s\"", v);
            o.quant = (DType)t;
        } else if (!strcmp(argv[i], "--tensor-type")) {
            if (cli_arg_str(argc, argv, &i, &v, &e)) return cli_error("%s", e.msg);
            const char *eq = strchr(v, '=');
            int g = -1, t = eq ? dtype_from_name(eq + 1) : -1;
            for (int k = 0; eq && k < CG_COUNT; k++)
                if (strlen(compile_group_names[k]) == (size_t)(eq - v) && !strncmp(v, compile_group_names[k], eq - v)) g = k;
            if (g < 0 || t < 0)
                return cli_error("--tensor-type: expected GROUP=TYPE with GROUP embed, lm_head, attn or mlp and TYPE "
                                 "f32, bf16, f16, q8 or q4, got \"%s\"", v);
            o.group_type[g] = t + 1;
        } else if (!strcmp(argv[i], "--round")) {
            if (cli_arg_str(argc, argv, &i, &v, &e)) return cli_error("%s", e.msg);
            if (!strcmp(v, "search")) o.round = QROUND_SEARCH;
            else if (!strcmp(v, "nearest")) o.round = QROUND_NEAREST;
            else return cli_error("--round: expected search or nearest, got \"%s\"", v);
        } else if (!strcmp(argv[i], "--calib")) {
            if (cli_arg_str(argc, argv, &i, &o.calib_path, &e)) return cli_error("%s", e.msg);
        } else if (!strcmp(argv[i], "-o")) {
            if (cli_arg_str(argc, argv, &i, &o.out_path, &e)) return cli_error("%s", e.msg);
        } else if (!strcmp(argv[i], "--threads")) {
            long n;
            if (cli_arg_int(argc, argv, &i, &n, 0, 1024, &e)) return cli_error("%s", e.msg);
            o.threads = (int)n;
        } else if (argv[i][0] == '-') {
            return cli_error("compile: unknown option \"%s\"", argv[i]);
        } else if (!o.base_dir) {
            o.base_dir = argv[i];
        } else {
            return cli_error("compile: unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!o.base_dir || !o.out_path)
        return cli_error("usage: duet compile BASE_DIR [--lora NAME=DIR]... [--quant f32|bf16|f16|q8|q4] "
                         "[--tensor-type embed|lm_head|attn|mlp=TYPE]... [--round search|nearest] [--calib FILE] -o OUT.duet");
    int tty = isatty(2);
    CompileReport rep;
    o.progress = progress;
    o.progress_ctx = &tty;
    o.report = &rep;
    if (duet_compile(&o, &e)) return cli_error("%s", e.msg);
    printf("wrote %s: %.2f MiB, %d tensors (%.2f MiB of weights, %s), %d adapter%s, %.2f s\n", o.out_path,
           rep.file_bytes / 1048576.0, rep.n_tensors, rep.weight_bytes / 1048576.0, dtype_name(o.quant), o.n_adapters,
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
