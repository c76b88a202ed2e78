/*
 * oauth_ws.h - the WebSocket over which Nango's frontend SDK waits for the result of an
 * OAuth popup.
 *
 * The SDK opens ws://<gateway>/, receives {"message_type":"connection_ack",
 * "ws_client_id"}, passes ws_client_id to /oauth/connect, and waits for
 * {"message_type":"success","provider_config_key","connection_id","is_pending":false} or
 * {"message_type":"error",…,"error_type","error_desc"}. The callback may reach any
 * gateway, so results travel through PostgreSQL (NOTIFY junction_oauth) and every
 * gateway forwards those for its own sockets. One thread per gateway serves all sockets
 * and the LISTEN connection; a socket lives at most 30 minutes.
 */
#ifndef JN_GATEWAY_OAUTH_WS_H
#define JN_GATEWAY_OAUTH_WS_H

#include <json-c/json.h>
#include <libpq-fe.h>

#include "core/err.h"
#include "net/http_server.h"

typedef struct jn_oauth_ws jn_oauth_ws_t;

/* Starts the notifier thread with its own LISTEN connection to database_url. */
jn_oauth_ws_t *jn_oauth_ws_new(const char *database_url);

/* Closes every socket and stops the thread. NULL is fine. */
void jn_oauth_ws_free(jn_oauth_ws_t *ws);

/* Serves the WebSocket upgrade on GET / (other GET / requests get a small JSON answer). */
void jn_oauth_ws_route(jn_oauth_ws_t *ws, jn_http_server_t *http);

/* Sends message to the socket ws_client_id, on whichever gateway holds it. */
jn_err_t jn_oauth_ws_publish(PGconn *conn, const char *ws_client_id, json_object *message);

/* True when id has the shape of a ws_client_id we hand out. */
bool jn_oauth_ws_client_id_valid(const char *id);

#endif
