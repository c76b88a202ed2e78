/*
 * job_waiters.h - requests waiting for a job to finish, woken by PostgreSQL's notices.
 *
 * A job's finish notifies JN_JOBS_CHANNEL with the job's id as it commits (store/jobs.h).
 * The engine's invalidation listener hears it and this module wakes whoever waits on that
 * id, on the loop. So a gateway learns of an outcome the moment any worker commits it,
 * without polling PostgreSQL, and any gateway replica can wait on any job. When the
 * listener (re)connects, notices may have been missed, so every waiter is woken to check.
 * A wake means "look again": the waiter reads the job and, if it is not finished (a
 * failed attempt queued again), keeps waiting.
 */
#ifndef JN_GATEWAY_JOB_WAITERS_H
#define JN_GATEWAY_JOB_WAITERS_H

#include "engine/invalidation.h"
#include "net/loop.h"

typedef struct jn_job_waiters jn_job_waiters_t;
typedef struct jn_job_wait jn_job_wait_t;

/* Runs on the loop when the job may have changed. */
typedef void (*jn_job_wake_fn)(void *ud);

/* Subscribes to the jobs channel on listener; wakes run on loop. Call right after the
 * engine starts. Free it after the listener and the loop have stopped. */
jn_job_waiters_t *jn_job_waiters_new(jn_loop_t *loop, jn_invalidation_t *listener);
void jn_job_waiters_free(jn_job_waiters_t *w);

/* Starts waiting on job_id (a UUID). Loop thread. */
jn_job_wait_t *jn_job_wait_start(jn_job_waiters_t *w, const char *job_id, jn_job_wake_fn fn,
                                 void *ud);

/* Stops waiting and frees the wait; fn is not called after. Loop thread. NULL is fine. */
void jn_job_wait_stop(jn_job_wait_t *wait);

/* Waits in progress (for tests and metrics). Loop thread. */
size_t jn_job_waiters_count(const jn_job_waiters_t *w);

#endif
