/*
 * connection_save.c - the checks and the write of a new or renewed connection, with a pool
 * connection borrowed for each database step only.
 */
#include "providers/connection_save.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "providers/custom_providers.h"
#include "providers/template.h"
#include "store/integrations.h"

#define DB_WAIT_MS 5000
#define VERIFY_TIMEOUT_MS 15000L

static const char *string_at(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

typedef struct {
    json_object *credentials, *config;
} verify_lookup_t;

/* Placeholders of a verification endpoint: the same names as the provider's templates. */
static const char *verify_lookup(const char *name, void *ud)
{
    const verify_lookup_t *v = ud;
    if (strncmp(name, "connectionConfig.", 17) == 0)
        return string_at(v->config, name + 17);
    if (strncmp(name, "credentials.", 12) == 0)
        return string_at(v->credentials, name + 12);
    if (strcmp(name, "apiKey") == 0)
        return string_at(v->credentials, "apiKey");
    return NULL;
}

jn_err_t jn_connection_verify(jn_provider_http_t *http, const jn_environment_t *env,
                              const char *provider_name, json_object *provider,
                              json_object *credentials, json_object *connection_config, char *why,
                              size_t why_len)
{
    json_object *proxy = NULL, *verification = NULL, *endpoints = NULL, *method = NULL;
    if (!json_object_object_get_ex(provider, "proxy", &proxy) ||
        !json_object_object_get_ex(proxy, "verification", &verification) ||
        !json_object_object_get_ex(verification, "endpoints", &endpoints))
        return JN_OK;
    json_object_object_get_ex(verification, "method", &method);
    jn_provider_target_t target = {provider_name, provider, credentials, connection_config};
    verify_lookup_t lookup = {credentials, connection_config};
    jn_err_t outcome = JN_ERR_UPSTREAM;
    snprintf(why, why_len, "the provider declares no verification endpoint");
    size_t n = json_object_array_length(endpoints);
    for (size_t i = 0; i < n && outcome != JN_OK; i++) {
        const char *tmpl = json_object_get_string(json_object_array_get_idx(endpoints, i));
        char *endpoint = NULL;
        bool complete = false;
        char twhy[128];
        if (jn_template_render(tmpl, verify_lookup, &lookup, &endpoint, &complete, twhy,
                               sizeof twhy) != JN_OK ||
            !complete) {
            snprintf(why, why_len, "the verification endpoint %s needs values that were not given",
                     tmpl);
            free(endpoint);
            continue;
        }
        jn_provider_call_t call = {
            .method = method ? json_object_get_string(method) : "GET",
            .endpoint = endpoint,
            .timeout_ms = VERIFY_TIMEOUT_MS,
            .retries = 1,
            .egress = env->egress,
        };
        jn_provider_response_t res;
        char cwhy[512];
        jn_err_t err =
            jn_provider_fetch(http, env->id, &target, &call, 1024 * 1024, &res, cwhy, sizeof cwhy);
        if (err) {
            snprintf(why, why_len, "the credentials could not be verified: %s", cwhy);
        } else if (res.status >= 200 && res.status < 300) {
            outcome = JN_OK;
        } else {
            snprintf(why, why_len, "the provider refused these credentials (HTTP %ld on %s %s)",
                     res.status, call.method, tmpl);
        }
        if (!err)
            jn_provider_response_cleanup(&res);
        jn_secure_wipe(endpoint, strlen(endpoint));
        free(endpoint);
    }
    return outcome;
}

/* API_KEY credentials: only keys the provider declares, and every declared one that is
 * neither optional nor defaulted. */
static jn_err_t check_api_key_credentials(json_object *provider, json_object *creds,
                                          jn_field_error_t *e)
{
    json_object *specs = NULL;
    json_object_object_get_ex(provider, "credentials", &specs);
    json_object_object_foreach(creds, key, value)
    {
        (void)value;
        char path[128];
        snprintf(path, sizeof path, "credentials.%.100s", key);
        if (strcmp(key, "type") != 0 && (!specs || !json_object_object_get_ex(specs, key, NULL)))
            return jn_field_error(e, path, "is not a credential of this provider");
    }
    if (!json_object_is_type(specs, json_type_object))
        return JN_OK;
    json_object_object_foreach(specs, name, spec)
    {
        json_object *v = NULL;
        bool optional =
                 json_object_object_get_ex(spec, "optional", &v) && json_object_get_boolean(v),
             defaulted = json_object_object_get_ex(spec, "default", NULL);
        json_object *given = NULL;
        if (optional || defaulted ||
            (json_object_object_get_ex(creds, name, &given) &&
             json_object_get_string_len(given) > 0))
            continue;
        char path[128];
        snprintf(path, sizeof path, "credentials.%.100s", name);
        return jn_field_error(e, path, "is required by this provider");
    }
    return JN_OK;
}

/* The integration's id and provider (a new reference). */
static jn_err_t resolve(const jn_session_deps_t *d, const jn_environment_t *env, const char *pck,
                        long long *integration_id, char **provider_name, json_object **provider,
                        char *why, size_t why_len)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(d->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable; retry shortly");
        return err;
    }
    jn_integration_t it;
    err = jn_integrations_get(conn, d->keyring, env->id, pck, false, &it);
    if (err == JN_OK) {
        *integration_id = it.id;
        *provider_name = strdup(it.provider);
        if (!*provider_name)
            abort();
        err = jn_providers_lookup(d->catalog, conn, env->id, it.provider, provider);
        if (err == JN_ERR_NOT_FOUND)
            snprintf(why, why_len, "the provider '%s' of integration '%s' was not found",
                     it.provider, pck);
        else if (err)
            snprintf(why, why_len, "the integration's provider could not be read");
        jn_integration_cleanup(&it);
    } else if (err == JN_ERR_NOT_FOUND) {
        snprintf(why, why_len, "integration '%s' was not found", pck);
    } else {
        snprintf(why, why_len, "the integration could not be read");
    }
    jn_pg_release(d->pg, conn);
    return err;
}

/* What the auth webhook needs inside the connection's transaction. */
typedef struct {
    const jn_session_deps_t *deps;
    const jn_environment_t *env;
    const char *provider_name;
    const char *auth_mode;
    jn_webhook_jobs_t jobs;
} auth_hook_t;

static jn_err_t enqueue_auth(PGconn *conn, long long row_id, bool created, void *ud)
{
    auth_hook_t *h = ud;
    jn_connection_t c;
    jn_err_t err = jn_connections_get_by_id(conn, h->deps->keyring, row_id, false, &c);
    if (err)
        return err;
    jn_webhook_auth_t a = {.connection_id = c.connection_id,
                           .provider_config_key = c.provider_config_key,
                           .provider = h->provider_name,
                           .auth_mode = h->auth_mode,
                           .environment = h->env->name,
                           .operation = created ? "creation" : "override",
                           .success = true,
                           .tags = c.tags,
                           .end_user = c.end_user};
    err = jn_webhooks_enqueue_auth(conn, h->env->id, row_id, &a, &h->jobs);
    jn_connection_cleanup(&c);
    return err;
}

jn_err_t jn_connection_save(const jn_session_deps_t *deps, const jn_environment_t *env,
                            const jn_connection_save_t *in, jn_conncfg_source_t source, bool verify,
                            jn_connection_t *out, bool *created, jn_webhook_jobs_t *webhooks,
                            jn_connection_save_error_t *e)
{
    memset(e, 0, sizeof *e);
    if (webhooks)
        memset(webhooks, 0, sizeof *webhooks);
    long long integration_id = 0;
    char *provider_name = NULL;
    json_object *provider = NULL;
    jn_err_t err = resolve(deps, env, in->provider_config_key, &integration_id, &provider_name,
                           &provider, e->why, sizeof e->why);
    if (err)
        return err;
    const char *mode = string_at(provider, "auth_mode");
    if (!mode || strcmp(mode, in->credentials_type) != 0)
        err = jn_field_error(&e->field, "credentials.type", "integration '%s' uses %s, not %s",
                             in->provider_config_key, mode ? mode : "?", in->credentials_type);
    else if (jn_connection_config_check(provider, in->connection_config, source, &e->field))
        err = JN_ERR_INVALID;
    else if (strcmp(mode, "API_KEY") == 0 &&
             check_api_key_credentials(provider, in->credentials, &e->field))
        err = JN_ERR_INVALID;
    else if (verify)
        err = jn_connection_verify(deps->http, env, provider_name, provider, in->credentials,
                                   in->connection_config, e->why, sizeof e->why);
    json_object_put(provider);
    if (err) {
        free(provider_name);
        return err;
    }

    char generated[37];
    const char *connection_id = in->connection_id;
    if (!connection_id) {
        jn_crypto_uuid4(generated);
        connection_id = generated;
    }
    jn_connection_input_t row = {
        .integration_id = integration_id,
        .connection_id = connection_id,
        .credentials_type = in->credentials_type,
        .credentials = in->credentials,
        .expires_at = in->expires_at,
        .connection_config = in->connection_config,
        .metadata = in->metadata,
        .end_user = in->end_user,
        .tags = in->tags,
        .webhook_url_override = in->webhook_url_override,
    };
    auth_hook_t hook = {.deps = deps,
                        .env = env,
                        .provider_name = provider_name,
                        .auth_mode = in->credentials_type};
    row.in_transaction = enqueue_auth;
    row.in_transaction_ud = &hook;
    PGconn *conn = jn_pg_acquire(deps->pg, DB_WAIT_MS, &err);
    if (!conn) {
        free(provider_name);
        snprintf(e->why, sizeof e->why, "the database is unavailable; retry shortly");
        return err;
    }
    jn_connection_t saved;
    err = jn_connections_upsert(conn, deps->keyring, env->id, &row, created, &saved);
    free(provider_name);
    if (err == JN_OK && webhooks)
        *webhooks = hook.jobs;
    if (err == JN_OK) {
        /* Answer with credentials, as Nango's import does. */
        err = jn_connections_get_by_id(conn, deps->keyring, saved.id, true, out);
        jn_connection_cleanup(&saved);
    }
    jn_pg_release(deps->pg, conn);
    if (err)
        snprintf(e->why, sizeof e->why, "the connection could not be stored (%s)", jn_err_str(err));
    return err;
}
