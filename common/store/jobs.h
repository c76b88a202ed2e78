/*
 * jobs.h - the jobs table (migration 0010): one row per execution (a sync run, an action
 * call, a provider webhook for a script, a webhook delivery to the app), the source of truth
 * of its state.
 *
 * Life of a job: created queued (by the gateway or the scheduler) -> a worker claims it,
 * taking its lease (running; attempts and lease_token grow by one) -> the worker keeps the
 * lease alive while it runs -> it finishes it (succeeded with an output, or failed with an
 * error; a failure with attempts left goes back to queued with a retry time). Every write
 * of a run is fenced by the lease_token it claimed: a worker whose lease expired and was
 * taken over cannot finish the job (or write anything else fenced) over its successor.
 * Finishing notifies JN_JOBS_CHANNEL (payload: the job id) in the same transaction, so a
 * gateway waiting for an action's result hears it the moment it commits. All time
 * comparisons use PostgreSQL's clock.
 */
#ifndef JN_JOBS_H
#define JN_JOBS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JN_JOBS_CHANNEL "junction_jobs"

typedef enum { JN_JOB_ACTION, JN_JOB_SYNC, JN_JOB_WEBHOOK, JN_JOB_DELIVERY } jn_job_kind_t;
#define JN_JOB_KINDS 4

typedef enum {
    JN_JOB_QUEUED,
    JN_JOB_RUNNING,
    JN_JOB_SUCCEEDED,
    JN_JOB_FAILED,
    JN_JOB_CANCELLED,
} jn_job_state_t;

/* "action", "sync", "webhook", "delivery". */
const char *jn_job_kind_name(jn_job_kind_t kind);
jn_err_t jn_job_kind_parse(const char *name, jn_job_kind_t *out);
const char *jn_job_state_name(jn_job_state_t state);

typedef struct {
    char id[37];
    long long environment_id;
    jn_job_kind_t kind;
    long long connection_id; /* connections.id; 0 for none */
    char *function_name;     /* NULL for none */
    jn_job_state_t state;
    int attempts, max_attempts;
    long long lease_token;
    bool async; /* an action called with X-Async (its outcome sends an async_action webhook) */
    json_object *input, *output, *error;                  /* owned; NULL when SQL NULL */
    char created_at[40], started_at[40], finished_at[40]; /* ISO 8601 UTC or "" */
    /* The connection's names as they are now (its integration's unique_key and its
     * connection_id), read with the row; NULL without a connection or once it is gone. */
    char *integration_key, *connection_key;
} jn_job_t;

void jn_job_cleanup(jn_job_t *job);

/* A new job. input is copied into the row (may be NULL). */
typedef struct {
    long long environment_id;
    jn_job_kind_t kind;
    long long connection_id;
    const char *function_name;
    json_object *input;
    int max_attempts; /* 1..10; 0 means 1 */
    bool async;       /* an action called with X-Async */
} jn_job_new_t;

/* Inserts a queued job with a new id (written to id_out). */
jn_err_t jn_jobs_create(PGconn *conn, const jn_job_new_t *in, char id_out[37]);

/* Claims job id for owner for lease_s seconds: a queued job, or a running one whose lease
 * expired. A running job taken over more than twice past its max_attempts (its workers
 * keep dying while running it) is failed instead, with a worker_lost error. *out is the job as
 * claimed (its lease_token is the fence for every write of this run). JN_ERR_NOT_FOUND when there
 * is no such job, JN_ERR_CONFLICT when it is finished or someone else's lease is alive (nothing to
 * do). */
jn_err_t jn_jobs_claim(PGconn *conn, const char *id, const char *owner, int lease_s, jn_job_t *out);

/* Extends a lease that is still ours. JN_ERR_CONFLICT when it was lost. */
jn_err_t jn_jobs_heartbeat(PGconn *conn, const char *id, long long lease_token, int lease_s);

typedef enum { JN_JOB_OUTCOME_SUCCEEDED, JN_JOB_OUTCOME_FAILED } jn_job_outcome_t;

/* Finishes a run whose lease is still ours: succeeded with result as its output, or failed
 * with result as its error. A failure with attempts left (and retryable) is queued again to
 * run after retry_delay_s (*requeued says so). Notifies JN_JOBS_CHANNEL. JN_ERR_CONFLICT
 * when the lease was lost: nothing was written. */
jn_err_t jn_jobs_finish(PGconn *conn, const char *id, long long lease_token,
                        jn_job_outcome_t outcome, json_object *result, bool retryable,
                        int retry_delay_s, bool *requeued);

/* Gives a claimed job back untouched (a worker that stops before running it): queued
 * again, the attempt not counted. Fenced like finish. */
jn_err_t jn_jobs_release(PGconn *conn, const char *id, long long lease_token);

/* Cancels a job that no worker has claimed (a caller that stopped waiting for it): it
 * will never run. JN_ERR_CONFLICT when it is running or finished, JN_ERR_NOT_FOUND. */
jn_err_t jn_jobs_cancel_queued(PGconn *conn, const char *id);

/* The job id of environment env_id (0: any). JN_ERR_NOT_FOUND. */
jn_err_t jn_jobs_get(PGconn *conn, long long env_id, const char *id, jn_job_t *out);

/* A job to (re)send to Kafka. */
typedef struct {
    char id[37];
    long long environment_id;
    jn_job_kind_t kind;
    long long connection_id;
} jn_job_ref_t;

/* Jobs whose message may not have reached a worker, up to limit: queued ones whose retry
 * time has come (a failed attempt queued again: sent at its retry time, not later), queued
 * ones last sent more than min_age_s ago (their first message was lost or their worker
 * gave them back) and whose retry time, if any, has come; running ones whose lease
 * expired. Each is stamped as sent now (its retry time consumed), under SKIP LOCKED, so
 * several schedulers never resend the same job at once and a job is resent at most every
 * min_age_s. *list is new (free()). */
jn_err_t jn_jobs_due_for_send(PGconn *conn, int limit, int min_age_s, jn_job_ref_t **list,
                              size_t *count);

#endif
