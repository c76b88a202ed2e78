/*
 * providers_api.c - GET /providers, GET /providers/:provider (Nango's shapes) and the
 * custom-provider extension under /junction/providers.
 *
 * An environment sees the built-in catalog plus its own custom providers; a custom
 * provider is validated exactly like a catalog entry and cannot shadow a built-in name.
 */
#include "routes.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "providers/custom_providers.h"

#define MAX_SEARCH 255
#define MAX_PROVIDER_NAME 64

#define LOGO_PATH "/images/template-logos/"

void jn_logo_url(const char *server_url, const char *provider, char *out, size_t cap)
{
    snprintf(out, cap, "%s" LOGO_PATH "%s.svg", server_url, provider);
}

static bool get_bool(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static const char *get_string(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Field specs (connection_config, credentials) in Nango's SimplifiedJSONSchema: title and
 * description always, order (declaration order, from 1), automated, default_value. */
static void nango_field_specs(json_object *specs)
{
    if (!specs || !json_object_is_type(specs, json_type_object))
        return;
    int order = 1;
    json_object_object_foreach(specs, key, spec)
    {
        json_object *v = NULL;
        if (!get_string(spec, "title"))
            json_object_object_add(spec, "title", json_object_new_string(key));
        if (!get_string(spec, "description"))
            json_object_object_add(spec, "description", json_object_new_string(""));
        json_object_object_add(spec, "order", json_object_new_int(order++));
        json_object_object_add(spec, "automated",
                               json_object_new_boolean(get_bool(spec, "automated")));
        if (json_object_object_get_ex(spec, "default", &v)) {
            json_object_object_add(spec, "default_value", json_object_get(v));
            json_object_object_del(spec, "default");
        }
    }
}

/* The API shape of a provider: the catalog entry (docs/providers.md) said with Nango's
 * names, where ours differ, plus name and logo_url. The catalog's own format is unchanged;
 * this is only how GET /providers shows it. */
static json_object *api_provider(json_object *entry, const char *server_url)
{
    json_object *copy = NULL, *v = NULL;
    json_object_deep_copy(entry, &copy, NULL);
    /* PKCE: ours is opt-in (pkce: true), Nango's is on unless disable_pkce. */
    const char *mode = get_string(copy, "auth_mode");
    bool pkce = get_bool(copy, "pkce");
    json_object_object_del(copy, "pkce");
    if (mode && strcmp(mode, "OAUTH2") == 0 && !pkce)
        json_object_object_add(copy, "disable_pkce", json_object_new_boolean(1));
    /* Client credentials in the body are Nango's default, which has no name. */
    const char *method = get_string(copy, "token_request_auth_method");
    if (method && strcmp(method, "body") == 0)
        json_object_object_del(copy, "token_request_auth_method");
    if (json_object_object_get_ex(copy, "token_request_body_format", &v)) {
        json_object_object_add(copy, "body_format", json_object_get(v));
        json_object_object_del(copy, "token_request_body_format");
    }
    json_object *proxy = NULL, *paginate = NULL, *verification = NULL;
    if (json_object_object_get_ex(copy, "proxy", &proxy)) {
        /* Page numbers are Nango's offset pagination counting pages from 1. */
        const char *type = NULL;
        if (json_object_object_get_ex(proxy, "paginate", &paginate) &&
            (type = get_string(paginate, "type")) && strcmp(type, "page") == 0 &&
            json_object_object_get_ex(paginate, "page_name_in_request", &v)) {
            json_object_object_add(paginate, "offset_name_in_request", json_object_get(v));
            json_object_object_del(paginate, "page_name_in_request");
            json_object_object_add(paginate, "type", json_object_new_string("offset"));
            json_object_object_add(paginate, "offset_start_value", json_object_new_int(1));
            json_object_object_add(paginate, "offset_calculation_method",
                                   json_object_new_string("per-page"));
        }
        if (json_object_object_get_ex(proxy, "verification", &verification) &&
            !get_string(verification, "method"))
            json_object_object_add(verification, "method", json_object_new_string("GET"));
    }
    if (json_object_object_get_ex(copy, "connection_config", &v))
        nango_field_specs(v);
    if (json_object_object_get_ex(copy, "credentials", &v))
        nango_field_specs(v);
    char logo[512];
    jn_logo_url(server_url, get_string(copy, "name") ? get_string(copy, "name") : "unknown", logo,
                sizeof logo);
    json_object_object_add(copy, "logo_url", json_object_new_string(logo));
    return copy;
}

/* GET /images/template-logos/:file — Nango's logo path. No logos are shipped: every
 * provider gets a monogram, its initial on a colour drawn from its name, so that the
 * logo and logo_url fields always lead to an image. */
static void get_logo(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    (void)ud;
    const char *file = jn_http_param(req, "file");
    size_t len = file ? strlen(file) : 0;
    bool ok = len > 4 && len <= MAX_PROVIDER_NAME + 4 && strcmp(file + len - 4, ".svg") == 0;
    for (size_t i = 0; ok && i < len - 4; i++)
        ok = (file[i] >= 'a' && file[i] <= 'z') || (file[i] >= '0' && file[i] <= '9') ||
             file[i] == '-';
    if (!ok) {
        jn_http_respond_error(res, 404, "not_found", "no such logo");
        return;
    }
    unsigned hash = 2166136261u;
    for (size_t i = 0; i < len - 4; i++)
        hash = (hash ^ (unsigned char)file[i]) * 16777619u;
    char initial = file[0] >= 'a' && file[0] <= 'z' ? (char)(file[0] - 32) : file[0];
    char svg[512];
    snprintf(svg, sizeof svg,
             "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 64 64\" width=\"64\" "
             "height=\"64\"><rect width=\"64\" height=\"64\" rx=\"12\" "
             "fill=\"hsl(%u,55%%,45%%)\"/><text x=\"32\" y=\"43\" font-family=\"sans-serif\" "
             "font-size=\"30\" font-weight=\"600\" text-anchor=\"middle\" "
             "fill=\"#fff\">%c</text></svg>\n",
             hash % 360, initial);
    jn_http_respond_text(res, 200, "image/svg+xml", svg);
    jn_http_add_header(res, "Cache-Control", "public, max-age=86400");
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
            json_object_array_add(data, api_provider(entry, gw->engine->config.server_url));
    }
    for (size_t i = 0; i < json_object_array_length(custom); i++) {
        json_object *entry = json_object_array_get_idx(custom, i);
        if (matches(entry, search))
            json_object_array_add(data, api_provider(entry, gw->engine->config.server_url));
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
    jn_api_data(res, api_provider(entry, gw->engine->config.server_url));
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
    jn_api_data(res, api_provider(body, gw->engine->config.server_url));
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
    jn_http_route(http, "GET", LOGO_PATH ":file", get_logo, gw);
    jn_http_route(http, "GET", "/junction/providers", list_custom_providers, gw);
    jn_http_route(http, "PUT", "/junction/providers/:name", put_custom_provider, gw);
    jn_http_route(http, "DELETE", "/junction/providers/:name", delete_custom_provider, gw);
    jn_routes_templates(gw, http);
}
