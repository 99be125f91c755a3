#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(Err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int err_prefix(Err *e, const char *fmt, ...)
{
    if (e) {
        char pre[256], old[sizeof e->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pre, sizeof pre, fmt, ap);
        va_end(ap);
        memcpy(old, e->msg, sizeof old);
        size_t n = strlen(pre);
        while (n && (pre[n - 1] == ' ' || pre[n - 1] == ':')) n--; /* the ": " is added here, once */
        if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
        memcpy(e->msg, pre, n);
        memcpy(e->msg + n, ": ", 2);
        size_t room = sizeof e->msg - n - 3;
        size_t m = strlen(old);
        if (m > room) m = room;
        memcpy(e->msg + n + 2, old, m);
        e->msg[n + 2 + m] = 0;
    }
    return -1;
}
