/*
 * env_variables_api.c - an environment's variables (store/env_variables.h):
 *
 *   GET    /environment-variables                 Nango's: [{name, value}]
 *   GET    /junction/environment/variables        {data: [{name, created_at, updated_at}]}
 *   PUT    /junction/environment/variables        {variables: [{name, value}]}: the whole set
 *   PUT    /junction/environment/variables/:name  {value}: one (201 when created)
 *   DELETE /junction/environment/variables/:name  {success: true}
 *
 * Nango sets variables in its dashboard; these /junction routes are how a developer sets
 * them here. Values are secrets: only GET /environment-variables (and scripts) read them
 * back; the /junction routes answer names and dates. No error message and no log line
 * ever carries a value, and the parsed request's copies are wiped once stored.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "store/env_variables.h"

/* One value of the largest size fits, JSON-escaped at worst (12 bytes a character); a
 * whole set has the server's cap for JSON bodies (JUNCTION_MAX_JSON_BODY_BYTES). */
#define MAX_ONE_BODY (128u << 10)

/* Puts the parsed body after zeroing its strings (it held secrets). */
static void put_body(json_object *body)
{
    jn_json_wipe_strings(body);
    json_object_put(body);
}

static json_object *summary(const jn_env_variable_t *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(v->name));
    json_object_object_add(o, "created_at", json_object_new_string(v->created_at));
    json_object_object_add(o, "updated_at", json_object_new_string(v->updated_at));
    return o;
}

/* Answers the environment's variables: Nango's [{name, value}] with values, else our
 * summaries ({data: [...]}, or {data: {...}} of the one named one). */
static void respond_list(jn_gateway_t *gw, const jn_environment_t *env, bool values,
                         const char *one, int status, jn_http_response_t *res)
{
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_env_variable_t *list = NULL;
    size_t n = 0;
    jn_err_t err = jn_env_variables_list(conn, &gw->keyring, env->id, values, &list, &n);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_api_store_error(res, err, "environment variables");
        return;
    }
    json_object *out = one ? NULL : json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        if (one) {
            if (strcmp(list[i].name, one) == 0)
                out = summary(&list[i]);
            continue;
        }
        if (!values) {
            json_object_array_add(out, summary(&list[i]));
            continue;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(list[i].name));
        json_object_object_add(o, "value",
                               json_object_new_string_len(list[i].value, (int)list[i].value_len));
        json_object_array_add(out, o);
    }
    jn_env_variables_free(list, n);
    if (values) {
        jn_http_respond_json(res, status, out);
        return;
    }
    json_object *root = json_object_new_object();
    json_object_object_add(root, "data", out);
    jn_http_respond_json(res, status, root);
}

/* GET /environment-variables: Nango's, which takes no query and no body. */
static void get_public(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    jn_field_error_t e;
    const char *query = jn_http_raw_query(req);
    if (query && *query) {
        jn_field_error(&e, "", "takes no query parameters");
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    if (req->body_len) {
        jn_field_error(&e, "", "takes no body");
        jn_api_invalid(res, "invalid_body", &e);
        return;
    }
    respond_list(gw, &env, true, NULL, 200, res);
}

static void get_names(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (jn_api_begin(gw, req, res, &env))
        respond_list(gw, &env, false, NULL, 200, res);
}

/* Checks a variable's name; e names the field (path, under prefix). */
static jn_err_t check_name(const char *path, const char *name, jn_field_error_t *e)
{
    char shown[JN_SHOWN_CAP];
    if (jn_env_variable_name_valid(name))
        return JN_OK;
    return jn_field_error(e, path,
                          "'%s': a name is a letter or _, then letters, digits, _ . or - (at "
                          "most %d characters)",
                          jn_shown(shown, name, strlen(name)), JN_ENV_VARIABLE_NAME_MAX);
}

/* Checks a variable's value (a JSON value, NULL when absent); the error never shows it. */
static jn_err_t check_value(const char *path, json_object *value, jn_field_error_t *e)
{
    char why[128];
    if (!value)
        return jn_field_error(e, path, "is required");
    if (!json_object_is_type(value, json_type_string))
        return jn_field_error(e, path, "must be a string");
    if (!jn_env_variable_value_valid(json_object_get_string(value),
                                     (size_t)json_object_get_string_len(value), why, sizeof why))
        return jn_field_error(e, path, "%s", why);
    return JN_OK;
}

/* Reads {variables: [{name, value}]} into vars (borrowed from body). */
static jn_err_t read_set(json_object *body, jn_env_variable_input_t **vars, size_t *n,
                         jn_field_error_t *e)
{
    static const char *const fields[] = {"variables", NULL};
    static const char *const item_fields[] = {"name", "value", NULL};
    jn_err_t err = jn_json_only_keys(body, fields, "", e);
    if (err)
        return err;
    json_object *list = NULL;
    if (!json_object_object_get_ex(body, "variables", &list) ||
        !json_object_is_type(list, json_type_array))
        return jn_field_error(e, "variables", "is required: a list of {name, value}");
    size_t count = json_object_array_length(list);
    if (count > JN_ENV_VARIABLES_MAX)
        return jn_field_error(e, "variables", "at most %d variables per environment",
                              JN_ENV_VARIABLES_MAX);
    *vars = calloc(count ? count : 1, sizeof **vars);
    if (!*vars)
        abort();
    for (size_t i = 0; i < count; i++) {
        json_object *item = json_object_array_get_idx(list, i);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "variables.%zu", i);
        const char *name = NULL;
        if (!json_object_is_type(item, json_type_object))
            return jn_field_error(e, prefix, "must be an object {name, value}");
        if ((err = jn_json_only_keys(item, item_fields, prefix, e)))
            return err;
        if ((err = jn_json_string(item, "name", true, JN_ENV_VARIABLE_NAME_MAX * 4, &name, e))) {
            jn_field_error_nest(e, prefix);
            return err;
        }
        char path[48];
        snprintf(path, sizeof path, "%s.name", prefix);
        if ((err = check_name(path, name, e)))
            return err;
        snprintf(path, sizeof path, "%s.value", prefix);
        if ((err = check_value(path, json_object_object_get(item, "value"), e)))
            return err;
        for (size_t k = 0; k < i; k++) {
            if (strcmp((*vars)[k].name, name) == 0) {
                snprintf(path, sizeof path, "%s.name", prefix);
                return jn_field_error(e, path, "'%s' appears twice", name);
            }
        }
        json_object *value = json_object_object_get(item, "value");
        (*vars)[i] = (jn_env_variable_input_t){name, json_object_get_string(value),
                                               (size_t)json_object_get_string_len(value)};
        *n = i + 1;
    }
    return JN_OK;
}

static void put_set(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_env_variable_input_t *vars = NULL;
    size_t n = 0;
    jn_field_error_t e;
    if (read_set(body, &vars, &n, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        free(vars);
        put_body(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    jn_err_t err = conn ? jn_env_variables_replace(conn, &gw->keyring, env.id, vars, n) : JN_OK;
    jn_api_db_release(gw, conn);
    free(vars);
    put_body(body);
    if (!conn)
        return;
    if (err) {
        jn_api_store_error(res, err, "environment variables");
        return;
    }
    jn_log_info("env_variables", "environment %s: variables replaced (%zu now)", env.name, n);
    respond_list(gw, &env, false, NULL, 200, res);
}

static void put_one(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"value", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *name;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "name", JN_ENV_VARIABLE_NAME_MAX, &name))
        return;
    jn_field_error_t e;
    if (check_name("name", name, &e)) {
        jn_api_invalid(res, "invalid_uri_params", &e);
        return;
    }
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    if (jn_json_only_keys(body, fields, "", &e) ||
        check_value("value", json_object_object_get(body, "value"), &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        put_body(body);
        return;
    }
    json_object *value = json_object_object_get(body, "value");
    jn_env_variable_input_t var = {name, json_object_get_string(value),
                                   (size_t)json_object_get_string_len(value)};
    PGconn *conn = jn_api_db(gw, res);
    bool created = false;
    jn_err_t err = conn ? jn_env_variables_set(conn, &gw->keyring, env.id, &var, &created) : JN_OK;
    jn_api_db_release(gw, conn);
    put_body(body);
    if (!conn)
        return;
    if (err == JN_ERR_TOO_LARGE) {
        jn_http_respond_error(res, 409, "too_many_variables",
                              "the environment has %d variables already, the most it may have; "
                              "delete one first",
                              JN_ENV_VARIABLES_MAX);
        return;
    }
    if (err) {
        jn_api_store_error(res, err, "environment variable");
        return;
    }
    jn_log_info("env_variables", "environment %s: variable %s %s", env.name, name,
                created ? "created" : "updated");
    respond_list(gw, &env, false, name, created ? 201 : 200, res);
}

static void delete_one(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *name;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "name", JN_ENV_VARIABLE_NAME_MAX, &name))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_err_t err = jn_env_variables_delete(conn, env.id, name);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_NOT_FOUND) {
        char shown[JN_SHOWN_CAP];
        jn_http_respond_error(res, 404, "not_found", "environment variable '%s' was not found",
                              jn_shown(shown, name, strlen(name)));
        return;
    }
    if (err) {
        jn_api_store_error(res, err, "environment variable");
        return;
    }
    jn_log_info("env_variables", "environment %s: variable %s deleted", env.name, name);
    jn_api_success(res);
}

void jn_routes_env_variables(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/environment-variables", get_public, gw);
    jn_http_route(http, "GET", "/junction/environment/variables", get_names, gw);
    jn_http_route(http, "PUT", "/junction/environment/variables", put_set, gw);
    jn_http_route_add(http, &(jn_http_route_t){.method = "PUT",
                                               .pattern = "/junction/environment/variables/:name",
                                               .handler = put_one,
                                               .ud = gw,
                                               .max_body = MAX_ONE_BODY});
    jn_http_route(http, "DELETE", "/junction/environment/variables/:name", delete_one, gw);
}
