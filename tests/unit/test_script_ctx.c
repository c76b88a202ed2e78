/*
 * Unit tests for worker/script_ctx.c and script_http.c with a fake host: the examples
 * run end to end against a fake API (cursor, offset and Link-header pagination), every
 * ctx method reaches the host with what the script meant, and scripts cannot tamper
 * with ctx, hide from the limits inside host calls, or leave a run half-classified.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "script_ctx.h"

/* ---- the fake host ---- */

typedef struct {
    int items;             /* size of the fake API's item list */
    json_object *requests; /* [{method, endpoint, params, body, base}] */
    json_object *ops;      /* [{op, model, records}] */
    json_object *stored;   /* id -> record */
    json_object *metadata;
    json_object *checkpoint;
    json_object *logs; /* ["level|message"] */
    json_object *paginate;
    int connection_calls;
    bool variables_down; /* the environment's variables cannot be read */
} fake_t;

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof *f);
    f->items = 120;
    f->requests = json_object_new_array();
    f->ops = json_object_new_array();
    f->stored = json_object_new_object();
    f->metadata = json_object_new_object();
    f->logs = json_object_new_array();
}

static void fake_cleanup(fake_t *f)
{
    json_object_put(f->requests);
    json_object_put(f->ops);
    json_object_put(f->stored);
    json_object_put(f->metadata);
    json_object_put(f->checkpoint);
    json_object_put(f->logs);
    json_object_put(f->paginate);
}

static void respond(jn_script_http_response_t *res, int status, json_object *body, const char *link)
{
    res->status = status;
    res->headers = json_object_new_object();
    json_object_object_add(res->headers, "content-type",
                           json_object_new_string("application/json; charset=utf-8"));
    if (link)
        json_object_object_add(res->headers, "link", json_object_new_string(link));
    const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
    res->body = strdup(text);
    res->body_len = strlen(text);
    json_object_put(body);
}

static const char *param(const jn_script_http_request_t *req, const char *name)
{
    json_object *v = NULL;
    return req->params && json_object_object_get_ex(req->params, name, &v)
               ? json_object_get_string(v)
               : NULL;
}

/* A query value from the endpoint itself ("/x?page=2"). */
static int endpoint_int(const char *endpoint, const char *name, int def)
{
    char key[32];
    snprintf(key, sizeof key, "%s=", name);
    const char *p = strstr(endpoint, key);
    return p ? atoi(p + strlen(key)) : def;
}

static json_object *item(int seq)
{
    char id[32], name[32], updated[32];
    snprintf(id, sizeof id, "item-%d", seq);
    snprintf(name, sizeof name, "Item %d", seq);
    snprintf(updated, sizeof updated, "2024-01-01T00:%02d:00Z", seq % 60);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "updated_at", json_object_new_string(updated));
    json_object_object_add(o, "seq", json_object_new_int(seq));
    return o;
}

static json_object *items_page(fake_t *f, int offset, int limit)
{
    json_object *list = json_object_new_array();
    for (int i = offset + 1; i <= f->items && i <= offset + limit; i++)
        json_object_array_add(list, item(i));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "items", list);
    return o;
}

static json_object *issue(int n, bool pull)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(1000 + n));
    json_object_object_add(o, "number", json_object_new_int(n));
    char title[32];
    snprintf(title, sizeof title, "Issue %d", n);
    json_object_object_add(o, "title", json_object_new_string(title));
    json_object_object_add(o, "state", json_object_new_string(n % 2 ? "open" : "closed"));
    json_object *user = json_object_new_object();
    json_object_object_add(user, "login", json_object_new_string("octo"));
    json_object_object_add(o, "user", n == 3 ? NULL : user);
    if (n == 3)
        json_object_put(user);
    json_object *labels = json_object_new_array();
    if (n == 1) {
        json_object *l = json_object_new_object();
        json_object_object_add(l, "name", json_object_new_string("bug"));
        json_object_array_add(labels, l);
    }
    json_object_object_add(o, "labels", labels);
    json_object_object_add(o, "updated_at", json_object_new_string("2024-03-01T10:00:00Z"));
    if (pull)
        json_object_object_add(o, "pull_request", json_object_new_object());
    return o;
}

static jn_err_t fake_http(void *ud, const jn_script_http_request_t *req,
                          jn_script_http_response_t *res, char *why, size_t why_len)
{
    fake_t *f = ud;
    json_object *r = json_object_new_object();
    json_object_object_add(r, "method", json_object_new_string(req->method));
    json_object_object_add(r, "endpoint", json_object_new_string(req->endpoint));
    if (req->params)
        json_object_object_add(r, "params", json_object_get(req->params));
    if (req->body)
        json_object_object_add(r, "body",
                               json_object_new_string_len(req->body, (int)req->body_len));
    if (req->base_url_override)
        json_object_object_add(r, "base", json_object_new_string(req->base_url_override));
    if (req->headers)
        json_object_object_add(r, "headers", json_object_get(req->headers));
    json_object_array_add(f->requests, r);
    const char *ep = req->endpoint;

    if (strcmp(ep, "/api/echo") == 0) {
        unsigned char digest[32];
        char hex[65];
        jn_crypto_sha256(req->body ? req->body : "", req->body_len, digest);
        jn_hex_encode(digest, sizeof digest, hex);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "method", json_object_new_string(req->method));
        json_object_object_add(o, "body_length", json_object_new_int64((int64_t)req->body_len));
        json_object_object_add(o, "body_sha256", json_object_new_string(hex));
        json_object_object_add(o, "content_type",
                               req->content_type ? json_object_new_string(req->content_type)
                                                 : NULL);
        respond(res, 200, o, NULL);
    } else if (strcmp(ep, "/api/items") == 0) {
        const char *cursor = param(req, "cursor");
        int offset = cursor ? atoi(cursor + 1) : 0;
        int limit = param(req, "limit") ? atoi(param(req, "limit")) : 50;
        json_object *o = items_page(f, offset, limit);
        json_object *next = NULL;
        if (offset + limit < f->items) {
            char tok[32];
            snprintf(tok, sizeof tok, "c%d", offset + limit);
            next = json_object_new_string(tok);
        }
        json_object_object_add(o, "next_cursor", next);
        respond(res, 200, o, NULL);
    } else if (strcmp(ep, "/api/items/offset") == 0) {
        int offset = param(req, "offset") ? atoi(param(req, "offset")) : 0;
        int limit = param(req, "limit") ? atoi(param(req, "limit")) : 50;
        respond(res, 200, items_page(f, offset, limit), NULL);
    } else if (strncmp(ep, "/status/", 8) == 0) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "message", json_object_new_string("nope"));
        respond(res, atoi(ep + 8), o, NULL);
    } else if (strcmp(ep, "/numbers") == 0) {
        /* A hostile provider: 2 MB of "[0,0,...]", a million values. */
        size_t n = 1000000, len = 2 * n + 1;
        char *text = malloc(len + 1);
        assert_non_null(text);
        text[0] = '[';
        for (size_t i = 0; i < n; i++) {
            text[1 + 2 * i] = '0';
            text[2 + 2 * i] = i + 1 < n ? ',' : ']';
        }
        text[len] = '\0';
        res->status = 200;
        res->headers = json_object_new_object();
        json_object_object_add(res->headers, "content-type",
                               json_object_new_string("application/json"));
        res->body = text;
        res->body_len = len;
    } else if (strcmp(ep, "/text") == 0) {
        res->status = 200;
        res->headers = json_object_new_object();
        json_object_object_add(res->headers, "content-type", json_object_new_string("text/plain"));
        res->body = strdup("plain words");
        res->body_len = strlen(res->body);
    } else if (strncmp(ep, "/big", 4) == 0) {
        size_t n = (size_t)endpoint_int(ep, "bytes", 10);
        if (n + 2 > req->max_response_bytes) {
            snprintf(why, why_len, "the response is larger than %zu bytes",
                     req->max_response_bytes);
            return JN_ERR_TOO_LARGE;
        }
        res->status = 200;
        res->headers = json_object_new_object();
        res->body = malloc(n + 3);
        res->body[0] = '"';
        memset(res->body + 1, 'x', n);
        res->body[n + 1] = '"';
        res->body[n + 2] = '\0';
        res->body_len = n + 2;
        json_object_object_add(res->headers, "content-type",
                               json_object_new_string("application/json"));
    } else if (strcmp(ep, "/down") == 0) {
        snprintf(why, why_len, "connection refused");
        return JN_ERR_UPSTREAM;
    } else if (strcmp(ep, "/refused") == 0) {
        snprintf(why, why_len, "the address is not allowed by the egress policy");
        return JN_ERR_INVALID;
    } else if (strcmp(ep, "/hang") == 0) {
        struct timespec ts = {req->timeout_ms / 1000, (req->timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        snprintf(why, why_len, "no answer");
        return JN_ERR_TIMEOUT;
    } else if (strncmp(ep, "/repos/o/r/issues", 17) == 0) {
        /* GitHub-like: two issues a page, five in all, a Link header to the next page. */
        int page = endpoint_int(ep, "page", 1);
        json_object *list = json_object_new_array();
        for (int n = (page - 1) * 2 + 1; n <= page * 2 && n <= 5; n++)
            json_object_array_add(list, issue(n, n == 4));
        char link[256];
        snprintf(link, sizeof link,
                 "<https://api.github.test/repos/o/r/issues?page=%d&per_page=2>; rel=\"next\", "
                 "<https://api.github.test/repos/o/r/issues?page=3&per_page=2>; rel=\"last\"",
                 page + 1);
        res->status = 200;
        res->headers = json_object_new_object();
        if (page < 3)
            json_object_object_add(res->headers, "link", json_object_new_string(link));
        const char *text = json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN);
        res->body = strdup(text);
        res->body_len = strlen(text);
        json_object_put(list);
    } else if (strcmp(ep, "/evil") == 0) {
        json_object *o = json_object_new_array();
        json_object_array_add(o, json_object_new_int(1));
        respond(res, 200, o, "<https://attacker.test/steal?x=1>; rel=\"next\"");
    } else {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "message", json_object_new_string("no such endpoint"));
        respond(res, 404, o, NULL);
    }
    return JN_OK;
}

static json_object *fake_paginate(void *ud)
{
    return ((fake_t *)ud)->paginate;
}

static jn_err_t fake_connection(void *ud, json_object **out, char *why, size_t why_len)
{
    fake_t *f = ud;
    (void)why;
    (void)why_len;
    f->connection_calls++;
    *out =
        json_tokener_parse("{\"connection_id\":\"conn-1\",\"provider_config_key\":\"fake\","
                           "\"credentials\":{\"type\":\"OAUTH2\",\"access_token\":\"tok-123\"}}");
    return JN_OK;
}

static jn_err_t fake_variables(void *ud, json_object **out, char *why, size_t why_len)
{
    if (((fake_t *)ud)->variables_down) {
        snprintf(why, why_len, "the database is unavailable");
        return JN_ERR_DB_UNAVAILABLE;
    }
    *out = json_tokener_parse("[{\"name\":\"API_KEY\",\"value\":\"sk-123\"},"
                              "{\"name\":\"REGION\",\"value\":\"eu\u00e9\"}]");
    return JN_OK;
}

static jn_err_t fake_get_metadata(void *ud, json_object **out, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    *out = json_object_get(((fake_t *)ud)->metadata);
    return JN_OK;
}

static jn_err_t fake_set_metadata(void *ud, json_object *md, bool merge, char *why, size_t why_len)
{
    fake_t *f = ud;
    (void)why;
    (void)why_len;
    if (!merge) {
        json_object_put(f->metadata);
        f->metadata = json_object_new_object();
    }
    json_object_object_foreach(md, k, v) json_object_object_add(f->metadata, k, json_object_get(v));
    return JN_OK;
}

static void fake_log(void *ud, jn_log_level_t level, const char *msg, size_t len)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[JN_SCRIPT_LOG_LINE_MAX + 16];
    snprintf(line, sizeof line, "%s|%.*s", names[level], (int)len, msg);
    json_object_array_add(((fake_t *)ud)->logs, json_object_new_string(line));
}

static jn_err_t fake_get_checkpoint(void *ud, json_object **out, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    *out = json_object_get(((fake_t *)ud)->checkpoint);
    return JN_OK;
}

static jn_err_t fake_save_checkpoint(void *ud, json_object *cp, char *why, size_t why_len)
{
    fake_t *f = ud;
    (void)why;
    (void)why_len;
    json_object_put(f->checkpoint);
    f->checkpoint = json_object_get(cp);
    return JN_OK;
}

static jn_err_t fake_records(void *ud, jn_script_records_op_t op, const char *model,
                             json_object *records, char *why, size_t why_len)
{
    fake_t *f = ud;
    if (strcmp(model, "Broken") == 0) {
        snprintf(why, why_len, "the database is unavailable");
        return JN_ERR_DB_UNAVAILABLE;
    }
    static const char *names[] = {"save", "update", "delete"};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_string(names[op]));
    json_object_object_add(o, "model", json_object_new_string(model));
    json_object_object_add(o, "records", json_object_get(records));
    json_object_array_add(f->ops, o);
    for (size_t i = 0; i < json_object_array_length(records); i++) {
        json_object *r = json_object_array_get_idx(records, i);
        const char *id = json_object_get_string(json_object_object_get(r, "id"));
        if (op == JN_SCRIPT_RECORDS_SAVE)
            json_object_object_add(f->stored, id, json_object_get(r));
        else if (op == JN_SCRIPT_RECORDS_DELETE)
            json_object_object_del(f->stored, id);
    }
    return JN_OK;
}

static jn_err_t fake_records_by_ids(void *ud, const char *model, json_object *ids,
                                    json_object **out, char *why, size_t why_len)
{
    fake_t *f = ud;
    (void)model;
    (void)why;
    (void)why_len;
    assert_true(json_object_array_length(ids) <= 100);
    *out = json_object_new_object();
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
        json_object *r = NULL;
        if (json_object_object_get_ex(f->stored, id, &r))
            json_object_object_add(*out, id, json_object_get(r));
    }
    return JN_OK;
}

static jn_script_host_t host_for(fake_t *f)
{
    return (jn_script_host_t){
        .ud = f,
        .http = fake_http,
        .paginate_config = fake_paginate,
        .connection = fake_connection,
        .environment_variables = fake_variables,
        .get_metadata = fake_get_metadata,
        .set_metadata = fake_set_metadata,
        .log = fake_log,
        .get_checkpoint = fake_get_checkpoint,
        .save_checkpoint = fake_save_checkpoint,
        .records = fake_records,
        .records_by_ids = fake_records_by_ids,
    };
}

static const jn_script_run_info_t info = {
    .connection_id = "conn-1",
    .provider_config_key = "fake",
    .provider = "fake-provider",
    .base_url = "http://fake.test",
    .last_sync_date = "2024-02-01T00:00:00Z",
};

static char *read_example(const char *file, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", EXAMPLES_DIR, file);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, fp);
    buf[*len] = '\0';
    fclose(fp);
    return buf;
}

static jn_sandbox_limits_t quick(jn_sandbox_limits_t lim)
{
    lim.instructions = 50000000;
    lim.wall_ms = 5000;
    return lim;
}

/* Runs an action whose source is src (name "act"); input is JSON text or NULL. */
static jn_script_status_t action(fake_t *f, const char *src, const char *input,
                                 jn_script_outcome_t *out)
{
    jn_script_host_t h = host_for(f);
    jn_script_source_t s = {"act", src, strlen(src)};
    json_object *in = input ? json_tokener_parse(input) : NULL;
    jn_sandbox_limits_t lim = quick(jn_sandbox_limits_action());
    jn_script_status_t st = jn_script_run_action(&s, in, &h, &info, &lim, out);
    json_object_put(in);
    return st;
}

static jn_script_status_t sync_run(fake_t *f, const char *name, const char *src,
                                   jn_script_outcome_t *out)
{
    jn_script_host_t h = host_for(f);
    jn_script_source_t s = {name, src, strlen(src)};
    jn_sandbox_limits_t lim = quick(jn_sandbox_limits_sync());
    return jn_script_run_sync(&s, &h, &info, &lim, out);
}

#define ACTION_HEAD "return { type = 'action', description = 'test', "

/* ---- examples ---- */

static void test_example_action(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    size_t len;
    char *src = read_example("fake-provider/post-note.lua", &len);
    jn_script_host_t h = host_for(&f);
    jn_script_source_t s = {"post-note", src, len};
    jn_script_outcome_t out;
    json_object *in = json_tokener_parse("{\"text\":\"hello\",\"tags\":[\"a\",\"b\"]}");
    assert_int_equal(jn_script_run_action(&s, in, &h, &info, NULL, &out), JN_SCRIPT_OK);
    json_object *req = json_object_array_get_idx(f.requests, 0);
    const char *body = json_object_get_string(json_object_object_get(req, "body"));
    assert_string_equal(body, "{\"body\":\"hello\",\"tags\":[\"a\",\"b\"]}");
    assert_string_equal(json_object_get_string(json_object_object_get(out.output, "method")),
                        "POST");
    assert_int_equal(json_object_get_int(json_object_object_get(out.output, "bytes")),
                     (int)strlen(body));
    assert_int_equal(json_object_array_length(json_object_object_get(out.output, "tags")), 2);
    assert_true(out.instructions >= 1000 && out.memory_peak > 0); /* a host call counts 1000 */
    jn_script_outcome_cleanup(&out);
    json_object_put(in);

    /* Input checked before anything runs (0-based indexes: the caller's JSON). */
    in = json_tokener_parse("{\"text\":\"x\",\"tags\":[\"a\",7]}");
    assert_int_equal(jn_script_run_action(&s, in, &h, &info, NULL, &out), JN_SCRIPT_INVALID_INPUT);
    assert_string_equal(out.error.message,
                        "post-note: input.tags[1]: expected a string, got a number");
    int status = 0;
    json_object *e = jn_script_outcome_error_json(&out, &status);
    assert_int_equal(status, 400);
    assert_string_equal(
        json_object_get_string(json_object_object_get(json_object_object_get(e, "error"), "code")),
        "invalid_action_input");
    json_object_put(e);
    jn_script_outcome_cleanup(&out);
    json_object_put(in);

    /* An empty text fails the action with the script's payload. */
    in = json_tokener_parse("{\"text\":\"\"}");
    assert_int_equal(jn_script_run_action(&s, in, &h, &info, NULL, &out), JN_SCRIPT_ACTION_FAILED);
    assert_non_null(strstr(out.error.message, "post-note:12: text may not be empty"));
    e = jn_script_outcome_error_json(&out, &status);
    assert_int_equal(status, 500);
    assert_string_equal(
        json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN),
        "{\"error\":{\"code\":\"action_script_failure\",\"message\":\"post-note:12: "
        "text may not be empty\",\"payload\":{\"field\":\"text\",\"message\":\"text "
        "may not be empty\"}}}");
    json_object_put(e);
    jn_script_outcome_cleanup(&out);
    json_object_put(in);
    free(src);
    fake_cleanup(&f);
}

static int count_records(fake_t *f, const char *op)
{
    int n = 0;
    for (size_t i = 0; i < json_object_array_length(f->ops); i++) {
        json_object *o = json_object_array_get_idx(f->ops, i);
        if (strcmp(json_object_get_string(json_object_object_get(o, "op")), op) == 0)
            n += (int)json_object_array_length(json_object_object_get(o, "records"));
    }
    return n;
}

static void test_example_full_sync(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    size_t len;
    char *src = read_example("fake-provider/fetch-items.lua", &len);
    jn_script_outcome_t out;
    assert_int_equal(sync_run(&f, "fetch-items", src, &out), JN_SCRIPT_OK);
    assert_int_equal(count_records(&f, "save"), 120);
    assert_int_equal(json_object_array_length(f.ops), 3); /* a batch per page */
    assert_int_equal(json_object_array_length(f.requests), 3);
    json_object *second = json_object_array_get_idx(f.requests, 1);
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_object_get(second, "params"), "cursor")),
                        "c50");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(f.logs, 0)),
                        "info|saved 120 items");
    jn_script_outcome_cleanup(&out);
    free(src);
    fake_cleanup(&f);
}

static void test_example_incremental_and_webhook(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    f.items = 150;
    size_t len;
    char *src = read_example("fake-provider/sync-items-incremental.lua", &len);
    jn_script_outcome_t out;
    assert_int_equal(sync_run(&f, "sync-items", src, &out), JN_SCRIPT_OK);
    assert_int_equal(count_records(&f, "save"), 150);
    assert_int_equal(json_object_get_int(json_object_object_get(f.checkpoint, "last_seq")), 150);
    jn_script_outcome_cleanup(&out);
    /* The next run starts from the checkpoint: nothing new, nothing saved. */
    json_object_put(f.ops);
    f.ops = json_object_new_array();
    f.items = 155;
    assert_int_equal(sync_run(&f, "sync-items", src, &out), JN_SCRIPT_OK);
    assert_int_equal(count_records(&f, "save"), 5);
    jn_script_outcome_cleanup(&out);

    jn_script_host_t h = host_for(&f);
    jn_script_source_t s = {"sync-items", src, len};
    json_object *payload = json_tokener_parse("{\"type\":\"item.deleted\",\"id\":\"item-3\"}");
    assert_int_equal(jn_script_run_webhook(&s, payload, &h, &info, NULL, &out), JN_SCRIPT_OK);
    assert_int_equal(count_records(&f, "delete"), 1);
    json_object_put(payload);
    payload = json_tokener_parse("{\"type\":\"item.updated\",\"item\":{\"id\":\"item-4\","
                                 "\"name\":\"Renamed\"}}");
    assert_int_equal(jn_script_run_webhook(&s, payload, &h, &info, NULL, &out), JN_SCRIPT_OK);
    assert_int_equal(count_records(&f, "update"), 1);
    json_object_put(payload);
    /* An update is partial, but what it has must match the model. */
    payload = json_tokener_parse("{\"type\":\"item.updated\",\"item\":{\"id\":\"item-4\","
                                 "\"seq\":\"x\"}}");
    assert_int_equal(jn_script_run_webhook(&s, payload, &h, &info, NULL, &out), JN_SCRIPT_ERROR);
    assert_non_null(strstr(out.error.message, "records[1].seq: expected an integer, got a string"));
    jn_script_outcome_cleanup(&out);
    json_object_put(payload);
    /* An action has no webhook handler to run. */
    jn_script_source_t a = {"act", ACTION_HEAD "exec = function() end }", 0};
    a.len = strlen(a.source);
    assert_int_equal(jn_script_run_webhook(&a, NULL, &h, &info, NULL, &out), JN_SCRIPT_ERROR);
    assert_non_null(strstr(out.error.message, "act: this script is an action"));
    jn_script_outcome_cleanup(&out);
    free(src);
    fake_cleanup(&f);
}

static void test_example_github_link_pagination(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    f.paginate = json_tokener_parse("{\"type\":\"link\",\"link_rel_in_response_header\":\"next\","
                                    "\"limit_name_in_request\":\"per_page\"}");
    json_object_object_add(f.metadata, "repos", json_tokener_parse("[\"o/r\"]"));
    size_t len;
    char *src = read_example("github/fetch-issues.lua", &len);
    jn_script_host_t h = host_for(&f);
    jn_script_source_t s = {"fetch-issues", src, len};
    jn_script_run_info_t gh = info;
    gh.base_url = "https://api.github.test";
    jn_script_outcome_t out;
    assert_int_equal(jn_script_run_sync(&s, &h, &gh, NULL, &out), JN_SCRIPT_OK);
    /* Five issues, one of them a pull request. */
    assert_int_equal(count_records(&f, "save"), 4);
    assert_int_equal(json_object_array_length(f.requests), 3);
    json_object *first = json_object_array_get_idx(f.requests, 0);
    json_object *params = json_object_object_get(first, "params");
    assert_string_equal(json_object_get_string(json_object_object_get(params, "since")),
                        "2024-02-01T00:00:00Z");
    assert_string_equal(json_object_get_string(json_object_object_get(params, "per_page")), "100");
    json_object *next = json_object_array_get_idx(f.requests, 1);
    assert_string_equal(json_object_get_string(json_object_object_get(next, "endpoint")),
                        "/repos/o/r/issues?page=2&per_page=2");
    assert_string_equal(json_object_get_string(json_object_object_get(next, "base")),
                        "https://api.github.test");
    assert_null(json_object_object_get(next, "params"));
    json_object *one = json_object_object_get(f.stored, "1001");
    assert_string_equal(json_object_to_json_string_ext(one, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE),
                        "{\"author\":\"octo\",\"id\":\"1001\",\"labels\":[\"bug\"],\"number\":1,"
                        "\"repo\":\"o/r\",\"state\":\"open\",\"title\":\"Issue 1\",\"updated_at\":"
                        "\"2024-03-01T10:00:00Z\"}");
    /* Issue 3 has no author (null user): the optional field is absent. */
    assert_null(json_object_object_get(json_object_object_get(f.stored, "1003"), "author"));
    jn_script_outcome_cleanup(&out);
    free(src);
    fake_cleanup(&f);
}

/* ---- ctx ---- */

static void test_http_methods(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    assert_int_equal(action(&f,
                            ACTION_HEAD
                            "exec = function(ctx)\n"
                            "  local a = ctx:get{ endpoint = '/status/404', raise = false }\n"
                            "  local b = ctx:get{ endpoint = '/text' }\n"
                            "  local c = ctx:proxy{ method = 'PUT', endpoint = '/api/echo', data = "
                            "'raw', headers = { ['X-Trace'] = 7 }, params = { q = 'a b', n = 1.5, "
                            "f = false } }\n"
                            "  return { a.status, a.data.message, b.data, c.data.method, "
                            "c.data.body_length, a.headers['content-type'] }\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_string_equal(json_object_to_json_string_ext(
                            out.output, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                        "[404,\"nope\",\"plain words\",\"PUT\",3,\"application/json; "
                        "charset=utf-8\"]");
    json_object *put = json_object_array_get_idx(f.requests, 2);
    json_object *params = json_object_object_get(put, "params");
    assert_int_equal(json_object_object_length(params), 3);
    assert_string_equal(json_object_get_string(json_object_object_get(params, "q")), "a b");
    assert_string_equal(json_object_get_string(json_object_object_get(params, "n")), "1.5");
    assert_string_equal(json_object_get_string(json_object_object_get(params, "f")), "false");
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_object_get(put, "headers"), "X-Trace")),
                        "7");
    jn_script_outcome_cleanup(&out);

    /* An error status raises, with the provider's answer for the caller. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n\n  ctx:get{ endpoint = "
                                        "'/status/422?token=secret' }\nend }",
                            NULL, &out),
                     JN_SCRIPT_HTTP);
    assert_string_equal(out.error.message,
                        "act:3: ctx:get GET /status/422: the provider answered HTTP 422");
    int status;
    json_object *e = jn_script_outcome_error_json(&out, &status);
    assert_int_equal(status, 424);
    assert_string_equal(
        json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN),
        "{\"error\":{\"code\":\"script_http_error\",\"message\":\"act:3: ctx:get GET "
        "\\/status\\/422: the provider answered HTTP 422\",\"payload\":{\"message\":"
        "\"nope\"},\"upstream\":{\"status\":422,\"headers\":{\"content-type\":"
        "\"application\\/json; charset=utf-8\"},\"body\":{\"message\":\"nope\"}}}}");
    json_object_put(e);
    jn_script_outcome_cleanup(&out);

    /* Caught, it is a table the script can read. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local ok, e = pcall(ctx.get, "
                                        "ctx, { endpoint = '/status/503' })\n  return e.kind .. "
                                        "e.status .. e.data.message\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_string_equal(json_object_get_string(out.output), "http503nope");
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_bad_options(void **state)
{
    (void)state;
    struct {
        const char *call;
        const char *want;
    } cases[] = {
        {"ctx:get('/x')", "act:2: ctx:get: expects a table of options"},
        {"ctx:get{}", "act:2: ctx:get: endpoint: is required"},
        {"ctx:get{ endpoint = 'https://evil.test/x' }", "endpoint: is a path"},
        {"ctx:get{ endpoint = '/a b' }", "endpoint: must be 1 to"},
        {"ctx:get{ endpoint = '/x', retries = 11 }", "retries: must be an integer from 0 to 10"},
        {"ctx:get{ endpoint = '/x', timeout = 5 }", "ctx:get: unknown option 'timeout'"},
        {"ctx:get{ endpoint = '/x', method = 'POST' }", "unknown option 'method'"},
        {"ctx:proxy{ endpoint = '/x', method = 'TRACE' }", "method: must be GET"},
        {"ctx:get{ endpoint = '/x', headers = { ['Bad Name'] = 'v' } }",
         "'Bad Name' is not a valid name"},
        {"ctx:get{ endpoint = '/x', headers = { ['a:b'] = 'v' } }", "not a valid header name"},
        {"ctx:get{ endpoint = '/x', headers = { A = 'x\\r\\nB: y' } }", "control characters"},
        {"ctx:get{ endpoint = '/x', params = { a = {} } }", "params.a: must be a string"},
        {"ctx:get{ endpoint = '/x', base_url_override = 'file:///etc' }",
         "must be an http or https"},
        {"ctx:post{ endpoint = '/x', data = { f = print or tostring } }",
         "data: f: a function has no JSON form"},
        {"ctx:get{ endpoint = '/x', retry_on = { 700 } }", "retry_on[1]: must be an HTTP status"},
        {"local s = {} for i = 1, 21 do s[i] = 500 end\n  ctx:get{ endpoint = '/x', retry_on = s }",
         "retry_on: at most 20 statuses"},
        {"ctx:paginate{ endpoint = '/x', paginate = { type = 'spiral' } }", "ctx:paginate:"},
        {"ctx:paginate{ endpoint = '/x', paginate = { limit = -1 } }", "paginate.limit"},
        {"ctx:log('x', 'loud')", "ctx:log: level must be"},
        {"ctx:batch_save({}, 'X')", "ctx:batch_save: only a sync has records"},
        {"ctx:get_checkpoint()", "only a sync has records and checkpoints"},
        {"ctx:set_metadata(5)", "bad argument #1 to 'set_metadata'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_t f;
        fake_init(&f);
        char src[1024];
        snprintf(src, sizeof src, ACTION_HEAD "exec = function(ctx)\n  %s\nend }", cases[i].call);
        jn_script_outcome_t out;
        action(&f, src, NULL, &out);
        if (out.status != JN_SCRIPT_ERROR || !strstr(out.error.message, cases[i].want))
            fail_msg("%s\n -> %s: %s\n wanted '%s'", cases[i].call,
                     jn_script_status_str(out.status), out.error.message, cases[i].want);
        /* Nothing reached the provider. */
        assert_int_equal(json_object_array_length(f.requests), 0);
        jn_script_outcome_cleanup(&out);
        fake_cleanup(&f);
    }
}

static void test_ctx_cannot_be_tampered_with(void **state)
{
    (void)state;
    struct {
        const char *code;
        const char *want;
    } cases[] = {
        {"setmetatable(ctx, {})",
         "bad argument #1 to 'setmetatable' (table expected, got userdata)"},
        {"rawset(ctx, 'get', 1)", "bad argument #1 to 'rawset' (table expected, got userdata)"},
        {"ctx.get = function() end", "ctx is read-only"},
        {"ctx.connection_id = 'other'", "ctx is read-only"},
        {"local get = ctx.get\n  get({ endpoint = '/x' })", "ctx:get: call it on ctx with a colon"},
        {"ctx.get({ endpoint = '/x' })", "ctx:get: call it on ctx with a colon"},
        {"local fake = setmetatable({}, { __index = ctx })\n  fake:get{ endpoint = '/x' }",
         "call it on ctx with a colon"},
        {"local mt = getmetatable(ctx)\n  mt.__index = nil", "attempt to index a string value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_t f;
        fake_init(&f);
        char src[1024];
        snprintf(src, sizeof src, ACTION_HEAD "exec = function(ctx)\n  %s\nend }", cases[i].code);
        jn_script_outcome_t out;
        action(&f, src, NULL, &out);
        if (out.status != JN_SCRIPT_ERROR || !strstr(out.error.message, cases[i].want))
            fail_msg("%s\n -> %s: %s", cases[i].code, jn_script_status_str(out.status),
                     out.error.message);
        jn_script_outcome_cleanup(&out);
        fake_cleanup(&f);
    }
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    assert_int_equal(action(&f,
                            ACTION_HEAD
                            "exec = function(ctx)\n  return { getmetatable(ctx), "
                            "tostring(ctx), ctx.connection_id, ctx.provider_config_key, "
                            "ctx.provider, ctx.script, tostring(ctx.last_sync_date), "
                            "tostring(ctx.nope) }\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_string_equal(json_object_to_json_string_ext(out.output, JSON_C_TO_STRING_PLAIN),
                        "[\"ctx\",\"ctx\",\"conn-1\",\"fake\",\"fake-provider\",\"act\",\"nil\","
                        "\"nil\"]");
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_output_checks(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    assert_int_equal(action(&f,
                            ACTION_HEAD "output = { id = 'string' }, exec = function(ctx) "
                                        "return { id = 5 } end }",
                            NULL, &out),
                     JN_SCRIPT_INVALID_OUTPUT);
    assert_string_equal(out.error.message, "act: output.id: expected a string, got a number");
    jn_script_outcome_cleanup(&out);
    /* 3 MB of output: refused, whatever the model says. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx) return string.rep('x', 3 << 20) "
                                        "end }",
                            NULL, &out),
                     JN_SCRIPT_INVALID_OUTPUT);
    assert_non_null(strstr(out.error.message, "act: output: larger than 2097152 bytes"));
    jn_script_outcome_cleanup(&out);
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx) local t = {} for i = 1, 40000 do "
                                        "t[i] = { n = i, s = 'abcdefghijklmnopqrstuvwxyz' } end "
                                        "return t end }",
                            NULL, &out),
                     JN_SCRIPT_INVALID_OUTPUT);
    assert_non_null(strstr(out.error.message, "larger than 2097152 bytes"));
    jn_script_outcome_cleanup(&out);
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx) return { f = print or tostring } "
                                        "end }",
                            NULL, &out),
                     JN_SCRIPT_INVALID_OUTPUT);
    assert_string_equal(out.error.message, "act: output: f: a function has no JSON form");
    jn_script_outcome_cleanup(&out);
    /* No output model: any JSON value; an empty list for a list output becomes []. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "output = 'string[]', exec = function(ctx) return {} "
                                        "end }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_string_equal(json_object_to_json_string(out.output), "[ ]");
    jn_script_outcome_cleanup(&out);
    assert_int_equal(action(&f, ACTION_HEAD "exec = function(ctx) end }", NULL, &out),
                     JN_SCRIPT_OK);
    assert_null(out.output);
    jn_script_outcome_cleanup(&out);
    /* A sync is not an action. */
    assert_int_equal(action(&f,
                            "return { type = 'sync', description = 'x', frequency = '1h', "
                            "models = { A = { id = 'string' } }, exec = function() end }",
                            NULL, &out),
                     JN_SCRIPT_ERROR);
    assert_string_equal(out.error.message,
                        "act: this script is a sync; it cannot run as an action");
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_paginate_errors(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    /* The script fails on the second page: the walk is freed, the line is named. */
    const char *src = "return { type = 'sync', description = 'x', frequency = '1h', models = { "
                      "Item = { id = 'string', name = 'string', updated_at = 'date', seq = "
                      "'integer' } },\n"
                      "exec = function(ctx)\n"
                      "  local pages = 0\n"
                      "  for page in ctx:paginate{ endpoint = '/api/items', paginate = { type = "
                      "'cursor', cursor_path_in_response = 'next_cursor', cursor_name_in_request = "
                      "'cursor', response_path = 'items', limit_name_in_request = 'limit', limit = "
                      "50 } } do\n"
                      "    pages = pages + 1\n"
                      "    if pages == 2 then error('page ' .. pages .. ' had ' .. #page) end\n"
                      "  end\n"
                      "end }";
    assert_int_equal(sync_run(&f, "items", src, &out), JN_SCRIPT_ERROR);
    assert_string_equal(out.error.message, "items:6: page 2 had 50");
    jn_script_outcome_cleanup(&out);
    /* Breaking out of the loop ends the walk (no more requests). */
    json_object_put(f.requests);
    f.requests = json_object_new_array();
    const char *brk = "return { type = 'sync', description = 'x', frequency = '1h', models = { "
                      "I = { id = 'string' } },\nexec = function(ctx)\n"
                      "  for page in ctx:paginate{ endpoint = '/api/items', paginate = { type = "
                      "'cursor', cursor_path_in_response = 'next_cursor', cursor_name_in_request = "
                      "'cursor', response_path = 'items' } } do break end\nend }";
    assert_int_equal(sync_run(&f, "items", brk, &out), JN_SCRIPT_OK);
    assert_int_equal(json_object_array_length(f.requests), 1);
    jn_script_outcome_cleanup(&out);
    /* A next link to another origin is not followed. */
    f.paginate = json_tokener_parse("{\"type\":\"link\",\"link_rel_in_response_header\":\"next\"}");
    const char *evil = "return { type = 'sync', description = 'x', frequency = '1h', models = { "
                       "I = { id = 'string' } },\nexec = function(ctx)\n"
                       "  for page in ctx:paginate{ endpoint = '/evil' } do end\nend }";
    assert_int_equal(sync_run(&f, "items", evil, &out), JN_SCRIPT_ERROR);
    assert_non_null(strstr(out.error.message,
                           "items:3: ctx:paginate: the next link leaves the provider's origin"));
    jn_script_outcome_cleanup(&out);
    /* An error status while paginating is an HTTP error. */
    const char *gone = "return { type = 'sync', description = 'x', frequency = '1h', models = { "
                       "I = { id = 'string' } },\nexec = function(ctx)\n"
                       "  for page in ctx:paginate{ endpoint = '/status/500' } do end\nend }";
    assert_int_equal(sync_run(&f, "items", gone, &out), JN_SCRIPT_HTTP);
    assert_int_equal(out.error.http_status, 500);
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_paginate_post_body(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    const char *src = "return { type = 'sync', description = 'x', frequency = '1h', models = { "
                      "I = { id = 'string' } },\nexec = function(ctx)\n"
                      "  for page in ctx:paginate{ method = 'POST', endpoint = '/api/echo', data = "
                      "{ q = 1 }, paginate = { type = 'offset', offset_name_in_request = "
                      "'page.offset', limit_name_in_request = 'page.size', limit = 2, "
                      "response_path = 'nothing' } } do end\nend }";
    /* The echo answer has no records array: the walk fails cleanly, after one request
     * whose page parameters went into the JSON body. */
    assert_int_equal(sync_run(&f, "items", src, &out), JN_SCRIPT_ERROR);
    json_object *req = json_object_array_get_idx(f.requests, 0);
    assert_string_equal(json_object_get_string(json_object_object_get(req, "body")),
                        "{\"q\":1,\"page\":{\"offset\":0,\"size\":2}}");
    assert_null(json_object_object_get(req, "params"));
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_host_failures(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  ctx:get{ endpoint = '/down' "
                                        "}\nend }",
                            NULL, &out),
                     JN_SCRIPT_HOST);
    assert_string_equal(out.error.message, "act:2: ctx:get: connection refused (upstream)");
    assert_int_equal(out.host_err, JN_ERR_UPSTREAM);
    int status;
    json_object *e = jn_script_outcome_error_json(&out, &status);
    assert_int_equal(status, 502);
    json_object_put(e);
    jn_script_outcome_cleanup(&out);
    /* Caught, the script goes on. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local ok, e = pcall(ctx.get, "
                                        "ctx, { endpoint = '/down' })\n  return e.kind\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_string_equal(json_object_get_string(out.output), "host");
    jn_script_outcome_cleanup(&out);
    /* A request the host refuses is the script's error. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  ctx:get{ endpoint = "
                                        "'/refused' }\nend }",
                            NULL, &out),
                     JN_SCRIPT_ERROR);
    assert_string_equal(out.error.message,
                        "act:2: ctx:get: the address is not allowed by the egress policy");
    jn_script_outcome_cleanup(&out);
    /* A database failure while saving records. */
    assert_int_equal(sync_run(&f, "s",
                              "return { type = 'sync', description = 'x', frequency = '1h', models "
                              "= { Broken = { id = 'string' } },\nexec = function(ctx)\n  "
                              "ctx:batch_save({ { id = 'a' } }, 'Broken')\nend }",
                              &out),
                     JN_SCRIPT_HOST);
    assert_int_equal(out.host_err, JN_ERR_DB_UNAVAILABLE);
    assert_true(jn_err_retryable(out.host_err));
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_deadline_bounds_host_calls(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_host_t h = host_for(&f);
    const char *src = ACTION_HEAD "exec = function(ctx)\n  local ok = pcall(ctx.get, ctx, { "
                                  "endpoint = '/hang' })\n  return 'swallowed'\nend }";
    jn_script_source_t s = {"act", src, strlen(src)};
    jn_sandbox_limits_t lim = jn_sandbox_limits_action();
    lim.wall_ms = 300;
    jn_script_outcome_t out;
    assert_int_equal(jn_script_run_action(&s, NULL, &h, &info, &lim, &out), JN_SCRIPT_TIMEOUT);
    assert_non_null(strstr(out.error.message, "act:2: timeout"));
    assert_true(out.duration_ms >= 250 && out.duration_ms < 3000);
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_yield_inside_host_call(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    /* ctx:log runs the value's __tostring; a yield there cannot cross the host call. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local co = coroutine.wrap("
                                        "function()\n    ctx:log(setmetatable({ f = print or "
                                        "tostring }, { __tostring = function() "
                                        "coroutine.yield('x') return 'y' end }))\n  end)\n  "
                                        "co()\nend }",
                            NULL, &out),
                     JN_SCRIPT_ERROR);
    assert_non_null(strstr(out.error.message, "attempt to yield across a C-call boundary"));
    jn_script_outcome_cleanup(&out);
    /* A coroutine may make host calls and yield between them. */
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local co = coroutine.wrap("
                                        "function()\n    local r = ctx:get{ endpoint = "
                                        "'/text' }\n    coroutine.yield(r.data)\n    return "
                                        "ctx:get{ endpoint = '/api/echo' }.data.method\n  "
                                        "end)\n  return co() .. ' ' .. co()\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_string_equal(json_object_get_string(out.output), "plain words GET");
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_records(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    const char *head = "return { type = 'sync', description = 'x', frequency = '1h', models = { "
                       "Contact = { id = 'string', email = 'string?', tags = 'string[]' } },\n"
                       "exec = function(ctx)\n";
    char src[2048];
    snprintf(src, sizeof src,
             "%s  local batch = {}\n  for i = 1, 2500 do batch[i] = { id = 'c' .. i, tags = {}, "
             "_nango_metadata = { x = 1 } } end\n  ctx:batch_save(batch, 'Contact')\n"
             "  local got = ctx:get_records_by_ids({ 'c1', 'c2500', 'nope' }, 'Contact')\n"
             "  ctx:log(json.encode({ got.c1.id, got.c2500.id, tostring(got.nope) }))\n"
             "  ctx:batch_delete({ { id = 'c1' } }, 'Contact')\nend }",
             head);
    assert_int_equal(sync_run(&f, "contacts", src, &out), JN_SCRIPT_OK);
    assert_int_equal(json_object_array_length(f.ops), 4); /* 1000 + 1000 + 500, then the delete */
    assert_int_equal(count_records(&f, "save"), 2500);
    json_object *rec = json_object_array_get_idx(
        json_object_object_get(json_object_array_get_idx(f.ops, 0), "records"), 0);
    assert_string_equal(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN),
                        "{\"id\":\"c1\",\"tags\":[]}");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(f.logs, 0)),
                        "info|[\"c1\",\"c2500\",\"nil\"]");
    jn_script_outcome_cleanup(&out);

    struct {
        const char *code;
        const char *want;
    } bad[] = {
        {"ctx:batch_save({ { id = 'a', tags = {}, email = 5 } }, 'Contact')",
         "contacts:4: ctx:batch_save: records[1].email: expected a string, got a number"},
        {"ctx:batch_save({ { id = 'a', tags = {} }, { tags = {} } }, 'Contact')",
         "ctx:batch_save: records[2].id: is required"},
        {"ctx:batch_save({ { id = '', tags = {} } }, 'Contact')",
         "records[1].id: must be a string of 1 to 255 characters"},
        {"ctx:batch_save({ { id = 'a', tags = {}, extra = 1 } }, 'Contact')",
         "records[1].extra: is not a field of model Contact"},
        {"ctx:batch_save({ [1] = { id = 'a', tags = {} }, [3] = { id = 'b', tags = {} } }, "
         "'Contact')",
         "records must be a list"},
        {"ctx:batch_save({ 'a' }, 'Contact')", "records[1]: must be a table"},
        {"ctx:batch_save({}, 'Contacts')",
         "unknown model 'Contacts' (the script declares: Contact)"},
        {"ctx:save_checkpoint({ nested = { a = 1 } })", "checkpoint.nested: a checkpoint is flat"},
        {"ctx:get_records_by_ids({ {} }, 'Contact')", "ids[1]: must be a record id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object_put(f.ops);
        f.ops = json_object_new_array();
        snprintf(src, sizeof src, "%s\n  %s\nend }", head, bad[i].code);
        sync_run(&f, "contacts", src, &out);
        if (out.status != JN_SCRIPT_ERROR || !strstr(out.error.message, bad[i].want))
            fail_msg("%s\n -> %s: %s", bad[i].code, jn_script_status_str(out.status),
                     out.error.message);
        assert_int_equal(json_object_array_length(f.ops), 0);
        jn_script_outcome_cleanup(&out);
    }
    fake_cleanup(&f);
}

static void test_metadata_connection_checkpoint(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    const char *src =
        "return { type = 'sync', description = 'x', frequency = '1h', metadata = { owner = "
        "'string', team = 'string?' }, checkpoint = { since = 'date' }, models = { I = { id = "
        "'string' } },\nexec = function(ctx)\n"
        "  ctx:set_metadata({ owner = 'ann' })\n"
        "  ctx:update_metadata({ team = 'core' })\n"
        "  local md = ctx:get_metadata()\n"
        "  local conn = ctx:get_connection()\n"
        "  ctx:save_checkpoint({ since = '2024-01-01' })\n"
        "  local cp = ctx:get_checkpoint()\n"
        "  ctx:log(md.owner .. ' ' .. md.team .. ' ' .. conn.credentials.access_token .. ' ' .. "
        "cp.since, 'debug')\n"
        "  ctx:clear_checkpoint()\n"
        "  print('printed', 1, nil)\n"
        "  local ok, e = pcall(ctx.update_metadata, ctx, { owner = 7 })\n"
        "  ctx:log(e, { level = 'warn' })\n"
        "  local ok2, e2 = pcall(ctx.save_checkpoint, ctx, { since = 'soon' })\n"
        "  ctx:log(e2, 'error')\n"
        "end }";
    assert_int_equal(sync_run(&f, "meta", src, &out), JN_SCRIPT_OK);
    assert_string_equal(json_object_to_json_string_ext(f.metadata, JSON_C_TO_STRING_PLAIN),
                        "{\"owner\":\"ann\",\"team\":\"core\"}");
    assert_null(f.checkpoint);
    assert_int_equal(f.connection_calls, 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(f.logs, 0)),
                        "debug|ann core tok-123 2024-01-01");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(f.logs, 1)),
                        "info|printed\t1\tnil");
    assert_string_equal(
        json_object_get_string(json_object_array_get_idx(f.logs, 2)),
        "warn|ctx:update_metadata: metadata.owner: expected a string, got a number");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(f.logs, 3)),
                        "error|ctx:save_checkpoint: checkpoint.since: expected a date (ISO 8601), "
                        "got a string");
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_environment_variables(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    /* Nango's shape: a list of {name, value}, the same in every kind of run. */
    const char *read = ACTION_HEAD
        "exec = function(ctx)\n"
        "  local out = {}\n"
        "  for _, v in ipairs(ctx:get_environment_variables()) do out[v.name] = v.value end\n"
        "  return out\nend }";
    assert_int_equal(action(&f, read, NULL, &out), JN_SCRIPT_OK);
    assert_string_equal(json_object_to_json_string_ext(out.output, JSON_C_TO_STRING_PLAIN),
                        "{\"API_KEY\":\"sk-123\",\"REGION\":\"eu\u00e9\"}");
    jn_script_outcome_cleanup(&out);
    assert_int_equal(sync_run(&f, "s",
                              "return { type = 'sync', description = 'x', frequency = '1h', models "
                              "= { I = { id = 'string' } },\nexec = function(ctx)\n"
                              "  ctx:log(#ctx:get_environment_variables())\nend }",
                              &out),
                     JN_SCRIPT_OK);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(f.logs, 0)), "info|2");
    jn_script_outcome_cleanup(&out);
    /* A store that cannot answer is a host error the script may catch. */
    f.variables_down = true;
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  ctx:get_environment_variables()"
                                        "\nend }",
                            NULL, &out),
                     JN_SCRIPT_HOST);
    assert_string_equal(out.error.message,
                        "act:2: ctx:get_environment_variables: the database is unavailable "
                        "(db_unavailable)");
    assert_true(jn_err_retryable(out.host_err));
    jn_script_outcome_cleanup(&out);
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local ok = pcall(ctx."
                                        "get_environment_variables, ctx)\n  return ok\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_false(json_object_get_boolean(out.output));
    jn_script_outcome_cleanup(&out);
    /* A host without them says so; another self is refused. */
    jn_script_host_t h = host_for(&f);
    h.environment_variables = NULL;
    const char *src = ACTION_HEAD "exec = function(ctx)\n  ctx:get_environment_variables()\nend }";
    jn_script_source_t s = {"act", src, strlen(src)};
    jn_sandbox_limits_t lim = quick(jn_sandbox_limits_action());
    assert_int_equal(jn_script_run_action(&s, NULL, &h, &info, &lim, &out), JN_SCRIPT_ERROR);
    assert_string_equal(out.error.message,
                        "act:2: ctx:get_environment_variables is not available in this run");
    jn_script_outcome_cleanup(&out);
    f.variables_down = false;
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  ctx.get_environment_variables({})"
                                        "\nend }",
                            NULL, &out),
                     JN_SCRIPT_ERROR);
    assert_non_null(strstr(out.error.message, "call it on ctx with a colon"));
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_log_caps(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  ctx:log(string.rep('x', "
                                        "10000))\n  ctx:log('bad \\0 \\255 bytes')\n  for i = "
                                        "1, 20000 do ctx:log(i) end\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_int_equal(json_object_array_length(f.logs), JN_SCRIPT_LOG_LINES_MAX + 1);
    const char *first = json_object_get_string(json_object_array_get_idx(f.logs, 0));
    assert_true(strlen(first) < JN_SCRIPT_LOG_LINE_MAX + 8);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(f.logs, 1)),
                        "info|bad ? ? bytes");
    assert_non_null(
        strstr(json_object_get_string(json_object_array_get_idx(f.logs, JN_SCRIPT_LOG_LINES_MAX)),
               "log limit reached"));
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_limits_in_runs(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  while true do pcall(ctx.log, "
                                        "ctx, 'x') end\nend }",
                            NULL, &out),
                     JN_SCRIPT_CPU);
    assert_non_null(strstr(out.error.message, "act:2: cpu limit"));
    json_object *e = jn_script_outcome_error_json(&out, NULL);
    assert_string_equal(
        json_object_get_string(json_object_object_get(
            json_object_object_get(json_object_object_get(e, "error"), "payload"), "type")),
        "cpu_limit");
    json_object_put(e);
    jn_script_outcome_cleanup(&out);
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local t = {}\n  for i = 1, "
                                        "1e9 do local r = ctx:get{ endpoint = '/text' } end\nend }",
                            NULL, &out),
                     JN_SCRIPT_CPU);
    jn_script_outcome_cleanup(&out);
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local r = ctx:get{ endpoint = "
                                        "'/big?bytes=10000000' }\n  return #r.data\nend }",
                            NULL, &out),
                     JN_SCRIPT_OK);
    assert_int_equal(json_object_get_int(out.output), 10000000);
    jn_script_outcome_cleanup(&out);
    assert_int_equal(action(&f,
                            ACTION_HEAD "exec = function(ctx)\n  local r = ctx:get{ endpoint = "
                                        "'/big?bytes=20000000' }\nend }",
                            NULL, &out),
                     JN_SCRIPT_ERROR);
    assert_string_equal(out.error.message,
                        "act:2: ctx:get: the response is larger than 16777216 bytes");
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_host_calls_at_the_memory_cap(void **state)
{
    (void)state;
    /* Memory full, then host calls that may fail at any allocation (the box of a
     * response, the response table, its data): under the sanitizer nothing leaks. */
    fake_t f;
    fake_init(&f);
    jn_script_host_t h = host_for(&f);
    const char *src = ACTION_HEAD "exec = function(ctx)\n"
                                  "  local keep = {}\n"
                                  "  pcall(function() while true do keep[#keep + 1] = "
                                  "string.rep('x', 200) .. #keep end end)\n"
                                  "  local ok_calls = 0\n"
                                  "  for i = 1, 300 do\n"
                                  "    if pcall(ctx.post, ctx, { endpoint = '/api/echo', data = { "
                                  "n = i } }) then ok_calls = ok_calls + 1 end\n"
                                  "    pcall(ctx.get_environment_variables, ctx)\n"
                                  "    keep[#keep] = nil\n"
                                  "  end\n"
                                  "  keep = nil\n"
                                  "  return ok_calls\nend }";
    jn_script_source_t s = {"act", src, strlen(src)};
    jn_sandbox_limits_t lim = quick(jn_sandbox_limits_action());
    lim.memory_bytes = 2u << 20;
    jn_script_outcome_t out;
    jn_script_status_t st = jn_script_run_action(&s, NULL, &h, &info, &lim, &out);
    if (st != JN_SCRIPT_OK && st != JN_SCRIPT_MEMORY)
        fail_msg("%s: %s", jn_script_status_str(st), out.error.message);
    assert_true(json_object_array_length(f.requests) > 0);
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

static void test_decoded_answers_count_against_the_memory_cap(void **state)
{
    (void)state;
    /* The tree json-c builds for 2 MB of numbers takes ~75 MB of C memory before any
     * Lua value exists: it counts against the run's 64 MB cap, so the answer is refused
     * instead of the worker holding it outside the cap. A small answer still decodes. */
    fake_t f;
    fake_init(&f);
    jn_script_outcome_t out;
    jn_script_status_t st = action(&f,
                                   ACTION_HEAD "exec = function(ctx)\n"
                                               "  return #ctx:get{ endpoint = '/numbers' }.data\n"
                                               "end }",
                                   NULL, &out);
    if (st != JN_SCRIPT_MEMORY)
        fail_msg("%s: %s", jn_script_status_str(st), out.error.message);
    jn_script_outcome_cleanup(&out);
    st = action(&f,
                ACTION_HEAD "exec = function(ctx)\n"
                            "  local ok = pcall(ctx.get, ctx, { endpoint = '/numbers' })\n"
                            "  return { ok = ok, echo = ctx:post{ endpoint = '/api/echo', "
                            "data = { a = 1 } }.data.method }\n"
                            "end }",
                NULL, &out);
    if (st != JN_SCRIPT_OK)
        fail_msg("%s: %s", jn_script_status_str(st), out.error.message);
    assert_string_equal(json_object_to_json_string_ext(out.output, JSON_C_TO_STRING_PLAIN),
                        "{\"echo\":\"POST\",\"ok\":false}");
    jn_script_outcome_cleanup(&out);
    fake_cleanup(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_action),
        cmocka_unit_test(test_decoded_answers_count_against_the_memory_cap),
        cmocka_unit_test(test_example_full_sync),
        cmocka_unit_test(test_example_incremental_and_webhook),
        cmocka_unit_test(test_example_github_link_pagination),
        cmocka_unit_test(test_http_methods),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_ctx_cannot_be_tampered_with),
        cmocka_unit_test(test_output_checks),
        cmocka_unit_test(test_paginate_errors),
        cmocka_unit_test(test_paginate_post_body),
        cmocka_unit_test(test_host_failures),
        cmocka_unit_test(test_deadline_bounds_host_calls),
        cmocka_unit_test(test_yield_inside_host_call),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_metadata_connection_checkpoint),
        cmocka_unit_test(test_environment_variables),
        cmocka_unit_test(test_log_caps),
        cmocka_unit_test(test_limits_in_runs),
        cmocka_unit_test(test_host_calls_at_the_memory_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
