/* duet synth --like SHAPE -o DIR [--lora NAME=RANK]... [--seed S] [--tokenizer DIR] [-q]
 * Writes a synthetic Hugging Face checkpoint with the shapes of a real model
 * (compile/synth.h), in safetensors shards of at most --shard-mb MB (default
 * 2000, as the Hub's ~2 GB shards), and, per --lora, a PEFT adapter folder DIR-lora-NAME.
 * The tokenizer files are copied from --tokenizer DIR, by default from the
 * repository's tests/fixtures/tokenizer (found from the binary's path or the
 * working directory). One line per folder written goes to stdout; on a
 * terminal a progress line (unless -q) to stderr. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "compile/synth.h"
#include "util/clock.h"

#define MAX_SYNTH_LORAS 16

static int file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* DIR/tests/fixtures/tokenizer for the repository the binary was built in
 * (BIN = REPO/build/duet), else the working directory's; 0 if neither has one. */
static int default_tokenizer(char *out, size_t cap)
{
    char exe[4096], probe[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 2; up++) { /* strip "duet", then "build" */
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = 0;
        }
        snprintf(probe, sizeof probe, "%s/tests/fixtures/tokenizer/tokenizer.json", exe);
        if (file_exists(probe)) {
            snprintf(out, cap, "%.3000s/tests/fixtures/tokenizer", exe);
            return 1;
        }
    }
    if (file_exists("tests/fixtures/tokenizer/tokenizer.json")) {
        snprintf(out, cap, "tests/fixtures/tokenizer");
        return 1;
    }
    return 0;
}

static int copy_file(const char *from, const char *to, Err *e)
{
    FILE *in = fopen(from, "rb");
    if (!in) return err_set(e, "%s: cannot open: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return err_set(e, "%s: cannot create: %s", to, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    int bad = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) bad = 1;
    bad |= ferror(in);
    fclose(in);
    if (fclose(out) || bad) return err_set(e, "%s: copy failed", to);
    return 0;
}

/* 1 if path is a folder with something in it. */
static int nonempty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *de; !found && (de = readdir(d));)
        found = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return found;
}

/* "writing DIR: 45%  1391/3087 MB  0:12 elapsed" rewritten on stderr, at
 * most ten times a second; the line is cleared at the end. */
typedef struct SynthBar {
    const char *dir;
    double t0, last;
} SynthBar;

static void synth_progress(void *ctx, size_t done, size_t total)
{
    SynthBar *b = ctx;
    if (!cli_progress_due(&b->last, done, total)) return;
    fprintf(stderr, "writing %s: %3.0f%%  %.0f/%.0f MB  %.0f s", b->dir, 100.0 * done / total, done / 1e6, total / 1e6,
            b->last - b->t0);
    fflush(stderr);
}

int cmd_synth(int argc, char **argv)
{
    const char *like = NULL, *dir = NULL, *tok_dir = NULL;
    const char *lora[MAX_SYNTH_LORAS];
    int n_lora = 0, seed = 1, force = 0, quiet = 0;
    double shard_mb = 2000;
    CliOpt own[] = {
        {CLI_STR, "--like", NULL, &like, "SHAPE", NULL, "the shapes to copy (required): qwen2-0.5b, qwen2-1.5b, qwen2.5-3b, or tiny (for tests)"},
        {CLI_STR, "-o", "--out", &dir, "DIR", NULL, "the checkpoint folder to write (required)"},
        {CLI_LIST, "--lora", NULL, lora, "NAME=RANK", NULL, "also write a PEFT adapter of that rank to DIR-lora-NAME", 0,
         MAX_SYNTH_LORAS, &n_lora},
        {CLI_INT, "--seed", "-s", &seed, "S", "1", "random seed of the weights", 0, 0x7fffffff},
        {CLI_FLOAT, "--shard-mb", NULL, &shard_mb, "MB", "2000", "largest safetensors shard", 0.001, 1 << 20},
        {CLI_STR, "--tokenizer", NULL, &tok_dir, "DIR", NULL,
         "where to copy tokenizer files from (default: the repository's tests/fixtures/tokenizer)"},
        {CLI_FLAG, "--force", "-f", &force, NULL, NULL, "write into DIR even if it is not empty"},
        {CLI_FLAG, "--quiet", "-q", &quiet, NULL, NULL, "no progress line"},
        {0}};
    const CliSpec spec = {
        .name = "synth",
        .summary = "Writes a checkpoint with random weights and the shapes of a real model (and PEFT adapters), for "
                   "benchmarks",
        .usage = "--like SHAPE -o DIR [--lora NAME=RANK]... [options]",
        .groups = {own}};
    int st;
    if (cli_parse(&spec, argc, argv, &st)) return st;
    Err e = {{0}};
    if (!like) return cli_error("synth: give the shape with --like %s", synth_shape_names());
    const SynthShape *s = synth_shape(like);
    if (!s) return cli_error("--like: unknown shape \"%s\" (expected %s)", like, synth_shape_names());
    if (!dir) return cli_error("synth: give the output folder with -o DIR");
    if (!force && nonempty_dir(dir))
        return cli_error("synth: -o %s: the folder is not empty (choose a new one, or --force to write into it)", dir);

    /* check every --lora before writing gigabytes */
    char names[MAX_SYNTH_LORAS][64];
    int ranks[MAX_SYNTH_LORAS];
    for (int i = 0; i < n_lora; i++) {
        const char *eq = strchr(lora[i], '=');
        char *end;
        long r = eq ? strtol(eq + 1, &end, 10) : 0;
        if (!eq || eq == lora[i] || (size_t)(eq - lora[i]) >= sizeof names[i] || !eq[1] || *end || r < 1 ||
            r > 4096)
            return cli_error("--lora: expected NAME=RANK with a rank from 1 to 4096, got \"%s\"", lora[i]);
        memcpy(names[i], lora[i], (size_t)(eq - lora[i]));
        names[i][eq - lora[i]] = 0;
        if (strchr(names[i], '/')) return cli_error("--lora: the name \"%s\" may not contain '/'", names[i]);
        ranks[i] = (int)r;
    }
    char base[4096];
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    if (len >= sizeof base - 80) return cli_error("-o: path too long");
    memcpy(base, dir, len);
    base[len] = 0;

    double t0 = now_s();
    size_t total = 0;
    SynthBar bar = {base, t0, 0};
    SynthProgress sp = {synth_progress, &bar, 0, 0};
    if (synth_checkpoint(base, s, (uint64_t)seed, (size_t)(shard_mb * 1048576), &total, isatty(2) && !quiet ? &sp : NULL, &e))
        return cli_error("%s", e.msg);
    printf("%s: %s, %.2f GB of bf16 weights in %.1f s\n", base, s->name, total * 1e-9, now_s() - t0);

    char tdir[4096], from[4200], to[4200];
    if (tok_dir || strcmp(s->name, "tiny")) {
        if (tok_dir) snprintf(tdir, sizeof tdir, "%s", tok_dir);
        if (!tok_dir && !default_tokenizer(tdir, sizeof tdir)) {
            fprintf(stderr, "duet: note: no tokenizer found (give --tokenizer DIR): %s has none\n", base);
        } else {
            static const char *const files[] = {"tokenizer.json", "tokenizer_config.json"};
            for (int i = 0; i < 2; i++) {
                snprintf(from, sizeof from, "%s/%s", tdir, files[i]);
                snprintf(to, sizeof to, "%s/%s", base, files[i]);
                if (!file_exists(from)) {
                    if (i == 0) return cli_error("--tokenizer: %s not found", from);
                    continue;
                }
                if (copy_file(from, to, &e)) return cli_error("%s", e.msg);
            }
            printf("%s: tokenizer from %s\n", base, tdir);
        }
    }
    for (int i = 0; i < n_lora; i++) {
        char ldir[4200];
        snprintf(ldir, sizeof ldir, "%s-lora-%s", base, names[i]);
        if (synth_lora(ldir, s, ranks[i], (uint64_t)seed * 1000003u + (uint64_t)i + 7, &e))
            return cli_error("%s", e.msg);
        printf("%s: LoRA rank %d on all 7 projections (use --lora %s=%s)\n", ldir, ranks[i], names[i], ldir);
    }
    return 0;
}
