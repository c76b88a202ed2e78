/*
 * webhook_run.h - a provider webhook's jobs in the worker (kind "webhook";
 * store/provider_webhooks.h, docs/webhooks.md#provider-webhooks).
 *
 * An intake job is routed: its payload's routing values (the provider's catalog entry says
 * where they are) pick at most JN_WEBHOOK_FANOUT_MAX connections of the integration; each
 * running sync of those connections whose deployed script has on_webhook (and subscribes
 * to the webhook's event type, when it lists subscriptions) gets a handler job, at most
 * JN_WEBHOOK_HANDLERS_MAX in all; and when the integration forwards webhooks, the app gets
 * a forward per matched connection (the raw payload alone when none matched). The handler
 * jobs, the forwards and the intake's outcome commit in one transaction fenced by the
 * intake's lease, then their messages go out.
 *
 * A handler job runs one sync's on_webhook(ctx, payload, webhook) for one connection, in a
 * fresh sandbox under the environment's webhook limits (5 minutes by default), with the
 * connection's provider session and a record writer of its own job: its records reach the
 * records store and the record-change topic exactly as a sync run's do. A batch payload
 * (an array) is cut to the events of that connection. A failure from the provider, the
 * network or the deadline is retried (JN_PROVIDER_WEBHOOK_ATTEMPTS in all, with backoff); a
 * script's own error is not. A handler that loses its lease stores nothing; one whose
 * worker drains gives its job back.
 */
#ifndef JN_WORKER_WEBHOOK_RUN_H
#define JN_WORKER_WEBHOOK_RUN_H

#include <stdatomic.h>

#include "engine/engine.h"
#include "store/jobs.h"

#define JN_WEBHOOK_FANOUT_MAX 100    /* connections one webhook reaches */
#define JN_WEBHOOK_HANDLERS_MAX 1000 /* handler jobs one webhook makes */

typedef enum {
    JN_WEBHOOK_RUN_DONE,      /* the outcome is stored (or the lease was lost: not ours) */
    JN_WEBHOOK_RUN_GIVE_BACK, /* give the job back untouched (PostgreSQL is away, or the
                                 worker drains) */
} jn_webhook_run_result_t;

/* Runs the claimed webhook job (intake or handler, as its input says) and stores its
 * outcome, fenced by its lease. drain turns true when the worker stops past its drain
 * time; lost when the lease was taken over (the run then stores nothing). Blocks for as
 * long as the handler's script runs. */
jn_webhook_run_result_t jn_webhook_run(jn_engine_t *e, const jn_job_t *job,
                                       const atomic_bool *drain, atomic_bool *lost);

#endif
