/*
 * provider_http.h - the one place Junction sends requests to providers (the proxy, scripts,
 * OAuth token requests, credential checks), so retries, rate limits, timeouts and security
 * rules exist once.
 *
 * Asynchronous: every transfer runs on one event loop (loop.h) through libcurl's multi
 * socket interface, so a thousand calls waiting on slow providers cost memory, not
 * threads, and a retry's backoff is a timer, never a sleep. Callbacks run on the loop.
 * Threads other than the loop's use jn_provider_fetch(), which runs a call on the loop
 * and waits for its whole answer.
 *
 * Isolation: each environment has its own connection pool (a curl multi handle), so no
 * environment ever sends a request over a connection another one opened; DNS answers and
 * TLS sessions are shared. Each environment may have at most a configured number of
 * calls in flight; more wait in a bounded queue, and past it a call fails with JN_ERR_BUSY.
 *
 * Transport: http(s) only, proxies from the process environment ignored, connect and
 * headers timeouts per attempt, an optional whole-transfer timeout, a stall timeout for
 * bodies, an optional absolute deadline for the whole call (scripts' wall-clock limit),
 * decompression on request. Redirects are followed here (up to a limit), each hop under
 * the same checks; on a hop to another origin the request is rebuilt without credentials
 * (and only harmless caller headers are kept) unless the caller asks to forward them.
 *
 * Security: the address actually connected to is checked against the environment's
 * egress policy (egress.h) when a socket is opened and again when a connection is reused.
 *
 * Retries: on network errors and timeouts, on the provider's retryable statuses
 * (proxy.retry.error_code, default 429 and 5xx, plus the caller's retry_on), and when the
 * remaining-count header reads 0. The wait honours the provider's retry-after and
 * reset-time headers, else exponential backoff with full jitter; the sum of waits is
 * bounded. A 401 asks the caller's refresh function for new credentials once and tries
 * again. Every attempt is logged and counted (jn_provider_requests_total,
 * jn_provider_retries_total).
 *
 * Bodies stream both ways through bounded buffers: a slow reader pauses the provider, a
 * slow provider pauses the uploader.
 */
#ifndef JN_PROVIDER_HTTP_H
#define JN_PROVIDER_HTTP_H

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/loop.h"
#include "providers/egress.h"
#include "providers/provider_request.h"

typedef struct jn_provider_http jn_provider_http_t;
typedef struct jn_provider_stream jn_provider_stream_t;

/* Returned by jn_provider_stream_read when no body bytes are ready yet. */
#define JN_PROVIDER_AGAIN (-2)

/* Hands new credentials to a call after a refresh: creds is a new object the call owns,
 * or NULL when the refresh failed or changed nothing. Loop thread. */
typedef void (*jn_provider_refresh_done_fn)(jn_provider_stream_t *s, json_object *creds);

/* Refreshes the connection's credentials after a 401; calls done exactly once, on the loop
 * (later, or before returning). Runs on the loop and must not block. */
typedef void (*jn_provider_refresh_fn)(void *ud, jn_provider_stream_t *s,
                                       jn_provider_refresh_done_fn done);

typedef struct {
    const char *method;            /* "GET" when NULL */
    const char *endpoint;          /* path (and query) under the base URL, percent-encoded */
    const char *url;               /* instead of target and endpoint: an absolute URL (OAuth) */
    const char *query;             /* extra, URL-encoded; may be NULL */
    const char *base_url_override; /* may be NULL */
    const char *const *headers;    /* "Name: value", NULL-terminated; may be NULL */
    const char *body;              /* may be NULL; copied */
    size_t body_len;
    int retries;                      /* attempts after the first, 0..10 */
    const char *retry_on;             /* extra retryable statuses, "502,504"; may be NULL */
    bool decompress;                  /* ask for and decode gzip/deflate/br */
    long timeout_ms;                  /* per attempt, whole transfer; 0 = only the stall timeout */
    long headers_timeout_ms;          /* per attempt, until the headers; 0 = the transport's */
    uint64_t deadline_ms;             /* the whole call must end by then (loop clock); 0 = none */
    long max_total_wait_ms;           /* budget for waits between attempts; 0 = 60 s */
    bool forward_auth_on_redirect;    /* keep credentials on a cross-origin redirect */
    bool no_redirects;                /* a 3xx is the answer: never follow it (webhooks) */
    bool upload;                      /* the body is fed with jn_provider_upload_write() */
    long long upload_length;          /* with upload: the size, or -1 (sent chunked) */
    const jn_egress_policy_t *egress; /* may be NULL: no extra internal addresses allowed */
    bool anonymous;                   /* sessions: send no credentials (a script calling a host
                                         other than the provider's) */
    jn_provider_refresh_fn refresh;   /* may be NULL */
    void *refresh_ud;
    /* jn_provider_fetch only: when either is set (from any thread), the call is abandoned
     * within moments and the fetch returns JN_ERR_TIMEOUT. Each may be NULL. */
    const atomic_bool *stop[2];
} jn_provider_call_t;

typedef struct {
    jn_loop_t *loop;           /* required: every transfer runs on it */
    int max_in_flight_per_env; /* default 512 */
    int max_queued_per_env;    /* default 4096 */
    long connect_timeout_ms;   /* default 10 s */
    long headers_timeout_ms;   /* default 60 s */
    long stall_timeout_ms;     /* no body byte for this long ends a transfer; default 60 s */
} jn_provider_http_options_t;

/* A transport on opts->loop. Aborts when out of memory. */
jn_provider_http_t *jn_provider_http_new(const jn_provider_http_options_t *opts);

/* Frees the transport; every call must be closed. From a thread other than the loop's,
 * while the loop still runs. NULL is fine. */
void jn_provider_http_free(jn_provider_http_t *h);

jn_loop_t *jn_provider_http_loop(const jn_provider_http_t *h);

/* Called once, on the loop: when the final answer's status and headers are in (err
 * JN_OK), or when the call failed: JN_ERR_INVALID (why) when the request cannot be built or
 * the address is refused by the egress policy, JN_ERR_UPSTREAM or JN_ERR_TIMEOUT when no
 * answer came after the retries, JN_ERR_BUSY when the environment's queue is full. The
 * stream stays the caller's to close either way. */
typedef void (*jn_provider_head_fn)(jn_provider_stream_t *s, jn_err_t err, const char *why,
                                    void *ud);

/* Starts a call on behalf of environment env_id. Loop thread only. target (and what it
 * points to) and call's strings are borrowed until on_head has run, except call->body,
 * which is copied; target->provider and credentials until the stream is closed. *out is
 * the stream, the caller's to close with jn_provider_stream_close() after on_head (or
 * earlier, to abandon the call: on_head then never runs). */
void jn_provider_start(jn_provider_http_t *h, long long env_id, const jn_provider_target_t *target,
                       const jn_provider_call_t *call, jn_provider_head_fn on_head, void *ud,
                       jn_provider_stream_t **out);

long jn_provider_stream_status(const jn_provider_stream_t *s);
/* Response headers as "Name: value" (borrowed), in arrival order (64 KiB in all). */
int jn_provider_stream_header_count(const jn_provider_stream_t *s);
const char *jn_provider_stream_header(const jn_provider_stream_t *s, int i);
/* The value of the first header called name (case-insensitive), or NULL. */
const char *jn_provider_stream_header_get(const jn_provider_stream_t *s, const char *name);
/* Attempts made (1 + retries). */
int jn_provider_stream_attempts(const jn_provider_stream_t *s);

/* Reads up to max body bytes: > 0 bytes read, 0 at the end, -1 on a transfer error,
 * JN_PROVIDER_AGAIN when nothing is ready (on_data is called when there is). Loop only. */
long jn_provider_stream_read(jn_provider_stream_t *s, char *buf, size_t max);

/* Sets what is called (on the loop) when body bytes, the end or an error become readable
 * after a read said JN_PROVIDER_AGAIN, and, for uploads, when the upload buffer has room
 * again. fn may be NULL. */
void jn_provider_stream_on_data(jn_provider_stream_t *s, void (*fn)(void *ud), void *ud);

/* Feeds an upload's body: returns how many bytes were taken (fewer when the buffer is full:
 * wait for on_data). Loop only. */
size_t jn_provider_upload_write(jn_provider_stream_t *s, const char *data, size_t len);
/* Ends an upload's body. */
void jn_provider_upload_end(jn_provider_stream_t *s);

/* Ends the call (early or not) and frees the stream. Loop only. NULL is fine. */
void jn_provider_stream_close(jn_provider_stream_t *s);

/* ---- from other threads ---- */

/* A whole answer in memory. */
typedef struct {
    long status;
    char *body; /* NUL-terminated */
    size_t body_len;
    char **headers; /* "Name: value", header_count of them */
    int header_count;
    int attempts;
} jn_provider_response_t;

/* Runs the call on the loop and waits for the whole answer (from a thread that is not the
 * loop's). The body is read up to max_body bytes: JN_ERR_TOO_LARGE past it (out->status
 * still holds the answer's status; nothing else is kept). target must stay valid until it
 * returns. */
jn_err_t jn_provider_fetch(jn_provider_http_t *h, long long env_id,
                           const jn_provider_target_t *target, const jn_provider_call_t *call,
                           size_t max_body, jn_provider_response_t *out, char *why, size_t why_len);

/* The value of the first header called name in a fetched answer, or NULL. */
const char *jn_provider_response_header(const jn_provider_response_t *r, const char *name);

void jn_provider_response_cleanup(jn_provider_response_t *r);

#endif
