/* Unit tests for common/providers/template.c: placeholders, fallbacks, base64(), syntax errors,
 * caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/template.h"

/* name=value pairs, ended by a NULL name. */
typedef struct {
    const char *name;
    const char *value;
} var_t;

static const var_t vars[] = {
    {"connectionConfig.subdomain", "acme"},
    {"connectionConfig.empty", ""},
    {"credentials.username", "user"},
    {"credentials.password", "pw"},
    {"apiKey", "key"},
    {"accessToken", "tok"},
    {"weird_name-1.x", "w"},
    {NULL, NULL},
};

static const char *lookup(const char *name, void *ud)
{
    const var_t *v = ud;
    for (; v->name; v++) {
        if (strcmp(v->name, name) == 0)
            return v->value;
    }
    return NULL;
}

/* Renders tmpl with vars and checks the result. */
static void expect(const char *tmpl, const char *want, bool want_complete)
{
    char *out = NULL, why[128] = "";
    bool complete = !want_complete;
    jn_err_t err = jn_template_render(tmpl, lookup, (void *)vars, &out, &complete, why, sizeof why);
    if (err != JN_OK)
        fail_msg("render '%s': %s (%s)", tmpl, jn_err_str(err), why);
    assert_non_null(out);
    if (strcmp(out, want) != 0 || complete != want_complete)
        fail_msg("render '%s': got '%s' (complete=%d), want '%s' (complete=%d)", tmpl, out,
                 complete, want, want_complete);
    free(out);
}

/* Renders tmpl, expects err and, when why_part is set, a why containing it. */
static void expect_error(const char *tmpl, jn_err_t want, const char *why_part)
{
    char *out = (char *)"untouched", why[160] = "";
    bool complete = true;
    jn_err_t err = jn_template_render(tmpl, lookup, (void *)vars, &out, &complete, why, sizeof why);
    if (err != want)
        fail_msg("render '%s': got %s (%s), want %s", tmpl, jn_err_str(err), why, jn_err_str(want));
    assert_null(out);
    assert_false(complete);
    if (why_part && !strstr(why, why_part))
        fail_msg("render '%s': why '%s' lacks '%s'", tmpl, why, why_part);
    /* check agrees on syntax errors */
    if (want == JN_ERR_INVALID)
        assert_int_equal(jn_template_check(tmpl, NULL, NULL, why, sizeof why), JN_ERR_INVALID);
}

static void test_plain_text(void **state)
{
    (void)state;
    expect("", "", true);
    expect("https://api.github.com", "https://api.github.com", true);
    expect("application/vnd.github+json", "application/vnd.github+json", true);
    expect("a | b", "a | b", true);
    expect("  spaces kept  ", "  spaces kept  ", true);
    expect("}{)(", "}{)(", true);
}

static void test_placeholder_kinds(void **state)
{
    (void)state;
    expect("https://${connectionConfig.subdomain}.zendesk.com", "https://acme.zendesk.com", true);
    expect("${credentials.username}", "user", true);
    expect("Bearer ${apiKey}", "Bearer key", true);
    expect("Bearer ${accessToken}", "Bearer tok", true);
    expect("${weird_name-1.x}", "w", true);
    expect("${apiKey}${accessToken}", "keytok", true);
}

static void test_unresolved_left_literal(void **state)
{
    (void)state;
    expect("https://${connectionConfig.region}.x.com", "https://${connectionConfig.region}.x.com",
           false);
    /* Resolved ones are substituted, unresolved ones kept. */
    expect("${apiKey}/${credentials.none}", "key/${credentials.none}", false);
    /* An empty value counts as unresolved. */
    expect("x-${connectionConfig.empty}", "x-${connectionConfig.empty}", false);

    /* No lookup at all: nothing resolves. */
    char *out = NULL;
    bool complete = true;
    assert_int_equal(jn_template_render("a ${apiKey}", NULL, NULL, &out, &complete, NULL, 0),
                     JN_OK);
    assert_string_equal(out, "a ${apiKey}");
    assert_false(complete);
    free(out);
}

static void test_alternatives(void **state)
{
    (void)state;
    /* A complete: A. */
    expect("https://${connectionConfig.subdomain}.x.com || https://x.com", "https://acme.x.com",
           true);
    /* A incomplete: B. */
    expect("https://${connectionConfig.region}.x.com || https://x.com", "https://x.com", true);
    expect("${connectionConfig.empty} || 2023-06-01", "2023-06-01", true);
    /* None complete: the last, with its placeholders literal. */
    expect("${connectionConfig.a} || ${connectionConfig.b}/x", "${connectionConfig.b}/x", false);
    /* Three alternatives: the first complete one wins. */
    expect("${connectionConfig.a} || ${connectionConfig.b} || ${apiKey}", "key", true);
    expect("${connectionConfig.a} || ${apiKey} || c", "key", true);
    expect("${connectionConfig.a} || ${connectionConfig.b} || ${connectionConfig.c}",
           "${connectionConfig.c}", false);
    /* Spaces and tabs around "||" are ignored, no others. */
    expect("${connectionConfig.a}\t ||  \t b ", "b ", true);
    expect("${connectionConfig.a}||b", "b", true);
    expect(" a || b", " a", true);
}

static void test_bars_inside_placeholder_do_not_split(void **state)
{
    (void)state;
    expect("${base64(a||b)}", "YXx8Yg==", true);
    expect("${connectionConfig.a} || ${base64(a||b)}", "YXx8Yg==", true);
    expect_error("${a||b}", JN_ERR_INVALID, "offset 3");
}

static void test_base64(void **state)
{
    (void)state;
    expect("Basic ${base64(${credentials.username}/token:${credentials.password})}",
           "Basic dXNlci90b2tlbjpwdw==", true);
    expect("Basic ${base64(${apiKey}:)}", "Basic a2V5Og==", true);
    expect("${base64()}", "", true);
    expect("${base64(a(b)c)}", "YShiKWM=", true); /* balanced parentheses are text */
    expect("${base64(${base64(a)})}", "WVE9PQ==", true);
    /* Unresolved inside: the whole call is left as written (no resolved part leaks). */
    expect("Basic ${base64(${credentials.username}:${credentials.secret})}",
           "Basic ${base64(${credentials.username}:${credentials.secret})}", false);
    expect("${base64(x${base64(${connectionConfig.nope})})} || fallback", "fallback", true);
    expect("${base64(x${base64(${connectionConfig.nope})})}",
           "${base64(x${base64(${connectionConfig.nope})})}", false);
    expect("${base64(${base64(${apiKey})}:)} || no", "YTJWNTo=", true);
}

static void test_literal_dollar(void **state)
{
    (void)state;
    expect("$", "$", true);
    expect("cost: $5", "cost: $5", true);
    expect("$$", "$$", true);
    expect("a$b$", "a$b$", true);
    expect("$${apiKey}", "$key", true);
    expect("${base64($)}", "JA==", true);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("https://${connectionConfig.subdomain.x.com", JN_ERR_INVALID,
                 "unclosed ${ at offset 8");
    expect_error("abc ${", JN_ERR_INVALID, "unclosed ${ at offset 4");
    expect_error("${}", JN_ERR_INVALID, "empty placeholder");
    expect_error("${sha1(x)}", JN_ERR_INVALID, "unknown function 'sha1'");
    expect_error("${base64(a(b)}", JN_ERR_INVALID, "unbalanced parentheses");
    expect_error("${base64(a))}", JN_ERR_INVALID, "unbalanced parentheses");
    expect_error("${base64(abc", JN_ERR_INVALID, "unclosed ${base64(");
    expect_error("${base64(abc)", JN_ERR_INVALID, "expected '}'");
    expect_error("${(x)}", JN_ERR_INVALID, "missing function name");
    expect_error("${api key}", JN_ERR_INVALID, "unexpected ' '");
    expect_error("${1abc}", JN_ERR_INVALID, "invalid placeholder name");
    expect_error("${a..b}", JN_ERR_INVALID, "invalid placeholder name");
    expect_error("${a.}", JN_ERR_INVALID, "invalid placeholder name");
    expect_error("a || ", JN_ERR_INVALID, "empty alternative");
    expect_error("|| b", JN_ERR_INVALID, "empty alternative");
    expect_error("a ||  || b", JN_ERR_INVALID, "empty alternative");
    /* A syntax error in a later alternative fails even when an earlier one is complete. */
    expect_error("${apiKey} || ${sha1(x)}", JN_ERR_INVALID, "unknown function");
    /* Too deep. */
    char deep[256];
    size_t n = 0;
    for (int i = 0; i <= JN_TEMPLATE_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "${base64(");
    for (int i = 0; i <= JN_TEMPLATE_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, ")}");
    expect_error(deep, JN_ERR_INVALID, "nested");
    /* At the limit it works. */
    deep[0] = '\0';
    n = 0;
    for (int i = 0; i < JN_TEMPLATE_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "${base64(");
    for (int i = 0; i < JN_TEMPLATE_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, ")}");
    expect(deep, "", true);
    /* A name too long. */
    char name[JN_TEMPLATE_MAX_NAME + 8];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    char tmpl[sizeof name + 8];
    snprintf(tmpl, sizeof tmpl, "${%s}", name);
    expect_error(tmpl, JN_ERR_INVALID, "longer than");
}

typedef struct {
    char names[16][64];
    int count;
} seen_t;

static void collect(const char *name, void *ud)
{
    seen_t *s = ud;
    if (s->count < 16)
        snprintf(s->names[s->count++], sizeof s->names[0], "%s", name);
}

static void test_check_reports_every_name(void **state)
{
    (void)state;
    seen_t s = {0};
    char why[128];
    const char *tmpl = "https://${connectionConfig.a}.x/${credentials.b} || "
                       "Basic ${base64(${apiKey}:${base64(${accessToken})})} || ${apiKey}";
    assert_int_equal(jn_template_check(tmpl, collect, &s, why, sizeof why), JN_OK);
    assert_int_equal(s.count, 5);
    assert_string_equal(s.names[0], "connectionConfig.a");
    assert_string_equal(s.names[1], "credentials.b");
    assert_string_equal(s.names[2], "apiKey");
    assert_string_equal(s.names[3], "accessToken");
    assert_string_equal(s.names[4], "apiKey");

    /* Nothing is reported for an invalid template. */
    s.count = 0;
    assert_int_equal(jn_template_check("${apiKey} ${", collect, &s, why, sizeof why),
                     JN_ERR_INVALID);
    assert_int_equal(s.count, 0);
    assert_string_equal(why, "unclosed ${ at offset 10");
}

typedef struct {
    char log[512];
} walk_t;

static jn_err_t record(const jn_template_part_t *part, void *ud)
{
    walk_t *w = ud;
    static const char kinds[] = "ATNC";
    size_t n = strlen(w->log);
    snprintf(w->log + n, sizeof w->log - n, "%c%d:%zu:%.*s|", kinds[part->kind], part->depth,
             part->alternative, (int)part->len, part->text);
    return JN_OK;
}

static jn_err_t stop_at_name(const jn_template_part_t *part, void *ud)
{
    (void)ud;
    return part->kind == JN_TEMPLATE_NAME ? JN_ERR_CONFLICT : JN_OK;
}

static void test_walk(void **state)
{
    (void)state;
    walk_t w = {""};
    assert_int_equal(jn_template_walk("https://${a}/p ||  x${base64(u:${b})}", record, &w, NULL, 0),
                     JN_OK);
    assert_string_equal(w.log, "A0:0:https://${a}/p|T0:0:https://|N0:0:a|T0:0:/p|"
                               "A0:1:x${base64(u:${b})}|T0:1:x|C0:1:base64|T1:1:u:|N1:1:b|");
    /* The visitor can stop the walk with its own error. */
    assert_int_equal(jn_template_walk("a ${b} c", stop_at_name, NULL, NULL, 0), JN_ERR_CONFLICT);
}

static void test_size_cap(void **state)
{
    (void)state;
    /* Literal text: exactly at the cap is fine, one byte more is not. */
    char *big = malloc(JN_TEMPLATE_MAX_OUTPUT + 2);
    memset(big, 'a', JN_TEMPLATE_MAX_OUTPUT + 1);
    big[JN_TEMPLATE_MAX_OUTPUT] = '\0';
    char *out = NULL, why[128];
    bool complete = false;
    assert_int_equal(jn_template_render(big, NULL, NULL, &out, &complete, why, sizeof why), JN_OK);
    assert_int_equal(strlen(out), JN_TEMPLATE_MAX_OUTPUT);
    free(out);
    big[JN_TEMPLATE_MAX_OUTPUT] = 'a';
    big[JN_TEMPLATE_MAX_OUTPUT + 1] = '\0';
    assert_int_equal(jn_template_render(big, NULL, NULL, &out, &complete, why, sizeof why),
                     JN_ERR_TOO_LARGE);
    assert_null(out);
    assert_non_null(strstr(why, "exceeds"));

    /* Values: two large values together exceed it; so does a base64 expansion. */
    memset(big, 'v', 40000);
    big[40000] = '\0';
    var_t large[] = {{"apiKey", big}, {NULL, NULL}};
    assert_int_equal(
        jn_template_render("${apiKey}${apiKey}", lookup, large, &out, &complete, why, sizeof why),
        JN_ERR_TOO_LARGE);
    assert_int_equal(
        jn_template_render("${apiKey}", lookup, large, &out, &complete, why, sizeof why), JN_OK);
    free(out);
    big[50000] = 'v';
    big[50001] = '\0';
    memset(big, 'v', 50001);
    assert_int_equal(
        jn_template_render("${base64(${apiKey})}", lookup, large, &out, &complete, why, sizeof why),
        JN_ERR_TOO_LARGE);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text),
        cmocka_unit_test(test_placeholder_kinds),
        cmocka_unit_test(test_unresolved_left_literal),
        cmocka_unit_test(test_alternatives),
        cmocka_unit_test(test_bars_inside_placeholder_do_not_split),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_literal_dollar),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_check_reports_every_name),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_size_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
