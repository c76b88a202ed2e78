/*
 * script_http.h - the HTTP methods of ctx: ctx:get/post/put/patch/delete/proxy and the
 * ctx:paginate iterator, on top of the host's http function and providers/paginate.h.
 *
 * Options a script passes (a table; unknown keys are errors):
 *   endpoint           path (and query) under the base URL; required
 *   params             query parameters: string keys, string/number/boolean values
 *   headers            string keys, string/number values
 *   data               a table (sent as JSON) or a string (sent as is)
 *   retries            0..10 attempts after the first (default 0)
 *   retry_on           extra retryable statuses, e.g. {502, 504}
 *   base_url_override  another base URL (http or https)
 *   raise              false to get 4xx/5xx responses back instead of an error
 *   method             ctx:proxy and ctx:paginate only (default GET)
 *   paginate           ctx:paginate only: overrides of the provider's pagination config,
 *                      plus limit (page size to request) and max_pages
 * A response is {status = 200, headers = {["content-type"] = ...}, data = ...}, data
 * decoded when it is JSON. A status >= 400 raises an error object {kind = "http",
 * status, headers, data, message} unless raise = false.
 *
 * ctx:paginate returns a generic-for iterator (with a to-be-closed value, so breaking
 * out of the loop or an error frees the walk at once). Each step is one page: the
 * records array (response_path, or the body when it is an array), or the decoded body
 * when there is no records array. Pagination parameters go in the query, or in the JSON
 * body for POST, PUT and PATCH (dotted names nest: "page.cursor"). A next link is
 * followed only on the origin of the base URL.
 */
#ifndef JN_WORKER_SCRIPT_HTTP_H
#define JN_WORKER_SCRIPT_HTTP_H

#include <lua.h>

#include "script_ctx.h"

/* What the HTTP methods need from the run; lives as long as the run. */
typedef struct {
    const jn_script_host_t *host;
    const jn_script_run_info_t *info;
    jn_sandbox_t *sb;
    jn_err_t last_host_err; /* the class of the last host failure raised */
} jn_script_http_env_t;

/* The body of ctx:<method>{...}: the options table is at index 2. Pushes the response
 * (returns 1) or raises. method NULL reads it from the options (ctx:proxy). */
int jn_script_http_request(lua_State *L, jn_script_http_env_t *env, const char *method);

/* The body of ctx:paginate{...}: pushes iterator, nil, nil, closing value (returns 4). */
int jn_script_http_paginate(lua_State *L, jn_script_http_env_t *env);

/* Raises the error a failed host call deserves (see script_ctx.h); what names the
 * method ("ctx:get"). Does not return. */
int jn_script_host_failure(lua_State *L, jn_script_http_env_t *env, jn_err_t err, const char *what,
                           const char *why);

#endif
