/* golden.h - the reference runs of tests/fixtures/models/golden-tiny-qwen2.json
 * (made with transformers + PEFT) and checks of a Model against them. */
#ifndef DUET_TEST_GOLDEN_H
#define DUET_TEST_GOLDEN_H

#include <cjson/cJSON.h>

#include "run/seq.h"

#define GOLDEN_JSON "tests/fixtures/models/golden-tiny-qwen2.json"
#define GOLDEN_DIR "tests/fixtures/models/tiny-qwen2"

/* The parsed golden file (caller cJSON_Deletes), NULL on failure. */
cJSON *golden_load(void);

/* Reads the full last-position logits of prompt 0 for run "base", "alpha"
 * or "beta" into a malloc'd array of n floats. */
float *golden_last_logits(const char *run, int n);

/* Checks model m with adapter `lora` against golden run `run` (all prompts):
 * last logits of prompt 0 within tol, top-1 and top-8 ids at every position,
 * and 24 greedy ids through prefill + decode with prefill chunk `chunk`.
 * Records CHECKs; `label` prefixes failure messages. */
void golden_check_run(const Model *m, Kern *k, const Adapter *lora, const cJSON *golden, const char *run, int chunk,
                      KvType kv, float tol, const char *label);

/* 24 greedy ids for prompt p of `run` through model m into out; returns count. */
int golden_greedy(const Model *m, Kern *k, const Adapter *lora, const int *prompt, int n, int steps, int *out);

/* Checks model m with adapter `lora` against a golden folder made by
 * tests/fixtures/gen/make_shapes.py (golden.json + logits.f32): every
 * position's logits within 1e-3 and the greedy ids, for every prompt. */
void golden_check_dir(const Model *m, Kern *k, const Adapter *lora, const char *gdir, const char *label);

#endif
