/* fuzz_serve.c - libFuzzer target for duet serve's request parsing and
 * mapping (src/serve/serve_req.c, serve_resp.c): the first byte picks the
 * API (OpenAI chat / completions, Ollama chat / generate), the rest is the
 * request body. A body that parses is then mapped back out: the full
 * response, a stream chunk, the closing chunks and an error body, with a
 * made-up result, so every field the parser let through is also encoded.
 *
 *   sh fuzz/build.sh && build-fuzz/fuzz_serve -max_len=4096 /tmp/fz   (seeds: fuzz/corpus/serve) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    Api api = (Api)(data[0] & 3);
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    ReqLimits lim = {.max_messages = 64, .max_tokens = 4096};
    GenReq r;
    ApiError e;
    int st = genreq_parse(api, body, len, &lim, &r, &e);
    if (st) {
        if (st < 400 || st > 599 || !e.msg[0]) abort(); /* a refusal must say what and why */
        free(resp_error(api, &e));
        return 0;
    }
    ToolCallOut call = {"call_0", "get_temp", "{\"zone\":\"cpu\"}"};
    GenResult g = {.text = "ok \xe4\xbd\xa0", .len = 6, .finish = "stop", .n_prompt = 10, .n_cached = 4, .n_gen = 2};
    if (r.tools) {
        g.calls = &call;
        g.n_calls = 1;
        g.finish = "tool_calls";
    }
    if (r.logprobs) g.logprobs = cJSON_Parse("[{\"token\":\"ok\",\"logprob\":-0.5,\"bytes\":[111,107],\"top_logprobs\":"
                                             "[{\"token\":\"ok\",\"logprob\":-0.5,\"bytes\":[111,107]}]}]");
    GenResult two[2] = {g, g};
    free(resp_body(&r, two, r.n > 1 ? 2 : 1, &g, "chatcmpl-x", 1, r.model));
    free(resp_chunk(&r, "chatcmpl-x", 1, r.model, r.n > 1 ? 1 : 0, "ok", 2, 1, g.logprobs));
    free(resp_choice_end(&r, &g, 0, 1, "chatcmpl-x", 1, r.model));
    free(resp_stream_end(&r, &g, "chatcmpl-x", 1, r.model));
    if (r.load_only) free(resp_ollama_load(&r, r.model));
    cJSON_Delete(g.logprobs);
    genreq_free(&r);
    return 0;
}
