/* test_templates.c - real chat templates (tests/fixtures/templates/NAME.jinja,
 * taken from the model repositories that ship them) rendered by duet over the
 * cases of cases.json, compared byte for byte with expected.json, which
 * tests/fixtures/gen/make_templates.py makes with Python's jinja2 set up as
 * transformers' apply_chat_template sets it up. The variables are the ones
 * chat.c passes (messages, tools, documents, add_generation_prompt, the
 * special tokens) plus a case's extras. Where jinja2 fails duet must fail too,
 * and with the template's own text when the template called raise_exception.
 *
 *   test_templates [DIR [-v]]   DIR defaults to tests/fixtures/templates;
 *                               -v prints the first difference of each case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "text/jinja.h"
#include "util/json.h"

/* Prints where two renders first differ, with a little context. */
static void show_diff(const char *tpl, const char *cs, const char *want, const char *got)
{
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    size_t a = i > 60 ? i - 60 : 0;
    printf("  %s/%s: differ at byte %zu\n    jinja2: %.*s\n    duet:   %.*s\n", tpl, cs, i, (int)(i - a + 80 < strlen(want + a) ? i - a + 80 : strlen(want + a)),
           want + a, (int)(i - a + 80 < strlen(got + a) ? i - a + 80 : strlen(got + a)), got + a);
}

static Jv *case_vars(const cJSON *spec, const cJSON *c)
{
    Jv *vars = jv_dict();
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(c, "tools");
    int rc = vars ? 0 : -1;
    if (!rc) rc = jv_dict_set(vars, "messages", 8, jv_from_cjson(cJSON_GetObjectItemCaseSensitive(c, "messages")));
    if (!rc) rc = jv_dict_set(vars, "tools", 5, tools ? jv_from_cjson(tools) : jv_none());
    if (!rc) rc = jv_dict_set(vars, "documents", 9, jv_none());
    if (!rc)
        rc = jv_dict_set(vars, "add_generation_prompt", 21,
                         jv_bool(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt"))));
    const cJSON *lists[2] = {cJSON_GetObjectItemCaseSensitive(spec, "tokens"), cJSON_GetObjectItemCaseSensitive(c, "extra")};
    for (int k = 0; k < 2; k++)
        for (const cJSON *x = lists[k] ? lists[k]->child : NULL; x && !rc; x = x->next)
            rc = jv_dict_set(vars, x->string, strlen(x->string), jv_from_cjson(x));
    if (rc) {
        jv_unref(vars);
        return NULL;
    }
    return vars;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures/templates";
    int verbose = argc > 2 && !strcmp(argv[2], "-v");
    char path[1024];
    Err e;
    snprintf(path, sizeof path, "%s/cases.json", dir);
    cJSON *spec = json_parse_file(path, &e);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    cJSON *exp = json_parse_file(path, &e);
    CHECK(spec && exp, "fixtures load: %s", e.msg);
    if (!spec || !exp) return check_summary("templates");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(spec, "cases");
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(spec, "now");
    int n_tpl = 0, n_same = 0, n_case = 0, n_case_same = 0;
    const cJSON *tr;
    cJSON_ArrayForEach(tr, cJSON_GetObjectItemCaseSensitive(exp, "renders")) {
        n_tpl++;
        snprintf(path, sizeof path, "%s/%s.jinja", dir, tr->string);
        size_t len = 0;
        char *src = file_read(path, &len, &e);
        CHECK(src, "%s: %s", tr->string, e.msg);
        if (!src) continue;
        JinjaTemplate *t = jinja_parse(src, len, tr->string, &e);
        char perr[sizeof e.msg];
        snprintf(perr, sizeof perr, "%s", t ? "" : e.msg);
        if (t) jinja_set_time(t, (long long)now->valuedouble);
        int all = 1;
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            const char *cs = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
            const cJSON *want = cJSON_GetObjectItemCaseSensitive(tr, cs);
            const cJSON *wout = cJSON_GetObjectItemCaseSensitive(want, "out");
            const cJSON *werr = cJSON_GetObjectItemCaseSensitive(want, "error");
            const int raised = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(want, "raised"));
            char *got = NULL;
            if (t) {
                Jv *vars = case_vars(spec, c);
                got = vars ? jinja_render(t, vars, NULL, &e) : NULL;
                jv_unref(vars);
            }
            int ok;
            if (cJSON_IsString(wout)) {
                ok = got && !strcmp(got, wout->valuestring);
                if (!ok && verbose) {
                    if (got) show_diff(tr->string, cs, wout->valuestring, got);
                    else printf("  %s/%s: duet fails: %s\n", tr->string, cs, t ? e.msg : perr);
                }
            } else {
                ok = !got && (!raised || !strcmp(e.msg, werr->valuestring));
                if (!ok && verbose)
                    printf("  %s/%s: jinja2 fails (%s), duet %s%s\n", tr->string, cs, werr->valuestring,
                           got ? "renders" : "fails: ", got ? "" : e.msg);
            }
            CHECK(ok, "%s/%s renders as jinja2 does", tr->string, cs);
            n_case++;
            n_case_same += ok;
            all &= ok;
            free(got);
        }
        n_same += all;
        jinja_free(t);
        free(src);
    }
    printf("identical: %d of %d templates, %d of %d renders\n", n_same, n_tpl, n_case_same, n_case);
    CHECK(n_tpl > 0, "the corpus has templates");
    cJSON_Delete(spec);
    cJSON_Delete(exp);
    return check_summary("templates");
}
