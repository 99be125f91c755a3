/* cli.h - the duet command: one cmd_NAME(argc, argv) per subcommand, each in
 * its own file, returning the process exit status. argv[0] is the subcommand
 * name. Errors go to stderr as one line "duet: error: ..." (cli_error). */
#ifndef DUET_CLI_H
#define DUET_CLI_H

#include <stddef.h>

#include "util/err.h"

int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_template(int argc, char **argv);

/* Prints "duet: error: MSG" on stderr and returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses "1,2,3" (commas or spaces) into a malloc'd int array; NULL with *e
 * set on a malformed list or an empty one. */
int *cli_parse_ids(const char *s, int *n, Err *e);

/* Option value helpers: parse argv[*i + 1] as the value of option argv[*i],
 * advancing *i. Return 0, or -1 with *e set ("--top-k: expected an integer"). */
int cli_arg_str(int argc, char **argv, int *i, const char **out, Err *e);
int cli_arg_int(int argc, char **argv, int *i, long *out, long lo, long hi, Err *e);
int cli_arg_float(int argc, char **argv, int *i, double *out, double lo, double hi, Err *e);

#endif
