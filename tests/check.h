/* check.h - the tiny test harness every tests/test_*.c uses.
 * CHECK records one assertion; check_summary() prints "NAME: N passed, N failed"
 * and returns the exit status. tests/run.sh adds up the lines of all programs.
 * Tests run from the repository root, so fixture paths start "tests/fixtures/". */
#ifndef DUET_CHECK_H
#define DUET_CHECK_H

#include <stdio.h>

typedef struct CheckCount {
    int passed, failed;
} CheckCount;

/* One process-wide counter: the harness is per test program, not library code. */
extern CheckCount check_count;

void check_record(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int check_summary(const char *name);

/* Creates a fresh folder "$TMPDIR/duet-NAME-XXXXXX" (/tmp when TMPDIR is
 * unset) and writes its path to buf. 0, or -1 (message on stderr). */
int check_tmpdir(char *buf, size_t size, const char *name);

/* Removes the folder path and everything under it (what check_tmpdir made).
 * 0, or -1 (message on stderr). */
int check_rmtree(const char *path);

/* How many times slower this build runs than an optimized one: bounds on CPU
 * time (a hostile input must end fast, not hang) are multiplied by it.
 * ASan/UBSan builds at -O1 run 5-10x slower. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHECK_SLOWDOWN 20.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHECK_SLOWDOWN 20.0
#endif
#endif
#ifndef CHECK_SLOWDOWN
#define CHECK_SLOWDOWN 1.0
#endif

#define CHECK(cond, ...) check_record(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#endif
