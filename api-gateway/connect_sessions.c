/*
 * connect_sessions.c - SQL for connect_sessions (migration 0003).
 */
#include "connect_sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/pg.h"

bool jn_connect_token_well_formed(const char *token)
{
    size_t prefix = sizeof JN_CONNECT_TOKEN_PREFIX - 1;
    if (!token || strlen(token) != JN_CONNECT_TOKEN_LEN ||
        strncmp(token, JN_CONNECT_TOKEN_PREFIX, prefix) != 0)
        return false;
    for (const char *p = token + prefix; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

static const char *text_or_null(json_object *o)
{
    return o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
}

jn_err_t jn_connect_sessions_create(PGconn *conn, long long env_id,
                                    const jn_connect_session_input_t *in,
                                    char token[JN_CONNECT_TOKEN_LEN + 1], char expires_at[40])
{
    unsigned char random[32];
    jn_crypto_random(random, sizeof random);
    char hex[65];
    jn_hex_encode(random, sizeof random, hex);
    snprintf(token, JN_CONNECT_TOKEN_LEN + 1, "%s%s", JN_CONNECT_TOKEN_PREFIX, hex);
    char hash[65], env[24], ttl[16], reconnect[24];
    jn_crypto_sha256_hex(token, hash);
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(ttl, sizeof ttl, "%d", JN_CONNECT_SESSION_TTL_S);
    snprintf(reconnect, sizeof reconnect, "%lld", in->reconnect_connection_id);
    const char *params[] = {env,
                            hash,
                            text_or_null(in->end_user),
                            text_or_null(in->organization),
                            text_or_null(in->allowed_integrations),
                            text_or_null(in->integrations_config_defaults),
                            text_or_null(in->tags),
                            in->webhook_url_override,
                            in->reconnect_connection_id ? reconnect : NULL,
                            ttl};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(
        conn,
        "INSERT INTO connect_sessions (environment_id, token_hash, end_user, organization, "
        "allowed_integrations, integrations_config_defaults, tags, webhook_url_override, "
        "reconnect_connection_id, expires_at) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, "
        "$6::jsonb, $7::jsonb, $8, $9, now() + make_interval(secs => $10)) "
        "RETURNING to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        10, params, &r);
    if (err)
        return err;
    snprintf(expires_at, 40, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return JN_OK;
}

static json_object *json_or_null(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : json_tokener_parse(PQgetvalue(r, 0, col));
}

static jn_err_t find_where(PGconn *conn, const char *where, const char *param,
                           jn_connect_session_t *out)
{
    char sql[1536];
    snprintf(sql, sizeof sql,
             "SELECT s.id, s.environment_id, e.uuid::text, s.end_user::text, "
             "s.organization::text, s.allowed_integrations::text, "
             "s.integrations_config_defaults::text, s.tags::text, s.webhook_url_override, "
             "coalesce(s.reconnect_connection_id, 0), c.connection_id, i.unique_key, "
             "to_char(s.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
             "e.egress_allowlist, e.cors_allowed_origins "
             "FROM connect_sessions s JOIN environments e ON e.id = s.environment_id "
             "LEFT JOIN connections c ON c.id = s.reconnect_connection_id "
             "LEFT JOIN integrations i ON i.id = c.integration_id "
             "WHERE %s AND s.expires_at > now()",
             where);
    const char *params[] = {param};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, sql, 1, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    memset(out, 0, sizeof *out);
    out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->env_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    snprintf(out->env_uuid, sizeof out->env_uuid, "%s", PQgetvalue(r, 0, 2));
    out->end_user = json_or_null(r, 3);
    out->organization = json_or_null(r, 4);
    out->allowed_integrations = json_or_null(r, 5);
    out->integrations_config_defaults = json_or_null(r, 6);
    out->tags = json_or_null(r, 7);
    out->webhook_url_override = jn_pg_dup(r, 0, 8);
    out->reconnect_connection_id = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
    out->reconnect_connection_key = jn_pg_dup(r, 0, 10);
    out->reconnect_integration = jn_pg_dup(r, 0, 11);
    snprintf(out->expires_at, sizeof out->expires_at, "%s", PQgetvalue(r, 0, 12));
    out->egress_allowlist = jn_pg_dup(r, 0, 13);
    out->cors_allowed_origins = jn_pg_dup(r, 0, 14);
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_connect_sessions_find(PGconn *conn, const char *token, jn_connect_session_t *out)
{
    if (!jn_connect_token_well_formed(token))
        return JN_ERR_NOT_FOUND;
    char hash[65];
    jn_crypto_sha256_hex(token, hash);
    return find_where(conn, "s.token_hash = $1", hash, out);
}

jn_err_t jn_connect_sessions_find_by_id(PGconn *conn, long long id, jn_connect_session_t *out)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", id);
    return find_where(conn, "s.id = $1", text, out);
}

jn_err_t jn_connect_sessions_delete(PGconn *conn, const char *token)
{
    char hash[65];
    jn_crypto_sha256_hex(token, hash);
    const char *params[] = {hash};
    return jn_pg_exec(conn, "DELETE FROM connect_sessions WHERE token_hash = $1", 1, params, NULL);
}

bool jn_connect_session_allows(const jn_connect_session_t *s, const char *unique_key)
{
    if (s->reconnect_integration)
        return strcmp(s->reconnect_integration, unique_key) == 0;
    if (!s->allowed_integrations)
        return true;
    for (size_t i = 0; i < json_object_array_length(s->allowed_integrations); i++) {
        if (strcmp(json_object_get_string(json_object_array_get_idx(s->allowed_integrations, i)),
                   unique_key) == 0)
            return true;
    }
    return false;
}

void jn_connect_session_cleanup(jn_connect_session_t *s)
{
    json_object_put(s->end_user);
    json_object_put(s->organization);
    json_object_put(s->allowed_integrations);
    json_object_put(s->integrations_config_defaults);
    json_object_put(s->tags);
    free(s->webhook_url_override);
    free(s->reconnect_connection_key);
    free(s->reconnect_integration);
    free(s->egress_allowlist);
    free(s->cors_allowed_origins);
    memset(s, 0, sizeof *s);
}
