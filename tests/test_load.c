/* test_load.c - safetensors, config.json and checkpoint folders: the good
 * files load, and every kind of bad input is refused with a message that
 * names the file and the field. Bad files are written to a temp folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "load/checkpoint.h"
#include "run/model.h"
#include "util/json.h"

static char tmpdir[256];

static void write_file(const char *name, const void *data, size_t n)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A safetensors image: 8-byte length, the header text, `data_len` bytes of data. */
static size_t make_st(char *buf, const char *header, size_t data_len)
{
    size_t h = strlen(header);
    for (int i = 0; i < 8; i++) buf[i] = (char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, 0x3f, data_len);
    return 8 + h + data_len;
}

/* Parses header+data and expects failure with `want` in the message. */
static void st_bad(const char *header, size_t data_len, const char *want)
{
    static char buf[1 << 16];
    size_t n = make_st(buf, header, data_len);
    StFile f;
    Err e = {{0}};
    int rc = st_parse(&f, buf, n, "bad.safetensors", &e);
    CHECK(rc == -1 && strstr(e.msg, want) && strstr(e.msg, "bad.safetensors"), "header %.60s: want \"%s\", got \"%s\"",
          header, want, rc ? e.msg : "success");
    if (!rc) st_close(&f);
}

static void test_safetensors(void)
{
    static char buf[1 << 16];
    StFile f;
    Err e;
    size_t n = make_st(buf, "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                            "\"data_offsets\":[0,24]},\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]}}",
                       32);
    CHECK(st_parse(&f, buf, n, "good", &e) == 0, "good file: %s", e.msg);
    const StTensor *a = st_find(&f, "a"), *b = st_find(&f, "b");
    CHECK(a && a->dtype == DT_F32 && a->ndim == 2 && a->shape[1] == 3 && a->nbytes == 24, "tensor a");
    CHECK(b && b->dtype == DT_BF16 && st_numel(b) == 4, "tensor b");
    CHECK(!st_find(&f, "c"), "no tensor c");
    st_close(&f);
    st_close(&f); /* twice is safe */

    StFile g;
    Err e2 = {{0}};
    CHECK(st_parse(&g, buf, 5, "short", &e2) == -1 && strstr(e2.msg, "too short"), "truncated: %s", e2.msg);
    memcpy(buf, "\xff\xff\xff\x00\x00\x00\x00\x00", 8);
    CHECK(st_parse(&g, buf, 100, "huge", &e2) == -1 && strstr(e2.msg, "exceeds the file size"), "length: %s", e2.msg);
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "not valid JSON");
    st_bad("[1,2]", 0, "JSON object");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "beyond the data section");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16, "shape and dtype need");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
           16, "overlap");
    st_bad("{\"a\":{\"dtype\":\"I7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype \"I7\" is not supported");
    st_bad("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "not supported");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "begin <= end");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    st_bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
           "overflows");
    st_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
           16, "appears twice");

    /* st_open on a missing and on a truncated file */
    StFile h;
    CHECK(st_open(&h, "/nonexistent/x.safetensors", &e2) == -1 && strstr(e2.msg, "cannot open"), "missing: %s", e2.msg);
    n = make_st(buf, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    write_file("trunc.safetensors", buf, n - 3);
    char path[300];
    snprintf(path, sizeof path, "%s/trunc.safetensors", tmpdir);
    CHECK(st_open(&h, path, &e2) == -1 && strstr(e2.msg, "trunc.safetensors") && strstr(e2.msg, "beyond"),
          "truncated file: %s", e2.msg);
}

static const char *good_config =
    "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"intermediate_size\":128,\"vocab_size\":100,\"rope_theta\":10000.0,"
    "\"rms_norm_eps\":1e-6,\"torch_dtype\":\"bfloat16\",\"tie_word_embeddings\":false,\"eos_token_id\":[5,7]}";

/* Replaces the first occurrence of `from` in good_config by `to` and expects
 * config_parse to fail with `want` in the message. */
static void cfg_bad(const char *from, const char *to, const char *want)
{
    char text[1024];
    const char *p = strstr(good_config, from);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(p - good_config), good_config, to, p + strlen(from));
    ModelConfig c;
    Err e = {{0}};
    int rc = config_parse(&c, text, strlen(text), "config.json", &e);
    CHECK(rc == -1 && strstr(e.msg, want) && strstr(e.msg, "config.json"), "config %s -> %s: want \"%s\", got \"%s\"", from,
          to, want, rc ? e.msg : "success");
}

static void test_config(void)
{
    ModelConfig c;
    Err e;
    CHECK(config_parse(&c, good_config, strlen(good_config), "config.json", &e) == 0, "good config: %s", e.msg);
    CHECK(c.head_dim == 16 && c.n_kv_heads == 2 && c.rope_theta == 10000.0f && !c.tie_embeddings && c.qkv_bias, "fields");
    CHECK(c.n_eos == 2 && c.eos_ids[1] == 7, "eos list");
    cfg_bad("\"num_attention_heads\":4", "\"num_attention_heads\":0", "num_attention_heads");
    cfg_bad("\"num_attention_heads\":4,\"num_key_value_heads\":2", "\"num_attention_heads\":6,\"num_key_value_heads\":2",
            "does not divide");
    cfg_bad("\"num_key_value_heads\":2", "\"num_key_value_heads\":3", "num_key_value_heads");
    cfg_bad("\"hidden_size\":64,", "", "\"hidden_size\" is missing");
    cfg_bad("\"vocab_size\":100", "\"vocab_size\":\"many\"", "vocab_size");
    cfg_bad("\"model_type\":\"qwen2\"", "\"model_type\":\"gpt2\"", "model_type");
    cfg_bad("\"rope_theta\":10000.0", "\"rope_theta\":-1", "rope_theta");
    cfg_bad("\"rms_norm_eps\":1e-6", "\"rms_norm_eps\":0", "rms_norm_eps");
    cfg_bad("\"rope_theta\":10000.0", "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}", "yarn");
    cfg_bad("\"torch_dtype\":\"bfloat16\"", "\"use_sliding_window\":true", "sliding");
    cfg_bad(good_config, "[1, 2]", "expected a JSON object");
    cfg_bad("\"eos_token_id\":[5,7]", "\"eos_token_id\":\"x\"", "eos_token_id");
    cfg_bad("}", ",}", "invalid JSON at line 1");
    /* the transformers 5 layout */
    const char *v5 = "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                     "\"intermediate_size\":8,\"vocab_size\":10,\"rope_parameters\":{\"rope_theta\":1e6,\"rope_type\":"
                     "\"default\"},\"dtype\":\"bfloat16\"}";
    CHECK(config_parse(&c, v5, strlen(v5), "v5", &e) == 0 && c.rope_theta == 1e6f && c.n_kv_heads == 4, "v5 layout: %s",
          e.msg);
}

/* Copies the tiny checkpoint with one file replaced, and expects ckpt_open
 * or model_open_dir to fail with `want`. */
static void ckpt_bad(const char *file, const char *content, size_t len, const char *want)
{
    char cmd[1024], dir[300];
    snprintf(dir, sizeof dir, "%s/ck", tmpdir);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp tests/fixtures/models/tiny-qwen2/*.json "
             "tests/fixtures/models/tiny-qwen2/*.safetensors %s/", dir, dir, dir);
    CHECK(system(cmd) == 0, "copy checkpoint");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (content) {
        FILE *f = fopen(path, "wb");
        fwrite(content, 1, len, f);
        fclose(f);
    } else {
        unlink(path);
    }
    Model m;
    Err e = {{0}};
    int rc = model_open_dir(&m, dir, &e);
    CHECK(rc == -1 && strstr(e.msg, want), "%s: want \"%s\", got \"%s\"", file, want, rc ? e.msg : "success");
    if (!rc) model_close(&m);
}

static void test_checkpoint(void)
{
    Checkpoint c;
    Err e;
    CHECK(ckpt_open(&c, "tests/fixtures/models/tiny-qwen2", &e) == 0, "tiny checkpoint: %s", e.msg);
    CHECK(c.n_files == 2, "two shards");
    CHECK(ckpt_find(&c, "model.layers.1.mlp.down_proj.weight") != NULL, "tensor from the second shard");
    ckpt_close(&c);

    ckpt_bad("model-00002-of-00002.safetensors", NULL, 0, "model-00002-of-00002.safetensors: cannot open");
    ckpt_bad("config.json", NULL, 0, "config.json: cannot open");
    /* a shape that disagrees with config.json: claim a larger hidden size */
    size_t len;
    char *cfg = file_read("tests/fixtures/models/tiny-qwen2/config.json", &len, &e);
    char *p = strstr(cfg, "\"intermediate_size\": 128");
    if (p) memcpy(p, "\"intermediate_size\": 256", 24);
    ckpt_bad("config.json", cfg, len, "config.json implies");
    free(cfg);
    /* an index naming a tensor its shard lacks */
    char *idx = file_read("tests/fixtures/models/tiny-qwen2/model.safetensors.index.json", &len, &e);
    p = strstr(idx, "model.norm.weight");
    if (p) memcpy(p, "model.nrom.weight", 17);
    ckpt_bad("model.safetensors.index.json", idx, len, "does not hold it");
    free(idx);
    /* a missing tensor: drop model.norm.weight from the index and the shard can't be checked; use a
       one-file checkpoint whose header lacks it */
    const char *one = "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\"}}";
    ckpt_bad("model.safetensors.index.json", one, strlen(one), "\"model.norm.weight\" is missing");
    const char *esc = "{\"weight_map\":{\"x\":\"../../etc/passwd\"}}";
    ckpt_bad("model.safetensors.index.json", esc, strlen(esc), "not a plain file name");
    ckpt_bad("model.safetensors.index.json", "{\"weight_map\":", 14, "invalid JSON");
}

int main(void)
{
    if (check_tmpdir(tmpdir, sizeof tmpdir, "test-load")) return 1;
    test_safetensors();
    test_config();
    test_checkpoint();
    check_rmtree(tmpdir);
    return check_summary("load");
}
