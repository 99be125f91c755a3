#include "check.h"

#include <stdarg.h>

CheckCount check_count;

void check_record(int ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        check_count.passed++;
        return;
    }
    check_count.failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_count.passed, check_count.failed);
    return check_count.failed ? 1 : 0;
}
