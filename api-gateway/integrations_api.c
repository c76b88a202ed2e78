/*
 * integrations_api.c - /integrations with Nango's paths and JSON shapes.
 *
 *   GET    /integrations                      {data: [ApiPublicIntegration]}
 *   POST   /integrations                      {data: ApiPublicIntegration}
 *   POST   /integrations/quickstart           400: Junction has no developer apps to share
 *   GET    /integrations/:uniqueKey?include=credentials&include=webhook
 *          (webhook: the URL the provider posts webhooks to, when it sends any, and
 *          whether a webhook secret is set)
 *   PATCH  /integrations/:uniqueKey           (unique_key in the body renames)
 *   DELETE /integrations/:uniqueKey           {success: true}
 * Bodies are checked field by field before anything is stored; a bad request changes
 * nothing.
 */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "providers/custom_providers.h"
#include "providers/webhook_spec.h"
#include "store/integrations.h"

#define MAX_KEY 255
#define MAX_NAME 255
#define MAX_CLIENT_ID 1024
#define MAX_SECRET 8192
#define MAX_SCOPES 4096
#define MAX_CONFIG_VALUE 4096

static const char *const body_fields[] = {"provider",    "unique_key",       "display_name",
                                          "credentials", "forward_webhooks", "integration_config",
                                          "custom",      "webhook_secret",   NULL};
static const char *const credential_fields[] = {"type",   "client_id",      "client_secret",
                                                "scopes", "webhook_secret", NULL};

static bool valid_unique_key(const char *key)
{
    for (const char *p = key; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("~:.@ _-", c)))
            return false;
    }
    return true;
}

static const char *provider_auth_mode(json_object *provider)
{
    json_object *mode = NULL;
    json_object_object_get_ex(provider, "auth_mode", &mode);
    return mode ? json_object_get_string(mode) : "";
}

/* Reads the credentials object into in. provider is the (new or current) provider entry. */
static jn_err_t read_credentials(json_object *body, json_object *provider,
                                 jn_integration_input_t *in, jn_field_error_t *e)
{
    json_object *creds = NULL;
    if (!json_object_object_get_ex(body, "credentials", &creds) || !creds)
        return JN_OK;
    if (!json_object_is_type(creds, json_type_object))
        return jn_field_error(e, "credentials", "must be an object");
    jn_err_t err = jn_json_only_keys(creds, credential_fields, "credentials", e);
    if (err)
        return err;
    const char *type;
    if ((err = jn_json_string(creds, "type", true, 16, &type, e))) {
        jn_field_error_nest(e, "credentials");
        return err;
    }
    if (strcmp(type, "OAUTH2") != 0 && strcmp(type, "OAUTH1") != 0 && strcmp(type, "TBA") != 0)
        return jn_field_error(e, "credentials.type", "must be OAUTH2, OAUTH1 or TBA");
    const char *mode = provider_auth_mode(provider);
    bool oauth2 = strcmp(mode, "OAUTH2") == 0 || strcmp(mode, "OAUTH2_CC") == 0;
    if (!oauth2)
        return jn_field_error(e, "credentials",
                              "the provider's auth mode is %s: its integrations take no OAuth "
                              "client credentials (connections carry their own)",
                              mode);
    if (strcmp(type, "OAUTH2") != 0)
        return jn_field_error(e, "credentials.type", "must be OAUTH2 for an %s provider", mode);
    const char *webhook_secret = NULL;
    struct {
        const char *key;
        size_t max;
        const char **dst;
    } fields[] = {
        {"client_id", MAX_CLIENT_ID, &in->client_id},
        {"client_secret", MAX_SECRET, &in->client_secret},
        {"scopes", MAX_SCOPES, &in->scopes},
        {"webhook_secret", MAX_SECRET, &webhook_secret},
    };
    for (size_t i = 0; i < 4; i++) {
        if ((err = jn_json_string(creds, fields[i].key, false, fields[i].max, fields[i].dst, e))) {
            jn_field_error_nest(e, "credentials");
            return err;
        }
    }
    if (webhook_secret && in->webhook_secret)
        return jn_field_error(e, "credentials.webhook_secret",
                              "the webhook secret is given twice (here and in webhook_secret)");
    if (webhook_secret)
        in->webhook_secret = webhook_secret;
    in->has_credentials = true;
    in->credentials_type = type;
    return JN_OK;
}

/* Reads every field but provider/credentials (which need the provider entry). */
static jn_err_t read_common(json_object *body, bool creating, jn_integration_input_t *in,
                            jn_field_error_t *e)
{
    jn_err_t err = jn_json_only_keys(body, body_fields, "", e);
    if (!err)
        err = jn_json_string(body, "unique_key", creating, MAX_KEY, &in->unique_key, e);
    if (!err && in->unique_key && !*in->unique_key)
        err = jn_field_error(e, "unique_key", "may not be empty");
    if (!err && in->unique_key && !valid_unique_key(in->unique_key))
        err = jn_field_error(e, "unique_key",
                             "may contain only letters, digits, spaces and ~ : . @ _ -");
    if (!err)
        err = jn_json_string(body, "display_name", false, MAX_NAME, &in->display_name, e);
    if (!err)
        err = jn_json_bool(body, "forward_webhooks", &in->forward_webhooks,
                           &in->has_forward_webhooks, e);
    if (!err)
        err = jn_json_string_map(body, "integration_config", MAX_CONFIG_VALUE,
                                 &in->integration_config, e);
    if (!err)
        err = jn_json_string_map(body, "custom", MAX_CONFIG_VALUE, &in->custom, e);
    /* The secret provider webhooks are verified with, for any provider ("" clears it). */
    if (!err)
        err = jn_json_string(body, "webhook_secret", false, MAX_SECRET, &in->webhook_secret, e);
    return err;
}

static json_object *api_integration(const jn_gateway_t *gw, const jn_integration_t *it)
{
    char logo[512];
    jn_logo_url(gw->engine->config.server_url, it->provider, logo, sizeof logo);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "unique_key", json_object_new_string(it->unique_key));
    json_object_object_add(o, "provider", json_object_new_string(it->provider));
    json_object_object_add(o, "display_name",
                           it->display_name ? json_object_new_string(it->display_name) : NULL);
    json_object_object_add(o, "logo", json_object_new_string(logo));
    json_object_object_add(o, "forward_webhooks", json_object_new_boolean(it->forward_webhooks));
    json_object_object_add(o, "created_at", json_object_new_string(it->created_at));
    json_object_object_add(o, "updated_at", json_object_new_string(it->updated_at));
    return o;
}

static void list_integrations(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_integration_t *list = NULL;
    size_t n = 0;
    jn_err_t err = jn_integrations_list(conn, env.id, &list, &n);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_api_store_error(res, err, "integrations");
        return;
    }
    json_object *data = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object_array_add(data, api_integration(gw, &list[i]));
        jn_integration_cleanup(&list[i]);
    }
    free(list);
    jn_api_data(res, data);
}

/* Looks the provider up for the environment; answers 400 (unknown) or 503 itself. */
static json_object *resolve_provider(jn_gateway_t *gw, PGconn *conn, long long env_id,
                                     const char *name, jn_http_response_t *res)
{
    json_object *provider = NULL;
    jn_err_t err = jn_providers_lookup(gw->catalog, conn, env_id, name, &provider);
    if (err == JN_ERR_NOT_FOUND) {
        jn_field_error_t e;
        jn_field_error(&e, "provider", "unknown provider '%s' (see GET /providers)", name);
        jn_api_invalid(res, "invalid_body", &e);
        return NULL;
    }
    if (err) {
        jn_api_store_error(res, err, "provider");
        return NULL;
    }
    return provider;
}

static const char *default_display_name(json_object *provider)
{
    json_object *v = NULL;
    return json_object_object_get_ex(provider, "display_name", &v) ? json_object_get_string(v)
                                                                   : NULL;
}

static void respond_integration(const jn_gateway_t *gw, jn_http_response_t *res,
                                jn_integration_t *it)
{
    jn_api_data(res, api_integration(gw, it));
    jn_integration_cleanup(it);
}

static void create_integration(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_integration_input_t in = {0};
    jn_field_error_t e;
    if (read_common(body, true, &in, &e) ||
        jn_json_string(body, "provider", true, MAX_NAME, &in.provider, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(body);
        return;
    }
    json_object *provider = resolve_provider(gw, conn, env.id, in.provider, res);
    if (provider) {
        if (read_credentials(body, provider, &in, &e)) {
            jn_api_invalid(res, "invalid_body", &e);
        } else {
            if (!in.display_name)
                in.display_name = default_display_name(provider);
            jn_integration_t it;
            jn_err_t err = jn_integrations_create(conn, &gw->keyring, env.id, &in, &it);
            if (err == JN_ERR_CONFLICT)
                jn_http_respond_error(res, 409, "duplicate_unique_key",
                                      "an integration with unique_key '%s' already exists",
                                      in.unique_key);
            else if (err)
                jn_api_store_error(res, err, "integration");
            else
                respond_integration(gw, res, &it);
        }
        json_object_put(provider);
    }
    jn_api_db_release(gw, conn);
    json_object_put(body);
}

/* Nango's quickstart creates an integration with a developer app (OAuth client) of Nango's
 * own. Junction has none to share, so after the checks Nango makes (the body, the
 * provider) this answers what Nango answers for a provider it has no app for, saying how
 * to create the integration instead; nothing is stored. */
static void create_quickstart(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"provider", "unique_key", "display_name",
                                         "forward_webhooks", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_integration_input_t in = {0};
    jn_field_error_t e;
    if (jn_json_only_keys(body, fields, "", &e) || read_common(body, true, &in, &e) ||
        jn_json_string(body, "provider", true, MAX_NAME, &in.provider, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    json_object *provider = conn ? resolve_provider(gw, conn, env.id, in.provider, res) : NULL;
    jn_api_db_release(gw, conn);
    if (provider) {
        const char *mode = provider_auth_mode(provider);
        if (strcmp(mode, "OAUTH2") == 0 || strcmp(mode, "OAUTH1") == 0 ||
            strcmp(mode, "APP") == 0 || strcmp(mode, "CUSTOM") == 0)
            jn_http_respond_error(res, 400, "invalid_body",
                                  "No shared developer app is configured for provider '%s': "
                                  "create the integration with your own OAuth client "
                                  "(POST /integrations with credentials)",
                                  in.provider);
        else
            jn_http_respond_error(res, 400, "invalid_body",
                                  "Quickstart is only available for providers that require a "
                                  "developer app; provider '%s' (%s) needs none: create the "
                                  "integration with POST /integrations",
                                  in.provider, mode);
        json_object_put(provider);
    }
    json_object_put(body);
}

typedef struct {
    bool credentials, webhook;
    const char *bad;
} include_t;

static void collect_include(const char *value, void *ud)
{
    include_t *inc = ud;
    /* Accept both include=a&include=b and include=a,b. */
    char copy[128];
    snprintf(copy, sizeof copy, "%s", value);
    char *save = NULL;
    for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        if (strcmp(part, "credentials") == 0)
            inc->credentials = true;
        else if (strcmp(part, "webhook") == 0)
            inc->webhook = true;
        else if (!inc->bad)
            inc->bad = value;
    }
    if (strlen(value) >= sizeof copy && !inc->bad)
        inc->bad = value;
}

static json_object *api_credentials(const jn_integration_t *it)
{
    if (!it->credentials_type)
        return NULL;
    json_object *c = json_object_new_object();
    json_object_object_add(c, "type", json_object_new_string(it->credentials_type));
    json_object_object_add(c, "client_id",
                           it->client_id ? json_object_new_string(it->client_id) : NULL);
    json_object_object_add(c, "client_secret",
                           it->client_secret ? json_object_new_string(it->client_secret) : NULL);
    json_object_object_add(c, "scopes", it->scopes ? json_object_new_string(it->scopes) : NULL);
    /* Never returned: the webhook secret is written, not read (include=webhook says whether
     * one is set). */
    json_object_object_add(c, "webhook_secret", NULL);
    return c;
}

static void get_integration(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *key;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "uniqueKey", MAX_KEY, &key))
        return;
    include_t inc = {0};
    jn_http_query_each(req, "include", collect_include, &inc);
    if (inc.bad) {
        jn_field_error_t e;
        jn_field_error(&e, "include", "unknown value '%.64s' (use credentials or webhook)",
                       inc.bad);
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_integration_t it;
    jn_err_t err = jn_integrations_get(conn, &gw->keyring, env.id, key, inc.credentials, &it);
    /* A webhook URL is advertised only where webhooks are received: its provider says how
     * they are signed. */
    bool receives = false;
    json_object *provider = NULL;
    if (!err && inc.webhook &&
        jn_providers_lookup(gw->catalog, conn, env.id, it.provider, &provider) == JN_OK) {
        jn_webhook_spec_t spec;
        receives = jn_webhook_spec_read(provider, &spec) == JN_OK;
        json_object_put(provider);
    }
    jn_api_db_release(gw, conn);
    if (err) {
        char what[320];
        snprintf(what, sizeof what, "integration '%s'", key);
        jn_api_store_error(res, err, what);
        return;
    }
    json_object *data = api_integration(gw, &it);
    if (inc.credentials)
        json_object_object_add(data, "credentials", api_credentials(&it));
    if (receives) {
        char url[1024];
        jn_provider_webhook_url(gw, &env, it.unique_key, url, sizeof url);
        json_object_object_add(data, "webhook_url", json_object_new_string(url));
    }
    if (inc.webhook)
        json_object_object_add(data, "has_webhook_secret",
                               json_object_new_boolean(it.has_webhook_secret));
    jn_integration_cleanup(&it);
    jn_api_data(res, data);
}

static void update_integration(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *key;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "uniqueKey", MAX_KEY, &key))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_integration_input_t in = {0};
    jn_field_error_t e;
    if (read_common(body, false, &in, &e) ||
        jn_json_string(body, "provider", false, MAX_NAME, &in.provider, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(body);
        return;
    }
    jn_integration_t current;
    jn_err_t err = jn_integrations_get(conn, &gw->keyring, env.id, key, false, &current);
    if (err) {
        char what[320];
        snprintf(what, sizeof what, "integration '%s'", key);
        jn_api_store_error(res, err, what);
    } else {
        json_object *provider =
            resolve_provider(gw, conn, env.id, in.provider ? in.provider : current.provider, res);
        if (provider && read_credentials(body, provider, &in, &e)) {
            jn_api_invalid(res, "invalid_body", &e);
        } else if (provider) {
            jn_integration_t it;
            err = jn_integrations_update(conn, &gw->keyring, env.id, key, &in, &it);
            if (err == JN_ERR_CONFLICT)
                jn_http_respond_error(res, 409, "duplicate_unique_key",
                                      "an integration with unique_key '%s' already exists",
                                      in.unique_key ? in.unique_key : key);
            else if (err)
                jn_api_store_error(res, err, "integration");
            else
                respond_integration(gw, res, &it);
        }
        json_object_put(provider);
        jn_integration_cleanup(&current);
    }
    jn_api_db_release(gw, conn);
    json_object_put(body);
}

static void delete_integration(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *key;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "uniqueKey", MAX_KEY, &key))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_err_t err = jn_integrations_delete(conn, env.id, key);
    jn_api_db_release(gw, conn);
    if (err) {
        char what[320];
        snprintf(what, sizeof what, "integration '%s'", key);
        jn_api_store_error(res, err, what);
        return;
    }
    jn_api_success(res);
}

void jn_routes_integrations(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/integrations", list_integrations, gw);
    jn_http_route(http, "POST", "/integrations", create_integration, gw);
    jn_http_route(http, "POST", "/integrations/quickstart", create_quickstart, gw);
    jn_http_route(http, "GET", "/integrations/:uniqueKey", get_integration, gw);
    jn_http_route(http, "PATCH", "/integrations/:uniqueKey", update_integration, gw);
    jn_http_route(http, "DELETE", "/integrations/:uniqueKey", delete_integration, gw);
}
