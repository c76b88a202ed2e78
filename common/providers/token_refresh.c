/*
 * token_refresh.c - single-flight OAuth refresh with a lease on the connection row.
 *
 * Invariants: no statement here waits on a row lock (claims use FOR UPDATE SKIP LOCKED),
 * no transaction spans two statements, and nothing is held while a provider is asked.
 * Every time comparison happens in SQL against clock_timestamp(). The lease outlives the
 * token request, so only a holder that died (or a provider slower than the request
 * timeout) ever has its lease taken over; its late finish then stores nothing.
 *
 * Workload: most calls find a token that is not expiring (one read, no write); a refresh
 * costs a read, a claim, the provider's answer and one fenced UPDATE.
 */
#include "providers/token_refresh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "providers/connection_config.h"
#include "providers/custom_providers.h"
#include "store/integrations.h"
#include "store/webhooks.h"

_Static_assert(JN_TOKEN_REFRESH_LEASE_S * 1000L > JN_OAUTH_TOKEN_TIMEOUT_MS + 10000L,
               "a refresh lease must outlive the token request and the database steps around it");

/* How long the blocking composition waits for a pool connection. */
#define DB_WAIT_MS 5000

/* The row as begin sees it: the connection plus the refresh bookkeeping, with every
 * comparison against the clock made by PostgreSQL. */
#define STATE_SQL                                                                                  \
    "SELECT " JN_CONNECTION_COLUMNS ", c.environment_id, coalesce(c.refresh_lease::text, ''), "    \
    "coalesce(c.refresh_lease_until > clock_timestamp(), false), "                                 \
    "c.refresh_lease_until IS NULL, "                                                              \
    "coalesce(ceil(extract(epoch FROM c.refresh_lease_until - clock_timestamp()) * 1000), "        \
    "0)::bigint, "                                                                                 \
    "coalesce(c.refresh_retry_at > clock_timestamp(), false), e.egress_allowlist "                 \
    "FROM connections c JOIN integrations i ON i.id = c.integration_id "                           \
    "JOIN environments e ON e.id = c.environment_id WHERE c.id = $1"

typedef struct {
    long long env_id;
    char lease_id[40];
    bool lease_live;
    bool lease_released; /* refresh_lease_until IS NULL: no claim, or a finished attempt */
    long long lease_left_ms;
    bool backing_off;
    char *egress_allowlist;
} row_state_t;

void jn_refresh_lease_init(jn_refresh_lease_t *lease)
{
    memset(lease, 0, sizeof *lease);
}

static void free_secret(char **s)
{
    if (*s) {
        jn_secure_wipe(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* Drops what a LEASED lease carries for the token request. */
static void lease_drop_inputs(jn_refresh_lease_t *lease)
{
    free(lease->credentials_type);
    free(lease->provider_name);
    json_object_put(lease->provider);
    json_object_put(lease->connection_config);
    free_secret(&lease->client_id);
    free_secret(&lease->client_secret);
    free_secret(&lease->refresh_token);
    free(lease->scopes);
    free(lease->egress_allowlist);
    lease->credentials_type = lease->provider_name = lease->scopes = NULL;
    lease->egress_allowlist = NULL;
    lease->provider = lease->connection_config = NULL;
}

void jn_refresh_lease_cleanup(jn_refresh_lease_t *lease)
{
    lease_drop_inputs(lease);
    jn_refresh_lease_init(lease);
}

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static const char *cred_string(json_object *creds, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(creds, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static bool is_oauth(const jn_connection_t *c)
{
    return c->credentials_type && (strcmp(c->credentials_type, "OAUTH2") == 0 ||
                                   strcmp(c->credentials_type, "OAUTH2_CC") == 0);
}

static long provider_margin(json_object *provider)
{
    json_object *v = NULL;
    if (provider && json_object_object_get_ex(provider, "token_expiration_buffer", &v) &&
        json_object_is_type(v, json_type_int))
        return (long)json_object_get_int64(v);
    return JN_TOKEN_REFRESH_MARGIN_S;
}

bool jn_token_expiring(const jn_connection_t *c, json_object *provider)
{
    return is_oauth(c) && c->expires_at_unix > 0 &&
           c->expires_in_s <= (double)provider_margin(provider);
}

/* ---- step 1 ---- */

/* Reads the connection (with credentials) and its refresh state. */
static jn_err_t read_state(PGconn *conn, const jn_crypto_keyring_t *ring, long long id,
                           jn_connection_t *c, row_state_t *st)
{
    char id_text[24];
    snprintf(id_text, sizeof id_text, "%lld", id);
    const char *params[] = {id_text};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, STATE_SQL, 1, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    err = jn_connection_from_row(r, 0, ring, true, c);
    if (err) {
        jn_connection_cleanup(c);
        PQclear(r);
        return err;
    }
    int k = JN_CONNECTION_COLUMN_COUNT;
    st->env_id = strtoll(PQgetvalue(r, 0, k), NULL, 10);
    snprintf(st->lease_id, sizeof st->lease_id, "%s", PQgetvalue(r, 0, k + 1));
    st->lease_live = PQgetvalue(r, 0, k + 2)[0] == 't';
    st->lease_released = PQgetvalue(r, 0, k + 3)[0] == 't';
    st->lease_left_ms = strtoll(PQgetvalue(r, 0, k + 4), NULL, 10);
    st->backing_off = PQgetvalue(r, 0, k + 5)[0] == 't';
    st->egress_allowlist = dup_or_null(PQgetvalue(r, 0, k + 6));
    PQclear(r);
    return JN_OK;
}

static jn_refresh_outcome_t decide(const jn_connection_t *c, const row_state_t *st, long margin,
                                   bool force, long long seen_seq, const char *waited_for)
{
    if (!is_oauth(c))
        return JN_REFRESH_NOT_NEEDED;
    if (seen_seq != JN_TOKEN_SEQ_ANY && c->refresh_seq > seen_seq)
        return JN_REFRESH_FRESH;
    if (waited_for[0] && strcmp(st->lease_id, waited_for) == 0 && st->lease_released)
        return JN_REFRESH_FAILED; /* the attempt we waited on ended without new credentials */
    bool expiring = c->expires_at_unix > 0 && c->expires_in_s <= (double)margin;
    if (!force && !expiring)
        return JN_REFRESH_NOT_NEEDED; /* a dead grant's token works until it expires */
    if (c->reauth_required)
        return JN_REFRESH_DEAD;
    if (st->lease_live)
        return JN_REFRESH_BUSY;
    if (!force && st->backing_off)
        return JN_REFRESH_BACKOFF;
    return JN_REFRESH_LEASED;
}

/* Takes the lease if nobody holds a live one, the credentials are still those of seq and
 * nobody has the row locked. *taken false otherwise (lease_id untouched). */
static jn_err_t claim(PGconn *conn, long long id, long long seq, char lease_id[40], bool *taken)
{
    char id_text[24], seq_text[24], lease_s[16];
    snprintf(id_text, sizeof id_text, "%lld", id);
    snprintf(seq_text, sizeof seq_text, "%lld", seq);
    snprintf(lease_s, sizeof lease_s, "%d", JN_TOKEN_REFRESH_LEASE_S);
    const char *params[] = {id_text, seq_text, lease_s};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "UPDATE connections SET refresh_lease = gen_random_uuid(), "
                   "refresh_lease_until = clock_timestamp() + make_interval(secs => $3) "
                   "WHERE id = (SELECT id FROM connections WHERE id = $1 FOR UPDATE SKIP LOCKED) "
                   "AND refresh_seq = $2 AND reauth_required_at IS NULL "
                   "AND (refresh_lease_until IS NULL OR refresh_lease_until <= clock_timestamp()) "
                   "RETURNING refresh_lease::text",
                   3, params, &r);
    if (err)
        return err;
    *taken = PQntuples(r) == 1;
    if (*taken)
        snprintf(lease_id, 40, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return JN_OK;
}

/* What the token request needs, read before claiming so nothing can fail after the
 * claim. *lease takes the references. */
static jn_err_t gather_inputs(PGconn *conn, const jn_crypto_keyring_t *ring,
                              const jn_connection_t *c, row_state_t *st, json_object *provider,
                              jn_refresh_lease_t *lease)
{
    jn_integration_t it = {0};
    jn_err_t err = jn_integrations_get(conn, ring, st->env_id, c->provider_config_key, true, &it);
    if (err)
        return err;
    lease_drop_inputs(lease);
    lease->env_id = st->env_id;
    lease->credentials_type = dup_or_null(c->credentials_type);
    lease->provider_name = dup_or_null(c->provider);
    lease->provider = json_object_get(provider);
    json_object_deep_copy(c->connection_config, &lease->connection_config, NULL);
    if (!lease->connection_config)
        lease->connection_config = json_object_new_object();
    if (strcmp(c->credentials_type, "OAUTH2_CC") == 0) {
        /* The client's credentials are the grant, and they live on the connection. */
        lease->client_id = dup_or_null(cred_string(c->credentials, "client_id"));
        lease->client_secret = dup_or_null(cred_string(c->credentials, "client_secret"));
    } else {
        lease->client_id = dup_or_null(it.client_id);
        lease->client_secret = dup_or_null(it.client_secret);
        lease->refresh_token = dup_or_null(cred_string(c->credentials, "refresh_token"));
    }
    lease->scopes = dup_or_null(it.scopes);
    lease->egress_allowlist = st->egress_allowlist;
    st->egress_allowlist = NULL;
    jn_integration_cleanup(&it);
    return JN_OK;
}

jn_err_t jn_token_refresh_begin(PGconn *conn, const jn_crypto_keyring_t *ring,
                                const jn_catalog_t *catalog, long long connection_row_id,
                                bool force, long long seen_seq, jn_refresh_lease_t *lease,
                                jn_connection_t *current, jn_refresh_outcome_t *outcome)
{
    char waited_for[40];
    snprintf(waited_for, sizeof waited_for, "%s", lease->lease_id);
    /* A re-check compares with what was stored when the wait began, so that a holder's
     * success reads as FRESH even for a caller that named no seq of its own. */
    long long baseline = seen_seq;
    if (baseline == JN_TOKEN_SEQ_ANY && waited_for[0])
        baseline = lease->seq;
    memset(current, 0, sizeof *current);
    lease->connection_row_id = connection_row_id;
    lease->why[0] = '\0';
    /* Two rounds: a claim lost to another caller between our read and our claim is seen
     * on the second read. */
    for (int round = 0; round < 2; round++) {
        row_state_t st = {0};
        jn_err_t err = read_state(conn, ring, connection_row_id, current, &st);
        if (err)
            return err;
        json_object *provider = NULL;
        if (is_oauth(current) &&
            (err = jn_providers_lookup(catalog, conn, st.env_id, current->provider, &provider))) {
            free(st.egress_allowlist);
            jn_connection_cleanup(current);
            return err;
        }
        lease->seq = current->refresh_seq;
        *outcome = decide(current, &st, provider_margin(provider), force, baseline, waited_for);
        if (*outcome == JN_REFRESH_DEAD || *outcome == JN_REFRESH_FAILED ||
            *outcome == JN_REFRESH_BACKOFF)
            snprintf(lease->why, sizeof lease->why, "%s",
                     current->refresh_error ? current->refresh_error : "token refresh failed");
        if (*outcome == JN_REFRESH_BUSY) {
            snprintf(lease->lease_id, sizeof lease->lease_id, "%s", st.lease_id);
            lease->wait_ms = (int)st.lease_left_ms + JN_TOKEN_REFRESH_WAIT_MARGIN_MS;
        }
        bool taken = false;
        if (*outcome == JN_REFRESH_LEASED) {
            err = gather_inputs(conn, ring, current, &st, provider, lease);
            if (!err)
                err = claim(conn, connection_row_id, current->refresh_seq, lease->lease_id, &taken);
        }
        free(st.egress_allowlist);
        json_object_put(provider);
        if (err) {
            lease_drop_inputs(lease);
            jn_connection_cleanup(current);
            return err;
        }
        if (*outcome != JN_REFRESH_LEASED || taken) {
            if (*outcome == JN_REFRESH_BUSY)
                jn_connection_cleanup(current);
            if (*outcome != JN_REFRESH_LEASED)
                lease_drop_inputs(lease);
            return JN_OK;
        }
        lease_drop_inputs(lease);
        jn_connection_cleanup(current);
    }
    /* Still claimable but not claimed: another transaction has the row locked. Wait as
     * for a lease, without a holder to watch. */
    *outcome = JN_REFRESH_BUSY;
    lease->lease_id[0] = '\0';
    lease->wait_ms = JN_TOKEN_REFRESH_LEASE_S * 1000 + JN_TOKEN_REFRESH_WAIT_MARGIN_MS;
    return JN_OK;
}

/* ---- step 2 ---- */

jn_err_t jn_token_refresh_request(const jn_refresh_lease_t *lease, jn_oauth_request_t *req,
                                  jn_oauth_error_t *failure)
{
    memset(req, 0, sizeof *req);
    memset(failure, 0, sizeof *failure);
    jn_oauth_client_t client = {lease->client_id, lease->client_secret, NULL};
    if (strcmp(lease->credentials_type, "OAUTH2_CC") == 0)
        return jn_oauth_request_client_credentials(
            lease->provider, &client, lease->connection_config, lease->scopes, req, failure);
    if (!lease->refresh_token) {
        snprintf(failure->message, sizeof failure->message,
                 "the connection has no refresh token; the end user must reconnect");
        failure->grant_dead = true;
        return JN_ERR_INVALID;
    }
    return jn_oauth_request_refresh(lease->provider, &client, lease->connection_config,
                                    lease->refresh_token, req, failure);
}

jn_err_t jn_token_refresh_ask(const jn_refresh_lease_t *lease, jn_oauth_token_t *token,
                              jn_oauth_error_t *failure)
{
    const jn_egress_policy_t *egress = jn_egress_policy_shared(lease->egress_allowlist);
    jn_oauth_request_t req;
    jn_err_t err = jn_token_refresh_request(lease, &req, failure);
    if (!err)
        err = jn_oauth_send(&req, egress, token, failure);
    jn_oauth_request_cleanup(&req);
    return err;
}

/* ---- step 3 ---- */

/* Runs a fenced UPDATE (a CTE over "u") that notifies the channel: *result as given
 * when it touched the row, SUPERSEDED when the lease was no longer ours. */
static jn_err_t fenced(PGconn *conn, const char *update, int nparams, const char *const *params,
                       jn_refresh_result_t if_done, jn_refresh_result_t *result)
{
    char sql[2048];
    snprintf(sql, sizeof sql,
             "WITH u AS (%s WHERE id = $1 AND refresh_lease = $2::uuid AND refresh_seq = $3 "
             "RETURNING id) SELECT pg_notify('" JN_TOKEN_REFRESH_CHANNEL "', id::text) FROM u",
             update);
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, sql, nparams, params, &r);
    if (err)
        return err;
    *result = PQntuples(r) == 1 ? if_done : JN_REFRESH_SUPERSEDED;
    PQclear(r);
    return JN_OK;
}

static jn_err_t store_token(PGconn *conn, const jn_crypto_keyring_t *ring,
                            const jn_refresh_lease_t *lease, const jn_oauth_token_t *token,
                            const char *const fence[3], jn_refresh_result_t *result)
{
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint",
                              0, NULL, &r);
    if (err)
        return err;
    long long now = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    /* The stored expiry and the one in the credentials come from PostgreSQL's clock. */
    jn_oauth_token_t t = *token;
    t.expires_at = token->expires_in > 0 ? now + token->expires_in : 0;
    bool cc = strcmp(lease->credentials_type, "OAUTH2_CC") == 0;
    /* A provider that does not rotate refresh tokens sends none: keep the old one. */
    if (!cc && !t.refresh_token)
        t.refresh_token = lease->refresh_token;
    jn_oauth_client_t client = {lease->client_id, lease->client_secret, NULL};
    json_object *creds = jn_oauth_credentials(&t, lease->credentials_type, &client);
    /* The token answer's metadata joins the connection's config only if the provider's
     * rules admit it (a token endpoint does not choose hosts either). */
    json_object *metadata = jn_connection_config_from_token(lease->provider, token->raw);
    jn_field_error_t fe;
    if (jn_connection_config_check(lease->provider, metadata, JN_CONNCFG_PROVIDER, &fe) != JN_OK) {
        jn_log_warn("refresh", "connection %lld: token answer metadata refused (%s: %s)",
                    lease->connection_row_id, fe.path, fe.message);
        json_object_put(metadata);
        metadata = json_object_new_object();
    }
    char *sealed = NULL;
    err = jn_connections_seal(ring, lease->connection_row_id, creds, &sealed);
    json_object_put(creds);
    if (!err) {
        char expires[24];
        snprintf(expires, sizeof expires, "%lld", t.expires_at);
        const char *params[] = {fence[0],
                                fence[1],
                                fence[2],
                                sealed,
                                t.expires_at > 0 ? expires : NULL,
                                json_object_to_json_string_ext(metadata, JSON_C_TO_STRING_PLAIN)};
        err = fenced(conn,
                     "UPDATE connections SET credentials_sealed = $4, "
                     "expires_at = to_timestamp($5), credentials_refreshed_at = clock_timestamp(), "
                     "connection_config = connection_config || $6::jsonb, "
                     "refresh_seq = refresh_seq + 1, refresh_lease_until = NULL, "
                     "refresh_error = NULL, refresh_error_at = NULL, refresh_failures = 0, "
                     "refresh_retry_at = NULL, updated_at = now()",
                     6, params, JN_REFRESH_STORED, result);
    }
    free(sealed);
    json_object_put(metadata);
    return err;
}

static jn_err_t record_failure(PGconn *conn, const jn_oauth_error_t *failure,
                               const char *const fence[3], jn_refresh_result_t *result)
{
    char message[600];
    snprintf(message, sizeof message, "token refresh failed: %s", failure->message);
    const char *params[] = {fence[0], fence[1], fence[2], message,
                            failure->grant_dead ? "true" : "false"};
    /* Backoff: 30 s after the first failure, doubling, at most an hour. */
    return fenced(conn,
                  "UPDATE connections SET refresh_lease_until = NULL, refresh_error = $4, "
                  "refresh_error_at = clock_timestamp(), refresh_failures = refresh_failures + 1, "
                  "reauth_required_at = CASE WHEN $5::bool THEN clock_timestamp() END, "
                  "refresh_retry_at = CASE WHEN $5::bool THEN NULL ELSE clock_timestamp() + "
                  "least(interval '1 hour', interval '30 seconds' * "
                  "power(2, least(refresh_failures, 12))) END, updated_at = now()",
                  5, params, JN_REFRESH_RECORDED, result);
}

/* The auth webhook of a failed refresh (operation "refresh", success false), inside the
 * failure's transaction. Its deliveries are due at once: the scheduler sends them. */
static jn_err_t refresh_failed_webhook(PGconn *conn, const jn_crypto_keyring_t *ring,
                                       const jn_refresh_lease_t *lease,
                                       const jn_oauth_error_t *failure)
{
    jn_connection_t c;
    jn_err_t err = jn_connections_get_by_id(conn, ring, lease->connection_row_id, false, &c);
    if (err)
        return err;
    char env_id[24];
    snprintf(env_id, sizeof env_id, "%lld", lease->env_id);
    const char *params[] = {env_id};
    PGresult *r = NULL;
    err = jn_pg_exec(conn, "SELECT name FROM environments WHERE id = $1", 1, params, &r);
    if (!err) {
        jn_webhook_auth_t a = {.connection_id = c.connection_id,
                               .provider_config_key = c.provider_config_key,
                               .provider = c.provider,
                               .auth_mode = c.credentials_type,
                               .environment = PQntuples(r) ? PQgetvalue(r, 0, 0) : "",
                               .operation = "refresh",
                               .success = false,
                               .tags = c.tags,
                               .end_user = c.end_user,
                               .error_type = "refresh_token_external_error",
                               .error_description = failure->message};
        err = jn_webhooks_enqueue_auth(conn, lease->env_id, c.id, &a, NULL);
        PQclear(r);
    }
    jn_connection_cleanup(&c);
    return err;
}

/* record_failure and its webhook in one transaction; a webhook that cannot be written is
 * logged, and the failure is recorded all the same. */
static jn_err_t record_failure_and_tell(PGconn *conn, const jn_crypto_keyring_t *ring,
                                        const jn_refresh_lease_t *lease,
                                        const jn_oauth_error_t *failure, const char *const fence[3],
                                        jn_refresh_result_t *result)
{
    bool own = PQtransactionStatus(conn) == PQTRANS_IDLE;
    jn_err_t err = own ? jn_pg_exec_script(conn, "BEGIN") : JN_OK;
    if (!err)
        err = record_failure(conn, failure, fence, result);
    if (!err && *result == JN_REFRESH_RECORDED && own) {
        jn_err_t werr = jn_pg_exec_script(conn, "SAVEPOINT refresh_webhook");
        if (!werr)
            werr = refresh_failed_webhook(conn, ring, lease, failure);
        if (werr) {
            jn_log_warn("refresh",
                        "connection %lld: its refresh-failure webhook was not written (%s)",
                        lease->connection_row_id, jn_err_str(werr));
            jn_pg_exec_script(conn, "ROLLBACK TO SAVEPOINT refresh_webhook");
        }
    }
    if (own && err)
        jn_pg_exec_script(conn, "ROLLBACK");
    else if (own)
        err = jn_pg_exec_script(conn, "COMMIT");
    return err;
}

jn_err_t jn_token_refresh_finish(PGconn *conn, const jn_crypto_keyring_t *ring,
                                 const jn_refresh_lease_t *lease, const jn_oauth_token_t *token,
                                 const jn_oauth_error_t *failure, jn_refresh_result_t *result,
                                 jn_connection_t *out)
{
    char id_text[24], seq_text[24];
    snprintf(id_text, sizeof id_text, "%lld", lease->connection_row_id);
    snprintf(seq_text, sizeof seq_text, "%lld", lease->seq);
    const char *fence[3] = {id_text, lease->lease_id, seq_text};
    jn_err_t err = token ? store_token(conn, ring, lease, token, fence, result)
                         : record_failure_and_tell(conn, ring, lease, failure, fence, result);
    if (err)
        return err;
    const char *outcome = *result == JN_REFRESH_STORED     ? "success"
                          : *result == JN_REFRESH_RECORDED ? "failure"
                                                           : "superseded";
    char labels[32];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    jn_metric_inc(
        jn_metrics_counter("jn_token_refreshes_total", "OAuth token refresh attempts", labels));
    if (*result == JN_REFRESH_STORED)
        jn_log_info("refresh", "connection %lld (%s): token refreshed", lease->connection_row_id,
                    lease->provider_name);
    else if (*result == JN_REFRESH_RECORDED)
        jn_log_warn("refresh", "connection %lld (%s): token refresh failed%s: %s",
                    lease->connection_row_id, lease->provider_name,
                    failure->grant_dead ? " for good (re-authorisation needed)" : "",
                    failure->message);
    else
        jn_log_info("refresh", "connection %lld: the refresh lease was taken over; not stored",
                    lease->connection_row_id);
    return out ? jn_connections_get_by_id(conn, ring, lease->connection_row_id, true, out) : JN_OK;
}

/* ---- the blocking composition ---- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Asks the provider with nothing held, then stores the outcome. *out (may be NULL) gets
 * the connection as stored when the refresh worked. */
static jn_err_t refresh_leased(jn_pg_pool_t *pool, const jn_crypto_keyring_t *ring,
                               const jn_refresh_lease_t *lease, jn_connection_t *out, char *why,
                               size_t why_len)
{
    jn_oauth_token_t token = {0};
    jn_oauth_error_t failure = {0};
    jn_err_t asked = jn_token_refresh_ask(lease, &token, &failure);
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, DB_WAIT_MS, &err);
    if (conn) {
        /* Unstored, the lease simply expires and a later caller asks again. */
        jn_refresh_result_t result;
        err = jn_token_refresh_finish(conn, ring, lease, asked ? NULL : &token,
                                      asked ? &failure : NULL, &result, asked ? NULL : out);
        jn_pg_release(pool, conn);
    }
    jn_oauth_token_cleanup(&token);
    if (!err && asked) {
        snprintf(why, why_len, "token refresh failed: %s", failure.message);
        return asked;
    }
    if (err)
        snprintf(why, why_len, "the outcome of the token refresh could not be stored");
    return err;
}

jn_err_t jn_token_refresh(jn_pg_pool_t *pool, const jn_crypto_keyring_t *ring,
                          const jn_catalog_t *catalog, long long connection_row_id, bool force,
                          long long seen_seq, jn_connection_t *out, char *why, size_t why_len)
{
    jn_refresh_lease_t lease;
    jn_refresh_lease_init(&lease);
    const long start = now_ms();
    const long cap = 2L * (JN_TOKEN_REFRESH_LEASE_S * 1000L + JN_TOKEN_REFRESH_WAIT_MARGIN_MS);
    long until = 0, pause = 25;
    jn_err_t err;
    memset(out, 0, sizeof *out);
    for (;;) {
        PGconn *conn = jn_pg_acquire(pool, DB_WAIT_MS, &err);
        if (!conn)
            break;
        jn_refresh_outcome_t outcome;
        err = jn_token_refresh_begin(conn, ring, catalog, connection_row_id, force, seen_seq,
                                     &lease, out, &outcome);
        jn_pg_release(pool, conn);
        if (err)
            break;
        if (outcome == JN_REFRESH_BUSY) {
            /* Wait for the holder with short reads; a new holder extends the wait, within
             * a cap. */
            long now = now_ms();
            if (now + lease.wait_ms > until)
                until = now + lease.wait_ms;
            if (until > start + cap)
                until = start + cap;
            if (now >= until) {
                snprintf(why, why_len, "another refresh of this connection did not finish in time");
                err = JN_ERR_TIMEOUT;
                break;
            }
            pause_ms(pause < until - now ? pause : until - now);
            pause = pause * 2 > 250 ? 250 : pause * 2;
            continue;
        }
        if (outcome == JN_REFRESH_LEASED) {
            jn_connection_cleanup(out);
            err = refresh_leased(pool, ring, &lease, out, why, why_len);
        } else if (outcome == JN_REFRESH_DEAD) {
            snprintf(why, why_len, "%s (re-authorisation needed)", lease.why);
            err = JN_ERR_INVALID;
        } else if (outcome == JN_REFRESH_FAILED || outcome == JN_REFRESH_BACKOFF) {
            snprintf(why, why_len, "%s", lease.why);
            err = JN_ERR_UPSTREAM;
        }
        if (err)
            jn_connection_cleanup(out);
        break;
    }
    jn_refresh_lease_cleanup(&lease);
    return err;
}

/* ---- the sweep ---- */

jn_err_t jn_token_refresh_sweep(jn_pg_pool_t *pool, const jn_crypto_keyring_t *ring,
                                const jn_catalog_t *catalog, int limit, int *refreshed, int *failed)
{
    *refreshed = *failed = 0;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, DB_WAIT_MS, &err);
    if (!conn)
        return err;
    char limit_text[16];
    snprintf(limit_text, sizeof limit_text, "%d", limit);
    const char *params[] = {limit_text};
    PGresult *r = NULL;
    /* Rows another transaction holds are skipped, not waited for; dead grants, leased rows
     * and rows backing off after a failure are not candidates, so they cannot crowd out
     * the rest. */
    err = jn_pg_exec(conn,
                     "SELECT id, refresh_seq FROM connections "
                     "WHERE credentials_type IN ('OAUTH2', 'OAUTH2_CC') "
                     "AND reauth_required_at IS NULL "
                     "AND expires_at < clock_timestamp() + interval '1 hour' "
                     "AND (refresh_retry_at IS NULL OR refresh_retry_at <= clock_timestamp()) "
                     "AND (refresh_lease_until IS NULL OR "
                     "     refresh_lease_until <= clock_timestamp()) "
                     "ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                     1, params, &r);
    jn_pg_release(pool, conn);
    if (err)
        return err;
    for (int i = 0; i < PQntuples(r) && !err; i++) {
        long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        long long seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (!(conn = jn_pg_acquire(pool, DB_WAIT_MS, &err)))
            break;
        jn_refresh_lease_t lease;
        jn_refresh_lease_init(&lease);
        jn_connection_t c;
        jn_refresh_outcome_t outcome;
        err = jn_token_refresh_begin(conn, ring, catalog, id, false, seq, &lease, &c, &outcome);
        jn_pg_release(pool, conn);
        if (err == JN_OK) {
            jn_connection_cleanup(&c);
            if (outcome == JN_REFRESH_LEASED) {
                char why[512];
                err = refresh_leased(pool, ring, &lease, NULL, why, sizeof why);
                if (err == JN_OK)
                    (*refreshed)++;
                else
                    (*failed)++;
                /* A provider's refusal is recorded; only the database stops the sweep. */
                if (err != JN_ERR_DB_UNAVAILABLE && err != JN_ERR_TIMEOUT)
                    err = JN_OK;
            }
        } else if (err != JN_ERR_DB_UNAVAILABLE && err != JN_ERR_TIMEOUT) {
            err = JN_OK; /* this row is gone or unreadable: the next one */
        }
        jn_refresh_lease_cleanup(&lease);
    }
    PQclear(r);
    return err;
}
