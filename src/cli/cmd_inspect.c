/* cmd_inspect.c - `duet inspect FILE.duet [--json]`: opens the file (every
 * check and checksum of the reader runs) and prints its format version,
 * config, quantization, tensors, adapters and calibration summary; --json
 * prints the meta section itself. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "run/duet_file.h"

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, tensors = 0;
    CliOpt own[] = {{CLI_FLAG, "--tensors", NULL, &tensors, NULL, NULL, "also list every tensor: name, type, shape, bytes"},
                    {CLI_FLAG, "--json", NULL, &json, NULL, NULL, "print the file's meta section (JSON) instead"},
                    {0}};
    const CliSpec spec = {
        .name = "inspect",
        .summary = "Checks a .duet file (every checksum) and prints what it holds: model, quantization, adapters, calibration",
        .usage = "FILE.duet [--tensors] [--json]",
        .pos_name = "FILE.duet", .pos_help = "a file written by duet compile", .pos = &path, .pos_required = 1,
        .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err pe;
    if (cli_check_model_path(path, "duet", &pe)) return cli_error("%s", pe.msg);
    Model m;
    Err e;
    if (model_open_duet(&m, path, 0, &e)) return cli_error("%s", e.msg);
    cJSON *j = cJSON_ParseWithLength(m.meta, m.meta_len);
    if (json) {
        printf("%.*s\n", (int)m.meta_len, m.meta);
        cJSON_Delete(j);
        model_close(&m);
        return 0;
    }
    const ModelConfig *c = &m.cfg;
    const cJSON *q = cJSON_GetObjectItem(j, "quant"), *ts = cJSON_GetObjectItem(j, "tensors");
    const char *gen = cJSON_GetStringValue(cJSON_GetObjectItem(j, "generator"));
    printf("%s: duet format version %d (written by %s), %.2f MiB, checksums verified\n", path, DUET_FORMAT_VERSION,
           gen ? gen : "an unknown writer", m.file_size / 1048576.0);
    printf("architecture: %s, dim %d, %d layers, %d heads (%d kv, head_dim %d), ffn %d, vocab %d, max_pos %d,\n"
           "  rope_theta %g, norm_eps %g, tied embeddings %s, bos %d, eos",
           arch_name(c->arch), c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->hidden_dim, c->vocab_size,
           c->max_pos, c->rope_theta, c->norm_eps, c->tie_embeddings ? "yes" : "no", c->bos_id);
    for (int i = 0; i < c->n_eos; i++) printf(" %d", c->eos_ids[i]);
    if (c->rope.llama3)
        printf(",\n  rope_type llama3: factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position_embeddings %d",
               c->rope.factor, c->rope.low_freq_factor, c->rope.high_freq_factor, c->rope.original_ctx);
    const GenDefaults *g = &c->gen;
    if (g->set && g->do_sample)
        printf("\nsampling defaults (generation_config.json): temperature %g, top_k %d, top_p %g, min_p %g, "
               "repetition_penalty %g", g->temperature, g->top_k, g->top_p, g->min_p, g->repetition_penalty);
    else
        printf("\nsampling defaults: %s", g->set ? "greedy (generation_config.json: do_sample false)"
                                                 : "llama.cpp's (no generation_config.json)");
    printf("\nquantization: %s", cJSON_GetStringValue(q));
    /* what a recipe gave each role: bits per weight over the base's 2-D weights, and each type's share */
    double nw[DT_COUNT] = {0}, bytes = 0, all = 0;
    for (const cJSON *t = ts ? ts->child : NULL; t; t = t->next) {
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(t, "name"));
        int ty = dtype_from_name(cJSON_GetStringValue(cJSON_GetObjectItem(t, "type")));
        double rows = cJSON_GetNumberValue(cJSON_GetObjectItem(t, "rows")), cols = cJSON_GetNumberValue(cJSON_GetObjectItem(t, "cols"));
        if (!nm || ty < 0 || rows < 2 || cols < 2 || !strncmp(nm, "lora.", 5)) continue;
        const cJSON *ss = cJSON_GetObjectItem(t, "scales_size");
        bytes += cJSON_GetNumberValue(cJSON_GetObjectItem(t, "data_size")) + (ss ? ss->valuedouble : 0);
        nw[ty] += rows * cols, all += rows * cols;
    }
    if (all > 0) {
        printf(", %.3f bits/weight over the 2-D weights (", 8 * bytes / all);
        const char *sep = "";
        for (int ty = 0; ty < DT_COUNT; ty++)
            if (nw[ty] > 0) printf("%s%s %.1f%%", sep, dtype_name((DType)ty), 100 * nw[ty] / all), sep = ", ";
        printf(")");
    }
    printf("\n");
    printf("tokenizer: %zu bytes, tokenizer_config: %zu bytes\n", m.tokenizer_json_len, m.tokenizer_config_len);
    printf("tensors: %d%s\n", cJSON_GetArraySize(ts), tensors ? "" : " (--tensors lists them)");
    for (const cJSON *t = ts && tensors ? ts->child : NULL; t; t = t->next) {
        double sz = cJSON_GetObjectItem(t, "data_size")->valuedouble;
        const cJSON *ss = cJSON_GetObjectItem(t, "scales_size");
        if (ss) sz += ss->valuedouble;
        printf("  %-32s %-4s %6d x %-6d %10.0f bytes%s\n", cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")),
               cJSON_GetStringValue(cJSON_GetObjectItem(t, "type")), cJSON_GetObjectItem(t, "rows")->valueint,
               cJSON_GetObjectItem(t, "cols")->valueint, sz, cJSON_GetObjectItem(t, "in_scale") ? "  awq in_scale" : "");
    }
    const cJSON *ads = cJSON_GetObjectItem(j, "adapters");
    printf("adapters: %d\n", m.n_adapters);
    for (const cJSON *a = ads ? ads->child : NULL; a; a = a->next) {
        char *tg = cJSON_PrintUnformatted(cJSON_GetObjectItem(a, "targets"));
        const char *an = cJSON_GetStringValue(cJSON_GetObjectItem(a, "name"));
        int ai = an ? model_find_adapter(&m, an) : -1;
        double ab = 0; /* A and B bytes, and their type (the writer stores an adapter's pairs alike) */
        const char *at = "?";
        for (int p = 0; ai >= 0 && p < m.adapters[ai].n_layers * P_COUNT; p++) {
            const LoraPair *lp = &m.adapters[ai].pairs[p];
            if (!lp->r) continue;
            ab += (double)(qmat_data_bytes(lp->A.type, lp->A.rows, lp->A.cols) + qmat_scale_bytes(lp->A.type, lp->A.rows, lp->A.cols) +
                           qmat_data_bytes(lp->B.type, lp->B.rows, lp->B.cols) + qmat_scale_bytes(lp->B.type, lp->B.rows, lp->B.cols));
            at = dtype_name(lp->A.type);
        }
        printf("  %-16s rank %g alpha %g%s, %d pairs, A and B %s (%.2f MiB), targets %s, source xxh64 %s\n", an ? an : "?",
               cJSON_GetNumberValue(cJSON_GetObjectItem(a, "rank")), cJSON_GetNumberValue(cJSON_GetObjectItem(a, "alpha")),
               cJSON_IsTrue(cJSON_GetObjectItem(a, "rslora")) ? " rslora" : "",
               cJSON_GetArraySize(cJSON_GetObjectItem(a, "pairs")), at, ab / 1048576.0, tg ? tg : "[]",
               cJSON_GetStringValue(cJSON_GetObjectItem(a, "source_hash")));
        cJSON_free(tg);
    }
    const cJSON *cal = cJSON_GetObjectItem(j, "calibration");
    if (cal) {
        printf("calibration: %g prompts, %g tokens, method %s\n", cJSON_GetNumberValue(cJSON_GetObjectItem(cal, "prompts")),
               cJSON_GetNumberValue(cJSON_GetObjectItem(cal, "tokens")), cJSON_GetStringValue(cJSON_GetObjectItem(cal, "method")));
        const cJSON *pa = cJSON_GetObjectItem(cal, "per_adapter");
        for (const cJSON *r = pa ? pa->child : NULL; r; r = r->next)
            printf("  %-16s top1 %.2f%%, KL %.6f, NLL %.4f (unquantized %.4f)\n",
                   cJSON_GetStringValue(cJSON_GetObjectItem(r, "name")), 100 * cJSON_GetNumberValue(cJSON_GetObjectItem(r, "top1")),
                   cJSON_GetNumberValue(cJSON_GetObjectItem(r, "kl")), cJSON_GetNumberValue(cJSON_GetObjectItem(r, "nll")),
                   cJSON_GetNumberValue(cJSON_GetObjectItem(r, "nll_unquantized")));
    } else {
        printf("calibration: none (round-to-nearest)\n");
    }
    cJSON_Delete(j);
    model_close(&m);
    return 0;
}
