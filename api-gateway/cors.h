/*
 * cors.h - cross-origin access (CORS) to the end-user routes.
 *
 * The routes an end user's browser calls with a connect session token (the frontend SDK's
 * /api-auth/…, /oauth2/auth/…, /auth/unauthenticated/…, and /connect/session) answer
 * cross-origin requests and their preflights: they never see the secret key, so by
 * default any origin may call them. An environment may narrow that to a list of origins
 * (environments.cors_allowed_origins); the gateway's own origin (JUNCTION_SERVER_URL, whose
 * pages use the same routes) is always allowed. Routes that take the secret key register
 * nothing here, so a browser's preflight to them gets no Access-Control-Allow-Origin and
 * the browser refuses the call.
 *
 * An origin list is empty or "*" (any origin), or comma-separated origins
 * "scheme://host[:port]" with scheme http or https; spaces around entries are ignored,
 * scheme and host compare without case and a default port (80, 443) is the same as none.
 */
#ifndef JN_GATEWAY_CORS_H
#define JN_GATEWAY_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "core/err.h"
#include "net/http_server.h"

#define JN_CORS_MAX_ORIGINS 32
#define JN_CORS_LIST_MAX 2048
#define JN_CORS_ORIGIN_MAX 300

/* Checks a list as an environment's setter receives it (see above): at most
 * JN_CORS_MAX_ORIGINS entries and JN_CORS_LIST_MAX characters, each entry "*" alone or an
 * http(s) origin without user info, path, query or fragment. JN_ERR_INVALID with the
 * first bad entry named in why. */
jn_err_t jn_cors_origins_check(const char *list, char *why, size_t why_len);

/* The origin of a URL ("https://junction.example.com/base" -> "https://junction.example.com"),
 * in the form browsers send. False (out empty) when url has no http(s) origin. */
bool jn_cors_origin_of(const char *url, char out[JN_CORS_ORIGIN_MAX]);

/* True when a page of origin may call an end-user route of an environment whose list is
 * list (NULL, empty or "*": any origin). own_origin (may be NULL) is always allowed. */
bool jn_cors_origin_allowed(const char *list, const char *origin, const char *own_origin);

/* Decides an end-user route's answer for the request's Origin header: without one (not a
 * cross-origin browser call) adds nothing and returns true; with an allowed one adds
 * Access-Control-Allow-Origin ("*" when the list admits any origin, else the origin with
 * Vary: Origin) and returns true; with a refused one answers 403 origin_not_allowed and
 * returns false, and the caller stops before changing anything. list NULL means the
 * environment is not known yet (a token that resolves to none): any origin. */
bool jn_cors_answer(const jn_http_request_t *req, jn_http_response_t *res, const char *list,
                    const char *own_origin);

/* The origins a page of the gateway may postMessage an end-user result to, as a JSON array
 * (new reference): the gateway's own origin (its connect page) and, when list names
 * origins, each of them; "*" is never among them. */
json_object *jn_cors_message_targets(const char *list, const char *own_origin);

/* Answers a preflight (OPTIONS) for an end-user route that accepts methods ("POST"):
 * 204 with the allow headers when the Origin is allowed by list (as jn_cors_answer), 204
 * without them otherwise, so the browser does not send the real request. */
void jn_cors_preflight(const jn_http_request_t *req, jn_http_response_t *res, const char *list,
                       const char *own_origin, const char *methods);

#endif
