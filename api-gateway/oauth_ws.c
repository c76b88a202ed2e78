/*
 * oauth_ws.c - the frontend SDK's WebSocket: RFC 6455 framing for one connection, and the
 * registry of connections that forwards OAuth results to them (see oauth_ws.h).
 *
 * A connection keeps two bounded buffers: input (at most one frame header and a
 * JN_WS_MAX_MESSAGE payload) and output (JN_WS_MAX_OUTPUT). Its socket is non-blocking,
 * so a client that stops reading fills its own output buffer and is dropped; it never
 * stalls the thread that serves every other client.
 *
 * Threads: the HTTP server's threads hand upgraded sockets over through a mutex-protected
 * list and a wake-up pipe; one notifier thread polls the sockets, the pipe and the LISTEN
 * connection, and is the only one that touches a connection after the hand-over.
 */
#include "oauth_ws.h"

#include <errno.h>
#include <fcntl.h>
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
#include "core/json_util.h"
#include "core/log.h"
#include "store/pg.h"

#define MAX_CLIENTS 1024
#define MAX_PENDING 64
#define CLIENT_TTL_S 1800
#define CLOSE_WAIT_S 5
#define CHANNEL "junction_oauth"
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_HEADER 14 /* 2 + 8 (64-bit length) + 4 (mask) */

enum {
    OP_CONTINUATION = 0x0,
    OP_TEXT = 0x1,
    OP_BINARY = 0x2,
    OP_CLOSE = 0x8,
    OP_PING = 0x9,
    OP_PONG = 0xa,
};

enum {
    CLOSE_NORMAL = 1000,
    CLOSE_PROTOCOL = 1002,
    CLOSE_NO_STATUS = 1005,
    CLOSE_BAD_DATA = 1007,
    CLOSE_TOO_BIG = 1009,
};

/* ---- one connection ---- */

struct jn_ws_conn {
    int sock;
    jn_ws_state_t state;
    uint16_t close_code;
    bool close_sent;
    unsigned char in[MAX_HEADER + JN_WS_MAX_MESSAGE];
    size_t in_len;
    /* the data message being assembled from fragments */
    bool in_message;
    int message_opcode;
    unsigned char *message;
    size_t message_len;
    unsigned char *out;
    size_t out_len, out_cap;
};

bool jn_ws_accept_key(const char *key, char out[29])
{
    unsigned char raw[20];
    size_t raw_len = 0;
    size_t key_len = key ? strlen(key) : 0;
    if (key_len != 24 || jn_base64_decode(key, key_len, raw, sizeof raw, &raw_len) != JN_OK ||
        raw_len != 16)
        return false;
    char joined[24 + sizeof WS_GUID];
    memcpy(joined, key, 24);
    memcpy(joined + 24, WS_GUID, sizeof WS_GUID);
    unsigned char digest[20];
    jn_crypto_sha1(joined, strlen(joined), digest);
    jn_base64_encode(digest, sizeof digest, out);
    return true;
}

jn_ws_conn_t *jn_ws_conn_new(int sock, const char *extra, size_t extra_len)
{
    jn_ws_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->sock = sock;
    c->state = JN_WS_OPEN;
    int flags = fcntl(sock, F_GETFL, 0);
    if (flags >= 0)
        fcntl(sock, F_SETFL, flags | O_NONBLOCK);
    if (extra_len > sizeof c->in) {
        /* More than a whole frame before we answered: nothing a client does. */
        c->state = JN_WS_CLOSED;
        return c;
    }
    if (extra_len)
        memcpy(c->in, extra, extra_len);
    c->in_len = extra_len;
    return c;
}

void jn_ws_conn_free(jn_ws_conn_t *c)
{
    if (!c)
        return;
    free(c->message);
    free(c->out);
    free(c);
}

jn_ws_state_t jn_ws_conn_state(const jn_ws_conn_t *c)
{
    return c->state;
}

uint16_t jn_ws_conn_close_code(const jn_ws_conn_t *c)
{
    return c->close_code;
}

bool jn_ws_conn_wants_write(const jn_ws_conn_t *c)
{
    return c->out_len > 0;
}

/* Appends one unmasked frame (server frames are never masked) to the output. */
static bool queue_frame(jn_ws_conn_t *c, int opcode, const void *payload, size_t len)
{
    unsigned char head[10];
    size_t h = 0;
    head[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        head[h++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        head[h++] = 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        head[h++] = 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            head[h++] = (unsigned char)((uint64_t)len >> shift);
    }
    if (c->out_len + h + len > JN_WS_MAX_OUTPUT)
        return false;
    if (c->out_len + h + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + h + len)
            cap *= 2;
        unsigned char *grown = realloc(c->out, cap);
        if (!grown)
            abort();
        c->out = grown;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, head, h);
    if (len)
        memcpy(c->out + c->out_len + h, payload, len);
    c->out_len += h + len;
    return true;
}

jn_ws_state_t jn_ws_conn_flush(jn_ws_conn_t *c)
{
    size_t sent = 0;
    while (sent < c->out_len) {
        ssize_t n = send(c->sock, c->out + sent, c->out_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* The peer is gone: nothing more can be said to it. */
        c->out_len = 0;
        c->state = JN_WS_CLOSED;
        return c->state;
    }
    if (sent > 0) {
        memmove(c->out, c->out + sent, c->out_len - sent);
        c->out_len -= sent;
    }
    return c->state;
}

/* Sends Close with code (and no reason) unless one was sent already. */
static void send_close(jn_ws_conn_t *c, uint16_t code)
{
    if (c->close_sent)
        return;
    unsigned char payload[2] = {(unsigned char)(code >> 8), (unsigned char)code};
    c->close_sent = true;
    c->close_code = code;
    if (!queue_frame(c, OP_CLOSE, payload, code == CLOSE_NO_STATUS ? 0 : sizeof payload))
        c->out_len = 0; /* no room even for a Close: just drop the connection */
}

/* _Fail the WebSocket Connection_ (RFC 6455 7.1.7): say why, then end. */
static void fail(jn_ws_conn_t *c, uint16_t code)
{
    send_close(c, code);
    c->state = JN_WS_CLOSED;
}

void jn_ws_conn_close(jn_ws_conn_t *c, uint16_t code)
{
    if (c->state != JN_WS_OPEN)
        return;
    send_close(c, code);
    c->state = JN_WS_CLOSING;
    jn_ws_conn_flush(c);
}

bool jn_ws_conn_send_text(jn_ws_conn_t *c, const char *text, size_t len)
{
    if (c->state != JN_WS_OPEN)
        return false;
    if (!queue_frame(c, OP_TEXT, text, len)) {
        /* A client that lets this much pile up is not reading: let it go. */
        c->out_len = 0;
        c->state = JN_WS_CLOSED;
        return false;
    }
    return jn_ws_conn_flush(c) != JN_WS_CLOSED;
}

/* Close codes a peer may send (RFC 6455 7.4): the defined ones that may appear on the
 * wire, and the ranges for libraries (3000-3999) and applications (4000-4999). */
static bool close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011);
}

static void on_close(jn_ws_conn_t *c, const unsigned char *p, size_t len)
{
    uint16_t code = CLOSE_NO_STATUS;
    if (len == 1) {
        fail(c, CLOSE_PROTOCOL);
        return;
    }
    if (len >= 2) {
        code = (uint16_t)(p[0] << 8 | p[1]);
        if (!close_code_valid(code)) {
            fail(c, CLOSE_PROTOCOL);
            return;
        }
        if (!jn_utf8_valid((const char *)p + 2, len - 2)) {
            fail(c, CLOSE_BAD_DATA);
            return;
        }
    }
    /* Echo the code (or an empty Close when there was none), then the server closes the
     * TCP connection first, as RFC 6455 7.1.1 asks. */
    if (!c->close_sent)
        send_close(c, code);
    else
        c->close_code = code;
    c->state = JN_WS_CLOSED;
}

/* A data frame (opcode text, binary or continuation) of an unmasked payload. */
static void on_data(jn_ws_conn_t *c, int opcode, bool fin, const unsigned char *p, size_t len)
{
    if (opcode == OP_CONTINUATION ? !c->in_message : c->in_message) {
        fail(c, CLOSE_PROTOCOL); /* a continuation of nothing, or a message inside one */
        return;
    }
    if (opcode != OP_CONTINUATION) {
        c->in_message = true;
        c->message_opcode = opcode;
        c->message_len = 0;
    }
    if (c->message_len + len > JN_WS_MAX_MESSAGE) {
        fail(c, CLOSE_TOO_BIG);
        return;
    }
    if (len) {
        if (!c->message) {
            c->message = malloc(JN_WS_MAX_MESSAGE);
            if (!c->message)
                abort();
        }
        memcpy(c->message + c->message_len, p, len);
        c->message_len += len;
    }
    if (!fin)
        return;
    c->in_message = false;
    if (c->message_opcode == OP_TEXT && !jn_utf8_valid((const char *)c->message, c->message_len))
        fail(c, CLOSE_BAD_DATA);
    /* Clients have nothing to tell us: a well-formed message is dropped. */
    c->message_len = 0;
}

/* Handles the frame at the start of the input if it is complete; returns its size, 0 when
 * more bytes are needed. Sets the state on a protocol error. */
static size_t take_frame(jn_ws_conn_t *c)
{
    const unsigned char *b = c->in;
    size_t avail = c->in_len;
    if (avail < 2)
        return 0;
    bool fin = b[0] & 0x80;
    int opcode = b[0] & 0x0f;
    bool control = opcode & 0x8;
    size_t len = b[1] & 0x7f, h = 2;
    if (b[0] & 0x70) { /* RSV bits: no extension was negotiated */
        fail(c, CLOSE_PROTOCOL);
        return 0;
    }
    if (!(b[1] & 0x80)) { /* every client frame is masked (5.1) */
        fail(c, CLOSE_PROTOCOL);
        return 0;
    }
    if (control ? (opcode > OP_PONG || !fin || len > 125) : opcode > OP_BINARY) {
        fail(c, CLOSE_PROTOCOL); /* unknown opcode, or a fragmented or long control frame */
        return 0;
    }
    if (len == 126) {
        if (avail < 4)
            return 0;
        len = (size_t)b[2] << 8 | b[3];
        h = 4;
        if (len < 126) { /* lengths use the fewest bytes (5.2) */
            fail(c, CLOSE_PROTOCOL);
            return 0;
        }
    } else if (len == 127) {
        if (avail < 10)
            return 0;
        if (b[2] & 0x80) { /* the most significant bit must be 0 */
            fail(c, CLOSE_PROTOCOL);
            return 0;
        }
        uint64_t big = 0;
        for (int i = 2; i < 10; i++)
            big = big << 8 | b[i];
        h = 10;
        if (big <= 0xffff) {
            fail(c, CLOSE_PROTOCOL);
            return 0;
        }
        if (big > JN_WS_MAX_MESSAGE) {
            fail(c, CLOSE_TOO_BIG);
            return 0;
        }
        len = (size_t)big;
    }
    if (len > JN_WS_MAX_MESSAGE) {
        fail(c, CLOSE_TOO_BIG);
        return 0;
    }
    if (avail < h + 4 + len)
        return 0;
    const unsigned char *mask = b + h;
    unsigned char *p = c->in + h + 4;
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[i & 3];
    switch (opcode) {
    case OP_CLOSE: on_close(c, p, len); break;
    case OP_PING:
        if (c->state == JN_WS_OPEN && !queue_frame(c, OP_PONG, p, len))
            fail(c, CLOSE_TOO_BIG);
        break;
    case OP_PONG: break; /* unsolicited pongs are allowed and mean nothing */
    default:
        if (c->state == JN_WS_OPEN)
            on_data(c, opcode, fin, p, len);
        break;
    }
    return h + 4 + len;
}

jn_ws_state_t jn_ws_conn_read(jn_ws_conn_t *c)
{
    for (;;) {
        /* Frames already buffered first (the bytes that came with the handshake, too). */
        while (c->state != JN_WS_CLOSED) {
            size_t used = take_frame(c);
            if (used == 0)
                break;
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
        if (c->state == JN_WS_CLOSED || c->in_len == sizeof c->in)
            break;
        ssize_t n = recv(c->sock, c->in + c->in_len, sizeof c->in - c->in_len, MSG_DONTWAIT);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* The peer closed TCP (or it broke) without the closing handshake. */
        c->out_len = 0;
        c->state = JN_WS_CLOSED;
        return c->state;
    }
    return jn_ws_conn_flush(c);
}

/* ---- the registry ---- */

typedef struct {
    jn_ws_conn_t *conn;
    void *handle; /* the HTTP server's, for jn_http_upgraded_close */
    char id[40];
    time_t since;
    time_t closing_since;
} client_t;

struct jn_oauth_ws {
    char *database_url;
    pthread_t thread;
    atomic_bool stop;
    int wake[2];
    pthread_mutex_t lock;
    client_t pending[MAX_PENDING];
    int pending_count;
    client_t clients[MAX_CLIENTS];
    int client_count;
    struct pollfd fds[MAX_CLIENTS + 2];
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

static void drop_client(client_t *c)
{
    jn_ws_conn_flush(c->conn); /* a last Close, when the socket takes it */
    jn_ws_conn_free(c->conn);
    jn_http_upgraded_close(c->handle);
}

static void remove_client(jn_oauth_ws_t *ws, int i)
{
    drop_client(&ws->clients[i]);
    ws->clients[i] = ws->clients[--ws->client_count];
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
        size_t id_len = space ? (size_t)(space - note->extra) : 0;
        for (int i = 0; id_len == 36 && i < ws->client_count; i++) {
            if (strncmp(ws->clients[i].id, note->extra, id_len) == 0) {
                jn_ws_conn_send_text(ws->clients[i].conn, space + 1, strlen(space + 1));
                break;
            }
        }
        PQfreemem(note);
    }
}

/* Moves handed-over sockets into the poll set. */
static void adopt_pending(jn_oauth_ws_t *ws)
{
    pthread_mutex_lock(&ws->lock);
    for (int i = 0; i < ws->pending_count; i++) {
        if (ws->client_count < MAX_CLIENTS) {
            ws->clients[ws->client_count++] = ws->pending[i];
            /* Frames that came with the handshake wait in the buffer, not on the socket. */
            jn_ws_conn_read(ws->pending[i].conn);
        } else {
            jn_ws_conn_close(ws->pending[i].conn, 1013); /* try again later */
            drop_client(&ws->pending[i]);
        }
    }
    ws->pending_count = 0;
    pthread_mutex_unlock(&ws->lock);
}

static void *run(void *arg)
{
    jn_oauth_ws_t *ws = arg;
    time_t last_connect = 0;
    struct pollfd *fds = ws->fds;
    while (!atomic_load(&ws->stop)) {
        if ((!ws->listen || PQstatus(ws->listen) != CONNECTION_OK) &&
            time(NULL) - last_connect >= 2) {
            last_connect = time(NULL);
            connect_listen(ws);
        }
        adopt_pending(ws);

        int n = 0;
        fds[n++] = (struct pollfd){.fd = ws->wake[0], .events = POLLIN};
        int listen_at = -1;
        if (ws->listen && PQstatus(ws->listen) == CONNECTION_OK) {
            listen_at = n;
            fds[n++] = (struct pollfd){.fd = PQsocket(ws->listen), .events = POLLIN};
        }
        int first_client = n;
        for (int i = 0; i < ws->client_count; i++) {
            short events = POLLIN;
            if (jn_ws_conn_wants_write(ws->clients[i].conn))
                events |= POLLOUT;
            fds[n++] = (struct pollfd){.fd = ws->clients[i].conn->sock, .events = events};
        }
        poll(fds, (nfds_t)n, 1000);
        if (fds[0].revents & POLLIN) {
            char drain[64];
            ssize_t ignored = read(ws->wake[0], drain, sizeof drain);
            (void)ignored;
        }
        /* Clients first (indexes shift when one goes: walk backwards). */
        time_t now = time(NULL);
        for (int i = ws->client_count - 1; i >= 0; i--) {
            client_t *c = &ws->clients[i];
            short ev = fds[first_client + i].revents;
            if (ev & (POLLIN | POLLHUP | POLLERR))
                jn_ws_conn_read(c->conn); /* reads the Close or sees the end of the stream */
            if (ev & POLLNVAL)
                c->conn->state = JN_WS_CLOSED;
            if ((ev & POLLOUT) && jn_ws_conn_state(c->conn) != JN_WS_CLOSED)
                jn_ws_conn_flush(c->conn);
            if (jn_ws_conn_state(c->conn) == JN_WS_OPEN && now - c->since > CLIENT_TTL_S) {
                jn_ws_conn_close(c->conn, 1001);
                c->closing_since = now;
            }
            jn_ws_state_t state = jn_ws_conn_state(c->conn);
            if (state == JN_WS_CLOSED ||
                (state == JN_WS_CLOSING && now - c->closing_since > CLOSE_WAIT_S))
                remove_client(ws, i);
        }
        if (listen_at >= 0 && (fds[listen_at].revents & POLLIN))
            deliver_notifications(ws);
    }
    while (ws->client_count > 0) {
        jn_ws_conn_close(ws->clients[ws->client_count - 1].conn, 1001); /* going away */
        remove_client(ws, ws->client_count - 1);
    }
    return NULL;
}

jn_oauth_ws_t *jn_oauth_ws_new(const char *database_url)
{
    jn_oauth_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws || pipe(ws->wake) != 0)
        abort();
    ws->database_url = strdup(database_url);
    if (!ws->database_url)
        abort();
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
        drop_client(&ws->pending[i]);
    if (ws->listen)
        PQfinish(ws->listen);
    close(ws->wake[0]);
    close(ws->wake[1]);
    pthread_mutex_destroy(&ws->lock);
    free(ws->database_url);
    free(ws);
}

/* Runs on an HTTP server thread once the 101 is sent: queue the acknowledgement and hand
 * the connection to the notifier thread, which writes it. Never blocks. */
static void upgraded(void *ud, int sock, const char *extra, size_t extra_len, void *handle)
{
    jn_oauth_ws_t *ws = ud;
    client_t c = {.handle = handle, .since = time(NULL)};
    c.conn = jn_ws_conn_new(sock, extra, extra_len);
    jn_crypto_uuid4(c.id);
    char ack[128];
    int n = snprintf(ack, sizeof ack,
                     "{\"message_type\":\"connection_ack\",\"ws_client_id\":\"%s\"}", c.id);
    if (!queue_frame(c.conn, OP_TEXT, ack, (size_t)n)) {
        drop_client(&c);
        return;
    }
    pthread_mutex_lock(&ws->lock);
    bool queued = ws->pending_count < MAX_PENDING;
    if (queued)
        ws->pending[ws->pending_count++] = c;
    pthread_mutex_unlock(&ws->lock);
    if (!queued) {
        jn_ws_conn_close(c.conn, 1013); /* try again later */
        drop_client(&c);
        return;
    }
    ssize_t ignored = write(ws->wake[1], "x", 1);
    (void)ignored;
}

/* True when the comma-separated header value has token (any case). */
static bool has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == n && strncasecmp(p, token, n) == 0)
            return true;
        p += len;
    }
    return false;
}

static void handle_root(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_oauth_ws_t *ws = ud;
    const char *upgrade = jn_http_header(req, "Upgrade");
    if (!upgrade || !has_token(upgrade, "websocket")) {
        jn_http_respond_text(res, 200, "application/json",
                             "{\"service\":\"junction\",\"docs\":\"docs/api.md\"}");
        return;
    }
    const char *connection = jn_http_header(req, "Connection");
    if (!connection || !has_token(connection, "upgrade")) {
        jn_http_respond_error(res, 400, "invalid_headers",
                              "a WebSocket handshake needs Connection: Upgrade");
        return;
    }
    const char *version = jn_http_header(req, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13") != 0) {
        jn_http_respond_error(res, 426, "upgrade_required",
                              "only WebSocket version 13 (RFC 6455) is spoken");
        jn_http_add_header(res, "Sec-WebSocket-Version", "13");
        return;
    }
    char accept[29];
    if (!jn_ws_accept_key(jn_http_header(req, "Sec-WebSocket-Key"), accept)) {
        jn_http_respond_error(res, 400, "invalid_headers",
                              "Sec-WebSocket-Key must be the base64 of 16 bytes");
        return;
    }
    /* Exactly these three headers: the server adds no Connection or Upgrade of its own. */
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
    int n = snprintf(payload, sizeof payload, "%s %s", ws_client_id,
                     json_object_to_json_string_ext(message, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    if (n < 0 || (size_t)n >= sizeof payload) {
        jn_log_warn("oauth", "a WebSocket message is too long to publish");
        return JN_ERR_INVALID;
    }
    const char *params[] = {payload};
    return jn_pg_exec(conn, "SELECT pg_notify('" CHANNEL "', $1)", 1, params, NULL);
}
