/*
 * token_refresh.h - keeping OAuth access tokens fresh, once, across every process.
 *
 * A refresh takes the connection's row lock (SELECT … FOR UPDATE) for the length of the
 * token request, so any number of gateways, workers and schedulers asking at once cause
 * exactly one request to the provider: the others wait on the lock, then see that the
 * credentials were refreshed (or that the refresh failed) after they asked, and use that
 * outcome. A new refresh token is stored in the same UPDATE as the new access token; a
 * provider that sends none keeps the old one. A failure is recorded on the connection
 * (refresh_error) and leaves the old credentials in place for a later retry.
 */
#ifndef JN_TOKEN_REFRESH_H
#define JN_TOKEN_REFRESH_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "providers/catalog.h"
#include "store/connections.h"
#include "core/crypto.h"
#include "core/err.h"

/* force_refresh callers share a refresh done this many seconds before they asked: twenty
 * concurrent "refresh now" calls (whose requests may queue for a while) cost the provider
 * one token request, and the token they get is at most this old. */
#define JN_TOKEN_REFRESH_COALESCE_S 5

/* Default refresh margin, when the provider does not set token_expiration_buffer. */
#define JN_TOKEN_REFRESH_MARGIN_S 900

/* Returns in *out (with credentials) the connection whose row id is connection_row_id,
 * after refreshing its token if it expires within the provider's margin, or if force and
 * nobody refreshed it since requested_at (unix seconds, when the caller was asked).
 * JN_ERR_UPSTREAM or JN_ERR_INVALID with why when the refresh failed (recorded on the
 * connection; *out is then not filled). */
jn_err_t jn_token_refresh(PGconn *conn, const jn_crypto_keyring_t *ring,
                          const jn_catalog_t *catalog, long long connection_row_id, bool force,
                          double requested_at, jn_connection_t *out, char *why, size_t why_len);

/* True when c holds OAuth credentials that expire within provider's margin: the caller
 * then goes through jn_token_refresh(); otherwise the credentials it has are good. */
bool jn_token_expiring(const jn_connection_t *c, json_object *provider);

/* Refreshes up to limit connections whose tokens expire within the next hour and whose
 * last failure (if any) is older than five minutes. Rows locked by another refresher are
 * skipped. Returns how many were refreshed in *refreshed and failed in *failed. */
jn_err_t jn_token_refresh_sweep(PGconn *conn, const jn_crypto_keyring_t *ring,
                                const jn_catalog_t *catalog, int limit, int *refreshed,
                                int *failed);

#endif
