/* builtin_net.c - get_network_addresses: each interface with its first IPv4
 * and first IPv6 address. On the machine itself from getifaddrs(); under a
 * sysroot from the files the kernel shows the same facts in, so a test fakes
 * them: ROOT/proc/net/fib_trie (local IPv4 addresses), ROOT/proc/net/route
 * (which interface holds each address's network) and ROOT/proc/net/if_inet6
 * (IPv6 addresses by interface). */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/builtin_int.h"

/* The entry of interface `name` in arr, added when new. */
static cJSON *iface_entry(cJSON *arr, const char *name)
{
    cJSON *x;
    cJSON_ArrayForEach(x, arr) if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "name")), name)) return x;
    x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", name);
    cJSON_AddItemToArray(arr, x);
    return x;
}

/* Records addr (text) as the interface's ipv4 / ipv6 unless it has one. */
static void add_addr(cJSON *arr, const char *only, const char *name, const char *key, const char *addr)
{
    if (only && strcmp(only, name)) return;
    cJSON *e = iface_entry(arr, name);
    if (!cJSON_GetObjectItem(e, key)) cJSON_AddStringToObject(e, key, addr);
}

static void from_getifaddrs(cJSON *arr, const char *only, const struct ifaddrs *ifa)
{
    for (const struct ifaddrs *p = ifa; p; p = p->ifa_next) {
        if (!p->ifa_addr || (p->ifa_addr->sa_family != AF_INET && p->ifa_addr->sa_family != AF_INET6)) continue;
        char buf[64];
        int v4 = p->ifa_addr->sa_family == AF_INET;
        const void *a = v4 ? (const void *)&((const struct sockaddr_in *)p->ifa_addr)->sin_addr
                           : (const void *)&((const struct sockaddr_in6 *)p->ifa_addr)->sin6_addr;
        if (inet_ntop(p->ifa_addr->sa_family, a, buf, sizeof buf)) add_addr(arr, only, p->ifa_name, v4 ? "ipv4" : "ipv6", buf);
    }
}

/* The interface of /proc/net/route whose network holds addr (host order),
 * the longest mask winning; 127/8 with no route is the loopback "lo". 0 when
 * none (name untouched). */
static int route_iface(const char *route, unsigned addr, char name[32])
{
    int best = -1;
    const char *line = route ? strchr(route, '\n') : NULL; /* skip the header */
    while (line && *++line) {
        char ifn[32];
        unsigned dst, gw, flags, mask;
        if (sscanf(line, "%31s %x %x %x %*d %*d %*d %x", ifn, &dst, &gw, &flags, &mask) == 5 && mask) {
            /* the file's words are the address bytes in memory order: little-endian */
            unsigned d = ntohl(dst), m = ntohl(mask);
            int bits = __builtin_popcount(m);
            if ((addr & m) == d && bits > best) {
                best = bits;
                snprintf(name, 32, "%s", ifn);
            }
        }
        line = strchr(line, '\n');
    }
    if (best < 0 && (addr >> 24) == 127) {
        snprintf(name, 32, "lo");
        best = 0;
    }
    return best >= 0;
}

static void from_proc(cJSON *arr, const char *only, const char *root)
{
    char *trie = builtin_read(root, "/proc/net/fib_trie"), *route = builtin_read(root, "/proc/net/route");
    char cur[64] = "";
    /* "|-- A.B.C.D" names a key; a following "/32 host LOCAL" makes it one of ours */
    for (char *l = trie; l && *l;) {
        char *end = strchr(l, '\n');
        if (end) *end = 0;
        const char *k = strstr(l, "|-- ");
        if (k) snprintf(cur, sizeof cur, "%s", k + 4);
        else if (cur[0] && strstr(l, "/32 host LOCAL")) {
            struct in_addr a;
            char ifn[32];
            if (inet_pton(AF_INET, cur, &a) == 1 && route_iface(route, ntohl(a.s_addr), ifn))
                add_addr(arr, only, ifn, "ipv4", cur);
        }
        l = end ? end + 1 : NULL;
    }
    free(trie);
    free(route);
    /* if_inet6: 32 hex digits, index, prefix length, scope, flags, name */
    char *v6 = builtin_read(root, "/proc/net/if_inet6");
    for (char *l = v6; l && *l;) {
        char *end = strchr(l, '\n');
        if (end) *end = 0;
        char hex[33], ifn[32];
        unsigned char b[16];
        char buf[64];
        int ok = sscanf(l, "%32[0-9a-fA-F] %*x %*x %*x %*x %31s", hex, ifn) == 2 && strlen(hex) == 32;
        for (int i = 0; ok && i < 16; i++) {
            unsigned x;
            ok = sscanf(hex + 2 * i, "%2x", &x) == 1;
            b[i] = (unsigned char)x;
        }
        if (ok && inet_ntop(AF_INET6, b, buf, sizeof buf)) add_addr(arr, only, ifn, "ipv6", buf);
        l = end ? end + 1 : NULL;
    }
    free(v6);
}

char *builtin_network(const char *root, const cJSON *args)
{
    const char *only = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "interface"));
    if (only && !only[0]) only = NULL;
    cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "interfaces") : NULL;
    if (!arr) {
        cJSON_Delete(o);
        return NULL;
    }
    if (root[0]) {
        from_proc(arr, only, root);
    } else {
        struct ifaddrs *ifa = NULL;
        if (getifaddrs(&ifa)) {
            cJSON_Delete(o);
            return builtin_error("cannot list network interfaces");
        }
        from_getifaddrs(arr, only, ifa);
        freeifaddrs(ifa);
    }
    if (only && cJSON_GetArraySize(arr) == 0) {
        cJSON_Delete(o);
        char msg[200];
        snprintf(msg, sizeof msg, "no such interface: %.100s", only);
        return builtin_error(msg);
    }
    return builtin_json(o);
}
