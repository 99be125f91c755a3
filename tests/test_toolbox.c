/* test_toolbox.c - tools that run: the built-ins over a fake /proc and /sys
 * tree, command tools (shell metacharacters stay one literal argv element;
 * a hanging tool is killed at its timeout, a flood is cut at the cap, a
 * non-zero exit is reported; malformed files are refused naming the field),
 * and MCP servers over stdio (tools listed across pages, calls, a server that
 * answers garbage, never answers, or dies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
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
    cJSON_Delete(list);
    static const struct {
        const char *name, *args, *want;
    } cases[] = {
        {"get_cpu_temperature", "{}", "{\"sensor\":\"x86_pkg_temp\",\"temperature\":52.1,\"unit\":\"celsius\"}"},
        {"get_cpu_temperature", "{\"unit\":\"fahrenheit\"}", "\"temperature\":125.8,\"unit\":\"fahrenheit\""},
        {"get_load_average", "{}", "{\"load1\":0.52,\"load5\":0.48,\"load15\":0.4,\"cpus\":4}"},
        {"get_memory_usage", "{}", "{\"total_mb\":7812,\"used_mb\":1953,\"available_mb\":5859,\"percent_used\":25}"},
        {"get_uptime", "{}", "{\"seconds\":93784,\"text\":\"1 day, 2 hours, 3 minutes\"}"},
        {"get_hostname", "{}", "{\"hostname\":\"raspberrypi\"}"},
        {"get_top_processes", "{\"count\":1}", "{\"processes\":[{\"pid\":812,\"name\":\"python3\""},
        {"get_top_processes", "{\"sort_by\":\"memory\"}", "\"name\":\"idle one\""},
        {"get_disk_usage", "{\"path\":\"/\"}", "\"path\":\"/\",\"total_gb\":"},
        {"get_datetime", "{}", "\"weekday\":"},
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
             "{\"name\":\"missing\",\"argv\":[\"duet-no-such-program-xyz\"]}]}",
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
    test_commands();
    test_mcp();
    rmtree(tmp);
    return check_summary("toolbox");
}
