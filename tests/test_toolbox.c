/* test_toolbox.c - tools that run: the built-ins over a fake /proc and /sys
 * tree, command tools (shell metacharacters stay one literal argv element;
 * a hanging tool is killed at its timeout, a flood is cut at the cap, a
 * non-zero exit is reported; malformed files are refused naming the field),
 * and MCP servers over stdio (tools listed across pages, calls, a server that
 * answers garbage, never answers, or dies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "agent/agent.h"
#include "duet.h"

static char tmp[256];

static void write_file(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    for (char *s = p + strlen(tmp) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void test_builtin(void)
{
    write_file("root/sys/class/thermal/thermal_zone0/temp", "38000\n");
    write_file("root/sys/class/thermal/thermal_zone0/type", "acpitz\n");
    write_file("root/sys/class/thermal/thermal_zone1/temp", "52125\n");
    write_file("root/sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n");
    write_file("root/proc/loadavg", "0.52 0.48 0.40 1/123 4567\n");
    write_file("root/proc/cpuinfo", "processor\t: 0\nmodel\t: x\n\nprocessor\t: 1\n\nprocessor\t: 2\n\nprocessor\t: 3\n");
    write_file("root/proc/meminfo", "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    6000000 kB\n");
    write_file("root/proc/uptime", "93784.12 1000.0\n");
    write_file("root/proc/sys/kernel/hostname", "raspberrypi\n");
    write_file("root/proc/812/stat", "812 (python3) S 1 812 812 0 -1 4194304 100 0 0 0 500 250 0 0 20 0 1 0 100 1000000 "
                                     "30000 18446744073709551615\n");
    write_file("root/proc/99/stat", "99 (idle one) S 1 99 99 0 -1 4194304 100 0 0 0 1 1 0 0 20 0 1 0 100 1000000 10 0\n");
    char root[400];
    snprintf(root, sizeof root, "%s/root", tmp);
    duet_toolbox_options o;
    duet_toolbox_options_default(&o);
    o.sysroot = root;
    duet_toolbox *tb = NULL;
    CHECK(duet_toolbox_create(&tb, &o) == DUET_OK && duet_toolbox_add_builtin(tb) == DUET_OK, "builtin toolbox");
    cJSON *list = cJSON_Parse(duet_toolbox_tools_json(tb));
    CHECK(cJSON_GetArraySize(list) == 9, "9 built-in tools listed");
    /* the very list the demo model's tools adapter was trained with */
    FILE *df = fopen("demo/tools.json", "rb");
    if (df) {
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf - 1, df);
        fclose(df);
        buf[n] = 0;
        cJSON *trained = cJSON_Parse(buf);
        char *a = cJSON_PrintUnformatted(list), *b = trained ? cJSON_PrintUnformatted(trained) : NULL;
        CHECK(a && b && !strcmp(a, b), "built-in tools == demo/tools.json, keys in order (train/tools_dialogues.py)");
        free(a);
        free(b);
        cJSON_Delete(trained);
    }
    cJSON_Delete(list);
    static const struct {
        const char *name, *args, *want;
    } cases[] = {
        {"get_cpu_temperature", "{}", "{\"sensor\":\"x86_pkg_temp\",\"temperature\":52.1,\"unit\":\"celsius\"}"},
        {"get_cpu_temperature", "{\"unit\":\"fahrenheit\"}", "\"temperature\":125.8,\"unit\":\"fahrenheit\""},
        {"get_load_average", "{}", "{\"load1\":0.52,\"load5\":0.48,\"load15\":0.4,\"cpus\":4}"},
        {"get_memory_usage", "{}", "{\"total_mb\":7812,\"used_mb\":1953,\"available_mb\":5859,\"percent_used\":25.0}"},
        {"get_uptime", "{}", "{\"seconds\":93784,\"text\":\"1 day, 2 hours, 3 minutes\"}"},
        {"get_hostname", "{}", "{\"hostname\":\"raspberrypi\"}"},
        {"get_top_processes", "{\"count\":1}", "{\"processes\":[{\"pid\":812,\"name\":\"python3\""},
        {"get_top_processes", "{\"sort_by\":\"memory\"}", "\"name\":\"idle one\""},
        {"no_such_tool", "{}", "{\"error\":\"no tool named no_such_tool\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = NULL;
        duet_toolbox_call(tb, cases[i].name, cases[i].args, &r);
        CHECK(r && strstr(r, cases[i].want), "%s(%s) = %s", cases[i].name, cases[i].args, r ? r : "NULL");
        free(r);
    }
    duet_toolbox_free(tb);
    /* a machine with no sensor */
    snprintf(root, sizeof root, "%s/empty", tmp);
    mkdir(root, 0755);
    o.sysroot = root;
    duet_toolbox_create(&tb, &o);
    duet_toolbox_add_builtin(tb);
    char *r = NULL;
    CHECK(duet_toolbox_call(tb, "get_cpu_temperature", "{}", &r) == 1 && r &&
              !strcmp(r, "{\"error\":\"no temperature sensor\"}"), "no sensor: %s", r ? r : "NULL");
    free(r);
    duet_toolbox_free(tb);
}

/* Writes a TZif file: version '1' with the given transitions, or version
 * '2' with none and a footer TZ string. types: (offset, isdst, abbr) x nt. */
static void write_tzif(const char *rel, int version2, const long long *trans, const unsigned char *idx, int ntrans,
                       const long *off, const char *const *abbr, int ntypes, const char *footer)
{
    unsigned char b[1024];
    size_t n = 0;
    char chars[64];
    size_t nc = 0;
    unsigned char desig[8];
    for (int i = 0; i < ntypes; i++) {
        desig[i] = (unsigned char)nc;
        nc += (size_t)snprintf(chars + nc, sizeof chars - nc, "%s", abbr[i]) + 1;
    }
    for (int pass = 0; pass < (version2 ? 2 : 1); pass++) {
        int tsz = pass ? 8 : 4, nt = version2 ? 0 : ntrans;
        memcpy(b + n, "TZif", 4);
        b[n + 4] = version2 ? '2' : 0;
        memset(b + n + 5, 0, 15);
        unsigned cnt[6] = {0, 0, 0, (unsigned)nt, (unsigned)ntypes, (unsigned)nc};
        for (int i = 0; i < 6; i++)
            for (int k = 0; k < 4; k++) b[n + 20 + 4 * i + k] = (unsigned char)(cnt[i] >> (24 - 8 * k));
        n += 44;
        for (int i = 0; i < nt; i++, n += (size_t)tsz)
            for (int k = 0; k < tsz; k++) b[n + k] = (unsigned char)((unsigned long long)trans[i] >> (8 * (tsz - 1 - k)));
        for (int i = 0; i < nt; i++) b[n++] = idx[i];
        for (int i = 0; i < ntypes; i++, n += 6) {
            for (int k = 0; k < 4; k++) b[n + k] = (unsigned char)((unsigned long)off[i] >> (24 - 8 * k));
            b[n + 4] = i > 0;
            b[n + 5] = desig[i];
        }
        memcpy(b + n, chars, nc);
        n += nc;
    }
    if (version2) n += (size_t)snprintf((char *)b + n, sizeof b - n, "\n%s\n", footer);
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    write_file(rel, "");
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

/* The built-ins that read system calls honour the sysroot too: disk usage
 * of a path inside it, network addresses from its /proc/net, the date from
 * its RTC and /etc/localtime; real numbers printed as reals. */
static void test_builtin_sysroot(void)
{
    char root[400], p[600];
    snprintf(root, sizeof root, "%s/fake", tmp);
    write_file("fake/only-here/x", "x");
    write_file("fake/proc/net/fib_trie",
               "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
               "     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.0\n"
               "              /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n"
               "        |-- 127.255.255.255\n           /32 link BROADCAST\n"
               "     |-- 10.1.2.0\n        /24 link UNICAST\n     |-- 10.1.2.3\n        /32 host LOCAL\n"
               "     +-- 192.0.2.0/24 2 0 2\n           |-- 192.0.2.0\n              /24 link UNICAST\n"
               "           |-- 192.0.2.2\n              /32 host LOCAL\n"
               "Local:\n     |-- 192.0.2.2\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n");
    write_file("fake/proc/net/route",
               "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
               "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
               "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
               "wlan0\t0002010A\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n");
    write_file("fake/proc/net/if_inet6", "fd000000000000000000000000000002 04 40 00 82     eth0\n"
                                         "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
                                         "00000000000000000000000000000001 01 80 10 80       lo\n");
    write_file("fake/sys/class/rtc/rtc0/since_epoch", "1783080000\n");
    write_file("fake/sys/class/thermal/thermal_zone0/temp", "70000\n"); /* hotter, but not the CPU */
    write_file("fake/sys/class/thermal/thermal_zone0/type", "acpitz\n");
    write_file("fake/sys/class/thermal/thermal_zone1/temp", "48000\n");
    write_file("fake/sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n");
    write_file("fake/sys/class/thermal/thermal_zone2/temp", "50500\n");
    write_file("fake/sys/class/thermal/thermal_zone2/type", "cpu-thermal\n");
    write_file("hw/sys/class/hwmon/hwmon0/temp1_input", "41000\n");
    write_file("hw/sys/class/hwmon/hwmon0/name", "nvme\n");
    write_file("hw/sys/class/hwmon/hwmon1/temp1_input", "45500\n");
    write_file("hw/sys/class/hwmon/hwmon1/name", "k10temp\n");
    const char *cet[] = {"CET"};
    long cet_off[] = {3600};
    write_tzif("fake/etc/localtime", 1, NULL, NULL, 0, cet_off, cet, 1, "CET-1CEST,M3.5.0,M10.5.0/3");
    duet_toolbox_options o;
    duet_toolbox_options_default(&o);
    o.sysroot = root;
    duet_toolbox *tb = NULL;
    duet_toolbox_create(&tb, &o);
    duet_toolbox_add_builtin(tb);
    static const struct {
        const char *name, *args, *want;
        int exact;
    } cases[] = {
        {"get_network_addresses", "{}",
         "{\"interfaces\":[{\"name\":\"lo\",\"ipv4\":\"127.0.0.1\",\"ipv6\":\"::1\"},{\"name\":\"wlan0\",\"ipv4\":"
         "\"10.1.2.3\"},{\"name\":\"eth0\",\"ipv4\":\"192.0.2.2\",\"ipv6\":\"fd00::2\"}]}", 1},
        {"get_network_addresses", "{\"interface\":\"wlan0\"}", "{\"interfaces\":[{\"name\":\"wlan0\",\"ipv4\":\"10.1.2.3\"}]}", 1},
        {"get_network_addresses", "{\"interface\":\"eth9\"}", "{\"error\":\"no such interface: eth9\"}", 1},
        {"get_datetime", "{}", "{\"date\":\"2026-07-03\",\"time\":\"14:00:00\",\"weekday\":\"Friday\",\"timezone\":\"CEST\"}", 1},
        {"get_disk_usage", "{\"path\":\"/only-here\"}", "{\"path\":\"/only-here\",\"total_gb\":", 0},
        {"get_disk_usage", "{\"path\":\"only-here/x\"}", "{\"path\":\"only-here/x\",\"total_gb\":", 0},
        {"get_disk_usage", "{\"path\":\"/no-such-dir\"}", "{\"error\":\"no such path: /no-such-dir\"}", 1},
        {"get_cpu_temperature", "{}", "{\"sensor\":\"cpu-thermal\",\"temperature\":50.5,\"unit\":\"celsius\"}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = NULL;
        duet_toolbox_call(tb, cases[i].name, cases[i].args, &r);
        int ok = r && (cases[i].exact ? !strcmp(r, cases[i].want) : !strncmp(r, cases[i].want, strlen(cases[i].want)));
        CHECK(ok, "sysroot %s(%s) = %s", cases[i].name, cases[i].args, r ? r : "NULL");
        free(r);
    }
    /* hwmon only: the hottest chip */
    duet_toolbox_options oh = o;
    char hw[400];
    snprintf(hw, sizeof hw, "%s/hw", tmp);
    oh.sysroot = hw;
    duet_toolbox *th = NULL;
    duet_toolbox_create(&th, &oh);
    duet_toolbox_add_builtin(th);
    char *r = NULL;
    duet_toolbox_call(th, "get_cpu_temperature", "{\"unit\":\"fahrenheit\"}", &r);
    CHECK(r && !strcmp(r, "{\"sensor\":\"k10temp\",\"temperature\":113.9,\"unit\":\"fahrenheit\"}"), "hwmon: %s",
          r ? r : "NULL");
    free(r);
    duet_toolbox_free(th);
    /* sizes in GB are reals with one decimal, matching the filesystem's own numbers */
    r = NULL;
    duet_toolbox_call(tb, "get_disk_usage", "{\"path\":\"/only-here\"}", &r);
    struct statvfs v;
    snprintf(p, sizeof p, "%s/only-here", root);
    double total = statvfs(p, &v) ? -1 : (double)v.f_blocks * (double)v.f_frsize / (1024.0 * 1024 * 1024);
    const char *tg = r ? strstr(r, "\"total_gb\":") : NULL;
    double got = tg ? atof(tg + 11) : -2;
    const char *dot = tg ? strchr(tg + 11, '.') : NULL;
    CHECK(tg && dot && dot < strchr(tg, ',') && dot[1] >= '0' && dot[1] <= '9' && dot[2] == ',' && fabs(got - total) <= 0.051,
          "total_gb a real with one decimal, %.3f GB by statvfs: %s", total, r ? r : "NULL");
    free(r);
    duet_toolbox_free(tb);

    /* time zones: POSIX rules both sides of the switch, southern DST, half hours, transitions of a v1 file */
    static const struct {
        const char *footer; /* NULL: v1 file with one transition CET -> CEST at 1774746000 */
        const char *epoch, *want;
    } tz[] = {
        {"CET-1CEST,M3.5.0,M10.5.0/3", "1774745999", "\"2026-03-29\",\"time\":\"01:59:59\",\"weekday\":\"Sunday\",\"timezone\":\"CET\""},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "1774746000", "\"2026-03-29\",\"time\":\"03:00:00\",\"weekday\":\"Sunday\",\"timezone\":\"CEST\""},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "1792890000", "\"2026-10-25\",\"time\":\"02:00:00\",\"weekday\":\"Sunday\",\"timezone\":\"CET\""},
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", "1768000000", "\"2026-01-10\",\"time\":\"10:06:40\",\"weekday\":\"Saturday\",\"timezone\":\"AEDT\""},
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", "1783080000", "\"2026-07-03\",\"time\":\"22:00:00\",\"weekday\":\"Friday\",\"timezone\":\"AEST\""},
        {"IST-5:30", "1783080000", "\"2026-07-03\",\"time\":\"17:30:00\",\"weekday\":\"Friday\",\"timezone\":\"IST\""},
        {"<-03>3", "1768000000", "\"2026-01-09\",\"time\":\"20:06:40\",\"weekday\":\"Friday\",\"timezone\":\"-03\""},
        {NULL, "1774745999", "\"2026-03-29\",\"time\":\"01:59:59\",\"weekday\":\"Sunday\",\"timezone\":\"CET\""},
        {NULL, "1774746000", "\"2026-03-29\",\"time\":\"03:00:00\",\"weekday\":\"Sunday\",\"timezone\":\"CEST\""},
        {"CET-1CEST,M3.5.0", "1774746000", "{\"error\":\"cannot read the time zone"},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "soon", "{\"error\":\"cannot read the clock"},
    };
    const char *two[] = {"CET", "CEST"};
    long two_off[] = {3600, 7200};
    long long trans[] = {1774746000};
    unsigned char idx[] = {1};
    for (size_t i = 0; i < sizeof tz / sizeof tz[0]; i++) {
        if (tz[i].footer) write_tzif("fake/etc/localtime", 1, NULL, NULL, 0, two_off, two, 1, tz[i].footer);
        else write_tzif("fake/etc/localtime", 0, trans, idx, 1, two_off, two, 2, NULL);
        write_file("fake/sys/class/rtc/rtc0/since_epoch", tz[i].epoch);
        duet_toolbox_create(&tb, &o);
        duet_toolbox_add_builtin(tb);
        r = NULL;
        duet_toolbox_call(tb, "get_datetime", "{}", &r);
        CHECK(r && strstr(r, tz[i].want), "zone %s at %s: %s", tz[i].footer ? tz[i].footer : "(v1 transitions)",
              tz[i].epoch, r ? r : "NULL");
        free(r);
        duet_toolbox_free(tb);
    }
}

static void test_commands(void)
{
    char marker[400], file[400];
    snprintf(marker, sizeof marker, "%s/PWNED", tmp);
    char tools[2048];
    snprintf(tools, sizeof tools,
             "{\"tools\": ["
             "{\"name\":\"say\",\"description\":\"Print text.\",\"parameters\":{\"type\":\"object\",\"properties\":"
             "{\"text\":{\"type\":\"string\"},\"n\":{\"type\":\"integer\"}},\"required\":[\"text\"]},"
             "\"argv\":[\"printf\",\"[%%s]\",\"{text}\",\"--n={n}\"],\"env\":[\"PATH\"]},"
             "{\"name\":\"hang\",\"argv\":[\"sleep\",\"30\"],\"timeout_ms\":300},"
             "{\"name\":\"flood\",\"argv\":[\"yes\",\"spam\"]},"
             "{\"name\":\"fail\",\"argv\":[\"ls\",\"%s/no-such-dir\"]},"
             "{\"name\":\"missing\",\"argv\":[\"duet-no-such-program-xyz\"]},"
             "{\"name\":\"binary\",\"argv\":[\"printf\",\"a\\\\377\\\\300b\"]}]}",
             tmp);
    write_file("tools.json", tools);
    snprintf(file, sizeof file, "%s/tools.json", tmp);
    duet_toolbox_options o;
    duet_toolbox_options_default(&o);
    o.output_cap = 4096;
    duet_toolbox *tb = NULL;
    duet_toolbox_create(&tb, &o);
    CHECK(duet_toolbox_add_commands(tb, file) == DUET_OK, "command tools: %s", duet_toolbox_errmsg(tb));
    /* shell metacharacters: one literal argument, nothing interpreted */
    char args[1024];
    snprintf(args, sizeof args, "{\"text\":\"a; touch %s && echo $(id) `id` | cat > /dev/null * ~ \\\\\"}", marker);
    char *r = NULL;
    int rc = duet_toolbox_call(tb, "say", args, &r);
    cJSON *j = r ? cJSON_Parse(r) : NULL;
    const char *out = cJSON_GetStringValue(cJSON_GetObjectItem(j, "output"));
    char want[700];
    snprintf(want, sizeof want, "[a; touch %s && echo $(id) `id` | cat > /dev/null * ~ \\]", marker);
    CHECK(rc == 0 && out && !strcmp(out, want), "metacharacters literal: %s", r ? r : "NULL");
    CHECK(access(marker, F_OK) != 0, "no shell ran: the marker file does not exist");
    cJSON_Delete(j);
    free(r);
    /* an optional argument that is given becomes part of its element */
    duet_toolbox_call(tb, "say", "{\"text\":\"x y\",\"n\":3}", &r);
    CHECK(r && strstr(r, "[x y][--n=3]"), "placeholders inside an element: %s", r ? r : "NULL");
    free(r);
    double t0 = now_s();
    rc = duet_toolbox_call(tb, "hang", "{}", &r);
    double dt = now_s() - t0;
    CHECK(rc == 1 && r && strstr(r, "timed out after 300 ms") && dt < 3, "hang killed in %.2f s: %s", dt, r ? r : "");
    free(r);
    rc = duet_toolbox_call(tb, "flood", "{}", &r);
    j = r ? cJSON_Parse(r) : NULL;
    out = cJSON_GetStringValue(cJSON_GetObjectItem(j, "output"));
    CHECK(r && out && strlen(out) == 4096 && cJSON_GetObjectItem(j, "truncated"), "flood cut at the cap");
    cJSON_Delete(j);
    free(r);
    rc = duet_toolbox_call(tb, "fail", "{}", &r);
    CHECK(rc == 1 && r && strstr(r, "\"error\":\"exited with status 2\"") && strstr(r, "No such file"),
          "non-zero exit reported: %s", r ? r : "");
    free(r);
    rc = duet_toolbox_call(tb, "binary", "{}", &r);
    CHECK(rc == 0 && r && strstr(r, "\"output\":\"a\xef\xbf\xbd\xef\xbf\xbd" "b\""), "bytes that are not UTF-8 replaced: %s",
          r ? r : "");
    free(r);
    rc = duet_toolbox_call(tb, "missing", "{}", &r);
    CHECK(rc == 1 && r && strstr(r, "not found in PATH"), "missing program: %s", r ? r : "");
    free(r);
    duet_toolbox_free(tb);
    /* malformed files */
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"[{\"name\":\"x\",\"argv\":\"ls\"}", "invalid JSON"},
        {"[{\"name\":\"x\",\"argv\":\"ls\"}]", "tools[0]: argv"},
        {"[{\"argv\":[\"ls\"]}]", "tools[0]: name"},
        {"[{\"name\":\"x\",\"argv\":[\"ls\"],\"parameters\":{\"type\":\"object\",\"properties\":{\"p\":{\"pattern\":\"a\"}}}}]",
         "\"pattern\""},
        {"{\"tools\":5}", "expected a JSON array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file("bad.json", bad[i].text);
        snprintf(file, sizeof file, "%s/bad.json", tmp);
        duet_toolbox_create(&tb, NULL);
        rc = duet_toolbox_add_commands(tb, file);
        CHECK(rc < 0 && strstr(duet_toolbox_errmsg(tb), bad[i].want), "bad file %zu: %s", i, duet_toolbox_errmsg(tb));
        duet_toolbox_free(tb);
    }
}

static void test_mcp(void)
{
    if (access("/usr/bin/python3", X_OK)) {
        printf("mcp: skipped (no python3)\n");
        return;
    }
    duet_toolbox_options o;
    duet_toolbox_options_default(&o);
    o.timeout_ms = 8000;
    duet_toolbox *tb = NULL;
    duet_toolbox_create(&tb, &o);
    const char *ok[] = {"python3", "tests/fixtures/mcp/fake_mcp.py", "ok", NULL};
    CHECK(duet_toolbox_add_mcp(tb, ok) == DUET_OK, "MCP server: %s", duet_toolbox_errmsg(tb));
    cJSON *list = cJSON_Parse(duet_toolbox_tools_json(tb));
    CHECK(cJSON_GetArraySize(list) == 2, "both pages of tools/list");
    char *sch = cJSON_PrintUnformatted(list);
    CHECK(sch && !strstr(sch, "format"), "schemas reduced to the subset: %s", sch);
    free(sch);
    cJSON_Delete(list);
    char *r = NULL;
    CHECK(duet_toolbox_call(tb, "echo", "{\"text\":\"hi; rm -rf /\"}", &r) == 0 && r && !strcmp(r, "echo: hi; rm -rf /"),
          "tools/call: %s", r ? r : "");
    free(r);
    CHECK(duet_toolbox_call(tb, "fail", "{}", &r) == 1 && r && strstr(r, "{\"error\":\"it broke\"}"), "isError: %s",
          r ? r : "");
    free(r);
    duet_toolbox_free(tb);

    const char *garbage[] = {"python3", "tests/fixtures/mcp/fake_mcp.py", "garbage", NULL};
    const char *silent[] = {"python3", "tests/fixtures/mcp/fake_mcp.py", "silent", NULL};
    const char *missing[] = {"duet-no-such-mcp-server", NULL};
    const char *const *bad[] = {garbage, silent, missing};
    const char *want[] = {"not a JSON-RPC 2.0 message", "no answer within the timeout", "not found in PATH"};
    for (int i = 0; i < 3; i++) {
        /* python's start on a loaded machine can take a second: the silent one alone gets the short timeout */
        o.timeout_ms = i == 1 ? 1500 : 8000;
        duet_toolbox_create(&tb, &o);
        double t0 = now_s();
        int rc = duet_toolbox_add_mcp(tb, bad[i]);
        CHECK(rc == DUET_ERR_IO && strstr(duet_toolbox_errmsg(tb), want[i]) && now_s() - t0 < o.timeout_ms / 1e3 + 3,
              "bad server %d: %s", i, duet_toolbox_errmsg(tb));
        duet_toolbox_free(tb);
    }
    /* a server that does not answer a call in time: an error result; its late answer is skipped later */
    const char *slow[] = {"python3", "tests/fixtures/mcp/fake_mcp.py", "slow", NULL};
    o.timeout_ms = 3500;
    duet_toolbox_create(&tb, &o);
    CHECK(duet_toolbox_add_mcp(tb, slow) == DUET_OK, "slow server starts: %s", duet_toolbox_errmsg(tb));
    double t0 = now_s();
    CHECK(duet_toolbox_call(tb, "echo", "{\"text\":\"first\"}", &r) == 1 && r && strstr(r, "no answer within the timeout") &&
              now_s() - t0 < 5, "a call past the timeout: %s", r ? r : "");
    free(r);
    CHECK(duet_toolbox_call(tb, "echo", "{\"text\":\"second\"}", &r) == 0 && r && !strcmp(r, "echo: second"),
          "the next call gets its own answer: %s", r ? r : "");
    free(r);
    duet_toolbox_free(tb);
    o.timeout_ms = 8000;
    /* a server that dies in a call: an error result, then the next call fails cleanly too */
    const char *die[] = {"python3", "tests/fixtures/mcp/fake_mcp.py", "die", NULL};
    duet_toolbox_create(&tb, &o);
    CHECK(duet_toolbox_add_mcp(tb, die) == DUET_OK, "dying server starts");
    CHECK(duet_toolbox_call(tb, "echo", "{\"text\":\"x\"}", &r) == 1 && r && strstr(r, "exited"), "server died: %s",
          r ? r : "");
    free(r);
    CHECK(duet_toolbox_call(tb, "echo", "{}", &r) == 1 && r && strstr(r, "not running"), "after death: %s", r ? r : "");
    free(r);
    duet_toolbox_free(tb);
}

/* --mcp "CMD ARG...": quotes as sh reads them, nothing else interpreted */
static void test_cmdline(void)
{
    static const struct {
        const char *in, *want; /* want: words joined by '|', or "ERR:" and a piece of the message */
    } cases[] = {
        {"node server.js stdio", "node|server.js|stdio"},
        {"  '/opt/my server/bin'  --root \"/data dir\" a\\ b\t", "/opt/my server/bin|--root|/data dir|a b"},
        {"x $(id) ; rm -rf * ~ `id` >out", "x|$(id)|;|rm|-rf|*|~|`id`|>out"},
        {"\"a\\\"b\\\\c\\$d\\n\" 'it'\\''s'", "a\"b\\c$d\\n|it's"},
        {"'' x", "|x"},
        {"[\"node\", \"a b\", \"$HOME\"]", "node|a b|$HOME"},
        {"\"abc", "ERR:unterminated \" quote at character 1"},
        {"a 'b", "ERR:unterminated ' quote at character 3"},
        {"x\\", "ERR:a backslash ends"},
        {"  \t", "ERR:empty command"},
        {"[1, 2]", "ERR:JSON array of strings"},
        {"[]", "ERR:JSON array of strings"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Err e = {{0}};
        char **v = cmdline_split(cases[i].in, &e);
        char got[512] = "";
        if (!v) snprintf(got, sizeof got, "ERR:%.400s", e.msg);
        for (int k = 0; v && v[k]; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? "|" : "", v[k]);
        int ok = v ? !strcmp(got, cases[i].want) : !strncmp(cases[i].want, "ERR:", 4) && strstr(got, cases[i].want + 4);
        CHECK(ok, "cmdline_split(%s) = %s (want %s)", cases[i].in, got, cases[i].want);
        free(v);
    }
}

static void rmtree(const char *p)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", p);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/duet-toolbox-XXXXXX", t ? t : "/tmp");
    if (!mkdtemp(tmp)) {
        CHECK(0, "mkdtemp");
        return check_summary("toolbox");
    }
    test_builtin();
    test_builtin_sysroot();
    test_commands();
    test_mcp();
    test_cmdline();
    rmtree(tmp);
    return check_summary("toolbox");
}
