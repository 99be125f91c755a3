#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "load/limits.h"

int cli_model_opt(ModelOpts *o, int argc, char **argv, int *i, Err *e)
{
    const char *a = argv[*i], *v;
    long n;
    if (!strcmp(a, "--lora")) {
        if (cli_arg_str(argc, argv, i, &v, e)) return -1;
        if (o->n_lora == CLI_MAX_LORAS) return err_set(e, "--lora: at most %d adapters", CLI_MAX_LORAS);
        o->lora_spec[o->n_lora++] = v;
        return 1;
    }
    if (!strcmp(a, "--adapter")) return cli_arg_str(argc, argv, i, &o->adapter, e) ? -1 : 1;
    if (!strcmp(a, "--isa")) return cli_arg_str(argc, argv, i, &o->isa, e) ? -1 : 1;
    if (!strcmp(a, "--merge")) {
        o->merge = 1;
        return 1;
    }
    if (!strcmp(a, "--ram")) {
        o->ram = 1;
        return 1;
    }
    if (!strcmp(a, "--threads")) {
        if (cli_arg_int(argc, argv, i, &n, 0, LIMIT_THREADS, e)) return -1;
        o->threads = (int)n;
        return 1;
    }
    if (!strcmp(a, "--ctx")) {
        if (cli_arg_int(argc, argv, i, &n, 1, LIMIT_MAX_POS, e)) return -1; /* and the model's own, at seq_init */
        o->ctx = (int)n;
        return 1;
    }
    if (!strcmp(a, "--chunk")) {
        if (cli_arg_int(argc, argv, i, &n, 1, LIMIT_PREFILL_CHUNK, e)) return -1;
        o->chunk = (int)n;
        return 1;
    }
    if (!strcmp(a, "--kv")) {
        if (cli_arg_str(argc, argv, i, &v, e)) return -1;
        if (!strcmp(v, "f16")) o->kv_type = KV_F16;
        else if (!strcmp(v, "f32")) o->kv_type = KV_F32;
        else return err_set(e, "--kv: expected f16 or f32, got \"%s\"", v);
        return 1;
    }
    return 0;
}

/* "NAME=DIR" or "DIR" (the name is then the folder's last component). */
static void split_spec(const char *spec, char *name, size_t cap, const char **dir)
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

int cli_model_open(const ModelOpts *o, Model *m, Kern **k, const Adapter **adapter, Err *e)
{
    *k = NULL;
    *adapter = NULL;
    if (!o->path) return err_set(e, "no MODEL given (a checkpoint folder or a .duet file)");
    if (model_open_flags(m, o->path, o->ram ? MODEL_OPEN_RAM : 0, e)) return -1;
    for (int i = 0; i < o->n_lora; i++) {
        char name[128];
        const char *dir;
        split_spec(o->lora_spec[i], name, sizeof name, &dir);
        if (model_add_lora(m, dir, name, e)) goto fail;
    }
    int idx = -1;
    if (o->adapter) {
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
