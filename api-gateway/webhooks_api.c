/*
 * webhooks_api.c - the calling environment's webhooks to its app (docs/webhooks.md):
 * settings, the signing key, and the dead-letter store.
 *
 *   Nango's routes (the dashboard's and the public API's shapes):
 *   PATCH /api/v1/environments/webhook           {primary_url?, secondary_url?, on_*?} -> {success}
 *   GET   /api/v1/environments/current           {environmentAndAccount: {webhook_settings, …}}
 *   POST  /environment/webhook-signing-key/rotate -> {data: {webhook_signing_key}}
 *         (also under /api/v1/, as the dashboard calls it)
 *   Junction's:
 *   GET/PATCH /junction/webhooks/settings        the settings with delivery_attempts
 *   GET   /junction/webhooks/dead-letters        ?type=&from=&to=&limit=&cursor=
 *   POST  /junction/webhooks/dead-letters/replay {type?, from?, to?}: every match (1,000 a call)
 *   POST  /junction/webhooks/dead-letters/:id/replay
 *   GET   /junction/webhooks/deliveries/:id      one delivery, with the exact body sent
 *
 * The signing key is returned by a rotation only; it is never logged. Every store call is
 * scoped by the caller's environment, so another environment's deliveries answer 404.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connection_requests.h"
#include "core/iso8601.h"
#include "core/log.h"
#include "net/job_message.h"
#include "store/deliveries.h"
#include "store/webhook_settings.h"
#include "store/webhooks.h"

static const char *const switches[] = {"on_auth_creation", "on_auth_refresh_error",
                                       "on_sync_completion_always", "on_sync_error",
                                       "on_async_action_completion"};

/* Nango's webhook_settings object (DBExternalWebhook without ids and times). */
static json_object *nango_settings_json(const jn_webhook_settings_t *s)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "primary_url",
                           s->primary_url[0] ? json_object_new_string(s->primary_url)
                                             : json_object_new_null());
    json_object_object_add(o, "secondary_url",
                           s->secondary_url[0] ? json_object_new_string(s->secondary_url)
                                               : json_object_new_null());
    const bool values[] = {s->on_auth_creation, s->on_auth_refresh_error,
                           s->on_sync_completion_always, s->on_sync_error,
                           s->on_async_action_completion};
    for (size_t i = 0; i < sizeof switches / sizeof switches[0]; i++)
        json_object_object_add(o, switches[i], json_object_new_boolean(values[i]));
    return o;
}

static json_object *settings_json(const jn_webhook_settings_t *s)
{
    json_object *o = nango_settings_json(s);
    json_object_object_add(o, "delivery_attempts", json_object_new_int(s->delivery_attempts));
    json_object_object_add(o, "has_signing_key", json_object_new_boolean(s->has_signing_key));
    json_object_object_add(o, "signing_key_rotated_at",
                           s->signing_key_rotated_at[0]
                               ? json_object_new_string(s->signing_key_rotated_at)
                               : json_object_new_null());
    return o;
}

/* Reads a settings body into p (strings borrowed from body). junction admits
 * delivery_attempts; Nango's on_connection_deletion is accepted and has no effect (Junction
 * sends no such webhook). False after answering res. */
static bool read_patch(json_object *body, bool junction, jn_webhook_settings_patch_t *p,
                       jn_http_response_t *res)
{
    static const char *const nango_fields[] = {"primary_url",
                                               "secondary_url",
                                               "on_auth_creation",
                                               "on_auth_refresh_error",
                                               "on_sync_error",
                                               "on_sync_completion_always",
                                               "on_async_action_completion",
                                               "on_connection_deletion",
                                               NULL};
    static const char *const junction_fields[] = {"primary_url",
                                                  "secondary_url",
                                                  "on_auth_creation",
                                                  "on_auth_refresh_error",
                                                  "on_sync_error",
                                                  "on_sync_completion_always",
                                                  "on_async_action_completion",
                                                  "delivery_attempts",
                                                  NULL};
    memset(p, 0, sizeof *p);
    jn_field_error_t e;
    bool ignored = false, present = false;
    bool *set[] = {&p->set_on_auth_creation, &p->set_on_auth_refresh_error,
                   &p->set_on_sync_completion_always, &p->set_on_sync_error,
                   &p->set_on_async_action_completion};
    bool *value[] = {&p->on_auth_creation, &p->on_auth_refresh_error, &p->on_sync_completion_always,
                     &p->on_sync_error, &p->on_async_action_completion};
    jn_err_t err = jn_json_only_keys(body, junction ? junction_fields : nango_fields, "", &e);
    if (!err)
        err = jn_json_string(body, "primary_url", false, JN_WEBHOOK_URL_MAX, &p->primary_url, &e);
    if (!err)
        err =
            jn_json_string(body, "secondary_url", false, JN_WEBHOOK_URL_MAX, &p->secondary_url, &e);
    /* "" clears a URL; anything else must be one a delivery can go to. */
    if (!err && p->primary_url && *p->primary_url)
        err = jn_api_check_webhook_url(p->primary_url, "primary_url", &e);
    if (!err && p->secondary_url && *p->secondary_url)
        err = jn_api_check_webhook_url(p->secondary_url, "secondary_url", &e);
    for (size_t i = 0; !err && i < sizeof switches / sizeof switches[0]; i++)
        err = jn_json_bool(body, switches[i], value[i], set[i], &e);
    if (!err && !junction)
        err = jn_json_bool(body, "on_connection_deletion", &ignored, &present, &e);
    json_object *attempts = NULL;
    if (!err && junction && json_object_object_get_ex(body, "delivery_attempts", &attempts) &&
        attempts) {
        if (!json_object_is_type(attempts, json_type_int) || json_object_get_int64(attempts) < 1 ||
            json_object_get_int64(attempts) > JN_WEBHOOK_ATTEMPTS_MAX)
            err = jn_field_error(&e, "delivery_attempts", "must be an integer from 1 to %d",
                                 JN_WEBHOOK_ATTEMPTS_MAX);
        else
            p->delivery_attempts = (int)json_object_get_int64(attempts);
    }
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    return true;
}

/* Nango's dashboard names the environment in ?env=; here the key decides it, and a name
 * that is not the key's environment is refused. */
static bool env_query_matches(const jn_http_request_t *req, jn_http_response_t *res,
                              const jn_environment_t *env)
{
    const char *name = jn_http_query(req, "env");
    if (!name || strcmp(name, env->name) == 0)
        return true;
    jn_field_error_t e;
    jn_field_error(&e, "env", "names another environment than the one of this key");
    jn_api_invalid(res, "invalid_query_params", &e);
    return false;
}

static void patch_settings(const jn_http_request_t *req, jn_http_response_t *res, void *ud,
                           bool junction)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env) || (!junction && !env_query_matches(req, res, &env)))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_webhook_settings_patch_t p;
    if (!read_patch(body, junction, &p, res)) {
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(body);
        return;
    }
    jn_webhook_settings_t s;
    jn_err_t err = jn_webhook_settings_patch(conn, env.id, &p);
    if (!err)
        err = jn_webhook_settings_get(conn, env.id, &s);
    jn_api_db_release(gw, conn);
    json_object_put(body);
    if (err) {
        jn_api_store_error(res, err, "the webhook settings");
        return;
    }
    jn_log_info("webhooks", "environment %s: webhook settings changed", env.name);
    if (junction) {
        jn_api_data(res, settings_json(&s));
    } else {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "success", json_object_new_boolean(true));
        jn_http_respond_json(res, 200, o);
    }
}

static void patch_nango(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    patch_settings(req, res, ud, false);
}

static void patch_junction(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    patch_settings(req, res, ud, true);
}

static bool read_settings(jn_gateway_t *gw, const jn_http_request_t *req, jn_http_response_t *res,
                          jn_environment_t *env, jn_webhook_settings_t *s)
{
    if (!jn_api_begin(gw, req, res, env))
        return false;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return false;
    jn_err_t err = jn_webhook_settings_get(conn, env->id, s);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_api_store_error(res, err, "the webhook settings");
        return false;
    }
    return true;
}

static void get_junction(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_environment_t env;
    jn_webhook_settings_t s;
    if (read_settings(ud, req, res, &env, &s))
        jn_api_data(res, settings_json(&s));
}

/* The parts of Nango's GET /api/v1/environments/current that Junction has. */
static void get_current(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_environment_t env;
    jn_webhook_settings_t s;
    if (!read_settings(ud, req, res, &env, &s))
        return;
    if (!env_query_matches(req, res, &env))
        return;
    json_object *environment = json_object_new_object();
    json_object_object_add(environment, "uuid", json_object_new_string(env.uuid));
    json_object_object_add(environment, "name", json_object_new_string(env.name));
    json_object *ea = json_object_new_object();
    json_object_object_add(ea, "environment", environment);
    json_object_object_add(ea, "env_variables", json_object_new_array());
    json_object_object_add(ea, "webhook_settings", nango_settings_json(&s));
    json_object_object_add(ea, "uuid", json_object_new_string(env.uuid));
    json_object_object_add(ea, "name", json_object_new_string(env.name));
    /* Shown by a rotation only. */
    json_object_object_add(ea, "webhook_signing_key", json_object_new_null());
    json_object *o = json_object_new_object();
    json_object_object_add(o, "plan", json_object_new_null());
    json_object_object_add(o, "environmentAndAccount", ea);
    jn_http_respond_json(res, 200, o);
}

static void post_rotate(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    char key[JN_WEBHOOK_KEY_LEN + 1];
    jn_err_t err = jn_webhook_signing_key_rotate(conn, &gw->keyring, env.id, key);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_http_respond_error(res, 500, "rotation_failed", "the signing key could not be rotated");
        return;
    }
    jn_log_info("webhooks", "environment %s: webhook signing key rotated", env.name);
    json_object *data = json_object_new_object();
    json_object_object_add(data, "webhook_signing_key", json_object_new_string(key));
    jn_secure_wipe(key, sizeof key);
    jn_api_data(res, data);
}

/* ---- dead letters ---- */

static json_object *delivery_json(const jn_delivery_t *d)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(d->id));
    json_object_object_add(o, "type", json_object_new_string(d->type));
    json_object_object_add(o, "url", json_object_new_string(d->url ? d->url : ""));
    json_object_object_add(o, "provider_config_key",
                           d->provider_config_key ? json_object_new_string(d->provider_config_key)
                                                  : json_object_new_null());
    json_object_object_add(o, "connection_id",
                           d->connection_id ? json_object_new_string(d->connection_id)
                                            : json_object_new_null());
    json_object_object_add(o, "state", json_object_new_string(jn_job_state_name(d->state)));
    json_object_object_add(o, "attempts", json_object_new_int(d->attempts));
    json_object_object_add(o, "max_attempts", json_object_new_int(d->max_attempts));
    json_object_object_add(o, "last_status",
                           d->last_status ? json_object_new_int(d->last_status)
                                          : json_object_new_null());
    json_object_object_add(o, "last_error",
                           d->last_error ? json_object_new_string(d->last_error)
                                         : json_object_new_null());
    json_object_object_add(o, "replays", json_object_new_int(d->replays));
    json_object_object_add(o, "created_at", json_object_new_string(d->created_at));
    json_object_object_add(o, "last_attempt_at",
                           d->last_attempt_at[0] ? json_object_new_string(d->last_attempt_at)
                                                 : json_object_new_null());
    json_object_object_add(o, "failed_at",
                           d->state == JN_JOB_FAILED && d->finished_at[0]
                               ? json_object_new_string(d->finished_at)
                               : json_object_new_null());
    if (d->body)
        json_object_object_add(o, "body", json_object_new_string_len(d->body, (int)d->body_len));
    return o;
}

/* A date bound: RFC 3339, into unix seconds. */
static jn_err_t read_date(const char *text, const char *name, long long *out, jn_field_error_t *e)
{
    *out = 0;
    if (!text)
        return JN_OK;
    char why[128];
    if (jn_iso8601_parse(text, out, why, sizeof why) != JN_OK || *out <= 0)
        return jn_field_error(e, name, "must be an RFC 3339 date-time");
    return JN_OK;
}

static jn_err_t read_filter(const char *type, const char *from, const char *to,
                            jn_delivery_filter_t *f, jn_field_error_t *e)
{
    memset(f, 0, sizeof *f);
    jn_webhook_type_t t;
    if (type && jn_webhook_type_parse(type, &t) != JN_OK)
        return jn_field_error(e, "type", "must be auth, sync, async_action or forward");
    f->type = type;
    jn_err_t err = read_date(from, "from", &f->created_from, e);
    if (!err)
        err = read_date(to, "to", &f->created_to, e);
    return err;
}

static void get_dead_letters(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    jn_delivery_filter_t f;
    jn_field_error_t e;
    int limit = 100;
    const char *lim = jn_http_query(req, "limit");
    const char *cursor = jn_http_query(req, "cursor");
    jn_err_t err = read_filter(jn_http_query(req, "type"), jn_http_query(req, "from"),
                               jn_http_query(req, "to"), &f, &e);
    if (!err && lim) {
        char *end = NULL;
        long n = strtol(lim, &end, 10);
        if (end == lim || *end || n < 1 || n > JN_DELIVERIES_PAGE_MAX)
            err = jn_field_error(&e, "limit", "must be an integer from 1 to %d",
                                 JN_DELIVERIES_PAGE_MAX);
        limit = (int)n;
    }
    if (!err && cursor && strlen(cursor) > 90)
        err = jn_field_error(&e, "cursor", "is not a cursor this API gave");
    if (err) {
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_delivery_t *list = NULL;
    size_t n = 0;
    char next[96];
    err = jn_deliveries_dead(conn, env.id, &f, limit, cursor, &list, &n, next);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_INVALID) {
        jn_field_error(&e, "cursor", "is not a cursor this API gave");
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    if (err) {
        jn_api_store_error(res, err, "the dead letters");
        return;
    }
    json_object *data = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object_array_add(data, delivery_json(&list[i]));
        jn_delivery_cleanup(&list[i]);
    }
    free(list);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "data", data);
    json_object_object_add(o, "next_cursor",
                           next[0] ? json_object_new_string(next) : json_object_new_null());
    jn_http_respond_json(res, 200, o);
}

static void get_delivery(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *id = jn_http_param(req, "id");
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_delivery_t d;
    jn_err_t err = jn_deliveries_get(conn, env.id, id, true, &d);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_NOT_FOUND) {
        jn_http_respond_error(res, 404, "not_found", "no delivery with this id");
        return;
    }
    if (err) {
        jn_api_store_error(res, err, "the delivery");
        return;
    }
    jn_api_data(res, delivery_json(&d));
    jn_delivery_cleanup(&d);
}

/* The environment's attempts for a replay. */
static int attempts_now(PGconn *conn, long long env_id)
{
    jn_webhook_settings_t s;
    return jn_webhook_settings_get(conn, env_id, &s) == JN_OK ? s.delivery_attempts : 3;
}

static void post_replay_one(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *id = jn_http_param(req, "id");
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_job_ref_t ref;
    jn_err_t err = jn_deliveries_replay(conn, env.id, id, attempts_now(conn, env.id), &ref);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_NOT_FOUND) {
        jn_http_respond_error(res, 404, "not_found", "no delivery with this id");
        return;
    }
    if (err == JN_ERR_CONFLICT) {
        jn_http_respond_error(res, 409, "not_a_dead_letter",
                              "this delivery has not failed (it is queued, running or delivered)");
        return;
    }
    if (err) {
        jn_api_store_error(res, err, "the delivery");
        return;
    }
    jn_job_message_send_all(gw->engine->producer, gw->engine->config.topic_prefix, &ref, 1);
    json_object *data = json_object_new_object();
    json_object_object_add(data, "id", json_object_new_string(ref.id));
    json_object_object_add(data, "state", json_object_new_string("queued"));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "data", data);
    jn_http_respond_json(res, 202, o);
}

static void post_replay_matching(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    static const char *const fields[] = {"type", "from", "to", NULL};
    jn_field_error_t e;
    const char *type = NULL, *from = NULL, *to = NULL;
    jn_delivery_filter_t f;
    jn_err_t err = jn_json_only_keys(body, fields, "", &e);
    if (!err)
        err = jn_json_string(body, "type", false, 32, &type, &e);
    if (!err)
        err = jn_json_string(body, "from", false, 64, &from, &e);
    if (!err)
        err = jn_json_string(body, "to", false, 64, &to, &e);
    if (!err)
        err = read_filter(type, from, to, &f, &e);
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
    jn_job_ref_t *refs = NULL;
    size_t n = 0;
    bool more = false;
    err = jn_deliveries_replay_matching(conn, env.id, &f, attempts_now(conn, env.id), &refs, &n,
                                        &more);
    jn_api_db_release(gw, conn);
    json_object_put(body);
    if (err) {
        jn_api_store_error(res, err, "the dead letters");
        return;
    }
    jn_job_message_send_all(gw->engine->producer, gw->engine->config.topic_prefix, refs, n);
    free(refs);
    jn_log_info("webhooks", "environment %s: %zu dead letter(s) replayed", env.name, n);
    json_object *data = json_object_new_object();
    json_object_object_add(data, "replayed", json_object_new_int64((int64_t)n));
    json_object_object_add(data, "has_more", json_object_new_boolean(more));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "data", data);
    jn_http_respond_json(res, 202, o);
}

void jn_routes_webhooks(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "PATCH", "/api/v1/environments/webhook", patch_nango, gw);
    jn_http_route(http, "GET", "/api/v1/environments/current", get_current, gw);
    jn_http_route(http, "POST", "/environment/webhook-signing-key/rotate", post_rotate, gw);
    jn_http_route(http, "POST", "/api/v1/environment/webhook-signing-key/rotate", post_rotate, gw);
    jn_http_route(http, "GET", "/junction/webhooks/settings", get_junction, gw);
    jn_http_route(http, "PATCH", "/junction/webhooks/settings", patch_junction, gw);
    jn_http_route(http, "GET", "/junction/webhooks/dead-letters", get_dead_letters, gw);
    jn_http_route(http, "POST", "/junction/webhooks/dead-letters/replay", post_replay_matching, gw);
    jn_http_route(http, "POST", "/junction/webhooks/dead-letters/:id/replay", post_replay_one, gw);
    jn_http_route(http, "GET", "/junction/webhooks/deliveries/:id", get_delivery, gw);
    jn_routes_provider_webhooks(gw, http);
}
