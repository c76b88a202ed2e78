/*
 * provider_http.h - the one place Junction sends requests to providers (the proxy
 * endpoint now, scripts later), so retries, rate limits and security rules exist once.
 *
 * Transport: libcurl with a shared DNS cache and connection pool, HTTP/2 where the
 * provider offers it, http(s) only, connect and total timeouts, decompression on request,
 * a stall timeout for bodies. Redirects are followed here (up to a limit), each hop under
 * the same checks; credentials are dropped on a redirect to another origin unless asked.
 *
 * Security: the address actually connected to is checked against the egress policy
 * (egress.h) when a socket is opened and again when a pooled connection is reused, so
 * neither DNS tricks nor another environment's pooled connection reach an internal
 * address.
 *
 * Retries: on network errors and on the provider's retryable statuses (proxy.retry.
 * error_code, default 429 and 5xx, plus the caller's Retry-On), and when the remaining-
 * count header reads 0. The wait honours the provider's retry-after and reset-time
 * headers, else exponential backoff with full jitter; the sum of waits is bounded. A 401
 * triggers one credential refresh (through the caller's callback) and one more try.
 * Every attempt is logged and counted (jn_provider_requests_total,
 * jn_provider_retries_total).
 *
 * Responses stream: jn_provider_stream_open() returns once the final status and headers
 * are in; the body is then pulled with jn_provider_stream_read() through a bounded buffer,
 * so a 100 MB download never sits in memory.
 */
#ifndef JN_PROVIDER_HTTP_H
#define JN_PROVIDER_HTTP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "providers/egress.h"
#include "core/err.h"
#include "providers/provider_request.h"

typedef struct jn_provider_http jn_provider_http_t;
typedef struct jn_provider_stream jn_provider_stream_t;

/* Refreshes the connection's credentials after a 401. Returns true and sets
 * *credentials (a new reference the transport keeps until the call ends) when they
 * changed, false otherwise. */
typedef bool (*jn_provider_refresh_fn)(void *ud, json_object **credentials);

typedef struct {
    const char *method;            /* "GET" when NULL */
    const char *endpoint;          /* path (and query) under the base URL */
    const char *query;             /* extra, URL-encoded; may be NULL */
    const char *base_url_override; /* may be NULL */
    const char *const *headers;    /* "Name: value", NULL-terminated; may be NULL */
    const char *body;              /* may be NULL */
    size_t body_len;
    int retries;                      /* attempts after the first, 0..10 */
    const char *retry_on;             /* extra retryable statuses, "502,504"; may be NULL */
    bool decompress;                  /* ask for and decode gzip/deflate/br */
    long timeout_ms;                  /* per attempt, whole transfer; 0 = only the stall timeout */
    long max_total_wait_ms;           /* budget for waits between attempts; 0 = 60 s */
    bool forward_auth_on_redirect;    /* keep credentials on a cross-origin redirect */
    const jn_egress_policy_t *egress; /* required */
    jn_provider_refresh_fn refresh;   /* may be NULL */
    void *refresh_ud;
} jn_provider_call_t;

/* A process-wide transport (shared DNS cache and connection pool). Thread-safe. */
jn_provider_http_t *jn_provider_http_new(void);
void jn_provider_http_free(jn_provider_http_t *h);

/* Sends the call with its retries and returns once the final response's status and
 * headers have arrived. JN_ERR_INVALID (why) when the request cannot be built or the
 * address is refused by the egress policy; JN_ERR_UPSTREAM or JN_ERR_TIMEOUT when no
 * response came after the retries. */
jn_err_t jn_provider_stream_open(jn_provider_http_t *h, const jn_provider_target_t *target,
                                 const jn_provider_call_t *call, jn_provider_stream_t **out,
                                 char *why, size_t why_len);

long jn_provider_stream_status(const jn_provider_stream_t *s);
/* Response headers as "Name: value" (borrowed), in arrival order. */
int jn_provider_stream_header_count(const jn_provider_stream_t *s);
const char *jn_provider_stream_header(const jn_provider_stream_t *s, int i);
/* The value of the first header called name (case-insensitive), or NULL. */
const char *jn_provider_stream_header_get(const jn_provider_stream_t *s, const char *name);
/* Attempts made (1 + retries). */
int jn_provider_stream_attempts(const jn_provider_stream_t *s);

/* Reads up to max body bytes: > 0 bytes read, 0 at the end, -1 on a transfer error. */
long jn_provider_stream_read(jn_provider_stream_t *s, char *buf, size_t max);

/* Ends the transfer (early or not) and frees. NULL is fine. */
void jn_provider_stream_close(jn_provider_stream_t *s);

/* A call whose request body is produced piecewise (a large proxied upload), so it never
 * sits in memory whole. content_length is the body's size, or -1 (sent chunked). Such a
 * call is sent once: a body that streamed cannot be replayed, so there are no retries,
 * redirects or refresh-and-retry. Feed the body with jn_provider_upload_write(), then
 * jn_provider_upload_finish() waits for the answer's status and headers; read the body
 * and close as for jn_provider_stream_open(). */
jn_err_t jn_provider_upload_open(jn_provider_http_t *h, const jn_provider_target_t *target,
                                 const jn_provider_call_t *call, long long content_length,
                                 jn_provider_stream_t **out, char *why, size_t why_len);
/* Sends the next piece; returns once the transfer took it (or the provider already answered). */
jn_err_t jn_provider_upload_write(jn_provider_stream_t *s, const char *data, size_t len);
/* Ends the body and waits for the status and headers. */
jn_err_t jn_provider_upload_finish(jn_provider_stream_t *s, char *why, size_t why_len);

/* A whole response in memory, for small answers (scripts, verification). */
typedef struct {
    long status;
    char *body; /* NUL-terminated */
    size_t body_len;
    jn_provider_stream_t *stream; /* for headers; owned */
} jn_provider_response_t;

/* Opens, reads the body up to max_body bytes (JN_ERR_TOO_LARGE past it), keeps headers. */
jn_err_t jn_provider_fetch(jn_provider_http_t *h, const jn_provider_target_t *target,
                           const jn_provider_call_t *call, size_t max_body,
                           jn_provider_response_t *out, char *why, size_t why_len);
void jn_provider_response_cleanup(jn_provider_response_t *r);

#endif
