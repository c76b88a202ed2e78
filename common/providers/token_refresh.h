/*
 * token_refresh.h - keeping OAuth access tokens fresh, once across every process, without
 * holding a transaction, a row lock or a pool connection while a provider is asked.
 *
 * A refresh is three steps, so that a blocking thread and an event loop (database steps
 * on a thread pool, the token request on an asynchronous HTTP client) drive the same code:
 *
 *   1. jn_token_refresh_begin   short statements: decides, and when the provider must be
 *                               asked, claims the connection with a lease (a lease id and
 *                               an expiry set by PostgreSQL's clock, taken only when no
 *                               live lease exists).
 *   2. the token request        no database: jn_token_refresh_request builds it from the
 *                               lease; jn_token_refresh_ask sends it blocking, or an event
 *                               loop sends it and reads the answer with
 *                               jn_oauth_request_parse.
 *   3. jn_token_refresh_finish  one statement: stores the new credentials (or the failure)
 *                               only if the lease is still ours (a fencing check in the
 *                               UPDATE's WHERE); otherwise it stores nothing and says so.
 *
 * Newer is decided without clocks: connections.refresh_seq grows with every stored
 * credential (a refresh, an import, a new OAuth flow). A caller passes the seq of the
 * credentials it saw (jn_connection_t.refresh_seq: the proxy, of the credentials that got
 * a 401; a force refresh, of the row it read when its request arrived). When the seq grew
 * since, someone stored newer credentials and the caller takes them (FRESH): that is how
 * concurrent callers coalesce onto one token request. Otherwise a force refresh always asks
 * the provider, however recent the last refresh. Every time comparison (lease expiry, token
 * expiry, backoff) is made in SQL with PostgreSQL's clock.
 *
 * Waiting: a caller that finds a live lease (BUSY) waits for the holder's outcome without
 * a lock: it calls jn_token_refresh_begin again with the same lease (the re-check: one
 * short read) after a timer, or when finish's NOTIFY on JN_TOKEN_REFRESH_CHANNEL (payload:
 * the connection row id) arrives, for at most lease->wait_ms in all. The re-check answers
 * FRESH (the holder stored credentials), FAILED (the holder's attempt failed), DEAD, or
 * LEASED (the holder's lease expired unused: the caller now holds its own).
 *
 * Failures: an answer that means the grant is gone (jn_oauth_error_t.grant_dead) marks the
 * connection as needing re-authorisation (reauth_required_at); begin then answers DEAD and
 * no refresh is tried until the credentials are replaced (import or OAuth flow). Any other
 * failure is recorded (refresh_error) and retried, by callers that are not forced and by
 * the sweep, only after a growing backoff (30 s, 60 s, … up to 1 h). The old credentials
 * stay in place either way. A recorded failure enqueues the environment's auth webhook
 * (operation "refresh", success false; store/webhooks.h) in the same transaction.
 */
#ifndef JN_TOKEN_REFRESH_H
#define JN_TOKEN_REFRESH_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "core/crypto.h"
#include "core/err.h"
#include "providers/catalog.h"
#include "providers/oauth.h"
#include "store/connections.h"
#include "store/pg.h"

/* Default refresh margin, when the provider does not set token_expiration_buffer. */
#define JN_TOKEN_REFRESH_MARGIN_S 900

/* How long a lease lasts. It outlives a token request (JN_OAUTH_TOKEN_TIMEOUT_MS) and the
 * two database steps around it, so a live holder never loses its lease to a waiter. */
#define JN_TOKEN_REFRESH_LEASE_S 30

/* What a BUSY caller adds to the holder's remaining lease time before giving up. */
#define JN_TOKEN_REFRESH_WAIT_MARGIN_MS 2000

/* The NOTIFY channel finish signals on, with the connection row id as payload. */
#define JN_TOKEN_REFRESH_CHANNEL "junction_token_refresh"

/* seen_seq for a caller that saw no particular credentials. */
#define JN_TOKEN_SEQ_ANY (-1LL)

typedef enum {
    JN_REFRESH_FRESH,      /* credentials newer than the caller's are stored: *current has them */
    JN_REFRESH_LEASED,     /* the caller holds the lease and must ask the provider now */
    JN_REFRESH_BUSY,       /* someone else holds a live lease: re-check within lease->wait_ms */
    JN_REFRESH_DEAD,       /* the grant is dead: re-authorisation needed (lease->why) */
    JN_REFRESH_NOT_NEEDED, /* not forced and not expiring, or not OAuth: *current has them */
    JN_REFRESH_FAILED,     /* the holder we waited for failed (lease->why); *current: the old */
    JN_REFRESH_BACKOFF,    /* expiring, but the last attempt failed and the next is not due
                              yet (lease->why); *current has the old credentials */
} jn_refresh_outcome_t;

/* What finish did. */
typedef enum {
    JN_REFRESH_STORED,     /* the new credentials are stored */
    JN_REFRESH_RECORDED,   /* the failure is recorded (and the grant marked dead if it is) */
    JN_REFRESH_SUPERSEDED, /* the lease was no longer ours: nothing was stored */
} jn_refresh_result_t;

/* A claim on one connection's refresh, and what the token request needs. Zero it (or
 * jn_refresh_lease_init) before the first begin; pass the same one to re-check after BUSY;
 * jn_refresh_lease_cleanup when done. It holds secrets and wipes them. */
typedef struct {
    long long connection_row_id;
    long long seq;     /* refresh_seq when read or leased */
    char lease_id[40]; /* ours when LEASED; the holder's when BUSY */
    int wait_ms;       /* BUSY: the holder's remaining lease time plus a margin */
    char why[512];     /* DEAD, FAILED, BACKOFF: the recorded failure */
    /* LEASED: the token request's inputs (owned). */
    long long env_id;
    char *credentials_type; /* "OAUTH2" or "OAUTH2_CC" */
    char *provider_name;
    json_object *provider;
    json_object *connection_config;
    char *client_id;
    char *client_secret;
    char *refresh_token; /* OAUTH2 only; NULL when the connection has none */
    char *scopes;        /* the integration's, for client credentials */
    char *egress_allowlist;
} jn_refresh_lease_t;

void jn_refresh_lease_init(jn_refresh_lease_t *lease);
void jn_refresh_lease_cleanup(jn_refresh_lease_t *lease);

/* Step 1 (and the re-check after BUSY): decides for the connection with row id
 * connection_row_id. force asks for a refresh whatever the expiry; seen_seq is the seq of
 * the credentials the caller saw (JN_TOKEN_SEQ_ANY for none). Never waits on a row lock:
 * a row another transaction holds answers BUSY (with no holder in lease->lease_id).
 * *current is filled (with credentials) for every outcome but BUSY (jn_connection_cleanup
 * it). JN_ERR_NOT_FOUND when the row is gone; database errors pass through, and nothing is
 * then held. */
jn_err_t jn_token_refresh_begin(PGconn *conn, const jn_crypto_keyring_t *ring,
                                const jn_catalog_t *catalog, long long connection_row_id,
                                bool force, long long seen_seq, jn_refresh_lease_t *lease,
                                jn_connection_t *current, jn_refresh_outcome_t *outcome);

/* Step 2, no database: the token request of a LEASED lease (jn_oauth_request_cleanup it).
 * On failure (a connection without a refresh token, a template that does not resolve)
 * *failure says why; pass it to finish as the outcome. */
jn_err_t jn_token_refresh_request(const jn_refresh_lease_t *lease, jn_oauth_request_t *req,
                                  jn_oauth_error_t *failure);

/* Step 2, blocking: builds the request, sends it under the environment's egress policy,
 * reads the answer. JN_OK with *token filled, or the failure in *failure. */
jn_err_t jn_token_refresh_ask(const jn_refresh_lease_t *lease, jn_oauth_token_t *token,
                              jn_oauth_error_t *failure);

/* Step 3: stores token (failure NULL) or failure (token NULL) if the lease is still ours,
 * and notifies JN_TOKEN_REFRESH_CHANNEL. The new expiry is token->expires_in from
 * PostgreSQL's clock; token_response_metadata is merged into connection_config; a provider
 * that sends no refresh token keeps the old one. *result says what happened; *out (may be
 * NULL) receives the connection as stored now, with credentials. */
jn_err_t jn_token_refresh_finish(PGconn *conn, const jn_crypto_keyring_t *ring,
                                 const jn_refresh_lease_t *lease, const jn_oauth_token_t *token,
                                 const jn_oauth_error_t *failure, jn_refresh_result_t *result,
                                 jn_connection_t *out);

/* The three steps composed for a thread that may block: each database step borrows a
 * connection from pool and gives it back before the provider is asked, and a BUSY wait
 * polls with short reads, for at most the holder's lease plus a margin. Returns in *out
 * (with credentials) the connection after refreshing its token if it expires within the
 * provider's margin, or, if force, unless credentials newer than seen_seq are stored.
 * JN_ERR_INVALID with why when the grant is dead (or the request cannot be built),
 * JN_ERR_UPSTREAM with why when the refresh failed or is backing off after a failure
 * (recorded on the connection; *out is then not filled), JN_ERR_TIMEOUT when another
 * holder outlasted the wait. */
jn_err_t jn_token_refresh(jn_pg_pool_t *pool, const jn_crypto_keyring_t *ring,
                          const jn_catalog_t *catalog, long long connection_row_id, bool force,
                          long long seen_seq, jn_connection_t *out, char *why, size_t why_len);

/* True when c holds OAuth credentials that expire within provider's margin, by
 * PostgreSQL's clock when c was read: the caller then goes through jn_token_refresh();
 * otherwise the credentials it has are good. */
bool jn_token_expiring(const jn_connection_t *c, json_object *provider);

/* Refreshes up to limit connections whose tokens expire within the hour, nearest expiry
 * first, skipping dead grants, connections backing off after a failure, rows leased or
 * locked by someone else. Borrows a pool connection per database step, none while a
 * provider is asked. Counts what it refreshed and what failed. */
jn_err_t jn_token_refresh_sweep(jn_pg_pool_t *pool, const jn_crypto_keyring_t *ring,
                                const jn_catalog_t *catalog, int limit, int *refreshed,
                                int *failed);

#endif
