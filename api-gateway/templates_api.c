/*
 * templates_api.c - function templates: the scripts of examples/<provider>/, compiled
 * into the gateway (core/embedded.h), offered per provider in Nango's shapes.
 *
 *   GET /providers/:provider/templates
 *       {data: [NangoActionFunction | NangoSyncFunction]}: the provider's actions, then
 *       its syncs, each by name; [] for a provider without templates (as Nango)
 *   GET /junction/providers/:provider/templates/:name/code
 *       the template's Lua source (text/x-lua), to deploy it with
 *       PUT /junction/integrations/:uniqueKey/functions
 *
 * The templates are read once, at start-up, each in a sandbox under the declaration
 * limits exactly as a deployment reads a script; one that does not load is logged and
 * left out (a test keeps every example loading). They never change afterwards, so the
 * handlers read them without a lock.
 */
#include "routes.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/embedded.h"
#include "core/log.h"
#include "function_shapes.h"
#include "scripts/declaration.h"

#define MAX_PROVIDER 255

typedef struct {
    char provider[64];
    char name[JN_SCRIPT_NAME_MAX];
    const char *source; /* embedded */
    size_t len;
    jn_declaration_t decl;
} template_t;

/* Loaded at registration, read-only afterwards, for the life of the process. */
static template_t *templates;
static size_t template_count;

/* By provider, then actions before syncs (Nango's order), then name. */
static int compare(const void *a, const void *b)
{
    const template_t *x = a, *y = b;
    int c = strcmp(x->provider, y->provider);
    if (c)
        return c;
    if (x->decl.kind != y->decl.kind)
        return x->decl.kind == JN_SCRIPT_ACTION ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void load_templates(void)
{
    templates =
        calloc(jn_embedded_templates_count ? jn_embedded_templates_count : 1, sizeof *templates);
    if (!templates)
        abort();
    for (size_t i = 0; i < jn_embedded_templates_count; i++) {
        const jn_embedded_file_t *file = &jn_embedded_templates[i];
        template_t *t = &templates[template_count];
        const char *slash = strchr(file->name, '/');
        const char *dot = strrchr(file->name, '.');
        if (!slash || !dot || dot < slash || (size_t)(slash - file->name) >= sizeof t->provider ||
            (size_t)(dot - slash - 1) >= sizeof t->name) {
            jn_log_error("templates", "%s: not <provider>/<name>.lua; left out", file->name);
            continue;
        }
        snprintf(t->provider, sizeof t->provider, "%.*s", (int)(slash - file->name), file->name);
        snprintf(t->name, sizeof t->name, "%.*s", (int)(dot - slash - 1), slash + 1);
        t->source = file->data;
        t->len = file->len;
        jn_sandbox_limits_t lim = jn_sandbox_limits_declaration();
        jn_script_error_t err;
        if (jn_declaration_load(t->name, t->source, t->len, &lim, &t->decl, &err) != JN_SCRIPT_OK) {
            jn_log_error("templates", "%s: %s; left out", file->name, err.message);
            jn_script_error_cleanup(&err);
            continue;
        }
        template_count++;
    }
    qsort(templates, template_count, sizeof *templates, compare);
    jn_log_info("templates", "%zu function templates loaded", template_count);
}

/* Reads :provider (Nango's provider names: letters, digits, _ and -); answers 400. */
static bool provider_param(const jn_http_request_t *req, jn_http_response_t *res, const char **out)
{
    if (!jn_api_uri_param(req, res, "provider", MAX_PROVIDER, out))
        return false;
    for (const char *p = *out; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
            jn_field_error_t e;
            jn_field_error(&e, "provider", "may contain only letters, digits, _ and -");
            jn_api_invalid(res, "invalid_uri_params", &e);
            return false;
        }
    }
    return true;
}

static void get_templates(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *query = jn_http_raw_query(req);
    if (query && *query) {
        jn_field_error_t e;
        jn_field_error(&e, "", "takes no query parameters");
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    const char *provider;
    if (!provider_param(req, res, &provider))
        return;
    json_object *data = json_object_new_array();
    for (size_t i = 0; i < template_count; i++) {
        const template_t *t = &templates[i];
        if (strcmp(t->provider, provider) == 0)
            json_object_array_add(
                data, jn_shape_function(t->name, t->decl.kind == JN_SCRIPT_SYNC ? "sync" : "action",
                                        &t->decl));
    }
    jn_api_data(res, data);
}

static void get_template_code(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *provider, *name;
    if (!jn_api_begin(gw, req, res, &env) || !provider_param(req, res, &provider) ||
        !jn_api_uri_param(req, res, "name", JN_SCRIPT_NAME_MAX, &name))
        return;
    for (size_t i = 0; i < template_count; i++) {
        const template_t *t = &templates[i];
        if (strcmp(t->provider, provider) == 0 && strcmp(t->name, name) == 0) {
            jn_http_respond_text(res, 200, "text/x-lua; charset=utf-8", t->source);
            return;
        }
    }
    char shown[JN_SHOWN_CAP];
    jn_http_respond_error(res, 404, "not_found", "provider '%s' has no template '%s'", provider,
                          jn_shown(shown, name, strlen(name)));
}

void jn_routes_templates(jn_gateway_t *gw, jn_http_server_t *http)
{
    if (!templates)
        load_templates();
    jn_http_route(http, "GET", "/providers/:provider/templates", get_templates, gw);
    jn_http_route(http, "GET", "/junction/providers/:provider/templates/:name/code",
                  get_template_code, gw);
}
