/* duet.h - the duet runtime library: run a Qwen2-family model (a compiled
 * .duet file or a Hugging Face checkpoint folder) with any number of PEFT
 * LoRA adapters, for many chat sessions at once.
 *
 * Handles
 *   duet_model    one model, its adapters, tokenizer, chat template, kernel
 *                 threads and the scheduler thread that runs every session.
 *   duet_session  one conversation: its KV cache, token history, sampler,
 *                 adapter and (in chat mode) message history.
 *
 * Errors: functions return DUET_OK (0) or a negative duet_status; the
 * message of a session's last failure is duet_session_errmsg(), of a model
 * call duet_model_errmsg() (or the `err` buffer of duet_model_open). No
 * function exits or aborts on bad input (bad files, names, UTF-8, sizes).
 *
 * Threads: a duet_model may be used from any number of threads at once
 * (sessions, tokenize, template). A duet_session belongs to one thread at a
 * time, except duet_session_abort(), which any thread may call while another
 * generates. Every forward pass runs on the model's scheduler thread, which
 * batches the sessions' decode tokens (each with its own adapter) with one
 * bounded chunk of one session's prompt per step, so a long prompt does not
 * stall other sessions' streams.
 *
 * Misuse that is detected: NULL handles (DUET_ERR_ARG), closing a model
 * with open sessions (DUET_ERR_STATE, nothing is closed). Undefined behaviour:
 * using a handle after it was closed, and using one session from two threads
 * at once (other than abort). */
#ifndef DUET_H
#define DUET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; duet_version() gives the library's. */
#define DUET_VERSION "0.2.0"

/* The library's version, "MAJOR.MINOR.PATCH" (static string). */
const char *duet_version(void);

typedef struct duet_model duet_model;
typedef struct duet_session duet_session;

typedef enum duet_status {
    DUET_OK = 0,
    DUET_ERR_ARG = -1,          /* NULL handle, bad option value, bad JSON */
    DUET_ERR_IO = -2,           /* a file could not be read or written */
    DUET_ERR_FORMAT = -3,       /* a model, adapter, tokenizer or session file is malformed */
    DUET_ERR_NOT_FOUND = -4,    /* no adapter of that name, no tokenizer / template */
    DUET_ERR_CONTEXT_FULL = -5, /* the tokens do not fit the session's context */
    DUET_ERR_BUDGET = -6,       /* the KV cache would exceed the model's KV budget */
    DUET_ERR_NOMEM = -7,
    DUET_ERR_UTF8 = -8,         /* text that is not valid UTF-8 */
    DUET_ERR_MISMATCH = -9,     /* a session file made by another model */
    DUET_ERR_STATE = -10,       /* the call does not fit the handle's state */
    DUET_ERR_INTERNAL = -11,
} duet_status;

/* Why generation stopped (the non-negative return of duet_generate). */
typedef enum duet_finish {
    DUET_FINISH_EOS = 0,        /* an end-of-sequence or stop id was sampled */
    DUET_FINISH_STOP = 1,       /* a stop string appeared (it is not emitted) */
    DUET_FINISH_LENGTH = 2,     /* max_tokens were generated */
    DUET_FINISH_CALLBACK = 3,   /* the callback returned non-zero */
    DUET_FINISH_ABORT = 4,      /* duet_session_abort() */
    DUET_FINISH_CONTEXT = 5,    /* the context is full */
} duet_finish;

typedef enum duet_kv_type { DUET_KV_F16 = 0, DUET_KV_F32 = 1 } duet_kv_type;

typedef struct duet_model_options {
    int n_threads;              /* kernel threads; 0 = one per physical core */
    const char *isa;            /* "scalar", "avx2", "avx512", "neon"; NULL = best */
    size_t kv_budget_bytes;     /* total KV cache of all sessions; 0 = unlimited */
    int prefill_chunk;          /* prompt tokens per scheduler step; 0 = 64 */
    const char *tokenizer_dir;  /* folder with tokenizer.json (+ tokenizer_config.json);
                                   NULL = what a .duet embeds, or the model folder's */
    const char *const *loras;   /* NULL-terminated list of "NAME=DIR" PEFT folders, or NULL */
    int load_to_ram;            /* .duet only: copy the file into 2 MB huge pages instead of
                                   mapping it: ~10% faster decode, an open that reads it all */
} duet_model_options;

/* Fills o with the defaults above (all zero / NULL). */
void duet_model_options_default(duet_model_options *o);

/* Opens `path` (a checkpoint folder or a .duet file) with the adapters of
 * o->loras (o may be NULL for defaults), loads the tokenizer and chat
 * template when present (text functions then work; token functions always
 * do), starts the kernel threads and the scheduler. On success *out is the
 * model (free with duet_model_close). On failure returns a negative status,
 * *out is NULL and err (err_len bytes, may be NULL) receives the message. */
int duet_model_open(duet_model **out, const char *path, const duet_model_options *o, char *err, size_t err_len);

/* Stops the scheduler and frees everything. DUET_ERR_STATE (and nothing is
 * freed) while sessions are open. NULL is a no-op returning DUET_OK. */
int duet_model_close(duet_model *m);

/* The message of the last failed call on this model made by the calling
 * thread (each thread has its own: another thread's failure does not
 * overwrite it). Valid until this thread's next call on the model. Never NULL. */
const char *duet_model_errmsg(const duet_model *m);

/* Number of adapters and the name of adapter i (borrowed; NULL if out of range). */
int duet_model_n_adapters(const duet_model *m);
const char *duet_model_adapter_name(const duet_model *m, int i);

/* Vocabulary size of the model; context positions it was trained for. */
int duet_model_vocab(const duet_model *m);
int duet_model_max_context(const duet_model *m);

/* Bytes of KV cache a session of n_ctx positions needs, and the bytes the
 * open sessions hold now. */
size_t duet_model_kv_bytes(const duet_model *m, int n_ctx, duet_kv_type t);
size_t duet_model_kv_in_use(const duet_model *m);

/* Encodes UTF-8 text (len bytes) into *ids (malloc'd, the caller frees; *n
 * of them). DUET_ERR_UTF8 on invalid text, DUET_ERR_NOT_FOUND without a tokenizer. */
int duet_tokenize(duet_model *m, const char *text, size_t len, int **ids, int *n);

/* Decodes ids into *text (malloc'd, NUL-terminated, the caller frees). */
int duet_detokenize(duet_model *m, const int *ids, int n, char **text);

/* Renders messages_json (a JSON array of {"role", "content"}) through the
 * chat template into *text (malloc'd, the caller frees); add_generation_prompt
 * appends the assistant header. */
int duet_apply_template(duet_model *m, const char *messages_json, int add_generation_prompt, char **text);

/* The same with tools_json (a JSON array of tools in the OpenAI form, or NULL
 * / "null" for none) passed to the template as `tools`. */
int duet_apply_template_tools(duet_model *m, const char *messages_json, const char *tools_json,
                              int add_generation_prompt, char **text);

#define DUET_MAX_STOPS 8

typedef struct duet_session_options {
    const char *adapter;        /* adapter name, NULL = base model */
    int n_ctx;                  /* context positions; 0 = min(4096, model max) */
    duet_kv_type kv_type;       /* default DUET_KV_F16 */
    float temperature;          /* 0 = greedy (default) */
    int top_k;                  /* 0 = off */
    float top_p;                /* 1 = off (default) */
    float min_p;                /* 0 = off */
    float repetition_penalty;   /* 1 = off (default) */
    float frequency_penalty;    /* 0 = off */
    float presence_penalty;     /* 0 = off */
    uint64_t seed;
    int max_tokens;             /* per duet_generate call; 0 = until EOS or the context is full */
    int ignore_eos;             /* 1: the model's eos ids do not stop generation */
    const char *stop[DUET_MAX_STOPS]; /* stop strings (copied), NULL-terminated if fewer */
    int stop_ids[DUET_MAX_STOPS];     /* extra stop token ids */
    int n_stop_ids;
} duet_session_options;

/* Fills o with the defaults above. */
void duet_session_options_default(duet_session_options *o);

/* Sets o's temperature, top_k, top_p, min_p and repetition_penalty to what
 * users of the model expect: its generation_config.json applied as
 * transformers does (do_sample false: greedy), else llama.cpp's defaults
 * (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05). Returns 1 when they
 * came from the model, 0 for llama.cpp's, DUET_ERR_ARG for NULL. */
int duet_model_sampling_defaults(const duet_model *m, duet_session_options *o);

/* Creates a session bound to adapter o->adapter (o may be NULL: defaults).
 * Its whole KV cache is allocated now; DUET_ERR_BUDGET if it would take the
 * model's sessions over kv_budget_bytes, DUET_ERR_NOT_FOUND for an unknown
 * adapter, DUET_ERR_ARG for a bad option. On failure *out is NULL and the
 * message is in duet_model_errmsg(m). */
int duet_session_create(duet_model *m, const duet_session_options *o, duet_session **out);

/* Replaces the sampling and stop options (temperature .. n_stop_ids, seed,
 * max_tokens, ignore_eos) for the next duet_generate; adapter, n_ctx and
 * kv_type are fixed at create and ignored here. The random state restarts
 * from o->seed. DUET_ERR_ARG (nothing changed) for a value out of range. */
int duet_session_set_options(duet_session *s, const duet_session_options *o);

/* Frees the session and its KV cache; NULL is a no-op. */
void duet_session_close(duet_session *s);

/* The message of this session's last failure; never NULL. */
const char *duet_session_errmsg(const duet_session *s);

/* Switches to adapter `name` (NULL = base). The cached keys and values were
 * computed with the old adapter, so the cache is dropped and the kept tokens
 * are prefilled again (with the new adapter) at the next duet_generate. */
int duet_session_set_adapter(duet_session *s, const char *name);

/* Appends prompt tokens / UTF-8 text (raw mode: no template). They are run
 * at the next duet_generate. DUET_ERR_CONTEXT_FULL (nothing appended) if they
 * do not fit n_ctx: duet never truncates silently. DUET_ERR_STATE in chat mode. */
int duet_session_append_tokens(duet_session *s, const int *ids, int n);
int duet_session_append_text(duet_session *s, const char *text, size_t len);

/* Appends a chat message (role "system", "user", "assistant" or "tool";
 * content UTF-8). The session keeps the message history; each generate
 * renders it through the chat template with the generation prompt and reuses
 * the cached prefix that did not change. Replies are added to the history as
 * assistant messages. DUET_ERR_STATE after raw appends (clear first). */
int duet_session_append_message(duet_session *s, const char *role, const char *content);

/* Called for each generated token with the text that became final (may be
 * empty: held back for UTF-8 or a possible stop string). Return non-zero to stop. */
typedef int (*duet_token_cb)(void *user, const char *piece, size_t len, int token);

/* Runs the pending prompt and generates until a stop; streams through cb
 * (may be NULL). Returns a duet_finish (>= 0) or a negative status. */
int duet_generate(duet_session *s, duet_token_cb cb, void *user);

/* The same, collecting the text into *text (malloc'd, the caller frees). */
int duet_generate_all(duet_session *s, char **text);

/* Makes the generation in progress (or the next one) stop within one
 * scheduler step. Any thread; safe while duet_generate runs, and closing
 * the session from that thread then waits for the generate to return. */
void duet_session_abort(duet_session *s);

/* Withdraws an abort that is waiting for the next duet_generate (one that
 * arrived just as the previous generation ended, as a Ctrl-C watcher's
 * can); no effect while a generation runs. */
void duet_session_abort_cancel(duet_session *s);

/* Forgets every token and message (the cache memory is kept). */
void duet_session_clear(duet_session *s);

/* Tokens in the context (cached or pending) and the capacity. */
int duet_session_n_tokens(const duet_session *s);
int duet_session_n_ctx(const duet_session *s);

/* Timing of the last duet_generate: seconds to the first token, generated
 * tokens, and seconds from the first token to the last. */
typedef struct duet_stats {
    int n_prompt, n_gen;
    double ttft_s, gen_s;
    int n_cached;               /* prompt tokens whose KV was reused, not run (n_prompt excludes them) */
} duet_stats;
void duet_session_stats(const duet_session *s, duet_stats *out);

/* Writes the context to `path`: header with version and model hash, tokens,
 * messages, KV cache of the cached tokens, sampler state; tokens not yet run
 * are saved as pending. */
int duet_session_save(duet_session *s, const char *path);

/* Replaces the context by the one saved at `path`. DUET_ERR_MISMATCH when it
 * was saved with another model, adapter or KV type; DUET_ERR_CONTEXT_FULL if
 * it does not fit this session; DUET_ERR_FORMAT on a damaged file. On
 * failure the session is cleared. */
int duet_session_load(duet_session *s, const char *path);

/* ---- compile: a checkpoint folder + PEFT adapters -> one .duet file ---- */

/* Called as compile work proceeds: stage name, units done of total. */
typedef void (*duet_progress_cb)(void *user, const char *stage, int done, int total);

typedef struct duet_compile_options {
    const char *const *loras;   /* NULL-terminated list of "NAME=DIR" PEFT folders, or NULL */
    const char *quant;          /* weight type as `duet compile --quant` names it; NULL = "bf16" */
    const char *calib_path;     /* calibration set, JSON lines ({"text"} or {"messages"}); NULL = none */
    int n_threads;              /* 0 = one per physical core */
    duet_progress_cb progress;  /* may be NULL */
    void *progress_user;
    const char *lora_type;      /* the adapters' A and B as `duet compile --lora-type` names it: "auto"
                                 * (NULL: q8 in files of at most 4.5 bits per weight), "f16" or "q8" */
    const char *const *tensor_types; /* NULL-terminated "PATTERN=TYPE" rules, as `duet compile --tensor-type`
                                      * takes them (at most 64), or NULL */
} duet_compile_options;

/* Fills o with the defaults above (all zero / NULL). */
void duet_compile_options_default(duet_compile_options *o);

/* Compiles the Hugging Face checkpoint folder base_dir and the adapters of
 * o->loras (o may be NULL) into out_path, as `duet compile` does (written as
 * a temporary beside it, then renamed: no partial file on failure).
 * DUET_ERR_ARG for a bad option (quant name, "NAME=DIR" form), otherwise the
 * failure's status; err (err_len bytes, may be NULL) receives the message. */
int duet_compile_file(const char *base_dir, const char *out_path, const duet_compile_options *o, char *err,
                      size_t err_len);

/* ---- Serving: adapters at run time, reusable sessions, log-probabilities
 *
 * For a server that attaches adapters while sessions run and keeps idle
 * sessions to reuse their cached prompt (prefix caching). */

#define DUET_MAX_ADAPTERS 64    /* adapters one model holds at once (at open or loaded later) */

/* Reads the PEFT folder `dir` and attaches it as adapter `name` while the
 * model runs (other sessions keep generating). DUET_ERR_ARG for an empty or
 * used name, DUET_ERR_IO / DUET_ERR_FORMAT for a folder that cannot be read
 * or does not fit the base, DUET_ERR_BUDGET when DUET_MAX_ADAPTERS are held. */
int duet_model_load_adapter(duet_model *m, const char *name, const char *dir);

/* Removes adapter `name`: no new session or set_adapter can pick it; the
 * sessions bound to it keep using it until they close or switch, and its
 * memory is freed then. duet_model_adapter_name() returns NULL for its slot
 * from now on. DUET_ERR_NOT_FOUND for an unknown name. */
int duet_model_unload_adapter(duet_model *m, const char *name);

/* Sets the model's KV budget (as kv_budget_bytes at open; 0 = unlimited),
 * e.g. once the size of a session is known. DUET_ERR_BUDGET when the open
 * sessions already hold more. */
int duet_model_set_kv_budget(duet_model *m, size_t bytes);

/* Makes the context exactly ids[0..n) in raw mode (a message history is
 * dropped), keeping the cached keys and values of the longest common prefix
 * with the tokens it holds now: only the rest runs at the next generate.
 * DUET_ERR_CONTEXT_FULL / DUET_ERR_ARG as duet_session_append_tokens (the
 * session is then cleared). */
int duet_session_set_prompt(duet_session *s, const int *ids, int n);

/* Makes the message history exactly messages_json (a JSON array of
 * {"role", "content"} objects; content a string, null or a list of
 * {"type": "text", "text"} parts), in chat mode, keeping the cached tokens:
 * the next generate renders it and runs only what follows the longest
 * cached prefix. DUET_ERR_ARG naming the message and field otherwise. */
int duet_session_set_messages(duet_session *s, const char *messages_json);

/* The message history as a JSON array of {"role", "content"} objects (the
 * replies included), malloc'd for the caller to free; NULL in raw mode (no
 * message yet) or out of memory. With duet_session_set_messages a caller can
 * drop turns, e.g. the oldest when the context is full. */
char *duet_session_messages_json(const duet_session *s);

/* The context's token ids (borrowed, valid until the session changes);
 * *n receives their count. */
const int *duet_session_tokens(const duet_session *s, int *n);

/* Inside a duet_generate callback: the natural-log probability of `token`
 * (the one just sampled) and, in top[0..top_n), the top_n most likely tokens
 * in descending order, from the distribution the sampler saw (the model's
 * logits after the repetition penalties, before temperature). Returns the
 * number written to top, or a negative status. */
typedef struct duet_logprob {
    int token;
    float logprob;
} duet_logprob;
int duet_session_logprobs(const duet_session *s, int token, float *logprob, duet_logprob *top, int top_n);

/* ---- Tools and structured output --------------------------------------
 *
 * Tools are given in the OpenAI form, a JSON array of
 *   {"type": "function", "function": {"name", "description", "parameters"}}
 * where "parameters" is a JSON Schema of the subset in docs/AGENT.md. A chat
 * session with tools renders them through the model's chat template; a
 * template with no tool section (Qwen2-Instruct) gets duet's Hermes-style
 * fallback (duet_model_tools_native() says which). Each generate then parses
 * the <tool_call> blocks the model writes: the stream callback receives only
 * the text outside them, and the calls come back as structured data.
 *
 * A call block is decoded under a token mask compiled from the tools'
 * schemas as soon as the model opens it, so every call parses and validates
 * against its tool's "parameters", and it is complete within max_tokens.
 * Tool choice "required" or a tool name forces a call from the first token;
 * "none" renders the tools but forbids calls. A JSON schema set with
 * duet_session_set_json_schema() constrains the whole answer the same way. */

/* Sets the session's tools (tools_json: a JSON array as above; copied);
 * NULL or "[]" clears them. DUET_ERR_ARG with the message naming the tool,
 * field or schema keyword when the JSON is malformed or uses a keyword
 * outside the supported subset. Chat mode only for rendering; the schemas
 * apply in raw mode too (tool choice required / a name). */
int duet_session_set_tools(duet_session *s, const char *tools_json);

/* "auto" (default; NULL too), "none", "required", or the name of one of the
 * session's tools. DUET_ERR_NOT_FOUND for an unknown name (checked against
 * the tools set at this call and again at generate). */
int duet_session_set_tool_choice(duet_session *s, const char *choice);

/* Constrains every following answer to one JSON value valid under
 * schema_json (a JSON Schema of the subset; "{\"type\":\"object\"}" for any
 * JSON object); NULL turns it off. The answer ends right after the value.
 * DUET_ERR_ARG naming the keyword for a schema outside the subset.
 * Ignored while tool choice forces a call. */
int duet_session_set_json_schema(duet_session *s, const char *schema_json);

/* One tool call of the last generate. Strings are borrowed from the session
 * and stay valid until the next generate, append or clear. */
typedef struct duet_tool_call {
    const char *id;             /* "call_<n>", never empty, unique in the session */
    const char *name;
    const char *arguments;      /* compact JSON object text */
} duet_tool_call;

/* Number of calls the last generate produced (parallel calls: several), and
 * call i (NULL when out of range). A block that did not parse (possible only
 * when a constraint could not be applied) is not a call: see
 * duet_session_tool_call_errors(). */
int duet_session_n_tool_calls(const duet_session *s);
const duet_tool_call *duet_session_tool_call(const duet_session *s, int i);
int duet_session_tool_call_errors(const duet_session *s);

/* The last generate's text outside the call blocks (borrowed, as above). */
const char *duet_session_content(const duet_session *s);

/* Appends the result of the call with id tool_call_id (content: UTF-8) as a
 * "tool" message. DUET_ERR_NOT_FOUND when no call of that id is in the history. */
int duet_session_append_tool_result(duet_session *s, const char *tool_call_id, const char *content);

/* Appends one OpenAI-form message (JSON text), so a server can replay a
 * conversation: {"role": "system"|"user"|"assistant"|"tool", "content": ...},
 * an assistant message with "tool_calls": [{"id", "type": "function",
 * "function": {"name", "arguments"}}] (arguments a JSON string or object),
 * a tool message with "tool_call_id". Content may be null or a list of
 * {"type": "text", "text"} parts. DUET_ERR_ARG naming the field otherwise. */
int duet_session_append_message_json(duet_session *s, const char *message_json);

/* 1 if the model's chat template renders tools itself, 0 if duet's
 * Hermes-style fallback renders them (the template has no tool section), a
 * negative status without a template. */
int duet_model_tools_native(duet_model *m);

/* ---- Running tools ------------------------------------------------------
 *
 * A duet_toolbox holds tools that really run, none of them through a shell:
 * the built-in read-only device tools (docs/TOOLS.md), command tools declared
 * in a JSON file (run with fork/execve, each {param} one argv element) and
 * the tools of MCP servers over stdio. Every call has a timeout and an
 * output cap; failures come back as an {"error": "..."} result text, so the
 * model reads them, never as a crash. One thread at a time per toolbox. */

typedef struct duet_toolbox duet_toolbox;

typedef struct duet_toolbox_options {
    const char *sysroot;        /* built-in tools read SYSROOT/proc, SYSROOT/sys; NULL = "/" */
    int timeout_ms;             /* per call; 0 = 10000 */
    size_t output_cap;          /* bytes of a result kept; 0 = 16384 */
} duet_toolbox_options;

void duet_toolbox_options_default(duet_toolbox_options *o);

/* o may be NULL (defaults). *out NULL and DUET_ERR_NOMEM on failure. */
int duet_toolbox_create(duet_toolbox **out, const duet_toolbox_options *o);
/* Stops the MCP servers (closing their stdin, then SIGTERM / SIGKILL) and frees. NULL is a no-op. */
void duet_toolbox_free(duet_toolbox *tb);
/* The message of the toolbox's last failed call; never NULL. */
const char *duet_toolbox_errmsg(const duet_toolbox *tb);

/* Adds the built-in device tools. */
int duet_toolbox_add_builtin(duet_toolbox *tb);
/* Adds the command tools of a JSON file (format in docs/AGENT.md);
 * DUET_ERR_IO / DUET_ERR_ARG naming the file and field. */
int duet_toolbox_add_commands(duet_toolbox *tb, const char *path);
/* Starts an MCP server (argv: NULL-terminated, argv[0] looked up in PATH,
 * no shell), initializes it and adds the tools it lists. DUET_ERR_IO with
 * the reason when it does not start, answers garbage or times out. */
int duet_toolbox_add_mcp(duet_toolbox *tb, const char *const *argv);

/* The tools as an OpenAI-form JSON array (borrowed; valid until the next add). */
const char *duet_toolbox_tools_json(duet_toolbox *tb);

/* Runs tool `name` with arguments_json (a JSON object text). *result is a
 * malloc'd text the caller frees: the tool's output, or {"error": "..."}.
 * Returns 0 when the tool ran and succeeded, 1 when *result is an error
 * result for the model, a negative status when out of memory. */
int duet_toolbox_call(void *toolbox, const char *name, const char *arguments_json, char **result);

/* The agent helper: the same signature as duet_toolbox_call, so a toolbox
 * (or any callback of this shape) runs the tools. */
typedef int (*duet_tool_fn)(void *user, const char *name, const char *arguments_json, char **result);

/* One tool call the agent ran (borrowed from the session until the next
 * duet_agent_run or clear). */
typedef struct duet_agent_step {
    const char *name, *arguments, *result;
} duet_agent_step;

/* Appends user_text as a user message (NULL: none, the history is ready)
 * and loops: generate; run each call with fn; append the results; generate
 * again, until an answer without calls or max_steps generates (0 = 8); the
 * last round then runs with tool choice "none" so there is an answer. The
 * answer streams through cb (may be NULL); *answer (may be NULL) receives it
 * malloc'd. The session must have tools set. Returns a duet_finish or a
 * negative status. */
int duet_agent_run(duet_session *s, const char *user_text, int max_steps, duet_tool_fn fn, void *fn_user,
                   duet_token_cb cb, void *cb_user, char **answer);

/* The calls the last duet_agent_run made, in order. */
int duet_agent_n_steps(const duet_session *s);
const duet_agent_step *duet_agent_step_at(const duet_session *s, int i);

#ifdef __cplusplus
}
#endif

#endif
