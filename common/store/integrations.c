/*
 * integrations.c - SQL for the integrations table (migration 0002).
 *
 * Row ids are drawn from the sequence before the insert, so the sealed secrets can be
 * bound to the row (associated data "integration:<id>:<field>") in a single INSERT.
 */
#include "store/integrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/pg.h"

#define COLUMNS                                                                                    \
    "id, unique_key, provider, display_name, credentials_type, client_id, "                        \
    "client_secret_sealed, scopes, webhook_secret_sealed, forward_webhooks, "                      \
    "integration_config::text, custom::text, "                                                     \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "                \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static void aad_for(long long id, const char *field, char *out, size_t cap)
{
    snprintf(out, cap, "integration:%lld:%s", id, field);
}

static jn_err_t open_secret(const jn_crypto_keyring_t *ring, long long id, const char *field,
                            const char *sealed, char **out)
{
    *out = NULL;
    if (!sealed)
        return JN_OK;
    char aad[96];
    aad_for(id, field, aad, sizeof aad);
    size_t len = 0;
    if (jn_crypto_open(ring, sealed, aad, strlen(aad), out, &len) != JN_OK) {
        jn_log_error("integrations",
                     "integration %lld: %s cannot be decrypted (wrong JUNCTION_ENCRYPTION_KEY, "
                     "or the value was tampered with)",
                     id, field);
        return JN_ERR_INTERNAL;
    }
    return JN_OK;
}

static jn_err_t from_row(const PGresult *r, int row, const jn_crypto_keyring_t *ring,
                         bool with_secrets, jn_integration_t *it)
{
    memset(it, 0, sizeof *it);
    it->id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    it->unique_key = jn_pg_dup(r, row, 1);
    it->provider = jn_pg_dup(r, row, 2);
    it->display_name = jn_pg_dup(r, row, 3);
    it->credentials_type = jn_pg_dup(r, row, 4);
    it->client_id = jn_pg_dup(r, row, 5);
    it->scopes = jn_pg_dup(r, row, 7);
    it->has_webhook_secret = !PQgetisnull(r, row, 8);
    it->forward_webhooks = PQgetvalue(r, row, 9)[0] == 't';
    it->integration_config = json_tokener_parse(PQgetvalue(r, row, 10));
    it->custom = json_tokener_parse(PQgetvalue(r, row, 11));
    snprintf(it->created_at, sizeof it->created_at, "%s", PQgetvalue(r, row, 12));
    snprintf(it->updated_at, sizeof it->updated_at, "%s", PQgetvalue(r, row, 13));
    if (!with_secrets)
        return JN_OK;
    const char *secret = PQgetisnull(r, row, 6) ? NULL : PQgetvalue(r, row, 6);
    const char *hook = PQgetisnull(r, row, 8) ? NULL : PQgetvalue(r, row, 8);
    jn_err_t err = open_secret(ring, it->id, "client_secret", secret, &it->client_secret);
    if (!err)
        err = open_secret(ring, it->id, "webhook_secret", hook, &it->webhook_secret);
    return err;
}

static void free_secret(char *s)
{
    if (s) {
        jn_secure_wipe(s, strlen(s));
        free(s);
    }
}

void jn_integration_cleanup(jn_integration_t *it)
{
    free(it->unique_key);
    free(it->provider);
    free(it->display_name);
    free(it->credentials_type);
    free(it->client_id);
    free_secret(it->client_secret);
    free(it->scopes);
    free_secret(it->webhook_secret);
    json_object_put(it->integration_config);
    json_object_put(it->custom);
    memset(it, 0, sizeof *it);
}

jn_err_t jn_integrations_list(PGconn *conn, long long env_id, jn_integration_t **list,
                              size_t *count)
{
    *list = NULL;
    *count = 0;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT " COLUMNS " FROM integrations WHERE environment_id = $1 "
                              "ORDER BY created_at, id",
                              1, params, &r);
    if (err)
        return err;
    int n = PQntuples(r);
    *list = calloc(n ? (size_t)n : 1, sizeof **list);
    if (!*list)
        abort();
    for (int i = 0; i < n; i++)
        from_row(r, i, NULL, false, &(*list)[i]);
    *count = (size_t)n;
    PQclear(r);
    return JN_OK;
}

static jn_err_t get_where(PGconn *conn, const jn_crypto_keyring_t *ring, const char *where,
                          const char *a, const char *b, bool with_secrets, jn_integration_t *out)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT " COLUMNS " FROM integrations WHERE %s", where);
    const char *params[] = {a, b};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, sql, 2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    err = from_row(r, 0, ring, with_secrets, out);
    PQclear(r);
    if (err)
        jn_integration_cleanup(out);
    return err;
}

jn_err_t jn_integrations_get(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                             const char *unique_key, bool with_secrets, jn_integration_t *out)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    return get_where(conn, ring, "environment_id = $1 AND unique_key = $2", env, unique_key,
                     with_secrets, out);
}

/* Seals value for row id, or returns NULL for a NULL value. */
static char *seal_for(const jn_crypto_keyring_t *ring, long long id, const char *field,
                      const char *value)
{
    if (!value)
        return NULL;
    char aad[96];
    aad_for(id, field, aad, sizeof aad);
    char *blob = NULL;
    if (jn_crypto_seal(ring, value, strlen(value), aad, strlen(aad), &blob) != JN_OK)
        abort(); /* only fails on OpenSSL internal errors */
    return blob;
}

static const char *json_text_or_null(json_object *o)
{
    return o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
}

jn_err_t jn_integrations_create(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                const jn_integration_input_t *in, jn_integration_t *out)
{
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, "SELECT nextval('integrations_id_seq')", 0, NULL, &r);
    if (err)
        return err;
    long long id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);

    char id_text[24], env[24];
    snprintf(id_text, sizeof id_text, "%lld", id);
    snprintf(env, sizeof env, "%lld", env_id);
    char *secret = seal_for(ring, id, "client_secret", in->client_secret);
    /* An empty webhook secret is none. */
    char *hook = in->webhook_secret && *in->webhook_secret
                     ? seal_for(ring, id, "webhook_secret", in->webhook_secret)
                     : NULL;
    const char *params[] = {
        id_text,
        env,
        in->unique_key,
        in->provider,
        in->display_name,
        in->has_credentials ? in->credentials_type : NULL,
        in->client_id,
        secret,
        in->scopes,
        hook,
        in->has_forward_webhooks ? (in->forward_webhooks ? "true" : "false") : "true",
        in->integration_config ? json_text_or_null(in->integration_config) : "{}",
        in->custom ? json_text_or_null(in->custom) : "{}",
    };
    err =
        jn_pg_exec(conn,
                   "INSERT INTO integrations (id, environment_id, unique_key, provider, "
                   "display_name, credentials_type, client_id, client_secret_sealed, scopes, "
                   "webhook_secret_sealed, forward_webhooks, integration_config, custom) "
                   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13::jsonb)",
                   13, params, NULL);
    free(secret);
    free(hook);
    if (err)
        return err;
    return get_where(conn, ring, "id = $1 AND environment_id = $2", id_text, env, false, out);
}

jn_err_t jn_integrations_update(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                const char *unique_key, const jn_integration_input_t *in,
                                jn_integration_t *out)
{
    jn_integration_t current;
    jn_err_t err = jn_integrations_get(conn, ring, env_id, unique_key, false, &current);
    if (err)
        return err;
    long long id = current.id;
    jn_integration_cleanup(&current);

    char id_text[24], env[24];
    snprintf(id_text, sizeof id_text, "%lld", id);
    snprintf(env, sizeof env, "%lld", env_id);
    char *secret =
        in->has_credentials ? seal_for(ring, id, "client_secret", in->client_secret) : NULL;
    /* The webhook secret: NULL keeps it, "" clears it, anything else replaces it. */
    char *hook = in->webhook_secret && *in->webhook_secret
                     ? seal_for(ring, id, "webhook_secret", in->webhook_secret)
                     : NULL;
    const char *hook_param = hook ? hook : in->webhook_secret ? "" : NULL;
    const char *params[] = {
        id_text,
        env,
        in->unique_key,
        in->provider,
        in->display_name,
        in->has_credentials ? "true" : "false",
        in->credentials_type,
        in->client_id,
        secret,
        in->scopes,
        hook_param,
        in->has_forward_webhooks ? (in->forward_webhooks ? "true" : "false") : NULL,
        json_text_or_null(in->integration_config),
        json_text_or_null(in->custom),
    };
    err = jn_pg_exec(
        conn,
        "UPDATE integrations SET "
        " unique_key = COALESCE($3, unique_key),"
        " provider = COALESCE($4, provider),"
        " display_name = COALESCE($5, display_name),"
        " credentials_type = CASE WHEN $6::bool THEN COALESCE($7, credentials_type)"
        "                    ELSE credentials_type END,"
        " client_id = CASE WHEN $6::bool AND $8::text IS NOT NULL THEN $8 ELSE client_id END,"
        " client_secret_sealed = CASE WHEN $6::bool AND $9::text IS NOT NULL THEN $9"
        "                        ELSE client_secret_sealed END,"
        " scopes = CASE WHEN $6::bool AND $10::text IS NOT NULL THEN $10 ELSE scopes END,"
        " webhook_secret_sealed = CASE WHEN $11::text IS NULL THEN webhook_secret_sealed"
        "                         WHEN $11 = '' THEN NULL ELSE $11 END,"
        " forward_webhooks = COALESCE($12::bool, forward_webhooks),"
        " integration_config = COALESCE($13::jsonb, integration_config),"
        " custom = COALESCE($14::jsonb, custom),"
        " updated_at = now() "
        "WHERE id = $1 AND environment_id = $2",
        14, params, NULL);
    free(secret);
    free(hook);
    if (err)
        return err;
    return get_where(conn, ring, "id = $1 AND environment_id = $2", id_text, env, false, out);
}

jn_err_t jn_integrations_delete(PGconn *conn, long long env_id, const char *unique_key)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, unique_key};
    return jn_pg_exec_found(conn,
                            "DELETE FROM integrations WHERE environment_id = $1 AND "
                            "unique_key = $2 RETURNING id",
                            2, params);
}
