/* Unit tests for common/providers/paginate.c: each strategy walked over canned pages, stop
 * conditions, the Link header parser, config merging and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/paginate.h"

static json_object *json(const char *text)
{
    json_object *o = json_tokener_parse(text);
    if (!o)
        fail_msg("test JSON does not parse: %s", text);
    return o;
}

/* Fails unless o is the JSON value written in expected (NULL: o must be NULL). */
static void assert_json(json_object *o, const char *expected)
{
    if (!expected) {
        if (o)
            fail_msg("expected nothing, got %s", json_object_to_json_string(o));
        return;
    }
    json_object *e = json(expected);
    if (!o || !json_object_equal(o, e))
        fail_msg("expected %s, got %s", expected, o ? json_object_to_json_string(o) : "NULL");
    json_object_put(e);
}

/* One response fed to the paginator and what came back. */
typedef struct {
    jn_err_t err;
    json_object *body;
    json_object *records;
    bool done;
    char *url;
    json_object *params;
    char why[256];
} step_t;

static void step_clear(step_t *s)
{
    json_object_put(s->body);
    json_object_put(s->params);
    free(s->url);
    memset(s, 0, sizeof *s);
}

/* Feeds status, link and body (JSON text or NULL) to p; s is cleared first. */
static jn_err_t feed(jn_paginator_t *p, step_t *s, int status, const char *link, const char *body)
{
    step_clear(s);
    s->body = body ? json(body) : NULL;
    s->err = jn_paginator_next(p, status, link, s->body, &s->records, &s->done, &s->url, &s->params,
                               s->why, sizeof s->why);
    if (s->err) {
        assert_true(s->done);
        assert_null(s->records);
        assert_null(s->url);
        assert_null(s->params);
    }
    return s->err;
}

/* Feeds a 200 response and checks the records and the next request; next is the expected
 * params (JSON), or the URL for link pagination, or NULL when the walk must end. */
static void expect_page(jn_paginator_t *p, step_t *s, const char *link, const char *body,
                        const char *records, const char *next)
{
    if (feed(p, s, 200, link, body) != JN_OK)
        fail_msg("page refused: %s", s->why);
    assert_json(s->records, records);
    if (!next) {
        assert_true(s->done);
        assert_null(s->url);
        assert_null(s->params);
    } else if (jn_paginator_type(p) == JN_PAGINATE_LINK) {
        assert_false(s->done);
        assert_null(s->params);
        assert_non_null(s->url);
        assert_string_equal(s->url, next);
    } else {
        assert_false(s->done);
        assert_null(s->url);
        assert_json(s->params, next);
    }
}

static jn_paginator_t *make(const char *config, const char *overrides, int limit)
{
    json_object *c = config ? json(config) : NULL;
    json_object *o = overrides ? json(overrides) : NULL;
    jn_paginator_t *p = NULL;
    char why[256] = "";
    if (jn_paginator_new(c, o, limit, &p, why, sizeof why) != JN_OK)
        fail_msg("config refused: %s", why);
    json_object_put(c);
    json_object_put(o);
    return p;
}

static void assert_first(jn_paginator_t *p, const char *expected)
{
    json_object *first = jn_paginator_first_params(p);
    assert_json(first, expected);
    json_object_put(first);
}

/* ---- cursor ---- */

static const char *const cursor_config =
    "{\"type\":\"cursor\",\"cursor_path_in_response\":\"meta.next\","
    "\"cursor_name_in_request\":\"after\",\"limit_name_in_request\":\"limit\","
    "\"response_path\":\"data\"}";

static void test_cursor_walk(void **state)
{
    (void)state;
    jn_paginator_t *p = make(cursor_config, NULL, 2);
    assert_int_equal(jn_paginator_type(p), JN_PAGINATE_CURSOR);
    assert_first(p, "{\"limit\":\"2\"}");
    step_t s = {0};
    expect_page(p, &s, NULL, "{\"data\":[1,2],\"meta\":{\"next\":\"c1\"}}", "[1,2]",
                "{\"limit\":\"2\",\"after\":\"c1\"}");
    expect_page(p, &s, NULL, "{\"data\":[3,4],\"meta\":{\"next\":\"c2\"}}", "[3,4]",
                "{\"limit\":\"2\",\"after\":\"c2\"}");
    /* Numbers are sent as text; a short page does not end a cursor walk. */
    expect_page(p, &s, NULL, "{\"data\":[5],\"meta\":{\"next\":12345678901}}", "[5]",
                "{\"limit\":\"2\",\"after\":\"12345678901\"}");
    expect_page(p, &s, NULL, "{\"data\":[6,7],\"meta\":{\"next\":null}}", "[6,7]", NULL);
    assert_int_equal(jn_paginator_pages(p), 4);
    assert_false(jn_paginator_capped(p));
    /* The walk is over. */
    assert_int_equal(feed(p, &s, 200, NULL, "{\"data\":[1],\"meta\":{\"next\":\"x\"}}"),
                     JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "already ended"));
    step_clear(&s);
    jn_paginator_free(p);

    /* Without a limit, nothing but the cursor is sent. */
    p = make(cursor_config, NULL, 0);
    assert_first(p, "{}");
    expect_page(p, &s, NULL, "{\"data\":[1],\"meta\":{\"next\":\"c1\"}}", "[1]",
                "{\"after\":\"c1\"}");
    step_clear(&s);
    jn_paginator_free(p);
}

static void test_cursor_stops(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *records;
    } stops[] = {
        {"{\"data\":[1]}", "[1]"},                              /* no meta */
        {"{\"data\":[1],\"meta\":{}}", "[1]"},                  /* missing cursor */
        {"{\"data\":[1],\"meta\":{\"next\":null}}", "[1]"},     /* null */
        {"{\"data\":[1],\"meta\":{\"next\":\"\"}}", "[1]"},     /* empty */
        {"{\"data\":[1],\"meta\":null}", "[1]"},                /* null parent */
        {"{\"data\":[],\"meta\":{\"next\":\"more\"}}", "[]"},   /* empty page */
        {"{\"data\":null,\"meta\":{\"next\":\"more\"}}", NULL}, /* null records: empty */
    };
    step_t s = {0};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        jn_paginator_t *p = make(cursor_config, NULL, 10);
        expect_page(p, &s, NULL, stops[i].body, stops[i].records, NULL);
        jn_paginator_free(p);
    }

    /* The same cursor twice in a row ends the walk instead of looping. */
    jn_paginator_t *p = make(cursor_config, NULL, 0);
    expect_page(p, &s, NULL, "{\"data\":[1],\"meta\":{\"next\":\"A\"}}", "[1]",
                "{\"after\":\"A\"}");
    expect_page(p, &s, NULL, "{\"data\":[2],\"meta\":{\"next\":\"A\"}}", "[2]", NULL);
    jn_paginator_free(p);

    /* So does one seen earlier in the walk (A, B, A). */
    p = make(cursor_config, NULL, 0);
    expect_page(p, &s, NULL, "{\"data\":[1],\"meta\":{\"next\":\"A\"}}", "[1]",
                "{\"after\":\"A\"}");
    expect_page(p, &s, NULL, "{\"data\":[2],\"meta\":{\"next\":\"B\"}}", "[2]",
                "{\"after\":\"B\"}");
    expect_page(p, &s, NULL, "{\"data\":[3],\"meta\":{\"next\":\"A\"}}", "[3]", NULL);
    jn_paginator_free(p);

    /* A cursor that is neither a string nor a number is a shape error. */
    p = make(cursor_config, NULL, 0);
    assert_int_equal(feed(p, &s, 200, NULL, "{\"data\":[1],\"meta\":{\"next\":{\"x\":1}}}"),
                     JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "'meta.next' is an object"));
    jn_paginator_free(p);

    /* A body that is an array, with no response_path: records, but no cursor. */
    p = make("{\"type\":\"cursor\",\"cursor_path_in_response\":\"next\","
             "\"cursor_name_in_request\":\"cursor\"}",
             NULL, 0);
    expect_page(p, &s, NULL, "[1,2]", "[1,2]", NULL);
    jn_paginator_free(p);

    /* An object body and no response_path: no records, but the cursor is followed. */
    p = make("{\"type\":\"cursor\",\"cursor_path_in_response\":\"next\","
             "\"cursor_name_in_request\":\"cursor\"}",
             NULL, 0);
    expect_page(p, &s, NULL, "{\"items\":[1],\"next\":\"n1\"}", NULL, "{\"cursor\":\"n1\"}");
    expect_page(p, &s, NULL, "{\"items\":[2]}", NULL, NULL);
    step_clear(&s);
    jn_paginator_free(p);
}

/* Microsoft Graph: "@odata.nextLink" is one key, not a path, and sits beside "value". */
static void test_whole_key_paths(void **state)
{
    (void)state;
    step_t s = {0};
    jn_paginator_t *p =
        make("{\"type\":\"link\",\"link_path_in_response_body\":\"@odata.nextLink\","
             "\"response_path\":\"value\"}",
             NULL, 0);
    expect_page(p, &s, NULL,
                "{\"value\":[{\"id\":1}],\"@odata.nextLink\":"
                "\"https://graph.microsoft.com/v1.0/users?$skiptoken=X1\"}",
                "[{\"id\":1}]", "https://graph.microsoft.com/v1.0/users?$skiptoken=X1");
    expect_page(p, &s, NULL,
                "{\"value\":[{\"id\":2}],\"@odata.nextLink\":"
                "\"https://graph.microsoft.com/v1.0/users?$skiptoken=X2\"}",
                "[{\"id\":2}]", "https://graph.microsoft.com/v1.0/users?$skiptoken=X2");
    expect_page(p, &s, NULL, "{\"value\":[{\"id\":3}],\"@odata.count\":3}", "[{\"id\":3}]", NULL);
    jn_paginator_free(p);

    /* A whole key wins over the nested path of the same spelling. */
    p = make("{\"type\":\"cursor\",\"cursor_path_in_response\":\"a.b\","
             "\"cursor_name_in_request\":\"c\"}",
             NULL, 0);
    expect_page(p, &s, NULL, "{\"a.b\":\"whole\",\"a\":{\"b\":\"nested\"}}", NULL,
                "{\"c\":\"whole\"}");
    expect_page(p, &s, NULL, "{\"a\":{\"b\":\"nested\"}}", NULL, "{\"c\":\"nested\"}");
    jn_paginator_free(p);

    /* The whole rest of a path is tried at every level. */
    p = make("{\"type\":\"link\",\"link_path_in_response_body\":\"page.@odata.nextLink\","
             "\"response_path\":\"page.value\"}",
             NULL, 0);
    expect_page(p, &s, NULL, "{\"page\":{\"value\":[1],\"@odata.nextLink\":\"/next\"}}", "[1]",
                "/next");
    step_clear(&s);
    jn_paginator_free(p);
}

/* ---- link ---- */

static void test_link_header_walk(void **state)
{
    (void)state;
    jn_paginator_t *p = make("{\"type\":\"link\",\"link_rel_in_response_header\":\"next\","
                             "\"limit_name_in_request\":\"per_page\"}",
                             NULL, 2);
    assert_int_equal(jn_paginator_type(p), JN_PAGINATE_LINK);
    assert_first(p, "{\"per_page\":\"2\"}");
    step_t s = {0};
    expect_page(p, &s,
                "<https://api.github.com/repositories/1/issues?per_page=2&page=2>; rel=\"next\", "
                "<https://api.github.com/repositories/1/issues?per_page=2&page=5>; rel=\"last\"",
                "[{\"n\":1},{\"n\":2}]", "[{\"n\":1},{\"n\":2}]",
                "https://api.github.com/repositories/1/issues?per_page=2&page=2");
    expect_page(p, &s,
                "<https://api.github.com/repositories/1/issues?per_page=2&page=1>; rel=\"prev\", "
                "<https://api.github.com/repositories/1/issues?per_page=2&page=3>; rel=\"next\"",
                "[{\"n\":3},{\"n\":4}]", "[{\"n\":3},{\"n\":4}]",
                "https://api.github.com/repositories/1/issues?per_page=2&page=3");
    /* Relative links are returned as they are. */
    expect_page(p, &s, "</repositories/1/issues?page=4>; rel=next", "[{\"n\":5}]", "[{\"n\":5}]",
                "/repositories/1/issues?page=4");
    expect_page(p, &s,
                "<https://api.github.com/repositories/1/issues?per_page=2&page=3>; rel=\"prev\"",
                "[{\"n\":6}]", "[{\"n\":6}]", NULL);
    step_clear(&s);
    jn_paginator_free(p);
}

static void test_link_stops(void **state)
{
    (void)state;
    static const char *const config =
        "{\"type\":\"link\",\"link_rel_in_response_header\":\"next\"}";
    step_t s = {0};

    /* No Link header, an empty URL, an empty page. */
    jn_paginator_t *p = make(config, NULL, 0);
    expect_page(p, &s, NULL, "[1]", "[1]", NULL);
    jn_paginator_free(p);
    p = make(config, NULL, 0);
    expect_page(p, &s, "<>; rel=next", "[1]", "[1]", NULL);
    jn_paginator_free(p);
    p = make(config, NULL, 0);
    expect_page(p, &s, "</p2>; rel=next", "[]", "[]", NULL);
    jn_paginator_free(p);

    /* A link returned before ends the walk: at once, or after a detour. */
    p = make(config, NULL, 0);
    expect_page(p, &s, "</p2>; rel=next", "[1]", "[1]", "/p2");
    expect_page(p, &s, "</p2>; rel=next", "[2]", "[2]", NULL);
    jn_paginator_free(p);
    p = make(config, NULL, 0);
    expect_page(p, &s, "</p2>; rel=next", "[1]", "[1]", "/p2");
    expect_page(p, &s, "</p3>; rel=next", "[2]", "[2]", "/p3");
    expect_page(p, &s, "</p2>; rel=next", "[3]", "[3]", NULL);
    jn_paginator_free(p);

    /* Header first, then the body; a body link that is not a string is a shape error. */
    p = make("{\"type\":\"link\",\"link_rel_in_response_header\":\"next\","
             "\"link_path_in_response_body\":\"links.next\",\"response_path\":\"items\"}",
             NULL, 0);
    expect_page(p, &s, "</h2>; rel=next", "{\"items\":[1],\"links\":{\"next\":\"/b2\"}}", "[1]",
                "/h2");
    expect_page(p, &s, "</h2>; rel=prev", "{\"items\":[2],\"links\":{\"next\":\"/b3\"}}", "[2]",
                "/b3");
    expect_page(p, &s, NULL, "{\"items\":[3],\"links\":{\"next\":null}}", "[3]", NULL);
    jn_paginator_free(p);
    p = make("{\"type\":\"link\",\"link_path_in_response_body\":\"next\"}", NULL, 0);
    assert_int_equal(feed(p, &s, 200, NULL, "{\"next\":5}"), JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "'next' is a number, not a string"));
    jn_paginator_free(p);

    /* A body that is not JSON: the header alone drives the walk. */
    p = make(config, NULL, 0);
    expect_page(p, &s, "</p2>; rel=next", NULL, NULL, "/p2");
    expect_page(p, &s, NULL, NULL, NULL, NULL);
    step_clear(&s);
    jn_paginator_free(p);
}

static void test_link_parse(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        const char *rel;
        const char *url; /* NULL: none found */
    } cases[] = {
        {"<https://a/2>; rel=\"next\"", "next", "https://a/2"},
        {"<https://a/2>; rel=next", "next", "https://a/2"},
        {"<https://a/2>;rel=next", "next", "https://a/2"},
        {"<https://a/2> ; rel = \"next\"", "next", "https://a/2"},
        {"  <https://a/2>\t;\trel=next  ", "next", "https://a/2"},
        {"<https://a/1>; rel=\"prev\", <https://a/3>; rel=\"next\"", "next", "https://a/3"},
        {"<https://a/1>; rel=\"prev\",<https://a/3>; rel=\"next\"", "next", "https://a/3"},
        {"<https://a/1>; rel=\"prev\"", "next", NULL},
        {"<https://a/9>; rel=\"next last\"", "next", "https://a/9"},
        {"<https://a/9>; rel=\"last  next\"", "next", "https://a/9"},
        {"<https://a/9>; rel=\"last next\"", "last", "https://a/9"},
        {"<https://a/9>; rel=\"nextpage\"", "next", NULL},
        {"<https://a/9>; rel=\"pre next\"", "prev", NULL},
        {"<https://a/2>; REL=\"NEXT\"", "next", "https://a/2"},
        {"<https://a/2>; rel=\"Next\"", "NEXT", "https://a/2"},
        /* Commas and semicolons inside <...> belong to the URL. */
        {"<https://a/x?f=a,b;c=d>; rel=\"next\"", "next", "https://a/x?f=a,b;c=d"},
        {"<https://a/p?x=1,2>; rel=prev, <https://a/n?y=3;4,5>; rel=next", "next",
         "https://a/n?y=3;4,5"},
        /* Other parameters before and after rel, with commas and semicolons in quotes. */
        {"<https://a/2>; title=\"a, b; c\"; rel=\"next\"; type=\"text/html\"", "next",
         "https://a/2"},
        {"<https://a/1>; title=\"next, really\"; rel=prev, <https://a/3>; rel=next", "next",
         "https://a/3"},
        {"<https://a/2>; title=\"say \\\"hi\\\"\"; rel=next", "next", "https://a/2"},
        /* Only the first rel parameter counts. */
        {"<https://a/1>; rel=prev; rel=next, <https://a/3>; rel=next", "next", "https://a/3"},
        /* A parameter without a value, and anchor. */
        {"<https://a/2>; crossorigin; rel=next", "next", "https://a/2"},
        {"<https://a/2>; anchor=\"#x\"; rel=next", "next", "https://a/2"},
        /* Two Link header lines joined by the client. */
        {"<https://a/1>; rel=first, <https://a/5>; rel=last, <https://a/2>; rel=next", "next",
         "https://a/2"},
        /* The first matching entry wins. */
        {"<https://a/2>; rel=next, <https://a/3>; rel=next", "next", "https://a/2"},
        /* Malformed entries are skipped. */
        {"garbage, <https://a/2>; rel=next", "next", "https://a/2"},
        {"<https://a/1> junk; rel=next, <https://a/2>; rel=next", "next", "https://a/2"},
        {"<https://a/1>; rel=\"next", "next", NULL},
        {"<https://a/1; rel=next", "next", NULL},
        {"", "next", NULL},
        {",,, ,", "next", NULL},
        {"<https://a/1>; rel", "next", NULL},
        {"<https://a/1>; rel=", "next", NULL},
        {"<https://a/1>", "next", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *url = jn_paginate_link_find(cases[i].header, cases[i].rel);
        if (!cases[i].url && url)
            fail_msg("case %zu: found '%s' in %s", i, url, cases[i].header);
        if (cases[i].url && (!url || strcmp(url, cases[i].url) != 0))
            fail_msg("case %zu: expected '%s', got '%s'", i, cases[i].url, url ? url : "NULL");
        free(url);
    }
    assert_null(jn_paginate_link_find(NULL, "next"));
    assert_null(jn_paginate_link_find("<https://a/2>; rel=next", ""));
    assert_null(jn_paginate_link_find("<https://a/2>; rel=next", NULL));
}

/* ---- offset ---- */

static void test_offset_walk(void **state)
{
    (void)state;
    static const char *const config =
        "{\"type\":\"offset\",\"offset_name_in_request\":\"offset\","
        "\"limit_name_in_request\":\"limit\",\"response_path\":\"entries\"}";
    step_t s = {0};
    jn_paginator_t *p = make(config, NULL, 2);
    assert_int_equal(jn_paginator_type(p), JN_PAGINATE_OFFSET);
    assert_first(p, "{\"offset\":\"0\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[\"a\",\"b\"]}", "[\"a\",\"b\"]",
                "{\"offset\":\"2\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[\"c\",\"d\"]}", "[\"c\",\"d\"]",
                "{\"offset\":\"4\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[\"e\",\"f\"]}", "[\"e\",\"f\"]",
                "{\"offset\":\"6\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[\"g\"]}", "[\"g\"]", NULL); /* short page */
    jn_paginator_free(p);

    /* An empty page ends it even when it is the first. */
    p = make(config, NULL, 2);
    expect_page(p, &s, NULL, "{\"entries\":[]}", "[]", NULL);
    jn_paginator_free(p);

    /* per-page: the offset counts pages. */
    p = make(config, "{\"offset_calculation_method\":\"per-page\"}", 2);
    assert_first(p, "{\"offset\":\"0\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[1,2]}", "[1,2]", "{\"offset\":\"1\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[3,4]}", "[3,4]", "{\"offset\":\"2\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[5,6]}", "[5,6]", "{\"offset\":\"3\",\"limit\":\"2\"}");
    expect_page(p, &s, NULL, "{\"entries\":[]}", "[]", NULL);
    jn_paginator_free(p);

    /* No limit sent: the server's page size is unknown, so only an empty page ends it. */
    p = make(config, NULL, 0);
    assert_first(p, "{\"offset\":\"0\"}");
    expect_page(p, &s, NULL, "{\"entries\":[1,2,3]}", "[1,2,3]", "{\"offset\":\"3\"}");
    expect_page(p, &s, NULL, "{\"entries\":[4]}", "[4]", "{\"offset\":\"4\"}");
    expect_page(p, &s, NULL, "{\"entries\":[]}", "[]", NULL);
    jn_paginator_free(p);

    /* A limit but no parameter to send it in: the same. */
    p = make("{\"type\":\"offset\",\"offset_name_in_request\":\"skip\"}", NULL, 50);
    assert_first(p, "{\"skip\":\"0\"}");
    expect_page(p, &s, NULL, "[1]", "[1]", "{\"skip\":\"1\"}");
    jn_paginator_free(p);

    /* Offset needs the records to count. */
    p = make("{\"type\":\"offset\",\"offset_name_in_request\":\"skip\"}", NULL, 50);
    assert_int_equal(feed(p, &s, 200, NULL, "{\"items\":[1]}"), JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "no response_path"));
    step_clear(&s);
    jn_paginator_free(p);
}

/* ---- page ---- */

static void test_page_walk(void **state)
{
    (void)state;
    static const char *const config =
        "{\"type\":\"page\",\"page_name_in_request\":\"page\","
        "\"limit_name_in_request\":\"per_page\",\"response_path\":\"result\"}";
    step_t s = {0};
    jn_paginator_t *p = make(config, NULL, 3);
    assert_int_equal(jn_paginator_type(p), JN_PAGINATE_PAGE);
    assert_first(p, "{\"page\":\"1\",\"per_page\":\"3\"}");
    expect_page(p, &s, NULL, "{\"result\":[1,2,3]}", "[1,2,3]",
                "{\"page\":\"2\",\"per_page\":\"3\"}");
    expect_page(p, &s, NULL, "{\"result\":[4,5,6]}", "[4,5,6]",
                "{\"page\":\"3\",\"per_page\":\"3\"}");
    expect_page(p, &s, NULL, "{\"result\":[7,8,9]}", "[7,8,9]",
                "{\"page\":\"4\",\"per_page\":\"3\"}");
    expect_page(p, &s, NULL, "{\"result\":[]}", "[]", NULL);
    jn_paginator_free(p);

    /* A short page ends it when a limit is sent. */
    p = make(config, NULL, 3);
    expect_page(p, &s, NULL, "{\"result\":[1,2,3]}", "[1,2,3]",
                "{\"page\":\"2\",\"per_page\":\"3\"}");
    expect_page(p, &s, NULL, "{\"result\":[4]}", "[4]", NULL);
    jn_paginator_free(p);

    /* Without one, only an empty page. */
    p = make(config, NULL, 0);
    assert_first(p, "{\"page\":\"1\"}");
    expect_page(p, &s, NULL, "{\"result\":[1]}", "[1]", "{\"page\":\"2\"}");
    expect_page(p, &s, NULL, "{\"result\":[2]}", "[2]", "{\"page\":\"3\"}");
    expect_page(p, &s, NULL, "{\"result\":[]}", "[]", NULL);
    step_clear(&s);
    jn_paginator_free(p);
}

/* ---- config ---- */

static void test_overrides(void **state)
{
    (void)state;
    step_t s = {0};
    /* The caller renames fields and moves the records. */
    jn_paginator_t *p = make(cursor_config,
                             "{\"cursor_name_in_request\":\"starting_after\","
                             "\"response_path\":\"results.items\",\"limit_name_in_request\":\"n\"}",
                             5);
    assert_first(p, "{\"n\":\"5\"}");
    expect_page(p, &s, NULL, "{\"results\":{\"items\":[1]},\"meta\":{\"next\":\"k\"}}", "[1]",
                "{\"n\":\"5\",\"starting_after\":\"k\"}");
    jn_paginator_free(p);

    /* A null override removes the provider's field: the body is the records again. */
    p = make(cursor_config, "{\"response_path\":null}", 0);
    expect_page(p, &s, NULL, "[1,2]", "[1,2]", NULL);
    jn_paginator_free(p);

    /* A different type; the provider's cursor fields no longer matter. */
    p = make(cursor_config, "{\"type\":\"page\",\"page_name_in_request\":\"p\"}", 1);
    assert_int_equal(jn_paginator_type(p), JN_PAGINATE_PAGE);
    assert_first(p, "{\"p\":\"1\",\"limit\":\"1\"}");
    expect_page(p, &s, NULL, "{\"data\":[1]}", "[1]", "{\"p\":\"2\",\"limit\":\"1\"}");
    jn_paginator_free(p);

    /* The caller's config alone. */
    p = make(NULL, "{\"type\":\"link\",\"link_rel_in_response_header\":\"next\"}", 0);
    assert_int_equal(jn_paginator_type(p), JN_PAGINATE_LINK);
    jn_paginator_free(p);

    /* Unknown fields are ignored (the caller's own options pass through). */
    p = make(cursor_config, "{\"limit\":10,\"offset_start_value\":\"5\"}", 0);
    jn_paginator_free(p);
    step_clear(&s);
}

static void test_bad_config(void **state)
{
    (void)state;
    static const struct {
        const char *config;
        const char *overrides;
        int limit;
        const char *mention;
    } cases[] = {
        {NULL, NULL, 0, "no pagination config"},
        {"[]", NULL, 0, "provider config is not an object"},
        {"{\"type\":\"page\",\"page_name_in_request\":\"p\"}", "\"x\"", 0, "not an object"},
        {"{}", NULL, 0, "paginate.type: missing"},
        {"{\"type\":\"scroll\"}", NULL, 0, "'scroll' is not cursor, link, offset or page"},
        {"{\"type\":5}", NULL, 0, "paginate.type: must be a string"},
        {"{\"type\":\"cursor\",\"cursor_name_in_request\":\"c\"}", NULL, 0,
         "paginate.cursor_path_in_response: missing (required when type is 'cursor')"},
        {"{\"type\":\"cursor\",\"cursor_path_in_response\":\"c\"}", NULL, 0,
         "paginate.cursor_name_in_request: missing"},
        {"{\"type\":\"link\"}", NULL, 0,
         "needs link_rel_in_response_header or link_path_in_response_body"},
        {"{\"type\":\"offset\"}", NULL, 0, "paginate.offset_name_in_request: missing"},
        {"{\"type\":\"offset\",\"offset_name_in_request\":\"o\","
         "\"offset_calculation_method\":\"by-page\"}",
         NULL, 0, "'by-page' is not by-response-size or per-page"},
        {"{\"type\":\"page\"}", NULL, 0, "paginate.page_name_in_request: missing"},
        {"{\"type\":\"page\",\"page_name_in_request\":\"\"}", NULL, 0,
         "paginate.page_name_in_request: must not be empty"},
        {"{\"type\":\"page\",\"page_name_in_request\":\"p\",\"response_path\":\"a..b\"}", NULL, 0,
         "paginate.response_path: 'a..b' is not a dot-separated path"},
        {"{\"type\":\"page\",\"page_name_in_request\":\"p\",\"response_path\":\".a\"}", NULL, 0,
         "paginate.response_path"},
        {"{\"type\":\"page\",\"page_name_in_request\":\"p\",\"limit_name_in_request\":[]}", NULL, 0,
         "paginate.limit_name_in_request: must be a string"},
        {"{\"type\":\"page\",\"page_name_in_request\":\"p\"}", NULL, -1, "negative"},
        /* Overrides can break a good config too. */
        {cursor_config, "{\"cursor_name_in_request\":null}", 0,
         "paginate.cursor_name_in_request: missing"},
        {cursor_config, "{\"type\":\"offset\"}", 0, "paginate.offset_name_in_request: missing"},
        {cursor_config, "{\"cursor_path_in_response\":\"next.\"}", 0,
         "paginate.cursor_path_in_response: 'next.'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *c = cases[i].config ? json(cases[i].config) : NULL;
        json_object *o = cases[i].overrides ? json(cases[i].overrides) : NULL;
        jn_paginator_t *p = (jn_paginator_t *)1;
        char why[256] = "";
        if (jn_paginator_new(c, o, cases[i].limit, &p, why, sizeof why) != JN_ERR_INVALID)
            fail_msg("case %zu was accepted", i);
        assert_null(p);
        if (!strstr(why, cases[i].mention))
            fail_msg("case %zu: '%s' does not mention '%s'", i, why, cases[i].mention);
        json_object_put(c);
        json_object_put(o);
    }
    /* A NUL inside a field. */
    json_object *c = json("{\"type\":\"page\"}");
    json_object_object_add(c, "page_name_in_request", json_object_new_string_len("p\0q", 3));
    jn_paginator_t *p = NULL;
    char why[256] = "";
    assert_int_equal(jn_paginator_new(c, NULL, 0, &p, why, sizeof why), JN_ERR_INVALID);
    assert_non_null(strstr(why, "NUL"));
    json_object_put(c);
}

/* ---- responses ---- */

static void test_response_errors(void **state)
{
    (void)state;
    step_t s = {0};
    jn_paginator_t *p = make(cursor_config, NULL, 0);
    assert_int_equal(feed(p, &s, 200, NULL, "{\"items\":[1]}"), JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "response_path 'data' is not in the response"));
    jn_paginator_free(p);

    p = make(cursor_config, NULL, 0);
    assert_int_equal(feed(p, &s, 200, NULL, "{\"data\":{\"x\":1}}"), JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "response_path 'data' is an object, not an array"));
    jn_paginator_free(p);

    p = make(cursor_config, NULL, 0);
    assert_int_equal(feed(p, &s, 200, NULL, "[1,2]"), JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "'data' is not in the response"));
    jn_paginator_free(p);

    p = make(cursor_config, NULL, 0);
    assert_int_equal(feed(p, &s, 200, NULL, NULL), JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "response_path 'data': the response body is not JSON"));
    jn_paginator_free(p);

    /* A nested path missing half-way. */
    p = make(cursor_config, "{\"response_path\":\"a.b.c\"}", 0);
    assert_int_equal(feed(p, &s, 200, NULL, "{\"a\":{\"b\":5}}"), JN_ERR_INVALID);
    assert_non_null(strstr(s.why, "'a.b.c' is not in the response"));
    jn_paginator_free(p);

    /* Statuses: 204 ends the walk, others outside 2xx are upstream failures. */
    p = make(cursor_config, NULL, 0);
    assert_int_equal(feed(p, &s, 204, NULL, NULL), JN_OK);
    assert_true(s.done);
    assert_null(s.records);
    jn_paginator_free(p);
    p = make(cursor_config, NULL, 0);
    assert_int_equal(feed(p, &s, 500, NULL, "{\"data\":[1],\"meta\":{\"next\":\"x\"}}"),
                     JN_ERR_UPSTREAM);
    assert_non_null(strstr(s.why, "HTTP status 500"));
    /* An error ends the walk. */
    assert_int_equal(feed(p, &s, 200, NULL, "{\"data\":[1]}"), JN_ERR_INVALID);
    jn_paginator_free(p);

    /* A cursor past the cap. */
    p = make(cursor_config, NULL, 0);
    size_t big = JN_PAGINATE_MAX_VALUE + 1;
    json_object *body = json("{\"data\":[1],\"meta\":{}}");
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, 'x', big);
    text[big] = '\0';
    json_object *meta = NULL;
    assert_true(json_object_object_get_ex(body, "meta", &meta));
    json_object_object_add(meta, "next", json_object_new_string(text));
    free(text);
    json_object *records = NULL, *params = NULL;
    char *url = NULL;
    bool done = false;
    char why[256];
    assert_int_equal(
        jn_paginator_next(p, 200, NULL, body, &records, &done, &url, &params, why, sizeof why),
        JN_ERR_TOO_LARGE);
    assert_true(done);
    json_object_put(body);
    jn_paginator_free(p);
    step_clear(&s);
}

/* A provider that always has a next page is cut off at max_pages. */
static void test_max_pages(void **state)
{
    (void)state;
    step_t s = {0};
    jn_paginator_t *p = make("{\"type\":\"page\",\"page_name_in_request\":\"page\"}", NULL, 0);
    jn_paginator_set_max_pages(p, 3);
    expect_page(p, &s, NULL, "[1]", "[1]", "{\"page\":\"2\"}");
    expect_page(p, &s, NULL, "[1]", "[1]", "{\"page\":\"3\"}");
    assert_false(jn_paginator_capped(p));
    expect_page(p, &s, NULL, "[1]", "[1]", NULL);
    assert_true(jn_paginator_capped(p));
    assert_non_null(strstr(s.why, "stopped after 3 pages"));
    jn_paginator_free(p);

    /* A page that ends the walk by itself at the cap is not "capped". */
    p = make("{\"type\":\"page\",\"page_name_in_request\":\"page\"}", NULL, 0);
    jn_paginator_set_max_pages(p, 1);
    expect_page(p, &s, NULL, "[]", "[]", NULL);
    assert_false(jn_paginator_capped(p));
    jn_paginator_free(p);

    /* The default cap, with a fresh cursor on every page. */
    p = make("{\"type\":\"cursor\",\"cursor_path_in_response\":\"next\","
             "\"cursor_name_in_request\":\"c\",\"response_path\":\"data\"}",
             NULL, 0);
    json_object *body = json("{\"data\":[1]}");
    int pages = 0;
    bool done = false;
    while (!done) {
        json_object_object_add(body, "next", json_object_new_int(pages));
        json_object *records = NULL, *params = NULL;
        char *url = NULL;
        char why[256];
        assert_int_equal(
            jn_paginator_next(p, 200, NULL, body, &records, &done, &url, &params, why, sizeof why),
            JN_OK);
        json_object_put(params);
        pages++;
        assert_true(pages <= JN_PAGINATE_MAX_PAGES);
    }
    assert_int_equal(pages, JN_PAGINATE_MAX_PAGES);
    assert_true(jn_paginator_capped(p));
    json_object_put(body);
    jn_paginator_free(p);
    step_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_walk),     cmocka_unit_test(test_cursor_stops),
        cmocka_unit_test(test_whole_key_paths), cmocka_unit_test(test_link_header_walk),
        cmocka_unit_test(test_link_stops),      cmocka_unit_test(test_link_parse),
        cmocka_unit_test(test_offset_walk),     cmocka_unit_test(test_page_walk),
        cmocka_unit_test(test_overrides),       cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_response_errors), cmocka_unit_test(test_max_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
