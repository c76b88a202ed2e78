/*
 * taskpool.h - a fixed set of threads that run blocking work (database queries, CPU-heavy
 * checks) for an event loop, with a bounded queue.
 *
 * The loop never blocks; what would block goes here, and its result goes back with
 * jn_loop_post(). The queue is bounded so an overloaded process refuses new work at once
 * (the caller answers 503) instead of queueing without limit; a task pool is sized for
 * the database pool behind it, not for the number of requests in flight.
 */
#ifndef JN_TASKPOOL_H
#define JN_TASKPOOL_H

#include <stddef.h>

#include "core/err.h"

typedef struct jn_taskpool jn_taskpool_t;

/* Starts threads threads (>= 1) named "<name>-N"; at most queue_cap tasks wait. Aborts
 * when threads cannot be created. */
jn_taskpool_t *jn_taskpool_new(const char *name, int threads, int queue_cap);

/* Queues fn(ud) to run on one of the threads. JN_ERR_BUSY when the queue is full (fn will
 * not run; the caller still owns ud). Thread-safe. */
jn_err_t jn_taskpool_submit(jn_taskpool_t *pool, void (*fn)(void *ud), void *ud);

/* Tasks waiting (not running). */
size_t jn_taskpool_queued(jn_taskpool_t *pool);

/* Runs what is queued, waits for the threads, frees. NULL is fine. */
void jn_taskpool_free(jn_taskpool_t *pool);

#endif
