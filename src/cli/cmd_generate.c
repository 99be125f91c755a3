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
    SampleParams sp = sample_defaults();
    const char *ids_s = NULL, *prompt_text = NULL, *chat_text = NULL, *system = NULL;
    const char *tools_path = NULL, *tool_choice = NULL, *schema_path = NULL;
    int json_object = 0;
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
        else if (!strcmp(a, "--prompt")) r = cli_arg_str(argc, argv, &i, &prompt_text, &e);
        else if (!strcmp(a, "--chat")) r = cli_arg_str(argc, argv, &i, &chat_text, &e);
        else if (!strcmp(a, "--system")) r = cli_arg_str(argc, argv, &i, &system, &e);
        else if (!strcmp(a, "--max-tokens")) r = cli_arg_int(argc, argv, &i, &max_tokens, 0, 1 << 24, &e);
        else if (!strcmp(a, "--tools")) r = cli_arg_str(argc, argv, &i, &tools_path, &e);
        else if (!strcmp(a, "--tool-choice")) r = cli_arg_str(argc, argv, &i, &tool_choice, &e);
        else if (!strcmp(a, "--json-schema")) r = cli_arg_str(argc, argv, &i, &schema_path, &e);
        else if (!strcmp(a, "--json")) json_object = 1;
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
    if (!!ids_s + !!prompt_text + !!chat_text != 1)
        return cli_error("generate: give the prompt with one of --ids 1,2,3, --prompt TEXT or --chat TEXT");
    if (!o.path) return cli_error("generate: no MODEL given");
    if (tools_path || tool_choice || schema_path || json_object) {
        if (ids_s) return cli_error("generate: --tools / --json-schema / --json take --chat TEXT or --prompt TEXT");
        if (tool_choice && !tools_path) return cli_error("generate: --tool-choice needs --tools FILE");
        GenStructured g = {.path = o.path, .adapter = o.adapter, .tools_path = tools_path, .tool_choice = tool_choice,
                           .schema_path = schema_path, .loras = o.lora_spec, .n_lora = o.n_lora, .threads = o.threads,
                           .json_object = json_object, .max_tokens = (int)max_tokens, .top_k = sp.top_k,
                           .chat = chat_text, .system = system, .prompt = prompt_text,
                           .temperature = sp.temperature, .top_p = sp.top_p, .seed = sp.seed};
        return cli_generate_structured(&g);
    }
    Model m;
    Kern *k;
    const Adapter *ad;
    if (cli_model_open(&o, &m, &k, &ad, &e)) return cli_error("%s", e.msg);
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
        if (seq_prefill(&q, k, prompt, n_prompt, o.chunk ? o.chunk : 512, lg, NULL, &e)) goto fail;
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
