/* fuzz_duet_run.c - libFuzzer target over a .duet's meta JSON with every
 * checksum recomputed: the input is the meta text (offsets as in the seed
 * file fuzz/corpus/duet/qwen2-s2-f32.duet, whose blob section is used);
 * tests/duet_image.c rebuilds the image with the header, meta and blob
 * hashes made right, so mutations reach the config, tensor directory,
 * adapter and limit checks. A file that opens then runs a forward pass of
 * 3 tokens with the base and each adapter. Seeds: fuzz/corpus/duet_meta.
 * Run from the repository root. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/duet_image.h"
#include "run/duet_file.h"
#include "run/seq.h"

static unsigned char *seed;
static size_t seed_len;
static Kern *k;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    Err e;
    seed = duet_image_read("fuzz/corpus/duet/qwen2-s2-f32.duet", &seed_len);
    k = kern_create(1, NULL, &e);
    if (!seed || !k) abort(); /* run from the repository root */
    return 0;
}

static void run(const Model *m, const Adapter *a)
{
    Seq q;
    Err e;
    int ids[3] = {1, 2 % m->cfg.vocab_size, (m->cfg.vocab_size - 1)};
    float *lg = malloc((size_t)m->cfg.vocab_size * sizeof *lg);
    int n_ctx = m->cfg.max_pos < 8 ? m->cfg.max_pos : 8;
    if (lg && seq_init(&q, m, n_ctx, KV_F16, a, &e) == 0) {
        seq_prefill(&q, k, ids, n_ctx < 3 ? n_ctx : 3, 2, lg, NULL, &e);
        seq_free(&q);
    }
    free(lg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *meta = cJSON_ParseWithLength((const char *)data, size);
    if (!meta) return 0;
    size_t len;
    unsigned char *img = duet_image_build(seed, seed_len, meta, &len);
    cJSON_Delete(meta);
    if (!img) return 0;
    Model m;
    Err e;
    if (duet_parse(&m, img, len, "fuzz.duet", &e) == 0) {
        run(&m, NULL);
        for (int i = 0; i < m.n_adapters; i++) run(&m, &m.adapters[i]);
        model_close(&m);
    }
    free(img);
    return 0;
}
