/*
 * loop.h - an event loop on epoll: file-descriptor watches, timers, and work posted from
 * other threads.
 *
 * One thread runs a loop, and every callback of that loop runs on that thread, so the
 * state a loop's callbacks share needs no lock. Callbacks must never block: they read and
 * write non-blocking sockets, start timers, and hand anything slow (a database query) to a
 * task pool (taskpool.h), whose result comes back with jn_loop_post(). This is how the
 * gateway serves thousands of requests that wait on providers or on jobs with one thread:
 * a waiting request costs memory, not a thread.
 *
 * Watches and timers are embedded in the caller's structs (libuv's habit): the loop never
 * allocates or frees them, and a stopped one may be freed at once, even from inside a
 * callback of the same loop iteration.
 */
#ifndef JN_LOOP_H
#define JN_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct jn_loop jn_loop_t;

enum {
    JN_LOOP_READ = 1,        /* readable (data, or the end of the peer's stream) */
    JN_LOOP_WRITE = 2,       /* writable */
    JN_LOOP_ERROR = 4,       /* an error or hang-up on the descriptor (always reported) */
    JN_LOOP_PEER_CLOSED = 8, /* the peer shut down its side (watchable without READ) */
};

typedef struct jn_loop_watch jn_loop_watch_t;
typedef void (*jn_loop_io_fn)(jn_loop_watch_t *w, unsigned events);

/* A watch on one descriptor. Fields are the loop's; the owner reads fd and ud. */
struct jn_loop_watch {
    jn_loop_t *loop;
    int fd;
    unsigned events;
    jn_loop_io_fn fn;
    void *ud;
    bool active;
};

typedef struct jn_loop_timer jn_loop_timer_t;
typedef void (*jn_loop_timer_fn)(jn_loop_timer_t *t);

/* A one-shot timer. Fields are the loop's; the owner reads ud. */
struct jn_loop_timer {
    jn_loop_t *loop;
    uint64_t when_ms;
    uint64_t seq; /* ties broken in start order */
    jn_loop_timer_fn fn;
    void *ud;
    size_t heap_index; /* SIZE_MAX when not armed */
};

/* A new loop (not running). Aborts when out of memory or descriptors. */
jn_loop_t *jn_loop_new(const char *name);

/* Runs the loop on a new thread until jn_loop_stop(). */
void jn_loop_spawn(jn_loop_t *loop);

/* Asks the loop to stop after the current iteration, waits for its thread (when it was
 * spawned) and runs the work still posted. Thread-safe; not from the loop's own thread. */
void jn_loop_stop(jn_loop_t *loop);

/* Frees a stopped loop. Watches and timers must have been stopped. NULL is fine. */
void jn_loop_free(jn_loop_t *loop);

/* True on the loop's own thread. */
bool jn_loop_on_thread(const jn_loop_t *loop);

/* Runs fn(ud) on the loop's thread soon, in posting order. Thread-safe; from the loop's
 * own thread it runs on the next iteration, never inside the call. */
void jn_loop_post(jn_loop_t *loop, void (*fn)(void *ud), void *ud);

/* Milliseconds on a monotonic clock, as of the start of the current iteration (cheap). */
uint64_t jn_loop_now_ms(const jn_loop_t *loop);

/* Watches fd for events (JN_LOOP_READ | JN_LOOP_WRITE). Loop thread only. JN_ERR_IO when
 * epoll refuses the descriptor. */
jn_err_t jn_loop_watch_start(jn_loop_t *loop, jn_loop_watch_t *w, int fd, unsigned events,
                             jn_loop_io_fn fn, void *ud);
/* Changes the events watched; 0 keeps the watch but reports only errors. */
void jn_loop_watch_update(jn_loop_watch_t *w, unsigned events);
/* Stops watching (does not close fd). Safe to call twice. */
void jn_loop_watch_stop(jn_loop_watch_t *w);

/* Initialises a timer (not armed). */
void jn_loop_timer_init(jn_loop_timer_t *t);
/* Arms (or re-arms) t to call fn after delay_ms. Loop thread only. */
void jn_loop_timer_start(jn_loop_t *loop, jn_loop_timer_t *t, uint64_t delay_ms,
                         jn_loop_timer_fn fn, void *ud);
/* Disarms t; safe when not armed. */
void jn_loop_timer_stop(jn_loop_timer_t *t);
bool jn_loop_timer_armed(const jn_loop_timer_t *t);

#endif
