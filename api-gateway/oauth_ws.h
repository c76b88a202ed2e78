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
 *
 * The protocol is RFC 6455 on the server side: the opening handshake (GET with Upgrade:
 * websocket, Connection: upgrade, Sec-WebSocket-Version: 13 and a 16-byte key; answered
 * 101 with exactly Upgrade, Connection and Sec-WebSocket-Accept), masked client frames
 * with 7-, 16- and 64-bit lengths, fragmented messages with control frames between their
 * fragments, ping/pong and the closing handshake. A client that breaks the protocol is
 * answered with a Close frame naming why (1002 protocol error, 1007 invalid UTF-8, 1009 too
 * big) and disconnected.
 */
#ifndef JN_GATEWAY_OAUTH_WS_H
#define JN_GATEWAY_OAUTH_WS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/http_server.h"

typedef struct jn_oauth_ws jn_oauth_ws_t;

/* Starts the notifier thread with its own LISTEN connection to database_url. */
jn_oauth_ws_t *jn_oauth_ws_new(const char *database_url);

/* Closes every socket (Close 1001) and stops the thread. NULL is fine. */
void jn_oauth_ws_free(jn_oauth_ws_t *ws);

/* Serves the WebSocket upgrade on GET / (other GET / requests get a small JSON answer). */
void jn_oauth_ws_route(jn_oauth_ws_t *ws, jn_http_server_t *http);

/* Sends message to the socket ws_client_id, on whichever gateway holds it. */
jn_err_t jn_oauth_ws_publish(PGconn *conn, const char *ws_client_id, json_object *message);

/* True when id has the shape of a ws_client_id we hand out. */
bool jn_oauth_ws_client_id_valid(const char *id);

/* ---- one server-side connection, below the registry (also what its tests drive) ---- */

/* The largest message (all fragments together) and frame a client may send; the SDK
 * sends none, so this only bounds what a hostile client can make us hold. */
#define JN_WS_MAX_MESSAGE 16384
/* Queued output past which a client that does not read is disconnected. */
#define JN_WS_MAX_OUTPUT (256 * 1024)

typedef enum {
    JN_WS_OPEN,    /* messages flow both ways */
    JN_WS_CLOSING, /* we sent Close and wait for the client's */
    JN_WS_CLOSED,  /* done: flush what is queued (a Close) and close the socket */
} jn_ws_state_t;

typedef struct jn_ws_conn jn_ws_conn_t;

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: false when key is not the base64 of 16
 * bytes. */
bool jn_ws_accept_key(const char *key, char out[29]);

/* Takes a socket that has just sent its 101 answer (made non-blocking here). extra holds
 * bytes the client sent after its request; they are read as frames first. The socket stays
 * the caller's to close, after jn_ws_conn_free. */
jn_ws_conn_t *jn_ws_conn_new(int sock, const char *extra, size_t extra_len);
void jn_ws_conn_free(jn_ws_conn_t *c);

/* Reads what has arrived and acts on every complete frame: answers pings, ignores pongs
 * and data messages (after checking them), answers a Close and fails the connection on a
 * protocol error. Then writes what it can of the output. Never blocks. */
jn_ws_state_t jn_ws_conn_read(jn_ws_conn_t *c);

/* Queues text as one text frame and writes what it can. False when the connection is not
 * open or the output cap would be passed. */
bool jn_ws_conn_send_text(jn_ws_conn_t *c, const char *text, size_t len);

/* Starts the closing handshake with code (1000 normal, 1001 going away). */
void jn_ws_conn_close(jn_ws_conn_t *c, uint16_t code);

/* Writes queued output without blocking. */
jn_ws_state_t jn_ws_conn_flush(jn_ws_conn_t *c);

/* True while output is queued (poll for POLLOUT). */
bool jn_ws_conn_wants_write(const jn_ws_conn_t *c);

jn_ws_state_t jn_ws_conn_state(const jn_ws_conn_t *c);

/* The status code of the Close frame sent or received (0 when none yet). */
uint16_t jn_ws_conn_close_code(const jn_ws_conn_t *c);

#endif
