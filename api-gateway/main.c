/*
 * junction-gateway: the public HTTP API. It never runs scripts: it validates, stores
 * state in PostgreSQL and enqueues jobs to Kafka.
 */
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "core/log.h"
#include "oauth_ws.h"
#include "routes.h"
#include "net/service.h"

static void load_catalog(jn_gateway_t *gw)
{
    char why[512];
    if (jn_catalog_load_builtin(&gw->catalog, why, sizeof why) != JN_OK) {
        jn_log_error("catalog", "%s", why);
        exit(2);
    }
    jn_log_info("catalog", "%zu providers", jn_catalog_count(gw->catalog));
}

static void ensure_environments(jn_service_t *svc)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(svc->pg, 10000, &err);
    if (conn)
        err = jn_environments_ensure(conn, &svc->config);
    jn_pg_release(svc->pg, conn);
    if (err) {
        jn_log_error("environments", "cannot set up the dev and prod environments (%s)",
                     jn_err_str(err));
        exit(1);
    }
}

int main(void)
{
    jn_service_t svc;
    jn_gateway_t gw = {.svc = &svc};
    jn_service_start(&svc, "gateway", JN_PROGRAM_GATEWAY, 0);
    load_catalog(&gw);
    jn_service_keyring(&svc, &gw.keyring);
    ensure_environments(&svc);
    gw.envs = jn_env_cache_new(svc.pg);
    gw.provider_http = jn_provider_http_new();

    jn_routes_providers(&gw, svc.http);
    jn_routes_integrations(&gw, svc.http);
    jn_routes_connections(&gw, svc.http);
    jn_routes_connect(&gw, svc.http);
    jn_routes_auth_flows(&gw, svc.http);
    jn_routes_connect_page(&gw, svc.http);
    jn_routes_proxy(&gw, svc.http);
    jn_routes_functions(&gw, svc.http);
    jn_oauth_ws_t *ws = jn_oauth_ws_new(svc.config.database_url);
    jn_oauth_ws_route(ws, svc.http);
    jn_service_listen(&svc);
    while (!jn_service_wait_for_stop(1000))
        ;
    jn_oauth_ws_free(ws);
    jn_service_stop(&svc);
    jn_env_cache_free(gw.envs);
    jn_provider_http_free(gw.provider_http);
    jn_catalog_free(gw.catalog);
    jn_crypto_keyring_cleanup(&gw.keyring);
    return 0;
}
