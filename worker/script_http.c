/*
 * script_http.c - ctx's HTTP methods and the pagination iterator.
 *
 * Every C resource a method holds while it may raise (any Lua allocation, any option
 * error) sits in a sandbox box, so an error, a break out of a loop or the end of the
 * run frees it. Options are read raw: no metamethod of the script's tables runs in
 * the middle of a host call.
 */
#include "script_http.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json_util.h"
#include "providers/paginate.h"
#include "scripts/luajson.h"

#define MAX_ENDPOINT 4096
#define MAX_BASE_URL 2048
#define MAX_ENTRIES 256
#define MAX_KEY 256
#define MAX_VALUE 8192
#define MAX_BODY (16u << 20)
#define MAX_RETRY_ON 20
#define MAX_RESPONSE (16u << 20)
#define HOST_CALL_COST 1000 /* instructions a host call counts as */

static const char *const request_keys[] = {"endpoint", "params",   "headers",           "data",
                                           "retries",  "retry_on", "base_url_override", "raise",
                                           NULL};

typedef struct {
    char method[8];
    char *endpoint;
    char *base_url;
    json_object *params, *headers, *retry_on, *data_json;
    char *body; /* data given as a string */
    size_t body_len;
    int retries;
    bool raise;
} built_t;

static void built_free(void *p)
{
    built_t *b = p;
    free(b->endpoint);
    free(b->base_url);
    json_object_put(b->params);
    json_object_put(b->headers);
    json_object_put(b->retry_on);
    json_object_put(b->data_json);
    free(b->body);
    free(b);
}

static void response_free(void *p)
{
    jn_script_http_response_t *r = p;
    jn_script_http_response_cleanup(r);
    free(r);
}

static void json_free(void *p)
{
    json_object_put(p);
}

void jn_script_http_response_cleanup(jn_script_http_response_t *res)
{
    json_object_put(res->headers);
    free(res->body);
    memset(res, 0, sizeof *res);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

/* Pushes options[key] (raw) and returns its type. */
static int option(lua_State *L, int idx, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, idx);
}

static bool listed(const char *const *list, const char *key)
{
    for (; list && *list; list++) {
        if (strcmp(*list, key) == 0)
            return true;
    }
    return false;
}

static void check_keys(lua_State *L, int idx, const char *what, const char *const *extra)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            jn_sandbox_error(L, "%s: options have string keys only", what);
        const char *key = lua_tostring(L, -1);
        if (!listed(request_keys, key) && !listed(extra, key))
            jn_sandbox_error(L, "%s: unknown option '%s'", what, key);
    }
}

/* Text that may go into a URL, a header or a log line: no control characters, UTF-8. */
static bool clean_text(const char *s, size_t len, bool allow_space)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || (!allow_space && c == ' '))
            return false;
    }
    return jn_utf8_valid(s, len);
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c);
}

/* A scalar option value as text (numbers as Lua writes them). */
static const char *scalar_text(lua_State *L, int idx, char *buf, size_t cap, size_t *len)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: return lua_tolstring(L, idx, len);
    case LUA_TBOOLEAN: snprintf(buf, cap, "%s", lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, cap, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(buf, cap, "%.14g", lua_tonumber(L, idx));
        break;
    default: return NULL;
    }
    *len = strlen(buf);
    return buf;
}

/* Reads a table of name -> scalar into a new JSON object of strings. */
static json_object *read_map(lua_State *L, int idx, const char *what, const char *field,
                             bool headers, bool allow_bool)
{
    json_object *map = json_object_new_object();
    jn_sandbox_box_t *box = jn_sandbox_box(L, map, json_free);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t klen = 0, vlen = 0;
        char num[48];
        if (lua_type(L, -2) != LUA_TSTRING)
            jn_sandbox_error(L, "%s: %s: keys must be strings", what, field);
        const char *key = lua_tolstring(L, -2, &klen);
        bool scalar = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ||
                      (allow_bool && lua_type(L, -1) == LUA_TBOOLEAN);
        const char *value = scalar ? scalar_text(L, -1, num, sizeof num, &vlen) : NULL;
        if (++n > MAX_ENTRIES)
            jn_sandbox_error(L, "%s: %s: more than %d entries", what, field, MAX_ENTRIES);
        if (!value)
            jn_sandbox_error(L, "%s: %s.%s: must be a string%s", what, field, key,
                             allow_bool ? ", number or boolean" : " or number");
        if (klen == 0 || klen > MAX_KEY || !clean_text(key, klen, !headers))
            jn_sandbox_error(L, "%s: %s: '%.64s' is not a valid name", what, field, key);
        for (size_t i = 0; headers && i < klen; i++) {
            if (!token_char(key[i]))
                jn_sandbox_error(L, "%s: headers: '%.64s' is not a valid header name", what, key);
        }
        if (vlen > MAX_VALUE || !clean_text(value, vlen, true))
            jn_sandbox_error(L, "%s: %s.%s: the value has control characters or is too long", what,
                             field, key);
        json_object_object_add(map, key, json_object_new_string_len(value, (int)vlen));
        lua_pop(L, 1);
    }
    jn_sandbox_box_take(box);
    lua_pop(L, 1);
    return map;
}

/* Reads and checks the options at idx into a new boxed request (the box stays on the
 * stack). method NULL reads options.method. */
static built_t *build(lua_State *L, int idx, const char *what, const char *method,
                      const char *const *extra)
{
    if (!lua_istable(L, idx))
        jn_sandbox_error(L,
                         "%s: expects a table of options, e.g. %s{ endpoint = \"/path\" } (call it "
                         "with a colon)",
                         what, what);
    check_keys(L, idx, what, extra);
    built_t *b = calloc(1, sizeof *b);
    if (!b)
        abort();
    jn_sandbox_box(L, b, built_free);
    b->raise = true;

    if (!method) {
        int t = option(L, idx, "method");
        method = t == LUA_TNIL ? "GET" : lua_tostring(L, -1);
        static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
        if (t != LUA_TNIL && (t != LUA_TSTRING || !listed(methods, method)))
            jn_sandbox_error(L, "%s: method: must be GET, POST, PUT, PATCH or DELETE", what);
        snprintf(b->method, sizeof b->method, "%s", method);
        lua_pop(L, 1);
    } else {
        snprintf(b->method, sizeof b->method, "%s", method);
    }

    size_t len = 0;
    if (option(L, idx, "endpoint") != LUA_TSTRING)
        jn_sandbox_error(L, "%s: endpoint: is required (a path such as \"/v1/notes\")", what);
    const char *endpoint = lua_tolstring(L, -1, &len);
    if (len == 0 || len > MAX_ENDPOINT || !clean_text(endpoint, len, false))
        jn_sandbox_error(L,
                         "%s: endpoint: must be 1 to %d characters without spaces or control "
                         "characters",
                         what, MAX_ENDPOINT);
    if (strstr(endpoint, "://"))
        jn_sandbox_error(L, "%s: endpoint: is a path; use base_url_override for another base URL",
                         what);
    b->endpoint = xstrdup(endpoint);
    lua_pop(L, 1);

    int t = option(L, idx, "base_url_override");
    if (t != LUA_TNIL) {
        const char *url = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!url || len > MAX_BASE_URL || !clean_text(url, len, false) ||
            (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0))
            jn_sandbox_error(L, "%s: base_url_override: must be an http or https URL", what);
        b->base_url = xstrdup(url);
    }
    lua_pop(L, 1);

    if ((t = option(L, idx, "params")) != LUA_TNIL) {
        if (t != LUA_TTABLE)
            jn_sandbox_error(L, "%s: params: must be a table", what);
        b->params = read_map(L, lua_gettop(L), what, "params", false, true);
    }
    lua_pop(L, 1);
    if ((t = option(L, idx, "headers")) != LUA_TNIL) {
        if (t != LUA_TTABLE)
            jn_sandbox_error(L, "%s: headers: must be a table", what);
        b->headers = read_map(L, lua_gettop(L), what, "headers", true, false);
    }
    lua_pop(L, 1);

    t = option(L, idx, "data");
    if (t == LUA_TSTRING) {
        const char *data = lua_tolstring(L, -1, &len);
        if (len > MAX_BODY)
            jn_sandbox_error(L, "%s: data: larger than %u bytes", what, MAX_BODY);
        b->body = malloc(len + 1);
        if (!b->body)
            abort();
        memcpy(b->body, data, len);
        b->body[len] = '\0';
        b->body_len = len;
    } else if (t != LUA_TNIL) {
        jn_luajson_caps_t caps = jn_luajson_caps_default();
        caps.max_bytes = MAX_BODY;
        char why[320];
        if (jn_luajson_to_json(L, -1, &caps, &b->data_json, why, sizeof why))
            jn_sandbox_error(L, "%s: data: %s", what, why);
        if (!b->data_json)
            b->data_json = json_object_new_null();
    }
    lua_pop(L, 1);

    if ((t = option(L, idx, "retries")) != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 10)
            jn_sandbox_error(L, "%s: retries: must be an integer from 0 to 10", what);
        b->retries = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    if ((t = option(L, idx, "retry_on")) != LUA_TNIL) {
        if (t != LUA_TTABLE)
            jn_sandbox_error(L, "%s: retry_on: must be a list of HTTP statuses", what);
        b->retry_on = json_object_new_array();
        if (lua_rawlen(L, -1) > MAX_RETRY_ON)
            jn_sandbox_error(L, "%s: retry_on: at most %d statuses", what, MAX_RETRY_ON);
        for (lua_Integer i = 1; i <= MAX_RETRY_ON; i++) {
            if (lua_rawgeti(L, -1, i) == LUA_TNIL) {
                lua_pop(L, 1);
                break;
            }
            lua_Integer st = lua_tointeger(L, -1);
            if (!lua_isinteger(L, -1) || st < 100 || st > 599)
                jn_sandbox_error(L, "%s: retry_on[%d]: must be an HTTP status", what, (int)i);
            json_object_array_add(b->retry_on, json_object_new_int((int)st));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if ((t = option(L, idx, "raise")) != LUA_TNIL) {
        if (t != LUA_TBOOLEAN)
            jn_sandbox_error(L, "%s: raise: must be true or false", what);
        b->raise = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    return b;
}

static size_t max_response(const jn_script_http_env_t *env)
{
    size_t cap = jn_sandbox_limits(env->sb)->memory_bytes / 4;
    return cap < MAX_RESPONSE ? cap : MAX_RESPONSE;
}

int jn_script_host_failure(lua_State *L, jn_script_http_env_t *env, jn_err_t err, const char *what,
                           const char *why)
{
    if (err == JN_ERR_TIMEOUT && jn_sandbox_remaining_ms(env->sb) == 0)
        jn_sandbox_charge(L, 0); /* the deadline passed: the run ends with a timeout */
    if (err == JN_ERR_INVALID || err == JN_ERR_TOO_LARGE)
        return jn_sandbox_error(L, "%s: %s", what, why && *why ? why : jn_err_str(err));
    env->last_host_err = err;
    return jn_sandbox_raise(L, JN_SCRIPT_HOST, 0, false, "%s: %s (%s)", what,
                            why && *why ? why : "failed", jn_err_str(err));
}

/* Sends b and returns the boxed response (box on the stack). */
static jn_script_http_response_t *send_request(lua_State *L, jn_script_http_env_t *env, built_t *b,
                                               const char *what)
{
    if (!env->host->http)
        jn_sandbox_error(L, "%s is not available in this run", what);
    jn_script_http_request_t req = {
        .method = b->method,
        .endpoint = b->endpoint,
        .params = b->params,
        .headers = b->headers,
        .base_url_override = b->base_url,
        .retries = b->retries,
        .retry_on = b->retry_on,
        .max_response_bytes = max_response(env),
    };
    if (b->data_json) {
        size_t len = 0;
        req.body = json_object_to_json_string_length(
            b->data_json, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        req.body_len = len;
        req.content_type = "application/json";
    } else if (b->body) {
        req.body = b->body;
        req.body_len = b->body_len;
    }
    req.timeout_ms = (long)jn_sandbox_check_deadline(L);
    jn_script_http_response_t *res = calloc(1, sizeof *res);
    if (!res)
        abort();
    jn_sandbox_box(L, res, response_free);
    char why[512] = "";
    jn_err_t err = env->host->http(env->host->ud, &req, res, why, sizeof why);
    if (err)
        jn_script_host_failure(L, env, err, what, why);
    /* The C work around a request (building it, decoding the answer) counts too. */
    jn_sandbox_charge(L, HOST_CALL_COST + res->body_len / 16);
    return res;
}

static const char *header(const jn_script_http_response_t *res, const char *name)
{
    json_object *v = NULL;
    return json_object_object_get_ex(res->headers, name, &v) ? json_object_get_string(v) : NULL;
}

/* The body as JSON when it looks like JSON and parses; NULL otherwise. New reference;
 * then the box of its memory reservation is pushed and *held set (jn_luajson_parse). */
static json_object *body_json(lua_State *L, const jn_script_http_response_t *res,
                              jn_sandbox_box_t **held)
{
    *held = NULL;
    if (!res->body || res->body_len == 0)
        return NULL;
    const char *type = header(res, "content-type");
    const char *p = res->body;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    if (!(type && strstr(type, "json")) && *p != '{' && *p != '[')
        return NULL;
    jn_field_error_t e;
    return jn_luajson_parse(L, res->body, res->body_len, held, &e);
}

/* Pushes {status, headers, data}. */
static void push_response(lua_State *L, const jn_script_http_response_t *res)
{
    jn_sandbox_box_t *held = NULL;
    json_object *data = body_json(L, res, &held);
    jn_sandbox_box_t *box = data ? jn_sandbox_box(L, data, json_free) : NULL;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, res->status);
    lua_setfield(L, -2, "status");
    if (res->headers)
        jn_luajson_push(L, res->headers);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "headers");
    if (data) {
        jn_luajson_push_value(L, data);
        lua_setfield(L, -2, "data");
        jn_sandbox_box_release(box);
        jn_sandbox_box_release(held);
        lua_replace(L, -3); /* the table where the reservation's box was */
        lua_pop(L, 1);      /* the tree's box */
    } else if (res->body && res->body_len) {
        lua_pushlstring(L, res->body, res->body_len);
        lua_setfield(L, -2, "data");
    }
}

/* Raises the HTTP error for the response table on top. */
static int raise_status(lua_State *L, const char *what, const built_t *b, int status)
{
    char path[200];
    snprintf(path, sizeof path, "%.*s", (int)strcspn(b->endpoint, "?"), b->endpoint);
    return jn_sandbox_raise(L, JN_SCRIPT_HTTP, status, true,
                            "%s %s %s: the provider answered HTTP %d", what, b->method, path,
                            status);
}

int jn_script_http_request(lua_State *L, jn_script_http_env_t *env, const char *method)
{
    char what[24] = "ctx:proxy";
    if (method) {
        snprintf(what, sizeof what, "ctx:%s", method);
        for (char *c = what + 4; *c; c++)
            *c = (char)(*c - 'A' + 'a');
    }
    built_t *b = build(L, 2, what, method, method ? NULL : (const char *const[]){"method", NULL});
    jn_script_http_response_t *res = send_request(L, env, b, what);
    push_response(L, res);
    if (b->raise && res->status >= 400)
        return raise_status(L, what, b, res->status);
    return 1;
}

/* ---- pagination ---- */

typedef struct {
    jn_paginator_t *p;
    json_object *next_params;
    char *next_url;
    bool first, done;
} pager_t;

static void pager_free(void *ud)
{
    pager_t *g = ud;
    jn_paginator_free(g->p);
    json_object_put(g->next_params);
    free(g->next_url);
    free(g);
}

static const char *const paginate_keys[] = {"method", "paginate", NULL};

/* A pagination parameter as JSON for a body: decimal text becomes a number. */
static json_object *param_value(json_object *v)
{
    const char *s = json_object_get_string(v);
    size_t n = strlen(s);
    bool digits = n > 0 && n <= 15;
    for (size_t i = 0; digits && i < n; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    return digits ? json_object_new_int64(strtoll(s, NULL, 10)) : json_object_new_string(s);
}

/* obj["a"]["b"] = value for name "a.b", creating objects on the way. */
static void set_dotted(json_object *obj, const char *name, json_object *value)
{
    const char *dot;
    while ((dot = strchr(name, '.')) != NULL && dot != name && dot[1]) {
        char key[MAX_KEY];
        snprintf(key, sizeof key, "%.*s", (int)(dot - name), name);
        json_object *next = NULL;
        if (!json_object_object_get_ex(obj, key, &next) ||
            !json_object_is_type(next, json_type_object)) {
            next = json_object_new_object();
            json_object_object_add(obj, key, next);
        }
        obj = next;
        name = dot + 1;
    }
    json_object_object_add(obj, name, value);
}

static void add_params(lua_State *L, built_t *b, json_object *params, const char *what)
{
    bool in_body = strcmp(b->method, "POST") == 0 || strcmp(b->method, "PUT") == 0 ||
                   strcmp(b->method, "PATCH") == 0;
    if (in_body && !b->body &&
        (!b->data_json || json_object_is_type(b->data_json, json_type_object))) {
        if (!b->data_json)
            b->data_json = json_object_new_object();
        json_object_object_foreach(params, name, value)
            set_dotted(b->data_json, name, param_value(value));
        return;
    }
    if (in_body && !b->body)
        jn_sandbox_error(L, "%s: data must be a table (an object) to carry the page parameters",
                         what);
    if (!b->params)
        b->params = json_object_new_object();
    json_object_object_foreach(params, name, value)
        json_object_object_add(b->params, name, json_object_get(value));
}

/* Follows next_url: it must be on the origin of the base URL. Sets b's base URL to that
 * origin and its endpoint to the link's path and query. */
static void follow_link(lua_State *L, jn_script_http_env_t *env, built_t *b, const char *next_url)
{
    const char *base = b->base_url ? b->base_url : env->info ? env->info->base_url : NULL;
    if (!base)
        jn_sandbox_error(L, "ctx:paginate: a next link needs the provider's base URL");
    CURLU *u = curl_url(), *o = curl_url();
    char *lscheme = NULL, *lhost = NULL, *lport = NULL, *bscheme = NULL, *bhost = NULL,
         *bport = NULL, *path = NULL, *query = NULL;
    bool ok = u && o && curl_url_set(o, CURLUPART_URL, base, 0) == CURLUE_OK &&
              curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
              curl_url_set(u, CURLUPART_URL, next_url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &lscheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &lhost, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, &lport, CURLU_DEFAULT_PORT) == CURLUE_OK &&
              curl_url_get(o, CURLUPART_SCHEME, &bscheme, 0) == CURLUE_OK &&
              curl_url_get(o, CURLUPART_HOST, &bhost, 0) == CURLUE_OK &&
              curl_url_get(o, CURLUPART_PORT, &bport, CURLU_DEFAULT_PORT) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK;
    bool same = ok && strcasecmp(lscheme, bscheme) == 0 && strcasecmp(lhost, bhost) == 0 &&
                strcmp(lport, bport) == 0;
    char origin[MAX_BASE_URL], endpoint[MAX_ENDPOINT + 1];
    if (same) {
        curl_url_get(u, CURLUPART_QUERY, &query, 0);
        bool default_port = (strcasecmp(lscheme, "https") == 0 && strcmp(lport, "443") == 0) ||
                            (strcasecmp(lscheme, "http") == 0 && strcmp(lport, "80") == 0);
        snprintf(origin, sizeof origin, "%s://%s%s%s", lscheme, lhost, default_port ? "" : ":",
                 default_port ? "" : lport);
        int n = snprintf(endpoint, sizeof endpoint, "%s%s%s", path, query ? "?" : "",
                         query ? query : "");
        same = n > 0 && (size_t)n < sizeof endpoint;
    }
    char *strs[] = {lscheme, lhost, lport, bscheme, bhost, bport, path, query};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        curl_free(strs[i]);
    curl_url_cleanup(u);
    curl_url_cleanup(o);
    if (!ok)
        jn_sandbox_error(L, "ctx:paginate: the next link is not a valid URL");
    if (!same)
        jn_sandbox_error(L,
                         "ctx:paginate: the next link leaves the provider's origin; not followed");
    free(b->endpoint);
    free(b->base_url);
    b->endpoint = xstrdup(endpoint);
    b->base_url = xstrdup(origin);
    json_object_put(b->params); /* the link carries its own query */
    b->params = NULL;
}

static int paginate_next(lua_State *L)
{
    jn_sandbox_box_t *gbox = lua_touserdata(L, lua_upvalueindex(1));
    jn_script_http_env_t *env = lua_touserdata(L, lua_upvalueindex(3));
    pager_t *g = jn_sandbox_box_get(gbox);
    if (!g || g->done)
        return 0;
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(2));
    built_t *b = build(L, 1, "ctx:paginate", NULL, paginate_keys);
    json_object *params =
        g->first ? jn_paginator_first_params(g->p) : json_object_get(g->next_params);
    if (params)
        jn_sandbox_box(L, params, json_free);
    if (!g->first && g->next_url)
        follow_link(L, env, b, g->next_url);
    else if (params)
        add_params(L, b, params, "ctx:paginate");
    g->first = false;

    jn_script_http_response_t *res = send_request(L, env, b, "ctx:paginate");
    if (b->raise && res->status >= 400) {
        g->done = true;
        push_response(L, res);
        return raise_status(L, "ctx:paginate", b, res->status);
    }
    jn_sandbox_box_t *held = NULL;
    json_object *body = body_json(L, res, &held);
    if (body)
        jn_sandbox_box(L, body, json_free); /* both boxes go with the stack */
    json_object *records = NULL, *next_params = NULL;
    char *next_url = NULL, why[512] = "";
    bool done = true;
    jn_err_t err = jn_paginator_next(g->p, res->status, header(res, "link"), body, &records, &done,
                                     &next_url, &next_params, why, sizeof why);
    if (err) {
        g->done = true;
        return jn_sandbox_error(L, "ctx:paginate: %s", why);
    }
    free(g->next_url);
    json_object_put(g->next_params);
    g->next_url = next_url;
    g->next_params = next_params;
    g->done = done;
    if (jn_paginator_capped(g->p) && env->host->log)
        env->host->log(env->host->ud, JN_LOG_WARN, why, strlen(why));
    if (records && json_object_array_length(records) == 0) {
        g->done = true;
        return 0;
    }
    if (records)
        jn_luajson_push(L, records);
    else if (body)
        jn_luajson_push_value(L, body);
    else if (res->body && res->body_len)
        lua_pushlstring(L, res->body, res->body_len);
    else
        return 0;
    return 1;
}

int jn_script_http_paginate(lua_State *L, jn_script_http_env_t *env)
{
    /* Check every option now, so that a mistake is reported at the call. */
    build(L, 2, "ctx:paginate", NULL, paginate_keys);
    lua_pop(L, 1);
    json_object *overrides = NULL;
    int limit = 0, max_pages = 0;
    int t = option(L, 2, "paginate");
    if (t == LUA_TTABLE) {
        char why[320];
        jn_luajson_caps_t caps = jn_luajson_caps_default();
        caps.max_bytes = 64u << 10;
        if (jn_luajson_to_json(L, -1, &caps, &overrides, why, sizeof why))
            jn_sandbox_error(L, "ctx:paginate: paginate: %s", why);
        if (!json_object_is_type(overrides, json_type_object)) {
            json_object_put(overrides);
            jn_sandbox_error(L, "ctx:paginate: paginate: must be a table of settings");
        }
        jn_sandbox_box(L, overrides, json_free);
        json_object *v = NULL;
        if (json_object_object_get_ex(overrides, "limit", &v)) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
                json_object_get_int64(v) > 100000)
                jn_sandbox_error(
                    L, "ctx:paginate: paginate.limit: must be an integer from 0 to 100000");
            limit = (int)json_object_get_int64(v);
            json_object_object_del(overrides, "limit");
        }
        if (json_object_object_get_ex(overrides, "max_pages", &v)) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
                json_object_get_int64(v) > JN_PAGINATE_MAX_PAGES)
                jn_sandbox_error(
                    L, "ctx:paginate: paginate.max_pages: must be an integer from 1 to %d",
                    JN_PAGINATE_MAX_PAGES);
            max_pages = (int)json_object_get_int64(v);
            json_object_object_del(overrides, "max_pages");
        }
    } else if (t != LUA_TNIL) {
        jn_sandbox_error(L, "ctx:paginate: paginate: must be a table of settings");
    }
    pager_t *g = calloc(1, sizeof *g);
    if (!g)
        abort();
    g->first = true;
    jn_sandbox_box_t *gbox = jn_sandbox_box(L, g, pager_free);
    int box_idx = lua_gettop(L);
    json_object *provider =
        env->host->paginate_config ? env->host->paginate_config(env->host->ud) : NULL;
    char why[512] = "";
    if (jn_paginator_new(provider, overrides, limit, &g->p, why, sizeof why))
        return jn_sandbox_error(L, "ctx:paginate: %s", why);
    if (max_pages)
        jn_paginator_set_max_pages(g->p, max_pages);
    (void)gbox;
    lua_pushvalue(L, box_idx);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, env);
    lua_pushcclosure(L, paginate_next, 3);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, box_idx);
    return 4;
}
