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
#include "text/chat.h"
#include "text/detok.h"
#include "text/tokenizer.h"
#include "util/clock.h"

/* The prompt ids for --prompt TEXT (raw) or --chat TEXT (one user message,
 * optionally after a system message, through the model's chat template with
 * the generation prompt). Returns malloc'd ids; NULL with *e set. */
static int *text_prompt(const Tokenizer *t, const ChatTemplate *ct, const char *text, const char *system, int *n,
                        Err *e)
{
    char *rendered = NULL;
    if (ct) {
        cJSON *msgs = cJSON_CreateArray();
        if (system) {
            cJSON *sm = cJSON_CreateObject();
            cJSON_AddStringToObject(sm, "role", "system");
            cJSON_AddStringToObject(sm, "content", system);
            cJSON_AddItemToArray(msgs, sm);
        }
        cJSON *um = cJSON_CreateObject();
        cJSON_AddStringToObject(um, "role", "user");
        cJSON_AddStringToObject(um, "content", text);
        cJSON_AddItemToArray(msgs, um);
        rendered = chat_template_render(ct, msgs, NULL, 1, e);
        cJSON_Delete(msgs);
        if (!rendered) return NULL;
        text = rendered;
    }
    int *ids = NULL;
    if (tokenizer_encode(t, text, strlen(text), &ids, n, e)) ids = NULL;
    else if (*n == 0) {
        free(ids);
        ids = NULL;
        err_set(e, "the prompt is empty");
    }
    free(rendered);
    return ids;
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
    CliSampling cs;
    const char *ids_s = NULL, *prompt_text = NULL, *chat_text = NULL, *system = NULL;
    const char *tools_path = NULL, *tool_choice = NULL, *schema_path = NULL;
    int max_tokens = 128, print_ids = 0, ignore_eos = 0, verbose = 0, json_object = 0;
    CliOpt own[] = {
        {CLI_STR, "--chat", NULL, &chat_text, "TEXT", NULL, "the prompt: one user message, through the chat template"},
        {CLI_STR, "--prompt", "-p", &prompt_text, "TEXT", NULL, "the prompt: raw text, no template"},
        {CLI_STR, "--ids", NULL, &ids_s, "1,2,3", NULL, "the prompt: token ids"},
        {CLI_STR, "--system", NULL, &system, "TEXT", NULL, "a system message before --chat's"},
        {CLI_INT, "--max-tokens", "-n", &max_tokens, "N", "128", "tokens to generate at most", 0, 1 << 24},
        {CLI_FLAG, "--ignore-eos", NULL, &ignore_eos, NULL, NULL, "go on past the end-of-sequence token"},
        {CLI_FLAG, "--print-ids", NULL, &print_ids, NULL, NULL, "print the generated token ids instead of the text"},
        {CLI_FLAG, "--verbose", "-v", &verbose, NULL, NULL, "print timings and the seed on stderr"},
        {CLI_STR, "--tools", NULL, &tools_path, "FILE", NULL, "a JSON array of tools the model may call (docs/AGENT.md)"},
        {CLI_STR, "--tool-choice", NULL, &tool_choice, "C", NULL, "with --tools: auto, required, none or a tool's name"},
        {CLI_STR, "--json-schema", NULL, &schema_path, "FILE", NULL, "the answer must be JSON valid under this schema"},
        {CLI_FLAG, "--json", NULL, &json_object, NULL, NULL, "the answer must be a JSON object"},
        {0}};
    CliOpt model[CLI_GROUP_MAX], sampling[CLI_GROUP_MAX];
    cli_model_opts(&o, model, "f32", "context positions; 0: the prompt plus --max-tokens", CLI_MODEL_ALL);
    cli_sampling_opts(&cs, sampling);
    const CliSpec spec = {
        .name = "generate",
        .summary = "Runs MODEL on one prompt and prints what it generates",
        .usage = "MODEL (--chat TEXT | --prompt TEXT | --ids 1,2,3) [options]",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder or a .duet file", .pos = &o.path, .pos_required = 1,
        .groups = {own, model, sampling}, .titles = {"options", "model", "sampling"}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err e = {{0}};
    if (!!ids_s + !!prompt_text + !!chat_text != 1)
        return cli_error("generate: give the prompt with one of --ids 1,2,3, --prompt TEXT or --chat TEXT");
    if (tools_path || tool_choice || schema_path || json_object) {
        if (ids_s) return cli_error("generate: --tools / --json-schema / --json take --chat TEXT or --prompt TEXT");
        if (tool_choice && !tools_path) return cli_error("generate: --tool-choice needs --tools FILE");
        /* duet.h's sessions: every --lora as NAME=DIR */
        char names[CLI_MAX_LORAS][160];
        const char *loras[CLI_MAX_LORAS];
        for (int i = 0; i < o.n_lora; i++) {
            char name[64];
            const char *dir;
            cli_lora_split(o.lora_spec[i], name, sizeof name, &dir);
            snprintf(names[i], sizeof names[i], "%s=%s", name, dir);
            loras[i] = names[i];
        }
        GenStructured g = {.path = o.path, .adapter = o.adapter, .tools_path = tools_path, .tool_choice = tool_choice,
                           .schema_path = schema_path, .loras = loras, .n_lora = o.n_lora, .threads = o.threads,
                           .json_object = json_object, .max_tokens = max_tokens, .ctx = o.ctx,
                           .ignore_eos = ignore_eos, .verbose = verbose, .chat = chat_text, .system = system,
                           .prompt = prompt_text, .sampling = &cs};
        return cli_generate_structured(&g);
    }
    Model m;
    Kern *k;
    const Adapter *ad;
    if (cli_model_open(&o, &m, &k, &ad, &e)) return cli_error("%s", e.msg);
    SampleParams sp = cli_sampling_resolve(&cs, sample_model_defaults(&m.cfg.gen));
    if (verbose)
        fprintf(stderr, "sampling: temperature %g, top_k %d, top_p %g, min_p %g, repeat_penalty %g, seed %llu\n",
                sp.temperature, sp.top_k, sp.top_p, sp.min_p, sp.repetition_penalty, (unsigned long long)sp.seed);
    int n_prompt = 0;
    int *prompt = NULL;
    Tokenizer *tok = NULL;
    ChatTemplate *ct = NULL;
    if (ids_s) {
        prompt = cli_parse_ids(ids_s, &n_prompt, &e);
    } else if (!cli_model_text(&m, o.path, &tok, chat_text ? &ct : NULL, &e)) {
        prompt = text_prompt(tok, ct, chat_text ? chat_text : prompt_text, system, &n_prompt, &e);
        chat_template_free(ct);
    }
    if (!prompt) {
        tokenizer_free(tok);
        kern_destroy(k);
        model_close(&m);
        return cli_error("%s", e.msg);
    }
    /* text is streamed unless the ids were asked for */
    int stream_text = tok && !print_ids;
    Detok dt;
    if (tok) detok_init(&dt, tok);

    int rc = 1, vocab = m.cfg.vocab_size;
    /* the context: --ctx, else prompt + output up to the model's positions
     * (seq_init refuses more than max_position_embeddings, as the API does) */
    long want_ctx = (long)n_prompt + max_tokens;
    int ctx = o.ctx ? o.ctx : (int)(want_ctx < m.cfg.max_pos ? want_ctx : m.cfg.max_pos);
    if (want_ctx > ctx && n_prompt < ctx) /* as llama.cpp, the answer stops at the end of the context: said first */
        fprintf(stderr, "duet: warning: --max-tokens %d: the prompt (%d token%s) and the answer do not fit %s (%d "
                "positions): at most %d tokens\n", max_tokens, n_prompt, n_prompt == 1 ? "" : "s",
                o.ctx ? "--ctx" : "the model's positions", ctx, ctx - n_prompt + 1); /* the last one needs no position */
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
    for (int id = 0; tok && id < vocab; id++) /* padded embedding rows have no text: never sampled */
        if (!tokenizer_token_bytes(tok, id, NULL) && sampler_ban(&smp, id)) {
            err_set(&e, "out of memory");
            goto fail;
        }
    if (max_tokens > 0) {
        if (seq_prefill(&q, k, prompt, n_prompt, o.chunk, lg, NULL, &e)) goto fail;
        t1 = now_s();
        for (;;) {
            int t = sampler_sample(&smp, lg);
            if (t < 0) {
                err_set(&e, "the model produced non-finite logits (inf or NaN) after %d tokens: the weights or the adapter "
                        "overflow", n_prompt + n_out);
                goto fail;
            }
            out[n_out++] = t;
            sampler_accept(&smp, t);
            int stop = n_out >= max_tokens || (!ignore_eos && is_eos(&m.cfg, t)) || q.n_past >= ctx; /* full */
            if (stream_text && !(stop && is_eos(&m.cfg, t))) {
                size_t len;
                const char *piece = detok_push(&dt, t, &len, &e);
                if (!piece) goto fail;
                fwrite(piece, 1, len, stdout);
                fflush(stdout);
            } else if (!print_ids && !stream_text) {
                printf("%s%d", n_out > 1 ? " " : "", t);
                fflush(stdout);
            }
            if (stop) break;
            if (seq_decode(&q, k, t, lg, &e)) goto fail;
        }
    }
    if (stream_text) {
        size_t len;
        const char *rest = detok_flush(&dt, &len, &e);
        if (rest) fwrite(rest, 1, len, stdout);
    }
    if (print_ids) {
        for (int i = 0; i < n_out; i++) printf("%s%d", i ? " " : "", out[i]);
    }
    printf("\n");
    fflush(stdout);
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
    if (tok) {
        detok_free(&dt);
        tokenizer_free(tok);
    }
    seq_free(&q);
    kern_destroy(k);
    model_close(&m);
    return rc;
}
