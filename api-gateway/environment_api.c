/*
 * environment_api.c - GET/PATCH /junction/environment: the calling environment's own
 * settings (its egress allow-list: internal addresses its providers may live at).
 */
#include "routes.h"

#include <stdio.h>

#include "core/log.h"
#include "providers/egress.h"
#include "store/environments.h"

static json_object *environment_json(const jn_environment_t *env)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(env->name));
    json_object_object_add(o, "uuid", json_object_new_string(env->uuid));
    json_object_object_add(o, "egress_allowlist", json_object_new_string(env->egress_allowlist));
    return o;
}

static void get_environment(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    jn_api_data(res, environment_json(&env));
}

static void patch_environment(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"egress_allowlist", NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *list = NULL;
    jn_egress_policy_t *policy = NULL;
    char why[256];
    if (jn_json_only_keys(body, fields, "", &e) ||
        jn_json_string(body, "egress_allowlist", true, sizeof env.egress_allowlist - 1, &list,
                       &e)) {
        jn_api_invalid(res, "invalid_body", &e);
    } else if (jn_egress_policy_new(list, &policy, why, sizeof why) != JN_OK) {
        jn_field_error(&e, "egress_allowlist", "%s", why);
        jn_api_invalid(res, "invalid_body", &e);
    } else {
        PGconn *conn = jn_api_db(gw, res);
        if (conn) {
            jn_err_t err = jn_environments_set_allowlist(conn, env.id, list);
            jn_api_db_release(gw, conn);
            if (err) {
                jn_api_store_error(res, err, "environment");
            } else {
                /* Every process hears of the change; this one reloads now, so the next
                 * request through it already sees it. */
                jn_env_cache_reload(gw->envs);
                snprintf(env.egress_allowlist, sizeof env.egress_allowlist, "%s", list);
                jn_log_info("egress", "environment %s: egress allow-list set to '%s'", env.name,
                            list);
                jn_api_data(res, environment_json(&env));
            }
        }
    }
    jn_egress_policy_free(policy);
    json_object_put(body);
}

void jn_routes_environment(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/junction/environment", get_environment, gw);
    jn_http_route(http, "PATCH", "/junction/environment", patch_environment, gw);
}
