/*
 * routes.h - the gateway's public API, one registration function per resource.
 */
#ifndef JN_GATEWAY_ROUTES_H
#define JN_GATEWAY_ROUTES_H

#include "api.h"
#include "store/functions.h"

/* GET /providers, GET /providers/:provider, /junction/providers (custom providers), the
 * providers' logos under /images/template-logos/, and their templates
 * (jn_routes_templates). */
void jn_routes_providers(jn_gateway_t *gw, jn_http_server_t *http);

/* GET /providers/:provider/templates and GET
 * /junction/providers/:provider/templates/:name/code; loads the templates the first time. */
void jn_routes_templates(jn_gateway_t *gw, jn_http_server_t *http);

/* The URL of a provider's logo (Nango's logo_url / an integration's logo). */
void jn_logo_url(const char *server_url, const char *provider, char *out, size_t cap);

/* GET/POST /integrations, GET/PATCH/DELETE /integrations/:uniqueKey. */
void jn_routes_integrations(jn_gateway_t *gw, jn_http_server_t *http);

/* /connections, /connections/:connectionId, /connections/metadata. */
void jn_routes_connections(jn_gateway_t *gw, jn_http_server_t *http);

/* /connect/sessions, /connect/sessions/reconnect, /connect/session. */
void jn_routes_connect(jn_gateway_t *gw, jn_http_server_t *http);

/* The end user's auth routes: /oauth/connect, /oauth/callback, /api-auth/…, /oauth2/auth,
 * /auth/unauthenticated. */
void jn_routes_auth_flows(jn_gateway_t *gw, jn_http_server_t *http);

/* GET /connect?session_token=…: the page a connect_link opens. */
void jn_routes_connect_page(jn_gateway_t *gw, jn_http_server_t *http);

/* ALL /proxy/... */
void jn_routes_proxy(jn_gateway_t *gw, jn_http_server_t *http);

/* GET/PATCH /junction/environment (the egress allow-list, CORS origins, script limits),
 * and with them the environment's variables (jn_routes_env_variables). */
void jn_routes_environment(jn_gateway_t *gw, jn_http_server_t *http);

/* Nango's GET /environment-variables and /junction/environment/variables[/:name]. */
void jn_routes_env_variables(jn_gateway_t *gw, jn_http_server_t *http);

/* /junction/integrations/:uniqueKey/functions[/:name[/code]] and GET /scripts/config, and
 * with them Nango's (jn_routes_nango_functions). */
void jn_routes_functions(jn_gateway_t *gw, jn_http_server_t *http);

/* Nango's GET /integrations/:uniqueKey/functions[/:name[/code]] and DELETE
 * /integrations/:uniqueKey/functions/:name, on the same store; on_delete is the hook a
 * deletion runs in its transaction, the same as for the /junction routes. */
void jn_routes_nango_functions(jn_gateway_t *gw, jn_http_server_t *http,
                               jn_functions_hook_fn on_delete);

/* POST /action/trigger and GET /action/:id. */
void jn_routes_actions(jn_gateway_t *gw, jn_http_server_t *http);

/* Webhooks to the app: settings (Nango's and /junction/webhooks/settings), the signing
 * key's rotation, dead letters and replays (webhooks_api.c); and with them the webhooks
 * providers send (jn_routes_provider_webhooks). */
void jn_routes_webhooks(jn_gateway_t *gw, jn_http_server_t *http);

/* POST /webhook/:environmentUuid/:providerConfigKey: public, its own body cap
 * (JUNCTION_WEBHOOK_MAX_BODY_BYTES). */
void jn_routes_provider_webhooks(jn_gateway_t *gw, jn_http_server_t *http);

/* The URL providers send the integration unique_key's webhooks to, into out. */
void jn_provider_webhook_url(const jn_gateway_t *gw, const jn_environment_t *env,
                             const char *unique_key, char *out, size_t cap);

/* /sync/trigger, /sync/start, /sync/pause, /sync/status, /sync/update-connection-frequency,
 * /sync/:name/variant/:variant. */
void jn_routes_syncs(jn_gateway_t *gw, jn_http_server_t *http);

/* GET /records, PATCH /records/prune, GET/PATCH /junction/environment/records. */
void jn_routes_records(jn_gateway_t *gw, jn_http_server_t *http);

#endif
