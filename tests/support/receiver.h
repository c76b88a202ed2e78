/*
 * receiver.h - a webhook receiver inside the test process: an HTTP/1.1 listener on
 * 127.0.0.1 that records every request (head and body, byte-exact) and answers from a
 * script the test sets: a queue of answers used in order, then a default one.
 *
 * An answer can also misbehave as a hostile receiver would: close without answering, wait
 * before answering, send a huge body, drip a body one byte at a time (slow loris), or
 * redirect. One request per connection; each connection has its own thread, so a slow one
 * never holds up the next.
 */
#ifndef JN_TEST_RECEIVER_H
#define JN_TEST_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct jn_test_receiver jn_test_receiver_t;

typedef struct {
    int status;          /* 0: close the connection without answering */
    const char *headers; /* extra header lines, each ending in "\r\n"; may be NULL */
    long body_bytes;     /* an answer body of this many 'x' bytes (0: none) */
    int drip_ms;         /* > 0: announce body_bytes, then send one byte every drip_ms */
    int delay_ms;        /* wait this long before answering */
} jn_test_answer_t;

typedef struct {
    char method[16];
    char path[512];
    char *head; /* the request line and headers, NUL-terminated */
    char *body; /* NUL-terminated; body_len bytes */
    size_t body_len;
    long at_ms; /* jn_test_now_ms() when it was read whole */
} jn_test_received_t;

/* Listens on port (0: any free one). Fails the test when it cannot. */
jn_test_receiver_t *jn_test_receiver_start(int port);
/* Stops listening, ends dripping answers, waits for every connection's thread, frees. */
void jn_test_receiver_stop(jn_test_receiver_t *r);

int jn_test_receiver_port(const jn_test_receiver_t *r);
/* "http://127.0.0.1:<port><path>" into out. */
void jn_test_receiver_url(const jn_test_receiver_t *r, const char *path, char *out, size_t cap);

/* Appends times copies of a to the queue of answers (a->headers is copied). */
void jn_test_receiver_queue(jn_test_receiver_t *r, const jn_test_answer_t *a, int times);
/* The answer once the queue is empty (200 without a body until set). */
void jn_test_receiver_default(jn_test_receiver_t *r, const jn_test_answer_t *a);
/* Forgets the requests received and the queued answers; the default becomes 200 again. */
void jn_test_receiver_reset(jn_test_receiver_t *r);

/* Requests received whole so far. */
size_t jn_test_receiver_count(jn_test_receiver_t *r);
/* A copy of request i (jn_test_received_cleanup it); false when there is none. */
bool jn_test_receiver_get(jn_test_receiver_t *r, size_t i, jn_test_received_t *out);
void jn_test_received_cleanup(jn_test_received_t *q);

#endif
