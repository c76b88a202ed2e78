/*
 * connection_config.h - which connection_config values a connection may hold.
 *
 * connection_config values are not secret and partly typed by end users, yet templates put
 * them into URLs, headers and token requests (docs/providers.md). This module is the one
 * judge of them, for every way they arrive:
 *
 *   source                  keys it may set                        used by
 *   JN_CONNCFG_END_USER     declared fields that are not automated  connect flows
 *   JN_CONNCFG_DEVELOPER    declared fields, automated ones too     POST /connections, the
 *                                                                   defaults of a connect session
 *   JN_CONNCFG_PROVIDER     declared fields and the keys the entry   token_response_metadata
 *                           lists in token_response_metadata or
 *                           redirect_uri_metadata
 *   JN_CONNCFG_VALUES       any (undeclared keys are ignored)       a stored config about to be
 *                                                                   rendered, or one whose keys
 *                                                                   were judged already
 *
 * and, whatever the source, every value of a declared field: a string of at most
 * JN_CONNCFG_VALUE_MAX bytes without control characters, one of its `enum`, a match of its
 * `pattern`, and, where a URL template puts it into a host name, a host that its `enum` or
 * `host_suffixes` admits. A field placed in a host without either admits no value at all,
 * so a provider definition written before host_suffixes existed fails closed.
 *
 * The rules of an entry (compiled patterns, where its fields sit in URL hosts) are built
 * once per distinct entry and cached process-wide, keyed by the entry's content, so a
 * custom provider that changes gets new rules and a deep copy of a catalog entry reuses the
 * old ones. Entries are only read (no json-c reference is taken, nothing is serialised into
 * them): callers may pass shared catalog entries. Every function is thread-safe.
 */
#ifndef JN_CONNECTION_CONFIG_H
#define JN_CONNECTION_CONFIG_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/json_util.h"

#define JN_CONNCFG_VALUE_MAX 2048  /* bytes of one value */
#define JN_CONNCFG_SUFFIXES_MAX 16 /* entries of one host_suffixes */

typedef enum {
    JN_CONNCFG_END_USER,
    JN_CONNCFG_DEVELOPER,
    JN_CONNCFG_PROVIDER,
    JN_CONNCFG_VALUES,
} jn_conncfg_source_t;

/* Checks config (an object, or NULL: nothing to check) against the provider entry for the
 * source. On the first problem returns JN_ERR_INVALID with e naming the field
 * ("connection_config.hostname") and saying why. Empty strings count as not given and are
 * not checked. */
jn_err_t jn_connection_config_check(json_object *provider, json_object *config,
                                    jn_conncfg_source_t source, jn_field_error_t *e);

/* Every declared field that is neither optional nor automated has a non-empty value in
 * config (NULL: none has). JN_ERR_INVALID with e naming the first missing one. */
jn_err_t jn_connection_config_require(json_object *provider, json_object *config,
                                      jn_field_error_t *e);

/* The provider's token_response_metadata found in a token answer: a new object (caller
 * puts it) mapping each dot-separated path that leads to a string or boolean to its value
 * as a string; paths that lead elsewhere are left out. Check it with JN_CONNCFG_PROVIDER
 * before merging it into a connection's config. */
json_object *jn_connection_config_from_token(json_object *provider, json_object *token_answer);

/* ---- where URL templates put connection_config values into host names ---- */

/* The URL templates whose hosts this module judges, as "token_url", "proxy.base_url"... */
#define JN_CONNCFG_URL_FIELDS 4
extern const char *const jn_connection_config_url_fields[JN_CONNCFG_URL_FIELDS];

/* The template of URL field i of provider (borrowed), or NULL when the entry has none. */
const char *jn_connection_config_url_template(json_object *provider, size_t i);

/* One ${connectionConfig.<field>} that lands in a URL's host. For "https://api.${site}/v1"
 * before is "api." and after is ""; for "https://${sub}.zendesk.com" before is "" and
 * after is ".zendesk.com"; for "${instance_url}/api" origin is set: the value brings the
 * scheme and host itself. All pointers are valid during the callback only. */
typedef struct {
    const char *field;
    const char *before;
    size_t before_len;
    const char *after;
    size_t after_len;
    bool origin;
} jn_conncfg_host_slot_t;

typedef jn_err_t (*jn_conncfg_slot_fn)(const jn_conncfg_host_slot_t *slot, void *ud);

/* Calls fn for every connection_config placeholder in the host of each alternative of a
 * URL template (a template that does not start with a scheme or a placeholder has no
 * host). JN_ERR_INVALID with a one-line why for a host this module cannot judge: more than
 * one placeholder in one host, base64() or a non-connectionConfig placeholder in a host,
 * user info ('@') in a host, or a placeholder that starts the URL but is followed by more
 * host text rather than '/', '?', '#' or nothing. fn's own errors are returned as they
 * are. */
jn_err_t jn_connection_config_host_slots(const char *url_template, jn_conncfg_slot_fn fn, void *ud,
                                         char *why, size_t why_len);

/* Whether value, put into slot, makes a valid DNS host name (letters, digits and '-' in
 * labels of at most 63 bytes; an origin value must be "http(s)://host" optionally followed
 * by a path, without port or user info) that one of suffixes admits: an entry
 * "example.com" admits exactly that host, ".example.com" any host below it. With
 * n_suffixes 0 only the syntax is checked. JN_ERR_INVALID and a why that quotes the value
 * when not. */
jn_err_t jn_connection_config_host_check(const jn_conncfg_host_slot_t *slot, const char *value,
                                         const char *const *suffixes, size_t n_suffixes, char *why,
                                         size_t why_len);

/* Whether s is a usable host_suffixes entry: a lowercase DNS name of at least two labels
 * whose last label is letters only (no IP address, no bare top-level domain), optionally
 * preceded by '.'. */
bool jn_connection_config_suffix_valid(const char *s);

#endif
