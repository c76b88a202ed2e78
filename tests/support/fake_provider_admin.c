/*
 * fake_provider_admin.c - /_admin: how a test steers the fake provider (no auth).
 *
 *   GET  /_admin/config     the knobs as JSON
 *   POST /_admin/config     sets the knobs given (all or none: a bad one changes nothing)
 *   POST /_admin/clients    {"client_id","client_secret"} registers or updates a client
 *   POST /_admin/api_keys   {"key"} adds an API key for x-api-key
 *   POST /_admin/revoke     {"refresh_token"} | {"all":true} | {"access_tokens":true}
 *   GET  /_admin/stats      counters and the last token request (secrets redacted)
 *   POST /_admin/reset      back to the start state
 * Errors use the OAuth shape {"error","error_description"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_provider.h"
#include "core/json_util.h"

#define MAX_LATENCY_MS 120000
#define MAX_ITEMS 1000000

static void respond_invalid(jn_http_response_t *res, const jn_field_error_t *e)
{
    char why[512];
    snprintf(why, sizeof why, "%s%s%s", e->path, e->path[0] ? ": " : "", e->message);
    jn_fake_respond_oauth_error(res, 400, "invalid_request", why);
}

static jn_err_t read_int(json_object *v, const char *key, int64_t min, int64_t max, int64_t *out,
                         jn_field_error_t *e)
{
    if (!json_object_is_type(v, json_type_int))
        return jn_field_error(e, key, "must be an integer");
    int64_t n = json_object_get_int64(v);
    if (n < min || n > max)
        return jn_field_error(e, key, "must be between %lld and %lld", (long long)min,
                              (long long)max);
    *out = n;
    return JN_OK;
}

static jn_err_t read_bool(json_object *v, const char *key, bool *out, jn_field_error_t *e)
{
    if (!json_object_is_type(v, json_type_boolean))
        return jn_field_error(e, key, "must be true or false");
    *out = json_object_get_boolean(v);
    return JN_OK;
}

static jn_err_t read_fail_next(json_object *v, jn_fake_fail_next_t *out, jn_field_error_t *e)
{
    static const char *const keys[] = {"count", "status", "headers", "body", "content_type", NULL};
    json_object_put(out->headers);
    free(out->body);
    free(out->content_type);
    memset(out, 0, sizeof *out);
    if (!v || json_object_is_type(v, json_type_null))
        return JN_OK;
    if (!json_object_is_type(v, json_type_object))
        return jn_field_error(e, "fail_next", "must be an object or null");
    jn_err_t err = jn_json_only_keys(v, keys, "", e);
    json_object *f = NULL;
    if (!err && !json_object_object_get_ex(v, "count", &f))
        err = jn_field_error(e, "count", "is required");
    if (!err)
        err = read_int(f, "count", 0, 1000000, &out->count, e);
    int64_t status = 503;
    if (!err && json_object_object_get_ex(v, "status", &f))
        err = read_int(f, "status", 100, 599, &status, e);
    out->status = (int)status;
    json_object *headers = NULL;
    const char *body = NULL, *content_type = NULL;
    if (!err)
        err = jn_json_string_map(v, "headers", 4096, &headers, e);
    if (!err)
        err = jn_json_string(v, "body", false, 1 << 20, &body, e);
    if (!err)
        err = jn_json_string(v, "content_type", false, 256, &content_type, e);
    if (err) {
        jn_field_error_nest(e, "fail_next");
        return err;
    }
    if (headers && json_object_object_length(headers) > 64)
        return jn_field_error(e, "fail_next.headers", "at most %d headers", 64);
    out->headers = headers ? json_object_get(headers) : NULL;
    out->body = jn_fake_strdup(body ? body : "{\"message\":\"injected failure\"}");
    out->content_type = jn_fake_strdup(content_type ? content_type : "application/json");
    return JN_OK;
}

static jn_err_t read_rate_limit(json_object *v, jn_fake_rate_limit_t *out, jn_field_error_t *e)
{
    static const char *const keys[] = {
        "limit", "window_ms", "reset_header", "remaining_header", "retry_after", NULL};
    memset(out, 0, sizeof *out);
    if (!v || json_object_is_type(v, json_type_null))
        return JN_OK;
    if (!json_object_is_type(v, json_type_object))
        return jn_field_error(e, "rate_limit", "must be an object or null");
    jn_err_t err = jn_json_only_keys(v, keys, "", e);
    json_object *f = NULL;
    if (!err && !json_object_object_get_ex(v, "limit", &f))
        err = jn_field_error(e, "limit", "is required");
    if (!err)
        err = read_int(f, "limit", 0, INT32_MAX, &out->limit, e);
    if (!err && !json_object_object_get_ex(v, "window_ms", &f))
        err = jn_field_error(e, "window_ms", "is required");
    if (!err)
        err = read_int(f, "window_ms", 1, 86400000, &out->window_ms, e);
    const char *reset = NULL, *remaining = NULL;
    if (!err)
        err = jn_json_string(v, "reset_header", false, sizeof out->reset_header - 1, &reset, e);
    if (!err)
        err = jn_json_string(v, "remaining_header", false, sizeof out->remaining_header - 1,
                             &remaining, e);
    bool present = false;
    out->retry_after = true;
    if (!err)
        err = jn_json_bool(v, "retry_after", &out->retry_after, &present, e);
    if (err) {
        jn_field_error_nest(e, "rate_limit");
        return err;
    }
    snprintf(out->reset_header, sizeof out->reset_header, "%s",
             reset && *reset ? reset : "x-ratelimit-reset");
    snprintf(out->remaining_header, sizeof out->remaining_header, "%s",
             remaining && *remaining ? remaining : "x-ratelimit-remaining");
    out->on = true;
    return JN_OK;
}

/* Applies one knob to k. */
static jn_err_t apply_knob(jn_fake_knobs_t *k, const char *key, json_object *v, jn_field_error_t *e)
{
    if (strcmp(key, "expires_in") == 0)
        return read_int(v, key, 0, 100000000, &k->expires_in, e);
    if (strcmp(key, "rotate_refresh_tokens") == 0)
        return read_bool(v, key, &k->rotate_refresh_tokens, e);
    if (strcmp(key, "issue_refresh_token") == 0)
        return read_bool(v, key, &k->issue_refresh_token, e);
    if (strcmp(key, "require_pkce") == 0)
        return read_bool(v, key, &k->require_pkce, e);
    if (strcmp(key, "deny") == 0)
        return read_bool(v, key, &k->deny, e);
    if (strcmp(key, "require_auth") == 0)
        return read_bool(v, key, &k->require_auth, e);
    if (strcmp(key, "token_latency_ms") == 0)
        return read_int(v, key, 0, MAX_LATENCY_MS, &k->token_latency_ms, e);
    if (strcmp(key, "fail_token_requests") == 0)
        return read_int(v, key, 0, 1000000, &k->fail_token_requests, e);
    if (strcmp(key, "items_count") == 0)
        return read_int(v, key, 0, MAX_ITEMS, &k->items_count, e);
    if (strcmp(key, "items_version") == 0)
        return read_int(v, key, 0, 1000000, &k->items_version, e);
    if (strcmp(key, "items_delete_every") == 0)
        return read_int(v, key, 0, MAX_ITEMS, &k->items_delete_every, e);
    if (strcmp(key, "items_reverse_keys") == 0)
        return read_bool(v, key, &k->items_reverse_keys, e);
    if (strcmp(key, "items_fail_from_offset") == 0)
        return read_int(v, key, -1, MAX_ITEMS, &k->items_fail_from_offset, e);
    if (strcmp(key, "latency_ms") == 0)
        return read_int(v, key, 0, MAX_LATENCY_MS, &k->latency_ms, e);
    if (strcmp(key, "fail_next") == 0)
        return read_fail_next(v, &k->fail_next, e);
    if (strcmp(key, "rate_limit") == 0)
        return read_rate_limit(v, &k->rate_limit, e);
    if (strcmp(key, "extra_token_fields") == 0) {
        if (!json_object_is_type(v, json_type_null) && !json_object_is_type(v, json_type_object))
            return jn_field_error(e, key, "must be an object or null");
        json_object_put(k->extra_token_fields);
        k->extra_token_fields = NULL;
        if (json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0)
            json_object_deep_copy(v, &k->extra_token_fields, NULL);
        return JN_OK;
    }
    return jn_field_error(e, key, "unknown knob");
}

/* A deep copy of k (the owned parts duplicated). */
static void knobs_copy(const jn_fake_knobs_t *k, jn_fake_knobs_t *out)
{
    *out = *k;
    out->extra_token_fields = NULL;
    if (k->extra_token_fields)
        json_object_deep_copy(k->extra_token_fields, &out->extra_token_fields, NULL);
    out->fail_next.headers = NULL;
    if (k->fail_next.headers)
        json_object_deep_copy(k->fail_next.headers, &out->fail_next.headers, NULL);
    out->fail_next.body = jn_fake_strdup(k->fail_next.body);
    out->fail_next.content_type = jn_fake_strdup(k->fail_next.content_type);
}

static json_object *knobs_json(const jn_fake_knobs_t *k)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "expires_in", json_object_new_int64(k->expires_in));
    json_object_object_add(o, "rotate_refresh_tokens",
                           json_object_new_boolean(k->rotate_refresh_tokens));
    json_object_object_add(o, "issue_refresh_token",
                           json_object_new_boolean(k->issue_refresh_token));
    json_object_object_add(o, "require_pkce", json_object_new_boolean(k->require_pkce));
    json_object_object_add(o, "deny", json_object_new_boolean(k->deny));
    json_object_object_add(o, "token_latency_ms", json_object_new_int64(k->token_latency_ms));
    json_object_object_add(o, "fail_token_requests", json_object_new_int64(k->fail_token_requests));
    json_object *extra = NULL;
    if (k->extra_token_fields)
        json_object_deep_copy(k->extra_token_fields, &extra, NULL);
    json_object_object_add(o, "extra_token_fields", extra);
    json_object_object_add(o, "items_count", json_object_new_int64(k->items_count));
    json_object_object_add(o, "items_version", json_object_new_int64(k->items_version));
    json_object_object_add(o, "items_delete_every", json_object_new_int64(k->items_delete_every));
    json_object_object_add(o, "items_reverse_keys", json_object_new_boolean(k->items_reverse_keys));
    json_object_object_add(o, "items_fail_from_offset",
                           json_object_new_int64(k->items_fail_from_offset));
    json_object_object_add(o, "latency_ms", json_object_new_int64(k->latency_ms));
    json_object *fail = NULL;
    if (k->fail_next.count > 0) {
        fail = json_object_new_object();
        json_object_object_add(fail, "count", json_object_new_int64(k->fail_next.count));
        json_object_object_add(fail, "status", json_object_new_int(k->fail_next.status));
        json_object *headers = NULL;
        if (k->fail_next.headers)
            json_object_deep_copy(k->fail_next.headers, &headers, NULL);
        json_object_object_add(fail, "headers", headers ? headers : json_object_new_object());
        json_object_object_add(fail, "body", json_object_new_string(k->fail_next.body));
        json_object_object_add(fail, "content_type",
                               json_object_new_string(k->fail_next.content_type));
    }
    json_object_object_add(o, "fail_next", fail);
    json_object *rl = NULL;
    if (k->rate_limit.on) {
        rl = json_object_new_object();
        json_object_object_add(rl, "limit", json_object_new_int64(k->rate_limit.limit));
        json_object_object_add(rl, "window_ms", json_object_new_int64(k->rate_limit.window_ms));
        json_object_object_add(rl, "reset_header",
                               json_object_new_string(k->rate_limit.reset_header));
        json_object_object_add(rl, "remaining_header",
                               json_object_new_string(k->rate_limit.remaining_header));
        json_object_object_add(rl, "retry_after",
                               json_object_new_boolean(k->rate_limit.retry_after));
    }
    json_object_object_add(o, "rate_limit", rl);
    json_object_object_add(o, "require_auth", json_object_new_boolean(k->require_auth));
    return o;
}

static void get_config(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    jn_fake_t *fp = ud;
    pthread_mutex_lock(&fp->mu);
    json_object *o = knobs_json(&fp->knobs);
    pthread_mutex_unlock(&fp->mu);
    jn_http_respond_json(res, 200, o);
}

static void post_config(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_fake_t *fp = ud;
    json_object *body = jn_fake_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    pthread_mutex_lock(&fp->mu);
    jn_fake_knobs_t next;
    knobs_copy(&fp->knobs, &next);
    jn_err_t err = JN_OK;
    bool rate_limit_set = false;
    json_object_object_foreach(body, key, value)
    {
        if (err == JN_OK)
            err = apply_knob(&next, key, value, &e);
        rate_limit_set = rate_limit_set || strcmp(key, "rate_limit") == 0;
    }
    json_object *now = NULL;
    if (err == JN_OK) {
        jn_fake_knobs_cleanup(&fp->knobs);
        fp->knobs = next;
        if (rate_limit_set) {
            fp->window_start_ms = 0;
            fp->window_used = 0;
        }
        now = knobs_json(&fp->knobs);
    } else {
        jn_fake_knobs_cleanup(&next);
    }
    pthread_mutex_unlock(&fp->mu);
    json_object_put(body);
    if (err != JN_OK)
        respond_invalid(res, &e);
    else
        jn_http_respond_json(res, 200, now);
}

static void post_client(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const keys[] = {"client_id", "client_secret", NULL};
    jn_fake_t *fp = ud;
    json_object *body = jn_fake_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *id = NULL, *secret = NULL;
    jn_err_t err = jn_json_only_keys(body, keys, "", &e);
    if (!err)
        err = jn_json_string(body, "client_id", true, JN_FAKE_TOKEN_MAX - 1, &id, &e);
    if (!err)
        err = jn_json_string(body, "client_secret", true, JN_FAKE_TOKEN_MAX - 1, &secret, &e);
    if (err) {
        respond_invalid(res, &e);
    } else {
        pthread_mutex_lock(&fp->mu);
        jn_fake_client_put(&fp->clients, id, secret);
        pthread_mutex_unlock(&fp->mu);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "client_id", json_object_new_string(id));
        jn_http_respond_json(res, 201, o);
    }
    json_object_put(body);
}

static void post_api_key(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const keys[] = {"key", NULL};
    jn_fake_t *fp = ud;
    json_object *body = jn_fake_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *key = NULL;
    jn_err_t err = jn_json_only_keys(body, keys, "", &e);
    if (!err)
        err = jn_json_string(body, "key", true, 512, &key, &e);
    if (err) {
        respond_invalid(res, &e);
    } else {
        pthread_mutex_lock(&fp->mu);
        jn_fake_client_put(&fp->api_keys, key, NULL);
        pthread_mutex_unlock(&fp->mu);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "key", json_object_new_string(key));
        jn_http_respond_json(res, 201, o);
    }
    json_object_put(body);
}

static void post_revoke(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const keys[] = {"refresh_token", "all", "access_tokens", NULL};
    jn_fake_t *fp = ud;
    json_object *body = jn_fake_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *one = NULL;
    bool all = false, access = false, present = false;
    jn_err_t err = jn_json_only_keys(body, keys, "", &e);
    if (!err)
        err = jn_json_string(body, "refresh_token", false, JN_FAKE_TOKEN_MAX - 1, &one, &e);
    if (!err)
        err = jn_json_bool(body, "all", &all, &present, &e);
    if (!err)
        err = jn_json_bool(body, "access_tokens", &access, &present, &e);
    if (!err && !one && !all && !access)
        err = jn_field_error(&e, "", "give refresh_token, \"all\":true or \"access_tokens\":true");
    if (err) {
        json_object_put(body);
        respond_invalid(res, &e);
        return;
    }
    int64_t refresh_n = 0, access_n = 0;
    bool found = one == NULL;
    pthread_mutex_lock(&fp->mu);
    for (jn_fake_token_t *t = fp->tokens; t; t = t->next) {
        if (t->revoked)
            continue;
        bool hit = t->refresh ? (all || (one && strcmp(one, t->value) == 0)) : access;
        if (t->refresh && one && strcmp(one, t->value) == 0)
            found = true;
        if (hit) {
            t->revoked = true;
            if (t->refresh)
                refresh_n++;
            else
                access_n++;
        }
    }
    pthread_mutex_unlock(&fp->mu);
    json_object_put(body);
    if (!found) {
        jn_fake_respond_oauth_error(res, 404, "not_found", "no such refresh token");
        return;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "revoked_refresh_tokens", json_object_new_int64(refresh_n));
    json_object_object_add(o, "expired_access_tokens", json_object_new_int64(access_n));
    jn_http_respond_json(res, 200, o);
}

static json_object *copy_or_null(json_object *o)
{
    json_object *out = NULL;
    if (o)
        json_object_deep_copy(o, &out, NULL);
    return out;
}

static void get_stats(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    jn_fake_t *fp = ud;
    json_object *o = json_object_new_object();
    pthread_mutex_lock(&fp->mu);
    json_object_object_add(o, "authorize_requests", json_object_new_int64(fp->authorize_requests));
    json_object_object_add(o, "token_requests", json_object_new_int64(fp->token_requests));
    json_object_object_add(o, "token_requests_by_grant", copy_or_null(fp->token_requests_by_grant));
    json_object_object_add(o, "api_requests", json_object_new_int64(fp->api_requests));
    json_object_object_add(o, "api_requests_by_path", copy_or_null(fp->api_requests_by_path));
    json_object_object_add(o, "last_token_request", copy_or_null(fp->last_token_request));
    json_object_object_add(o, "hangs_started", json_object_new_int64(fp->hangs_started));
    json_object_object_add(o, "hangs_open", json_object_new_int64(fp->hangs_open));
    pthread_mutex_unlock(&fp->mu);
    jn_http_respond_json(res, 200, o);
}

static void post_reset(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)req;
    jn_fake_t *fp = ud;
    pthread_mutex_lock(&fp->mu);
    jn_fake_reset(fp);
    pthread_mutex_unlock(&fp->mu);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(true));
    jn_http_respond_json(res, 200, o);
}

void jn_fake_routes_admin(jn_fake_t *fp, jn_http_server_t *srv)
{
    jn_http_route(srv, "GET", "/_admin/config", get_config, fp);
    jn_http_route(srv, "POST", "/_admin/config", post_config, fp);
    jn_http_route(srv, "POST", "/_admin/clients", post_client, fp);
    jn_http_route(srv, "POST", "/_admin/api_keys", post_api_key, fp);
    jn_http_route(srv, "POST", "/_admin/revoke", post_revoke, fp);
    jn_http_route(srv, "GET", "/_admin/stats", get_stats, fp);
    jn_http_route(srv, "POST", "/_admin/reset", post_reset, fp);
}
