/* test_hostile_files.c - duet against hostile .duet and session files:
 * non-finite weights planted in a .duet, a .duet with 80,000 tensors,
 * sampling ids the tokenizer lacks, session files of another model or
 * adapter, bad packed scales of the super-block types and bad 8-bit LoRA
 * tensors. Each case plants one flaw in a file made from the tiny fixture
 * (checksums recomputed) and checks the status and the message that names
 * it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "duet.h"
#include "duet_image.h"
#include "hostile.h"
#include "util/clock.h"

static char tmp[256];

static char *path_in(const char *name) { return hostile_path(tmp, name); }

static int compile_with(const char *base, const char *spec, const char *quant, const char *out, char *err, size_t n)
{
    return hostile_compile(base, spec, quant, out, err, n);
}

/* ---------------------------------------------------------------- .duet files */

#include <xxhash.h>

/* Writes img with the f32 value x planted at every element of tensor `name`
 * (first n values, or all when n is 0) and checksums recomputed; returns the path. */
static const char *plant(const unsigned char *img, size_t len, const char *name, size_t first, size_t n, float x,
                         float mul, const char *out)
{
    unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
    memcpy(cp, img, len);
    cJSON *meta = duet_image_meta(cp, len);
    long long off = duet_image_tensor(meta, name, "data");
    if (off < 0) {
        CHECK(0, "no tensor %s", name);
    } else {
        for (size_t i = first; i < first + n; i++) {
            float v;
            memcpy(&v, cp + off + 4 * i, 4);
            v = mul ? v * mul : x;
            memcpy(cp + off + 4 * i, &v, 4);
        }
    }
    size_t nl;
    unsigned char *b = duet_image_build(cp, len, meta, &nl);
    const char *p = path_in(out);
    if (!b || duet_image_write(p, b, nl)) CHECK(0, "cannot write %s", p);
    free(b);
    free(cp);
    cJSON_Delete(meta);
    return p;
}

typedef struct Toks {
    int v[64];
    int n;
} Toks;

static int grab(void *user, const char *piece, size_t len, int token)
{
    (void)piece;
    (void)len;
    Toks *d = user;
    if (token >= 0 && d->n < 64) d->v[d->n++] = token;
    return 0;
}

static int gen_ids(duet_model *m, float temp, int *out, int n, int *finish, char *msg, size_t mn)
{
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 64;
    o.max_tokens = n;
    o.ignore_eos = 1;
    o.temperature = temp;
    duet_session *s;
    if (duet_session_create(m, &o, &s)) return 0;
    duet_session_append_tokens(s, hostile_prompt, HOSTILE_NP);
    *finish = duet_generate(s, NULL, NULL);
    snprintf(msg, mn, "%s", duet_session_errmsg(s));
    int got = duet_session_n_tokens(s) - HOSTILE_NP;
    (void)out;
    duet_session_close(s);
    return got;
}

static void test_duet_files(const char *duet)
{
    size_t len;
    unsigned char *img = duet_image_read(duet, &len);
    if (!img) {
        CHECK(0, "read %s", duet);
        return;
    }
    char err[512], msg[512];
    duet_model *m = NULL;
    /* the helper itself: an untouched rebuild opens */
    const char *same = plant(img, len, "final_norm", 0, 0, 0, 0, "same.duet");
    int rc = duet_model_open(&m, same, NULL, err, sizeof err);
    CHECK(rc == DUET_OK, "rebuilt image opens: %s", err);
    duet_model_close(m);
    m = NULL;

    /* a NaN norm weight: refused at open, naming the tensor */
    const char *p = plant(img, len, "layers.1.ffn_norm", 5, 1, NAN, 0, "nan-norm.duet");
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "layers.1.ffn_norm") && strstr(err, "non-finite"), "NaN norm: %d %s", rc, err);
    duet_model_close(m);
    m = NULL;
    p = plant(img, len, "embed", 1000, 1, INFINITY, 0, "inf-embed.duet");
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, "\"embed\""), "inf in the embedding: %d %s", rc, err);
    duet_model_close(m);
    m = NULL;

    /* finite weights that overflow at run time: a clear error, greedy or sampled */
    p = plant(img, len, "final_norm", 0, 48, 3e38f, 0, "overflow.duet");
    if ((rc = duet_model_open(&m, p, NULL, err, sizeof err)) != DUET_OK) {
        CHECK(0, "open overflow.duet: %s", err);
    } else {
        int fin = 0, ids[8];
        gen_ids(m, 0, ids, 4, &fin, msg, sizeof msg);
        CHECK(fin == DUET_ERR_FORMAT && strstr(msg, "non-finite logits"), "overflowing weights, greedy: %d %s", fin, msg);
        gen_ids(m, 0.8f, ids, 4, &fin, msg, sizeof msg);
        CHECK(fin == DUET_ERR_FORMAT && strstr(msg, "non-finite logits"), "overflowing weights, sampled: %d %s", fin, msg);
    }
    duet_model_close(m);
    m = NULL;

    /* the padded embedding rows (no token): made the likeliest, never sampled */
    p = plant(img, len, "embed", (size_t)N_TOKENS * 48, (size_t)(VOCAB - N_TOKENS) * 48, 0, 1e3f, "padded.duet");
    if ((rc = duet_model_open(&m, p, NULL, err, sizeof err)) != DUET_OK) {
        CHECK(0, "open padded.duet: %s", err);
    } else {
        for (int t = 0; t < 2; t++) {
            duet_session_options o;
            duet_session_options_default(&o);
            o.n_ctx = 64;
            o.max_tokens = 6;
            o.ignore_eos = 1;
            o.temperature = t ? 1.0f : 0;
            duet_session *s;
            if (duet_session_create(m, &o, &s)) break;
            duet_session_append_tokens(s, hostile_prompt, HOSTILE_NP);
            Toks g = {{0}, 0};
            int fin = duet_generate(s, grab, &g), pad = 0;
            for (int i = 0; i < g.n; i++) pad += g.v[i] >= N_TOKENS;
            CHECK(fin == DUET_FINISH_LENGTH && g.n == 6 && pad == 0, "padded rows at temperature %d: %d of %d ids without a token (%d)",
                  t, pad, g.n, fin);
            duet_session_close(s);
        }
    }
    duet_model_close(m);
    m = NULL;

    /* no tensors and no blobs at all (found by fuzz_duet_run: qsort of no regions was given NULL): refused */
    {
        unsigned char *c0 = aligned_alloc(64, (len + 63) / 64 * 64);
        memcpy(c0, img, len);
        cJSON *m0 = duet_image_meta(c0, len);
        cJSON_ReplaceItemInObjectCaseSensitive(m0, "tensors", cJSON_CreateArray());
        cJSON_ReplaceItemInObjectCaseSensitive(m0, "blobs", cJSON_CreateObject());
        size_t l0;
        unsigned char *b0 = duet_image_build(c0, len, m0, &l0);
        if (b0) duet_image_write(path_in("empty.duet"), b0, l0);
        rc = b0 ? duet_model_open(&m, path_in("empty.duet"), NULL, err, sizeof err) : -100;
        CHECK(rc == DUET_ERR_FORMAT && !m, "a .duet without tensors or blobs: %d %s", rc, err);
        duet_model_close(m);
        m = NULL;
        free(b0);
        free(c0);
        cJSON_Delete(m0);
    }

    /* 80,000 tensors: refused in well under a second (it took 52 s) */
    unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
    memcpy(cp, img, len);
    cJSON *meta = duet_image_meta(cp, len);
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(meta, "tensors");
    long long off = duet_image_tensor(meta, "final_norm", "data");
    for (int i = 0; i < 80000; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "extra.%d", i);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", nm);
        cJSON_AddStringToObject(t, "type", "f32");
        cJSON_AddNumberToObject(t, "rows", 1);
        cJSON_AddNumberToObject(t, "cols", 16);
        cJSON_AddNumberToObject(t, "data", (double)off);
        cJSON_AddNumberToObject(t, "data_size", 64);
        cJSON_AddItemToArray(ts, t);
    }
    size_t nl;
    unsigned char *b = duet_image_build(cp, len, meta, &nl);
    p = path_in("many.duet");
    duet_image_write(p, b, nl);
    free(b);
    free(cp);
    cJSON_Delete(meta);
    double t0 = now_s();
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    double dt = now_s() - t0;
    CHECK(rc == DUET_ERR_FORMAT && dt < 3.0, "80,000 tensors refused in %.2f s: %s", dt, err);
    duet_model_close(m);
    m = NULL;

    /* an adapter name with an escape sequence, checksums recomputed: refused, escaped */
    cp = aligned_alloc(64, (len + 63) / 64 * 64);
    memcpy(cp, img, len);
    meta = duet_image_meta(cp, len);
    cJSON *ad = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(meta, "adapters"), 0);
    if (ad) cJSON_ReplaceItemInObjectCaseSensitive(ad, "name", cJSON_CreateString("x\x1b]0;owned\x07"));
    b = duet_image_build(cp, len, meta, &nl);
    p = path_in("esc.duet");
    duet_image_write(p, b, nl);
    free(b);
    free(cp);
    cJSON_Delete(meta);
    rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(ad && rc == DUET_ERR_FORMAT && strstr(err, "adapter name") && !strchr(err, 0x1b), "ESC in a .duet adapter name: %d %s",
          rc, err);
    duet_model_close(m);
    free(img);
}

/* ---------------------------------------------------------------- sessions, identity */

/* A session file rebuilt from a saved raw one (64-byte header, no messages):
 * messages json (NULL: none) inserted, the first cached key set to key0
 * (when not 0), the checksum recomputed. Returns the path. */
static const char *sess_variant(const char *saved, const char *msgs, float key0, const char *out)
{
    size_t n;
    unsigned char *b = duet_image_read(saved, &n);
    if (!b || n < 72) return NULL;
    uint32_t ml = msgs ? (uint32_t)strlen(msgs) : 0, old_ml;
    memcpy(&old_ml, b + 56, 4);
    size_t body = n - 8 - 64 - old_ml, len = 64 + ml + body + 8;
    unsigned char *o = malloc(len);
    memcpy(o, b, 64);
    memcpy(o + 56, &ml, 4);
    if (ml) memcpy(o + 64, msgs, ml);
    memcpy(o + 64 + ml, b + 64 + old_ml, body);
    int32_t n_hist;
    memcpy(&n_hist, o + 32, 4);
    if (key0 != 0) { /* f16 cache: the first key element */
        uint16_t h = key0 != key0 ? 0x7e00 : 0x7c00;
        memcpy(o + 64 + ml + 4 * (size_t)n_hist, &h, 2);
    }
    uint64_t sum = XXH64(o, len - 8, 0);
    memcpy(o + len - 8, &sum, 8);
    const char *p = path_in(out);
    duet_image_write(p, o, len);
    free(o);
    free(b);
    return p;
}

static void test_sessions(const char *duet)
{
    char err[512];
    duet_model *a = NULL, *b = NULL;
    /* B: the same file with one weight of layer 0's q_proj changed */
    size_t len;
    unsigned char *img = duet_image_read(duet, &len);
    const char *other = img ? plant(img, len, "layers.0.q_proj", 7, 1, 0.123f, 0, "other.duet") : NULL;
    free(img);
    if (!other || duet_model_open(&a, duet, NULL, err, sizeof err) || duet_model_open(&b, other, NULL, err, sizeof err)) {
        CHECK(0, "open the two models: %s", err);
        duet_model_close(a);
        return;
    }
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 64;
    o.max_tokens = 2;
    duet_session *sa = NULL, *sb = NULL;
    duet_session_create(a, &o, &sa);
    duet_session_create(b, &o, &sb);
    duet_session_append_tokens(sa, hostile_prompt, HOSTILE_NP);
    duet_generate(sa, NULL, NULL);
    char fbuf[512]; /* path_in's buffers are reused */
    snprintf(fbuf, sizeof fbuf, "%s", path_in("a.sess"));
    const char *f = fbuf;
    CHECK(duet_session_save(sa, f) == DUET_OK, "save: %s", duet_session_errmsg(sa));
    int rc = duet_session_load(sb, f);
    CHECK(rc == DUET_ERR_MISMATCH, "a session of model A into B (one weight differs): %d %s", rc, duet_session_errmsg(sb));
    CHECK(duet_session_load(sa, f) == DUET_OK, "into A itself: %s", duet_session_errmsg(sa));

    /* damaged content behind a valid checksum */
    struct {
        const char *msgs, *want;
        float key0;
    } cases[] = {
        {"[1,2,3]", "message 0", 0},
        {"[]", "non-empty", 0},
        {"[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]", "UTF-8", 0},
        {"[{\"role\":\"hacker\",\"content\":\"x\"}]", "role", 0},
        {"[{\"role\":\"user\"}]", "content", 0},
        {NULL, "inf or NaN", NAN},
        {NULL, "inf or NaN", INFINITY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "bad%zu.sess", i);
        const char *p = sess_variant(f, cases[i].msgs, cases[i].key0, nm);
        rc = p ? duet_session_load(sa, p) : -100;
        CHECK(rc == DUET_ERR_FORMAT && strstr(duet_session_errmsg(sa), cases[i].want), "session file %s: %d %s",
              cases[i].msgs ? cases[i].msgs : "with a non-finite key", rc, duet_session_errmsg(sa));
        CHECK(duet_session_n_tokens(sa) == 0, "a refused file leaves the session cleared");
    }
    { /* a header claiming 1 GB of messages in a small file (valid checksum): refused before any allocation */
        size_t n;
        unsigned char *sb2 = duet_image_read(f, &n);
        uint32_t big = 1u << 30;
        if (sb2 && n > 72) {
            memcpy(sb2 + 56, &big, 4);
            uint64_t sum = XXH64(sb2, n - 8, 0);
            memcpy(sb2 + n - 8, &sum, 8);
            duet_image_write(path_in("huge.sess"), sb2, n);
            rc = duet_session_load(sa, path_in("huge.sess"));
            CHECK(rc == DUET_ERR_FORMAT && strstr(duet_session_errmsg(sa), "add up to 10737"),
                  "1 GB of messages claimed by a %zu-byte file: %d %s", n, rc, duet_session_errmsg(sa));
        }
        free(sb2);
    }
    const char *good = sess_variant(f, "[{\"role\":\"user\",\"content\":\"hi\"}]", 0, "good.sess");
    rc = duet_session_load(sa, good);
    CHECK(rc == DUET_OK, "a valid chat history loads: %s", duet_session_errmsg(sa));

    /* append_message: unknown roles and bad UTF-8 */
    duet_session_clear(sa);
    CHECK(duet_session_append_message(sa, "hacker", "x") == DUET_ERR_ARG, "unknown role refused");
    CHECK(duet_session_append_message(sa, "us\xffr", "x") == DUET_ERR_ARG, "role with invalid UTF-8 refused");
    CHECK(duet_session_append_message(sa, "user", "bad \xc0\x80") == DUET_ERR_UTF8, "content with an overlong refused");
    duet_session_close(sa);
    duet_session_close(sb);
    duet_model_close(a);
    duet_model_close(b);
}

/* The image cp (len bytes) rebuilt with meta (checksums recomputed) and
 * written as path_in(file): opening it must fail with DUET_ERR_FORMAT and a
 * message holding want and want2 (what: the case, for the report). Frees
 * cp and meta. */
static void expect_refused(unsigned char *cp, size_t len, cJSON *meta, const char *file, const char *want,
                           const char *want2, const char *what)
{
    char err[512];
    size_t nl;
    unsigned char *b = duet_image_build(cp, len, meta, &nl);
    const char *p = path_in(file);
    if (!b || duet_image_write(p, b, nl)) CHECK(0, "cannot write %s", p);
    duet_model *m = NULL;
    int rc = duet_model_open(&m, p, NULL, err, sizeof err);
    CHECK(rc == DUET_ERR_FORMAT && strstr(err, want) && strstr(err, want2), "%s: %d %s", what, rc, err);
    duet_model_close(m);
    free(b), free(cp);
    cJSON_Delete(meta);
}

/* BASE (+ the adapter spec, or NULL) compiled at quant into path_in(name)
 * and read back whole (len bytes, malloc'd); NULL after a failed CHECK. */
static unsigned char *compiled_image(const char *spec, const char *quant, const char *name, size_t *len)
{
    char err[512], duet[512]; /* path_in's buffers are reused */
    snprintf(duet, sizeof duet, "%s", path_in(name));
    if (compile_with(BASE, spec, quant, duet, err, sizeof err)) {
        CHECK(0, "compile %s: %s", quant, err);
        return NULL;
    }
    unsigned char *img = duet_image_read(duet, len);
    CHECK(img != NULL, "read %s", duet);
    return img;
}

/* A super-block .duet whose packed scales are bad: an infinite D, a D whose
 * product with a sub-scale overflows f16, and the type in a version-2 file;
 * each refused at open, naming the tensor or the version. */
static void test_super_files(void)
{
    size_t len;
    unsigned char *img = compiled_image(NULL, "iq4k", "tiny-iq4k.duet", &len);
    if (!img) return;
    static const struct {
        uint16_t w[4];
        int version;
        const char *want, *what;
    } cases[] = {
        {{0x7c00, 0, 0, 0}, 3, "block scale", "an infinite D"},
        {{0x7bff, 32, 0, 0}, 3, "block scale", "D * -32 overflowing f16"},
        {{0x3c00, 1, 0, 0}, 2, "needs format version 3", "a version-2 file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
        memcpy(cp, img, len);
        cJSON *meta = duet_image_meta(cp, len);
        long long off = duet_image_tensor(meta, "layers.0.up_proj", "scales");
        CHECK(off >= 0, "no scales of layers.0.up_proj");
        if (off >= 0) memcpy(cp + off, cases[i].w, 8);
        cp[8] = (unsigned char)cases[i].version;
        cJSON_ReplaceItemInObject(meta, "version", cJSON_CreateNumber(cases[i].version));
        expect_refused(cp, len, meta, "bad-super.duet", cases[i].want, cases[i].version < 3 ? "" : "layers.0.up_proj",
                       cases[i].what);
    }
    free(img);
}

/* The name of the first tensor in meta whose name starts with pre and ends
 * with suf, or NULL. */
static const char *tensor_like(const cJSON *meta, const char *pre, const char *suf)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(meta, "tensors"))
    {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(t, "name"));
        size_t ln = n ? strlen(n) : 0, ls = strlen(suf);
        if (n && !strncmp(n, pre, strlen(pre)) && ln >= ls && !strcmp(n + ln - ls, suf)) return n;
    }
    return NULL;
}

/* A q4 .duet whose adapter is stored in q8 (the default there): refused in
 * a version-3 file, with an infinite scale, and with B's shape swapped;
 * each at open, naming the tensor or the version. */
static void test_lora8_files(void)
{
    char spec[600];
    snprintf(spec, sizeof spec, "alpha=%s", ALPHA);
    size_t len;
    unsigned char *img = compiled_image(spec, "q4", "tiny-lora8.duet", &len);
    cJSON *m0 = img ? duet_image_meta(img, len) : NULL;
    const char *a0 = m0 ? tensor_like(m0, "lora.alpha.", ".A") : NULL;
    const char *b0 = m0 ? tensor_like(m0, "lora.alpha.", ".B") : NULL;
    cJSON *bt = NULL, *t, *ts = m0 ? cJSON_GetObjectItem(m0, "tensors") : NULL;
    cJSON_ArrayForEach(t, ts)
    if (b0 && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")), b0)) bt = t;
    CHECK(a0 && b0 && bt && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(bt, "type")), "q8"),
          "the q4 file stores its adapter's B as q8");
    if (!a0 || !b0 || !bt) {
        cJSON_Delete(m0), free(img);
        return;
    }
    char an[128], bn[128];
    snprintf(an, sizeof an, "%s", a0);
    snprintf(bn, sizeof bn, "%s", b0);
    for (int c = 0; c < 3; c++) {
        unsigned char *cp = aligned_alloc(64, (len + 63) / 64 * 64);
        memcpy(cp, img, len);
        cJSON *meta = duet_image_meta(cp, len);
        const char *want = "needs format version 4", *name = "", *what = "an 8-bit LoRA in a version-3 file";
        if (c == 0) {
            cp[8] = 3;
            cJSON_ReplaceItemInObject(meta, "version", cJSON_CreateNumber(3));
        } else if (c == 1) {
            long long off = duet_image_tensor(meta, an, "scales");
            uint16_t inf = 0x7c00;
            if (off >= 0) memcpy(cp + off, &inf, 2);
            want = "non-finite", name = an, what = "an infinite scale in an 8-bit A";
        } else { /* B's rows and columns swapped: not in blocks of 32 output rows */
            cJSON_ArrayForEach(t, cJSON_GetObjectItem(meta, "tensors"))
            if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t, "name")), bn)) {
                int r = cJSON_GetObjectItem(t, "rows")->valueint, o = cJSON_GetObjectItem(t, "cols")->valueint;
                cJSON_ReplaceItemInObject(t, "rows", cJSON_CreateNumber(o));
                cJSON_ReplaceItemInObject(t, "cols", cJSON_CreateNumber(r));
            }
            want = "", name = bn, what = "an 8-bit B of the wrong shape";
        }
        expect_refused(cp, len, meta, "bad-lora8.duet", want, name, what);
    }
    cJSON_Delete(m0);
    free(img);
}

int main(void)
{
    if (check_tmpdir(tmp, sizeof tmp, "hostile-files")) {
        CHECK(0, "cannot make a temporary folder");
        return check_summary("hostile_files");
    }
    char err[512], spec[600];
    snprintf(spec, sizeof spec, "alpha=%s", ALPHA);
    char duet[512]; /* path_in's buffers are reused */
    snprintf(duet, sizeof duet, "%s", path_in("tiny-f32.duet"));
    if (compile_with(BASE, spec, "f32", duet, err, sizeof err)) CHECK(0, "compile: %s", err);
    else {
        test_duet_files(duet);
        test_sessions(duet);
    }
    test_super_files();
    test_lora8_files();
    check_rmtree(tmp);
    return check_summary("hostile_files");
}
