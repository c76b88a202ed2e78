/*
 * routes.h - the gateway's public API, one registration function per resource.
 */
#ifndef JN_GATEWAY_ROUTES_H
#define JN_GATEWAY_ROUTES_H

#include "api.h"

/* GET /providers, GET /providers/:provider, /junction/providers (custom providers), and
 * the providers' logos under /images/template-logos/. */
void jn_routes_providers(jn_gateway_t *gw, jn_http_server_t *http);

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

/* GET/PATCH /junction/environment (the egress allow-list). */
void jn_routes_environment(jn_gateway_t *gw, jn_http_server_t *http);

/* /sync/trigger, /sync/start, /sync/pause, /sync/status, /sync/update-connection-frequency,
 * /sync/:name/variant/:variant. */
void jn_routes_syncs(jn_gateway_t *gw, jn_http_server_t *http);

/* GET /records, PATCH /records/prune, GET/PATCH /junction/environment/records. */
void jn_routes_records(jn_gateway_t *gw, jn_http_server_t *http);

#endif
