#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/clock.h"

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("duet: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int *cli_parse_ids(const char *s, int *n, Err *e)
{
    size_t cap = 16;
    int count = 0;
    int *ids = malloc(cap * sizeof *ids);
    const char *p = s;
    while (ids) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff || (*end && *end != ',' && *end != ' ' && *end != '\n')) {
            free(ids);
            err_set(e, "--ids: expected comma-separated non-negative integers, got \"%.40s\"", p);
            return NULL;
        }
        if ((size_t)count == cap) {
            int *nb = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!nb) free(ids);
            ids = nb;
            if (!ids) break;
        }
        ids[count++] = (int)v;
        p = end;
    }
    if (!ids) {
        err_set(e, "out of memory");
        return NULL;
    }
    if (count == 0) {
        free(ids);
        err_set(e, "--ids: expected at least one token id");
        return NULL;
    }
    *n = count;
    return ids;
}

int cli_arg_str(int argc, char **argv, int *i, const char **out, Err *e)
{
    if (*i + 1 >= argc) return err_set(e, "%s: expected a value", argv[*i]);
    *out = argv[++*i];
    return 0;
}

int cli_arg_int(int argc, char **argv, int *i, long *out, long lo, long hi, Err *e)
{
    const char *s = NULL;
    if (cli_arg_str(argc, argv, i, &s, e)) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return err_set(e, "%s: expected an integer in [%ld, %ld], got \"%s\"", argv[*i - 1], lo, hi, s);
    *out = v;
    return 0;
}

int cli_arg_float(int argc, char **argv, int *i, double *out, double lo, double hi, Err *e)
{
    const char *s = NULL;
    if (cli_arg_str(argc, argv, i, &s, e)) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < lo || v > hi)
        return err_set(e, "%s: expected a number in [%g, %g], got \"%s\"", argv[*i - 1], lo, hi, s);
    *out = v;
    return 0;
}

/* 1 if DIR/name exists. */
static int has_file(const char *dir, const char *name)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

int cli_check_model_path(const char *path, const char *want, Err *e)
{
    struct stat st;
    if (stat(path, &st)) return err_set(e, "%s: %s", path, errno == ENOENT ? "no such file or folder" : strerror(errno));
    int dir = S_ISDIR(st.st_mode);
    if (!strcmp(want, "duet")) {
        if (dir) return err_set(e, "%s: is a folder; inspect takes a .duet file (duet compile %s -o FILE.duet makes one)",
                                path, path);
        return 0;
    }
    if (dir && has_file(path, "adapter_config.json") && !has_file(path, "config.json"))
        return err_set(e, "%s: is a PEFT adapter, not a model; give the base model and pass it with --lora %s", path, path);
    if (!strcmp(want, "checkpoint") && !dir)
        return err_set(e, "%s: is a file; compile takes a checkpoint folder (config.json, *.safetensors)%s", path,
                       strlen(path) > 5 && !strcmp(path + strlen(path) - 5, ".duet") ? ": this one is already compiled" : "");
    return 0;
}

int cli_progress_due(double *last, uint64_t done, uint64_t total)
{
    double t = now_s();
    if (done < total && t - *last < 0.1) return 0;
    *last = t;
    fprintf(stderr, "\r\033[K");
    if (done >= total) fflush(stderr);
    return done < total;
}
