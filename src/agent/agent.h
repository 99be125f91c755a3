/* agent.h - what duet_toolbox is made of: the built-in device tools
 * (builtin.c), child processes with a timeout and an output cap (proc.c),
 * and MCP servers over stdio (mcp.c). No shell anywhere: programs run with
 * execve and an argv built element by element. */
#ifndef DUET_AGENT_H
#define DUET_AGENT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/* ---- built-in tools ---- */

/* The built-in tools as OpenAI-form entries (a new JSON array). */
cJSON *builtin_tools(void);

/* Runs built-in tool `name` reading SYSROOT/proc and SYSROOT/sys (sysroot
 * "" or NULL: the machine's). Returns a malloc'd compact JSON object text
 * ({"error": ...} when a source is missing); NULL when out of memory or no
 * built-in has that name (*unknown set). */
char *builtin_call(const char *sysroot, const char *name, const cJSON *args, int *unknown);

/* ---- child processes ---- */

typedef struct ProcResult {
    char *out;          /* stdout and stderr together, NUL-terminated, at most cap bytes */
    size_t len;
    int status;         /* exit code (>= 0), or -signal */
    int timed_out, truncated;
} ProcResult;

/* Runs path with argv / envp (NULL-terminated) in cwd (NULL: ours), stdin
 * from /dev/null, and collects its output up to cap bytes; a child still
 * running after timeout_ms, or writing past the cap, is killed (with its
 * process group). 0, or -1 with *e set when it could not start. */
int proc_run(const char *path, char *const *argv, char *const *envp, const char *cwd, int timeout_ms, size_t cap,
             ProcResult *r, Err *e);
void proc_result_free(ProcResult *r);

/* The program's path: argv0 itself when it has a '/', else the first
 * executable of that name in PATH (ours). malloc'd; NULL with *e set. */
char *proc_find(const char *argv0, Err *e);

/* ---- tool output ---- */

/* s (malloc'd, NUL-terminated) with each invalid UTF-8 piece replaced by
 * U+FFFD as Rust's from_utf8_lossy does, so any bytes a tool printed can go
 * into the prompt; s itself when already valid, else a new string (s is
 * freed). NULL only when out of memory (s freed). */
char *tool_text_fix(char *s);

/* ---- command lines ---- */

/* Splits a command line into an argv, never through a shell: blanks separate
 * words; '...' keeps everything literal; "..." too, except that a backslash
 * escapes \ " $ ` there; a backslash outside quotes escapes the next
 * character; every other character ($ * ~ ; | > ...) is literal. Text that
 * starts with '[' is a JSON array of strings, taken as the argv. Returns one
 * malloc'd block (free() it) holding the NULL-terminated pointers and their
 * strings; NULL with *e set for an empty command or an unterminated quote. */
char **cmdline_split(const char *s, Err *e);

/* ---- MCP servers ---- */

typedef struct McpServer {
    pid_t pid;
    int fd;             /* socket to the server's stdin and stdout */
    char *buf;          /* bytes read and not yet a whole line */
    size_t n, cap;
    int next_id;
    int dead;           /* it exited, closed its output or broke the protocol */
    char *label;        /* the command, for messages */
} McpServer;

/* Starts argv (argv[0] found in PATH), sends initialize (protocol
 * 2025-06-18) and notifications/initialized. 0, or -1 with *e set (the
 * server is stopped then). */
int mcp_start(McpServer *s, const char *const *argv, int timeout_ms, Err *e);

/* tools/list (every page): a new JSON array of the server's tools as
 * OpenAI-form entries (schemas reduced to duet's subset). NULL with *e set. */
cJSON *mcp_list_tools(McpServer *s, int timeout_ms, Err *e);

/* tools/call: the result's text parts joined, malloc'd; *is_error set when
 * the server flagged the result as an error. NULL with *e set when the call
 * failed (timeout, the server died or answered garbage). */
char *mcp_call(McpServer *s, const char *name, const char *args_json, int timeout_ms, size_t cap, int *is_error,
               Err *e);

/* Closes the server's input, waits briefly, then SIGTERM / SIGKILL. */
void mcp_stop(McpServer *s);

#endif
