/*
 * connect_api.c - connect sessions over HTTP, with Nango's shapes.
 *
 *   POST   /connect/sessions            (secret key)     201 {data: {token, connect_link,
 * expires_at}} POST   /connect/sessions/reconnect  (secret key)     same, bound to one existing
 * connection GET    /connect/session             (session token)  {data: {endUser,
 * allowed_integrations, …}} DELETE /connect/session             (session token)  204
 */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "connect_sessions.h"
#include "connection_requests.h"
#include "cors.h"
#include "providers/connection_config.h"
#include "providers/custom_providers.h"
#include "store/connections.h"
#include "store/integrations.h"

#define MAX_KEY 255

static jn_err_t read_session_body(json_object *body, bool reconnect, jn_connect_session_input_t *in,
                                  const char **connection_id, const char **integration_id,
                                  jn_field_error_t *e)
{
    static const char *const fields[] = {"end_user",
                                         "organization",
                                         "allowed_integrations",
                                         "integrations_config_defaults",
                                         "tags",
                                         "overrides",
                                         "webhook_url_override",
                                         "connection_id",
                                         "integration_id",
                                         NULL};
    memset(in, 0, sizeof *in);
    jn_err_t err = jn_json_only_keys(body, fields, "", e);
    if (err)
        return err;
    json_object *v = NULL;
    if (!reconnect && (json_object_object_get_ex(body, "connection_id", &v) ||
                       json_object_object_get_ex(body, "integration_id", &v)))
        return jn_field_error(e,
                              json_object_object_get_ex(body, "connection_id", &v)
                                  ? "connection_id"
                                  : "integration_id",
                              "only for /connect/sessions/reconnect");
    if (reconnect) {
        if ((err = jn_json_string(body, "connection_id", true, MAX_KEY, connection_id, e)) ||
            (err = jn_json_string(body, "integration_id", true, MAX_KEY, integration_id, e)))
            return err;
    }
    if (json_object_object_get_ex(body, "end_user", &v) && v) {
        if ((err = jn_api_check_end_user(v, e)))
            return err;
        in->end_user = v;
    }
    if ((err = jn_api_check_tags(body, e)))
        return err;
    json_object_object_get_ex(body, "tags", &in->tags);
    if (!reconnect && !in->end_user && !in->tags)
        return jn_field_error(e, "end_user", "is required (or give tags)");
    if (json_object_object_get_ex(body, "organization", &v) && v) {
        static const char *const org[] = {"id", "display_name", NULL};
        const char *s;
        if (!json_object_is_type(v, json_type_object))
            return jn_field_error(e, "organization", "must be an object");
        if ((err = jn_json_only_keys(v, org, "organization", e)) ||
            (err = jn_json_string(v, "id", true, MAX_KEY, &s, e)) ||
            (err = jn_json_string(v, "display_name", false, MAX_KEY, &s, e))) {
            if (strncmp(e->path, "organization", 12) != 0)
                jn_field_error_nest(e, "organization");
            return err;
        }
        in->organization = v;
    }
    if (json_object_object_get_ex(body, "allowed_integrations", &v) && v) {
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > 1000)
            return jn_field_error(e, "allowed_integrations", "must be an array of unique keys");
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *k = json_object_array_get_idx(v, i);
            if (!json_object_is_type(k, json_type_string) || json_object_get_string_len(k) == 0 ||
                json_object_get_string_len(k) > MAX_KEY)
                return jn_field_error(e, "allowed_integrations", "item %zu must be a unique key",
                                      i);
        }
        in->allowed_integrations = v;
    }
    if (json_object_object_get_ex(body, "integrations_config_defaults", &v) && v) {
        if (!json_object_is_type(v, json_type_object))
            return jn_field_error(e, "integrations_config_defaults", "must be an object");
        in->integrations_config_defaults = v;
    }
    if (json_object_object_get_ex(body, "overrides", &v) && v &&
        !json_object_is_type(v, json_type_object))
        return jn_field_error(e, "overrides", "must be an object");
    if ((err = jn_json_string(body, "webhook_url_override", false, 2048, &in->webhook_url_override,
                              e)))
        return err;
    return jn_api_check_webhook_url(in->webhook_url_override, "webhook_url_override", e);
}

/* The connection_config defaults of each integration the session names, judged as the
 * developer's against the integration's provider, so a bad default is the developer's 400
 * now rather than the end user's later. Keys that name no integration (yet) are left to
 * the flows, which judge the defaults again. False after answering res. */
static bool check_config_defaults(jn_gateway_t *gw, PGconn *conn, const jn_environment_t *env,
                                  json_object *defaults, jn_http_response_t *res)
{
    if (!defaults)
        return true;
    json_object_object_foreach(defaults, key, entry)
    {
        char path[160];
        snprintf(path, sizeof path, "integrations_config_defaults.%.64s", key);
        json_object *config = NULL;
        jn_field_error_t e;
        if (!json_object_is_type(entry, json_type_object)) {
            jn_field_error(&e, path, "must be an object");
            jn_api_invalid(res, "invalid_body", &e);
            return false;
        }
        if (!json_object_object_get_ex(entry, "connection_config", &config) || !config)
            continue;
        jn_integration_t it;
        jn_err_t err = jn_integrations_get(conn, &gw->keyring, env->id, key, false, &it);
        if (err == JN_ERR_NOT_FOUND)
            continue;
        json_object *provider = NULL;
        if (!err) {
            err = jn_providers_lookup(gw->catalog, conn, env->id, it.provider, &provider);
            jn_integration_cleanup(&it);
        }
        if (err) {
            jn_api_store_error(res, err, "integration");
            return false;
        }
        err = jn_connection_config_check(provider, config, JN_CONNCFG_DEVELOPER, &e);
        json_object_put(provider);
        if (err) {
            jn_field_error_nest(&e, path);
            jn_api_invalid(res, "invalid_body", &e);
            return false;
        }
    }
    return true;
}

static void create_session(const jn_http_request_t *req, jn_http_response_t *res, jn_gateway_t *gw,
                           bool reconnect)
{
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_connect_session_input_t in;
    const char *cid = NULL, *pck = NULL;
    jn_field_error_t e;
    if (read_session_body(body, reconnect, &in, &cid, &pck, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    /* The connection gets Nango's automatic end-user tags under the caller's own. */
    json_object *tags = jn_api_end_user_tags(in.end_user, in.organization, in.tags);
    in.tags = tags;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(tags);
        json_object_put(body);
        return;
    }
    jn_err_t err = JN_OK;
    if (!check_config_defaults(gw, conn, &env, in.integrations_config_defaults, res)) {
        jn_api_db_release(gw, conn);
        json_object_put(tags);
        json_object_put(body);
        return;
    }
    if (reconnect) {
        jn_connection_t c;
        err = jn_connections_get(conn, &gw->keyring, env.id, pck, cid, false, &c);
        if (err == JN_OK) {
            in.reconnect_connection_id = c.id;
            jn_connection_cleanup(&c);
        } else {
            char what[600];
            snprintf(what, sizeof what, "connection '%s' of integration '%s'", cid, pck);
            jn_api_store_error(res, err, what);
        }
    }
    if (err == JN_OK) {
        char token[JN_CONNECT_TOKEN_LEN + 1], expires[40];
        err = jn_connect_sessions_create(conn, env.id, &in, token, expires);
        if (err) {
            jn_api_store_error(res, err, "connect session");
        } else {
            char link[768];
            snprintf(link, sizeof link, "%s/connect?session_token=%s",
                     gw->engine->config.server_url, token);
            json_object *data = json_object_new_object();
            json_object_object_add(data, "token", json_object_new_string(token));
            json_object_object_add(data, "connect_link", json_object_new_string(link));
            json_object_object_add(data, "expires_at", json_object_new_string(expires));
            jn_api_data(res, data);
            res->status = 201;
        }
    }
    jn_api_db_release(gw, conn);
    json_object_put(tags);
    json_object_put(body);
}

static void post_session(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    create_session(req, res, ud, false);
}

static void post_reconnect(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    create_session(req, res, ud, true);
}

/* Authenticates by session token in the Authorization header. */
static bool session_from_header(jn_gateway_t *gw, const jn_http_request_t *req,
                                jn_http_response_t *res, PGconn **conn, jn_connect_session_t *s,
                                const char **token)
{
    const char *own = gw->engine->config.server_url;
    const char *auth = jn_http_header(req, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) {
        jn_cors_answer(req, res, NULL, own);
        jn_http_respond_error(res, 401, "missing_auth_header",
                              "send Authorization: Bearer <connect session token>");
        return false;
    }
    *token = auth + 7;
    if (!jn_connect_token_well_formed(*token)) {
        jn_cors_answer(req, res, NULL, own);
        jn_http_respond_error(res, 401, "invalid_connect_session_token_format",
                              "the connect session token is malformed");
        return false;
    }
    *conn = jn_api_db(gw, res);
    if (!*conn) {
        jn_cors_answer(req, res, NULL, own);
        return false;
    }
    jn_err_t err = jn_connect_sessions_find(*conn, *token, s);
    if (err) {
        jn_api_db_release(gw, *conn);
        jn_cors_answer(req, res, NULL, own);
        if (err == JN_ERR_NOT_FOUND)
            jn_http_respond_error(res, 401, "unknown_connect_session_token",
                                  "the connect session is unknown or expired");
        else
            jn_api_store_error(res, err, "connect session");
        return false;
    }
    /* The session's environment decides which pages may read it. */
    if (!jn_cors_answer(req, res, s->cors_allowed_origins, own)) {
        jn_api_db_release(gw, *conn);
        jn_connect_session_cleanup(s);
        return false;
    }
    return true;
}

/* The preflight carries no Authorization header, so the environment is not known: any
 * origin may ask, and the real request is checked against the session's environment. */
static void session_preflight(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_cors_preflight(req, res, NULL, gw->engine->config.server_url, "GET, DELETE");
}

static json_object *copy(json_object *o)
{
    json_object *c = NULL;
    if (o)
        json_object_deep_copy(o, &c, NULL);
    return c;
}

/* Connect UI settings in Nango's shape. Junction has no per-environment settings yet:
 * the defaults, the system's theme and no watermark. */
static json_object *connect_ui_settings(void)
{
    json_object *theme = json_object_new_object();
    const char *modes[] = {"light", "dark"};
    for (size_t i = 0; i < 2; i++) {
        json_object *palette = json_object_new_object();
        json_object_object_add(palette, "primary", json_object_new_string("#2563EB"));
        json_object_object_add(theme, modes[i], palette);
    }
    json_object *settings = json_object_new_object();
    json_object_object_add(settings, "theme", theme);
    json_object_object_add(settings, "defaultTheme", json_object_new_string("system"));
    json_object_object_add(settings, "showWatermark", json_object_new_boolean(0));
    return settings;
}

static void get_session(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    PGconn *conn;
    jn_connect_session_t s;
    const char *token;
    if (!session_from_header(gw, req, res, &conn, &s, &token))
        return;
    jn_api_db_release(gw, conn);
    json_object *data = json_object_new_object();
    json_object *end_user = jn_api_end_user_with_org(s.end_user, s.organization);
    json_object_object_add(data, "endUser", jn_api_end_user_output(end_user));
    json_object_put(end_user);
    if (s.allowed_integrations)
        json_object_object_add(data, "allowed_integrations", copy(s.allowed_integrations));
    if (s.integrations_config_defaults)
        json_object_object_add(data, "integrations_config_defaults",
                               copy(s.integrations_config_defaults));
    if (s.tags)
        json_object_object_add(data, "tags", copy(s.tags));
    if (s.webhook_url_override)
        json_object_object_add(data, "webhook_url_override",
                               json_object_new_string(s.webhook_url_override));
    if (s.reconnect_connection_id)
        json_object_object_add(data, "isReconnecting", json_object_new_boolean(1));
    json_object_object_add(data, "connectUISettings", connect_ui_settings());
    json_object_object_add(data, "expires_at", json_object_new_string(s.expires_at));
    jn_connect_session_cleanup(&s);
    jn_api_data(res, data);
}

static void delete_session(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    PGconn *conn;
    jn_connect_session_t s;
    const char *token;
    if (!session_from_header(gw, req, res, &conn, &s, &token))
        return;
    jn_err_t err = jn_connect_sessions_delete(conn, token);
    jn_api_db_release(gw, conn);
    jn_connect_session_cleanup(&s);
    if (err) {
        jn_api_store_error(res, err, "connect session");
        return;
    }
    jn_http_respond_text(res, 204, "text/plain", "");
}

void jn_routes_connect(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "POST", "/connect/sessions", post_session, gw);
    jn_http_route(http, "POST", "/connect/sessions/reconnect", post_reconnect, gw);
    jn_http_route(http, "GET", "/connect/session", get_session, gw);
    jn_http_route(http, "DELETE", "/connect/session", delete_session, gw);
    jn_http_route(http, "OPTIONS", "/connect/session", session_preflight, gw);
}
