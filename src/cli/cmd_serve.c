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

int cmd_serve(int argc, char **argv)
{
    ServeOpts o;
    serve_opts_default(&o);
    Err e = {{0}};
    char *keybuf = NULL;
    const char *keyfile = NULL, *kv_budget = NULL, *max_body = "8M", *lora[DUET_MAX_ADAPTERS];
    int n_lora = 0, rc = 0;
    CliOpt own[] = {
        {CLI_STR, "--host", NULL, &o.host, "ADDR", "127.0.0.1", "address to listen on"},
        {CLI_INT, "--port", NULL, &o.port, "P", "8080", "port to listen on", 0, 65535},
        {CLI_STR, "--name", NULL, &o.name, "NAME", NULL, "the base model's name in the API (default: the file's name)"},
        {CLI_LIST, "--lora", NULL, lora, "[NAME=]DIR", NULL,
         "a PEFT adapter, served as model NAME (default: the folder's name)", 0, DUET_MAX_ADAPTERS, &n_lora},
        {CLI_STR, "--lora-dir", NULL, &o.lora_dir, "DIR", NULL,
         "adapters under DIR may be loaded at run time (default: off)"},
        {CLI_STR, "--api-key", NULL, &o.api_key, "KEY", NULL, "clients must send this bearer key (default: none)"},
        {CLI_STR, "--api-key-file", NULL, &keyfile, "F", NULL, "the key, read from a file"},
        {CLI_STR, "--cors", NULL, &o.cors, "ORIGIN", NULL,
         "let browser pages of ORIGIN (or * for any) call the API (default: off)"},
        {CLI_INT, "--parallel", NULL, &o.parallel, "N", "4", "generations at once", 1, 256},
        {CLI_INT, "--queue", NULL, &o.queue, "N", "64", "requests that may wait for a slot", 0, 100000},
        {CLI_FLOAT, "--queue-timeout", NULL, &o.queue_timeout_s, "S", "60", "a waiting request gets 503 after S seconds",
         0, 86400},
        {CLI_INT, "--ctx", "-c", &o.ctx, "N", "0", "context positions per session; 0: 4096 or the model's, if less", 0,
         1 << 20},
        {CLI_STR, "--kv-budget", NULL, &kv_budget, "SIZE", NULL,
         "KV cache of all sessions, e.g. 2G (default: 2 x --parallel sessions)"},
        {CLI_STR, "--max-body", NULL, &max_body, "SIZE", "8M", "largest request body"},
        {CLI_INT, "--timeout", NULL, &o.timeout_s, "S", "30", "idle connection / slow body timeout in seconds", 1, 86400},
        {CLI_FLOAT, "--drain", NULL, &o.drain_s, "S", "60", "on SIGTERM, wait this long for requests in flight", 0, 86400},
        {CLI_INT, "--threads", "-t", &o.threads, "N", "0", "kernel threads; 0: one per physical core", 0, 1024},
        {CLI_CHOICE, "--isa", NULL, &o.isa, "scalar|avx2|avx512|neon", NULL, "kernel backend (default: the best)"},
        {CLI_FLAG, "--ram", NULL, &o.ram, NULL, NULL, "copy a .duet into memory (huge pages) instead of mapping it"},
        {CLI_FLAG, "--quiet", "-q", &o.quiet, NULL, NULL, "no log line per request"},
        {0}};
    const CliSpec spec = {
        .name = "serve",
        .summary = "Serves MODEL and its adapters over the OpenAI and Ollama HTTP APIs until SIGTERM",
        .usage = "MODEL [--lora [NAME=]DIR]... [--port P] [options]",
        .pos_name = "MODEL", .pos_help = "a checkpoint folder or a .duet file", .pos = &o.model_path, .pos_required = 1,
        .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    char names[DUET_MAX_ADAPTERS][160];
    for (int i = 0; i < n_lora; i++) {
        char name[64];
        const char *dir;
        cli_lora_split(lora[i], name, sizeof name, &dir);
        snprintf(names[i], sizeof names[i], "%s=%s", name, dir);
        o.loras[o.n_lora++] = names[i];
    }
    long long size;
    if (kv_budget) {
        if ((size = parse_size(kv_budget)) <= 0)
            return cli_error("--kv-budget %s: expected a size such as 512M or 2G", kv_budget);
        o.kv_budget = (size_t)size;
    }
    if ((size = parse_size(max_body)) <= 0) return cli_error("--max-body %s: expected a size such as 512K or 8M", max_body);
    o.max_body = (size_t)size;
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
    if (o.cors && strcmp(o.cors, "*") && strncmp(o.cors, "http://", 7) && strncmp(o.cors, "https://", 8))
        return cli_error("--cors %s: expected * or an origin such as http://localhost:3000", o.cors);
    rc = serve_run(&o);
    free(keybuf);
    return rc;
}
