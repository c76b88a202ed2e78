/*
 * loop.c - epoll, a binary min-heap of timers, and an eventfd-woken queue of posted work.
 *
 * Dispatch walks one batch of epoll events; a watch stopped during the batch clears its
 * later events in that batch, so a callback may free the struct that holds its watch.
 * Timers due at the start of an iteration run in deadline order; a timer armed by a
 * callback runs on a later iteration at the earliest, so a zero-delay re-arm cannot starve
 * the descriptors.
 */
#include "net/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define BATCH 256

typedef struct post {
    struct post *next;
    void (*fn)(void *);
    void *ud;
} post_t;

struct jn_loop {
    char name[32];
    int epfd;
    int wakefd;
    jn_loop_watch_t wake_watch;
    uint64_t now_ms;
    /* the batch being dispatched, so a stopped watch can clear its pending events */
    struct epoll_event *batch;
    int batch_pos, batch_len;
    /* timers */
    jn_loop_timer_t **heap;
    size_t heap_len, heap_cap;
    uint64_t timer_seq;
    /* posted work: from other threads (locked, wakes epoll) and from the loop itself */
    pthread_mutex_t post_lock;
    post_t *post_head, *post_tail;
    post_t *local_head, *local_tail;
    atomic_bool stopping;
    bool spawned;
    pthread_t thread;
    atomic_bool running;
};

static _Thread_local const jn_loop_t *current_loop;

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t jn_loop_now_ms(const jn_loop_t *loop)
{
    return loop->now_ms;
}

bool jn_loop_on_thread(const jn_loop_t *loop)
{
    return current_loop == loop;
}

/* ---- watches ---- */

static uint32_t epoll_mask(unsigned events)
{
    uint32_t m = 0;
    if (events & JN_LOOP_READ)
        m |= EPOLLIN;
    if (events & JN_LOOP_PEER_CLOSED)
        m |= EPOLLRDHUP;
    if (events & JN_LOOP_WRITE)
        m |= EPOLLOUT;
    return m;
}

jn_err_t jn_loop_watch_start(jn_loop_t *loop, jn_loop_watch_t *w, int fd, unsigned events,
                             jn_loop_io_fn fn, void *ud)
{
    *w = (jn_loop_watch_t){.loop = loop, .fd = fd, .events = events, .fn = fn, .ud = ud};
    struct epoll_event ev = {.events = epoll_mask(events), .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        jn_log_error("loop", "%s: cannot watch descriptor %d: %s", loop->name, fd, strerror(errno));
        return JN_ERR_IO;
    }
    w->active = true;
    return JN_OK;
}

void jn_loop_watch_update(jn_loop_watch_t *w, unsigned events)
{
    if (!w->active || w->events == events)
        return;
    w->events = events;
    struct epoll_event ev = {.events = epoll_mask(events), .data.ptr = w};
    if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
        jn_log_error("loop", "%s: cannot change watch on %d: %s", w->loop->name, w->fd,
                     strerror(errno));
}

void jn_loop_watch_stop(jn_loop_watch_t *w)
{
    if (!w->active)
        return;
    jn_loop_t *loop = w->loop;
    w->active = false;
    /* The descriptor may already be closed by its owner; ENOENT/EBADF are fine then. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    for (int i = loop->batch_pos; i < loop->batch_len; i++) {
        if (loop->batch[i].data.ptr == w)
            loop->batch[i].data.ptr = NULL;
    }
}

/* ---- timers: a binary min-heap on (when_ms, seq) ---- */

static bool timer_before(const jn_loop_timer_t *a, const jn_loop_timer_t *b)
{
    return a->when_ms < b->when_ms || (a->when_ms == b->when_ms && a->seq < b->seq);
}

static void heap_set(jn_loop_t *loop, size_t i, jn_loop_timer_t *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void heap_up(jn_loop_t *loop, size_t i)
{
    jn_loop_timer_t *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(jn_loop_t *loop, size_t i)
{
    jn_loop_timer_t *t = loop->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const jn_loop_timer_t *best = t;
        if (l < loop->heap_len && timer_before(loop->heap[l], best)) {
            m = l;
            best = loop->heap[l];
        }
        if (r < loop->heap_len && timer_before(loop->heap[r], best))
            m = r;
        if (m == i)
            break;
        heap_set(loop, i, loop->heap[m]);
        i = m;
    }
    heap_set(loop, i, t);
}

void jn_loop_timer_init(jn_loop_timer_t *t)
{
    memset(t, 0, sizeof *t);
    t->heap_index = SIZE_MAX;
}

bool jn_loop_timer_armed(const jn_loop_timer_t *t)
{
    return t->heap_index != SIZE_MAX;
}

void jn_loop_timer_stop(jn_loop_timer_t *t)
{
    if (!jn_loop_timer_armed(t))
        return;
    jn_loop_t *loop = t->loop;
    size_t i = t->heap_index;
    t->heap_index = SIZE_MAX;
    loop->heap_len--;
    if (i == loop->heap_len)
        return;
    jn_loop_timer_t *last = loop->heap[loop->heap_len];
    heap_set(loop, i, last);
    heap_down(loop, i);
    heap_up(loop, last->heap_index);
}

void jn_loop_timer_start(jn_loop_t *loop, jn_loop_timer_t *t, uint64_t delay_ms,
                         jn_loop_timer_fn fn, void *ud)
{
    if (t->loop && jn_loop_timer_armed(t))
        jn_loop_timer_stop(t);
    t->loop = loop;
    t->fn = fn;
    t->ud = ud;
    t->when_ms = loop->now_ms + delay_ms;
    t->seq = loop->timer_seq++;
    if (loop->heap_len == loop->heap_cap) {
        loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        loop->heap = realloc(loop->heap, loop->heap_cap * sizeof *loop->heap);
        if (!loop->heap)
            abort();
    }
    size_t i = loop->heap_len++;
    heap_set(loop, i, t);
    heap_up(loop, i);
}

/* Runs the timers due now. A timer armed by one of them waits for the next iteration,
 * because its seq is past the limit taken here. */
static void run_timers(jn_loop_t *loop)
{
    uint64_t limit = loop->timer_seq;
    while (loop->heap_len > 0) {
        jn_loop_timer_t *t = loop->heap[0];
        if (t->when_ms > loop->now_ms || t->seq >= limit)
            break;
        jn_loop_timer_stop(t);
        t->fn(t);
    }
}

static int next_timeout_ms(const jn_loop_t *loop)
{
    if (loop->local_head)
        return 0;
    if (loop->heap_len == 0)
        return 1000;
    uint64_t when = loop->heap[0]->when_ms;
    if (when <= loop->now_ms)
        return 0;
    uint64_t d = when - loop->now_ms;
    return d > 1000 ? 1000 : (int)d;
}

/* ---- posted work ---- */

void jn_loop_post(jn_loop_t *loop, void (*fn)(void *ud), void *ud)
{
    post_t *p = malloc(sizeof *p);
    if (!p)
        abort();
    *p = (post_t){NULL, fn, ud};
    if (current_loop == loop) {
        /* From the loop itself: no lock and no wake-up; it runs at the end of this
         * iteration. */
        if (loop->local_tail)
            loop->local_tail->next = p;
        else
            loop->local_head = p;
        loop->local_tail = p;
        return;
    }
    pthread_mutex_lock(&loop->post_lock);
    bool was_empty = loop->post_head == NULL;
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->post_lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t n = write(loop->wakefd, &one, sizeof one);
        (void)n; /* EAGAIN means a wake-up is pending already */
    }
}

static void run_posted(jn_loop_t *loop)
{
    pthread_mutex_lock(&loop->post_lock);
    post_t *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    while (p) {
        post_t *next = p->next;
        p->fn(p->ud);
        free(p);
        p = next;
    }
}

/* Runs what the loop posted to itself, including what those posts post. */
static void run_local(jn_loop_t *loop)
{
    while (loop->local_head) {
        post_t *p = loop->local_head;
        loop->local_head = loop->local_tail = NULL;
        while (p) {
            post_t *next = p->next;
            p->fn(p->ud);
            free(p);
            p = next;
        }
    }
}

static void on_wake(jn_loop_watch_t *w, unsigned events)
{
    (void)events;
    uint64_t n;
    ssize_t r = read(w->fd, &n, sizeof n);
    (void)r;
    run_posted(w->ud);
}

/* ---- running ---- */

jn_loop_t *jn_loop_new(const char *name)
{
    jn_loop_t *loop = calloc(1, sizeof *loop);
    if (!loop)
        abort();
    snprintf(loop->name, sizeof loop->name, "%s", name);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->batch = calloc(BATCH, sizeof *loop->batch);
    if (loop->epfd < 0 || loop->wakefd < 0 || !loop->batch) {
        jn_log_error("loop", "cannot create the event loop: %s", strerror(errno));
        abort();
    }
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->now_ms = monotonic_ms();
    if (jn_loop_watch_start(loop, &loop->wake_watch, loop->wakefd, JN_LOOP_READ, on_wake, loop))
        abort();
    return loop;
}

static void run(jn_loop_t *loop)
{
    current_loop = loop;
    atomic_store(&loop->running, true);
    while (!atomic_load(&loop->stopping)) {
        loop->now_ms = monotonic_ms();
        int n = epoll_wait(loop->epfd, loop->batch, BATCH, next_timeout_ms(loop));
        loop->now_ms = monotonic_ms();
        if (n < 0 && errno != EINTR) {
            jn_log_error("loop", "%s: epoll_wait: %s", loop->name, strerror(errno));
            break;
        }
        loop->batch_len = n > 0 ? n : 0;
        for (loop->batch_pos = 0; loop->batch_pos < loop->batch_len;) {
            struct epoll_event *ev = &loop->batch[loop->batch_pos++];
            jn_loop_watch_t *w = ev->data.ptr;
            if (!w)
                continue;
            unsigned events = 0;
            if (ev->events & EPOLLIN)
                events |= JN_LOOP_READ;
            if (ev->events & EPOLLRDHUP)
                events |= JN_LOOP_PEER_CLOSED;
            if (ev->events & EPOLLOUT)
                events |= JN_LOOP_WRITE;
            if (ev->events & (EPOLLERR | EPOLLHUP))
                events |= JN_LOOP_ERROR | (w->events & (JN_LOOP_READ | JN_LOOP_WRITE));
            w->fn(w, events);
        }
        loop->batch_len = loop->batch_pos = 0;
        run_local(loop);
        run_timers(loop);
        run_local(loop);
    }
    run_posted(loop);
    run_local(loop);
    atomic_store(&loop->running, false);
    current_loop = NULL;
}

static void *thread_main(void *arg)
{
    jn_loop_t *loop = arg;
    char tname[16];
    snprintf(tname, sizeof tname, "jn-%.12s", loop->name);
    pthread_setname_np(pthread_self(), tname);
    run(loop);
    return NULL;
}

void jn_loop_spawn(jn_loop_t *loop)
{
    loop->spawned = true;
    if (pthread_create(&loop->thread, NULL, thread_main, loop) != 0) {
        jn_log_error("loop", "cannot start the %s thread", loop->name);
        abort();
    }
}

static void noop(void *ud)
{
    (void)ud;
}

void jn_loop_stop(jn_loop_t *loop)
{
    if (!loop)
        return;
    atomic_store(&loop->stopping, true);
    jn_loop_post(loop, noop, NULL); /* wakes epoll_wait */
    if (loop->spawned) {
        pthread_join(loop->thread, NULL);
        loop->spawned = false;
    }
    run_posted(loop);
}

void jn_loop_free(jn_loop_t *loop)
{
    if (!loop)
        return;
    jn_loop_watch_stop(&loop->wake_watch);
    close(loop->wakefd);
    close(loop->epfd);
    free(loop->heap);
    free(loop->batch);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop);
}
