/* test_lora.c - PEFT adapters against the transformers + PEFT goldens:
 * alpha (r=8, all 7 projections) and beta (rsLoRA, q/v only), unmerged and
 * merged; one model serving base, alpha and beta interleaved; and one batch
 * whose rows use different adapters (what the scheduler does). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "golden.h"
#include "run/sample.h"

#define ALPHA "tests/fixtures/models/tiny-qwen2-lora-alpha"
#define BETA "tests/fixtures/models/tiny-qwen2-lora-beta"

static int open_with(Model *m, Err *e)
{
    return model_open_dir(m, GOLDEN_DIR, e) || model_add_lora(m, ALPHA, "alpha", e) || model_add_lora(m, BETA, "beta", e);
}

static int *prompt_of(const cJSON *g, const char *run, int p, int *n)
{
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "runs"), run), p);
    const cJSON *ids = cJSON_GetObjectItem(r, "prompt_ids");
    *n = cJSON_GetArraySize(ids);
    int *v = malloc((size_t)*n * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(ids, i)->valueint;
    return v;
}

int main(void)
{
    Err e;
    Model m;
    cJSON *g = golden_load();
    Kern *k = kern_create(0, NULL, &e);
    if (!g || !k || open_with(&m, &e)) {
        CHECK(0, "setup: %s", e.msg);
        return check_summary("lora");
    }
    const Adapter *alpha = &m.adapters[0], *beta = &m.adapters[1];
    CHECK(adapter_pair(alpha, 1, P_DOWN) && adapter_pair(alpha, 1, P_DOWN)->r == 8 &&
              fabsf(adapter_pair(alpha, 1, P_DOWN)->scale - 2.0f) < 1e-6f,
          "alpha: r 8, scale 16/8");
    CHECK(adapter_pair(beta, 0, P_Q) && fabsf(adapter_pair(beta, 0, P_Q)->scale - 16.0f) < 1e-6f &&
              !adapter_pair(beta, 0, P_K),
          "beta: rsLoRA scale 32/sqrt(4), q and v only");

    /* unmerged, both adapters resident, in the order base, alpha, beta, alpha, base */
    golden_check_run(&m, k, alpha, g, "alpha", 0, KV_F32, 1e-3f, "alpha unmerged");
    golden_check_run(&m, k, beta, g, "beta", 5, KV_F32, 1e-3f, "beta unmerged");
    golden_check_run(&m, k, NULL, g, "base", 0, KV_F32, 1e-3f, "base beside adapters");
    golden_check_run(&m, k, alpha, g, "alpha", 1, KV_F32, 1e-3f, "alpha again token by token");

    /* one batch, three sequences with three adapters, decoding in lockstep:
     * each must give its own greedy ids */
    const char *runs[3] = {"base", "alpha", "beta"};
    const Adapter *ads[3] = {NULL, alpha, beta};
    Seq q[3];
    float *lg[3];
    int want[3][24], got[3][24], vocab = m.cfg.vocab_size, ok = 1;
    for (int s = 0; s < 3; s++) {
        int n;
        int *p = prompt_of(g, runs[s], 1, &n);
        const cJSON *gr = cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "runs"), runs[s]), 1), "greedy_ids");
        for (int i = 0; i < 24; i++) want[s][i] = cJSON_GetArrayItem(gr, i)->valueint;
        lg[s] = malloc((size_t)vocab * sizeof(float));
        ok &= !seq_init(&q[s], &m, n + 24, KV_F32, ads[s], &e) && !seq_prefill(&q[s], k, p, n, 0, lg[s], NULL, &e);
        free(p);
    }
    CHECK(ok, "batch setup: %s", e.msg);
    Scratch scr = {0};
    for (int t = 0; ok && t < 24; t++) {
        BatchRow rows[3];
        for (int s = 0; s < 3; s++) {
            got[s][t] = argmax(lg[s], vocab);
            rows[s] = (BatchRow){got[s][t], q[s].n_past, &q[s].kv, ads[s], lg[s]};
        }
        if (t + 1 < 24) {
            ok = !forward(&m, k, &scr, rows, 3, &e);
            for (int s = 0; s < 3; s++) q[s].n_past++;
        }
    }
    for (int s = 0; s < 3; s++) {
        CHECK(ok && !memcmp(got[s], want[s], sizeof want[s]), "mixed-adapter batch: %s greedy ids", runs[s]);
        seq_free(&q[s]);
        free(lg[s]);
    }
    scratch_free(&scr);
    model_close(&m);

    /* merged: the adapter folded into the weights, applied by no one */
    for (int a = 0; a < 2; a++) {
        Model mm;
        if (open_with(&mm, &e) || model_merge_adapter(&mm, a, &e)) {
            CHECK(0, "merge %d: %s", a, e.msg);
            continue;
        }
        golden_check_run(&mm, k, NULL, g, a ? "beta" : "alpha", 0, KV_F32, 1e-3f, a ? "beta merged" : "alpha merged");
        CHECK(model_merge_adapter(&mm, 1 - a, &e) == -1 && strstr(e.msg, "merged already"), "second merge refused");
        model_close(&mm);
    }
    cJSON_Delete(g);
    kern_destroy(k);
    return check_summary("lora");
}
