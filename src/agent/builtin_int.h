/* builtin_int.h - helpers shared by the built-in tools' files (builtin.c,
 * builtin_net.c, builtin_time.c). Each tool returns a malloc'd compact JSON
 * object text (NULL only when out of memory). */
#ifndef DUET_BUILTIN_INT_H
#define DUET_BUILTIN_INT_H

#include <cjson/cJSON.h>

/* Reads ROOT/rel into a malloc'd NUL-terminated string (at most 64 KB);
 * NULL when absent. root "" is the machine's own tree. */
char *builtin_read(const char *root, const char *rel);

/* o printed compactly (malloc'd) and deleted; NULL when out of memory. */
char *builtin_json(cJSON *o);

/* {"error": msg} as text. */
char *builtin_error(const char *msg);

/* Adds a real number as Python's json.dumps prints a float, the form the
 * demo model was trained on: the shortest text that reads back, with ".0"
 * when whole (58.0, 12.3, 0.48); null when not finite. */
void builtin_add_real(cJSON *o, const char *key, double v);

/* get_network_addresses: getifaddrs on the machine; under a sysroot
 * ROOT/proc/net/fib_trie, route and if_inet6. */
char *builtin_network(const char *root, const cJSON *args);

/* get_datetime: the local time; under a sysroot the clock is
 * ROOT/sys/class/rtc/rtc0/since_epoch (else ours) and the zone the TZif file
 * ROOT/etc/localtime (else UTC). */
char *builtin_datetime(const char *root);

#endif
