/*
 * connect_sessions.h - connect sessions: short-lived tokens (30 minutes) with which an end
 * user's browser may create (or, for a reconnect session, renew) a connection, without
 * ever seeing the environment's secret key.
 *
 * Tokens look like Nango's ("nango_connect_session_" + 64 hex digits) so existing
 * frontends accept them; only their SHA-256 is stored.
 */
#ifndef JN_GATEWAY_CONNECT_SESSIONS_H
#define JN_GATEWAY_CONNECT_SESSIONS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "core/err.h"

#define JN_CONNECT_SESSION_TTL_S 1800
#define JN_CONNECT_TOKEN_PREFIX "nango_connect_session_"
#define JN_CONNECT_TOKEN_LEN (sizeof JN_CONNECT_TOKEN_PREFIX - 1 + 64)

typedef struct {
    long long id;
    long long env_id;
    char env_uuid[40];
    char *egress_allowlist;                    /* the environment's, for token requests */
    char *cors_allowed_origins;                /* the environment's browser origins (cors.h) */
    json_object *end_user;                     /* NULL when none */
    json_object *organization;                 /* NULL when none */
    json_object *allowed_integrations;         /* array of unique keys, NULL = all */
    json_object *integrations_config_defaults; /* object, NULL when none */
    json_object *tags;                         /* NULL when none */
    char *webhook_url_override;
    long long reconnect_connection_id; /* 0 unless a reconnect session */
    char *reconnect_connection_key;    /* its connection_id */
    char *reconnect_integration;       /* its integration's unique_key */
    char expires_at[40];
} jn_connect_session_t;

/* Fields of a new session; borrowed. */
typedef struct {
    json_object *end_user, *organization, *allowed_integrations, *integrations_config_defaults,
        *tags;
    const char *webhook_url_override;
    long long reconnect_connection_id;
} jn_connect_session_input_t;

/* Creates a session; token receives the new token (NUL-terminated), expires_at its expiry. */
jn_err_t jn_connect_sessions_create(PGconn *conn, long long env_id,
                                    const jn_connect_session_input_t *in,
                                    char token[JN_CONNECT_TOKEN_LEN + 1], char expires_at[40]);

/* True when token has the session token's shape. */
bool jn_connect_token_well_formed(const char *token);

/* Finds the unexpired session of token: JN_ERR_NOT_FOUND otherwise. */
jn_err_t jn_connect_sessions_find(PGconn *conn, const char *token, jn_connect_session_t *out);

/* Same, by id (the OAuth callback knows the session from its attempt). */
jn_err_t jn_connect_sessions_find_by_id(PGconn *conn, long long id, jn_connect_session_t *out);

/* Ends the session of token now. */
jn_err_t jn_connect_sessions_delete(PGconn *conn, const char *token);

/* True when the session may act on the integration unique_key. */
bool jn_connect_session_allows(const jn_connect_session_t *s, const char *unique_key);

void jn_connect_session_cleanup(jn_connect_session_t *s);

#endif
