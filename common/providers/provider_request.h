/*
 * provider_request.h - how a request to a provider is built from its catalog entry and
 * a connection: the base URL (template or Base-Url-Override), the endpoint and query,
 * the provider's default headers and query parameters (templates), and the credentials
 * injected for the auth mode (Bearer token, Basic, API key templates).
 *
 * Caller headers override the provider's defaults, except those that carry credentials.
 * A header or parameter whose template cannot be resolved is left out, as documented in
 * docs/providers.md; a base URL that cannot be resolved is an error.
 */
#ifndef JN_PROVIDER_REQUEST_H
#define JN_PROVIDER_REQUEST_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JN_PROVIDER_MAX_HEADERS 128        /* headers of one request, provider's and caller's */
#define JN_PROVIDER_MAX_HEADER_BYTES 65536 /* bytes of one "Name: value" line */

/* A provider and one connection to it; all borrowed. credentials may be NULL (NONE). */
typedef struct {
    const char *provider_name;
    json_object *provider;
    json_object *credentials;
    json_object *connection_config;
} jn_provider_target_t;

typedef struct {
    char *url;
    int header_count;
    char **headers;   /* header_count lines "Name: value", owned */
    bool *credential; /* credential[i]: headers[i] carries a credential */
    int header_cap;   /* allocated entries of headers and credential */
} jn_built_request_t;

/* Builds the URL and headers. endpoint is a path ("/v1/items", leading slash optional) and
 * may carry its own query; query (already URL-encoded "a=1&b=2") may be NULL;
 * caller_headers is a NULL-terminated list of "Name: value" or NULL. The connection's
 * config is checked first (jn_connection_config_check, JN_CONNCFG_VALUES): a stored value
 * the provider does not admit builds nothing. Headers live in arrays that grow up to
 * JN_PROVIDER_MAX_HEADERS; no credential is ever cut to fit. Errors (why says which):
 * JN_ERR_INVALID for a caller header with CR or LF or without a colon, a provider header
 * or parameter whose value holds a line break, a config value refused, an unresolvable
 * base URL; JN_ERR_TOO_LARGE for more than JN_PROVIDER_MAX_HEADERS headers or a header
 * line (such as a credential) longer than JN_PROVIDER_MAX_HEADER_BYTES. On error out
 * holds nothing to clean up. */
jn_err_t jn_provider_build(const jn_provider_target_t *t, const char *base_url_override,
                           const char *endpoint, const char *query,
                           const char *const *caller_headers, jn_built_request_t *out, char *why,
                           size_t why_len);

/* Wipes and frees what jn_provider_build made; out is zeroed. */
void jn_built_request_cleanup(jn_built_request_t *r);

#endif
