/* cli_model.c - the options shared by the commands that run a model: the
 * model and its adapters, and sampling; opening the model they name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "load/limits.h"

void cli_model_opts(ModelOpts *o, CliOpt *t, const char *kv_def, const char *ctx_help, unsigned what)
{
    int n = 0;
    t[n++] = (CliOpt){CLI_LIST, "--lora", NULL, o->lora_spec, "[NAME=]DIR",
                      NULL, "a PEFT adapter folder (NAME: the folder's name when left out); one given is used", 0,
                      CLI_MAX_LORAS, &o->n_lora};
    t[n++] = (CliOpt){CLI_STR, "--adapter", NULL, &o->adapter, "NAME", NULL,
                      "the adapter to run (\"base\": none; default: the one --lora gave, else none)"};
    if (what & CLI_MODEL_MERGE)
        t[n++] = (CliOpt){CLI_FLAG, "--merge", NULL, &o->merge, NULL, NULL, "merge the adapter into the weights first"};
    t[n++] = (CliOpt){CLI_INT, "--threads", "-t", &o->threads, "N", "0", "kernel threads; 0: one per physical core",
                      0, LIMIT_THREADS};
    t[n++] = (CliOpt){CLI_CHOICE, "--isa", NULL, &o->isa, "scalar|avx2|avx512|neon", NULL,
                      "kernel backend (default: the best this CPU has)"};
    t[n++] = (CliOpt){CLI_CHOICE, "--kv", NULL, &o->kv, "f16|f32", kv_def, "KV cache element type"};
    t[n++] = (CliOpt){CLI_INT, "--ctx", "-c", &o->ctx, "N", "0", ctx_help, 0, LIMIT_MAX_POS};
    t[n++] = (CliOpt){CLI_INT, "--chunk", NULL, &o->chunk, "N", "512", "prompt tokens per prefill step", 1,
                      LIMIT_PREFILL_CHUNK};
    if (what & CLI_MODEL_RAM) {
        t[n++] = (CliOpt){CLI_FLAG, "--ram", NULL, &o->ram, NULL, NULL,
                          "read a .duet into memory (huge pages) even when it takes more than 3/4 of the free memory"};
        t[n++] = (CliOpt){CLI_FLAG, "--mmap", NULL, &o->mmap, NULL, NULL,
                          "map a .duet instead of reading it in (default: read in when it takes at most 3/4 of the free "
                          "memory: faster decode)"};
    }
    t[n] = (CliOpt){0};
}

void cli_sampling_opts(CliSampling *s, CliOpt *t)
{
    *s = (CliSampling){NAN, NAN, NAN, NAN, NAN, NAN, -1, -1, 0};
    int n = 0;
    t[n++] = (CliOpt){CLI_FLAG, "--greedy", NULL, &s->greedy, NULL, NULL, "always the most likely token, no penalties unless given (reproducible)"};
    t[n++] = (CliOpt){CLI_FLOAT, "--temperature", "--temp", &s->temperature, "T", NULL,
                      "randomness; 0: greedy (default: the model's generation_config.json, else 0.8)", 0, 100};
    t[n++] = (CliOpt){CLI_INT, "--top-k", NULL, &s->top_k, "K", NULL,
                      "sample from the K most likely tokens; 0: off (default: generation_config.json, else 40)", 0,
                      1 << 24};
    t[n++] = (CliOpt){CLI_FLOAT, "--top-p", NULL, &s->top_p, "P", NULL,
                      "nucleus sampling; 1: off (default: generation_config.json, else 0.95)", 0, 1};
    t[n++] = (CliOpt){CLI_FLOAT, "--min-p", NULL, &s->min_p, "P", NULL,
                      "drop tokens below P x the top one's probability; 0: off (default: generation_config.json, else 0.05)",
                      0, 1};
    t[n++] = (CliOpt){CLI_FLOAT, "--repeat-penalty", NULL, &s->repeat_penalty, "R", NULL,
                      "penalty for tokens already seen; 1: off (default: generation_config.json, else 1)", 0.01, 100};
    t[n++] = (CliOpt){CLI_FLOAT, "--frequency-penalty", NULL, &s->frequency_penalty, "F", "0",
                      "minus F x a token's count so far", -2, 2};
    t[n++] = (CliOpt){CLI_FLOAT, "--presence-penalty", NULL, &s->presence_penalty, "F", "0",
                      "minus F for a token seen at all", -2, 2};
    t[n++] = (CliOpt){CLI_INT, "--seed", "-s", &s->seed, "S", NULL,
                      "random seed, for a repeatable run (default: a random one, printed with -v)", 0, 0x7fffffff};
    t[n] = (CliOpt){0};
}

SampleParams cli_sampling_resolve(const CliSampling *s, SampleParams p)
{
    if (!isnan(s->temperature)) p.temperature = (float)s->temperature;
    if (s->top_k >= 0) p.top_k = s->top_k;
    if (!isnan(s->top_p)) p.top_p = (float)s->top_p;
    if (!isnan(s->min_p)) p.min_p = (float)s->min_p;
    if (!isnan(s->repeat_penalty)) p.repetition_penalty = (float)s->repeat_penalty;
    if (!isnan(s->frequency_penalty)) p.frequency_penalty = (float)s->frequency_penalty;
    if (!isnan(s->presence_penalty)) p.presence_penalty = (float)s->presence_penalty;
    if (s->greedy) { /* the most likely token, nothing else: the model's repetition penalty too is off */
        p.temperature = 0;
        if (isnan(s->repeat_penalty)) p.repetition_penalty = 1;
    }
    if (s->seed >= 0) {
        p.seed = (uint64_t)s->seed;
    } else {
        unsigned r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = (unsigned)time(NULL) ^ (unsigned)getpid() * 2654435761u;
        p.seed = r & 0x7fffffff;
    }
    return p;
}

void cli_session_sampling(const duet_model *m, const CliSampling *cs, duet_session_options *so)
{
    duet_model_sampling_defaults(m, so);
    SampleParams p = sample_defaults();
    p.temperature = so->temperature;
    p.top_k = so->top_k;
    p.top_p = so->top_p;
    p.min_p = so->min_p;
    p.repetition_penalty = so->repetition_penalty;
    p = cli_sampling_resolve(cs, p);
    so->temperature = p.temperature;
    so->top_k = p.top_k;
    so->top_p = p.top_p;
    so->min_p = p.min_p;
    so->repetition_penalty = p.repetition_penalty;
    so->frequency_penalty = p.frequency_penalty;
    so->presence_penalty = p.presence_penalty;
    so->seed = p.seed;
}

/* "NAME=DIR" or "DIR" (the name is then the folder's last component). */
void cli_lora_split(const char *spec, char *name, size_t cap, const char **dir)
{
    const char *eq = strchr(spec, '=');
    if (eq && eq != spec) {
        size_t n = (size_t)(eq - spec) < cap - 1 ? (size_t)(eq - spec) : cap - 1;
        memcpy(name, spec, n);
        name[n] = 0;
        *dir = eq + 1;
        return;
    }
    size_t len = strlen(spec);
    while (len > 1 && spec[len - 1] == '/') len--;
    const char *b = spec + len;
    while (b > spec && b[-1] != '/') b--;
    size_t n = (size_t)(spec + len - b) < cap - 1 ? (size_t)(spec + len - b) : cap - 1;
    memcpy(name, b, n);
    name[n] = 0;
    *dir = spec;
}

/* "loading NAME: 45% 396/875 MB" rewritten on stderr, at most ten times a
 * second; the line is cleared at the end. */
typedef struct LoadBar {
    const char *path;
    double last;
} LoadBar;

static void load_progress(void *ctx, uint64_t done, uint64_t total)
{
    LoadBar *b = ctx;
    if (!cli_progress_due(&b->last, done, total)) return;
    fprintf(stderr, "loading %s into memory: %3.0f%%  %.0f/%.0f MB", b->path, 100.0 * done / total, done / 1e6, total / 1e6);
    fflush(stderr);
}

int cli_model_open(ModelOpts *o, Model *m, Kern **k, const Adapter **adapter, Err *e)
{
    *k = NULL;
    *adapter = NULL;
    if (!o->path) return err_set(e, "no MODEL given (a checkpoint folder or a .duet file)");
    o->kv_type = o->kv && !strcmp(o->kv, "f32") ? KV_F32 : KV_F16;
    if (cli_check_model_path(o->path, "model", e)) return -1;
    LoadBar bar = {o->path, 0};
    ModelProgress mp = {load_progress, &bar};
    int flags = o->ram ? MODEL_OPEN_RAM : o->mmap ? 0 : MODEL_OPEN_AUTO;
    if (model_open_progress(m, o->path, flags, isatty(2) ? &mp : NULL, e)) return -1;
    for (int i = 0; i < o->n_lora; i++) {
        char name[128];
        const char *dir;
        cli_lora_split(o->lora_spec[i], name, sizeof name, &dir);
        if (model_add_lora(m, dir, name, e)) goto fail;
    }
    int idx = -1;
    if (o->adapter && strcmp(o->adapter, "base")) {
        idx = model_find_adapter(m, o->adapter);
        if (idx < 0) {
            char have[512] = "";
            for (int i = 0; i < m->n_adapters; i++) {
                strncat(have, i ? ", " : "", sizeof have - strlen(have) - 1);
                strncat(have, m->adapters[i].name, sizeof have - strlen(have) - 1);
            }
            err_set(e, "--adapter: no adapter named \"%s\" (have: %s)", o->adapter, m->n_adapters ? have : "none");
            goto fail;
        }
    } else if (o->adapter) {
        idx = -1; /* --adapter base */
    } else if (o->n_lora == 1) {
        idx = m->n_adapters - 1;
    } else if (o->n_lora > 1) {
        err_set(e, "%d adapters given: choose one with --adapter NAME", o->n_lora);
        goto fail;
    }
    if (o->merge) {
        if (idx < 0) {
            err_set(e, "--merge: no adapter to merge");
            goto fail;
        }
        if (model_merge_adapter(m, idx, e)) goto fail;
    } else if (idx >= 0) {
        *adapter = &m->adapters[idx];
    }
    *k = kern_create(o->threads, o->isa, e);
    if (!*k) goto fail;
    return 0;
fail:
    model_close(m);
    return -1;
}
