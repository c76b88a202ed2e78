/*
 * records_api.c - the records API with Nango's paths and shapes (@nangohq/node's
 * listRecords and pruneRecords work unchanged), and the environment's records setting:
 *
 *   GET   /records?model=&variant=&modified_after=&limit=&filter=&cursor=&ids=
 *         headers Connection-Id, Provider-Config-Key -> {records, next_cursor}
 *   PATCH /records/prune  {model, variant?, until_cursor, limit?} -> {count, has_more}
 *   GET   /junction/environment/records            -> {data: {encrypt_payloads}}
 *   PATCH /junction/environment/records  {encrypt_payloads: bool}
 *
 * The cursor follows commit order (common/store/records.h): a client that pages with
 * next_cursor, and later resumes from the last cursor it saw, gets every change once,
 * however syncs write meanwhile.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/iso8601.h"
#include "store/records.h"

#define MAX_KEY 255
#define MAX_IDS 100
#define MAX_ID_LEN 256
#define DEFAULT_LIMIT 100
#define MAX_AGE_S (366LL * 24 * 3600) /* modified_after: within the last 12 months */

/* Connection-Id and Provider-Config-Key, both required. */
static bool connection_headers(const jn_http_request_t *req, jn_http_response_t *res,
                               const char **pck, const char **cid)
{
    jn_field_error_t e;
    *pck = jn_http_header(req, "Provider-Config-Key");
    *cid = jn_http_header(req, "Connection-Id");
    const char *bad = !*cid || !**cid || strlen(*cid) > MAX_KEY   ? "connection-id"
                      : !*pck || !**pck || strlen(*pck) > MAX_KEY ? "provider-config-key"
                                                                  : NULL;
    if (!bad)
        return true;
    jn_field_error(&e, bad, "is required (at most %d characters)", MAX_KEY);
    jn_api_invalid(res, "invalid_headers", &e);
    return false;
}

/* "Model" or "Model::variant" from model and variant (absent, "" or "base": the base). */
static jn_err_t model_name(const char *model, const char *variant, char *out, size_t cap,
                           jn_field_error_t *e)
{
    if (!model || !*model)
        return jn_field_error(e, "model", "is required");
    if (variant && strlen(variant) > MAX_KEY)
        return jn_field_error(e, "variant", "must be at most %d characters", MAX_KEY);
    if (variant && strstr(variant, "::"))
        return jn_field_error(e, "variant", "must not contain \"::\"");
    if (jn_records_model_name(model, variant, out, cap) != JN_OK)
        return jn_field_error(e, "model", "must be 1 to %d printable characters without \"::\"",
                              JN_RECORDS_MAX_MODEL);
    return JN_OK;
}

typedef struct {
    const char *ids[MAX_IDS];
    size_t count;
    bool bad;
} ids_t;

static void collect_id(const char *value, void *ud)
{
    ids_t *ids = ud;
    if (ids->count == MAX_IDS || !*value || strlen(value) > MAX_ID_LEN) {
        ids->bad = true;
        return;
    }
    ids->ids[ids->count++] = value;
}

/* filter: a comma list of added, updated, deleted (any case). */
static jn_err_t parse_filter(const char *text, unsigned *out, jn_field_error_t *e)
{
    *out = 0;
    for (const char *p = text; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 5 && strncasecmp(p, "added", 5) == 0)
            *out |= JN_RECORDS_FILTER_ADDED;
        else if (n == 7 && strncasecmp(p, "updated", 7) == 0)
            *out |= JN_RECORDS_FILTER_UPDATED;
        else if (n == 7 && strncasecmp(p, "deleted", 7) == 0)
            *out |= JN_RECORDS_FILTER_DELETED;
        else
            return jn_field_error(e, "filter",
                                  "must list added, updated or deleted, separated "
                                  "by commas");
        p += n + (comma ? 1 : 0);
    }
    if (*out == 0)
        return jn_field_error(e, "filter", "must list added, updated or deleted");
    return JN_OK;
}

static void list_records(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    jn_records_query_t q = {.limit = DEFAULT_LIMIT};
    if (!jn_api_begin(gw, req, res, &env) ||
        !connection_headers(req, res, &q.provider_config_key, &q.connection_id))
        return;
    jn_field_error_t e;
    char model[JN_RECORDS_MAX_MODEL * 2 + 8];
    jn_err_t err = model_name(jn_http_query(req, "model"), jn_http_query(req, "variant"), model,
                              sizeof model, &e);
    q.model = model;
    const char *limit = jn_http_query(req, "limit");
    if (!err && limit) {
        char *end = NULL;
        long n = strtol(limit, &end, 10);
        if (!*limit || *end || n < 1 || n > JN_RECORDS_MAX_PAGE)
            err =
                jn_field_error(&e, "limit", "must be an integer from 1 to %d", JN_RECORDS_MAX_PAGE);
        q.limit = (int)n;
    }
    const char *after = jn_http_query(req, "modified_after");
    if (!after)
        after = jn_http_query(req, "delta");
    if (!err && after) {
        char why[128];
        if (jn_iso8601_parse(after, &q.modified_after, why, sizeof why) != JN_OK)
            err = jn_field_error(&e, "modified_after", "not an ISO 8601 date-time: %s", why);
        else if (q.modified_after < (long long)time(NULL) - MAX_AGE_S)
            err = jn_field_error(&e, "modified_after", "must be within the last 12 months");
        q.has_modified_after = true;
    }
    const char *filter = jn_http_query(req, "filter");
    if (!err && filter)
        err = parse_filter(filter, &q.filter, &e);
    q.cursor = jn_http_query(req, "cursor");
    if (!err && q.cursor && (!*q.cursor || strlen(q.cursor) > JN_RECORDS_MAX_CURSOR))
        err = jn_field_error(&e, "cursor", "must be 1 to %d characters", JN_RECORDS_MAX_CURSOR);
    ids_t ids = {.count = 0};
    jn_http_query_each(req, "ids", collect_id, &ids);
    jn_http_query_each(req, "ids[]", collect_id, &ids);
    if (!err && ids.bad)
        err = jn_field_error(&e, "ids", "at most %d ids of 1 to %d characters each", MAX_IDS,
                             MAX_ID_LEN);
    if (ids.count) {
        q.ids = ids.ids;
        q.id_count = ids.count;
    }
    if (err) {
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    char *body = NULL;
    size_t len = 0;
    err = jn_records_list_json(conn, &gw->keyring, env.id, &q, &body, &len, &e);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_INVALID) {
        jn_api_invalid(res, "invalid_query_params", &e);
    } else if (err == JN_ERR_NOT_FOUND) {
        jn_http_respond_error(res, 404, "unknown_connection",
                              "connection '%s' of integration '%s' was not found", q.connection_id,
                              q.provider_config_key);
    } else if (err) {
        jn_api_store_error(res, err, "records");
    } else {
        jn_http_respond_text(res, 200, "application/json", body);
    }
    free(body);
}

static void prune_records(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"model", "variant", "until_cursor", "limit", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *pck, *cid;
    if (!jn_api_begin(gw, req, res, &env) || !connection_headers(req, res, &pck, &cid))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *model = NULL, *variant = NULL, *until = NULL;
    char full[JN_RECORDS_MAX_MODEL * 2 + 8];
    json_object *limit_v = NULL;
    int limit = JN_RECORDS_MAX_PAGE;
    jn_err_t err = jn_json_only_keys(body, fields, "", &e);
    if (!err)
        err = jn_json_string(body, "model", true, JN_RECORDS_MAX_MODEL, &model, &e);
    if (!err)
        err = jn_json_string(body, "variant", false, MAX_KEY, &variant, &e);
    if (!err)
        err = model_name(model, variant, full, sizeof full, &e);
    if (!err)
        err = jn_json_string(body, "until_cursor", true, JN_RECORDS_MAX_CURSOR, &until, &e);
    if (!err && json_object_object_get_ex(body, "limit", &limit_v) && limit_v) {
        if (!json_object_is_type(limit_v, json_type_int) || json_object_get_int64(limit_v) < 1 ||
            json_object_get_int64(limit_v) > JN_RECORDS_MAX_PAGE)
            err =
                jn_field_error(&e, "limit", "must be an integer from 1 to %d", JN_RECORDS_MAX_PAGE);
        else
            limit = (int)json_object_get_int64(limit_v);
    }
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (conn) {
        long long count = 0;
        bool more = false;
        err = jn_records_prune(conn, env.id, pck, cid, full, until, limit, &count, &more, &e);
        jn_api_db_release(gw, conn);
        if (err == JN_ERR_INVALID) {
            char message[sizeof e.message];
            snprintf(message, sizeof message, "%s", e.message);
            jn_field_error(&e, "until_cursor", "%s", message);
            jn_api_invalid(res, "invalid_body", &e);
        } else if (err == JN_ERR_NOT_FOUND) {
            jn_http_respond_error(res, 404, "unknown_connection",
                                  "connection '%s' of integration '%s' was not found", cid, pck);
        } else if (err) {
            jn_api_store_error(res, err, "records");
        } else {
            json_object *root = json_object_new_object();
            json_object_object_add(root, "count", json_object_new_int64(count));
            json_object_object_add(root, "has_more", json_object_new_boolean(more));
            jn_http_respond_json(res, 200, root);
        }
    }
    json_object_put(body);
}

static void answer_setting(jn_http_response_t *res, bool encrypt)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "encrypt_payloads", json_object_new_boolean(encrypt));
    jn_api_data(res, o);
}

static void get_setting(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    bool encrypt = false;
    jn_err_t err = jn_records_get_encryption(conn, env.id, &encrypt);
    jn_api_db_release(gw, conn);
    if (err)
        jn_api_store_error(res, err, "environment");
    else
        answer_setting(res, encrypt);
}

static void patch_setting(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"encrypt_payloads", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    bool encrypt = false, present = false;
    jn_err_t err = jn_json_only_keys(body, fields, "", &e);
    if (!err)
        err = jn_json_bool(body, "encrypt_payloads", &encrypt, &present, &e);
    if (!err && !present)
        err = jn_field_error(&e, "encrypt_payloads", "is required (true or false)");
    json_object_put(body);
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    err = jn_records_set_encryption(conn, env.id, encrypt);
    jn_api_db_release(gw, conn);
    if (err)
        jn_api_store_error(res, err, "environment");
    else
        answer_setting(res, encrypt);
}

void jn_routes_records(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/records", list_records, gw);
    jn_http_route(http, "PATCH", "/records/prune", prune_records, gw);
    jn_http_route(http, "GET", "/junction/environment/records", get_setting, gw);
    jn_http_route(http, "PATCH", "/junction/environment/records", patch_setting, gw);
}
