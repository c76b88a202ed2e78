/*
 * delivery.h - one attempt of a webhook delivery to the customer's app (a job of kind
 * "delivery"; store/deliveries.h, docs/webhooks.md).
 *
 * The attempt POSTs the delivery's stored text unchanged with Content-Type
 * application/json, X-Nango-Hmac-Sha256 = hex HMAC-SHA256(signing key, body) and the legacy
 * X-Nango-Signature = hex SHA-256(signing key || body), within JUNCTION_DELIVERY_TIMEOUT_MS,
 * through the environment's egress policy (an address it does not admit is refused), never
 * following a redirect, reading at most 64 KiB of the answer.
 *
 * Outcome: 2xx delivered. 429, 5xx, a timeout or a connection error: retried while attempts
 * remain, after the receiver's Retry-After (at most an hour) or an exponential backoff with
 * jitter (JUNCTION_DELIVERY_BACKOFF_SECONDS doubled per attempt, at most 10 minutes). A 3xx
 * or 4xx answer, a refused address or an unusable URL: failed at once. A delivery that
 * failed for good stays as a dead letter with its last status and error.
 */
#ifndef JN_WORKER_DELIVERY_H
#define JN_WORKER_DELIVERY_H

#include <stdatomic.h>

#include "engine/engine.h"
#include "store/jobs.h"

#define JN_DELIVERY_ANSWER_MAX (64 * 1024) /* bytes of a receiver's answer read */
#define JN_DELIVERY_RETRY_AFTER_MAX_S 3600
#define JN_DELIVERY_BACKOFF_MAX_S 600

typedef enum {
    JN_DELIVERY_DONE,      /* the outcome is stored (or the lease was lost: not ours) */
    JN_DELIVERY_GIVE_BACK, /* PostgreSQL is away: give the job back untouched */
} jn_delivery_result_t;

/* Runs one attempt of the claimed delivery job and stores its outcome, fenced by the job's
 * lease token; lost turns true when the lease was taken over (nothing is stored then).
 * Blocks for at most the delivery timeout plus database round trips. */
jn_delivery_result_t jn_delivery_run(jn_engine_t *e, const jn_job_t *job, const atomic_bool *lost);

/* The wait before the next attempt after attempt number attempts (1 = the first) failed:
 * base_s doubled per attempt, at most JN_DELIVERY_BACKOFF_MAX_S, with jitter (between half
 * and all of it); or retry_after_s when the receiver asked (> 0), at most
 * JN_DELIVERY_RETRY_AFTER_MAX_S. */
int jn_delivery_retry_delay_s(int base_s, int attempts, long retry_after_s);

/* A Retry-After value in seconds from now: delta-seconds or an HTTP date; 0 when absent or
 * unreadable. */
long jn_delivery_retry_after(const char *value);

#endif
