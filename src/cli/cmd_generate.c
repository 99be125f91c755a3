/* duet generate MODEL (--ids 1,2,3 | --prompt TEXT | --chat TEXT) ...
 * With --print-ids: the generated ids, space-separated, one line on stdout
 * and nothing else there. Otherwise the text, streamed as it is decoded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "run/sample.h"
#include "run/seq.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int is_eos(const ModelConfig *c, int tok)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == tok) return 1;
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    ModelOpts o = {0};
    SampleParams sp = sample_defaults();
    const char *ids_s = NULL;
    long max_tokens = 128;
    int print_ids = 0, greedy = 0, ignore_eos = 0, verbose = 0;
    double d;
    long n;
    Err e = {{0}};
    for (int i = 1; i < argc; i++) {
        int r = cli_model_opt(&o, argc, argv, &i, &e);
        if (r < 0) return cli_error("%s", e.msg);
        if (r) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--ids")) r = cli_arg_str(argc, argv, &i, &ids_s, &e);
        else if (!strcmp(a, "--max-tokens")) r = cli_arg_int(argc, argv, &i, &max_tokens, 0, 1 << 24, &e);
        else if (!strcmp(a, "--greedy")) greedy = 1;
        else if (!strcmp(a, "--print-ids")) print_ids = 1;
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = 1;
        else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) verbose = 1;
        else if (!strcmp(a, "--temperature")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, 0, 100, &e))) sp.temperature = (float)d;
        } else if (!strcmp(a, "--top-k")) {
            if (!(r = cli_arg_int(argc, argv, &i, &n, 0, 1 << 24, &e))) sp.top_k = (int)n;
        } else if (!strcmp(a, "--top-p")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, 0, 1, &e))) sp.top_p = (float)d;
        } else if (!strcmp(a, "--min-p")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, 0, 1, &e))) sp.min_p = (float)d;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, 0.01, 100, &e))) sp.repetition_penalty = (float)d;
        } else if (!strcmp(a, "--frequency-penalty")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, -2, 2, &e))) sp.frequency_penalty = (float)d;
        } else if (!strcmp(a, "--presence-penalty")) {
            if (!(r = cli_arg_float(argc, argv, &i, &d, -2, 2, &e))) sp.presence_penalty = (float)d;
        } else if (!strcmp(a, "--seed")) {
            if (!(r = cli_arg_int(argc, argv, &i, &n, 0, 0x7fffffffL, &e))) sp.seed = (uint64_t)n;
        } else if (a[0] == '-' || o.path) {
            return cli_error("generate: unknown argument \"%s\"", a);
        } else {
            o.path = a;
        }
        if (r < 0) return cli_error("%s", e.msg);
    }
    if (greedy) sp.temperature = 0;
    else if (sp.temperature == 0 && (sp.top_k || sp.top_p < 1)) sp.temperature = 1.0f;
    if (!ids_s) return cli_error("generate: give the prompt with --ids 1,2,3");
    int n_prompt;
    int *prompt = cli_parse_ids(ids_s, &n_prompt, &e);
    if (!prompt) return cli_error("%s", e.msg);

    Model m;
    Kern *k;
    const Adapter *ad;
    if (cli_model_open(&o, &m, &k, &ad, &e)) {
        free(prompt);
        return cli_error("%s", e.msg);
    }
    int rc = 1, vocab = m.cfg.vocab_size;
    int ctx = o.ctx ? o.ctx : n_prompt + (int)max_tokens;
    Seq q = {0};
    Sampler smp = {0};
    float *lg = malloc((size_t)vocab * sizeof(float));
    int *out = malloc(((size_t)max_tokens + 1) * sizeof(int));
    int n_out = 0;
    double t0 = now_s(), t1 = t0;
    if (!lg || !out || sampler_init(&smp, &sp, vocab)) {
        cli_error("out of memory");
        goto done;
    }
    if (seq_init(&q, &m, ctx, o.kv_type, ad, &e)) goto fail;
    for (int i = 0; i < n_prompt; i++) sampler_accept(&smp, prompt[i]);
    if (max_tokens > 0) {
        if (seq_prefill(&q, k, prompt, n_prompt, o.chunk ? o.chunk : 512, lg, NULL, &e)) goto fail;
        t1 = now_s();
        for (;;) {
            int tok = sampler_sample(&smp, lg);
            out[n_out++] = tok;
            sampler_accept(&smp, tok);
            if (!print_ids) {
                printf("%s%d", n_out > 1 ? " " : "", tok);
                fflush(stdout);
            }
            if (n_out >= max_tokens || (!ignore_eos && is_eos(&m.cfg, tok))) break;
            if (seq_decode(&q, k, tok, lg, &e)) goto fail;
        }
    }
    if (print_ids) {
        for (int i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", out[i]);
    }
    printf("\n");
    if (verbose) {
        double t2 = now_s();
        fprintf(stderr, "prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s), %s x%d\n",
                n_prompt, t1 - t0, n_prompt / (t1 - t0 + 1e-9), n_out, t2 - t1, (n_out - 1) / (t2 - t1 + 1e-9),
                kern_isa(k), kern_threads(k));
    }
    rc = 0;
    goto done;
fail:
    cli_error("%s", e.msg);
done:
    free(lg);
    free(out);
    free(prompt);
    sampler_free(&smp);
    seq_free(&q);
    kern_destroy(k);
    model_close(&m);
    return rc;
}
