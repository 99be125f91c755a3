#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
