/*
 * fake_provider.h - what the parts of the fake_provider test tool share.
 *
 * fake_provider stands in for an external API (an OAuth 2 server and a paged REST API)
 * in integration tests. It is split by responsibility:
 *   fake_provider.c        the program: command line, signals, state lifecycle
 *   fake_provider_admin.c  /_admin: knobs, clients, API keys, revocation, stats, reset
 *   fake_provider_oauth.c  /oauth/authorize and /oauth/token
 *   fake_provider_api.c    /api: auth, failure and rate-limit gates, pagination, streams
 *   fake_provider_edge.c   /api: what arrived, many headers, a call that never answers
 * All mutable state lives in one jn_fake_t guarded by its mutex: handlers run on the
 * HTTP server's thread pool. Nothing sleeps while holding the mutex. Everything is
 * deterministic except the random codes and tokens.
 */
#ifndef JN_FAKE_PROVIDER_H
#define JN_FAKE_PROVIDER_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/http_server.h"

#define JN_FAKE_CLIENT_ID "test-client"
#define JN_FAKE_CLIENT_SECRET "test-secret"
#define JN_FAKE_CODE_TTL_MS (10 * 60 * 1000)
#define JN_FAKE_TOKEN_MAX 96 /* longest code/token/secret value we store, with its NUL */

/* A registered OAuth client or an API key (secret unused). */
typedef struct jn_fake_client {
    struct jn_fake_client *next;
    char *id;
    char *secret;
} jn_fake_client_t;

/* An authorization code issued by /oauth/authorize. */
typedef struct jn_fake_code {
    struct jn_fake_code *next;
    char code[JN_FAKE_TOKEN_MAX];
    char *client_id, *redirect_uri, *challenge, *challenge_method, *scope;
    int64_t expires_at_ms; /* monotonic */
    bool used;
} jn_fake_code_t;

/* An access or refresh token. */
typedef struct jn_fake_token {
    struct jn_fake_token *next;
    char value[JN_FAKE_TOKEN_MAX];
    char *client_id, *scope;
    int64_t expires_at_ms; /* monotonic; 0 = never */
    bool refresh;
    bool revoked;
} jn_fake_token_t;

typedef struct {
    int64_t count;
    int status;
    json_object *headers; /* owned: name -> string */
    char *body;
    char *content_type;
} jn_fake_fail_next_t;

typedef struct {
    bool on;
    int64_t limit, window_ms;
    char reset_header[64], remaining_header[64];
    bool retry_after;
} jn_fake_rate_limit_t;

/* The knobs set by POST /_admin/config; jn_fake_knobs_default gives the start values. */
typedef struct {
    int64_t expires_in; /* seconds; 0 = tokens never expire and expires_in is omitted */
    bool rotate_refresh_tokens;
    bool issue_refresh_token;
    bool require_pkce;
    bool deny;
    int64_t token_latency_ms;
    int64_t fail_token_requests;
    json_object *extra_token_fields; /* owned object or NULL */
    int64_t items_count;
    /* Upstream changes to the items: from version 1 on, every third item's name carries
     * the version (an update); every items_delete_every-th item is gone (0: none);
     * items_reverse_keys sends each item's fields in reverse order (no change in
     * content); a page starting at or past items_fail_from_offset answers 500 (-1: never). */
    int64_t items_version;
    int64_t items_delete_every;
    bool items_reverse_keys;
    int64_t items_fail_from_offset;
    int64_t latency_ms;
    jn_fake_fail_next_t fail_next; /* count 0 = off */
    jn_fake_rate_limit_t rate_limit;
    bool require_auth;
} jn_fake_knobs_t;

typedef struct {
    pthread_mutex_t mu;
    uint16_t port;    /* set once the server listens */
    atomic_bool stop; /* set on shutdown: streams end early */

    jn_fake_knobs_t knobs;
    jn_fake_client_t *clients;
    jn_fake_client_t *api_keys;
    jn_fake_code_t *codes;
    jn_fake_token_t *tokens;

    int64_t window_start_ms; /* rate limit: current window (monotonic), requests in it */
    int64_t window_used;

    int64_t authorize_requests;
    int64_t token_requests;
    json_object *token_requests_by_grant; /* grant -> int */
    int64_t api_requests;
    json_object *api_requests_by_path; /* path -> int */
    json_object *last_token_request;   /* NULL until the first one */

    int64_t hangs_started; /* /api/hang requests received; kept across resets */
    int64_t hangs_open;    /* of them, not yet let go (the client is still there) */

    jn_fake_client_t *interned; /* strings that live until exit (kept across resets) */
} jn_fake_t;

/* State lifecycle (fake_provider.c). reset returns to the state after init; call with
 * the mutex held (or before any thread runs). */
void jn_fake_init(jn_fake_t *fp);
void jn_fake_reset(jn_fake_t *fp);
void jn_fake_cleanup(jn_fake_t *fp);
void jn_fake_knobs_default(jn_fake_knobs_t *k);
void jn_fake_knobs_cleanup(jn_fake_knobs_t *k);

/* Adds (or updates the secret of) a client; api keys use secret NULL. */
void jn_fake_client_put(jn_fake_client_t **list, const char *id, const char *secret);
const jn_fake_client_t *jn_fake_client_find(const jn_fake_client_t *list, const char *id);

/* Route registration, one per part. */
void jn_fake_routes_admin(jn_fake_t *fp, jn_http_server_t *srv);
void jn_fake_routes_oauth(jn_fake_t *fp, jn_http_server_t *srv);
void jn_fake_routes_api(jn_fake_t *fp, jn_http_server_t *srv);
/* Before jn_fake_routes_api, whose catch-all route under /api would hide these. */
void jn_fake_routes_edge(jn_fake_t *fp, jn_http_server_t *srv);

/* Small shared helpers (fake_provider.c). */
int64_t jn_fake_now_ms(void); /* monotonic */
void jn_fake_sleep_ms(int64_t ms);
/* Writes prefix followed by 32 random hex digits into out (JN_FAKE_TOKEN_MAX bytes). */
void jn_fake_random_value(const char *prefix, char out[JN_FAKE_TOKEN_MAX]);
/* Adds 1 to the integer at key of a counter map. */
void jn_fake_count(json_object *map, const char *key);
/* The request's headers (names lowercased, repeats joined with ", ") or query arguments
 * (a repeated one becomes an array) as a new object. */
json_object *jn_fake_request_headers(const jn_http_request_t *req);
json_object *jn_fake_request_query(const jn_http_request_t *req);
/* Parses the body as a JSON object; on failure answers 400 and returns NULL. */
json_object *jn_fake_body_object(const jn_http_request_t *req, jn_http_response_t *res);
/* {"error":error,"error_description":description} (description may be NULL). */
void jn_fake_respond_oauth_error(jn_http_response_t *res, int status, const char *error,
                                 const char *description);
/* A copy of s that lives as long as the process, for values the HTTP server keeps after
 * the handler returns (a response's content type). Call with the mutex held. */
const char *jn_fake_intern(jn_fake_t *fp, const char *s);
/* Duplicates s; aborts when out of memory. NULL stays NULL. */
char *jn_fake_strdup(const char *s);

#endif
