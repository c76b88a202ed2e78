/*
 * functions_api.c - deploying and reading an integration's functions (Lua scripts).
 *
 *   PUT    /junction/integrations/:uniqueKey/functions        replace the whole set
 *   GET    /junction/integrations/:uniqueKey/functions        {data: [function]}
 *   GET    /junction/integrations/:uniqueKey/functions/:name  {data: function}
 *   GET    /junction/integrations/:uniqueKey/functions/:name/code[?version=previous]
 *   DELETE /junction/integrations/:uniqueKey/functions/:name  {success: true}
 *   GET    /scripts/config[?format=nango|openai]              Nango's shapes
 * (Nango's own routes to read and delete them are in functions_nango_api.c.)
 *
 * A deployment is all or nothing: every file is compiled and its declaration checked in
 * a sandbox (the declaration limits, and a budget for the whole request) before
 * anything is stored; the first bad file answers 400 naming "name:line: message" and
 * stores nothing. The set is then written in one transaction (store/functions.h).
 */
#include "routes.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "function_shapes.h"
#include "scripts/declaration.h"
#include "store/functions.h"
#include "store/integrations.h"
#include "store/syncs.h"

#define MAX_KEY 255
#define MAX_FUNCTIONS 100
#define MAX_SOURCE (512u << 10)
#define DEPLOY_BUDGET_MS 5000 /* sandbox time for all the files of one request */

static const char *const body_fields[] = {"functions", NULL};
static const char *const function_fields[] = {"name", "source", NULL};

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > JN_FUNCTION_NAME_MAX || !isalpha((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return false;
    }
    return true;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Where a deployment's effect on syncs is applied, inside its transaction: the
 * integration's syncs are made to match its sync scripts as they now are (new ones
 * scheduled on every connection, changed ones updated, removed ones stopped;
 * store/syncs.h). A declaration that the syncs store refuses rolls the deployment back. */
static jn_err_t apply_to_syncs(PGconn *conn, long long env_id, const jn_deployment_t *d, void *ud)
{
    (void)ud;
    json_object *list = NULL;
    jn_err_t err = jn_functions_sync_declarations(conn, env_id, d->integration_id, &list);
    if (err)
        return err;
    size_t n = json_object_array_length(list);
    jn_declaration_t *decls = calloc(n ? n : 1, sizeof *decls);
    jn_sync_decl_t *syncs = calloc(n ? n : 1, sizeof *syncs);
    if (!decls || !syncs)
        abort();
    char why[512];
    size_t k = 0;
    for (size_t i = 0; i < n && !err; i++) {
        err = jn_declaration_from_json(json_object_array_get_idx(list, i), &decls[k], why,
                                       sizeof why);
        if (err) {
            jn_log_error("functions", "a stored sync declaration is unreadable: %s", why);
            break;
        }
        const jn_declaration_t *decl = &decls[k++];
        jn_sync_decl_t *s = &syncs[k - 1];
        s->name = decl->name;
        s->full = decl->full_sync;
        s->track_deletes = decl->track_deletes;
        s->auto_start = decl->auto_start;
        s->frequency_s = (int)decl->frequency_seconds;
        s->model_count = jn_model_count(decl->models);
        const char **models = calloc(s->model_count ? s->model_count : 1, sizeof *models);
        if (!models)
            abort();
        for (size_t m = 0; m < s->model_count; m++)
            models[m] = jn_model_name(decl->models, m);
        s->models = models;
    }
    if (!err) {
        jn_sync_reconcile_counts_t counts;
        err =
            jn_syncs_reconcile(conn, env_id, d->integration_id, syncs, k, &counts, why, sizeof why);
        if (err)
            jn_log_warn("functions", "the deployment's syncs were refused: %s", why);
        else if (counts.created || counts.updated || counts.stopped)
            jn_log_info("functions", "syncs: %lld created, %lld updated, %lld stopped",
                        counts.created, counts.updated, counts.stopped);
    }
    for (size_t i = 0; i < k; i++) {
        free((void *)syncs[i].models);
        jn_declaration_cleanup(&decls[i]);
    }
    free(syncs);
    free(decls);
    json_object_put(list);
    return err;
}

/* ---- JSON shapes ---- */

static json_object *summary(const jn_function_t *f, bool with_declaration)
{
    json_object *o = json_object_new_object();
    json_object *decl = f->declaration;
    json_object_object_add(o, "name", json_object_new_string(f->name));
    json_object_object_add(o, "type", json_object_new_string(f->type));
    json_object_object_add(o, "version", json_object_get(json_object_object_get(decl, "version")));
    json_object_object_add(o, "description",
                           json_object_get(json_object_object_get(decl, "description")));
    json_object_object_add(o, "checksum", json_object_new_string(f->checksum));
    json_object_object_add(o, "deployed_at", json_object_new_string(f->deployed_at));
    json_object *prev = NULL;
    if (f->has_previous) {
        prev = json_object_new_object();
        json_object_object_add(
            prev, "version",
            json_object_get(json_object_object_get(f->previous_declaration, "version")));
        json_object_object_add(prev, "checksum", json_object_new_string(f->previous_checksum));
        json_object_object_add(prev, "deployed_at",
                               json_object_new_string(f->previous_deployed_at));
        if (with_declaration)
            json_object_object_add(prev, "declaration", json_object_get(f->previous_declaration));
    }
    json_object_object_add(o, "previous", prev);
    if (with_declaration)
        json_object_object_add(o, "declaration", json_object_get(decl));
    return o;
}

static void store_error(jn_http_response_t *res, jn_err_t err, const char *key, const char *name)
{
    char what[400];
    if (name)
        snprintf(what, sizeof what, "function '%s' of integration '%s'", name, key);
    else
        snprintf(what, sizeof what, "integration '%s'", key);
    jn_api_store_error(res, err, what);
}

/* ---- PUT ---- */

typedef struct {
    jn_function_input_t *inputs;
    jn_declaration_t *decls;
    size_t n;
} batch_t;

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        jn_declaration_cleanup(&b->decls[i]);
    free(b->inputs);
    free(b->decls);
}

/* Reads the body's functions (names, sources), answering 400 itself on a bad one. */
static bool read_functions(json_object *body, jn_http_response_t *res, json_object **list)
{
    jn_field_error_t e;
    if (jn_json_only_keys(body, body_fields, "", &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    json_object *fns = NULL;
    if (!json_object_object_get_ex(body, "functions", &fns) ||
        !json_object_is_type(fns, json_type_array)) {
        jn_field_error(&e, "functions", "is required: a list of {name, source}");
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    size_t n = json_object_array_length(fns);
    if (n > MAX_FUNCTIONS) {
        jn_field_error(&e, "functions", "at most %d functions per integration", MAX_FUNCTIONS);
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(fns, i);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "functions.%zu", i);
        const char *name = NULL, *source = NULL;
        jn_err_t err = JN_OK;
        if (!json_object_is_type(item, json_type_object))
            err = jn_field_error(&e, prefix, "must be an object {name, source}");
        if (!err)
            err = jn_json_only_keys(item, function_fields, prefix, &e);
        if (!err && (err = jn_json_string(item, "name", true, JN_FUNCTION_NAME_MAX, &name, &e)))
            jn_field_error_nest(&e, prefix);
        if (!err && (err = jn_json_string(item, "source", true, MAX_SOURCE, &source, &e)))
            jn_field_error_nest(&e, prefix);
        if (!err && !valid_name(name)) {
            char path[48];
            snprintf(path, sizeof path, "%s.name", prefix);
            err = jn_field_error(&e, path,
                                 "'%.64s': a name is a letter then letters, digits, - or _ (at "
                                 "most %d)",
                                 name, JN_FUNCTION_NAME_MAX);
        }
        for (size_t k = 0; !err && k < i; k++) {
            const char *other = json_object_get_string(
                json_object_object_get(json_object_array_get_idx(fns, k), "name"));
            if (strcmp(other, name) == 0) {
                char path[48];
                snprintf(path, sizeof path, "%s.name", prefix);
                err = jn_field_error(&e, path, "'%s' appears twice", name);
            }
        }
        if (err) {
            jn_api_invalid(res, "invalid_body", &e);
            return false;
        }
    }
    *list = fns;
    return true;
}

/* Compiles every file; answers 400 naming the first bad one. */
static bool compile_all(json_object *fns, jn_http_response_t *res, batch_t *b)
{
    size_t n = json_object_array_length(fns);
    b->inputs = calloc(n ? n : 1, sizeof *b->inputs);
    b->decls = calloc(n ? n : 1, sizeof *b->decls);
    if (!b->inputs || !b->decls)
        abort();
    int64_t deadline = mono_ms() + DEPLOY_BUDGET_MS;
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(fns, i);
        json_object *src = json_object_object_get(item, "source");
        const char *name = json_object_get_string(json_object_object_get(item, "name"));
        jn_sandbox_limits_t lim = jn_sandbox_limits_declaration();
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            jn_field_error_t e;
            char path[48];
            snprintf(path, sizeof path, "functions.%zu.source", i);
            jn_field_error(&e, path,
                           "%s: not loaded: loading the files before it took the %d ms a "
                           "deployment may spend; deploy fewer or lighter files",
                           name, DEPLOY_BUDGET_MS);
            jn_api_invalid(res, "invalid_body", &e);
            return false;
        }
        if (left < lim.wall_ms)
            lim.wall_ms = left;
        jn_script_error_t err;
        if (jn_declaration_load(name, json_object_get_string(src),
                                (size_t)json_object_get_string_len(src), &lim, &b->decls[i],
                                &err) != JN_SCRIPT_OK) {
            jn_field_error_t e;
            char path[48];
            snprintf(path, sizeof path, "functions.%zu.source", i);
            jn_field_error(&e, path, "%s", err.message);
            jn_script_error_cleanup(&err);
            jn_api_invalid(res, "invalid_body", &e);
            return false;
        }
        b->n = i + 1;
        b->inputs[i] = (jn_function_input_t){
            .name = name,
            .type = b->decls[i].kind == JN_SCRIPT_SYNC ? "sync" : "action",
            .source = json_object_get_string(src),
            .source_len = (size_t)json_object_get_string_len(src),
            .declaration = b->decls[i].json,
        };
    }
    return true;
}

static void deploy_functions(const jn_http_request_t *req, jn_http_response_t *res, void *ud);

/* Deployments compile scripts for up to seconds: they run on the gateway's pool for long
 * requests. */
static void offload_deploy(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_api_offload(ud, req, res, deploy_functions, ud);
}

static void deploy_functions(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
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
    json_object *fns = NULL;
    batch_t b = {0};
    PGconn *conn = NULL;
    if (!read_functions(body, res, &fns))
        goto out;
    /* An unknown integration is answered before any script runs. */
    if (!(conn = jn_api_db(gw, res)))
        goto out;
    jn_integration_t it;
    jn_err_t err = jn_integrations_get(conn, &gw->keyring, env.id, key, false, &it);
    jn_api_db_release(gw, conn);
    conn = NULL;
    if (err) {
        store_error(res, err, key, NULL);
        goto out;
    }
    jn_integration_cleanup(&it);
    /* Compiling takes up to DEPLOY_BUDGET_MS: one of the environment's long-work slots. */
    if (!jn_api_long_begin(gw, env.id)) {
        jn_api_long_busy(res);
        goto out;
    }
    bool compiled = compile_all(fns, res, &b);
    jn_api_long_end(gw, env.id);
    if (!compiled)
        goto out;
    if (!(conn = jn_api_db(gw, res)))
        goto out;
    jn_deployment_t d;
    err = jn_functions_deploy(conn, env.id, key, b.inputs, b.n, apply_to_syncs, gw, &d);
    if (err) {
        store_error(res, err, key, NULL);
        goto out;
    }
    jn_function_t *list = NULL;
    size_t count = 0;
    err = jn_functions_list(conn, env.id, key, &list, &count);
    json_object *data = json_object_new_object();
    json_object_object_add(data, "integration", json_object_new_string(key));
    json_object_object_add(data, "added", json_object_get(d.added));
    json_object_object_add(data, "changed", json_object_get(d.changed));
    json_object_object_add(data, "unchanged", json_object_get(d.unchanged));
    json_object_object_add(data, "removed", json_object_get(d.removed));
    json_object *all = json_object_new_array();
    for (size_t i = 0; !err && i < count; i++)
        json_object_array_add(all, summary(&list[i], false));
    for (size_t i = 0; i < count; i++)
        jn_function_cleanup(&list[i]);
    free(list);
    json_object_object_add(data, "functions", all);
    jn_log_info("functions", "integration %s: %zu added, %zu changed, %zu removed", key,
                json_object_array_length(d.added), json_object_array_length(d.changed),
                json_object_array_length(d.removed));
    jn_deployment_cleanup(&d);
    jn_api_data(res, data);
out:
    jn_api_db_release(gw, conn);
    batch_free(&b);
    json_object_put(body);
}

/* ---- reads ---- */

static void list_functions(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
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
    jn_function_t *list = NULL;
    size_t n = 0;
    jn_err_t err = jn_functions_list(conn, env.id, key, &list, &n);
    jn_api_db_release(gw, conn);
    if (err) {
        store_error(res, err, key, NULL);
        return;
    }
    json_object *data = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object_array_add(data, summary(&list[i], false));
        jn_function_cleanup(&list[i]);
    }
    free(list);
    jn_api_data(res, data);
}

/* Reads :uniqueKey and :name and loads the function; answers errors itself. */
static bool load_function(jn_gateway_t *gw, const jn_http_request_t *req, jn_http_response_t *res,
                          bool with_source, jn_function_t *f)
{
    jn_environment_t env;
    const char *key, *name;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "uniqueKey", MAX_KEY, &key) ||
        !jn_api_uri_param(req, res, "name", JN_FUNCTION_NAME_MAX, &name))
        return false;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return false;
    jn_err_t err = jn_functions_get(conn, env.id, key, name, with_source, f);
    jn_api_db_release(gw, conn);
    if (err) {
        store_error(res, err, key, name);
        return false;
    }
    return true;
}

static void get_function(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_function_t f;
    if (!load_function(ud, req, res, false, &f))
        return;
    jn_api_data(res, summary(&f, true));
    jn_function_cleanup(&f);
}

static void get_code(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    const char *version = jn_http_query(req, "version");
    if (version && strcmp(version, "current") != 0 && strcmp(version, "previous") != 0) {
        jn_field_error_t e;
        jn_field_error(&e, "version", "must be current or previous");
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    bool previous = version && strcmp(version, "previous") == 0;
    jn_function_t f;
    if (!load_function(ud, req, res, true, &f))
        return;
    if (previous && !f.has_previous)
        jn_http_respond_error(res, 404, "not_found", "function '%s' has no previous version",
                              f.name);
    else
        jn_http_respond_text(res, 200, "text/x-lua; charset=utf-8",
                             previous ? f.previous_source : f.source);
    jn_function_cleanup(&f);
}

static void delete_function(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    const char *key, *name;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "uniqueKey", MAX_KEY, &key) ||
        !jn_api_uri_param(req, res, "name", JN_FUNCTION_NAME_MAX, &name))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_err_t err = jn_functions_delete(conn, env.id, key, name, apply_to_syncs, gw);
    jn_api_db_release(gw, conn);
    if (err) {
        store_error(res, err, key, name);
        return;
    }
    jn_api_success(res);
}

/* ---- GET /scripts/config ---- */

static void scripts_config(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *format = jn_http_query(req, "format");
    if (format && strcmp(format, "nango") != 0 && strcmp(format, "openai") != 0) {
        jn_field_error_t e;
        jn_field_error(&e, "format", "must be nango or openai");
        jn_api_invalid(res, "invalid_query_params", &e);
        return;
    }
    bool openai = format && strcmp(format, "openai") == 0;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_function_t *list = NULL;
    size_t n = 0;
    jn_err_t err = jn_functions_list(conn, env.id, NULL, &list, &n);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_api_store_error(res, err, "functions");
        return;
    }
    json_object *out = json_object_new_array(), *entry = NULL;
    const char *current = NULL;
    for (size_t i = 0; i < n; i++) {
        jn_declaration_t d;
        char why[512];
        if (jn_declaration_from_json(list[i].declaration, &d, why, sizeof why)) {
            jn_log_warn("functions", "integration %s: stored declaration refused: %s",
                        list[i].integration, why);
            continue;
        }
        if (openai) {
            json_object_array_add(out,
                                  jn_shape_openai_function(list[i].name, list[i].provider, &d));
        } else {
            if (!current || strcmp(current, list[i].integration) != 0) {
                entry = json_object_new_object();
                json_object_object_add(entry, "providerConfigKey",
                                       json_object_new_string(list[i].integration));
                json_object_object_add(entry, "provider", json_object_new_string(list[i].provider));
                json_object_object_add(entry, "syncs", json_object_new_array());
                json_object_object_add(entry, "actions", json_object_new_array());
                json_object_object_add(entry, "on-events", json_object_new_array());
                json_object_array_add(out, entry);
                current = list[i].integration;
            }
            json_object_array_add(
                json_object_object_get(entry, d.kind == JN_SCRIPT_SYNC ? "syncs" : "actions"),
                jn_shape_script_config(&list[i], &d));
        }
        jn_declaration_cleanup(&d);
    }
    for (size_t i = 0; i < n; i++)
        jn_function_cleanup(&list[i]);
    free(list);
    if (openai) {
        jn_api_data(res, out);
        return;
    }
    jn_http_respond_json(res, 200, out);
}

void jn_routes_functions(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "PUT", "/junction/integrations/:uniqueKey/functions", offload_deploy, gw);
    jn_http_route(http, "GET", "/junction/integrations/:uniqueKey/functions", list_functions, gw);
    jn_http_route(http, "GET", "/junction/integrations/:uniqueKey/functions/:name", get_function,
                  gw);
    jn_http_route(http, "GET", "/junction/integrations/:uniqueKey/functions/:name/code", get_code,
                  gw);
    jn_http_route(http, "DELETE", "/junction/integrations/:uniqueKey/functions/:name",
                  delete_function, gw);
    jn_http_route(http, "GET", "/scripts/config", scripts_config, gw);
    jn_routes_nango_functions(gw, http, apply_to_syncs);
}
