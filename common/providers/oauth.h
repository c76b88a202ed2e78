/*
 * oauth.h - the OAuth 2 client side of Junction: authorization URLs and token requests
 * (authorization code with PKCE, refresh, client credentials), built from a provider
 * entry (docs/providers.md) and a connection's config.
 *
 * Token requests use libcurl with http(s) only, a 15 s timeout and a 1 MiB answer cap.
 * Errors say what the provider answered (its "error" and "error_description"), never
 * the secrets that were sent.
 */
#ifndef JN_OAUTH_H
#define JN_OAUTH_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "providers/egress.h"
#include "core/err.h"

typedef struct {
    char *access_token;
    char *refresh_token;  /* NULL when the provider sent none */
    long long expires_at; /* unix seconds, 0 when the token does not expire */
    json_object *raw;     /* the provider's whole answer */
} jn_oauth_token_t;

typedef struct {
    const char *client_id;
    const char *client_secret;
    const jn_egress_policy_t *egress; /* where token requests may go (required) */
} jn_oauth_client_t;

/* Why a token request failed, for the caller to record on the connection. */
typedef struct {
    char message[512];
    int http_status;    /* 0 when no answer came */
    bool invalid_grant; /* the grant is dead (revoked, expired): retrying will not help */
} jn_oauth_error_t;

/* Builds the provider's authorization URL. scopes is comma-separated (the integration's)
 * or NULL for the provider's default_scopes; code_challenge NULL means no PKCE.
 * *url is a new string. JN_ERR_INVALID (with why) when a template cannot be resolved,
 * e.g. a connection_config value the user did not give. */
jn_err_t jn_oauth_authorize_url(json_object *provider, const char *client_id, const char *scopes,
                                json_object *connection_config, const char *redirect_uri,
                                const char *state, const char *code_challenge, char **url,
                                char *why, size_t why_len);

/* Token requests. On failure *err says why; out is untouched. */
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

/* Frees and wipes the token. */
void jn_oauth_token_cleanup(jn_oauth_token_t *t);

/* The PKCE pair: a random verifier (43+ chars) and its S256 challenge. */
void jn_oauth_pkce(char verifier[64], char challenge[64]);

#endif
