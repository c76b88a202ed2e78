/*
 * webhook_spec.h - how a provider sends webhooks, as its catalog entry's "webhook" section
 * declares it (docs/providers.md#webhook): how each one is signed, where its timestamp is,
 * how its payload is routed to connections, what its event type is, which of its headers a
 * script receives, and the subscription check it may send first.
 *
 * The section is checked with the rest of the entry (jn_webhook_spec_check, called by the
 * catalog's validator, so built-in and custom providers obey the same rules) and read into
 * a jn_webhook_spec_t whose strings are borrowed from the entry. Signatures are checked
 * here too (jn_webhook_verify): the gateway calls it for every webhook it receives, before
 * it stores anything, so everything it does is bounded by the request (its body is capped
 * by the route, its header by the server) and the comparison takes a time that does not
 * depend on the secret.
 *
 * Schemes, each with a secret the integration holds:
 *   hmac-sha256  the header holds HMAC-SHA256(secret, payload) in hex or base64, after an
 *                optional prefix ("sha256="), or as the value of a key in a list of
 *                key=value pairs (Stripe's "t=...,v1=..."); payload is a template over
 *                ${body} (the raw bytes received), ${timestamp}, ${method} and ${url}. A
 *                signed timestamp must lie within tolerance_seconds of now (replays).
 *   token        the header holds the secret itself, after an optional prefix (GitLab).
 * A provider may instead declare itself unsigned ("unsigned": true): its webhooks are
 * taken on trust (docs say what that costs).
 */
#ifndef JN_WEBHOOK_SPEC_H
#define JN_WEBHOOK_SPEC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/json_util.h"

#define JN_WEBHOOK_HEADERS_MAX 16        /* entries of "headers" */
#define JN_WEBHOOK_PAIRS_MAX 16          /* key=value pairs read from a signature header */
#define JN_WEBHOOK_TOLERANCE_DEFAULT 300 /* seconds */
#define JN_WEBHOOK_TOLERANCE_MAX 3600

typedef enum { JN_WEBHOOK_UNSIGNED, JN_WEBHOOK_HMAC_SHA256, JN_WEBHOOK_TOKEN } jn_webhook_scheme_t;

typedef enum {
    JN_WEBHOOK_TS_SECONDS,
    JN_WEBHOOK_TS_MILLISECONDS,
    JN_WEBHOOK_TS_ISO8601
} jn_webhook_ts_unit_t;

/* A provider's webhook section, read. Strings are borrowed from the entry it was read
 * from; NULL when not declared. */
typedef struct {
    jn_webhook_scheme_t scheme;
    const char *header;    /* the signature's (or token's) header, lowercase */
    const char *prefix;    /* text before the signature or token; "" when none */
    bool base64;           /* hmac-sha256: base64, else hex */
    const char *pairs;     /* hmac-sha256: the header is key=value pairs; the signatures are
                              the values of this key */
    const char *payload;   /* hmac-sha256: what is signed, a template ("${body}") */
    const char *ts_header; /* the timestamp's header, or */
    const char *ts_pair;   /* its key among the signature header's pairs */
    jn_webhook_ts_unit_t ts_unit;
    int tolerance_s;
    const char *route_path;       /* dot path into the payload; NULL: no routing */
    const char *route_config_key; /* the connection_config key it is matched against;
                                     NULL: the connection id */
    const char *event_path;       /* the event type: a dot path into the payload, or */
    const char *event_header;     /* a header */
    json_object *headers;         /* array of header names (a trailing '*' ends a prefix) */
    /* A subscription check the provider sends (Slack's url_verification): when the string
     * at challenge_path equals challenge_equals, the answer is the string at
     * challenge_answer, and nothing is recorded. */
    const char *challenge_path, *challenge_equals, *challenge_answer;
} jn_webhook_spec_t;

/* Checks entry's "webhook" section (nothing to check when it has none): JN_ERR_INVALID with
 * e naming the field ("webhook.signature.encoding") and the problem. Thread-safe. */
jn_err_t jn_webhook_spec_check(json_object *entry, jn_field_error_t *e);

/* Reads entry's webhook section (checking it first) into out. JN_ERR_NOT_FOUND when the
 * provider declares none (it does not send webhooks Junction receives), JN_ERR_INVALID when
 * it is malformed. */
jn_err_t jn_webhook_spec_read(json_object *entry, jn_webhook_spec_t *out);

/* The request to verify: all borrowed. header(name, ud) returns a request header's value
 * (name lowercase) or NULL. */
typedef struct {
    const char *method;
    const char *url; /* the URL the provider posted to: the gateway's public URL, the path
                        and the query as sent */
    const char *body;
    size_t body_len;
    const char *(*header)(const char *name, void *ud);
    void *ud;
    long long now; /* unix seconds */
} jn_webhook_request_t;

/* Verifies req against spec with the integration's secret (secret_len bytes; NULL when the
 * integration has none). JN_OK when it is authentic (or the provider is unsigned);
 * JN_ERR_INVALID otherwise, why saying what was wrong (missing header, no secret, stale
 * timestamp, signature mismatch) without any secret or signature in it. */
jn_err_t jn_webhook_verify(const jn_webhook_spec_t *spec, const char *secret, size_t secret_len,
                           const jn_webhook_request_t *req, char *why, size_t why_len);

/* True when a request header (name lowercase) is one a script receives: content-type,
 * user-agent, the timestamp and event-type headers, and those the section lists; never the
 * signature's or token's header, cookies or authorization. */
bool jn_webhook_header_kept(const jn_webhook_spec_t *spec, const char *name);

/* The answer a verified payload asks for (see challenge_path above): a string borrowed from
 * payload, or NULL when the payload is an ordinary webhook. */
const char *jn_webhook_challenge(const jn_webhook_spec_t *spec, json_object *payload);

#endif
