/* builtin_time.c - get_datetime: the local date, time, weekday and zone.
 * On the machine itself libc's localtime_r(). Under a sysroot nothing of the
 * machine is used: the clock is ROOT/sys/class/rtc/rtc0/since_epoch (the
 * real clock when absent) and the zone the TZif file ROOT/etc/localtime
 * (RFC 8536: its transitions, then the POSIX TZ rule of its footer; UTC
 * when absent), so a test fakes a device in any zone at any time. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/builtin_int.h"

typedef struct Zone {
    long off;           /* seconds east of UTC */
    char abbr[16];      /* "CEST", "UTC", "+0530" */
} Zone;

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static int64_t be64(const unsigned char *p) { return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4)); }

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Hinnant's algorithm). */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int leap(long long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* ---- POSIX TZ strings ("CET-1CEST,M3.5.0,M10.5.0/3") ---- */

static const char *tz_name(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    if (*p == '<') {
        for (p++; *p && *p != '>'; p++)
            if (n + 1 < cap) out[n++] = *p;
        if (*p != '>') return NULL;
        p++;
    } else {
        for (; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'); p++)
            if (n + 1 < cap) out[n++] = *p;
    }
    out[n] = 0;
    return n >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] as seconds; NULL when malformed. */
static const char *tz_time(const char *p, long *sec)
{
    int neg = *p == '-';
    if (*p == '+' || *p == '-') p++;
    if (*p < '0' || *p > '9') return NULL;
    long h = strtol(p, (char **)&p, 10), m = 0, s = 0;
    if (*p == ':') m = strtol(p + 1, (char **)&p, 10);
    if (*p == ':') s = strtol(p + 1, (char **)&p, 10);
    if (h > 167 || m > 59 || s > 59) return NULL;
    *sec = (neg ? -1 : 1) * (h * 3600 + m * 60 + s);
    return p;
}

typedef struct Rule {
    char kind;          /* 'M', 'J' (1..365, no Feb 29) or 'D' (0..365) */
    int m, w, d;        /* M: month, week (5 = last), weekday (0 = Sunday); J/D: day in d */
    long time;          /* seconds after local midnight */
} Rule;

static const char *tz_rule(const char *p, Rule *r)
{
    r->time = 7200;
    if (*p == 'M') {
        char *e;
        r->kind = 'M';
        r->m = (int)strtol(p + 1, &e, 10);
        if (*e != '.') return NULL;
        r->w = (int)strtol(e + 1, &e, 10);
        if (*e != '.') return NULL;
        r->d = (int)strtol(e + 1, &e, 10);
        if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6) return NULL;
        p = e;
    } else {
        char *e;
        r->kind = *p == 'J' ? 'J' : 'D';
        if (*p == 'J') p++;
        if (*p < '0' || *p > '9') return NULL;
        r->d = (int)strtol(p, &e, 10);
        if (r->d > 365 || (r->kind == 'J' && r->d < 1)) return NULL;
        p = e;
    }
    if (*p == '/') p = tz_time(p + 1, &r->time);
    return p;
}

/* The UTC time at which rule r fires in year y, local offset off before it. */
static long long rule_utc(const Rule *r, long long y, long off)
{
    long long day;
    if (r->kind == 'M') {
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        long long first = days_from_civil(y, r->m, 1);
        int wd1 = (int)(((first + 4) % 7 + 7) % 7), len = mdays[r->m - 1] + (r->m == 2 && leap(y));
        int dom = 1 + (r->d - wd1 + 7) % 7 + 7 * (r->w - 1);
        while (dom > len) dom -= 7;
        day = first + dom - 1;
    } else {
        day = days_from_civil(y, 1, 1) + r->d - (r->kind == 'J') + (r->kind == 'J' && leap(y) && r->d >= 60);
    }
    return day * 86400 + r->time - off;
}

/* The zone of a POSIX TZ string at UTC time t; -1 when it is not one. */
static int tz_zone(const char *s, long long t, Zone *z)
{
    char std[16], dst[16];
    long stdoff, dstoff;
    const char *p = tz_name(s, std, sizeof std);
    if (!p || !(p = tz_time(p, &stdoff))) return -1;
    stdoff = -stdoff; /* POSIX offsets count west */
    z->off = stdoff;
    snprintf(z->abbr, sizeof z->abbr, "%s", std);
    if (!*p) return 0;
    if (!(p = tz_name(p, dst, sizeof dst))) return -1;
    dstoff = stdoff + 3600;
    if (*p && *p != ',') {
        if (!(p = tz_time(p, &dstoff))) return -1;
        dstoff = -dstoff;
    }
    Rule a, b;
    if (*p++ != ',' || !(p = tz_rule(p, &a)) || *p++ != ',' || !(p = tz_rule(p, &b)) || *p) return -1;
    time_t lt = (time_t)(t + stdoff);
    struct tm tm;
    if (!gmtime_r(&lt, &tm)) return -1;
    long long y = tm.tm_year + 1900LL, start = rule_utc(&a, y, stdoff), end = rule_utc(&b, y, dstoff);
    int in_dst = start < end ? t >= start && t < end : !(t >= end && t < start);
    if (in_dst) {
        z->off = dstoff;
        snprintf(z->abbr, sizeof z->abbr, "%s", dst);
    }
    return 0;
}

/* ---- TZif files ---- */

/* The zone of TZif data b[0..n) at UTC time t; -1 when malformed. */
static int tzif_zone(const unsigned char *b, size_t n, long long t, Zone *z)
{
    if (n < 44 || memcmp(b, "TZif", 4)) return -1;
    size_t at = 0, tsz = 4;
    uint32_t c[6]; /* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
    for (int pass = 0; pass < 2; pass++) {
        if (at + 44 > n || memcmp(b + at, "TZif", 4)) return -1;
        for (int i = 0; i < 6; i++) {
            c[i] = be32(b + at + 20 + 4 * i);
            if (c[i] > 100000) return -1;
        }
        if (c[4] == 0 || c[5] == 0) return -1;
        size_t body = c[3] * tsz + c[3] + c[4] * 6 + c[5] + c[2] * (tsz + 4) + c[1] + c[0];
        if (at + 44 + body > n) return -1;
        if (pass == 1 || b[4] < '2') break;
        at += 44 + body; /* version 2+: the 64-bit block follows the 32-bit one */
        tsz = 8;
    }
    const unsigned char *tt = b + at + 44, *idx = tt + c[3] * tsz, *types = idx + c[3], *chars = types + c[4] * 6;
    size_t end = at + 44 + c[3] * tsz + c[3] + c[4] * 6 + c[5] + c[2] * (tsz + 4) + c[1] + c[0];
    char footer[128] = "";
    if (tsz == 8 && end < n && b[end] == '\n') {
        const unsigned char *nl = memchr(b + end + 1, '\n', n - end - 1);
        if (nl && (size_t)(nl - b - end - 1) < sizeof footer) snprintf(footer, sizeof footer, "%.*s", (int)(nl - b - end - 1), b + end + 1);
    }
    long long last = -1;
    for (uint32_t i = 0; i < c[3]; i++) {
        long long ti = tsz == 8 ? be64(tt + 8 * i) : (int32_t)be32(tt + 4 * i);
        if (ti <= t) last = i;
    }
    if (footer[0] && (c[3] == 0 || last == (long long)c[3] - 1)) return tz_zone(footer, t, z);
    unsigned type = last < 0 ? 0 : idx[last];
    if (type >= c[4]) return -1;
    const unsigned char *ty = types + 6 * type;
    z->off = (int32_t)be32(ty);
    if (ty[5] >= c[5]) return -1;
    snprintf(z->abbr, sizeof z->abbr, "%.*s", (int)strnlen((const char *)chars + ty[5], c[5] - ty[5]), chars + ty[5]);
    return 0;
}

static char *format(time_t local, const char *zone)
{
    struct tm tm;
    if (!gmtime_r(&local, &tm)) return builtin_error("the clock is out of range");
    char date[32], tim[32], wd[32];
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    strftime(tim, sizeof tim, "%H:%M:%S", &tm);
    strftime(wd, sizeof wd, "%A", &tm);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "date", date);
    cJSON_AddStringToObject(o, "time", tim);
    cJSON_AddStringToObject(o, "weekday", wd);
    cJSON_AddStringToObject(o, "timezone", zone);
    return builtin_json(o);
}

char *builtin_datetime(const char *root)
{
    time_t now = time(NULL);
    if (!root[0]) {
        struct tm tm;
        localtime_r(&now, &tm);
        return format(now + tm.tm_gmtoff, tm.tm_zone ? tm.tm_zone : "UTC");
    }
    char *rtc = builtin_read(root, "/sys/class/rtc/rtc0/since_epoch");
    if (rtc) {
        char *e;
        long long v = strtoll(rtc, &e, 10);
        int bad = e == rtc || v < 0 || v > 253402300799LL; /* up to year 9999 */
        free(rtc);
        if (bad) return builtin_error("cannot read the clock: /sys/class/rtc/rtc0/since_epoch is not a number of seconds");
        now = (time_t)v;
    }
    Zone z = {0, "UTC"};
    char p[4096];
    snprintf(p, sizeof p, "%s/etc/localtime", root);
    FILE *f = fopen(p, "rb");
    if (f) {
        unsigned char *b = malloc(1 << 20);
        size_t n = b ? fread(b, 1, 1 << 20, f) : 0;
        fclose(f);
        int bad = !b || tzif_zone(b, n, (long long)now, &z);
        free(b);
        if (bad) return builtin_error("cannot read the time zone: /etc/localtime is not a TZif file");
    }
    return format(now + z.off, z.abbr);
}
