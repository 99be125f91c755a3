#include "check.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

int check_tmpdir(char *buf, size_t size, const char *name)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t) t = "/tmp";
    if ((size_t)snprintf(buf, size, "%s/duet-%s-XXXXXX", t, name) >= size) {
        fprintf(stderr, "check_tmpdir: %s/duet-%s: path too long\n", t, name);
        return -1;
    }
    if (!mkdtemp(buf)) {
        perror(buf);
        return -1;
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    if (rc) perror(path);
    return rc;
}

int check_rmtree(const char *path)
{
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) ? -1 : 0;
}
