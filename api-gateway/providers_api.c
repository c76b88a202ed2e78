/*
 * providers_api.c - GET /providers, GET /providers/:provider (Nango's shapes) and the
 * custom-provider extension under /junction/providers.
 *
 * An environment sees the built-in catalog plus its own custom providers; a custom
 * provider is validated exactly like a catalog entry and cannot shadow a built-in name.
 */
#include "routes.h"

#include <string.h>
#include <strings.h>

#include "providers/custom_providers.h"

#define MAX_SEARCH 255
#define MAX_PROVIDER_NAME 64

/* The API shape of a provider: the entry plus logo_url (no logos are hosted). */
static json_object *api_provider(json_object *entry)
{
    json_object *copy = NULL;
    json_object_deep_copy(entry, &copy, NULL);
    json_object_object_add(copy, "logo_url", NULL);
    return copy;
}

static bool matches(json_object *entry, const char *search)
{
    if (!search || !*search)
        return true;
    const char *fields[] = {"name", "display_name"};
    for (size_t i = 0; i < 2; i++) {
        json_object *v = NULL;
        if (json_object_object_get_ex(entry, fields[i], &v) &&
            strcasestr(json_object_get_string(v), search))
            return true;
    }
    json_object *cats = NULL;
    if (json_object_object_get_ex(entry, "categories", &cats)) {
        for (size_t i = 0; i < json_object_array_length(cats); i++) {
            if (strcasecmp(json_object_get_string(json_object_array_get_idx(cats, i)), search) == 0)
                return true;
        }
    }
    return false;
}

static void list_providers(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *search = jn_http_query(req, "search");
    if (search && strlen(search) > MAX_SEARCH) {
        jn_field_error_t e;
        jn_field_error(&e, "search", "must be at most %d characters", MAX_SEARCH);
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    json_object *custom = NULL;
    jn_err_t err = jn_custom_providers_list(conn, env.id, &custom);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_api_store_error(res, err, "providers");
        return;
    }
    json_object *data = json_object_new_array();
    for (size_t i = 0; i < jn_catalog_count(gw->catalog); i++) {
        json_object *entry = jn_catalog_at(gw->catalog, i);
        if (matches(entry, search))
            json_object_array_add(data, api_provider(entry));
    }
    for (size_t i = 0; i < json_object_array_length(custom); i++) {
        json_object *entry = json_object_array_get_idx(custom, i);
        if (matches(entry, search))
            json_object_array_add(data, api_provider(entry));
    }
    json_object_put(custom);
    jn_api_data(res, data);
}

static void get_provider(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *name;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "provider", MAX_PROVIDER_NAME, &name))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    json_object *entry = NULL;
    jn_err_t err = jn_providers_lookup(gw->catalog, conn, env.id, name, &entry);
    jn_api_db_release(gw, conn);
    if (err) {
        char what[128];
        snprintf(what, sizeof what, "provider '%s'", name);
        jn_api_store_error(res, err, what);
        return;
    }
    jn_api_data(res, api_provider(entry));
    json_object_put(entry);
}

static void put_custom_provider(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *name;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "name", MAX_PROVIDER_NAME, &name))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    /* The name in the path is the name; the body may repeat it but not contradict it. */
    json_object *body_name = NULL;
    if (!json_object_object_get_ex(body, "name", &body_name))
        json_object_object_add(body, "name", json_object_new_string(name));
    char why[512];
    if (jn_catalog_validate(body, name, why, sizeof why) != JN_OK) {
        jn_field_error_t e;
        /* The validator's message names the provider and the field path already. */
        jn_field_error(&e, "", "%s", why);
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    if (jn_catalog_get(gw->catalog, name)) {
        jn_http_respond_error(res, 409, "conflict",
                              "'%s' is a built-in provider; choose another name for yours", name);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(body);
        return;
    }
    bool created = false;
    jn_err_t err = jn_custom_providers_put(gw->catalog, conn, env.id, body, &created);
    jn_api_db_release(gw, conn);
    if (err) {
        json_object_put(body);
        jn_api_store_error(res, err, "provider");
        return;
    }
    jn_api_data(res, api_provider(body));
    res->status = created ? 201 : 200;
    json_object_put(body);
}

static void list_custom_providers(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    json_object *list = NULL;
    jn_err_t err = jn_custom_providers_list(conn, env.id, &list);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_api_store_error(res, err, "providers");
        return;
    }
    jn_api_data(res, list);
}

static void delete_custom_provider(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *name;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "name", MAX_PROVIDER_NAME, &name))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_err_t err = jn_custom_providers_delete(conn, env.id, name);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_CONFLICT) {
        jn_http_respond_error(res, 409, "conflict",
                              "provider '%s' is still used by an integration; delete those first",
                              name);
        return;
    }
    if (err) {
        char what[128];
        snprintf(what, sizeof what, "custom provider '%s'", name);
        jn_api_store_error(res, err, what);
        return;
    }
    jn_api_success(res);
}

void jn_routes_providers(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/providers", list_providers, gw);
    jn_http_route(http, "GET", "/providers/:provider", get_provider, gw);
    jn_http_route(http, "GET", "/junction/providers", list_custom_providers, gw);
    jn_http_route(http, "PUT", "/junction/providers/:name", put_custom_provider, gw);
    jn_http_route(http, "DELETE", "/junction/providers/:name", delete_custom_provider, gw);
}
