/*
 * oauth_request.h - OAuth 2 token requests as data: building one from a provider entry
 * (docs/providers.md) and reading the token endpoint's answer. No I/O here, so the same
 * request can go out through the blocking transport (oauth.h) or an event loop's
 * asynchronous HTTP client, and the answer is read the same way either way.
 *
 * A request is the token (or refresh) URL with its templates resolved, the headers and the
 * body (form or JSON, per token_request_body_format), with the client authenticated per
 * token_request_auth_method: client_id and client_secret in the body, or an
 * "Authorization: Basic" header. The body and that header hold secrets: the request wipes
 * them when cleaned up. Errors say what the provider answered ("error" and
 * "error_description"), never the secrets that were sent.
 */
#ifndef JN_OAUTH_REQUEST_H
#define JN_OAUTH_REQUEST_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "providers/egress.h"

/* Largest token endpoint answer read. */
#define JN_OAUTH_MAX_ANSWER (1024 * 1024)

typedef struct {
    char *access_token;
    char *refresh_token;  /* NULL when the provider sent none */
    long long expires_in; /* seconds from the answer, 0 when the token does not expire */
    long long expires_at; /* unix seconds by the local clock, 0 when none; a store that
                             compares it with PostgreSQL's clock uses expires_in instead */
    json_object *raw;     /* the provider's whole answer */
} jn_oauth_token_t;

typedef struct {
    const char *client_id;
    const char *client_secret;
    const jn_egress_policy_t *egress; /* where token requests may go (the blocking transport) */
} jn_oauth_client_t;

/* Why a token request failed, for the caller to record on the connection. */
typedef struct {
    char message[512];
    int http_status; /* 0 when no answer came */
    /* The grant is gone and retrying will not help; the end user must authorise again.
     * Set for the OAuth error codes invalid_grant, invalid_refresh_token, token_revoked
     * and token_expired (RFC 6749 §5.2 and the variants providers use), for a connection
     * without a refresh token, and, for the client-credentials grant (where the client's
     * credentials are the grant), for invalid_client and unauthorized_client. */
    bool grant_dead;
} jn_oauth_error_t;

typedef enum {
    JN_OAUTH_GRANT_CODE,
    JN_OAUTH_GRANT_REFRESH,
    JN_OAUTH_GRANT_CLIENT_CREDENTIALS,
} jn_oauth_grant_t;

#define JN_OAUTH_MAX_HEADERS 4

/* A token request ready to send: POST body to url with these headers. */
typedef struct {
    jn_oauth_grant_t grant;
    char *url;
    char *headers[JN_OAUTH_MAX_HEADERS]; /* "Name: value" lines */
    int header_count;
    char *body; /* holds secrets */
    size_t body_len;
} jn_oauth_request_t;

/* Builders. On success *req is filled (jn_oauth_request_cleanup it); on failure (a template
 * that does not resolve, a missing token_url) JN_ERR_INVALID with *e saying why, and *req
 * holds nothing. */
jn_err_t jn_oauth_request_code(json_object *provider, const jn_oauth_client_t *client,
                               json_object *connection_config, const char *code,
                               const char *redirect_uri, const char *code_verifier,
                               jn_oauth_request_t *req, jn_oauth_error_t *e);
jn_err_t jn_oauth_request_refresh(json_object *provider, const jn_oauth_client_t *client,
                                  json_object *connection_config, const char *refresh_token,
                                  jn_oauth_request_t *req, jn_oauth_error_t *e);
/* scopes: the integration's comma-separated scopes, or NULL for the provider's defaults. */
jn_err_t jn_oauth_request_client_credentials(json_object *provider, const jn_oauth_client_t *client,
                                             json_object *connection_config, const char *scopes,
                                             jn_oauth_request_t *req, jn_oauth_error_t *e);

/* Frees the request, wiping its body and headers. */
void jn_oauth_request_cleanup(jn_oauth_request_t *req);

/* Reads the token endpoint's answer to req: HTTP status and body (body may be NULL when
 * there was none). JN_OK with *out filled (jn_oauth_token_cleanup it); otherwise *e says
 * why, *out is untouched, and the code tells whose fault it is: JN_ERR_UPSTREAM for a
 * 5xx (worth retrying later), JN_ERR_INVALID for a refusal. */
jn_err_t jn_oauth_request_parse(const jn_oauth_request_t *req, long status, const char *body,
                                size_t body_len, jn_oauth_token_t *out, jn_oauth_error_t *e);

/* Fills *e for a token request that got no answer (a network failure, a refused
 * address, an oversized answer) and returns the matching code: JN_ERR_UPSTREAM, or
 * JN_ERR_INVALID when refused is true (the egress policy said no). */
jn_err_t jn_oauth_request_failed(jn_oauth_error_t *e, bool refused, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees and wipes the token. */
void jn_oauth_token_cleanup(jn_oauth_token_t *t);

/* The connection_config template lookup used in token URLs and parameters
 * (${connectionConfig.<key>}); ud is the config object. */
const char *jn_oauth_config_lookup(const char *name, void *ud);

/* Renders the provider's URL template field with config; it must resolve completely.
 * *out is a new string; JN_ERR_INVALID with why otherwise. */
jn_err_t jn_oauth_render_url(json_object *provider, const char *field, json_object *config,
                             char **out, char *why, size_t why_len);

/* The scope parameter: the integration's comma-separated scopes, or the provider's
 * default_scopes, joined with the provider's scope_separator. New string ("" when none). */
char *jn_oauth_join_scopes(json_object *provider, const char *scopes);

#endif
