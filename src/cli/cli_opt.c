/* cli_opt.c - the table-driven option parser, help printer and typo
 * suggestions of cli_opt.h. */
#include "cli/cli_opt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* Levenshtein distance of a and b (each at most 63 bytes compared). */
static int edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63) la = 63;
    if (lb > 63) lb = 63;
    int row[64];
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static const char *undash(const char *s)
{
    while (*s == '-') s++;
    return s;
}

const char *cli_suggest(const char *word, const char *const *names, int n)
{
    const char *best = NULL, *w = undash(word);
    int bd = 1 << 30;
    size_t wl = strlen(w);
    for (int i = 0; i < n; i++) {
        const char *c = undash(names[i]);
        int d = edit_distance(w, c);
        /* a prefix of a longer name ("--max" for "--max-tokens") counts as close */
        if (wl >= 3 && !strncmp(c, w, wl)) d = 1;
        if (d < bd) bd = d, best = names[i];
    }
    int limit = wl <= 4 ? 1 : wl <= 8 ? 2 : 3;
    return bd <= limit ? best : NULL;
}

/* "a|b|c" as "a, b or c" into out. */
static void choices(const char *arg, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = arg; *p && n + 5 < cap; p++) {
        if (*p != '|') {
            out[n++] = *p;
            continue;
        }
        const char *sep = strchr(p + 1, '|') ? ", " : " or ";
        for (; *sep; sep++) out[n++] = *sep;
    }
    out[n] = 0;
}

/* Parses v as opt's value into its destination. 0, or 1 after printing the error. */
static int set_value(const CliOpt *o, const char *v)
{
    char *end;
    switch (o->kind) {
    case CLI_STR:
        *(const char **)o->dst = v;
        return 0;
    case CLI_CHOICE: {
        size_t n = strlen(v);
        for (const char *p = o->arg; p && *p;) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == n && !strncmp(p, v, n)) {
                *(const char **)o->dst = v;
                return 0;
            }
            p = bar ? bar + 1 : p + len;
        }
        char list[256] = "";
        choices(o->arg, list, sizeof list);
        cli_error("%s: expected %s, got \"%s\"", o->name, list, v);
        return 1;
    }
    case CLI_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < o->lo || x > o->hi) {
            cli_error("%s: expected an integer from %.0f to %.0f, got \"%s\"", o->name, o->lo, o->hi, v);
            return 1;
        }
        *(int *)o->dst = (int)x;
        return 0;
    }
    case CLI_FLOAT: {
        double x = strtod(v, &end);
        if (end == v || *end || !isfinite(x) || x < o->lo || x > o->hi) {
            cli_error("%s: expected a number from %g to %g, got \"%s\"", o->name, o->lo, o->hi, v);
            return 1;
        }
        *(double *)o->dst = x;
        return 0;
    }
    case CLI_LIST:
        if (*o->count >= (int)o->hi) {
            cli_error("%s: given more than %d times", o->name, (int)o->hi);
            return 1;
        }
        ((const char **)o->dst)[(*o->count)++] = v;
        return 0;
    case CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case CLI_END:
        break;
    }
    return 1;
}

/* The option named `name` (n bytes), or NULL. */
static const CliOpt *find(const CliSpec *s, const char *name, size_t n)
{
    for (int g = 0; g < CLI_MAX_GROUPS && s->groups[g]; g++)
        for (const CliOpt *o = s->groups[g]; o->kind; o++)
            if ((strlen(o->name) == n && !strncmp(o->name, name, n)) ||
                (o->alias && strlen(o->alias) == n && !strncmp(o->alias, name, n)))
                return o;
    return NULL;
}

/* "duet: error: NAME: unknown option "--x" (did you mean --y?); duet NAME --help lists them" */
static int unknown(const CliSpec *s, const char *arg, size_t n)
{
    const char *names[CLI_MAX_GROUPS * CLI_GROUP_MAX + 2];
    int k = 0;
    for (int g = 0; g < CLI_MAX_GROUPS && s->groups[g]; g++)
        for (const CliOpt *o = s->groups[g]; o->kind && k < (int)(sizeof names / sizeof names[0]) - 1; o++)
            names[k++] = o->name;
    names[k++] = "--help";
    char w[128];
    snprintf(w, sizeof w, "%.*s", (int)(n < 127 ? n : 127), arg);
    const char *sug = cli_suggest(w, names, k);
    if (sug) cli_error("%s: unknown option \"%s\" (did you mean %s?)", s->name, w, sug);
    else cli_error("%s: unknown option \"%s\" (duet %s --help lists the options)", s->name, w, s->name);
    return 1;
}

int cli_parse(const CliSpec *s, int argc, char **argv, int *status)
{
    *status = 1;
    for (int g = 0; g < CLI_MAX_GROUPS && s->groups[g]; g++)
        for (const CliOpt *o = s->groups[g]; o->kind; o++) {
            if (o->kind == CLI_LIST) *o->count = 0;
            else if (o->kind == CLI_FLAG) *(int *)o->dst = 0;
            if (o->def && set_value(o, o->def)) return 1; /* a bad table: shows in every test */
        }
    if (s->pos) *s->pos = NULL;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            cli_help(s, stdout);
            *status = 0;
            return 1;
        }
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1]) {
            const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
            size_t n = eq ? (size_t)(eq - a) : strlen(a);
            const CliOpt *o = find(s, a, n);
            if (!o) return unknown(s, a, n);
            if (o->kind == CLI_FLAG) {
                if (eq) {
                    cli_error("%s takes no value", o->name);
                    return 1;
                }
                *(int *)o->dst = 1;
                continue;
            }
            const char *v = eq ? eq + 1 : NULL;
            if (!v) {
                if (i + 1 >= argc) {
                    cli_error("%s: expected a value (%s)", o->name, o->arg ? o->arg : "VALUE");
                    return 1;
                }
                v = argv[++i];
            }
            if (set_value(o, v)) return 1;
            continue;
        }
        if (!s->pos_name) {
            cli_error("%s: unexpected argument \"%s\" (it takes options only; duet %s --help lists them)", s->name, a,
                      s->name);
            return 1;
        }
        if (*s->pos) {
            cli_error("%s: unexpected argument \"%s\" (%s is already \"%s\")", s->name, a, s->pos_name, *s->pos);
            return 1;
        }
        *s->pos = a;
    }
    if (s->pos && s->pos_required && !*s->pos) {
        cli_error("%s: no %s given (usage: duet %s %s)", s->name, s->pos_name, s->name, s->usage);
        return 1;
    }
    return 0;
}

void cli_help(const CliSpec *s, FILE *f)
{
    fprintf(f, "usage: duet %s %s\n\n%s.\n", s->name, s->usage, s->summary);
    if (s->pos_name) fprintf(f, "\n  %-26s %s\n", s->pos_name, s->pos_help ? s->pos_help : "");
    for (int g = 0; g < CLI_MAX_GROUPS && s->groups[g]; g++) {
        fprintf(f, "\n%s:\n", s->titles[g] ? s->titles[g] : "options");
        for (const CliOpt *o = s->groups[g]; o->kind; o++) {
            char left[96];
            /* a short spelling first ("-v, --verbose"), a long one after ("--temperature, --temp") */
            int short_alias = o->alias && o->alias[1] != '-';
            int n = short_alias ? snprintf(left, sizeof left, "%s, %s", o->alias, o->name)
                    : o->alias  ? snprintf(left, sizeof left, "%s, %s", o->name, o->alias)
                                : snprintf(left, sizeof left, "%s", o->name);
            if (o->kind != CLI_FLAG && n > 0 && (size_t)n < sizeof left)
                snprintf(left + n, sizeof left - (size_t)n, " %s", o->arg ? o->arg : "VALUE");
            if (strlen(left) > 25) fprintf(f, "  %s\n  %-26s ", left, "");
            else fprintf(f, "  %-26s ", left);
            fputs(o->help, f);
            if (o->def) fprintf(f, " (default %s)", o->def);
            if (o->kind == CLI_LIST) fputs(" (repeatable)", f);
            fputc('\n', f);
        }
    }
    fprintf(f, "\n  %-26s %s\n", "-h, --help", "this help");
    if (s->notes) fprintf(f, "\n%s", s->notes);
}
