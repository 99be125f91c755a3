/* session_io.c - a session's context in a file, so a conversation can be
 * resumed without running its prompt again. Layout (little-endian, as the
 * host writes it; version 1):
 *   "DUETSESS"  u32 version  u32 kv_type (0 f32, 1 f16)
 *   u64 model hash  u64 adapter hash (0: base)
 *   i32 n_hist  i32 n_past  i32 n_layers  i32 kv_dim  u64 sampler rng
 *   u32 messages_len, then that many bytes of JSON (0: raw mode)
 *   i32 hist[n_hist]
 *   K then V of each layer: n_past rows of kv_dim elements (f32 or f16)
 *   u64 XXH64 of everything before it */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "api/api_int.h"
#include "load/limits.h"
#include "text/messages.h"

#define SESS_MAGIC "DUETSESS"
#define SESS_VERSION 1u

typedef struct Hdr {
    char magic[8];
    uint32_t version, kv_type;
    uint64_t model_hash, adapter_hash;
    int32_t n_hist, n_past, n_layers, kv_dim;
    uint64_t rng;
    uint32_t msg_len;
    uint32_t pad;
} Hdr;

static uint64_t adapter_hash(const duet_session *s)
{
    return s->adapter >= 0 ? s->md->m.adapters[s->adapter].hash : 0;
}

static size_t row_bytes(const KVCache *kv) { return (size_t)kv->kv_dim * (kv->type == KV_F16 ? 2 : 4); }

/* Writes n bytes and folds them into the checksum; 0 or -1. */
static int put(FILE *f, XXH64_state_t *h, const void *p, size_t n)
{
    XXH64_update(h, p, n);
    return n && fwrite(p, 1, n, f) != n ? -1 : 0;
}

static int get(FILE *f, XXH64_state_t *h, void *p, size_t n)
{
    if (n && fread(p, 1, n, f) != n) return -1;
    XXH64_update(h, p, n);
    return 0;
}

int duet_session_save(duet_session *s, const char *path)
{
    if (!s || !path) return api_serr(s, DUET_ERR_ARG, "session_save: NULL argument");
    char *msgs = s->messages ? cJSON_PrintUnformatted(s->messages) : NULL;
    if (s->messages && !msgs) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    Hdr h = {SESS_MAGIC, SESS_VERSION, s->kv.type == KV_F16, s->md->hash, adapter_hash(s), s->n_hist, s->n_past,
             s->kv.n_layers, s->kv.kv_dim, s->smp.rng, msgs ? (uint32_t)strlen(msgs) : 0, 0};
    FILE *f = fopen(path, "wb");
    XXH64_state_t *x = XXH64_createState();
    int rc = -1;
    if (f && x) {
        XXH64_reset(x, 0);
        rc = put(f, x, &h, sizeof h) || put(f, x, msgs, h.msg_len) ||
             put(f, x, s->hist, (size_t)s->n_hist * sizeof *s->hist);
        size_t rb = row_bytes(&s->kv);
        for (int l = 0; !rc && l < s->kv.n_layers; l++) {
            size_t off = (size_t)l * s->kv.n_ctx * rb;
            rc = put(f, x, (char *)s->kv.k + off, (size_t)s->n_past * rb) ||
                 put(f, x, (char *)s->kv.v + off, (size_t)s->n_past * rb);
        }
        uint64_t sum = XXH64_digest(x);
        if (!rc) rc = fwrite(&sum, sizeof sum, 1, f) != 1;
    }
    if (f && fclose(f)) rc = -1;
    XXH64_freeState(x);
    free(msgs);
    return rc ? api_serr(s, DUET_ERR_IO, "%s: cannot write the session file", path) : DUET_OK;
}

static int load_body(duet_session *s, FILE *f, const char *path, XXH64_state_t *x)
{
    Hdr h;
    if (get(f, x, &h, sizeof h) || memcmp(h.magic, SESS_MAGIC, 8))
        return api_serr(s, DUET_ERR_FORMAT, "%s: not a duet session file", path);
    if (h.version != SESS_VERSION)
        return api_serr(s, DUET_ERR_FORMAT, "%s: session file version %u, expected %u", path, h.version, SESS_VERSION);
    if (h.model_hash != s->md->hash)
        return api_serr(s, DUET_ERR_MISMATCH, "%s: saved with another model (hash %016llx, this model %016llx)", path,
                        (unsigned long long)h.model_hash, (unsigned long long)s->md->hash);
    if (h.adapter_hash != adapter_hash(s))
        return api_serr(s, DUET_ERR_MISMATCH, "%s: saved with another adapter than this session's (%s)", path,
                        s->adapter >= 0 ? s->md->m.adapters[s->adapter].name : "base");
    if (h.kv_type != (uint32_t)(s->kv.type == KV_F16) || h.n_layers != s->kv.n_layers || h.kv_dim != s->kv.kv_dim)
        return api_serr(s, DUET_ERR_MISMATCH, "%s: KV cache type or shape differs from this session's", path);
    if (h.n_hist < 0 || h.n_past < 0 || h.n_past > h.n_hist || h.msg_len > (1u << 30))
        return api_serr(s, DUET_ERR_FORMAT, "%s: bad token counts", path);
    if (h.n_hist > s->o.n_ctx)
        return api_serr(s, DUET_ERR_CONTEXT_FULL, "%s: %d tokens do not fit this session's context of %d", path, h.n_hist,
                        s->o.n_ctx);
    /* the sizes the header gives must add up to the file's: nothing is
     * allocated on a header's word (a 40-byte file claiming 1 GB of messages) */
    struct stat st;
    unsigned long long want = sizeof h + (unsigned long long)h.msg_len + (unsigned long long)h.n_hist * sizeof *s->hist +
                              2ull * (unsigned long long)s->kv.n_layers * (unsigned long long)h.n_past * row_bytes(&s->kv) +
                              sizeof(uint64_t);
    if (fstat(fileno(f), &st) || (unsigned long long)st.st_size != want)
        return api_serr(s, DUET_ERR_FORMAT, "%s: the header's sizes add up to %llu bytes, the file has %lld (truncated or damaged)",
                        path, want, (long long)st.st_size);
    char *msgs = NULL;
    if (h.msg_len) {
        if (!(msgs = malloc(h.msg_len + 1))) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
        if (get(f, x, msgs, h.msg_len)) {
            free(msgs);
            return api_serr(s, DUET_ERR_FORMAT, "%s: truncated", path);
        }
        msgs[h.msg_len] = 0;
        s->messages = strlen(msgs) == h.msg_len ? cJSON_Parse(msgs) : NULL; /* no NUL inside */
        free(msgs);
        Err e;
        char where[4200];
        snprintf(where, sizeof where, "%s: message history", path);
        if (!s->messages) return api_serr(s, DUET_ERR_FORMAT, "%s: message history: not JSON", path);
        if (messages_check(s->messages, where, &e)) return api_serr(s, DUET_ERR_FORMAT, "%s", e.msg);
        if (!s->md->tmpl || !s->md->tok)
            return api_serr(s, DUET_ERR_MISMATCH, "%s: a chat session, but this model has no chat template or tokenizer", path);
    }
    if (get(f, x, s->hist, (size_t)h.n_hist * sizeof *s->hist)) return api_serr(s, DUET_ERR_FORMAT, "%s: truncated", path);
    for (int i = 0; i < h.n_hist; i++)
        if (s->hist[i] < 0 || s->hist[i] >= s->md->m.cfg.vocab_size)
            return api_serr(s, DUET_ERR_FORMAT, "%s: token %d out of range", path, s->hist[i]);
    size_t rb = row_bytes(&s->kv);
    for (int l = 0; l < s->kv.n_layers; l++) {
        size_t off = (size_t)l * s->kv.n_ctx * rb;
        if (get(f, x, (char *)s->kv.k + off, (size_t)h.n_past * rb) || get(f, x, (char *)s->kv.v + off, (size_t)h.n_past * rb))
            return api_serr(s, DUET_ERR_FORMAT, "%s: truncated", path);
    }
    uint64_t sum;
    if (fread(&sum, sizeof sum, 1, f) != 1 || sum != XXH64_digest(x))
        return api_serr(s, DUET_ERR_FORMAT, "%s: checksum mismatch (damaged file)", path);
    /* a valid checksum says nothing about the values: NaN keys or values would poison every answer */
    size_t n_val = (size_t)h.n_past * s->kv.kv_dim;
    for (int l = 0; l < s->kv.n_layers; l++) {
        size_t off = (size_t)l * s->kv.n_ctx * s->kv.kv_dim;
        for (int half = 0; half < 2; half++) {
            const void *base = half ? s->kv.v : s->kv.k;
            size_t bad = s->kv.type == KV_F16 ? limit_first_nonfinite_f16((const uint16_t *)base + off, n_val)
                                              : limit_first_nonfinite((const float *)base + off, n_val);
            if (bad < n_val)
                return api_serr(s, DUET_ERR_FORMAT, "%s: layer %d: cached %s at position %zu holds inf or NaN", path, l,
                                half ? "value" : "key", bad / (size_t)s->kv.kv_dim);
        }
    }
    s->n_hist = h.n_hist;
    s->n_past = h.n_past;
    s->smp.rng = h.rng;
    sampler_reset(&s->smp);
    for (int i = 0; i < s->n_hist; i++) sampler_accept(&s->smp, s->hist[i]);
    return DUET_OK;
}

int duet_session_load(duet_session *s, const char *path)
{
    if (!s || !path) return api_serr(s, DUET_ERR_ARG, "session_load: NULL argument");
    duet_session_clear(s);
    FILE *f = fopen(path, "rb");
    if (!f) return api_serr(s, DUET_ERR_IO, "%s: cannot open", path);
    XXH64_state_t *x = XXH64_createState();
    int rc = x ? (XXH64_reset(x, 0), load_body(s, f, path, x)) : api_serr(s, DUET_ERR_NOMEM, "out of memory");
    XXH64_freeState(x);
    fclose(f);
    if (rc) duet_session_clear(s);
    return rc;
}
