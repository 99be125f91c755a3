/* builtin.c - the read-only device tools of docs/TOOLS.md, from /proc, /sys
 * and a few system calls (under a sysroot for tests, so a test fakes a whole
 * machine). Each returns one compact JSON object; a missing source gives
 * {"error": "..."}. Network addresses and the date are in builtin_net.c and
 * builtin_time.c. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/builtin_int.h"

/* The same names, descriptions and parameters, byte for byte, as the tools
 * list the demo model's tools adapter was trained with (train/tools_dialogues.py
 * tool_list(), demo/tools.json; test_toolbox compares them): a small model
 * calls the right tool most often on the prompt it was trained on. */
static const char *const SPECS =
    "["
    "{\"type\":\"function\",\"function\":{\"name\":\"get_cpu_temperature\",\"description\":\"Returns the "
    "CPU temperature reading of the hottest sensor, in celsius or "
    "fahrenheit.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"unit\":{\"type\":\"string\","
    "\"enum\":[\"celsius\",\"fahrenheit\"],\"description\":\"Temperature unit, celsius (default) or "
    "fahrenheit.\"}},\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_load_average\",\"description\":\"Returns the 1, "
    "5 and 15 minute load averages and the number of "
    "CPUs.\",\"parameters\":{\"type\":\"object\",\"properties\":{},\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_memory_usage\",\"description\":\"Returns total, "
    "used and available memory in MB and the percentage "
    "used.\",\"parameters\":{\"type\":\"object\",\"properties\":{},\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_disk_usage\",\"description\":\"Returns the "
    "total, used and free space in GB of the file system holding a "
    "path.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\","
    "\"description\":\"A directory on the file system to measure (default /).\"}},\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_uptime\",\"description\":\"Returns how long the "
    "machine has been running since it booted.\",\"parameters\":{\"type\":\"object\",\"properties\":{},"
    "\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_datetime\",\"description\":\"Returns the "
    "current local date, time, weekday and time "
    "zone.\",\"parameters\":{\"type\":\"object\",\"properties\":{},\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_hostname\",\"description\":\"Returns the host "
    "name of the machine.\",\"parameters\":{\"type\":\"object\",\"properties\":{},\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_network_addresses\",\"description\":\"Returns "
    "the IPv4 and IPv6 addresses of the network "
    "interfaces.\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"interface\":{\"type\":\"string\",\"description\":\"Interface name such as eth0 or "
    "wlan0 (all when absent).\"}},\"required\":[]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_top_processes\",\"description\":\"Returns the "
    "processes using the most CPU or memory, with their pid, name, CPU percent and memory in "
    "MB.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\","
    "\"minimum\":1,\"maximum\":20,\"description\":\"How many processes (default "
    "5).\"},\"sort_by\":{\"type\":\"string\",\"enum\":[\"cpu\",\"memory\"],\"description\":\"Sort key, "
    "cpu (default) or memory.\"}},\"required\":[]}}}"
    "]";

cJSON *builtin_tools(void) { return cJSON_Parse(SPECS); }

char *builtin_read(const char *root, const char *rel)
{
    char p[4096];
    snprintf(p, sizeof p, "%s%s", root, rel);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *b = malloc(65537);
    size_t n = b ? fread(b, 1, 65536, f) : 0;
    fclose(f);
    if (b) b[n] = 0;
    return b;
}

static double round1(double v) { return round(v * 10) / 10; }

char *builtin_json(cJSON *o)
{
    char *t = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return t;
}

char *builtin_error(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o) cJSON_AddStringToObject(o, "error", msg);
    return builtin_json(o);
}

void builtin_add_real(cJSON *o, const char *key, double v)
{
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char t[64];
    snprintf(t, sizeof t, "%.15g", v); /* values here are rounded: 15 digits read back */
    if (!strpbrk(t, ".e")) strcat(t, ".0");
    cJSON_AddRawToObject(o, key, t);
}

/* Adds a number rounded to one decimal, printed as a real (58.0, 12.3). */
static void add1(cJSON *o, const char *k, double v) { builtin_add_real(o, k, round1(v)); }

static char *cpu_temperature(const char *root, const cJSON *args)
{
    const char *unit = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "unit"));
    int fahr = unit && !strcmp(unit, "fahrenheit");
    double best = NAN;
    char sensor[128] = "";
    int best_rank = -1;
    char dir[4096];
    /* thermal zones: the hottest CPU package / cpu / SoC zone, else the hottest zone */
    snprintf(dir, sizeof dir, "%s/sys/class/thermal", root);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strncmp(de->d_name, "thermal_zone", 12)) continue;
        char rel[512];
        snprintf(rel, sizeof rel, "/sys/class/thermal/%.200s/temp", de->d_name);
        char *t = builtin_read(root, rel);
        snprintf(rel, sizeof rel, "/sys/class/thermal/%.200s/type", de->d_name);
        char *type = builtin_read(root, rel);
        if (t && atof(t) != 0) {
            if (type) type[strcspn(type, "\n")] = 0;
            const char *ty = type ? type : de->d_name;
            int rank = strstr(ty, "pkg") || strstr(ty, "cpu") || strstr(ty, "soc") ? 2 : 1;
            if (rank > best_rank || (rank == best_rank && atof(t) / 1000.0 > best)) {
                best_rank = rank;
                best = atof(t) / 1000.0;
                snprintf(sensor, sizeof sensor, "%.100s", ty);
            }
        }
        free(t);
        free(type);
    }
    if (d) closedir(d);
    if (best_rank < 0) { /* hwmon */
        snprintf(dir, sizeof dir, "%s/sys/class/hwmon", root);
        d = opendir(dir);
        while (d && (de = readdir(d))) { /* the hottest first sensor of each chip */
            if (de->d_name[0] == '.') continue;
            char rel[512];
            snprintf(rel, sizeof rel, "/sys/class/hwmon/%.200s/temp1_input", de->d_name);
            char *t = builtin_read(root, rel);
            snprintf(rel, sizeof rel, "/sys/class/hwmon/%.200s/name", de->d_name);
            char *name = builtin_read(root, rel);
            if (t && (best_rank < 0 || atof(t) / 1000.0 > best)) {
                if (name) name[strcspn(name, "\n")] = 0;
                best = atof(t) / 1000.0;
                best_rank = 0;
                snprintf(sensor, sizeof sensor, "%.100s", name ? name : de->d_name);
            }
            free(t);
            free(name);
        }
        if (d) closedir(d);
    }
    if (best_rank < 0) return builtin_error("no temperature sensor");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sensor", sensor);
    add1(o, "temperature", fahr ? best * 9 / 5 + 32 : best);
    cJSON_AddStringToObject(o, "unit", fahr ? "fahrenheit" : "celsius");
    return builtin_json(o);
}

static int count_cpus(const char *root)
{
    char *c = builtin_read(root, "/proc/cpuinfo");
    int n = 0;
    for (const char *p = c; p && (p = strstr(p, "processor")); p += 9)
        if (p == c || p[-1] == '\n') n++;
    free(c);
    if (n == 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static char *load_average(const char *root)
{
    char *t = builtin_read(root, "/proc/loadavg");
    double a, b, c;
    if (!t || sscanf(t, "%lf %lf %lf", &a, &b, &c) != 3) {
        free(t);
        return builtin_error("cannot read /proc/loadavg");
    }
    free(t);
    cJSON *o = cJSON_CreateObject();
    builtin_add_real(o, "load1", round(a * 100) / 100);
    builtin_add_real(o, "load5", round(b * 100) / 100);
    builtin_add_real(o, "load15", round(c * 100) / 100);
    cJSON_AddNumberToObject(o, "cpus", count_cpus(root));
    return builtin_json(o);
}

static long meminfo_kb(const char *t, const char *key)
{
    const char *p = strstr(t, key);
    return p ? atol(p + strlen(key)) : -1;
}

static char *memory_usage(const char *root)
{
    char *t = builtin_read(root, "/proc/meminfo");
    long total = t ? meminfo_kb(t, "MemTotal:") : -1, avail = t ? meminfo_kb(t, "MemAvailable:") : -1;
    free(t);
    if (total <= 0 || avail < 0) return builtin_error("cannot read /proc/meminfo");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "total_mb", total / 1024);
    cJSON_AddNumberToObject(o, "used_mb", (total - avail) / 1024);
    cJSON_AddNumberToObject(o, "available_mb", avail / 1024);
    add1(o, "percent_used", 100.0 * (double)(total - avail) / (double)total);
    return builtin_json(o);
}

/* Under a sysroot the path is looked up inside it (ROOT/path), so a test
 * knows the filesystem it measures; the result names the path as asked. */
static char *disk_usage(const char *root, const cJSON *args)
{
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "path"));
    if (!path || !path[0]) path = "/";
    char full[4096];
    int n = snprintf(full, sizeof full, "%s%s%s", root, root[0] && path[0] != '/' ? "/" : "", path);
    struct statvfs v;
    char msg[400];
    if (n < 0 || (size_t)n >= sizeof full) {
        snprintf(msg, sizeof msg, "path too long: %.200s...", path);
        return builtin_error(msg);
    }
    if (statvfs(full, &v)) {
        if (errno == ENOENT || errno == ENOTDIR) snprintf(msg, sizeof msg, "no such path: %.300s", path);
        else snprintf(msg, sizeof msg, "cannot read the filesystem of %.300s: %s", path, strerror(errno));
        return builtin_error(msg);
    }
    double g = 1024.0 * 1024 * 1024, fr = (double)v.f_frsize;
    double total = (double)v.f_blocks * fr / g, used = (double)(v.f_blocks - v.f_bfree) * fr / g,
           avail = (double)v.f_bavail * fr / g;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    add1(o, "total_gb", total);
    add1(o, "used_gb", used);
    add1(o, "free_gb", avail);
    add1(o, "percent_used", used + avail > 0 ? 100.0 * used / (used + avail) : 0);
    return builtin_json(o);
}

static double uptime_s(const char *root)
{
    char *t = builtin_read(root, "/proc/uptime");
    double u = t ? atof(t) : -1;
    free(t);
    return u;
}

static char *uptime(const char *root)
{
    double u = uptime_s(root);
    if (u < 0) return builtin_error("cannot read /proc/uptime");
    long s = (long)u, d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
    char text[128] = "";
    size_t n = 0;
    if (d) n += (size_t)snprintf(text + n, sizeof text - n, "%ld day%s", d, d == 1 ? "" : "s");
    if (h) n += (size_t)snprintf(text + n, sizeof text - n, "%s%ld hour%s", n ? ", " : "", h, h == 1 ? "" : "s");
    if (m || !n) snprintf(text + n, sizeof text - n, "%s%ld minute%s", n ? ", " : "", m, m == 1 ? "" : "s");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seconds", (double)s);
    cJSON_AddStringToObject(o, "text", text);
    return builtin_json(o);
}

static char *hostname(const char *root)
{
    char *t = builtin_read(root, "/proc/sys/kernel/hostname");
    char h[256] = "";
    if (t) snprintf(h, sizeof h, "%s", t);
    else gethostname(h, sizeof h - 1);
    free(t);
    h[strcspn(h, "\n")] = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "hostname", h);
    return builtin_json(o);
}

typedef struct Proc {
    int pid;
    char name[64];
    double cpu, mem;
} Proc;

static int by_cpu(const void *a, const void *b)
{
    const Proc *x = a, *y = b;
    return x->cpu < y->cpu ? 1 : x->cpu > y->cpu ? -1 : x->pid - y->pid;
}
static int by_mem(const void *a, const void *b)
{
    const Proc *x = a, *y = b;
    return x->mem < y->mem ? 1 : x->mem > y->mem ? -1 : x->pid - y->pid;
}

static char *top_processes(const char *root, const cJSON *args)
{
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(args, "count");
    int count = cJSON_IsNumber(cn) ? (int)cn->valuedouble : 5;
    if (count < 1) count = 1;
    if (count > 20) count = 20;
    const char *sort = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "sort_by"));
    int mem = sort && !strcmp(sort, "memory");
    double up = uptime_s(root), hz = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/proc", root);
    DIR *d = opendir(dir);
    if (!d) return builtin_error("cannot read /proc");
    Proc *ps = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
        char rel[300];
        snprintf(rel, sizeof rel, "/proc/%.100s/stat", de->d_name);
        char *st = builtin_read(root, rel);
        char *l = st ? strchr(st, '(') : NULL, *r = st ? strrchr(st, ')') : NULL;
        if (!l || !r || r < l) {
            free(st);
            continue;
        }
        unsigned long long ut = 0, stt = 0, start = 0;
        long rss = 0;
        /* fields after ") ": state(3) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24) */
        if (sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %*u %ld",
                   &ut, &stt, &start, &rss) != 4) {
            free(st);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            Proc *np = realloc(ps, (size_t)cap * sizeof *np);
            if (!np) {
                free(st);
                break;
            }
            ps = np;
        }
        Proc *p = &ps[n++];
        p->pid = atoi(de->d_name);
        snprintf(p->name, sizeof p->name, "%.*s", (int)(r - l - 1), l + 1);
        double life = up - (double)start / hz;
        p->cpu = life > 0 ? 100.0 * (double)(ut + stt) / hz / life : 0;
        p->mem = (double)rss * page / (1024.0 * 1024.0);
        free(st);
    }
    closedir(d);
    qsort(ps, (size_t)n, sizeof *ps, mem ? by_mem : by_cpu);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "processes");
    for (int i = 0; i < n && i < count; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "pid", ps[i].pid);
        cJSON_AddStringToObject(e, "name", ps[i].name);
        add1(e, "cpu_percent", ps[i].cpu);
        add1(e, "memory_mb", ps[i].mem);
        cJSON_AddItemToArray(arr, e);
    }
    free(ps);
    return builtin_json(o);
}

char *builtin_call(const char *sysroot, const char *name, const cJSON *args, int *unknown)
{
    const char *root = sysroot ? sysroot : "";
    *unknown = 0;
    if (!strcmp(name, "get_cpu_temperature")) return cpu_temperature(root, args);
    if (!strcmp(name, "get_load_average")) return load_average(root);
    if (!strcmp(name, "get_memory_usage")) return memory_usage(root);
    if (!strcmp(name, "get_disk_usage")) return disk_usage(root, args);
    if (!strcmp(name, "get_uptime")) return uptime(root);
    if (!strcmp(name, "get_datetime")) return builtin_datetime(root);
    if (!strcmp(name, "get_hostname")) return hostname(root);
    if (!strcmp(name, "get_network_addresses")) return builtin_network(root, args);
    if (!strcmp(name, "get_top_processes")) return top_processes(root, args);
    *unknown = 1;
    return NULL;
}
