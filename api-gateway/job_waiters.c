/*
 * job_waiters.c - a hash of waits by job id, fed from the listener thread through the loop.
 */
#include "job_waiters.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/jobs.h"

#define BUCKETS 1024

struct jn_job_wait {
    jn_job_wait_t *next;
    jn_job_waiters_t *owner;
    unsigned bucket;
    char job_id[37];
    jn_job_wake_fn fn;
    void *ud;
    bool due; /* a wake is owed (set while a bucket is being woken) */
};

struct jn_job_waiters {
    jn_loop_t *loop;
    jn_job_wait_t *buckets[BUCKETS];
    size_t count;
};

/* A notice on its way to the loop: a job id, or "" for "every waiter". */
typedef struct {
    jn_job_waiters_t *w;
    char job_id[37];
} notice_t;

static unsigned bucket_of(const char *id)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % BUCKETS;
}

/* Wakes the due waits of one bucket. A wake may stop any wait (its own included), so the
 * walk restarts after each. */
static void wake_due(jn_job_waiters_t *w, unsigned b)
{
    for (;;) {
        jn_job_wait_t *wait = w->buckets[b];
        while (wait && !wait->due)
            wait = wait->next;
        if (!wait)
            return;
        wait->due = false;
        wait->fn(wait->ud);
    }
}

static void deliver(void *ud)
{
    notice_t *n = ud;
    jn_job_waiters_t *w = n->w;
    if (n->job_id[0]) {
        unsigned b = bucket_of(n->job_id);
        for (jn_job_wait_t *wait = w->buckets[b]; wait; wait = wait->next)
            wait->due = strcmp(wait->job_id, n->job_id) == 0;
        wake_due(w, b);
    } else {
        for (unsigned b = 0; b < BUCKETS; b++) {
            for (jn_job_wait_t *wait = w->buckets[b]; wait; wait = wait->next)
                wait->due = true;
            wake_due(w, b);
        }
    }
    free(n);
}

/* On the listener thread: hand the notice to the loop. */
static void on_notice(const char *payload, void *ud)
{
    notice_t *n = calloc(1, sizeof *n);
    if (!n)
        abort();
    n->w = ud;
    if (payload) {
        if (strlen(payload) != 36) {
            free(n);
            return;
        }
        memcpy(n->job_id, payload, 37);
    }
    jn_loop_post(n->w->loop, deliver, n);
}

jn_job_waiters_t *jn_job_waiters_new(jn_loop_t *loop, jn_invalidation_t *listener)
{
    jn_job_waiters_t *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->loop = loop;
    jn_invalidation_subscribe(listener, JN_JOBS_CHANNEL, on_notice, w);
    return w;
}

void jn_job_waiters_free(jn_job_waiters_t *w)
{
    if (!w)
        return;
    for (unsigned b = 0; b < BUCKETS; b++) {
        while (w->buckets[b]) {
            jn_job_wait_t *next = w->buckets[b]->next;
            free(w->buckets[b]);
            w->buckets[b] = next;
        }
    }
    free(w);
}

jn_job_wait_t *jn_job_wait_start(jn_job_waiters_t *w, const char *job_id, jn_job_wake_fn fn,
                                 void *ud)
{
    jn_job_wait_t *wait = calloc(1, sizeof *wait);
    if (!wait)
        abort();
    snprintf(wait->job_id, sizeof wait->job_id, "%s", job_id);
    wait->owner = w;
    wait->bucket = bucket_of(wait->job_id);
    wait->fn = fn;
    wait->ud = ud;
    wait->next = w->buckets[wait->bucket];
    w->buckets[wait->bucket] = wait;
    w->count++;
    return wait;
}

void jn_job_wait_stop(jn_job_wait_t *wait)
{
    if (!wait)
        return;
    jn_job_waiters_t *w = wait->owner;
    for (jn_job_wait_t **pp = &w->buckets[wait->bucket]; *pp; pp = &(*pp)->next) {
        if (*pp == wait) {
            *pp = wait->next;
            w->count--;
            break;
        }
    }
    free(wait);
}

size_t jn_job_waiters_count(const jn_job_waiters_t *w)
{
    return w->count;
}
