/*
 * refresh.h - token requests and credential refreshes driven from the event loop, so no
 * thread waits on a token endpoint.
 *
 * jn_token_exchange() sends one OAuth token request (oauth_request.h) through the
 * asynchronous transport (provider_http.h) under an environment's egress policy and reads
 * the answer. jn_refresh_start() drives the three steps of token_refresh.h: the database
 * steps (deciding and leasing, then storing the outcome) on the task pool, the token
 * request on the loop, and, when another process holds the lease, a timer between short
 * re-checks. The callbacks run on the loop.
 */
#ifndef JN_REFRESH_H
#define JN_REFRESH_H

#include <stdbool.h>

#include "core/err.h"
#include "providers/egress.h"
#include "providers/oauth_request.h"
#include "providers/session.h"
#include "store/connections.h"

/* The outcome of a token request: JN_OK with *token (the callee may take its fields; the
 * caller cleans up what is left), or the failure in *e (JN_ERR_UPSTREAM: no answer or a
 * 5xx; JN_ERR_INVALID: refused by the provider or the egress policy). On the loop. */
typedef void (*jn_token_exchange_fn)(jn_err_t err, jn_oauth_token_t *token,
                                     const jn_oauth_error_t *e, void *ud);

/* Sends req (borrowed until done runs) on behalf of environment env_id. Loop thread. */
void jn_token_exchange(jn_provider_http_t *h, long long env_id, const jn_egress_policy_t *egress,
                       const jn_oauth_request_t *req, jn_token_exchange_fn done, void *ud);

/* The outcome of a refresh, on the loop: JN_OK with *c the connection as it is now (with
 * credentials; the callee takes it and cleans it up), or an error with why:
 * JN_ERR_INVALID (the grant is dead), JN_ERR_UPSTREAM (the refresh failed or is backing
 * off; recorded on the connection), JN_ERR_TIMEOUT (another holder outlasted the wait),
 * JN_ERR_BUSY, JN_ERR_DB_UNAVAILABLE, JN_ERR_NOT_FOUND. c is NULL on error. */
typedef void (*jn_refresh_done_fn)(jn_err_t err, jn_connection_t *c, const char *why, void *ud);

/* Refreshes connection row_id's credentials if they are about to expire, or if force
 * unless credentials newer than seen_seq are stored (token_refresh.h). Any thread; done
 * runs on the transport's loop. egress is the connection's environment's policy. */
void jn_refresh_start(const jn_session_deps_t *deps, long long env_id,
                      const jn_egress_policy_t *egress, long long row_id, bool force,
                      long long seen_seq, jn_refresh_done_fn done, void *ud);

#endif
