/*
 * junction-gateway: the public HTTP API. It never runs scripts: it validates, stores
 * state in PostgreSQL and enqueues jobs to Kafka.
 */
#include "api.h"
#include "engine/engine.h"
#include "oauth_ws.h"
#include "routes.h"

int main(void)
{
    jn_engine_t engine;
    jn_engine_start(&engine, "gateway", JN_PROGRAM_GATEWAY);
    jn_gateway_t gw;
    jn_gateway_init(&gw, &engine);
    jn_http_server_gate(engine.http, jn_api_gate, &gw);

    jn_routes_providers(&gw, engine.http);
    jn_routes_integrations(&gw, engine.http);
    jn_routes_connections(&gw, engine.http);
    jn_routes_connect(&gw, engine.http);
    jn_routes_auth_flows(&gw, engine.http);
    jn_routes_connect_page(&gw, engine.http);
    jn_routes_proxy(&gw, engine.http);
    jn_routes_environment(&gw, engine.http);
    jn_routes_functions(&gw, engine.http);
    jn_routes_actions(&gw, engine.http);
    jn_routes_webhooks(&gw, engine.http);
    jn_routes_syncs(&gw, engine.http);
    jn_routes_records(&gw, engine.http);
    jn_oauth_ws_t *ws = jn_oauth_ws_new(engine.config.database_url);
    jn_oauth_ws_route(ws, engine.http);
    jn_engine_listen(&engine);
    while (!jn_service_wait_for_stop(1000))
        ;
    /* Requests and WebSockets first: the sockets close before their state goes. */
    jn_http_server_free(engine.http);
    engine.http = NULL;
    jn_oauth_ws_free(ws);
    jn_engine_stop(&engine);
    jn_gateway_cleanup(&gw);
    return 0;
}
