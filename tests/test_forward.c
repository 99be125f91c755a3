/* test_forward.c - the Qwen2 forward pass against the transformers goldens:
 * base model, whole-prompt / chunked / token-by-token prefill, f16 KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "golden.h"

int main(void)
{
    Err e;
    Model m;
    if (model_open_dir(&m, GOLDEN_DIR, &e)) {
        CHECK(0, "open %s: %s", GOLDEN_DIR, e.msg);
        return check_summary("forward");
    }
    Kern *k = kern_create(2, NULL, &e);
    CHECK(k != NULL, "kern_create: %s", e.msg);
    cJSON *g = golden_load();
    CHECK(g != NULL, "golden file");
    CHECK(m.cfg.dim == 48 && m.cfg.n_layers == 2 && m.cfg.n_heads == 3 && m.cfg.n_kv_heads == 1, "config read");
    CHECK(m.cfg.rope_theta == 1e6f && m.cfg.tie_embeddings && m.cfg.n_eos == 1 && m.cfg.eos_ids[0] == 151645,
          "config: rope theta from rope_parameters, tied, eos from generation_config");

    golden_check_run(&m, k, NULL, g, "base", 0, KV_F32, 1e-3f, "one chunk");
    golden_check_run(&m, k, NULL, g, "base", 7, KV_F32, 1e-3f, "chunks of 7");
    golden_check_run(&m, k, NULL, g, "base", 1, KV_F32, 1e-3f, "token by token");
    golden_check_run(&m, k, NULL, g, "base", 64, KV_F16, 2e-2f, "f16 KV cache");

    /* prefill in one chunk, several chunks and token by token: the same logits */
    const cJSON *p2 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "runs"), "base"), 2);
    const cJSON *ids = cJSON_GetObjectItem(p2, "prompt_ids");
    int n = cJSON_GetArraySize(ids), vocab = m.cfg.vocab_size;
    int *prompt = malloc((size_t)n * sizeof *prompt);
    for (int i = 0; i < n; i++) prompt[i] = cJSON_GetArrayItem(ids, i)->valueint;
    float *ref = malloc((size_t)vocab * sizeof *ref), *lg = malloc((size_t)vocab * sizeof *lg);
    int chunks[] = {0, 100, 13, 1};
    for (int c = 0; c < 4; c++) {
        Seq q;
        int ok = !seq_init(&q, &m, n, KV_F32, NULL, &e) && !seq_prefill(&q, k, prompt, n, chunks[c], c ? lg : ref, NULL, &e);
        CHECK(ok, "prefill chunk %d: %s", chunks[c], e.msg);
        float maxd = 0;
        for (int i = 0; c && ok && i < vocab; i++) maxd = fmaxf(maxd, fabsf(lg[i] - ref[i]));
        CHECK(maxd < 1e-4f, "chunk %d vs whole prompt: max diff %g", chunks[c], maxd);
        seq_free(&q);
    }
    /* context overflow is an error, not a write past the cache */
    Seq q;
    CHECK(!seq_init(&q, &m, 4, KV_F32, NULL, &e), "small seq");
    CHECK(seq_prefill(&q, k, prompt, 5, 0, lg, NULL, &e) == -1 && strstr(e.msg, "do not fit"), "overflow refused: %s", e.msg);
    int bad_tok = 999999;
    CHECK(seq_prefill(&q, k, &bad_tok, 1, 0, lg, NULL, &e) == -1 && strstr(e.msg, "vocabulary"), "bad token: %s", e.msg);
    seq_free(&q);

    free(prompt);
    free(ref);
    free(lg);
    cJSON_Delete(g);
    kern_destroy(k);
    model_close(&m);
    return check_summary("forward");
}
