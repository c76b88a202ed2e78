/*
 * pipeline.h - the worker's consumers: one consumer-group member per job kind (actions,
 * syncs, webhooks, deliveries), each with its own pool of job threads, so a three-hour sync
 * never delays an action, a slow webhook receiver never delays either, and no consumer
 * stops polling.
 *
 * Per kind, a poll thread reads job messages (net/job_message.h) and hands each to a free
 * job thread; when every job thread is busy it pauses fetching but keeps polling, so the
 * member stays in its group however long the jobs run. Environments share a lane's threads
 * fairly: one environment runs at most env_share_percent of them (rounded up) at once; its
 * further jobs wait in the lane, in order, while other environments' jobs behind them
 * start. A message's offset
 * is stored only once its job is done (the job runner has committed its outcome) and every earlier
 * message of its partition is too: offsets advance as a low-water mark, so a crash
 * redelivers what was not finished, and the job row (store/jobs.h) makes a redelivered
 * job that already finished a no-op. A message that is not a job (malformed, another
 * version) goes to <prefix>.dlq with its original bytes and the reason in headers; a
 * dead-letter write that fails is retried with backoff, and one Kafka refuses for good is
 * logged and counted, never retried in a loop.
 *
 * On stop, fetching stops, running jobs get a drain deadline, and the runner is asked to
 * give back what has not finished by then (its leases let another worker take over).
 */
#ifndef JN_WORKER_PIPELINE_H
#define JN_WORKER_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "engine/engine.h"
#include "store/jobs.h"

/* Runs one job to its committed outcome (or gives it back). stop turns true when the
 * worker is draining past its deadline: the runner should end the run early and release
 * the job. Runs on a job thread; may block for as long as the job takes. */
typedef void (*jn_pipeline_run_fn)(void *ud, const jn_job_ref_t *job, const atomic_bool *stop);

typedef struct jn_pipeline jn_pipeline_t;

typedef struct {
    int concurrency[JN_JOB_KINDS]; /* job threads per kind, in jn_job_kind_t order: actions,
                                      syncs, webhooks, deliveries */
    int drain_ms;                  /* how long running jobs may finish after a stop */
    int env_share_percent;         /* the share of a lane's threads one environment may use
                                      at once (rounded up, at least one); 100: no limit */
    jn_pipeline_run_fn run;
    void *ud;
} jn_pipeline_options_t;

/* Starts the consumers and their threads. NULL (logged) when a consumer cannot start. */
jn_pipeline_t *jn_pipeline_start(jn_engine_t *engine, const jn_pipeline_options_t *opts);

/* Jobs running now (all kinds). */
int jn_pipeline_running(jn_pipeline_t *p);

/* Stops fetching, waits up to drain_ms for running jobs, asks the rest to stop, waits for
 * them, commits offsets, leaves the groups, frees. NULL is fine. */
void jn_pipeline_stop(jn_pipeline_t *p);

#endif
