/*
 * connections.h - the connections store: one end user's authorised link to an
 * integration, with its credentials sealed at rest.
 *
 * Every function is scoped by environment id; a connection is addressed by
 * (integration unique_key, connection_id) as in Nango's API. Credentials are a JSON object
 * in Nango's shapes ({"type":"OAUTH2","access_token",…}) sealed with AES-256-GCM under
 * associated data "connection:<row id>:credentials"; they are opened only on request.
 */
#ifndef JN_CONNECTIONS_H
#define JN_CONNECTIONS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/crypto.h"
#include "core/err.h"

typedef struct {
    long long id;
    long long integration_id;
    char *connection_id;
    char *provider_config_key; /* the integration's unique_key */
    char *provider;
    char *credentials_type;
    json_object *credentials; /* opened credentials, or NULL when not asked for */
    char expires_at[40];      /* ISO 8601, "" when the credentials do not expire */
    double expires_at_unix;   /* the same in unix seconds, 0 when none */
    json_object *connection_config;
    json_object *metadata;
    json_object *end_user; /* NULL when none */
    json_object *tags;
    char *webhook_url_override;
    char *refresh_error; /* last refresh failure, NULL when the last refresh worked */
    char refresh_error_at[40];
    bool reauth_required;  /* the grant is dead: no refresh until the credentials are replaced */
    long long refresh_seq; /* grows with every stored credential (refresh, import, OAuth) */
    double expires_in_s;   /* expires_at minus PostgreSQL's clock when read (0 when none) */
    char last_fetched_at[40];
    char created_at[40];
    char updated_at[40];
} jn_connection_t;

/* What an import or an OAuth flow writes. Borrowed pointers; NULL = not given. */
typedef struct {
    long long integration_id;
    const char *connection_id;
    const char *credentials_type;
    json_object *credentials;
    long long expires_at; /* unix seconds, 0 = no expiry */
    json_object *connection_config;
    json_object *metadata;
    json_object *end_user;
    json_object *tags;
    const char *webhook_url_override;
    /* Optional: runs inside the write's transaction, after it, with the row's id, so that
     * what must commit with the connection (its auth webhook) does; an error rolls the
     * write back. It may run more than once when a concurrent creator wins a race. */
    jn_err_t (*in_transaction)(PGconn *conn, long long row_id, bool created, void *ud);
    void *in_transaction_ud;
} jn_connection_input_t;

typedef struct {
    const char *connection_id; /* exact */
    const char *search;        /* substring of connection_id or end user id/email/name */
    const char *end_user_id;
    const char *end_user_org_id;
    const char *integration_ids; /* comma-separated unique keys */
    json_object *tags;           /* every key/value must match */
    int limit;                   /* 1..10000 */
    int page;                    /* >= 0 */
} jn_connection_filter_t;

/* Frees what it holds (not the struct), wiping the credentials. */
void jn_connection_cleanup(jn_connection_t *c);

/* Creates the connection, or overrides the credentials (and given fields) of the existing
 * one with the same integration and connection_id. *created tells which. */
jn_err_t jn_connections_upsert(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                               const jn_connection_input_t *in, bool *created,
                               jn_connection_t *out);

/* One connection; with_credentials opens them. JN_ERR_NOT_FOUND when absent. */
jn_err_t jn_connections_get(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                            const char *provider_config_key, const char *connection_id,
                            bool with_credentials, jn_connection_t *out);

/* Same, by row id (for the refresh sweep, which works across environments). */
jn_err_t jn_connections_get_by_id(PGconn *conn, const jn_crypto_keyring_t *ring, long long id,
                                  bool with_credentials, jn_connection_t *out);

/* Connections matching f, newest last, without credentials. */
jn_err_t jn_connections_list(PGconn *conn, long long env_id, const jn_connection_filter_t *f,
                             jn_connection_t **list, size_t *count);

/* Changes end_user, tags and/or webhook_url_override (NULL = unchanged; has_webhook with a
 * NULL value clears it). */
jn_err_t jn_connections_patch(PGconn *conn, long long env_id, const char *provider_config_key,
                              const char *connection_id, json_object *end_user, json_object *tags,
                              bool has_webhook, const char *webhook_url_override);

jn_err_t jn_connections_delete(PGconn *conn, long long env_id, const char *provider_config_key,
                               const char *connection_id);

/* Replaces (merge = false) or shallow-merges the metadata of one connection. */
jn_err_t jn_connections_set_metadata(PGconn *conn, long long env_id,
                                     const char *provider_config_key, const char *connection_id,
                                     json_object *metadata, bool merge);

/* Seals credentials for row id: *out is a new blob (free()). */
jn_err_t jn_connections_seal(const jn_crypto_keyring_t *ring, long long id,
                             json_object *credentials, char **out);

/* Builds a jn_connection_t from a row selected with JN_CONNECTION_COLUMNS. */
jn_err_t jn_connection_from_row(const PGresult *r, int row, const jn_crypto_keyring_t *ring,
                                bool with_credentials, jn_connection_t *out);

/* The select list jn_connection_from_row expects, over "c" (connections) joined with "i"
 * (integrations), and how many columns it has (a caller may select more after them). */
#define JN_CONNECTION_COLUMN_COUNT 22
#define JN_CONNECTION_COLUMNS                                                                      \
    "c.id, c.integration_id, c.connection_id, i.unique_key, i.provider, c.credentials_type, "      \
    "c.credentials_sealed, "                                                                       \
    "coalesce(to_char(c.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "     \
    "''), "                                                                                        \
    "c.connection_config::text, c.metadata::text, c.end_user::text, c.tags::text, "                \
    "c.webhook_url_override, c.refresh_error, "                                                    \
    "coalesce(to_char(c.refresh_error_at AT TIME ZONE 'UTC', "                                     \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), "                                                  \
    "coalesce(to_char(c.last_fetched_at AT TIME ZONE 'UTC', "                                      \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), "                                                  \
    "to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "              \
    "to_char(c.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "              \
    "coalesce(extract(epoch FROM c.expires_at), 0), c.refresh_seq, "                               \
    "coalesce(extract(epoch FROM c.expires_at - clock_timestamp()), 0), "                          \
    "c.reauth_required_at IS NOT NULL"

#endif
