/*
 * environment_api.c - GET/PATCH /junction/environment: the calling environment's own
 * settings: its egress allow-list (internal addresses its providers may live at) and the
 * origins whose pages may call the end-user routes (CORS), and its scripts' limits per kind
 * of run (scripts/limits.h). PATCH sets what it is given; script_limits is replaced whole
 * ({} restores the defaults). GET shows the settings and the limits in force.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "cors.h"
#include "providers/egress.h"
#include "scripts/limits.h"
#include "store/environments.h"

static json_object *environment_json(const jn_environment_t *env, const char *cors)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(env->name));
    json_object_object_add(o, "uuid", json_object_new_string(env->uuid));
    json_object_object_add(o, "egress_allowlist", json_object_new_string(env->egress_allowlist));
    json_object_object_add(o, "cors_allowed_origins", json_object_new_string(cors ? cors : ""));
    json_object *limits = json_tokener_parse(env->script_limits);
    json_object_object_add(o, "script_limits", limits ? limits : json_object_new_object());
    json_object_object_add(o, "script_limits_in_force",
                           jn_script_limits_effective(env->script_limits));
    return o;
}

static void get_environment(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    char *cors = NULL;
    jn_err_t err = jn_environments_get_cors_origins(conn, env.id, &cors);
    jn_api_db_release(gw, conn);
    if (err)
        jn_api_store_error(res, err, "environment");
    else
        jn_api_data(res, environment_json(&env, cors));
    free(cors);
}

/* Cloud metadata services answer the host's own credentials to whoever asks from it:
 * an environment may admit internal ranges for its providers, never these. */
static const char *const metadata_addresses[] = {
    "169.254.169.254", /* AWS, GCP, Azure, OpenStack, DigitalOcean */
    "169.254.170.2",   /* AWS ECS task credentials */
    "fd00:ec2::254",   /* AWS over IPv6 */
    "100.100.100.200", /* Alibaba Cloud */
    NULL};

/* The first metadata address policy admits, or NULL. */
static const char *admitted_metadata(const jn_egress_policy_t *policy)
{
    for (const char *const *a = metadata_addresses; *a; a++) {
        if (jn_egress_policy_lists(policy, *a))
            return *a;
    }
    return NULL;
}

/* Checks the body's fields; false after answering res. */
static bool read_settings(json_object *body, const char **allowlist, const char **cors,
                          json_object **limits, jn_http_response_t *res)
{
    static const char *const fields[] = {"egress_allowlist", "cors_allowed_origins",
                                         "script_limits", NULL};
    jn_field_error_t e;
    char why[256];
    jn_egress_policy_t *policy = NULL;
    if (jn_json_only_keys(body, fields, "", &e) ||
        jn_json_string(body, "egress_allowlist", false, 1023, allowlist, &e) ||
        jn_json_string(body, "cors_allowed_origins", false, 4096, cors, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    json_object_object_get_ex(body, "script_limits", limits);
    if (*limits && jn_script_limits_check(*limits, &e)) {
        jn_field_error_nest(&e, "script_limits");
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    if (!*allowlist && !*cors && !*limits) {
        jn_field_error(&e, "", "give egress_allowlist, cors_allowed_origins or script_limits");
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    if (*allowlist && jn_egress_policy_new(*allowlist, &policy, why, sizeof why) != JN_OK) {
        jn_field_error(&e, "egress_allowlist", "%s", why);
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    const char *metadata = *allowlist ? admitted_metadata(policy) : NULL;
    jn_egress_policy_free(policy);
    if (metadata) {
        jn_field_error(&e, "egress_allowlist",
                       "admits %s, a cloud metadata service; no provider lives there", metadata);
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    if (*allowlist && jn_egress_within_ceiling(*allowlist, why, sizeof why) != JN_OK) {
        jn_field_error(&e, "egress_allowlist", "%s", why);
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    if (*cors && jn_cors_origins_check(*cors, why, sizeof why) != JN_OK) {
        jn_field_error(&e, "cors_allowed_origins", "%s", why);
        jn_api_invalid(res, "invalid_body", &e);
        return false;
    }
    return true;
}

static void patch_environment(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    const char *allowlist = NULL, *cors = NULL;
    json_object *limits = NULL;
    if (!read_settings(body, &allowlist, &cors, &limits, res)) {
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(body);
        return;
    }
    jn_err_t err = JN_OK;
    char *stored_cors = NULL;
    if (allowlist)
        err = jn_environments_set_allowlist(conn, env.id, allowlist);
    if (!err && cors)
        err = jn_environments_set_cors_origins(conn, env.id, cors);
    if (!err && limits)
        err = jn_environments_set_script_limits(
            conn, env.id, json_object_to_json_string_ext(limits, JSON_C_TO_STRING_PLAIN));
    if (!err)
        err = jn_environments_get_cors_origins(conn, env.id, &stored_cors);
    jn_api_db_release(gw, conn);
    if (err) {
        jn_api_store_error(res, err, "environment");
    } else {
        /* Every process hears of the change; this one reloads now, so the next request
         * through it already sees it. */
        jn_env_cache_reload(gw->envs);
        if (allowlist) {
            snprintf(env.egress_allowlist, sizeof env.egress_allowlist, "%s", allowlist);
            jn_log_info("egress", "environment %s: egress allow-list set to '%s'", env.name,
                        allowlist);
        }
        if (limits) {
            const char *text = json_object_to_json_string_ext(limits, JSON_C_TO_STRING_PLAIN);
            snprintf(env.script_limits, sizeof env.script_limits, "%s", text);
            jn_log_info("scripts", "environment %s: script limits set to %s", env.name, text);
        }
        jn_api_data(res, environment_json(&env, stored_cors));
    }
    free(stored_cors);
    json_object_put(body);
}

void jn_routes_environment(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/junction/environment", get_environment, gw);
    jn_http_route(http, "PATCH", "/junction/environment", patch_environment, gw);
    jn_routes_env_variables(gw, http);
}
