/* proc.c - run a program without a shell: fork, execve, a timeout and an
 * output cap, the child in its own process group so everything it started
 * is killed with it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

char *proc_find(const char *argv0, Err *e)
{
    if (!argv0 || !argv0[0]) {
        err_set(e, "empty program name");
        return NULL;
    }
    if (strchr(argv0, '/')) {
        if (access(argv0, X_OK)) {
            err_set(e, "%s: not an executable file", argv0);
            return NULL;
        }
        return strdup(argv0);
    }
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        char *full = malloc(n + strlen(argv0) + 2);
        if (!full) break;
        snprintf(full, n + strlen(argv0) + 2, "%.*s/%s", (int)n, path, argv0);
        struct stat st;
        if (n && !stat(full, &st) && S_ISREG(st.st_mode) && !access(full, X_OK)) return full;
        free(full);
        path += n + (end ? 1 : 0);
    }
    err_set(e, "%s: not found in PATH", argv0);
    return NULL;
}

void proc_result_free(ProcResult *r)
{
    free(r->out);
    memset(r, 0, sizeof *r);
}

int proc_run(const char *path, char *const *argv, char *const *envp, const char *cwd, int timeout_ms, size_t cap,
             ProcResult *r, Err *e)
{
    memset(r, 0, sizeof *r);
    if (!(r->out = malloc(cap + 1))) return err_set(e, "out of memory");
    int p[2];
    if (pipe2(p, O_CLOEXEC)) {
        proc_result_free(r);
        return err_set(e, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        proc_result_free(r);
        return err_set(e, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        if (cwd && chdir(cwd)) {
            dprintf(2, "cannot enter %s: %s", cwd, strerror(errno));
            _exit(126);
        }
        execve(path, argv, envp);
        dprintf(2, "cannot run %s: %s", path, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    close(p[1]);
    double deadline = now_ms() + timeout_ms;
    char tmp[4096];
    for (;;) {
        double left = deadline - now_ms();
        if (left <= 0) {
            r->timed_out = 1;
            break;
        }
        struct pollfd pf = {p[0], POLLIN, 0};
        int k = poll(&pf, 1, (int)left + 1);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) continue;
        ssize_t got = read(p[0], tmp, sizeof tmp);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        size_t take = (size_t)got;
        if (r->len + take > cap) {
            take = cap - r->len;
            r->truncated = 1;
        }
        memcpy(r->out + r->len, tmp, take);
        r->len += take;
        if (r->truncated) break;
    }
    close(p[0]);
    int st = 0;
    if (r->timed_out || r->truncated) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    } else {
        /* output closed: the child is exiting; still bound the wait */
        for (;;) {
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) break;
            if (w < 0 && errno != EINTR) break;
            if (now_ms() > deadline) {
                r->timed_out = 1;
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                break;
            }
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
    r->out[r->len] = 0;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -1;
    return 0;
}
