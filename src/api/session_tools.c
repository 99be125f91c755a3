/* session_tools.c - tools, tool choice and JSON answers on a session: the
 * tools' rendering (the template's own tool section or a Hermes-style
 * fallback), the token constraint of each generate, the calls parsed out of
 * the reply, and the OpenAI-form messages a server replays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "text/jschema.h"
#include "text/tokmask.h"
#include "text/toolcall.h"

typedef struct SessTools {
    cJSON *tools;          /* the tools array; NULL: none */
    JsSchema calls;        /* the call schema over every tool (when tools) */
    char *choice;          /* NULL: auto; "none", "required" or a tool name */
    cJSON *schema;         /* the JSON answer schema; NULL: none */
    JsSchema answer;
    /* the last generate */
    duet_tool_call *call;  /* (n_call); strings owned */
    int n_call, n_err;
    char *content;
    int next_id;           /* the next call id number */
    /* the last duet_agent_run */
    duet_agent_step *step; /* (n_step); strings owned */
    int n_step, cap_step;
} SessTools;

struct ToolGen {
    Constraint c;
    int active;            /* c is in use */
    JsSchema named;        /* the one tool of a named choice */
    uint32_t *mask;
    ToolCallParser *tp;    /* takes the call blocks out of the streamed text; NULL: pass through */
    int block_id;          /* tool choice none: the <tool_call> token, or -1 */
    int calls;             /* parse calls at the end */
};

static SessTools *st_get(duet_session *s)
{
    if (!s->tools && (s->tools = calloc(1, sizeof *s->tools))) s->tools->next_id = 1;
    return s->tools;
}

static void clear_last(SessTools *t)
{
    for (int i = 0; i < t->n_call; i++) {
        free((char *)t->call[i].id);
        free((char *)t->call[i].name);
        free((char *)t->call[i].arguments);
    }
    free(t->call);
    t->call = NULL;
    t->n_call = t->n_err = 0;
    free(t->content);
    t->content = NULL;
}

static void clear_steps(SessTools *t)
{
    for (int i = 0; i < t->n_step; i++) {
        free((char *)t->step[i].name);
        free((char *)t->step[i].arguments);
        free((char *)t->step[i].result);
    }
    t->n_step = 0;
}

void tools_session_clear(duet_session *s)
{
    if (!s->tools) return;
    clear_last(s->tools);
    clear_steps(s->tools);
    s->tools->next_id = 1;
}

void tools_session_free(duet_session *s)
{
    SessTools *t = s->tools;
    if (!t) return;
    clear_last(t);
    clear_steps(t);
    free(t->step);
    cJSON_Delete(t->tools);
    jschema_free(&t->calls);
    free(t->choice);
    cJSON_Delete(t->schema);
    jschema_free(&t->answer);
    free(t);
    s->tools = NULL;
}

void tools_model_free(duet_model *m)
{
    if (m->trie) toktrie_free(m->trie);
    free(m->trie);
    m->trie = NULL;
}

/* ---- settings ---- */

int duet_session_set_tools(duet_session *s, const char *tools_json)
{
    if (!s) return DUET_ERR_ARG;
    SessTools *t = st_get(s);
    if (!t) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    cJSON *j = NULL;
    JsSchema sch = {0};
    if (tools_json) {
        Err e;
        j = cJSON_Parse(tools_json);
        if (!j) return api_serr(s, DUET_ERR_ARG, "tools: malformed JSON (expected an array of tools)");
        if (!cJSON_IsArray(j)) {
            cJSON_Delete(j);
            return api_serr(s, DUET_ERR_ARG, "tools: expected a JSON array of {\"type\": \"function\", ...}");
        }
        if (cJSON_GetArraySize(j) == 0) {
            cJSON_Delete(j);
            j = NULL;
        } else if (jschema_compile_tools(&sch, j, NULL, &e)) {
            cJSON_Delete(j);
            return api_serr(s, DUET_ERR_ARG, "%s", e.msg);
        }
    }
    cJSON_Delete(t->tools);
    jschema_free(&t->calls);
    t->tools = j;
    t->calls = sch;
    return DUET_OK;
}

/* 1 if the session's tools have one named `name`. */
static int has_tool(const SessTools *t, const char *name)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, t->tools)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(x, "function"), "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return 1;
    }
    return 0;
}

int duet_session_set_tool_choice(duet_session *s, const char *choice)
{
    if (!s) return DUET_ERR_ARG;
    SessTools *t = st_get(s);
    if (!t) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    if (choice && (!choice[0] || !strcmp(choice, "auto"))) choice = NULL;
    if (choice && strcmp(choice, "none") && strcmp(choice, "required") && !has_tool(t, choice))
        return api_serr(s, DUET_ERR_NOT_FOUND, "tool choice \"%s\": expected auto, none, required or the name of a tool",
                        choice);
    char *c = choice ? strdup(choice) : NULL;
    if (choice && !c) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    free(t->choice);
    t->choice = c;
    return DUET_OK;
}

int duet_session_set_json_schema(duet_session *s, const char *schema_json)
{
    if (!s) return DUET_ERR_ARG;
    SessTools *t = st_get(s);
    if (!t) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    cJSON *j = NULL;
    JsSchema sch = {0};
    if (schema_json) {
        Err e;
        if (!(j = cJSON_Parse(schema_json))) return api_serr(s, DUET_ERR_ARG, "JSON schema: malformed JSON");
        if (jschema_compile(&sch, j, 0, "schema", &e)) {
            cJSON_Delete(j);
            return api_serr(s, DUET_ERR_ARG, "%s", e.msg);
        }
    }
    cJSON_Delete(t->schema);
    jschema_free(&t->answer);
    t->schema = j;
    t->answer = sch;
    return DUET_OK;
}

/* ---- results ---- */

int duet_session_n_tool_calls(const duet_session *s) { return s && s->tools ? s->tools->n_call : 0; }

const duet_tool_call *duet_session_tool_call(const duet_session *s, int i)
{
    return s && s->tools && i >= 0 && i < s->tools->n_call ? &s->tools->call[i] : NULL;
}

int duet_session_tool_call_errors(const duet_session *s) { return s && s->tools ? s->tools->n_err : 0; }

const char *duet_session_content(const duet_session *s)
{
    return s && s->tools && s->tools->content ? s->tools->content : "";
}

int duet_agent_n_steps(const duet_session *s) { return s && s->tools ? s->tools->n_step : 0; }

const duet_agent_step *duet_agent_step_at(const duet_session *s, int i)
{
    return s && s->tools && i >= 0 && i < s->tools->n_step ? &s->tools->step[i] : NULL;
}

char *api_tool_choice_dup(const duet_session *s)
{
    return s->tools && s->tools->choice ? strdup(s->tools->choice) : NULL;
}

void api_agent_steps_reset(duet_session *s)
{
    if (s->tools) clear_steps(s->tools);
}

int api_agent_step_add(duet_session *s, const char *name, const char *args, const char *result)
{
    SessTools *t = st_get(s);
    if (!t) return DUET_ERR_NOMEM;
    if (t->n_step == t->cap_step) {
        int nc = t->cap_step ? 2 * t->cap_step : 8;
        duet_agent_step *ns = realloc(t->step, (size_t)nc * sizeof *ns);
        if (!ns) return DUET_ERR_NOMEM;
        t->step = ns;
        t->cap_step = nc;
    }
    duet_agent_step *p = &t->step[t->n_step];
    p->name = strdup(name);
    p->arguments = strdup(args);
    p->result = strdup(result);
    if (!p->name || !p->arguments || !p->result) {
        free((char *)p->name);
        free((char *)p->arguments);
        free((char *)p->result);
        return DUET_ERR_NOMEM;
    }
    t->n_step++;
    return DUET_OK;
}

/* ---- rendering ---- */

static const char HERMES_HEAD[] =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function "
    "signatures within <tools></tools> XML tags:\n<tools>";
static const char HERMES_TAIL[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n"
    "</tool_call>";

/* 1 if the template renders a tools list itself, 0 if not, -1 on error. */
static int template_native(const ChatTemplate *ct)
{
    cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"x\"}]");
    cJSON *tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"duet_probe_tool_7f3a\","
                               "\"description\":\"probe\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}]");
    Err e;
    char *out = msgs && tools ? chat_template_render(ct, msgs, tools, 1, &e) : NULL;
    int r = out ? strstr(out, "duet_probe_tool_7f3a") != NULL : -1;
    free(out);
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    return r;
}

int duet_model_tools_native(duet_model *m)
{
    if (!m) return DUET_ERR_ARG;
    if (!m->tmpl) return api_merr(m, DUET_ERR_NOT_FOUND, "the model has no chat template");
    int r = template_native(m->tmpl);
    return r < 0 ? api_merr(m, DUET_ERR_NOMEM, "out of memory") : r;
}

static int sb_add(char **b, size_t *n, size_t *cap, const char *s)
{
    size_t l = strlen(s);
    if (*n + l + 1 > *cap) {
        size_t nc = (*n + l + 1) * 2;
        char *nb = realloc(*b, nc);
        if (!nb) return -1;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *n, s, l + 1);
    *n += l;
    return 0;
}

static const char *content_of(const cJSON *m)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    return cJSON_IsString(c) ? c->valuestring : "";
}

/* The messages rewritten for a template without a tool section: the tools in
 * the system message, calls as <tool_call> blocks, results as
 * <tool_response> blocks in a user message (as Qwen2.5's template does). */
static cJSON *hermes_messages(const cJSON *msgs, const cJSON *tools)
{
    cJSON *out = cJSON_CreateArray();
    char *b = NULL;
    size_t n = 0, cap = 0;
    int fail = !out;
    const cJSON *first = cJSON_GetArrayItem(msgs, 0);
    const char *role0 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "role"));
    int sys = role0 && !strcmp(role0, "system");
    if (tools) {
        if (sys) fail |= sb_add(&b, &n, &cap, content_of(first)) || sb_add(&b, &n, &cap, "\n\n");
        fail |= sb_add(&b, &n, &cap, HERMES_HEAD);
        const cJSON *t;
        cJSON_ArrayForEach(t, tools)
        {
            char *j = cJSON_PrintUnformatted(t);
            fail |= !j || sb_add(&b, &n, &cap, "\n") || sb_add(&b, &n, &cap, j);
            free(j);
        }
        fail |= sb_add(&b, &n, &cap, HERMES_TAIL);
        cJSON *m = cJSON_CreateObject();
        fail |= !m || !cJSON_AddStringToObject(m, "role", "system") || !cJSON_AddStringToObject(m, "content", b ? b : "");
        cJSON_AddItemToArray(out, m);
        n = 0;
    }
    const cJSON *m;
    int i = 0, prev_tool = 0;
    cJSON_ArrayForEach(m, msgs)
    {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        if (i++ == 0 && sys && tools) continue;
        role = role ? role : "user";
        cJSON *nm = cJSON_CreateObject();
        if (!nm) {
            fail = 1;
            break;
        }
        n = 0;
        if (b) b[0] = 0;
        int is_tool = !strcmp(role, "tool"), merge = is_tool && prev_tool;
        prev_tool = is_tool;
        if (is_tool) {
            cJSON *last = cJSON_GetArrayItem(out, cJSON_GetArraySize(out) - 1);
            if (merge) fail |= sb_add(&b, &n, &cap, content_of(last)) || sb_add(&b, &n, &cap, "\n");
            fail |= sb_add(&b, &n, &cap, "<tool_response>\n") || sb_add(&b, &n, &cap, content_of(m)) ||
                    sb_add(&b, &n, &cap, "\n</tool_response>");
            if (merge) {
                cJSON_ReplaceItemInObjectCaseSensitive(last, "content", cJSON_CreateString(b));
                cJSON_Delete(nm);
                continue;
            }
            fail |= !cJSON_AddStringToObject(nm, "role", "user") || !cJSON_AddStringToObject(nm, "content", b);
        } else {
            fail |= sb_add(&b, &n, &cap, content_of(m));
            const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), *c;
            int k = 0;
            cJSON_ArrayForEach(c, calls)
            {
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
                const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
                char *a = cJSON_IsString(args) ? strdup(args->valuestring) : cJSON_PrintUnformatted(args);
                if ((k++ || n) && sb_add(&b, &n, &cap, "\n")) fail = 1;
                fail |= !a || sb_add(&b, &n, &cap, "<tool_call>\n{\"name\": \"") ||
                        sb_add(&b, &n, &cap, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"))
                                                 ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"))
                                                 : "") ||
                        sb_add(&b, &n, &cap, "\", \"arguments\": ") || sb_add(&b, &n, &cap, a ? a : "{}") ||
                        sb_add(&b, &n, &cap, "}\n</tool_call>");
                free(a);
            }
            fail |= !cJSON_AddStringToObject(nm, "role", role) || !cJSON_AddStringToObject(nm, "content", b ? b : "");
        }
        cJSON_AddItemToArray(out, nm);
    }
    free(b);
    if (fail) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

int tools_render(duet_session *s, char **text)
{
    Err e;
    const ChatTemplate *ct = s->md->tmpl;
    const cJSON *tools = s->tools->tools;
    int native = tools ? template_native(ct) : 1;
    if (native < 0) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    if (native) {
        *text = chat_template_render(ct, s->messages, tools, 1, &e);
    } else {
        cJSON *msgs = hermes_messages(s->messages, tools);
        if (!msgs) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
        *text = chat_template_render(ct, msgs, NULL, 1, &e);
        cJSON_Delete(msgs);
    }
    return *text ? DUET_OK : api_serr(s, DUET_ERR_FORMAT, "%s", e.msg);
}

/* ---- one generate ---- */

static const TokTrie *model_trie(duet_model *m, Err *e)
{
    pthread_mutex_lock(&m->lock);
    if (!m->trie) {
        TokTrie *t = calloc(1, sizeof *t);
        if (t && !toktrie_build(t, m->tok, m->m.cfg.vocab_size, e)) m->trie = t;
        else {
            free(t);
            if (!t) err_set(e, "out of memory");
        }
    }
    pthread_mutex_unlock(&m->lock);
    return m->trie;
}

static int tag_id(const Tokenizer *tok, const char *tag)
{
    int id = tokenizer_token_id(tok, tag);
    return id >= 0 && tokenizer_is_added(tok, id) ? id : -1;
}

int tools_gen_begin(duet_session *s, ToolGen **out)
{
    SessTools *t = s->tools;
    *out = NULL;
    clear_last(t);
    int forced = t->choice && strcmp(t->choice, "none");
    const char *named = forced && strcmp(t->choice, "required") ? t->choice : NULL;
    if (forced && !t->tools)
        return api_serr(s, DUET_ERR_STATE, "tool choice \"%s\" needs tools (duet_session_set_tools)", t->choice);
    const JsSchema *sch = NULL;
    int kind = CK_CALLS, lazy = 0;
    if (forced) sch = &t->calls;
    else if (t->schema) sch = &t->answer, kind = CK_ANSWER;
    else if (t->tools && !t->choice) sch = &t->calls, lazy = 1;
    if (!sch && !t->tools) return DUET_OK;
    if (!s->md->tok) return api_serr(s, DUET_ERR_NOT_FOUND, "tools and JSON answers need the model's tokenizer");
    ToolGen *g = calloc(1, sizeof *g);
    if (!g) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    g->block_id = -1;
    Err e;
    int open_id = tag_id(s->md->tok, "<tool_call>"), close_id = tag_id(s->md->tok, "</tool_call>");
    if (t->tools && kind == CK_CALLS) {
        g->calls = 1;
        if (!(g->tp = toolcall_parser_new())) goto oom;
    }
    if (t->tools && t->choice && !strcmp(t->choice, "none")) g->block_id = open_id;
    if (named) {
        if (jschema_compile_tools(&g->named, t->tools, named, &e)) {
            tools_gen_free(g);
            return api_serr(s, DUET_ERR_NOT_FOUND, "%s", e.msg);
        }
        sch = &g->named;
    }
    if (sch) {
        const TokTrie *tt = model_trie(s->md, &e);
        if (!tt) {
            tools_gen_free(g);
            return api_serr(s, DUET_ERR_NOMEM, "%s", e.msg);
        }
        const ModelConfig *c = &s->md->m.cfg;
        if (constraint_init(&g->c, tt, sch, kind, lazy, open_id, close_id, c->eos_ids, c->n_eos, &e)) goto oom;
        g->active = 1;
        if (!(g->mask = malloc((size_t)tt->words * sizeof *g->mask))) goto oom;
        int left = s->o.n_ctx - s->n_hist, need = constraint_need(&g->c);
        if (s->o.max_tokens && s->o.max_tokens < left) left = s->o.max_tokens;
        if (need > left) {
            tools_gen_free(g);
            return api_serr(s, DUET_ERR_ARG, "max_tokens: %d tokens left, the shortest valid %s needs %d", left,
                            kind == CK_ANSWER ? "JSON answer" : "tool call", need);
        }
    }
    *out = g;
    return DUET_OK;
oom:
    tools_gen_free(g);
    return api_serr(s, DUET_ERR_NOMEM, "out of memory");
}

void tools_gen_free(ToolGen *g)
{
    if (!g) return;
    constraint_free(&g->c);
    jschema_free(&g->named);
    free(g->mask);
    toolcall_parser_free(g->tp);
    free(g);
}

int tools_gen_sample(ToolGen *g, duet_session *s, int left)
{
    if (g->block_id >= 0) s->logits[g->block_id] = -1e30f;
    int masked = g->active ? constraint_mask(&g->c, s->md->tok, left, g->mask) : 0;
    if (masked == 2) { /* only the open tag refused: ban it, sample as unconstrained text does */
        s->logits[g->c.open_id] = -1e30f;
        masked = 0;
    }
    int tok = masked ? sampler_sample_masked(&s->smp, s->logits, g->mask) : sampler_sample(&s->smp, s->logits);
    return tok >= 0 ? tok
                    : api_serr(s, DUET_ERR_FORMAT, "no token can follow at position %d: the JSON constraint and the "
                                                   "banned tokens leave none, or the logits are not finite", s->n_hist);
}

void tools_gen_accept(ToolGen *g, duet_session *s, int token)
{
    if (g->active) constraint_accept(&g->c, s->md->tok, token);
}

int tools_gen_emit(ToolGen *g, duet_token_cb cb, void *user, const char *piece, size_t len, int token, int final)
{
    if (!g->tp) return final ? 0 : cb(user, piece, len, token);
    char *text = final ? toolcall_finish(g->tp, NULL) : toolcall_feed(g->tp, piece, len, NULL);
    ToolCall c;
    while (toolcall_next(g->tp, &c)) toolcall_clear(&c); /* the calls are parsed from the whole text at the end */
    int r = 0;
    if (text && (text[0] || !final)) r = cb(user, text, strlen(text), token);
    free(text);
    return r;
}

cJSON *tools_gen_end(ToolGen *g, duet_session *s, const char *text)
{
    SessTools *t = s->tools;
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddStringToObject(msg, "role", "assistant")) goto oom;
    if (!g->calls) {
        if (!(t->content = strdup(text)) || !cJSON_AddStringToObject(msg, "content", text)) goto oom;
        return msg;
    }
    char *content;
    ToolCall *calls;
    int n;
    if (toolcall_parse(text, strlen(text), &content, &calls, &n, NULL)) goto oom;
    /* the text around the calls, trimmed of the newlines that separate them */
    size_t cl = strlen(content);
    while (cl && (content[cl - 1] == '\n' || content[cl - 1] == ' ')) content[--cl] = 0;
    t->content = content;
    cJSON *arr = NULL;
    if (n && !(t->call = calloc((size_t)n, sizeof *t->call))) n = 0;
    for (int i = 0; i < n; i++) {
        if (calls[i].error) {
            t->n_err++;
            continue;
        }
        char id[32];
        snprintf(id, sizeof id, "call_%d", t->next_id++);
        duet_tool_call *c = &t->call[t->n_call];
        c->id = strdup(id);
        c->name = strdup(calls[i].name);
        c->arguments = strdup(calls[i].arguments);
        if (!c->id || !c->name || !c->arguments) {
            free((char *)c->id);
            free((char *)c->name);
            free((char *)c->arguments);
            continue;
        }
        t->n_call++;
        cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON *args = cJSON_Parse(c->arguments);
        if (!arr) arr = cJSON_CreateArray();
        if (!tc || !fn || !arr) {
            cJSON_Delete(tc);
            cJSON_Delete(fn);
            cJSON_Delete(args);
            continue;
        }
        cJSON_AddStringToObject(tc, "id", c->id);
        cJSON_AddStringToObject(tc, "type", "function");
        cJSON_AddStringToObject(fn, "name", c->name);
        cJSON_AddItemToObject(fn, "arguments", args ? args : cJSON_CreateString(c->arguments));
        cJSON_AddItemToObject(tc, "function", fn);
        cJSON_AddItemToArray(arr, tc);
    }
    for (int i = 0; i < n; i++) toolcall_clear(&calls[i]);
    free(calls);
    cJSON_AddStringToObject(msg, "content", content);
    if (arr) cJSON_AddItemToObject(msg, "tool_calls", arr);
    return msg;
oom:
    cJSON_Delete(msg);
    return NULL;
}

/* ---- messages ---- */

/* The name of the call `id` in the history, or NULL. */
static const char *call_name(const duet_session *s, const char *id)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, s->messages)
    {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
            if (cid && !strcmp(cid, id))
                return cJSON_GetStringValue(
                    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "function"), "name"));
        }
    }
    return NULL;
}

int duet_session_append_tool_result(duet_session *s, const char *tool_call_id, const char *content)
{
    if (!s || !tool_call_id || !content) return api_serr(s, DUET_ERR_ARG, "append_tool_result: NULL argument");
    const char *name = call_name(s, tool_call_id);
    if (!name) return api_serr(s, DUET_ERR_NOT_FOUND, "no tool call with id \"%s\" in the conversation", tool_call_id);
    char *nm = strdup(name);
    if (!nm) return api_serr(s, DUET_ERR_NOMEM, "out of memory");
    int rc = duet_session_append_message(s, "tool", content);
    if (!rc) {
        cJSON *last = cJSON_GetArrayItem(s->messages, cJSON_GetArraySize(s->messages) - 1);
        if (!cJSON_AddStringToObject(last, "tool_call_id", tool_call_id) || !cJSON_AddStringToObject(last, "name", nm))
            rc = api_serr(s, DUET_ERR_NOMEM, "out of memory");
    }
    free(nm);
    return rc;
}

/* The text of an OpenAI content field (string, null, or a list of parts)
 * into a malloc'd string; NULL with the message set. */
static char *content_text(duet_session *s, const cJSON *c, int *rc)
{
    *rc = api_serr(s, DUET_ERR_NOMEM, "out of memory");
    if (!c || cJSON_IsNull(c)) return strdup("");
    if (cJSON_IsString(c)) return strdup(c->valuestring);
    if (!cJSON_IsArray(c)) {
        *rc = api_serr(s, DUET_ERR_ARG, "message content: expected a string, null or a list of {\"type\": \"text\"} parts");
        return NULL;
    }
    char *b = NULL;
    size_t n = 0, cap = 0;
    const cJSON *p;
    if (sb_add(&b, &n, &cap, "")) return NULL;
    cJSON_ArrayForEach(p, c)
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type"));
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "text"));
        if (!type || strcmp(type, "text") || !text) {
            free(b);
            *rc = api_serr(s, DUET_ERR_ARG, "message content: only {\"type\": \"text\", \"text\": ...} parts are supported");
            return NULL;
        }
        if (sb_add(&b, &n, &cap, text)) {
            free(b);
            return NULL;
        }
    }
    return b;
}

int duet_session_append_message_json(duet_session *s, const char *message_json)
{
    if (!s || !message_json) return api_serr(s, DUET_ERR_ARG, "append_message_json: NULL argument");
    cJSON *m = cJSON_Parse(message_json);
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return api_serr(s, DUET_ERR_ARG, "message: malformed JSON (expected an object with \"role\")");
    }
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
    int rc = DUET_OK;
    cJSON *calls = NULL;
    char *content = NULL;
    if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))) {
        rc = api_serr(s, DUET_ERR_ARG, "message role: expected system, user, assistant or tool");
        goto done;
    }
    if (!(content = content_text(s, cJSON_GetObjectItemCaseSensitive(m, "content"), &rc))) goto done;
    rc = DUET_OK;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (tc && !cJSON_IsNull(tc)) {
        if (strcmp(role, "assistant") || !cJSON_IsArray(tc)) {
            rc = api_serr(s, DUET_ERR_ARG, "message tool_calls: expected an array on an assistant message");
            goto done;
        }
        calls = cJSON_CreateArray();
        const cJSON *c;
        int i = 0;
        cJSON_ArrayForEach(c, tc)
        {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
            const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
            cJSON *a = cJSON_IsString(args) ? cJSON_Parse(args->valuestring)
                       : args              ? cJSON_Duplicate(args, 1)
                                           : cJSON_CreateObject();
            if (!name || !name[0] || !cJSON_IsObject(a)) {
                cJSON_Delete(a);
                rc = api_serr(s, DUET_ERR_ARG,
                              "message tool_calls[%d]: expected {\"id\", \"type\": \"function\", \"function\": "
                              "{\"name\", \"arguments\": a JSON object or its text}}", i);
                goto done;
            }
            char idbuf[32];
            SessTools *t = st_get(s);
            if (!t) {
                cJSON_Delete(a);
                rc = api_serr(s, DUET_ERR_NOMEM, "out of memory");
                goto done;
            }
            if (!id || !id[0]) {
                snprintf(idbuf, sizeof idbuf, "call_%d", t->next_id++);
                id = idbuf;
            } else if (!strncmp(id, "call_", 5) && atoi(id + 5) >= t->next_id) {
                t->next_id = atoi(id + 5) + 1;
            }
            cJSON *nc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
            cJSON_AddStringToObject(nc, "id", id);
            cJSON_AddStringToObject(nc, "type", "function");
            cJSON_AddStringToObject(fn, "name", name);
            cJSON_AddItemToObject(fn, "arguments", a);
            cJSON_AddItemToObject(nc, "function", fn);
            cJSON_AddItemToArray(calls, nc);
            i++;
        }
    }
    if ((rc = duet_session_append_message(s, role, content))) goto done;
    cJSON *last = cJSON_GetArrayItem(s->messages, cJSON_GetArraySize(s->messages) - 1);
    if (calls) {
        cJSON_AddItemToObject(last, "tool_calls", calls);
        calls = NULL;
    }
    const char *keys[] = {"tool_call_id", "name"};
    for (int k = 0; k < 2; k++) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, keys[k]));
        if (v) cJSON_AddStringToObject(last, keys[k], v);
    }
    if (!strcmp(role, "tool") && !cJSON_GetObjectItemCaseSensitive(last, "name")) {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "tool_call_id"));
        const char *nm = id ? call_name(s, id) : NULL;
        if (nm) {
            char *copy = strdup(nm);
            if (copy) cJSON_AddStringToObject(last, "name", copy);
            free(copy);
        }
    }
done:
    free(content);
    cJSON_Delete(calls);
    cJSON_Delete(m);
    return rc;
}
