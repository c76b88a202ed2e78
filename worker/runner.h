/*
 * runner.h - running one job to its committed outcome: the pipeline's run function.
 *
 * claim the job (its lease; a job already finished or leased elsewhere is left alone) ->
 * open a provider session for its connection -> load its function's current source ->
 * run it in a fresh sandbox with the worker's host (host.h) -> store the outcome, fenced by
 * the lease token. A lease keeper renews the leases of the runs in progress; a run whose
 * lease was lost (its worker stalled past the lease and another took over) is told to
 * stop and cannot store anything. A run asked to stop by a draining worker gives its job
 * back (queued again, the attempt not counted), so another worker runs it.
 *
 * A delivery job (a webhook to the app) runs as delivery.h says instead, and a provider
 * webhook's job (routing, or one sync's on_webhook) as webhook_run.h says. An action called
 * with X-Async enqueues its async_action webhook with its final outcome.
 *
 * Guarantee for actions: a job runs to completion at least once; it runs more than once
 * only when a worker dies (or loses its lease) while running it, and then a provider call
 * the first run made may be made again. docs/scripts.md says so to script authors.
 */
#ifndef JN_WORKER_RUNNER_H
#define JN_WORKER_RUNNER_H

#include <stdatomic.h>

#include "engine/engine.h"
#include "store/jobs.h"

typedef struct jn_runner jn_runner_t;

/* A runner for the engine's worker (starts the lease keeper). */
jn_runner_t *jn_runner_new(jn_engine_t *engine);
void jn_runner_free(jn_runner_t *r);

/* jn_pipeline_run_fn: runs job (ud is the runner). */
void jn_runner_run(void *ud, const jn_job_ref_t *job, const atomic_bool *stop);

#endif
