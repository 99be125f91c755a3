/* bench_tokenizer.c - load time of tokenizer.json and single-thread encode
 * speed. Build (after `make build/libduet.a`), from the repository root:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc bench/bench_tokenizer.c build/libduet.a \
 *      -lcjson -lpcre2-8 -lutf8proc -lxxhash -lm -pthread -o build/bench_tokenizer
 *
 * Run: build/bench_tokenizer [TOKENIZER_JSON [TEXT_FILE [CHUNK_BYTES]]]
 * Defaults: the fixture tokenizer.json and, as English text, the GPL-3 case
 * of tests/fixtures/tokenizer/golden.json. The text is encoded in calls of
 * CHUNK_BYTES (default 1 MiB, cut at a line end), each call with its own
 * fresh cache, repeated for at least one second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"
#include "util/json.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: steadier than wall time on a shared machine */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the longest text in golden.json (the GPL-3), malloc'd */
static char *golden_text(size_t *len, Err *e)
{
    cJSON *g = json_parse_file("tests/fixtures/tokenizer/golden.json", e);
    if (!g) return NULL;
    const cJSON *c;
    const char *best = "";
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        const cJSON *t = cJSON_GetObjectItem(c, "text");
        if (cJSON_IsString(t) && strlen(t->valuestring) > strlen(best)) best = t->valuestring;
    }
    char *s = strdup(best);
    *len = strlen(s);
    cJSON_Delete(g);
    return s;
}

int main(int argc, char **argv)
{
    const char *tok_path = argc > 1 ? argv[1] : "tests/fixtures/tokenizer/tokenizer.json";
    size_t chunk = argc > 3 ? (size_t)atol(argv[3]) : 1 << 20;
    Err e = {{0}};
    double best_load = 1e9, best_load_cpu = 1e9;
    Tokenizer *t = NULL;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s(), c0 = cpu_s();
        Tokenizer *nt = tokenizer_load_file(tok_path, &e);
        double dt = now_s() - t0, dc = cpu_s() - c0;
        if (dc < best_load_cpu) best_load_cpu = dc;
        if (!nt) {
            fprintf(stderr, "bench_tokenizer: %s\n", e.msg);
            return 1;
        }
        if (dt < best_load) best_load = dt;
        tokenizer_free(t);
        t = nt;
    }
    size_t len;
    char *text = argc > 2 ? file_read(argv[2], &len, &e) : golden_text(&len, &e);
    if (!text) {
        fprintf(stderr, "bench_tokenizer: %s\n", e.msg);
        return 1;
    }
    size_t bytes = 0, tokens = 0;
    double t0 = now_s(), c0 = cpu_s(), dt;
    do {
        for (size_t off = 0; off < len;) {
            size_t n = len - off < chunk ? len - off : chunk;
            while (off + n < len && n > 1 && text[off + n - 1] != '\n') n--;
            int *ids, ni;
            if (tokenizer_encode(t, text + off, n, &ids, &ni, &e) < 0) {
                fprintf(stderr, "bench_tokenizer: %s\n", e.msg);
                return 1;
            }
            free(ids);
            tokens += (size_t)ni;
            bytes += n;
            off += n;
        }
        dt = now_s() - t0;
    } while (dt < 1.0);
    double dc = cpu_s() - c0;
    printf("load %s: %.3f s wall, %.3f s CPU (best of 5)\n", tok_path, best_load, best_load_cpu);
    printf("encode: %zu bytes of text in calls of up to %zu bytes: %.1f MB/s wall, %.1f MB/s CPU, %.2f M tokens/s, "
           "%.2f bytes/token\n",
           len, chunk, bytes / dt / 1e6, bytes / dc / 1e6, tokens / dt / 1e6, (double)bytes / (double)tokens);
    free(text);
    tokenizer_free(t);
    return 0;
}
