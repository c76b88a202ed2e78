/*
 * connections.c - SQL for connections (migration 0003).
 *
 * Upsert runs in a transaction that locks the existing row (or draws a new id first), so
 * the sealed credentials are always bound to the id of the row that holds them. An
 * override grows refresh_seq and drops any refresh lease: a token refresh that was in
 * flight then finds its lease gone and stores nothing over the new credentials
 * (common/providers/token_refresh.c), and a dead grant is alive again.
 */
#include "store/connections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/pg.h"

static json_object *json_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : json_tokener_parse(PQgetvalue(r, row, col));
}

static void aad_for(long long id, char *out, size_t cap)
{
    snprintf(out, cap, "connection:%lld:credentials", id);
}

jn_err_t jn_connections_seal(const jn_crypto_keyring_t *ring, long long id,
                             json_object *credentials, char **out)
{
    char aad[64];
    aad_for(id, aad, sizeof aad);
    size_t len = 0;
    const char *text = json_object_to_json_string_length(credentials, JSON_C_TO_STRING_PLAIN, &len);
    return jn_crypto_seal(ring, text, len, aad, strlen(aad), out);
}

jn_err_t jn_connection_from_row(const PGresult *r, int row, const jn_crypto_keyring_t *ring,
                                bool with_credentials, jn_connection_t *c)
{
    memset(c, 0, sizeof *c);
    c->id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    c->integration_id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    c->connection_id = jn_pg_dup(r, row, 2);
    c->provider_config_key = jn_pg_dup(r, row, 3);
    c->provider = jn_pg_dup(r, row, 4);
    c->credentials_type = jn_pg_dup(r, row, 5);
    snprintf(c->expires_at, sizeof c->expires_at, "%s", PQgetvalue(r, row, 7));
    c->connection_config = json_or_null(r, row, 8);
    c->metadata = json_or_null(r, row, 9);
    c->end_user = json_or_null(r, row, 10);
    c->tags = json_or_null(r, row, 11);
    c->webhook_url_override = jn_pg_dup(r, row, 12);
    c->refresh_error = jn_pg_dup(r, row, 13);
    snprintf(c->refresh_error_at, sizeof c->refresh_error_at, "%s", PQgetvalue(r, row, 14));
    snprintf(c->last_fetched_at, sizeof c->last_fetched_at, "%s", PQgetvalue(r, row, 15));
    snprintf(c->created_at, sizeof c->created_at, "%s", PQgetvalue(r, row, 16));
    snprintf(c->updated_at, sizeof c->updated_at, "%s", PQgetvalue(r, row, 17));
    c->expires_at_unix = strtod(PQgetvalue(r, row, 18), NULL);
    c->refresh_seq = strtoll(PQgetvalue(r, row, 19), NULL, 10);
    c->expires_in_s = strtod(PQgetvalue(r, row, 20), NULL);
    c->reauth_required = PQgetvalue(r, row, 21)[0] == 't';
    if (!with_credentials)
        return JN_OK;
    char aad[64];
    aad_for(c->id, aad, sizeof aad);
    char *plain = NULL;
    size_t len = 0;
    if (jn_crypto_open(ring, PQgetvalue(r, row, 6), aad, strlen(aad), &plain, &len) != JN_OK) {
        jn_log_error("connections",
                     "connection %lld: credentials cannot be decrypted (wrong "
                     "JUNCTION_ENCRYPTION_KEY, or the row was tampered with)",
                     c->id);
        return JN_ERR_INTERNAL;
    }
    c->credentials = json_tokener_parse(plain);
    jn_secure_wipe(plain, len);
    free(plain);
    return c->credentials ? JN_OK : JN_ERR_INTERNAL;
}

/* Overwrites every string inside a credentials object before it is freed. */
static void wipe_json(json_object *o)
{
    if (json_object_is_type(o, json_type_string)) {
        char *s = (char *)json_object_get_string(o);
        jn_secure_wipe(s, (size_t)json_object_get_string_len(o));
    } else if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v)
        {
            (void)k;
            wipe_json(v);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            wipe_json(json_object_array_get_idx(o, i));
    }
}

void jn_connection_cleanup(jn_connection_t *c)
{
    free(c->connection_id);
    free(c->provider_config_key);
    free(c->provider);
    free(c->credentials_type);
    if (c->credentials) {
        wipe_json(c->credentials);
        json_object_put(c->credentials);
    }
    json_object_put(c->connection_config);
    json_object_put(c->metadata);
    json_object_put(c->end_user);
    json_object_put(c->tags);
    free(c->webhook_url_override);
    free(c->refresh_error);
    memset(c, 0, sizeof *c);
}

static const char *text_or_null(json_object *o)
{
    return o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
}

static jn_err_t select_one(PGconn *conn, const jn_crypto_keyring_t *ring, const char *where,
                           int nparams, const char *const *params, bool with_credentials,
                           jn_connection_t *out)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT " JN_CONNECTION_COLUMNS " FROM connections c "
             "JOIN integrations i ON i.id = c.integration_id WHERE %s",
             where);
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, sql, nparams, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    err = jn_connection_from_row(r, 0, ring, with_credentials, out);
    PQclear(r);
    if (err)
        jn_connection_cleanup(out);
    return err;
}

jn_err_t jn_connections_get(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                            const char *provider_config_key, const char *connection_id,
                            bool with_credentials, jn_connection_t *out)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, provider_config_key, connection_id};
    return select_one(conn, ring,
                      "c.environment_id = $1 AND i.unique_key = $2 AND c.connection_id = $3", 3,
                      params, with_credentials, out);
}

jn_err_t jn_connections_get_by_id(PGconn *conn, const jn_crypto_keyring_t *ring, long long id,
                                  bool with_credentials, jn_connection_t *out)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", id);
    const char *params[] = {text};
    return select_one(conn, ring, "c.id = $1", 1, params, with_credentials, out);
}

static jn_err_t upsert_once(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                            const jn_connection_input_t *in, bool *created, long long *row_id)
{
    char integration[24], env[24];
    snprintf(integration, sizeof integration, "%lld", in->integration_id);
    snprintf(env, sizeof env, "%lld", env_id);
    const char *find[] = {integration, in->connection_id, env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT id FROM connections WHERE integration_id = $1 AND "
                              "connection_id = $2 AND environment_id = $3 FOR UPDATE",
                              3, find, &r);
    if (err)
        return err;
    *created = PQntuples(r) == 0;
    long long id = *created ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (*created) {
        if ((err = jn_pg_exec(conn, "SELECT nextval('connections_id_seq')", 0, NULL, &r)))
            return err;
        id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    char *sealed = NULL;
    if ((err = jn_connections_seal(ring, id, in->credentials, &sealed)))
        return err;
    char id_text[24], expires[24];
    snprintf(id_text, sizeof id_text, "%lld", id);
    snprintf(expires, sizeof expires, "%lld", in->expires_at);
    const char *params[] = {
        id_text,
        env,
        integration,
        in->connection_id,
        in->credentials_type,
        sealed,
        in->expires_at > 0 ? expires : NULL,
        text_or_null(in->connection_config),
        text_or_null(in->metadata),
        text_or_null(in->end_user),
        text_or_null(in->tags),
        in->webhook_url_override,
    };
    if (*created) {
        err = jn_pg_exec(conn,
                         "INSERT INTO connections (id, environment_id, integration_id, "
                         "connection_id, credentials_type, credentials_sealed, expires_at, "
                         "credentials_refreshed_at, connection_config, metadata, end_user, tags, "
                         "webhook_url_override) VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), "
                         "now(), coalesce($8::jsonb, '{}'), coalesce($9::jsonb, '{}'), $10::jsonb, "
                         "coalesce($11::jsonb, '{}'), $12)",
                         12, params, NULL);
    } else {
        /* An override: new credentials, and the other fields only where given. */
        err = jn_pg_exec(conn,
                         "UPDATE connections SET credentials_type = $5, credentials_sealed = $6, "
                         "expires_at = to_timestamp($7), credentials_refreshed_at = now(), "
                         "connection_config = coalesce($8::jsonb, connection_config), "
                         "metadata = coalesce($9::jsonb, metadata), "
                         "end_user = coalesce($10::jsonb, end_user), "
                         "tags = coalesce($11::jsonb, tags), "
                         "webhook_url_override = coalesce($12, webhook_url_override), "
                         "refresh_error = NULL, refresh_error_at = NULL, refresh_failures = 0, "
                         "refresh_seq = refresh_seq + 1, refresh_lease = NULL, "
                         "refresh_lease_until = NULL, refresh_retry_at = NULL, "
                         "reauth_required_at = NULL, updated_at = now() "
                         "WHERE id = $1 AND environment_id = $2 AND integration_id = $3 AND "
                         "connection_id = $4",
                         12, params, NULL);
    }
    free(sealed);
    *row_id = id;
    return err;
}

jn_err_t jn_connections_upsert(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                               const jn_connection_input_t *in, bool *created, jn_connection_t *out)
{
    /* Two creators of the same new connection race on the unique key: the loser retries
     * and finds the winner's row to override. */
    for (int attempt = 0; attempt < 3; attempt++) {
        jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
        if (err)
            return err;
        long long id = 0;
        err = upsert_once(conn, ring, env_id, in, created, &id);
        if (err == JN_OK && in->in_transaction)
            err = in->in_transaction(conn, id, *created, in->in_transaction_ud);
        if (err == JN_OK)
            err = jn_pg_exec_script(conn, "COMMIT");
        else
            jn_pg_exec_script(conn, "ROLLBACK");
        if (err == JN_ERR_CONFLICT)
            continue;
        if (err)
            return err;
        return jn_connections_get_by_id(conn, ring, id, false, out);
    }
    return JN_ERR_CONFLICT;
}

jn_err_t jn_connections_list(PGconn *conn, long long env_id, const jn_connection_filter_t *f,
                             jn_connection_t **list, size_t *count)
{
    *list = NULL;
    *count = 0;
    char env[24], limit[16], offset[24];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(limit, sizeof limit, "%d", f->limit);
    snprintf(offset, sizeof offset, "%lld", (long long)f->page * f->limit);
    const char *params[] = {env,
                            f->connection_id,
                            f->search,
                            f->end_user_id,
                            f->integration_ids,
                            text_or_null(f->tags),
                            limit,
                            offset,
                            f->end_user_org_id};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "SELECT " JN_CONNECTION_COLUMNS " FROM connections c "
                   "JOIN integrations i ON i.id = c.integration_id "
                   "WHERE c.environment_id = $1 "
                   "AND ($2::text IS NULL OR c.connection_id = $2) "
                   "AND ($3::text IS NULL OR strpos(lower(c.connection_id), lower($3)) > 0 "
                   "     OR strpos(lower(coalesce(c.end_user->>'id', '') || ' ' || "
                   "        coalesce(c.end_user->>'email', '') || ' ' || "
                   "        coalesce(c.end_user->>'display_name', '')), lower($3)) > 0) "
                   "AND ($4::text IS NULL OR c.end_user->>'id' = $4) "
                   "AND ($5::text IS NULL OR i.unique_key = ANY (string_to_array($5, ','))) "
                   "AND ($6::jsonb IS NULL OR c.tags @> $6::jsonb) "
                   "AND ($9::text IS NULL OR c.end_user->'organization'->>'id' = $9) "
                   "ORDER BY c.created_at, c.id LIMIT $7 OFFSET $8",
                   9, params, &r);
    if (err)
        return err;
    int n = PQntuples(r);
    *list = calloc(n ? (size_t)n : 1, sizeof **list);
    if (!*list)
        abort();
    for (int i = 0; i < n; i++)
        jn_connection_from_row(r, i, NULL, false, &(*list)[i]);
    *count = (size_t)n;
    PQclear(r);
    return JN_OK;
}

#define ADDRESSED_BY                                                                               \
    "environment_id = $1 AND connection_id = $3 AND integration_id = "                             \
    "(SELECT id FROM integrations WHERE environment_id = $1 AND unique_key = $2)"

jn_err_t jn_connections_patch(PGconn *conn, long long env_id, const char *provider_config_key,
                              const char *connection_id, json_object *end_user, json_object *tags,
                              bool has_webhook, const char *webhook_url_override)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env,
                            provider_config_key,
                            connection_id,
                            text_or_null(end_user),
                            text_or_null(tags),
                            has_webhook ? "true" : "false",
                            webhook_url_override};
    return jn_pg_exec_found(conn,
                            "UPDATE connections SET end_user = coalesce($4::jsonb, end_user), "
                            "tags = coalesce($5::jsonb, tags), "
                            "webhook_url_override = CASE WHEN $6::bool THEN $7 ELSE "
                            "webhook_url_override END, updated_at = now() WHERE " ADDRESSED_BY
                            " RETURNING id",
                            7, params);
}

jn_err_t jn_connections_delete(PGconn *conn, long long env_id, const char *provider_config_key,
                               const char *connection_id)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, provider_config_key, connection_id};
    return jn_pg_exec_found(conn, "DELETE FROM connections WHERE " ADDRESSED_BY " RETURNING id", 3,
                            params);
}

jn_err_t jn_connections_set_metadata(PGconn *conn, long long env_id,
                                     const char *provider_config_key, const char *connection_id,
                                     json_object *metadata, bool merge)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, provider_config_key, connection_id, text_or_null(metadata)};
    return jn_pg_exec_found(conn,
                            merge
                                ? "UPDATE connections SET metadata = metadata || $4::jsonb, "
                                  "updated_at = now() WHERE " ADDRESSED_BY " RETURNING id"
                                : "UPDATE connections SET metadata = $4::jsonb, updated_at = now() "
                                  "WHERE " ADDRESSED_BY " RETURNING id",
                            4, params);
}
