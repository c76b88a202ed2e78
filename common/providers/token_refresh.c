/*
 * token_refresh.c - single-flight OAuth refresh under the connection's row lock.
 */
#include "providers/token_refresh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "providers/custom_providers.h"
#include "store/integrations.h"
#include "core/log.h"
#include "core/metrics.h"
#include "providers/oauth.h"
#include "store/pg.h"

typedef struct {
    long long env_id;
    char *egress_allowlist;
    double expires_at; /* unix seconds, 0 = none */
    double now;
    bool refreshed_since;
    bool failed_since;
    char *last_error;
} lock_state_t;

static jn_err_t lock_row(PGconn *conn, long long id, double requested_at, lock_state_t *st)
{
    char id_text[24], asked[48];
    snprintf(id_text, sizeof id_text, "%lld", id);
    snprintf(asked, sizeof asked, "%.6f", requested_at);
    const char *params[] = {id_text, asked};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "SELECT c.environment_id, coalesce(extract(epoch FROM c.expires_at), 0), "
                   "extract(epoch FROM clock_timestamp()), "
                   "coalesce(c.credentials_refreshed_at >= to_timestamp($2), false), "
                   "coalesce(c.refresh_error_at >= to_timestamp($2), false), c.refresh_error, "
                   "e.egress_allowlist FROM connections c "
                   "JOIN environments e ON e.id = c.environment_id WHERE c.id = $1 "
                   "FOR UPDATE OF c",
                   2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    st->env_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    st->expires_at = strtod(PQgetvalue(r, 0, 1), NULL);
    st->now = strtod(PQgetvalue(r, 0, 2), NULL);
    st->refreshed_since = PQgetvalue(r, 0, 3)[0] == 't';
    st->failed_since = PQgetvalue(r, 0, 4)[0] == 't';
    st->last_error = PQgetisnull(r, 0, 5) ? NULL : strdup(PQgetvalue(r, 0, 5));
    st->egress_allowlist = strdup(PQgetvalue(r, 0, 6));
    PQclear(r);
    return JN_OK;
}

static long provider_margin(json_object *provider)
{
    json_object *v = NULL;
    if (json_object_object_get_ex(provider, "token_expiration_buffer", &v) &&
        json_object_is_type(v, json_type_int))
        return (long)json_object_get_int64(v);
    return JN_TOKEN_REFRESH_MARGIN_S;
}

static const char *cred_string(json_object *creds, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(creds, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static jn_err_t record_failure(PGconn *conn, long long id, const char *message)
{
    char id_text[24];
    snprintf(id_text, sizeof id_text, "%lld", id);
    const char *params[] = {id_text, message};
    return jn_pg_exec(conn,
                      "UPDATE connections SET refresh_error = $2, refresh_error_at = "
                      "clock_timestamp(), refresh_failures = refresh_failures + 1 WHERE id = $1",
                      2, params, NULL);
}

static jn_err_t store_token(PGconn *conn, const jn_crypto_keyring_t *ring, long long id,
                            json_object *credentials, long long expires_at)
{
    char *sealed = NULL;
    jn_err_t err = jn_connections_seal(ring, id, credentials, &sealed);
    if (err)
        return err;
    char id_text[24], expires[24];
    snprintf(id_text, sizeof id_text, "%lld", id);
    snprintf(expires, sizeof expires, "%lld", expires_at);
    const char *params[] = {id_text, sealed, expires_at > 0 ? expires : NULL};
    err = jn_pg_exec(conn,
                     "UPDATE connections SET credentials_sealed = $2, expires_at = "
                     "to_timestamp($3), credentials_refreshed_at = clock_timestamp(), "
                     "refresh_error = NULL, refresh_error_at = NULL, refresh_failures = 0, "
                     "updated_at = now() WHERE id = $1",
                     3, params, NULL);
    free(sealed);
    return err;
}

/* Does the token request for c (locked) and stores the outcome. */
static jn_err_t refresh_locked(PGconn *conn, const jn_crypto_keyring_t *ring,
                               const jn_catalog_t *catalog, const lock_state_t *st,
                               const jn_connection_t *c, char *why, size_t why_len)
{
    long long env_id = st->env_id;
    jn_egress_policy_t *egress = NULL;
    char ewhy[128];
    if (jn_egress_policy_new(st->egress_allowlist, &egress, ewhy, sizeof ewhy) != JN_OK) {
        snprintf(why, why_len, "the environment's egress allow-list is invalid: %s", ewhy);
        return JN_ERR_INVALID;
    }
    json_object *provider = NULL;
    jn_err_t err = jn_providers_lookup(catalog, conn, env_id, c->provider, &provider);
    if (err) {
        snprintf(why, why_len, "provider '%s' is not available", c->provider);
        jn_egress_policy_free(egress);
        return err;
    }
    jn_integration_t it = {0};
    bool cc = strcmp(c->credentials_type, "OAUTH2_CC") == 0;
    jn_oauth_client_t client = {.egress = egress};
    jn_oauth_token_t token = {0};
    jn_oauth_error_t oerr = {0};
    if (cc) {
        client.client_id = cred_string(c->credentials, "client_id");
        client.client_secret = cred_string(c->credentials, "client_secret");
        err = jn_oauth_client_credentials(provider, &client, c->connection_config, NULL, &token,
                                          &oerr);
    } else {
        const char *refresh_token = cred_string(c->credentials, "refresh_token");
        err = jn_integrations_get(conn, ring, env_id, c->provider_config_key, true, &it);
        if (!err && !refresh_token) {
            snprintf(oerr.message, sizeof oerr.message,
                     "the access token expired and the provider gave no refresh token; the "
                     "end user must reconnect");
            err = JN_ERR_INVALID;
        } else if (!err) {
            client.client_id = it.client_id;
            client.client_secret = it.client_secret;
            err = jn_oauth_refresh(provider, &client, c->connection_config, refresh_token, &token,
                                   &oerr);
        } else {
            snprintf(oerr.message, sizeof oerr.message, "integration '%s' cannot be read",
                     c->provider_config_key);
        }
    }
    jn_metric_inc(jn_metrics_counter("jn_token_refreshes_total", "OAuth token refresh attempts",
                                     err ? "outcome=\"failure\"" : "outcome=\"success\""));
    if (err) {
        snprintf(why, why_len, "token refresh failed: %s", oerr.message);
        jn_log_warn("refresh", "connection %lld (%s): %s", c->id, c->provider, why);
        record_failure(conn, c->id, why);
    } else {
        /* A provider that does not rotate refresh tokens sends none: keep the old one. */
        if (!cc && !token.refresh_token && cred_string(c->credentials, "refresh_token")) {
            token.refresh_token = strdup(cred_string(c->credentials, "refresh_token"));
            if (!token.refresh_token)
                abort();
        }
        json_object *creds = jn_oauth_credentials(&token, c->credentials_type, &client);
        err = store_token(conn, ring, c->id, creds, token.expires_at);
        json_object_put(creds);
        if (err)
            snprintf(why, why_len, "the refreshed token could not be stored");
        else
            jn_log_info("refresh", "connection %lld (%s): token refreshed", c->id, c->provider);
    }
    jn_oauth_token_cleanup(&token);
    jn_integration_cleanup(&it);
    json_object_put(provider);
    jn_egress_policy_free(egress);
    return err;
}

/* Without force, most calls find a fresh token: tell that without taking the row lock,
 * since locking dirties the row and its commit waits for a WAL flush. Sets *fresh. */
static jn_err_t fresh_without_lock(PGconn *conn, const jn_catalog_t *catalog, long long id,
                                   bool *fresh)
{
    char id_text[24];
    snprintf(id_text, sizeof id_text, "%lld", id);
    const char *params[] = {id_text};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT c.environment_id, c.credentials_type, i.provider, "
                              "coalesce(extract(epoch FROM c.expires_at), 0), "
                              "extract(epoch FROM clock_timestamp()) FROM connections c "
                              "JOIN integrations i ON i.id = c.integration_id WHERE c.id = $1",
                              1, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    const char *type = PQgetvalue(r, 0, 1);
    double expires_at = strtod(PQgetvalue(r, 0, 3), NULL), now = strtod(PQgetvalue(r, 0, 4), NULL);
    *fresh = true;
    if ((strcmp(type, "OAUTH2") == 0 || strcmp(type, "OAUTH2_CC") == 0) && expires_at > 0) {
        long margin = JN_TOKEN_REFRESH_MARGIN_S;
        json_object *provider = NULL;
        if (jn_providers_lookup(catalog, conn, strtoll(PQgetvalue(r, 0, 0), NULL, 10),
                                PQgetvalue(r, 0, 2), &provider) == JN_OK)
            margin = provider_margin(provider);
        json_object_put(provider);
        *fresh = expires_at - now > (double)margin;
    }
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_token_refresh(PGconn *conn, const jn_crypto_keyring_t *ring,
                          const jn_catalog_t *catalog, long long connection_row_id, bool force,
                          double requested_at, jn_connection_t *out, char *why, size_t why_len)
{
    if (!force) {
        bool fresh = false;
        jn_err_t quick = fresh_without_lock(conn, catalog, connection_row_id, &fresh);
        if (quick)
            return quick;
        if (fresh)
            return jn_connections_get_by_id(conn, ring, connection_row_id, true, out);
    }
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (err)
        return err;
    lock_state_t st = {0};
    jn_connection_t c = {0};
    err = lock_row(conn, connection_row_id, requested_at, &st);
    if (!err)
        err = jn_connections_get_by_id(conn, ring, connection_row_id, true, &c);
    bool oauth = !err && (strcmp(c.credentials_type, "OAUTH2") == 0 ||
                          strcmp(c.credentials_type, "OAUTH2_CC") == 0);
    jn_err_t outcome = JN_OK;
    if (!err && oauth && !st.refreshed_since) {
        json_object *provider = NULL;
        long margin = JN_TOKEN_REFRESH_MARGIN_S;
        if (jn_providers_lookup(catalog, conn, st.env_id, c.provider, &provider) == JN_OK)
            margin = provider_margin(provider);
        json_object_put(provider);
        bool expiring = st.expires_at > 0 && st.expires_at - st.now <= (double)margin;
        if (!(force || expiring)) {
            /* Fresh enough: nothing to do. */
        } else if (st.failed_since) {
            /* Another process tried while we waited (or just before) and failed: report
             * that, do not ask the provider again at once. */
            snprintf(why, why_len, "%s", st.last_error ? st.last_error : "token refresh failed");
            outcome = JN_ERR_UPSTREAM;
        } else {
            outcome = refresh_locked(conn, ring, catalog, &st, &c, why, why_len);
        }
    }
    jn_connection_cleanup(&c);
    free(st.last_error);
    free(st.egress_allowlist);
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    /* Commit the outcome either way: a failure is recorded on the connection. */
    if ((err = jn_pg_exec_script(conn, "COMMIT")))
        return err;
    if (outcome)
        return outcome;
    return jn_connections_get_by_id(conn, ring, connection_row_id, true, out);
}

bool jn_token_expiring(const jn_connection_t *c, json_object *provider)
{
    if (!c->credentials_type || c->expires_at_unix <= 0 ||
        (strcmp(c->credentials_type, "OAUTH2") != 0 &&
         strcmp(c->credentials_type, "OAUTH2_CC") != 0))
        return false;
    return c->expires_at_unix - (double)time(NULL) <= (double)provider_margin(provider);
}

jn_err_t jn_token_refresh_sweep(PGconn *conn, const jn_crypto_keyring_t *ring,
                                const jn_catalog_t *catalog, int limit, int *refreshed, int *failed)
{
    *refreshed = *failed = 0;
    char limit_text[16];
    snprintf(limit_text, sizeof limit_text, "%d", limit);
    const char *params[] = {limit_text};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT id, extract(epoch FROM clock_timestamp()) FROM connections "
                              "WHERE expires_at < now() + interval '1 hour' "
                              "AND credentials_type IN ('OAUTH2', 'OAUTH2_CC') "
                              "AND (refresh_error_at IS NULL OR "
                              "     refresh_error_at < now() - interval '5 minutes') "
                              "ORDER BY expires_at LIMIT $1",
                              1, params, &r);
    if (err)
        return err;
    for (int i = 0; i < PQntuples(r); i++) {
        long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        double asked = strtod(PQgetvalue(r, i, 1), NULL);
        jn_connection_t c;
        char why[512];
        err = jn_token_refresh(conn, ring, catalog, id, false, asked, &c, why, sizeof why);
        if (err == JN_OK) {
            (*refreshed)++;
            jn_connection_cleanup(&c);
        } else if (err == JN_ERR_DB_UNAVAILABLE) {
            break;
        } else {
            (*failed)++;
        }
    }
    PQclear(r);
    return err == JN_ERR_DB_UNAVAILABLE ? err : JN_OK;
}
