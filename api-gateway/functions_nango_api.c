/*
 * functions_nango_api.c - Nango's public routes over an integration's deployed functions,
 * answered from the functions store (store/functions.h) with Nango's shapes and errors:
 *
 *   GET    /integrations/:uniqueKey/functions[?type&search&page&limit]
 *          {data: [ListedNangoFunction], pagination: {total, page, limit}}
 *   GET    /integrations/:uniqueKey/functions/:name[?type]      {data: ListedNangoFunction}
 *   GET    /integrations/:uniqueKey/functions/:name/code[?type] {type, code}
 *   DELETE /integrations/:uniqueKey/functions/:name?type=       {data: {success: true}}
 *
 * As Nango's, the query is strict (an unknown or repeated parameter is 400
 * invalid_query_params), :uniqueKey is letters, digits and ~ : . @ space _ - and :name
 * letters, digits, _ and - (400 invalid_uri_params otherwise: no "/" or ".." can reach
 * the store), and a type that does not match the function's is "not found". An
 * integration has at most one function of a name here, so no lookup is ambiguous; type
 * on-event is accepted and matches nothing (Junction has no on-event functions).
 */
#include "routes.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "function_shapes.h"
#include "store/functions.h"
#include "store/integrations.h"

#define MAX_KEY 255
#define MAX_NAME 255
#define MAX_SEARCH 255
#define MAX_PAGE 1000000
#define MAX_LIMIT 100
#define DEFAULT_LIMIT 20

/* The routes' state: one gateway per process. */
static struct {
    jn_gateway_t *gw;
    jn_functions_hook_fn on_delete;
} routes;

/* ---- query and path checks ---- */

typedef struct {
    const char *const *allowed;
    const char *bad; /* the first unknown or repeated name */
    const char *why;
    unsigned seen; /* bit i: allowed[i] given */
} strict_query_t;

static void check_arg(const char *name, const char *value, void *ud)
{
    (void)value;
    strict_query_t *q = ud;
    if (q->bad)
        return;
    for (unsigned i = 0; q->allowed[i]; i++) {
        if (strcmp(q->allowed[i], name) == 0) {
            if (q->seen & (1u << i)) {
                q->bad = name;
                q->why = "may be given once";
            }
            q->seen |= 1u << i;
            return;
        }
    }
    q->bad = name;
    q->why = "unknown field";
}

/* Refuses query parameters other than allowed (NULL-terminated) and repeated ones:
 * Nango's schemas are strict. Answers 400 itself. */
static bool strict_query(const jn_http_request_t *req, jn_http_response_t *res,
                         const char *const *allowed)
{
    strict_query_t q = {.allowed = allowed};
    jn_http_query_all(req, check_arg, &q);
    if (!q.bad)
        return true;
    jn_field_error_t e;
    char shown[JN_SHOWN_CAP];
    jn_field_error(&e, jn_shown(shown, q.bad, strlen(q.bad)), "%s", q.why);
    jn_api_invalid(res, "invalid_query_params", &e);
    return false;
}

/* Reads ?type: one of the allowed values (NULL-terminated), or absent unless required. */
static bool type_query(const jn_http_request_t *req, jn_http_response_t *res,
                       const char *const *allowed, bool required, const char **out)
{
    const char *v = jn_http_query(req, "type");
    *out = NULL;
    if (!v && !required)
        return true;
    for (size_t i = 0; v && allowed[i]; i++) {
        if (strcmp(v, allowed[i]) == 0) {
            *out = allowed[i];
            return true;
        }
    }
    jn_field_error_t e;
    if (!v)
        jn_field_error(&e, "type", "is required (%s or %s)", allowed[0], allowed[1]);
    else if (allowed[2])
        jn_field_error(&e, "type", "must be one of %s, %s or %s", allowed[0], allowed[1],
                       allowed[2]);
    else
        jn_field_error(&e, "type", "must be %s or %s", allowed[0], allowed[1]);
    jn_api_invalid(res, "invalid_query_params", &e);
    return false;
}

static const char *const any_type[] = {"sync", "action", "on-event", NULL};
static const char *const deletable_type[] = {"sync", "action", NULL};

/* A non-negative integer of at most max, digits only. */
static bool read_count(const char *v, long min, long max, long *out)
{
    if (!v || !*v || strlen(v) > 9)
        return false;
    for (const char *p = v; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
    }
    long n = strtol(v, NULL, 10);
    if (n < min || n > max)
        return false;
    *out = n;
    return true;
}

/* Reads a path parameter and checks it against Nango's pattern: letters, digits and the
 * characters of extra. Answers 400 invalid_uri_params itself. */
static bool path_param(const jn_http_request_t *req, jn_http_response_t *res, const char *name,
                       const char *extra, const char **out)
{
    bool key = strcmp(name, "uniqueKey") == 0;
    if (!jn_api_uri_param(req, res, name, key ? MAX_KEY : MAX_NAME, out))
        return false;
    for (const char *p = *out; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr(extra, *p)) {
            jn_field_error_t e;
            jn_field_error(&e, name, "may contain only letters, digits%s",
                           key ? ", spaces and ~ : . @ _ -" : ", _ and -");
            jn_api_invalid(res, "invalid_uri_params", &e);
            return false;
        }
    }
    return true;
}

#define KEY_CHARS "~:.@ _-"
#define NAME_CHARS "_-"

/* ---- answers ---- */

static void integration_missing(jn_http_response_t *res, const char *key)
{
    jn_http_respond_error(res, 404, "not_found", "Integration '%s' does not exist", key);
}

static void function_missing(jn_http_response_t *res, const char *key, const char *name)
{
    jn_http_respond_error(res, 404, "not_found",
                          "Function '%s' does not exist for integration '%s'", name, key);
}

/* The listed shape of a stored function; the declaration as stored is read back through
 * the same checks as at deploy time (a refusal is logged and leaves a shape without it). */
static json_object *listed(const jn_function_t *f)
{
    jn_declaration_t d;
    char why[512];
    if (jn_declaration_from_json(f->declaration, &d, why, sizeof why)) {
        jn_log_warn("functions", "integration %s: stored declaration of %s refused: %s",
                    f->integration, f->name, why);
        return jn_shape_listed_function(f, NULL);
    }
    json_object *o = jn_shape_listed_function(f, &d);
    jn_declaration_cleanup(&d);
    return o;
}

/* Checks that the integration exists; answers 404 or 503 itself. */
static bool integration_exists(jn_gateway_t *gw, PGconn *conn, long long env_id, const char *key,
                               jn_http_response_t *res)
{
    jn_integration_t it;
    jn_err_t err = jn_integrations_get(conn, &gw->keyring, env_id, key, false, &it);
    if (err == JN_ERR_NOT_FOUND) {
        integration_missing(res, key);
        return false;
    }
    if (err) {
        jn_api_store_error(res, err, "integration");
        return false;
    }
    jn_integration_cleanup(&it);
    return true;
}

/* ---- GET /integrations/:uniqueKey/functions ---- */

static void list_functions(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const allowed[] = {"type", "search", "page", "limit", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env) || !strict_query(req, res, allowed))
        return;
    jn_functions_query_t q = {.limit = DEFAULT_LIMIT};
    long page = 0, limit = DEFAULT_LIMIT;
    jn_field_error_t e;
    const char *v;
    if (!type_query(req, res, any_type, false, &q.type))
        return;
    if ((v = jn_http_query(req, "page")) && !read_count(v, 0, MAX_PAGE, &page)) {
        jn_field_error(&e, "page", "must be an integer from 0 to %d", MAX_PAGE);
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    if ((v = jn_http_query(req, "limit")) && !read_count(v, 1, MAX_LIMIT, &limit)) {
        jn_field_error(&e, "limit", "must be an integer from 1 to %d", MAX_LIMIT);
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    char search[MAX_SEARCH * 4 + 1];
    if ((v = jn_http_query(req, "search"))) {
        /* Nango trims it, then wants 1 to 255 characters. */
        while (*v && isspace((unsigned char)*v))
            v++;
        size_t len = strlen(v), chars = 0;
        while (len && isspace((unsigned char)v[len - 1]))
            len--;
        for (size_t i = 0; i < len; i++)
            chars += ((unsigned char)v[i] & 0xC0) != 0x80;
        if (len == 0 || chars > MAX_SEARCH || len >= sizeof search) {
            jn_field_error(&e, "search", len ? "must be at most %d characters" : "may not be empty",
                           MAX_SEARCH);
            jn_api_invalid(res, "invalid_query_params", &e);
            return;
        }
        memcpy(search, v, len);
        search[len] = '\0';
        q.search = search;
    }
    const char *key;
    if (!path_param(req, res, "uniqueKey", KEY_CHARS, &key))
        return;
    q.limit = (size_t)limit;
    q.offset = (size_t)page * (size_t)limit;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_function_t *list = NULL;
    size_t n = 0, total = 0;
    jn_err_t err = jn_functions_find(conn, env.id, key, &q, &list, &n, &total);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_NOT_FOUND) {
        integration_missing(res, key);
        return;
    }
    if (err) {
        jn_api_store_error(res, err, "functions");
        return;
    }
    json_object *data = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object_array_add(data, listed(&list[i]));
        jn_function_cleanup(&list[i]);
    }
    free(list);
    json_object *pagination = json_object_new_object();
    json_object_object_add(pagination, "total", json_object_new_int64((int64_t)total));
    json_object_object_add(pagination, "page", json_object_new_int64(page));
    json_object_object_add(pagination, "limit", json_object_new_int64(limit));
    json_object *root = json_object_new_object();
    json_object_object_add(root, "data", data);
    json_object_object_add(root, "pagination", pagination);
    jn_http_respond_json(res, 200, root);
}

/* ---- one function ---- */

typedef enum { READ_FUNCTION, READ_CODE, DELETE_FUNCTION } op_t;

/* Reads, checks and loads what the three routes on one function share; answers errors
 * itself. On success *f is loaded (cleanup it) unless op is DELETE_FUNCTION. */
static bool one_function(const jn_http_request_t *req, jn_http_response_t *res, op_t op,
                         jn_function_t *f)
{
    jn_gateway_t *gw = routes.gw;
    static const char *const allowed[] = {"type", NULL};
    jn_environment_t env;
    const char *key = NULL, *name = NULL, *type = NULL;
    if (!jn_api_begin(gw, req, res, &env))
        return false;
    /* Nango checks the path first for the code, the query first otherwise. */
    bool path_ok = op != READ_CODE || (path_param(req, res, "uniqueKey", KEY_CHARS, &key) &&
                                       path_param(req, res, "name", NAME_CHARS, &name));
    if (!path_ok || !strict_query(req, res, allowed) ||
        !type_query(req, res, op == DELETE_FUNCTION ? deletable_type : any_type,
                    op == DELETE_FUNCTION, &type))
        return false;
    if (op != READ_CODE && (!path_param(req, res, "uniqueKey", KEY_CHARS, &key) ||
                            !path_param(req, res, "name", NAME_CHARS, &name)))
        return false;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return false;
    bool ok = integration_exists(gw, conn, env.id, key, res);
    jn_err_t err = JN_OK;
    if (ok && op == DELETE_FUNCTION) {
        err = jn_functions_delete_typed(conn, env.id, key, name, type, routes.on_delete, gw);
        if (!err)
            jn_log_info("functions", "integration %s: function %s (%s) deleted", key, name, type);
    } else if (ok) {
        err = jn_functions_get(conn, env.id, key, name, op == READ_CODE, f);
        if (!err && type && strcmp(type, f->type) != 0) {
            jn_function_cleanup(f);
            err = JN_ERR_NOT_FOUND;
        }
    }
    jn_api_db_release(gw, conn);
    if (ok && err == JN_ERR_NOT_FOUND)
        function_missing(res, key, name);
    else if (ok && err)
        jn_api_store_error(res, err, "function");
    return ok && !err;
}

static void get_function(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)ud;
    jn_function_t f;
    if (!one_function(req, res, READ_FUNCTION, &f))
        return;
    jn_api_data(res, listed(&f));
    jn_function_cleanup(&f);
}

static void get_code(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)ud;
    jn_function_t f;
    if (!one_function(req, res, READ_CODE, &f))
        return;
    json_object *root = json_object_new_object();
    json_object_object_add(root, "type", json_object_new_string(f.type));
    json_object_object_add(root, "code", json_object_new_string(f.source ? f.source : ""));
    jn_http_respond_json(res, 200, root);
    jn_function_cleanup(&f);
}

static void delete_function(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)ud;
    if (!one_function(req, res, DELETE_FUNCTION, NULL))
        return;
    json_object *data = json_object_new_object();
    json_object_object_add(data, "success", json_object_new_boolean(1));
    jn_api_data(res, data);
}

void jn_routes_nango_functions(jn_gateway_t *gw, jn_http_server_t *http,
                               jn_functions_hook_fn on_delete)
{
    routes.gw = gw;
    routes.on_delete = on_delete;
    jn_http_route(http, "GET", "/integrations/:uniqueKey/functions", list_functions, gw);
    jn_http_route(http, "GET", "/integrations/:uniqueKey/functions/:name", get_function, gw);
    jn_http_route(http, "GET", "/integrations/:uniqueKey/functions/:name/code", get_code, gw);
    jn_http_route(http, "DELETE", "/integrations/:uniqueKey/functions/:name", delete_function, gw);
}
