/*
 * connections_api.c - /connections with Nango's paths and JSON shapes.
 *
 *   POST   /connections                         import a connection (201, full shape)
 *   GET    /connections                         {connections: [ApiPublicConnection]}
 *   GET    /connections/:connectionId?provider_config_key=&force_refresh=&refresh_token=
 *   PATCH  /connections/:connectionId?provider_config_key=   {end_user, tags, webhook_url_override}
 *   DELETE /connections/:connectionId?provider_config_key=
 *   POST   /connections/metadata                replace metadata (one id or a list)
 *   PATCH  /connections/metadata                shallow-merge metadata
 * Reading a connection refreshes an OAuth token that is about to expire (or when asked),
 * through the single-flight refresh in common/providers/token_refresh.c; no database
 * connection is held while the provider is asked.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connection_requests.h"
#include "store/connections.h"
#include "providers/custom_providers.h"
#include "store/integrations.h"
#include "providers/refresh.h"
#include "providers/token_refresh.h"

#define MAX_ID 255
#define MAX_LIST_IDS 100

static json_object *copy_or_null(json_object *o)
{
    json_object *c = NULL;
    if (o)
        json_object_deep_copy(o, &c, NULL);
    return c;
}

static json_object *api_errors(const jn_connection_t *c)
{
    json_object *errors = json_object_new_array();
    if (c->refresh_error) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "type", json_object_new_string("auth"));
        json_object_object_add(e, "log_id", json_object_new_string(c->refresh_error_at));
        json_object_object_add(e, "message", json_object_new_string(c->refresh_error));
        json_object_array_add(errors, e);
    }
    return errors;
}

static json_object *nullable_time(const char *iso)
{
    return iso[0] ? json_object_new_string(iso) : NULL;
}

/* The list shape (ApiPublicConnection). */
static json_object *api_connection_item(const jn_connection_t *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(c->id));
    json_object_object_add(o, "connection_id", json_object_new_string(c->connection_id));
    json_object_object_add(o, "provider_config_key",
                           json_object_new_string(c->provider_config_key));
    json_object_object_add(o, "provider", json_object_new_string(c->provider));
    json_object_object_add(o, "created", json_object_new_string(c->created_at));
    json_object_object_add(o, "metadata", copy_or_null(c->metadata));
    json_object_object_add(o, "errors", api_errors(c));
    json_object_object_add(o, "end_user", jn_api_end_user_output(c->end_user));
    json_object_object_add(o, "tags", copy_or_null(c->tags));
    return o;
}

/* Removes refresh tokens from credentials (Nango hides them unless refresh_token=true). */
static void strip_refresh_tokens(json_object *creds)
{
    json_object_object_del(creds, "refresh_token");
    json_object *raw = NULL;
    if (json_object_object_get_ex(creds, "raw", &raw) && json_object_is_type(raw, json_type_object))
        json_object_object_del(raw, "refresh_token");
}

/* The single shape (ApiPublicConnectionFull). */
static json_object *connection_full(const jn_connection_t *c, bool with_refresh_token)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(c->id));
    json_object_object_add(o, "connection_id", json_object_new_string(c->connection_id));
    json_object_object_add(o, "provider_config_key",
                           json_object_new_string(c->provider_config_key));
    json_object_object_add(o, "provider", json_object_new_string(c->provider));
    json_object_object_add(o, "errors", api_errors(c));
    json_object_object_add(o, "end_user", jn_api_end_user_output(c->end_user));
    json_object_object_add(o, "tags", copy_or_null(c->tags));
    json_object_object_add(o, "metadata", copy_or_null(c->metadata));
    json_object_object_add(o, "connection_config", copy_or_null(c->connection_config));
    json_object_object_add(o, "webhook_url_override",
                           c->webhook_url_override ? json_object_new_string(c->webhook_url_override)
                                                   : NULL);
    json_object_object_add(o, "created_at", json_object_new_string(c->created_at));
    json_object_object_add(o, "updated_at", json_object_new_string(c->updated_at));
    json_object_object_add(o, "last_fetched_at", nullable_time(c->last_fetched_at));
    json_object *creds = c->credentials ? copy_or_null(c->credentials) : json_object_new_object();
    if (!with_refresh_token)
        strip_refresh_tokens(creds);
    json_object_object_add(o, "credentials", creds);
    return o;
}

/* ---- query helpers ---- */

static bool query_bool(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                       bool *out)
{
    const char *v = jn_http_query(req, name);
    *out = false;
    if (!v || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return true;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || *v == '\0') {
        *out = true;
        return true;
    }
    jn_field_error_t e;
    jn_field_error(&e, name, "must be true or false");
    jn_api_invalid(res, "invalid_query_params", &e);
    return false;
}

static bool required_query(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                           const char **out)
{
    const char *v = jn_http_query(req, name);
    jn_field_error_t e;
    if (!v || !*v) {
        jn_field_error(&e, name, "is required");
    } else if (strlen(v) > MAX_ID) {
        jn_field_error(&e, name, "must be at most %d characters", MAX_ID);
    } else {
        *out = v;
        return true;
    }
    jn_api_invalid(res, "invalid_query_params", &e);
    return false;
}

static void not_found(jn_http_response_t *res, jn_err_t err, const char *cid, const char *pck)
{
    char what[600];
    snprintf(what, sizeof what, "connection '%s' of integration '%s'", cid, pck);
    jn_api_store_error(res, err, what);
}

/* ---- handlers ---- */

/* GET /connections/:connectionId, in up to three steps: read the row (pool); refresh the
 * credentials when forced or about to expire (the task pool and the loop, never a thread
 * waiting on the token endpoint); then answer (pool). */
typedef struct {
    jn_gateway_t *gw;
    jn_http_response_t *res;
    jn_http_pending_t *pending;
    long long row;
    bool with_refresh;
    jn_err_t err;
    char why[512];
    jn_connection_t c;
} get_job_t;

/* Answers with the connection and stamps its read. */
static void answer_connection(get_job_t *j)
{
    jn_gateway_t *gw = j->gw;
    jn_err_t err;
    PGconn *conn;
    /* A read stamp: losing one in a crash is harmless, so this commit does not wait for
     * the WAL flush (every read would otherwise), and a busy pool skips it. One round
     * trip; row is our own number. */
    if ((conn = jn_pg_acquire(gw->engine->pg, 1000, &err))) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "BEGIN; SET LOCAL synchronous_commit TO off; "
                 "UPDATE connections SET last_fetched_at = now() WHERE id = %lld; COMMIT",
                 j->row);
        jn_pg_exec_script(conn, sql);
        jn_pg_release(gw->engine->pg, conn);
    }
    json_object *body = connection_full(&j->c, j->with_refresh);
    jn_http_respond_json(j->res, 200, body);
}

/* The refresh failed and is recorded: Nango answers 400 with the connection (no
 * credentials) in the error's payload. */
static void answer_refresh_failure(get_job_t *j)
{
    jn_connection_t plain;
    json_object *payload = json_object_new_object();
    PGconn *conn = jn_api_db(j->gw, j->res);
    if (conn) {
        if (jn_connections_get_by_id(conn, &j->gw->keyring, j->row, false, &plain) == JN_OK) {
            json_object_object_add(payload, "connection", connection_full(&plain, false));
            jn_connection_cleanup(&plain);
        }
        jn_api_db_release(j->gw, conn);
    }
    json_object *error = json_object_new_object();
    json_object_object_add(error, "code", json_object_new_string("invalid_credentials"));
    json_object_object_add(error, "message", json_object_new_string(j->why));
    json_object_object_add(error, "payload", payload);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "error", error);
    jn_http_respond_json(j->res, 400, root);
}

static void get_finish_on_pool(void *ud)
{
    get_job_t *j = ud;
    if (j->err == JN_ERR_UPSTREAM || j->err == JN_ERR_INVALID)
        answer_refresh_failure(j);
    else if (j->err == JN_ERR_TIMEOUT || j->err == JN_ERR_BUSY || j->err == JN_ERR_DB_UNAVAILABLE)
        jn_http_respond_error(j->res, 503, "service_unavailable", "%s; retry shortly", j->why);
    else if (j->err)
        jn_api_store_error(j->res, j->err, "connection");
    else
        answer_connection(j);
    jn_connection_cleanup(&j->c);
    jn_http_pending_finish(j->pending);
    free(j);
}

static void get_refreshed(jn_err_t err, jn_connection_t *c, const char *why, void *ud)
{
    get_job_t *j = ud;
    j->err = err;
    if (err) {
        snprintf(j->why, sizeof j->why, "%s", why ? why : jn_err_str(err));
    } else {
        jn_connection_cleanup(&j->c);
        j->c = *c;
        memset(c, 0, sizeof *c);
    }
    if (jn_taskpool_submit(j->gw->engine->tasks, get_finish_on_pool, j) != JN_OK) {
        jn_http_respond_error(j->res, 503, "service_unavailable",
                              "the server is overloaded; retry shortly");
        jn_connection_cleanup(&j->c);
        jn_http_pending_finish(j->pending);
        free(j);
    }
}

static void get_connection(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *cid, *pck;
    bool force, with_refresh;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "connectionId", MAX_ID, &cid) ||
        !required_query(req, res, "provider_config_key", &pck) ||
        !query_bool(req, res, "force_refresh", &force) ||
        !query_bool(req, res, "refresh_token", &with_refresh))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    get_job_t *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    *j = (get_job_t){.gw = gw, .res = res, .with_refresh = with_refresh};
    jn_err_t err = jn_connections_get(conn, &gw->keyring, env.id, pck, cid, true, &j->c);
    jn_api_db_release(gw, conn);
    if (err) {
        free(j);
        not_found(res, err, cid, pck);
        return;
    }
    j->row = j->c.id;
    json_object *provider = NULL;
    bool oauth = j->c.credentials_type && (strcmp(j->c.credentials_type, "OAUTH2") == 0 ||
                                           strcmp(j->c.credentials_type, "OAUTH2_CC") == 0);
    if (oauth && !force)
        provider = jn_catalog_get(gw->catalog, j->c.provider);
    bool expiring = oauth && !force && (provider ? jn_token_expiring(&j->c, provider) : true);
    if (!force && !expiring) {
        answer_connection(j);
        jn_connection_cleanup(&j->c);
        free(j);
        return;
    }
    /* The seq of the row as this request found it: a force refresh is satisfied only by
     * credentials stored after that. */
    j->pending = jn_http_defer(req);
    jn_refresh_start(&gw->engine->sessions, env.id, env.egress, j->row, force, j->c.refresh_seq,
                     get_refreshed, j);
}

static void list_connections(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    jn_connection_filter_t f = {.limit = 10000};
    f.connection_id = jn_http_query(req, "connectionId");
    f.search = jn_http_query(req, "search");
    f.end_user_id = jn_http_query(req, "endUserId");
    f.end_user_org_id = jn_http_query(req, "endUserOrganizationId");
    f.integration_ids = jn_http_query(req, "integrationId");
    const char *limit = jn_http_query(req, "limit"), *page = jn_http_query(req, "page");
    jn_field_error_t e = {0};
    bool bad = false;
    const char *texts[] = {f.connection_id, f.search, f.end_user_id, f.end_user_org_id};
    const char *names[] = {"connectionId", "search", "endUserId", "endUserOrganizationId"};
    for (int i = 0; i < 4 && !bad; i++) {
        if (texts[i] && strlen(texts[i]) > MAX_ID) {
            jn_field_error(&e, names[i], "must be at most %d characters", MAX_ID);
            bad = true;
        }
    }
    if (!bad && f.integration_ids && strlen(f.integration_ids) > 4096) {
        jn_field_error(&e, "integrationId", "is too long");
        bad = true;
    }
    char *end = NULL;
    if (!bad && limit) {
        long n = strtol(limit, &end, 10);
        if (*end || n < 1 || n > 2000) {
            jn_field_error(&e, "limit", "must be an integer from 1 to 2000");
            bad = true;
        }
        f.limit = (int)n;
    }
    if (!bad && page) {
        long n = strtol(page, &end, 10);
        if (*end || n < 0 || n > 1000000) {
            jn_field_error(&e, "page", "must be a non-negative integer");
            bad = true;
        }
        f.page = (int)n;
    }
    /* tags[key]=value */
    json_object *tags = json_object_new_object();
    jn_http_query_bracketed(req, "tags", tags);
    if (json_object_object_length(tags) > 0)
        f.tags = tags;
    if (bad) {
        json_object_put(tags);
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(tags);
        return;
    }
    jn_connection_t *list = NULL;
    size_t n = 0;
    jn_err_t err = jn_connections_list(conn, env.id, &f, &list, &n);
    jn_api_db_release(gw, conn);
    json_object_put(tags);
    if (err) {
        jn_api_store_error(res, err, "connections");
        return;
    }
    json_object *items = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object_array_add(items, api_connection_item(&list[i]));
        jn_connection_cleanup(&list[i]);
    }
    free(list);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "connections", items);
    jn_http_respond_json(res, 200, root);
}

static void patch_connection(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"end_user", "tags", "webhook_url_override", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *cid, *pck;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "connectionId", MAX_ID, &cid) ||
        !required_query(req, res, "provider_config_key", &pck))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    json_object *end_user = NULL, *tags = NULL, *hook = NULL;
    const char *hook_url = NULL;
    jn_err_t err = jn_json_only_keys(body, fields, "", &e);
    if (!err && json_object_object_get_ex(body, "end_user", &end_user) && end_user)
        err = jn_api_check_end_user(end_user, &e);
    if (!err)
        err = jn_api_check_tags(body, &e);
    json_object_object_get_ex(body, "tags", &tags);
    bool has_hook = json_object_object_get_ex(body, "webhook_url_override", &hook);
    if (!err && hook)
        err = jn_json_string(body, "webhook_url_override", false, 2048, &hook_url, &e);
    if (!err)
        err = jn_api_check_webhook_url(hook_url, "webhook_url_override", &e);
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (conn) {
        err = jn_connections_patch(conn, env.id, pck, cid, end_user, tags, has_hook, hook_url);
        jn_api_db_release(gw, conn);
        if (err)
            not_found(res, err, cid, pck);
        else
            jn_api_success(res);
    }
    json_object_put(body);
}

static void delete_connection(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *cid, *pck;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "connectionId", MAX_ID, &cid) ||
        !required_query(req, res, "provider_config_key", &pck))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_err_t err = jn_connections_delete(conn, env.id, pck, cid);
    jn_api_db_release(gw, conn);
    if (err)
        not_found(res, err, cid, pck);
    else
        jn_api_success(res);
}

static void set_metadata(const jn_http_request_t *req, jn_http_response_t *res, jn_gateway_t *gw,
                         bool merge)
{
    static const char *const fields[] = {"connection_id", "provider_config_key", "metadata", NULL};
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *pck = NULL;
    json_object *ids = NULL, *metadata = NULL;
    jn_err_t err = jn_json_only_keys(body, fields, "", &e);
    if (!err)
        err = jn_json_string(body, "provider_config_key", true, MAX_ID, &pck, &e);
    if (!err && (!json_object_object_get_ex(body, "metadata", &metadata) ||
                 !json_object_is_type(metadata, json_type_object)))
        err = jn_field_error(&e, "metadata", "must be an object");
    if (!err && !json_object_object_get_ex(body, "connection_id", &ids))
        err = jn_field_error(&e, "connection_id", "is required");
    if (!err && json_object_is_type(ids, json_type_string)) {
        const char *one;
        err = jn_json_string(body, "connection_id", true, MAX_ID, &one, &e);
    } else if (!err && json_object_is_type(ids, json_type_array)) {
        size_t n = json_object_array_length(ids);
        if (n == 0 || n > MAX_LIST_IDS)
            err = jn_field_error(&e, "connection_id", "must list 1 to %d ids", MAX_LIST_IDS);
        for (size_t i = 0; i < n && !err; i++) {
            json_object *v = json_object_array_get_idx(ids, i);
            if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0 ||
                json_object_get_string_len(v) > MAX_ID)
                err = jn_field_error(&e, "connection_id", "item %zu must be a non-empty string", i);
        }
    } else if (!err) {
        err = jn_field_error(&e, "connection_id", "must be a string or an array of strings");
    }
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(body);
        return;
    }
    /* All or nothing: one unknown id leaves every connection unchanged. */
    err = jn_pg_exec_script(conn, "BEGIN");
    size_t n = json_object_is_type(ids, json_type_array) ? json_object_array_length(ids) : 1;
    const char *failed = NULL;
    for (size_t i = 0; i < n && !err; i++) {
        const char *cid = json_object_is_type(ids, json_type_array)
                              ? json_object_get_string(json_object_array_get_idx(ids, i))
                              : json_object_get_string(ids);
        err = jn_connections_set_metadata(conn, env.id, pck, cid, metadata, merge);
        if (err)
            failed = cid;
    }
    jn_pg_exec_script(conn, err ? "ROLLBACK" : "COMMIT");
    jn_api_db_release(gw, conn);
    if (err) {
        not_found(res, err, failed ? failed : "?", pck);
    } else {
        json_object_get(body);
        jn_http_respond_json(res, merge ? 200 : 201, body);
    }
    json_object_put(body);
}

static void post_metadata(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    set_metadata(req, res, ud, false);
}

static void patch_metadata(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    set_metadata(req, res, ud, true);
}

static void import_connection(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_connection_request_t cr;
    jn_field_error_t e;
    if (jn_api_read_connection_request(body, true, &cr, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    /* An end user brings Nango's automatic tags, under the body's own. */
    json_object *tags = cr.end_user ? jn_api_end_user_tags(cr.end_user, NULL, cr.tags) : NULL;
    if (tags)
        cr.tags = tags;
    /* Stored as given, without asking the provider (Nango's import does the same), so a
     * bulk migration is never blocked by a provider that is slow or away. */
    jn_connection_t c;
    bool created = false;
    if (jn_api_save_connection(gw, &env, &cr, JN_CONNCFG_DEVELOPER, false, res, &c, &created)) {
        json_object *full = connection_full(&c, true);
        jn_connection_cleanup(&c);
        jn_http_respond_json(res, created ? 201 : 200, full);
    }
    jn_api_connection_request_cleanup(&cr);
    json_object_put(tags);
    json_object_put(body);
}

void jn_routes_connections(jn_gateway_t *gw, jn_http_server_t *http)
{
    /* /connections/metadata before /connections/:connectionId, which would match it. */
    jn_http_route(http, "POST", "/connections/metadata", post_metadata, gw);
    jn_http_route(http, "PATCH", "/connections/metadata", patch_metadata, gw);
    jn_http_route(http, "GET", "/connections", list_connections, gw);
    jn_http_route(http, "POST", "/connections", import_connection, gw);
    jn_http_route(http, "GET", "/connections/:connectionId", get_connection, gw);
    jn_http_route(http, "PATCH", "/connections/:connectionId", patch_connection, gw);
    jn_http_route(http, "DELETE", "/connections/:connectionId", delete_connection, gw);
}
