/* cmd_serve.c - `duet serve MODEL [options]`: the OpenAI and Ollama HTTP
 * APIs (src/serve). Reads the options, the API key file, then runs the
 * server until SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "serve/serve.h"
#include "util/json.h"

/* "512M", "2G", "1048576": bytes; -1 on a malformed size. */
static long long parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0) return -1;
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g') mul = 1073741824.0, end++;
    if (*end == 'B' || *end == 'b' || (*end == 'i' && end[1] == 'B')) end += *end == 'i' ? 2 : 1;
    if (*end || v * mul > 9e18) return -1;
    return (long long)(v * mul);
}

static const char usage[] =
    "usage: duet serve MODEL [--host 127.0.0.1] [--port 8080] [--name NAME] [--lora NAME=DIR]... [--lora-dir DIR]\n"
    "       [--api-key KEY | --api-key-file F] [--parallel N] [--queue N] [--ctx N] [--kv-budget SIZE]\n"
    "       [--max-body SIZE] [--timeout S] [--queue-timeout S] [--drain S] [--threads N] [--isa NAME] [--ram] [--quiet]";

int cmd_serve(int argc, char **argv)
{
    ServeOpts o;
    serve_opts_default(&o);
    Err e = {{0}};
    char *keybuf = NULL;
    const char *keyfile = NULL, *v;
    long n;
    double d;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--host")) rc = cli_arg_str(argc, argv, &i, &o.host, &e);
        else if (!strcmp(a, "--name")) rc = cli_arg_str(argc, argv, &i, &o.name, &e);
        else if (!strcmp(a, "--port")) rc = cli_arg_int(argc, argv, &i, &n, 0, 65535, &e), o.port = (int)n;
        else if (!strcmp(a, "--lora")) {
            if (!(rc = cli_arg_str(argc, argv, &i, &v, &e))) {
                if (!strchr(v, '=')) rc = err_set(&e, "--lora %s: expected NAME=DIR", v);
                else if (o.n_lora == DUET_MAX_ADAPTERS) rc = err_set(&e, "--lora: at most %d adapters", DUET_MAX_ADAPTERS);
                else o.loras[o.n_lora++] = v;
            }
        } else if (!strcmp(a, "--lora-dir")) rc = cli_arg_str(argc, argv, &i, &o.lora_dir, &e);
        else if (!strcmp(a, "--api-key")) rc = cli_arg_str(argc, argv, &i, &o.api_key, &e);
        else if (!strcmp(a, "--api-key-file")) rc = cli_arg_str(argc, argv, &i, &keyfile, &e);
        else if (!strcmp(a, "--parallel")) rc = cli_arg_int(argc, argv, &i, &n, 1, 256, &e), o.parallel = (int)n;
        else if (!strcmp(a, "--queue")) rc = cli_arg_int(argc, argv, &i, &n, 0, 100000, &e), o.queue = (int)n;
        else if (!strcmp(a, "--ctx")) rc = cli_arg_int(argc, argv, &i, &n, 16, 1 << 20, &e), o.ctx = (int)n;
        else if (!strcmp(a, "--threads")) rc = cli_arg_int(argc, argv, &i, &n, 0, 1024, &e), o.threads = (int)n;
        else if (!strcmp(a, "--timeout")) rc = cli_arg_int(argc, argv, &i, &n, 1, 86400, &e), o.timeout_s = (int)n;
        else if (!strcmp(a, "--queue-timeout")) rc = cli_arg_float(argc, argv, &i, &d, 0, 86400, &e), o.queue_timeout_s = d;
        else if (!strcmp(a, "--drain")) rc = cli_arg_float(argc, argv, &i, &d, 0, 86400, &e), o.drain_s = d;
        else if (!strcmp(a, "--isa")) rc = cli_arg_str(argc, argv, &i, &o.isa, &e);
        else if (!strcmp(a, "--ram")) o.ram = 1;
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (!strcmp(a, "--kv-budget") || !strcmp(a, "--max-body")) {
            if (!(rc = cli_arg_str(argc, argv, &i, &v, &e))) {
                long long s = parse_size(v);
                if (s <= 0) rc = err_set(&e, "%s %s: expected a size such as 512M or 2G", a, v);
                else if (a[2] == 'k') o.kv_budget = (size_t)s;
                else o.max_body = (size_t)s;
            }
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts(usage);
            return 0;
        } else if (a[0] == '-') rc = err_set(&e, "serve: unknown option \"%s\"", a);
        else if (!o.model_path) o.model_path = a;
        else rc = err_set(&e, "serve: unexpected argument \"%s\"", a);
    }
    if (rc) return cli_error("%s", e.msg);
    if (!o.model_path) return cli_error("%s", usage);
    if (keyfile) {
        if (o.api_key) return cli_error("--api-key and --api-key-file: give one");
        size_t len;
        if (!(keybuf = file_read(keyfile, &len, &e))) return cli_error("%s", e.msg);
        while (len && (keybuf[len - 1] == '\n' || keybuf[len - 1] == '\r' || keybuf[len - 1] == ' ')) keybuf[--len] = 0;
        if (!len) {
            free(keybuf);
            return cli_error("--api-key-file %s: the file is empty", keyfile);
        }
        o.api_key = keybuf;
    }
    if (o.api_key && !o.api_key[0]) return cli_error("--api-key: empty");
    rc = serve_run(&o);
    free(keybuf);
    return rc;
}
