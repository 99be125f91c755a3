/* duet logits MODEL --ids 1,2,3 -o FILE [--all]: float32 little-endian logits
 * of the last position (vocab values), or of every position with --all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "run/seq.h"

int cmd_logits(int argc, char **argv)
{
    ModelOpts o = {0};
    const char *ids_s = NULL, *out = NULL;
    int all = 0;
    CliOpt own[] = {
        {CLI_STR, "--ids", NULL, &ids_s, "1,2,3", NULL, "the prompt's token ids (required)"},
        {CLI_STR, "-o", "--output", &out, "FILE", NULL, "the file to write (required)"},
        {CLI_FLAG, "--all", NULL, &all, NULL, NULL, "the logits of every position, not only the last"},
        {0}};
    CliOpt model[CLI_GROUP_MAX];
    cli_model_opts(&o, model, "f32", "context positions; 0: the number of ids", CLI_MODEL_ALL);
    const CliSpec spec = {
        .name = "logits",
        .summary = "Writes the float32 little-endian logits of the last position (or of all, --all) to a file",
        .usage = "MODEL --ids 1,2,3 -o FILE [options]",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder or a .duet file", .pos = &o.path, .pos_required = 1,
        .groups = {own, model}, .titles = {"options", "model"}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err e = {{0}};
    if (!ids_s) return cli_error("logits: --ids is required");
    if (!out) return cli_error("logits: -o FILE is required");
    int n;
    int *ids = cli_parse_ids(ids_s, &n, &e);
    if (!ids) return cli_error("%s", e.msg);
    Model m;
    Kern *k;
    const Adapter *ad;
    if (cli_model_open(&o, &m, &k, &ad, &e)) {
        free(ids);
        return cli_error("%s", e.msg);
    }
    int rc = 1, vocab = m.cfg.vocab_size;
    Seq q = {0};
    float *lg = malloc((size_t)(all ? n : 1) * vocab * sizeof(float));
    FILE *f = NULL;
    if (!lg) {
        cli_error("out of memory");
    } else if (seq_init(&q, &m, o.ctx > n ? o.ctx : n, o.kv_type, ad, &e) ||
               seq_prefill(&q, k, ids, n, o.chunk, all ? NULL : lg, all ? lg : NULL, &e)) {
        cli_error("%s", e.msg);
    } else if (!(f = fopen(out, "wb"))) {
        cli_error("%s: cannot open for writing: %s", out, strerror(errno));
    } else {
        size_t cnt = (size_t)(all ? n : 1) * vocab;
        if (fwrite(lg, sizeof(float), cnt, f) != cnt || fclose(f)) {
            cli_error("%s: write failed", out);
        } else {
            fprintf(stderr, "wrote %s: %d x %d float32 logits (%s), %zu bytes\n", out, all ? n : 1, vocab,
                    all ? "every position" : "the last position", cnt * sizeof(float));
            rc = 0;
        }
        f = NULL;
    }
    if (f) fclose(f);
    free(lg);
    free(ids);
    seq_free(&q);
    kern_destroy(k);
    model_close(&m);
    return rc;
}
