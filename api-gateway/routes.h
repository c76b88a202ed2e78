/*
 * routes.h - the gateway's public API, one registration function per resource.
 */
#ifndef JN_GATEWAY_ROUTES_H
#define JN_GATEWAY_ROUTES_H

#include "api.h"

/* GET /providers, GET /providers/:provider, /junction/providers (custom providers). */
void jn_routes_providers(jn_gateway_t *gw, jn_http_server_t *http);

/* GET/POST /integrations, GET/PATCH/DELETE /integrations/:uniqueKey. */
void jn_routes_integrations(jn_gateway_t *gw, jn_http_server_t *http);

#endif
