/*
 * deliveries.h - webhook deliveries to the app as the worker runs them and the API shows
 * them: a delivery is a job of kind "delivery" (store/jobs.h) plus its deliveries row
 * (migration 0030): the URL, the exact body text, what it is about, and how its last
 * attempt went.
 *
 * The dead-letter store is the deliveries whose attempts ran out or that failed for good
 * (their job failed): they stay, with their last status and error, until replayed. A replay
 * queues the same bytes to the same URL again with a fresh set of attempts (signed with the
 * environment's key at the time it is sent); only a failed delivery can be replayed, so
 * replaying twice, or a replay racing a running delivery, changes nothing. Every function
 * is scoped by environment: one environment never lists, reads or replays another's.
 */
#ifndef JN_DELIVERIES_H
#define JN_DELIVERIES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "store/jobs.h"

/* Dead letters listed per page at most; deliveries replayed per call at most. */
#define JN_DELIVERIES_PAGE_MAX 500
#define JN_DELIVERIES_REPLAY_MAX 1000

typedef struct {
    char id[37]; /* the job's id */
    long long environment_id;
    char type[16]; /* "auth", "sync", "async_action", "forward" */
    char *url;
    char *body; /* NULL unless asked for */
    size_t body_len;
    char *provider_config_key, *connection_id; /* NULL when none */
    jn_job_state_t state;
    int attempts, max_attempts;
    int last_status;  /* 0: no answer */
    char *last_error; /* NULL when none */
    int replays;
    char created_at[40], last_attempt_at[40], finished_at[40]; /* ISO 8601 UTC or "" */
} jn_delivery_t;

void jn_delivery_cleanup(jn_delivery_t *d);

/* The delivery id of environment env_id (0: any); with_body reads its text too.
 * JN_ERR_NOT_FOUND. */
jn_err_t jn_deliveries_get(PGconn *conn, long long env_id, const char *id, bool with_body,
                           jn_delivery_t *out);

/* Stores one attempt's outcome, fenced by lease_token like jn_jobs_finish, in one
 * transaction: the delivery's last status (0 for none) and error (NULL on success), and the
 * job's outcome (succeeded when ok; failed, or queued again after retry_delay_s when
 * retryable and attempts remain: *requeued). JN_ERR_CONFLICT when the lease was lost:
 * nothing is written. */
jn_err_t jn_deliveries_finish(PGconn *conn, const char *id, long long lease_token, bool ok,
                              int status, const char *error, bool retryable, int retry_delay_s,
                              bool *requeued);

/* Which dead letters: all given fields must match. */
typedef struct {
    const char *type;       /* NULL: any */
    long long created_from; /* unix seconds, inclusive; 0: no bound */
    long long created_to;   /* unix seconds, exclusive; 0: no bound */
} jn_delivery_filter_t;

/* Dead letters of env_id matching f, newest failure first, at most limit
 * (1..JN_DELIVERIES_PAGE_MAX), after cursor (NULL or "" for the first page; JN_ERR_INVALID
 * when it is not one this function made). *list is new (jn_delivery_cleanup each, free()),
 * without bodies; next_cursor is "" on the last page. */
jn_err_t jn_deliveries_dead(PGconn *conn, long long env_id, const jn_delivery_filter_t *f,
                            int limit, const char *cursor, jn_delivery_t **list, size_t *count,
                            char next_cursor[96]);

/* Queues the dead letter id of env_id again with max_attempts attempts; *ref is the job to
 * send. JN_ERR_NOT_FOUND when env_id has no such delivery, JN_ERR_CONFLICT when it is not
 * failed (queued, running or delivered). */
jn_err_t jn_deliveries_replay(PGconn *conn, long long env_id, const char *id, int max_attempts,
                              jn_job_ref_t *ref);

/* The same for every dead letter of env_id matching f, oldest first, at most
 * JN_DELIVERIES_REPLAY_MAX per call (*more says whether matching ones remain). *refs is
 * new (free()). */
jn_err_t jn_deliveries_replay_matching(PGconn *conn, long long env_id,
                                       const jn_delivery_filter_t *f, int max_attempts,
                                       jn_job_ref_t **refs, size_t *count, bool *more);

#endif
