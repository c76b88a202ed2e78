/*
 * oauth.h - the OAuth 2 client side of Junction: authorization URLs, PKCE, Nango's
 * credential shapes, and the blocking transport for token requests (authorization code
 * with PKCE, refresh, client credentials).
 *
 * Token requests are built and their answers read by oauth_request.h; here they are sent
 * with libcurl, http(s) only, under the environment's egress policy, with a 15 s timeout
 * and a 1 MiB answer cap. The blocking functions suit a thread that may wait; an event
 * loop sends the same jn_oauth_request_t with its own client.
 */
#ifndef JN_OAUTH_H
#define JN_OAUTH_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "providers/egress.h"
#include "providers/oauth_request.h"

/* How long a blocking token request may take, connecting included. A refresh lease
 * (token_refresh.h) outlives it. */
#define JN_OAUTH_TOKEN_TIMEOUT_MS 15000L

/* Builds the provider's authorization URL. scopes is comma-separated (the integration's)
 * or NULL for the provider's default_scopes; code_challenge NULL means no PKCE.
 * *url is a new string. JN_ERR_INVALID (with why) when a template cannot be resolved,
 * e.g. a connection_config value the user did not give. */
jn_err_t jn_oauth_authorize_url(json_object *provider, const char *client_id, const char *scopes,
                                json_object *connection_config, const char *redirect_uri,
                                const char *state, const char *code_challenge, char **url,
                                char *why, size_t why_len);

/* Sends req (blocking) under egress and reads the answer (jn_oauth_request_parse). On
 * failure *e says why and out is untouched: JN_ERR_UPSTREAM when no answer came or the
 * provider failed (worth retrying later), JN_ERR_INVALID when refused. */
jn_err_t jn_oauth_send(const jn_oauth_request_t *req, const jn_egress_policy_t *egress,
                       jn_oauth_token_t *out, jn_oauth_error_t *e);

/* Build, send and read in one call. On failure *err says why; out is untouched. */
jn_err_t jn_oauth_exchange_code(json_object *provider, const jn_oauth_client_t *client,
                                json_object *connection_config, const char *code,
                                const char *redirect_uri, const char *code_verifier,
                                jn_oauth_token_t *out, jn_oauth_error_t *err);
jn_err_t jn_oauth_refresh(json_object *provider, const jn_oauth_client_t *client,
                          json_object *connection_config, const char *refresh_token,
                          jn_oauth_token_t *out, jn_oauth_error_t *err);
jn_err_t jn_oauth_client_credentials(json_object *provider, const jn_oauth_client_t *client,
                                     json_object *connection_config, const char *scopes,
                                     jn_oauth_token_t *out, jn_oauth_error_t *err);

/* Nango's credential shapes: {"type":"OAUTH2","access_token","refresh_token","expires_at",
 * "raw"} or, for type OAUTH2_CC, {"type","token","expires_at","client_id","client_secret",
 * "raw"}. New object. */
json_object *jn_oauth_credentials(const jn_oauth_token_t *t, const char *type,
                                  const jn_oauth_client_t *client);

/* The PKCE pair: a random verifier (43+ chars) and its S256 challenge. */
void jn_oauth_pkce(char verifier[64], char challenge[64]);

#endif
