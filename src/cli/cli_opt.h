/* cli_opt.h - one table per command drives its parsing, its --help and its
 * "did you mean" suggestions, so the three cannot disagree.
 *
 * A command fills a CliSpec: its name, a one-line summary, the usage line,
 * its positional argument, and up to CLI_MAX_GROUPS tables of CliOpt (its own
 * options, and shared groups such as cli_model_opts() and cli_sampling_opts()).
 * Each CliOpt points at the variable it sets; its default (a string, parsed
 * the same way as a value on the command line) is stored there before the
 * command line is read, and shown by --help. cli_parse() then reads argv. */
#ifndef DUET_CLI_OPT_H
#define DUET_CLI_OPT_H

#include <stdio.h>

/* Tables list only the fields an option needs: the others are zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

typedef enum CliKind {
    CLI_END = 0, /* ends a table: {0} */
    CLI_FLAG,    /* no value: sets *(int *)dst = 1 */
    CLI_STR,     /* *(const char **)dst = the value */
    CLI_CHOICE,  /* *(const char **)dst = the value, one of arg's "a|b|c" */
    CLI_INT,     /* *(int *)dst, in [lo, hi] */
    CLI_FLOAT,   /* *(double *)dst, in [lo, hi] */
    CLI_LIST,    /* repeatable: appended to (const char **)dst, *count of them, at most (int)hi */
} CliKind;

typedef struct CliOpt {
    CliKind kind;
    const char *name;  /* "--max-tokens" (or a short one alone, "-o") */
    const char *alias; /* another spelling ("-v"), or NULL */
    void *dst;         /* what it sets (type by kind) */
    const char *arg;   /* the value's name in --help ("N", "DIR"); CLI_CHOICE: "a|b|c" */
    const char *def;   /* the default, stored in dst first and shown; NULL: none */
    const char *help;  /* one line, lower case, no final period */
    double lo, hi;     /* CLI_INT, CLI_FLOAT: the accepted range; CLI_LIST: hi = capacity */
    int *count;        /* CLI_LIST: how many were given */
} CliOpt;

#define CLI_MAX_GROUPS 4
#define CLI_GROUP_MAX 24 /* options in one group table, the {0} included */

typedef struct CliSpec {
    const char *name;      /* "generate" */
    const char *summary;   /* one line, for duet --help */
    const char *usage;     /* what follows "duet NAME " on the usage line */
    const char *pos_name;  /* the positional argument ("MODEL"); NULL: none */
    const char *pos_help;  /* its description */
    const char **pos;      /* where it goes (NULL until given) */
    int pos_required;      /* 1: an error without it */
    const CliOpt *groups[CLI_MAX_GROUPS]; /* NULL-terminated list of tables */
    const char *titles[CLI_MAX_GROUPS];   /* each table's heading in --help */
    const char *notes;     /* extra lines at the end of --help, or NULL */
} CliSpec;

/* Stores the defaults, then reads argv[1..argc-1] (argv[0] is the command's
 * name). "--name value", "--name=value" and "-o value" are accepted.
 * -h / --help prints the help to stdout. Returns 0 when the command should
 * run; 1 when it should stop and return *status (0 after --help; 1 after an
 * error, printed as one line "duet: error: ..." with a suggestion for a
 * misspelt option). */
int cli_parse(const CliSpec *s, int argc, char **argv, int *status);

/* Prints the command's help: usage, summary, positional, every option with
 * its value, description and default. */
void cli_help(const CliSpec *s, FILE *f);

/* The name among names[0..n-1] closest to `word` by edit distance (case
 * kept, leading dashes ignored), when it is close enough to be a typo;
 * NULL otherwise. */
const char *cli_suggest(const char *word, const char *const *names, int n);

#endif
