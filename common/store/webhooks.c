/*
 * webhooks.c - payloads in Nango's shapes, the sorted serialization, and writing delivery
 * jobs (see the header).
 */
#include "store/webhooks.h"

#include "core/canonical_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"
#include "store/webhook_settings.h"

static const char *const type_names[] = {"auth", "sync", "async_action", "forward"};

const char *jn_webhook_type_name(jn_webhook_type_t type)
{
    return type_names[type];
}

jn_err_t jn_webhook_type_parse(const char *name, jn_webhook_type_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, type_names[i]) == 0) {
            *out = (jn_webhook_type_t)i;
            return JN_OK;
        }
    }
    return JN_ERR_INVALID;
}

/* ---- serialization ---- */

char *jn_webhook_serialize(json_object *body, size_t *len)
{
    /* One byte past the cap tells a body that is too large. */
    jn_buf_t b;
    jn_buf_init(&b, JN_WEBHOOK_MAX_BODY + 1);
    jn_field_error_t e;
    jn_err_t err = jn_canonical_json(body, &b, &e);
    size_t n = b.len;
    char *out = b.data;
    if (err) {
        jn_buf_cleanup(&b);
        if (len)
            *len = err == JN_ERR_TOO_LARGE ? JN_WEBHOOK_MAX_BODY + 1 : 0;
        return NULL;
    }
    if (!out && !(out = strdup("")))
        abort();
    if (len)
        *len = n;
    return out;
}

/* ---- enqueueing ---- */

static bool switched_on(const jn_webhook_settings_t *s, jn_webhook_switch_t sw)
{
    switch (sw) {
    case JN_WEBHOOK_SEND_ALWAYS: return true;
    case JN_WEBHOOK_ON_AUTH_CREATION: return s->on_auth_creation;
    case JN_WEBHOOK_ON_AUTH_REFRESH_ERROR: return s->on_auth_refresh_error;
    case JN_WEBHOOK_ON_SYNC_COMPLETION_ALWAYS: return s->on_sync_completion_always;
    case JN_WEBHOOK_ON_SYNC_ERROR: return s->on_sync_error;
    case JN_WEBHOOK_ON_ASYNC_ACTION_COMPLETION: return s->on_async_action_completion;
    }
    return false;
}

typedef struct {
    char *connection_id, *provider_config_key, *override;
} named_t;

static void named_cleanup(named_t *n)
{
    free(n->connection_id);
    free(n->provider_config_key);
    free(n->override);
}

static jn_err_t connection_names(PGconn *conn, long long env_id, long long row, named_t *out)
{
    memset(out, 0, sizeof *out);
    if (!row)
        return JN_OK;
    char env[24], id[24];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(id, sizeof id, "%lld", row);
    const char *params[] = {env, id};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT c.connection_id, i.unique_key, c.webhook_url_override "
                              "FROM connections c JOIN integrations i ON i.id = c.integration_id "
                              "WHERE c.environment_id = $1 AND c.id = $2",
                              2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    out->connection_id = jn_pg_dup(r, 0, 0);
    out->provider_config_key = jn_pg_dup(r, 0, 1);
    out->override = jn_pg_dup(r, 0, 2);
    PQclear(r);
    return JN_OK;
}

static jn_err_t write_delivery(PGconn *conn, long long env_id, int attempts, jn_webhook_type_t type,
                               const char *url, const char *body, const named_t *names,
                               bool sent_by_caller, jn_job_ref_t *ref)
{
    jn_job_new_t job = {
        .environment_id = env_id, .kind = JN_JOB_DELIVERY, .max_attempts = attempts};
    memset(ref, 0, sizeof *ref);
    jn_err_t err = jn_jobs_create(conn, &job, ref->id);
    if (err)
        return err;
    ref->environment_id = env_id;
    ref->kind = JN_JOB_DELIVERY;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {ref->id,
                            env,
                            jn_webhook_type_name(type),
                            url,
                            body,
                            names->provider_config_key,
                            names->connection_id};
    err = jn_pg_exec(conn,
                     "INSERT INTO deliveries (job_id, environment_id, type, url, body, "
                     "provider_config_key, connection_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                     7, params, NULL);
    if (!err && !sent_by_caller)
        err = jn_pg_exec(conn, "UPDATE jobs SET retry_at = clock_timestamp() WHERE id = $1::uuid",
                         1, params, NULL);
    return err;
}

jn_err_t jn_webhooks_enqueue(PGconn *conn, long long env_id, long long connection_row,
                             jn_webhook_type_t type, jn_webhook_switch_t sw, json_object *body,
                             jn_webhook_jobs_t *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    jn_webhook_settings_t settings;
    jn_err_t err = jn_webhook_settings_get(conn, env_id, &settings);
    if (err || !switched_on(&settings, sw))
        return err;
    named_t names;
    if ((err = connection_names(conn, env_id, connection_row, &names)))
        return err;
    const char *urls[JN_WEBHOOK_MAX_DESTINATIONS] = {0};
    size_t n = 0;
    if (names.override && names.override[0]) {
        urls[n++] = names.override;
    } else {
        if (settings.primary_url[0])
            urls[n++] = settings.primary_url;
        if (settings.secondary_url[0] && strcmp(settings.secondary_url, settings.primary_url) != 0)
            urls[n++] = settings.secondary_url;
    }
    if (n == 0) {
        named_cleanup(&names);
        return JN_OK;
    }
    size_t len = 0;
    char *text = jn_webhook_serialize(body, &len);
    if (!text) {
        named_cleanup(&names);
        return len > JN_WEBHOOK_MAX_BODY ? JN_ERR_TOO_LARGE : JN_ERR_INVALID;
    }
    /* Every destination or none: inside the caller's transaction, or one of our own. */
    bool own = PQtransactionStatus(conn) == PQTRANS_IDLE;
    if (own && (err = jn_pg_exec_script(conn, "BEGIN"))) {
        free(text);
        named_cleanup(&names);
        return err;
    }
    jn_webhook_jobs_t jobs = {0};
    for (size_t i = 0; i < n && !err; i++) {
        err = write_delivery(conn, env_id, settings.delivery_attempts, type, urls[i], text, &names,
                             out != NULL, &jobs.jobs[i]);
        if (!err)
            jobs.count++;
    }
    if (own && err)
        jn_pg_exec_script(conn, "ROLLBACK");
    else if (own)
        err = jn_pg_exec_script(conn, "COMMIT");
    free(text);
    named_cleanup(&names);
    if (!err && out)
        *out = jobs;
    return err;
}

/* ---- payloads ---- */

static void add_string(json_object *o, const char *key, const char *value)
{
    json_object_object_add(o, key, value ? json_object_new_string(value) : json_object_new_null());
}

static json_object *base(const char *type, const char *from)
{
    json_object *o = json_object_new_object();
    add_string(o, "type", type);
    add_string(o, "from", from);
    return o;
}

static const char *string_at(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static json_object *error_object(const char *type, const char *description, json_object *payload)
{
    json_object *e = json_object_new_object();
    add_string(e, "type", type ? type : "unknown_error");
    add_string(e, "description", description ? description : "");
    if (payload)
        json_object_object_add(e, "payload", json_object_get(payload));
    return e;
}

json_object *jn_webhook_auth_body(const jn_webhook_auth_t *a)
{
    json_object *o = base("auth", "nango");
    add_string(o, "connectionId", a->connection_id);
    add_string(o, "authMode", a->auth_mode);
    add_string(o, "providerConfigKey", a->provider_config_key);
    add_string(o, "provider", a->provider);
    add_string(o, "environment", a->environment);
    add_string(o, "operation", a->operation);
    json_object_object_add(o, "success", json_object_new_boolean(a->success));
    if (a->tags && json_object_object_length(a->tags) > 0)
        json_object_object_add(o, "tags", json_object_get(a->tags));
    if (a->end_user && json_object_is_type(a->end_user, json_type_object)) {
        json_object *eu = json_object_new_object();
        add_string(eu, "endUserId", string_at(a->end_user, "id"));
        json_object *org = NULL;
        if (json_object_object_get_ex(a->end_user, "organization", &org) && string_at(org, "id"))
            add_string(eu, "organizationId", string_at(org, "id"));
        if (string_at(a->end_user, "email"))
            add_string(eu, "endUserEmail", string_at(a->end_user, "email"));
        json_object *tags = NULL;
        json_object_object_get_ex(a->end_user, "tags", &tags);
        json_object_object_add(eu, "tags", tags ? json_object_get(tags) : json_object_new_object());
        json_object_object_add(o, "endUser", eu);
    }
    if (!a->success)
        json_object_object_add(o, "error", error_object(a->error_type, a->error_description, NULL));
    return o;
}

jn_err_t jn_webhooks_enqueue_auth(PGconn *conn, long long env_id, long long connection_row,
                                  const jn_webhook_auth_t *a, jn_webhook_jobs_t *out)
{
    bool refresh = a->operation && strcmp(a->operation, "refresh") == 0;
    if (refresh && a->success) {
        if (out)
            memset(out, 0, sizeof *out);
        return JN_OK;
    }
    json_object *body = jn_webhook_auth_body(a);
    jn_err_t err = jn_webhooks_enqueue(
        conn, env_id, connection_row, JN_WEBHOOK_AUTH,
        refresh ? JN_WEBHOOK_ON_AUTH_REFRESH_ERROR : JN_WEBHOOK_ON_AUTH_CREATION, body, out);
    json_object_put(body);
    return err;
}

json_object *jn_webhook_sync_body(const jn_webhook_sync_t *s)
{
    json_object *o = base("sync", "nango");
    add_string(o, "connectionId", s->connection_id);
    add_string(o, "providerConfigKey", s->provider_config_key);
    add_string(o, "syncName", s->sync_name);
    add_string(o, "syncVariant", s->sync_variant ? s->sync_variant : "base");
    add_string(o, "model", s->model);
    add_string(o, "syncType", s->sync_type);
    json_object_object_add(o, "success", json_object_new_boolean(s->success));
    if (s->success) {
        if (s->checkpoint_from || s->checkpoint_to) {
            json_object *c = json_object_new_object();
            json_object_object_add(c, "from", json_object_get(s->checkpoint_from));
            json_object_object_add(c, "to", json_object_get(s->checkpoint_to));
            json_object_object_add(o, "checkpoints", c);
        }
        add_string(o, "modifiedAfter", s->modified_after);
        add_string(o, "queryTimeStamp", s->modified_after);
        json_object *results = json_object_new_object();
        json_object_object_add(results, "added", json_object_new_int64(s->added));
        json_object_object_add(results, "updated", json_object_new_int64(s->updated));
        json_object_object_add(results, "deleted", json_object_new_int64(s->deleted));
        json_object_object_add(o, "responseResults", results);
    } else {
        json_object_object_add(o, "error",
                               error_object(s->error_type, s->error_description, s->error_payload));
        add_string(o, "startedAt", s->started_at);
        add_string(o, "failedAt", s->failed_at);
    }
    return o;
}

jn_err_t jn_webhooks_enqueue_sync(PGconn *conn, long long env_id, long long connection_row,
                                  const jn_webhook_sync_t *s, jn_webhook_jobs_t *out)
{
    jn_webhook_switch_t sw = !s->success ? JN_WEBHOOK_ON_SYNC_ERROR
                             : s->added + s->updated + s->deleted > 0
                                 ? JN_WEBHOOK_SEND_ALWAYS
                                 : JN_WEBHOOK_ON_SYNC_COMPLETION_ALWAYS;
    json_object *body = jn_webhook_sync_body(s);
    jn_err_t err =
        jn_webhooks_enqueue(conn, env_id, connection_row, JN_WEBHOOK_SYNC, sw, body, out);
    json_object_put(body);
    return err;
}

json_object *jn_webhook_async_action_body(const char *connection_id,
                                          const char *provider_config_key, const char *job_id)
{
    json_object *o = base("async_action", "nango");
    add_string(o, "connectionId", connection_id);
    add_string(o, "providerConfigKey", provider_config_key);
    json_object *payload = json_object_new_object();
    char url[64];
    snprintf(url, sizeof url, "/action/%s", job_id);
    add_string(payload, "id", job_id);
    add_string(payload, "statusUrl", url);
    json_object_object_add(o, "payload", payload);
    return o;
}

jn_err_t jn_webhooks_enqueue_async_action(PGconn *conn, long long env_id, long long connection_row,
                                          const char *job_id, jn_webhook_jobs_t *out)
{
    named_t names;
    jn_err_t err = connection_names(conn, env_id, connection_row, &names);
    if (err)
        return err;
    json_object *body =
        jn_webhook_async_action_body(names.connection_id, names.provider_config_key, job_id);
    err = jn_webhooks_enqueue(conn, env_id, connection_row, JN_WEBHOOK_ASYNC_ACTION,
                              JN_WEBHOOK_ON_ASYNC_ACTION_COMPLETION, body, out);
    json_object_put(body);
    named_cleanup(&names);
    return err;
}

json_object *jn_webhook_forward_body(const char *provider, const char *provider_config_key,
                                     const char *connection_id, json_object *payload)
{
    if (!connection_id)
        return json_object_get(payload);
    json_object *o = base("forward", provider);
    add_string(o, "providerConfigKey", provider_config_key);
    add_string(o, "connectionId", connection_id);
    json_object_object_add(o, "payload", json_object_get(payload));
    return o;
}

jn_err_t jn_webhooks_enqueue_forward(PGconn *conn, long long env_id, long long connection_row,
                                     const char *provider, const char *provider_config_key,
                                     const char *connection_id, json_object *payload,
                                     jn_webhook_jobs_t *out)
{
    json_object *body = jn_webhook_forward_body(provider, provider_config_key,
                                                connection_row ? connection_id : NULL, payload);
    jn_err_t err = jn_webhooks_enqueue(conn, env_id, connection_row, JN_WEBHOOK_FORWARD,
                                       JN_WEBHOOK_SEND_ALWAYS, body, out);
    json_object_put(body);
    return err;
}
