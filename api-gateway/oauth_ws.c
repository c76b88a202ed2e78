/*
 * oauth_ws.c - WebSocket (RFC 6455) server side, just enough for OAuth result messages:
 * the handshake, unmasked text frames from us, close and ping handling from the client.
 *
 * Threads: MHD's threads hand upgraded sockets over through a mutex-protected list and a
 * wake-up pipe; one notifier thread polls the sockets, the pipe and the LISTEN connection.
 */
#include "oauth_ws.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "store/pg.h"

#define MAX_CLIENTS 1024
#define CLIENT_TTL_S 1800
#define CHANNEL "junction_oauth"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct {
    int sock;
    void *handle;
    char id[40];
    time_t since;
} client_t;

struct jn_oauth_ws {
    char *database_url;
    pthread_t thread;
    atomic_bool stop;
    int wake[2];
    pthread_mutex_t lock;
    client_t pending[64];
    int pending_count;
    client_t clients[MAX_CLIENTS];
    int client_count;
    PGconn *listen;
};

bool jn_oauth_ws_client_id_valid(const char *id)
{
    if (!id || strlen(id) != 36)
        return false;
    for (const char *p = id; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '-'))
            return false;
    }
    return true;
}

/* Writes one unmasked text frame; false when the socket is gone. */
static bool send_text(int sock, const char *text, size_t len)
{
    unsigned char head[10];
    size_t h = 0;
    head[h++] = 0x81;
    if (len < 126) {
        head[h++] = (unsigned char)len;
    } else if (len < 65536) {
        head[h++] = 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        return false; /* our messages are small */
    }
    if (send(sock, head, h, MSG_NOSIGNAL) != (ssize_t)h)
        return false;
    return send(sock, text, len, MSG_NOSIGNAL) == (ssize_t)len;
}

static void close_client(jn_oauth_ws_t *ws, int i)
{
    unsigned char bye[2] = {0x88, 0x00};
    send(ws->clients[i].sock, bye, sizeof bye, MSG_NOSIGNAL);
    jn_http_upgraded_close(ws->clients[i].handle);
    ws->clients[i] = ws->clients[--ws->client_count];
}

/* Reads what the client sent; false when it closed (or sent something we end on). */
static bool read_client(client_t *c)
{
    unsigned char buf[512];
    ssize_t n = recv(c->sock, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0)
        return false;
    if (n < 0)
        return true;
    unsigned opcode = buf[0] & 0x0f;
    if (opcode == 0x8)
        return false;
    if (opcode == 0x9 && n >= 2) {
        /* A ping: answer with an empty pong. */
        unsigned char pong[2] = {0x8a, 0x00};
        send(c->sock, pong, sizeof pong, MSG_NOSIGNAL);
    }
    return true;
}

static void connect_listen(jn_oauth_ws_t *ws)
{
    if (ws->listen && PQstatus(ws->listen) == CONNECTION_OK)
        return;
    if (ws->listen)
        PQfinish(ws->listen);
    ws->listen = jn_pg_connect(ws->database_url, "gateway-oauth-ws");
    if (ws->listen && jn_pg_exec_script(ws->listen, "LISTEN " CHANNEL) != JN_OK) {
        PQfinish(ws->listen);
        ws->listen = NULL;
    }
}

/* Forwards NOTIFY payloads "<client id> <json>" to our own sockets. */
static void deliver_notifications(jn_oauth_ws_t *ws)
{
    if (!PQconsumeInput(ws->listen))
        return;
    PGnotify *note;
    while ((note = PQnotifies(ws->listen)) != NULL) {
        const char *space = strchr(note->extra, ' ');
        if (space && space - note->extra < 40) {
            for (int i = 0; i < ws->client_count; i++) {
                if (strncmp(ws->clients[i].id, note->extra, (size_t)(space - note->extra)) == 0) {
                    if (!send_text(ws->clients[i].sock, space + 1, strlen(space + 1)))
                        close_client(ws, i);
                    break;
                }
            }
        }
        PQfreemem(note);
    }
}

static void *run(void *arg)
{
    jn_oauth_ws_t *ws = arg;
    time_t last_connect = 0;
    while (!atomic_load(&ws->stop)) {
        if ((!ws->listen || PQstatus(ws->listen) != CONNECTION_OK) &&
            time(NULL) - last_connect >= 2) {
            last_connect = time(NULL);
            connect_listen(ws);
        }
        pthread_mutex_lock(&ws->lock);
        for (int i = 0; i < ws->pending_count; i++) {
            if (ws->client_count < MAX_CLIENTS)
                ws->clients[ws->client_count++] = ws->pending[i];
            else
                jn_http_upgraded_close(ws->pending[i].handle);
        }
        ws->pending_count = 0;
        pthread_mutex_unlock(&ws->lock);

        struct pollfd fds[MAX_CLIENTS + 2];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = ws->wake[0], .events = POLLIN};
        int listen_at = -1;
        if (ws->listen && PQstatus(ws->listen) == CONNECTION_OK) {
            listen_at = n;
            fds[n++] = (struct pollfd){.fd = PQsocket(ws->listen), .events = POLLIN};
        }
        int first_client = n;
        for (int i = 0; i < ws->client_count; i++)
            fds[n++] = (struct pollfd){.fd = ws->clients[i].sock, .events = POLLIN};
        poll(fds, (nfds_t)n, 1000);
        if (fds[0].revents & POLLIN) {
            char drain[64];
            ssize_t ignored = read(ws->wake[0], drain, sizeof drain);
            (void)ignored;
        }
        /* Clients first (indexes shift when one closes: walk backwards). */
        time_t now = time(NULL);
        for (int i = ws->client_count - 1; i >= 0; i--) {
            short ev = fds[first_client + i].revents;
            bool alive = true;
            if (ev & (POLLERR | POLLHUP | POLLNVAL))
                alive = false;
            else if (ev & POLLIN)
                alive = read_client(&ws->clients[i]);
            if (!alive || now - ws->clients[i].since > CLIENT_TTL_S)
                close_client(ws, i);
        }
        if (listen_at >= 0 && (fds[listen_at].revents & POLLIN))
            deliver_notifications(ws);
    }
    while (ws->client_count > 0)
        close_client(ws, ws->client_count - 1);
    return NULL;
}

jn_oauth_ws_t *jn_oauth_ws_new(const char *database_url)
{
    jn_oauth_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws || pipe(ws->wake) != 0)
        abort();
    ws->database_url = strdup(database_url);
    pthread_mutex_init(&ws->lock, NULL);
    atomic_init(&ws->stop, false);
    if (pthread_create(&ws->thread, NULL, run, ws) != 0)
        abort();
    return ws;
}

void jn_oauth_ws_free(jn_oauth_ws_t *ws)
{
    if (!ws)
        return;
    atomic_store(&ws->stop, true);
    ssize_t ignored = write(ws->wake[1], "x", 1);
    (void)ignored;
    pthread_join(ws->thread, NULL);
    for (int i = 0; i < ws->pending_count; i++)
        jn_http_upgraded_close(ws->pending[i].handle);
    if (ws->listen)
        PQfinish(ws->listen);
    close(ws->wake[0]);
    close(ws->wake[1]);
    pthread_mutex_destroy(&ws->lock);
    free(ws->database_url);
    free(ws);
}

/* Runs on an MHD thread once the 101 is sent: acknowledge, then hand over. */
static void upgraded(void *ud, int sock, const char *extra, size_t extra_len, void *handle)
{
    jn_oauth_ws_t *ws = ud;
    (void)extra;
    (void)extra_len;
    client_t c = {.sock = sock, .handle = handle, .since = time(NULL)};
    jn_crypto_uuid4(c.id);
    char ack[128];
    int n = snprintf(ack, sizeof ack,
                     "{\"message_type\":\"connection_ack\",\"ws_client_id\":\"%s\"}", c.id);
    if (!send_text(sock, ack, (size_t)n)) {
        jn_http_upgraded_close(handle);
        return;
    }
    pthread_mutex_lock(&ws->lock);
    bool queued = ws->pending_count < (int)(sizeof ws->pending / sizeof ws->pending[0]);
    if (queued)
        ws->pending[ws->pending_count++] = c;
    pthread_mutex_unlock(&ws->lock);
    if (!queued) {
        jn_http_upgraded_close(handle);
        return;
    }
    ssize_t ignored = write(ws->wake[1], "x", 1);
    (void)ignored;
}

static void handle_root(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_oauth_ws_t *ws = ud;
    const char *upgrade = jn_http_header(req, "Upgrade");
    const char *key = jn_http_header(req, "Sec-WebSocket-Key");
    if (!upgrade || strcasecmp(upgrade, "websocket") != 0) {
        jn_http_respond_text(res, 200, "application/json",
                             "{\"service\":\"junction\",\"docs\":\"docs/api.md\"}");
        return;
    }
    if (!key || strlen(key) > 64) {
        jn_http_respond_error(res, 400, "invalid_headers", "Sec-WebSocket-Key is missing");
        return;
    }
    char joined[128];
    snprintf(joined, sizeof joined, "%s%s", key, WS_GUID);
    unsigned char digest[20];
    jn_crypto_sha1(joined, strlen(joined), digest);
    char accept[32];
    jn_base64_encode(digest, sizeof digest, accept);
    jn_http_respond_upgrade(res, upgraded, ws);
    jn_http_add_header(res, "Upgrade", "websocket");
    jn_http_add_header(res, "Connection", "Upgrade");
    jn_http_add_header(res, "Sec-WebSocket-Accept", accept);
}

void jn_oauth_ws_route(jn_oauth_ws_t *ws, jn_http_server_t *http)
{
    jn_http_route(http, "GET", "/", handle_root, ws);
}

jn_err_t jn_oauth_ws_publish(PGconn *conn, const char *ws_client_id, json_object *message)
{
    char payload[2048];
    snprintf(payload, sizeof payload, "%s %s", ws_client_id,
             json_object_to_json_string_ext(message, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    const char *params[] = {payload};
    return jn_pg_exec(conn, "SELECT pg_notify('" CHANNEL "', $1)", 1, params, NULL);
}
