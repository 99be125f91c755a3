/* test_session.c - duet_session through duet.h: clear, adapter switch
 * (re-prefill), save / restore round trip, chat messages with prefix reuse,
 * stop strings, abort, and bad input (unknown adapter, context overflow,
 * invalid UTF-8, NULL handles, KV budget, damaged or mismatched files). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "duet.h"
#include "golden.h"

static char scratch[256]; /* a check_tmpdir folder for session files */

static const int prompt[] = {151644, 872, 198, 3838, 374, 279, 13940, 2730, 30, 151645, 198, 151644, 77091, 198};
#define NP ((int)(sizeof prompt / sizeof prompt[0]))

typedef struct Ids {
    int v[256];
    int n;
} Ids;

static int grab(void *user, const char *piece, size_t len, int token)
{
    (void)piece;
    (void)len;
    Ids *d = user;
    if (token >= 0 && d->n < 256) d->v[d->n++] = token;
    return 0;
}

static duet_session *mk(duet_model *m, const char *adapter, float temp, int max_tokens)
{
    duet_session_options o;
    duet_session_options_default(&o);
    o.adapter = adapter;
    o.n_ctx = 256;
    o.temperature = temp;
    o.seed = 7;
    o.max_tokens = max_tokens;
    o.ignore_eos = 1;
    duet_session *s = NULL;
    if (duet_session_create(m, &o, &s)) printf("create: %s\n", duet_model_errmsg(m));
    return s;
}

static Ids gen(duet_session *s)
{
    Ids d = {{0}, 0};
    duet_generate(s, grab, &d);
    return d;
}

static int same(const Ids *a, const Ids *b) { return a->n == b->n && !memcmp(a->v, b->v, sizeof(int) * a->n); }

static void test_clear_switch_save(duet_model *m)
{
    duet_session *a = mk(m, "alpha", 0, 8), *b = mk(m, NULL, 0, 8);
    if (!a || !b) return;
    duet_session_append_tokens(a, prompt, NP);
    Ids ref = gen(a);
    CHECK(ref.n == 8 && duet_session_n_tokens(a) == NP + 8, "alpha: 8 tokens, %d in context", duet_session_n_tokens(a));
    duet_session_clear(a);
    CHECK(duet_session_n_tokens(a) == 0 && duet_session_n_ctx(a) == 256, "clear empties the context");
    duet_session_append_tokens(a, prompt, NP);
    Ids again = gen(a);
    CHECK(same(&ref, &again), "after clear: the same tokens");

    /* base session switched to alpha after its prompt was run: re-prefill */
    duet_session_append_tokens(b, prompt, NP);
    Ids base = gen(b);
    CHECK(!same(&base, &ref), "base and alpha differ");
    CHECK(duet_session_set_adapter(b, "alpha") == DUET_OK, "switch to alpha");
    Ids sw = gen(b); /* the kept prompt + base tokens prefilled again with alpha */
    duet_session *c = mk(m, "alpha", 0, 8);
    duet_session_append_tokens(c, prompt, NP);
    duet_session_append_tokens(c, base.v, base.n);
    Ids want = gen(c);
    CHECK(sw.n == 8 && same(&sw, &want), "after the switch: alpha's tokens for the kept context");
    duet_session_close(c);
    CHECK(duet_session_set_adapter(b, "gamma") == DUET_ERR_NOT_FOUND && strstr(duet_session_errmsg(b), "gamma"),
          "unknown adapter on switch: %s", duet_session_errmsg(b));
    duet_session_close(b);

    /* save / restore with sampling: the same next tokens */
    duet_session *s = mk(m, "beta", 0.9f, 8), *r = mk(m, "beta", 0.9f, 8), *x = mk(m, "alpha", 0.9f, 8);
    duet_session_append_tokens(s, prompt, NP);
    gen(s);
    char f[300], missing[300];
    snprintf(f, sizeof f, "%s/test_session.sess", scratch);
    snprintf(missing, sizeof missing, "%s/no-such.sess", scratch);
    CHECK(duet_session_save(s, f) == DUET_OK, "save: %s", duet_session_errmsg(s));
    Ids next = gen(s);
    CHECK(duet_session_load(r, f) == DUET_OK, "load: %s", duet_session_errmsg(r));
    CHECK(duet_session_n_tokens(r) == NP + 8, "restored %d tokens", duet_session_n_tokens(r));
    Ids rnext = gen(r);
    CHECK(next.n == 8 && same(&next, &rnext), "restored session continues with the same tokens");
    CHECK(duet_session_load(x, f) == DUET_ERR_MISMATCH, "restore into another adapter: %s", duet_session_errmsg(x));
    /* a damaged file */
    FILE *fp = fopen(f, "r+b");
    if (fp) {
        fseek(fp, 200, SEEK_SET);
        fputc(0x5a, fp);
        fclose(fp);
    }
    CHECK(duet_session_load(r, f) == DUET_ERR_FORMAT && duet_session_n_tokens(r) == 0, "damaged file: %s",
          duet_session_errmsg(r));
    CHECK(duet_session_load(r, missing) == DUET_ERR_IO, "missing file");
    duet_session_close(s);
    duet_session_close(r);
    duet_session_close(x);

    /* abort before generate: the next generation stops at once */
    duet_session_clear(a);
    duet_session_append_tokens(a, prompt, NP);
    duet_session_abort(a);
    CHECK(duet_generate(a, NULL, NULL) == DUET_FINISH_ABORT, "abort");
    duet_session_close(a);
}

static void test_chat(duet_model *m)
{
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 512;
    o.max_tokens = 12;
    duet_session *s;
    if (duet_session_create(m, &o, &s)) return;
    CHECK(duet_session_append_message(s, "system", "You are a helpful assistant.") == DUET_OK &&
              duet_session_append_message(s, "user", "What is the capital of France?") == DUET_OK,
          "messages: %s", duet_session_errmsg(s));
    char *t1 = NULL, *t2 = NULL;
    int rc = duet_generate_all(s, &t1);
    duet_stats st1, st2;
    duet_session_stats(s, &st1);
    CHECK(rc >= 0 && t1, "chat turn 1: rc %d %s", rc, duet_session_errmsg(s));
    duet_session_append_message(s, "user", "And of Spain?");
    int before = duet_session_n_tokens(s);
    rc = duet_generate_all(s, &t2);
    duet_session_stats(s, &st2);
    CHECK(rc >= 0 && t2, "chat turn 2");
    CHECK(st2.n_prompt < duet_session_n_tokens(s) - st2.n_gen && st2.n_prompt < before, "turn 2 reuses the cached prefix (ran %d of %d)",
          st2.n_prompt, duet_session_n_tokens(s) - st2.n_gen);
    printf("chat: turn 1 %d prompt tokens, turn 2 %d (of %d)\n", st1.n_prompt, st2.n_prompt,
           duet_session_n_tokens(s) - st2.n_gen);
    /* the history as JSON: both turns with the replies; set back without the last turn it renders as before it */
    char *h = duet_session_messages_json(s);
    CHECK(h && strstr(h, "\"role\":\"system\"") && strstr(h, "And of Spain?") &&
              strstr(h, "\"role\":\"assistant\""),
          "messages_json: %s", h ? h : "(null)");
    char *cut = h ? strstr(h, ",{\"role\":\"user\",\"content\":\"And of Spain?\"") : NULL;
    if (cut) strcpy(cut, "]");
    CHECK(cut && duet_session_set_messages(s, h) == DUET_OK, "set_messages back to turn 1: %s", duet_session_errmsg(s));
    char *h1 = duet_session_messages_json(s);
    CHECK(h1 && h && !strcmp(h1, h), "messages_json after set_messages: %s", h1 ? h1 : "(null)");
    free(h);
    free(h1);
    duet_session_options ro;
    duet_session_options_default(&ro);
    duet_session *raw;
    if (!duet_session_create(m, &ro, &raw)) {
        CHECK(!duet_session_messages_json(raw), "messages_json in raw mode: NULL");
        duet_session_close(raw);
    }
    free(t1);
    free(t2);
    CHECK(duet_session_append_message(s, "user", "bad \xff\xfe") == DUET_ERR_UTF8, "invalid UTF-8: %s",
          duet_session_errmsg(s));
    CHECK(duet_session_append_tokens(s, prompt, 2) == DUET_ERR_STATE, "raw tokens in chat mode refused");
    /* the template helper */
    char *txt = NULL;
    CHECK(duet_apply_template(m, "[{\"role\":\"user\",\"content\":\"hi\"}]", 1, &txt) == DUET_OK && txt &&
              strstr(txt, "<|im_start|>user\nhi<|im_end|>") && strstr(txt, "<|im_start|>assistant\n"),
          "apply_template");
    free(txt);
    CHECK(duet_apply_template(m, "{not json", 1, &txt) == DUET_ERR_ARG, "apply_template: bad JSON");
    duet_session_close(s);
}

static void test_stop_string(duet_model *m)
{
    duet_session *s = mk(m, NULL, 0, 24);
    duet_session_append_tokens(s, prompt, NP);
    char *all = NULL;
    duet_generate_all(s, &all);
    if (!all || strlen(all) < 6) {
        CHECK(0, "stop string: no reference text");
        free(all);
        duet_session_close(s);
        return;
    }
    char stop[4];
    memcpy(stop, all + 4, 3);
    stop[3] = 0;
    duet_session_options o;
    duet_session_options_default(&o);
    o.n_ctx = 256;
    o.max_tokens = 24;
    o.ignore_eos = 1;
    o.stop[0] = stop;
    duet_session *t;
    duet_session_create(m, &o, &t);
    duet_session_append_tokens(t, prompt, NP);
    char *cut = NULL;
    int rc = duet_generate_all(t, &cut);
    char *at = strstr(all, stop);
    CHECK(rc == DUET_FINISH_STOP && cut && at && strlen(cut) == (size_t)(at - all) && !strncmp(cut, all, strlen(cut)),
          "stop string: rc %d, text cut before it", rc);
    free(all);
    free(cut);
    duet_session_close(s);
    duet_session_close(t);
}

static void test_bad_input(duet_model *m)
{
    duet_session_options o;
    duet_session_options_default(&o);
    duet_session *s = NULL;
    o.adapter = "gamma";
    CHECK(duet_session_create(m, &o, &s) == DUET_ERR_NOT_FOUND && !s && strstr(duet_model_errmsg(m), "gamma"),
          "unknown adapter: %s", duet_model_errmsg(m));
    o.adapter = NULL;
    o.n_ctx = 1 << 20;
    CHECK(duet_session_create(m, &o, &s) == DUET_ERR_ARG, "n_ctx beyond the model: %s", duet_model_errmsg(m));
    o.n_ctx = 16;
    o.top_p = 0;
    CHECK(duet_session_create(m, &o, &s) == DUET_ERR_ARG, "top_p 0 refused");
    o.top_p = 1;
    CHECK(duet_session_create(m, &o, &s) == DUET_OK, "16-position session");
    CHECK(duet_session_append_tokens(s, prompt, NP) == DUET_OK, "14 tokens fit");
    CHECK(duet_session_append_tokens(s, prompt, NP) == DUET_ERR_CONTEXT_FULL && duet_session_n_tokens(s) == NP,
          "overflow refused, nothing appended: %s", duet_session_errmsg(s));
    int bad = 1 << 30;
    CHECK(duet_session_append_tokens(s, &bad, 1) == DUET_ERR_ARG, "token out of vocabulary");
    CHECK(duet_generate(s, NULL, NULL) == DUET_FINISH_CONTEXT && duet_session_n_tokens(s) == 16,
          "generation stops at a full context");
    CHECK(duet_model_close(m) == DUET_ERR_STATE, "closing a model with open sessions refused");
    duet_session_close(s);
    CHECK(duet_generate(NULL, NULL, NULL) == DUET_ERR_ARG && duet_session_append_text(NULL, "x", 1) == DUET_ERR_ARG &&
              duet_session_create(NULL, NULL, &s) == DUET_ERR_ARG && duet_tokenize(NULL, "x", 1, NULL, NULL) == DUET_ERR_ARG,
          "NULL handles");
    duet_session_close(NULL);
    CHECK(duet_model_close(NULL) == DUET_OK, "close NULL");
    int *ids, n;
    CHECK(duet_tokenize(m, "\xc3\x28", 2, &ids, &n) == DUET_ERR_UTF8, "tokenize invalid UTF-8: %s", duet_model_errmsg(m));
    char *txt;
    CHECK(duet_tokenize(m, "Hello world", 11, &ids, &n) == DUET_OK && duet_detokenize(m, ids, n, &txt) == DUET_OK &&
              !strcmp(txt, "Hello world"),
          "tokenize / detokenize round trip");
    free(ids);
    free(txt);

    /* the KV budget: room for two 1024-position sessions */
    const char *loras[] = {"alpha=tests/fixtures/models/tiny-qwen2-lora-alpha", NULL};
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.loras = loras;
    mo.kv_budget_bytes = 2 * duet_model_kv_bytes(m, 1024, DUET_KV_F16);
    duet_model *bm;
    char err[512];
    if (duet_model_open(&bm, GOLDEN_DIR, &mo, err, sizeof err)) {
        CHECK(0, "budget model: %s", err);
        return;
    }
    duet_session *x[3] = {0};
    o.n_ctx = 1024;
    CHECK(!duet_session_create(bm, &o, &x[0]) && !duet_session_create(bm, &o, &x[1]), "two sessions in budget");
    CHECK(duet_session_create(bm, &o, &x[2]) == DUET_ERR_BUDGET && strstr(duet_model_errmsg(bm), "budget"),
          "third over budget: %s", duet_model_errmsg(bm));
    duet_session_close(x[0]);
    CHECK(duet_session_create(bm, &o, &x[2]) == DUET_OK, "room again after a close");
    duet_session_close(x[1]);
    duet_session_close(x[2]);
    CHECK(duet_model_kv_in_use(bm) == 0, "budget released");
    duet_model_close(bm);
    CHECK(duet_model_open(&bm, "tests/fixtures/no-such-model", NULL, err, sizeof err) < 0 && !bm && err[0],
          "open a missing model: %s", err);
    mo.loras = (const char *[]){"noequals", NULL};
    CHECK(duet_model_open(&bm, GOLDEN_DIR, &mo, err, sizeof err) == DUET_ERR_ARG, "bad lora spec: %s", err);
}

int main(void)
{
    const char *loras[] = {"alpha=tests/fixtures/models/tiny-qwen2-lora-alpha",
                           "beta=tests/fixtures/models/tiny-qwen2-lora-beta", NULL};
    duet_model_options mo;
    duet_model_options_default(&mo);
    mo.loras = loras;
    duet_model *m;
    char err[512];
    if (check_tmpdir(scratch, sizeof scratch, "test-session")) {
        CHECK(0, "temporary folder");
        return check_summary("session");
    }
    if (duet_model_open(&m, GOLDEN_DIR, &mo, err, sizeof err)) {
        CHECK(0, "open: %s", err);
        return check_summary("session");
    }
    CHECK(duet_model_n_adapters(m) == 2 && !strcmp(duet_model_adapter_name(m, 1), "beta") &&
              !duet_model_adapter_name(m, 2),
          "adapters listed");
    test_clear_switch_save(m);
    test_chat(m);
    test_stop_string(m);
    test_bad_input(m);
    CHECK(duet_model_close(m) == DUET_OK, "close");
    check_rmtree(scratch);
    return check_summary("session");
}
