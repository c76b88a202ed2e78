/*
 * receiver.c - the in-process webhook receiver (see the header).
 */
#include "receiver.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (16 * 1024 * 1024)
#define QUEUE_MAX 64

typedef struct {
    jn_test_answer_t a;
    char headers[1024];
} answer_t;

struct jn_test_receiver {
    int fd, port;
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int connections;
    bool stopping;
    answer_t queue[QUEUE_MAX];
    int queued;
    answer_t fallback;
    jn_test_received_t *got;
    size_t count, cap;
};

typedef struct {
    jn_test_receiver_t *r;
    int fd;
} conn_t;

static void set_answer(answer_t *dst, const jn_test_answer_t *a)
{
    dst->a = *a;
    snprintf(dst->headers, sizeof dst->headers, "%s", a->headers ? a->headers : "");
    dst->a.headers = NULL;
}

/* Reads until the head is complete and the body (Content-Length) is in; false when the
 * peer went away first. */
static bool read_request(int fd, jn_test_received_t *q)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    size_t head_end = 0, want = 0;
    bool have_head = false;
    for (;;) {
        if (have_head && len >= head_end + want)
            break;
        if (len == cap) {
            if (cap >= HEAD_MAX + BODY_MAX)
                break;
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0) {
            free(buf);
            return false;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (!have_head) {
            char *end = strstr(buf, "\r\n\r\n");
            if (!end) {
                if (len > HEAD_MAX) {
                    free(buf);
                    return false;
                }
                continue;
            }
            have_head = true;
            head_end = (size_t)(end - buf) + 4;
            char value[32] = "";
            buf[head_end - 2] = '\0';
            if (jn_test_header_value(buf, "Content-Length", value, sizeof value))
                want = strtoul(value, NULL, 10);
            buf[head_end - 2] = '\r';
        }
    }
    memset(q, 0, sizeof *q);
    q->head = strndup(buf, head_end);
    q->body_len = len - head_end < want ? len - head_end : want;
    q->body = malloc(q->body_len + 1);
    memcpy(q->body, buf + head_end, q->body_len);
    q->body[q->body_len] = '\0';
    sscanf(buf, "%15s %511s", q->method, q->path);
    q->at_ms = jn_test_now_ms();
    free(buf);
    return true;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool stopping(jn_test_receiver_t *r)
{
    pthread_mutex_lock(&r->lock);
    bool s = r->stopping;
    pthread_mutex_unlock(&r->lock);
    return s;
}

static void answer(jn_test_receiver_t *r, int fd, const answer_t *ans)
{
    const jn_test_answer_t *a = &ans->a;
    for (int waited = 0; waited < a->delay_ms && !stopping(r); waited += 50)
        usleep(50 * 1000);
    if (a->status == 0)
        return;
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d Answer\r\nContent-Length: %ld\r\nConnection: close\r\n%s\r\n",
                     a->status, a->body_bytes, ans->headers);
    if (!send_all(fd, head, (size_t)n))
        return;
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    long left = a->body_bytes;
    while (left > 0 && !stopping(r)) {
        size_t piece =
            a->drip_ms > 0 ? 1 : (size_t)(left < (long)sizeof chunk ? left : (long)sizeof chunk);
        if (!send_all(fd, chunk, piece))
            return;
        left -= (long)piece;
        if (a->drip_ms > 0)
            usleep((useconds_t)a->drip_ms * 1000);
    }
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    jn_test_receiver_t *r = c->r;
    jn_test_received_t q;
    if (read_request(c->fd, &q)) {
        answer_t ans;
        pthread_mutex_lock(&r->lock);
        if (r->count == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 16;
            r->got = realloc(r->got, r->cap * sizeof *r->got);
        }
        r->got[r->count++] = q;
        if (r->queued > 0) {
            ans = r->queue[0];
            memmove(&r->queue[0], &r->queue[1], (size_t)(r->queued - 1) * sizeof r->queue[0]);
            r->queued--;
        } else {
            ans = r->fallback;
        }
        pthread_mutex_unlock(&r->lock);
        answer(r, c->fd, &ans);
    }
    close(c->fd);
    free(c);
    pthread_mutex_lock(&r->lock);
    r->connections--;
    pthread_cond_broadcast(&r->idle);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void *accept_main(void *arg)
{
    jn_test_receiver_t *r = arg;
    for (;;) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int ready = poll(&p, 1, 100);
        if (stopping(r))
            return NULL;
        if (ready <= 0)
            continue;
        int fd = accept(r->fd, NULL, NULL);
        if (fd < 0)
            continue;
        conn_t *c = calloc(1, sizeof *c);
        c->r = r;
        c->fd = fd;
        pthread_mutex_lock(&r->lock);
        r->connections++;
        pthread_mutex_unlock(&r->lock);
        pthread_t t;
        pthread_create(&t, NULL, conn_main, c);
        pthread_detach(t);
    }
}

jn_test_receiver_t *jn_test_receiver_start(int port)
{
    jn_test_receiver_t *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->idle, NULL);
    jn_test_answer_t ok = {.status = 200};
    set_answer(&r->fallback, &ok);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(r->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->fd, 64) != 0)
        fail_msg("receiver: cannot listen on port %d: %s", port, strerror(errno));
    socklen_t len = sizeof a;
    getsockname(r->fd, (struct sockaddr *)&a, &len);
    r->port = ntohs(a.sin_port);
    pthread_create(&r->acceptor, NULL, accept_main, r);
    return r;
}

void jn_test_receiver_stop(jn_test_receiver_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->acceptor, NULL);
    close(r->fd);
    pthread_mutex_lock(&r->lock);
    while (r->connections > 0)
        pthread_cond_wait(&r->idle, &r->lock);
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < r->count; i++)
        jn_test_received_cleanup(&r->got[i]);
    free(r->got);
    pthread_cond_destroy(&r->idle);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int jn_test_receiver_port(const jn_test_receiver_t *r)
{
    return r->port;
}

void jn_test_receiver_url(const jn_test_receiver_t *r, const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", r->port, path);
}

void jn_test_receiver_queue(jn_test_receiver_t *r, const jn_test_answer_t *a, int times)
{
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < times && r->queued < QUEUE_MAX; i++)
        set_answer(&r->queue[r->queued++], a);
    pthread_mutex_unlock(&r->lock);
}

void jn_test_receiver_default(jn_test_receiver_t *r, const jn_test_answer_t *a)
{
    pthread_mutex_lock(&r->lock);
    set_answer(&r->fallback, a);
    pthread_mutex_unlock(&r->lock);
}

void jn_test_receiver_reset(jn_test_receiver_t *r)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->count; i++)
        jn_test_received_cleanup(&r->got[i]);
    r->count = 0;
    r->queued = 0;
    jn_test_answer_t ok = {.status = 200};
    set_answer(&r->fallback, &ok);
    pthread_mutex_unlock(&r->lock);
}

size_t jn_test_receiver_count(jn_test_receiver_t *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

bool jn_test_receiver_get(jn_test_receiver_t *r, size_t i, jn_test_received_t *out)
{
    pthread_mutex_lock(&r->lock);
    bool ok = i < r->count;
    if (ok) {
        *out = r->got[i];
        out->head = strdup(r->got[i].head);
        out->body = malloc(r->got[i].body_len + 1);
        memcpy(out->body, r->got[i].body, r->got[i].body_len + 1);
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

void jn_test_received_cleanup(jn_test_received_t *q)
{
    free(q->head);
    free(q->body);
    memset(q, 0, sizeof *q);
}
