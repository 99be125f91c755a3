/* duet bench MODEL [--lora NAME=DIR] [--adapter NAME] [--prompt-tokens N]
 *                  [--gen-tokens N] [--reps R] [--seed S] [--memory] [--json]
 * duet bench --memory [--threads N] [--reps R] [--memory-mb MB] [--json]
 *
 * Runs a prompt of random token ids through prefill (in --chunk pieces,
 * default 512), takes the greedy token (time to first token), then decodes
 * --gen-tokens more, greedily. With an adapter, base rows and adapter rows of
 * the same model are run alternately, rep by rep (odd reps adapter first), so
 * both see the same noise. Then, for the adapter's decode cost alone, both
 * sequences decode token by token in turns (the pair's order alternating):
 * the median over all pairs of (adapter step time / base step time) - 1 is
 * the interleaved slowdown, the figure least moved by a machine whose speed
 * drifts within a run.
 * Every figure is the median over --reps runs, after one untimed warm-up that
 * faults the weights in.
 *
 * Bytes per decoded token = every weight matrix once (data + scales), the
 * lm_head, one embedding row, the norms and biases, the LoRA A and B matrices
 * when an adapter is active, and the KV cache read at the mean context of the
 * decode steps. Times decode tok/s, it is the memory bandwidth decode
 * implies; --memory measures what the machine can read (kern_read_bandwidth
 * over a buffer far larger than the caches). With --json, one JSON object on
 * stdout and nothing else there. cpu_util_pct = process CPU time / (wall time
 * x threads) over the timed runs: well under 100 means other work shared the
 * cores and the figures are low. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "run/seq.h"
#include "util/clock.h"

#define MAX_REPS 100

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static size_t qmat_bytes(const QMat *w)
{
    return qmat_data_bytes(w->type, w->rows, w->cols) + qmat_scale_bytes(w->type, w->rows, w->cols) +
           (w->in_scale ? (size_t)w->cols * sizeof(float) : 0);
}

/* Weight bytes one decoded token reads (see the header comment). */
static double weight_bytes(const Model *m)
{
    const ModelConfig *c = &m->cfg;
    double b = 0;
    for (int l = 0; l < c->n_layers; l++) {
        for (int p = 0; p < P_COUNT; p++) b += (double)qmat_bytes(&m->layers[l].w[p]);
        b += 2.0 * c->dim * sizeof(float);
        if (c->qkv_bias) b += (double)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim * sizeof(float);
        if (c->qk_norm) b += 2.0 * c->head_dim * sizeof(float);
    }
    QMat row = m->embed;
    row.rows = 1;
    b += (double)qmat_bytes(&row) + (double)qmat_bytes(&m->lm_head) + c->dim * sizeof(float);
    return b;
}

static double lora_bytes(const Model *m, const Adapter *a)
{
    double b = 0;
    if (!a) return 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int p = 0; p < P_COUNT; p++) {
            const LoraPair *lp = adapter_pair(a, l, (Proj)p);
            if (lp) b += (double)qmat_bytes(&lp->A) + (double)qmat_bytes(&lp->B);
        }
    return b;
}

static int lora_rank(const Model *m, const Adapter *a)
{
    int r = 0;
    for (int l = 0; a && l < m->cfg.n_layers; l++)
        for (int p = 0; p < P_COUNT; p++) {
            const LoraPair *lp = adapter_pair(a, l, (Proj)p);
            if (lp && lp->r > r) r = lp->r;
        }
    return r;
}

typedef struct Timing {
    double prefill_tok_s[MAX_REPS], ttft_ms[MAX_REPS], decode_tok_s[MAX_REPS];
} Timing;

/* One timed run: prefill the prompt, pick the first token, decode n_gen more. */
static int run_once(Seq *q, Kern *k, const int *prompt, int n_prompt, int n_gen, int chunk, float *lg, Timing *t,
                    int rep, Err *e)
{
    int vocab = q->m->cfg.vocab_size;
    seq_reset(q);
    double t0 = now_s();
    if (seq_prefill(q, k, prompt, n_prompt, chunk, lg, NULL, e)) return -1;
    double t1 = now_s();
    int tok = argmax(lg, vocab);
    double t2 = now_s();
    for (int i = 0; i < n_gen; i++) {
        if (seq_decode(q, k, tok, lg, e)) return -1;
        tok = argmax(lg, vocab);
    }
    double t3 = now_s();
    if (t) {
        t->prefill_tok_s[rep] = n_prompt / (t1 - t0);
        t->ttft_ms[rep] = (t2 - t0) * 1e3;
        t->decode_tok_s[rep] = n_gen ? n_gen / (t3 - t2) : 0;
    }
    return 0;
}

/* Decode steps of qa (the adapter) and qb (the base) in turns, n_gen pairs
 * per rep after an untimed prefill of the prompt into both; returns the
 * median per-pair time ratio minus one, in percent. */
static double interleaved_slowdown(Seq *qb, Seq *qa, Kern *k, const int *prompt, int n_prompt, int n_gen, int chunk,
                                   float *lg, int reps, Err *e)
{
    int vocab = qb->m->cfg.vocab_size, n = 0;
    double *ratio = malloc((size_t)reps * n_gen * sizeof *ratio);
    if (!ratio) {
        err_set(e, "out of memory");
        return NAN;
    }
    for (int r = 0; r < reps; r++) {
        int tok[2];
        Seq *q[2] = {qb, qa};
        for (int s = 0; s < 2; s++) {
            seq_reset(q[s]);
            if (seq_prefill(q[s], k, prompt, n_prompt, chunk, lg, NULL, e)) goto fail;
            tok[s] = argmax(lg, vocab);
        }
        for (int i = 0; i < n_gen; i++) {
            double dt[2];
            for (int o = 0; o < 2; o++) {
                int s = o ^ (i & 1); /* odd pairs: the adapter first */
                double t0 = now_s();
                if (seq_decode(q[s], k, tok[s], lg, e)) goto fail;
                tok[s] = argmax(lg, vocab);
                dt[s] = now_s() - t0;
            }
            ratio[n++] = dt[1] / dt[0];
        }
    }
    double m = median(ratio, n);
    free(ratio);
    return (m - 1) * 100;
fail:
    free(ratio);
    return NAN;
}

/* Median read bandwidth over `reps` calls, each the best of two passes over
 * a fresh buffer of `mb` MiB (the first pass pays for the page faults). */
static double measure_bandwidth(Kern *k, long mb, int reps)
{
    double v[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        v[r] = kern_read_bandwidth(k, (size_t)mb << 20, 2);
        if (v[r] < 0) return -1;
    }
    return median(v, reps);
}

static void json_num(const char *key, double v, int last)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) printf("  \"%s\": %.0f%s\n", key, v, last ? "" : ","); /* counts, bytes */
    else if (isfinite(v)) printf("  \"%s\": %.6g%s\n", key, v, last ? "" : ",");
    else printf("  \"%s\": null%s\n", key, last ? "" : ",");
}

/* JSON string body: the path may hold quotes or backslashes. */
static void json_str(const char *key, const char *s, int last)
{
    printf("  \"%s\": \"", key);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    printf("\"%s\n", last ? "" : ",");
}

static int bench_memory(const ModelOpts *o, int reps, long mb, int json)
{
    Err e = {{0}};
    Kern *k = kern_create(o->threads, o->isa, &e);
    if (!k) return cli_error("%s", e.msg);
    double bw = measure_bandwidth(k, mb, reps);
    if (bw < 0) {
        kern_destroy(k);
        return cli_error("--memory: cannot allocate %ld MiB", mb);
    }
    if (json) {
        printf("{\n");
        json_str("isa", kern_isa(k), 0);
        json_num("threads", kern_threads(k), 0);
        json_num("buffer_mib", (double)mb, 0);
        json_num("reps", reps, 0);
        json_num("bandwidth_gbs", bw, 1);
        printf("}\n");
    } else {
        printf("read bandwidth: %.1f GB/s (median of %d, %ld MiB buffer, %s x%d)\n", bw, reps, mb, kern_isa(k),
               kern_threads(k));
    }
    kern_destroy(k);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    ModelOpts o = {0};
    int n_prompt = 512, n_gen = 128, reps = 3, seed = 1, mb = 1024, json = 0, memory = 0;
    CliOpt own[] = {
        {CLI_INT, "--prompt-tokens", NULL, &n_prompt, "N", "512", "prompt length (random token ids)", 1, 1 << 20},
        {CLI_INT, "--gen-tokens", NULL, &n_gen, "N", "128", "tokens decoded after the prompt", 0, 1 << 20},
        {CLI_INT, "--reps", NULL, &reps, "R", "3", "repetitions; the median is reported", 1, MAX_REPS},
        {CLI_INT, "--seed", "-s", &seed, "S", "1", "seed of the random prompt", 0, 0x7fffffff},
        {CLI_FLAG, "--json", NULL, &json, NULL, NULL, "one JSON object on stdout"},
        {CLI_FLAG, "--memory", NULL, &memory, NULL, NULL, "without MODEL: measure the memory read bandwidth"},
        {CLI_INT, "--memory-mb", NULL, &mb, "MB", "1024", "the buffer --memory reads", 1, 1 << 20},
        {0}};
    CliOpt model[CLI_GROUP_MAX];
    /* f16: what a deployment runs (and llama.cpp's default); --kv f32 to compare */
    cli_model_opts(&o, model, "f16", "context positions; 0: prompt + generated tokens", CLI_MODEL_ALL);
    const CliSpec spec = {
        .name = "bench",
        .summary = "Measures prefill and decode speed of MODEL (base and adapter side by side), or memory bandwidth",
        .usage = "MODEL [--lora NAME=DIR] [options] | --memory",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder or a .duet file", .pos = &o.path,
        .groups = {own, model}, .titles = {"options", "model"}};
    int status;
    if (cli_parse(&spec, argc, argv, &status)) return status;
    Err e = {{0}};
    if (!o.path && memory) return bench_memory(&o, reps, mb, json);
    if (!o.path) return cli_error("bench: give a MODEL (a checkpoint folder or a .duet file), or --memory");

    Model m;
    Kern *k;
    const Adapter *ad;
    if (cli_model_open(&o, &m, &k, &ad, &e)) return cli_error("%s", e.msg);
    const ModelConfig *c = &m.cfg;
    int chunk = o.chunk, rc = 1;
    int ctx = (int)(n_prompt + n_gen) + 1;
    Seq qb = {0}, qa = {0};
    int *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    float *lg = malloc((size_t)c->vocab_size * sizeof *lg);
    Timing *tb = calloc(1, sizeof *tb), *ta = calloc(1, sizeof *ta);
    if (!prompt || !lg || !tb || !ta) {
        cli_error("out of memory");
        goto done;
    }
    uint64_t st = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
    for (long i = 0; i < n_prompt; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        prompt[i] = (int)(st % (uint64_t)c->vocab_size);
    }
    if (seq_init(&qb, &m, ctx, o.kv_type, NULL, &e)) goto fail;
    if (ad && seq_init(&qa, &m, ctx, o.kv_type, ad, &e)) goto fail;

    /* warm-up: touches every weight (and the adapter's) once, untimed */
    int nw = n_prompt < 8 ? (int)n_prompt : 8;
    if (run_once(&qb, k, prompt, nw, 1, chunk, lg, NULL, 0, &e)) goto fail;
    if (ad && run_once(&qa, k, prompt, nw, 1, chunk, lg, NULL, 0, &e)) goto fail;
    /* CPU time / (wall time x threads): below ~90% the machine was busy with other work */
    double w0 = now_s(), c0 = cpu_s();
    for (int r = 0; r < reps; r++) {
        if (!json && isatty(2)) fprintf(stderr, "rep %d/%d...\r", r + 1, reps);
        /* odd reps run the adapter first, so neither side always follows the other */
        for (int side = 0; side < 2; side++) {
            int adapter_side = side ^ (r & 1);
            if (adapter_side && !ad) continue;
            if (run_once(adapter_side ? &qa : &qb, k, prompt, (int)n_prompt, (int)n_gen, chunk, lg,
                         adapter_side ? ta : tb, r, &e))
                goto fail;
        }
    }
    double util = (cpu_s() - c0) / ((now_s() - w0) * kern_threads(k)) * 100;
    double slow_il = NAN;
    if (ad && n_gen) {
        if (!json && isatty(2)) fprintf(stderr, "interleaved decode...\r");
        slow_il = interleaved_slowdown(&qb, &qa, k, prompt, (int)n_prompt, (int)n_gen, chunk, lg, (int)reps, &e);
        if (isnan(slow_il)) goto fail;
    }
    double bw = memory ? measure_bandwidth(k, mb, (int)reps) : NAN;

    int R = (int)reps;
    double pf = median(tb->prefill_tok_s, R), tt = median(tb->ttft_ms, R);
    double dc = n_gen ? median(tb->decode_tok_s, R) : NAN;
    double pfa = NAN, tta = NAN, dca = NAN, slow = NAN, slow_pf = NAN;
    if (ad) {
        pfa = median(ta->prefill_tok_s, R);
        tta = median(ta->ttft_ms, R);
        dca = n_gen ? median(ta->decode_tok_s, R) : NAN;
        slow = n_gen ? (dc - dca) / dc * 100 : NAN;
        slow_pf = (pf - pfa) / pf * 100;
    }
    /* decode steps attend over n_prompt+1 .. n_prompt+n_gen positions */
    double mean_ctx = (double)n_prompt + (n_gen + 1) / 2.0;
    double kvb = (double)kv_bytes(c, 1, o.kv_type) * mean_ctx;
    double wb = weight_bytes(&m), lb = lora_bytes(&m, ad);
    double bpt = wb + kvb, bpta = ad ? wb + lb + kvb : NAN;
    double gbs = n_gen ? bpt * dc * 1e-9 : NAN, gbsa = ad && n_gen ? bpta * dca * 1e-9 : NAN;
    const char *quant = dtype_name(m.layers[0].w[P_Q].type);
    const char *kvname = o.kv_type == KV_F16 ? "f16" : "f32";
    /* how the weights were loaded: read into anonymous memory, mapped, or a folder's safetensors mappings */
    const char *load = m.in_ram ? "ram" : m.file_map ? "mmap" : "folder";
    long long huge = m.in_ram ? model_huge_bytes() : 0;

    if (json) {
        printf("{\n");
        json_str("model", o.path, 0);
        json_str("quant", quant, 0);
        json_str("isa", kern_isa(k), 0);
        json_str("load", load, 0);
        json_num("huge_page_bytes", huge >= 0 ? (double)huge : NAN, 0);
        json_num("threads", kern_threads(k), 0);
        json_str("kv", kvname, 0);
        json_num("prompt_tokens", (double)n_prompt, 0);
        json_num("gen_tokens", (double)n_gen, 0);
        json_num("chunk", chunk, 0);
        json_num("reps", R, 0);
        json_num("cpu_util_pct", util, 0);
        json_num("prefill_tok_s", pf, 0);
        json_num("ttft_ms", tt, 0);
        json_num("decode_tok_s", dc, 0);
        json_num("bytes_per_token", bpt, 0);
        json_num("weight_bytes", wb, 0);
        json_num("kv_bytes_per_token", kvb, 0);
        json_num("bandwidth_gbs", gbs, 0);
        json_num("read_bandwidth_gbs", bw, 0);
        if (ad) json_str("adapter", ad->name, 0);
        else printf("  \"adapter\": null,\n");
        json_num("adapter_rank", ad ? lora_rank(&m, ad) : NAN, 0);
        json_num("adapter_bytes", ad ? lb : NAN, 0);
        json_num("prefill_tok_s_adapter", pfa, 0);
        json_num("ttft_ms_adapter", tta, 0);
        json_num("decode_tok_s_adapter", dca, 0);
        json_num("bytes_per_token_adapter", bpta, 0);
        json_num("bandwidth_gbs_adapter", gbsa, 0);
        json_num("prefill_adapter_slowdown_pct", slow_pf, 0);
        json_num("adapter_slowdown_pct", slow, 0);
        json_num("adapter_slowdown_interleaved_pct", slow_il, 1);
        printf("}\n");
    } else {
        if (isatty(2)) fprintf(stderr, "%20s\r", "");
        printf("%s: %s, %s x%d, kv %s; prompt %d tokens (chunk %d), %d generated; median of %d; cpu %.0f%%\n",
               o.path, quant, kern_isa(k), kern_threads(k), kvname, n_prompt, chunk, n_gen, R, util);
        if (m.in_ram && huge >= 0)
            printf("weights: read into memory (--mmap to map instead), %.0f MB of it on 2 MB pages\n", huge / 1e6);
        else if (m.in_ram)
            printf("weights: read into memory (--mmap to map instead)\n");
        else if (m.file_map)
            printf("weights: mapped from the file (%s)\n", o.mmap ? "--mmap" : "it does not fit in the memory available");
        else
            printf("weights: mapped from the checkpoint folder\n");
        printf("%-18s %12s %10s %12s %14s %10s\n", "", "prefill t/s", "TTFT ms", "decode t/s", "bytes/token",
               "GB/s");
        printf("%-18s %12.1f %10.1f %12.2f %14.0f %10.1f\n", "base", pf, tt, dc, bpt, gbs);
        if (ad) {
            char label[64];
            snprintf(label, sizeof label, "lora %.8s r%d", ad->name, lora_rank(&m, ad));
            printf("%-18s %12.1f %10.1f %12.2f %14.0f %10.1f\n", label, pfa, tta, dca, bpta, gbsa);
            printf("adapter slowdown: decode %.1f%%, prefill %.1f%%; decode interleaved token by token %.1f%% "
                   "(median of %d pairs)\n", slow, slow_pf, slow_il, reps * n_gen);
        }
        if (memory)
            printf("read bandwidth: %.1f GB/s measured; decode uses %.0f%% of it\n", bw, 100 * gbs / bw);
    }
    rc = 0;
    goto done;
fail:
    cli_error("%s", e.msg);
done:
    free(prompt);
    free(lg);
    free(tb);
    free(ta);
    seq_free(&qb);
    seq_free(&qa);
    kern_destroy(k);
    model_close(&m);
    return rc;
}
