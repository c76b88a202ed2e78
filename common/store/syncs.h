/*
 * syncs.h - the syncs store: every (connection, sync script, variant), its schedule, its
 * in-flight run and its history (migration 0012, docs/syncs.md).
 *
 * Lifecycle. A deployment declares an integration's syncs (jn_syncs_reconcile): every
 * connection of the integration gets each sync, running when the script auto-starts
 * (first run within one interval, at the sync's slot) or paused; a new connection gets
 * them by a trigger on connections, running syncs firing at once (the initial sync). A
 * script no longer declared stops its syncs (their in-flight runs are cancelled, their
 * records and checkpoints kept; declaring it again revives them). Deleting a connection
 * deletes its syncs and jobs with it and hands its records to the scheduler's purge.
 *
 * Scheduling. jn_syncs_fire_due (the scheduler, any number of replicas) claims due syncs
 * with FOR UPDATE SKIP LOCKED and, in the same transaction, creates each run's job and
 * moves the sync to its next slot: a slot fires exactly once. A sync whose last run is
 * still queued or running skips the slot. Slots are spread over the interval by a phase
 * hashed from the sync's id; a sync found overdue by many slots (the schedulers were
 * down) fires once and then follows its slots. The API asks for runs by making a sync due
 * now with a requested mode; a request made while a run is in flight is kept and fires
 * when the run ends (a reset cancels the run in flight instead).
 *
 * Runs. The worker claims the run's job (jn_jobs_claim), then jn_syncs_run_begin gives
 * it the run: its record writer, checkpoint, last_sync_date and declared models. Records
 * are written with jn_records_* and the writer; checkpoints with jn_syncs_checkpoint_*;
 * the run ends with jn_syncs_run_succeed (deletion detection for a tracking full sync,
 * the latest result, last_sync_date) or jn_syncs_run_fail (nothing deleted). All of them
 * are fenced by the job's lease: once another worker took the job over, or the run was
 * cancelled, they write nothing and answer JN_ERR_CONFLICT.
 *
 * Every function is scoped by environment id where a caller outside the scheduler can
 * reach it. Functions manage their own transactions unless said otherwise.
 */
#ifndef JN_SYNCS_H
#define JN_SYNCS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "store/jobs.h"
#include "store/records.h"

#define JN_SYNC_MIN_FREQUENCY_S 30
#define JN_SYNC_MAX_FREQUENCY_S 2678400 /* 31 days */
#define JN_SYNC_MAX_NAME 255
#define JN_SYNC_MAX_VARIANTS 100 /* per connection and sync, as Nango */
#define JN_SYNC_MAX_CHECKPOINT (64 * 1024)
#define JN_SYNC_DELETE_BATCH 5000 /* records marked deleted per transaction */

/* One sync as a deployment declares it. Borrowed pointers. */
typedef struct {
    const char *name;
    bool full; /* sync_type "full" (else "incremental") */
    bool track_deletes;
    bool auto_start;
    int frequency_s; /* JN_SYNC_MIN_FREQUENCY_S..JN_SYNC_MAX_FREQUENCY_S */
    const char *const *models;
    size_t model_count; /* 1.. */
} jn_sync_decl_t;

typedef struct {
    long long created; /* syncs created on existing connections */
    long long updated; /* existing syncs given the new declaration (or revived) */
    long long stopped; /* syncs of scripts no longer declared */
} jn_sync_reconcile_counts_t;

/* Makes the syncs of integration integration_id (of env_id) match decls, the whole set of
 * its sync scripts: declarations stored for future connections, created on every existing
 * connection (paused unless auto_start; a running one first fires at its slot, within one
 * interval), updated where they exist (every variant), stopped where the script is gone.
 * Runs inside the caller's transaction when there is one (a deployment is atomic), else
 * in its own. JN_ERR_INVALID (why says which declaration and field) on a bad declaration,
 * JN_ERR_NOT_FOUND when the integration is not env_id's; nothing changes then. out may be
 * NULL. */
jn_err_t jn_syncs_reconcile(PGconn *conn, long long env_id, long long integration_id,
                            const jn_sync_decl_t *decls, size_t n, jn_sync_reconcile_counts_t *out,
                            char *why, size_t why_len);

/* ---- the API's operations ---- */

/* Which syncs an API call names: one integration, one connection or all of its
 * connections, and sync names with variants (none: every sync). */
typedef struct {
    const char *name;
    const char *variant; /* NULL or "" = "base" */
} jn_sync_ref_t;

typedef struct {
    long long environment_id;
    const char *provider_config_key;
    const char *connection_id; /* NULL: every connection of the integration */
    const jn_sync_ref_t *syncs;
    size_t sync_count; /* 0: every sync */
} jn_sync_selector_t;

typedef enum {
    JN_SYNC_RUN_INCREMENTAL, /* a normal run */
    JN_SYNC_RUN_FULL,        /* reset: checkpoint and last_sync_date cleared first */
    JN_SYNC_RUN_FULL_EMPTY,  /* reset and emptyCache: every record marked deleted first */
} jn_sync_mode_t;

const char *jn_sync_mode_name(jn_sync_mode_t mode); /* "incremental", "full", "full_empty" */

/* Asks for a run of every selected sync (paused ones included: they run once). A reset
 * cancels a run in flight; an incremental request made while a run is in flight fires
 * when it ends. *matched (may be NULL) counts the syncs. JN_ERR_NOT_FOUND (why names the
 * integration, connection or sync) when something named does not exist; nothing changes
 * then. */
jn_err_t jn_syncs_trigger(PGconn *conn, const jn_sync_selector_t *sel, jn_sync_mode_t mode,
                          size_t *matched, char *why, size_t why_len);

/* Pauses the schedule of the selected syncs (a run in flight finishes). Errors as trigger. */
jn_err_t jn_syncs_pause(PGconn *conn, const jn_sync_selector_t *sel, size_t *matched, char *why,
                        size_t why_len);

/* Resumes the schedule and asks for a run now. Errors as trigger. */
jn_err_t jn_syncs_start(PGconn *conn, const jn_sync_selector_t *sel, size_t *matched, char *why,
                        size_t why_len);

/* GET /sync/status's answer: {"syncs":[...]} in Nango's shape, as a new object. Errors as
 * trigger. */
jn_err_t jn_syncs_status_json(PGconn *conn, const jn_sync_selector_t *sel, json_object **out,
                              char *why, size_t why_len);

/* Sets one connection's frequency of a sync (frequency_s 0: back to the declared one) and
 * moves its next slot. *effective_s receives the frequency now in force. */
jn_err_t jn_syncs_set_frequency(PGconn *conn, long long env_id, const char *provider_config_key,
                                const char *connection_id, const char *name, const char *variant,
                                int frequency_s, int *effective_s, char *why, size_t why_len);

/* Creates variant of sync name for one connection, with the base sync's declaration and
 * state (a stopped variant is revived). uuid_out receives the variant's id.
 * JN_ERR_NOT_FOUND without the base sync, JN_ERR_CONFLICT when the variant exists (live),
 * JN_ERR_TOO_LARGE past JN_SYNC_MAX_VARIANTS. */
jn_err_t jn_syncs_variant_create(PGconn *conn, long long env_id, const char *provider_config_key,
                                 const char *connection_id, const char *name, const char *variant,
                                 char uuid_out[37], char *why, size_t why_len);

/* Stops a variant (its run in flight cancelled; its records kept). JN_ERR_NOT_FOUND. */
jn_err_t jn_syncs_variant_delete(PGconn *conn, long long env_id, const char *provider_config_key,
                                 const char *connection_id, const char *name, const char *variant,
                                 char *why, size_t why_len);

/* The frequency in Nango's notation: "every 30s", "every 5m", "every 1h", "every 1d". */
void jn_syncs_frequency_text(int seconds, char *out, size_t cap);

/* ---- the scheduler ---- */

/* Fires up to limit due syncs (see above): *jobs is a new array (free()) of the runs
 * created, whose messages the caller sends; *skipped counts slots skipped because a run
 * was in flight. Safe under any number of concurrent callers. */
jn_err_t jn_syncs_fire_due(PGconn *conn, int limit, jn_job_ref_t **jobs, size_t *count,
                           size_t *skipped);

/* ---- a run, for the worker ---- */

typedef struct {
    long long sync_id;
    char uuid[37];
    char name[JN_SYNC_MAX_NAME + 1];
    char variant[JN_SYNC_MAX_NAME + 1];
    bool full, track_deletes;
    jn_sync_mode_t mode;
    char **models; /* the declared model names (without the variant); owned */
    size_t model_count;
    json_object *checkpoint;   /* owned; NULL when none (or cleared by a reset) */
    char last_sync_date[40];   /* ISO 8601 of the last successful run's start, "" when none */
    long long pass_generation; /* full syncs: the generation the current pass began at */
    jn_records_writer_t writer;
} jn_sync_run_t;

/* Starts the run of job job_id, claimed with lease_token: applies its mode (a reset clears
 * the checkpoint and last_sync_date; emptyCache marks every record of the sync's models
 * deleted, in batches), takes the run's generation and fills *out (release it with
 * jn_sync_run_cleanup). May be called again by a worker that took the job over (a retry
 * after a lease expired). JN_ERR_CONFLICT when the lease is not held or the job is no
 * longer the sync's run (cancelled, superseded, the sync stopped); JN_ERR_NOT_FOUND when
 * job_id is not a sync run of env_id. */
jn_err_t jn_syncs_run_begin(PGconn *conn, long long env_id, const char *job_id,
                            long long lease_token, jn_sync_run_t *out);

void jn_sync_run_cleanup(jn_sync_run_t *run);

/* The sync's checkpoint now (*out new, NULL when none). */
jn_err_t jn_syncs_checkpoint_get(PGconn *conn, const jn_sync_run_t *run, json_object **out);

/* Replaces the checkpoint (a JSON object of at most JN_SYNC_MAX_CHECKPOINT bytes:
 * JN_ERR_INVALID / JN_ERR_TOO_LARGE otherwise). Fenced. */
jn_err_t jn_syncs_checkpoint_save(PGconn *conn, const jn_sync_run_t *run, json_object *checkpoint);

/* Clears the checkpoint. Fenced. */
jn_err_t jn_syncs_checkpoint_clear(PGconn *conn, const jn_sync_run_t *run);

/* Ends a run that succeeded: for a full sync with track_deletes, marks deleted the records
 * the pass did not see (in fenced batches), then in one transaction records the latest
 * result ({model: {added, updated, deleted}}), last_sync_date (this run's start), the
 * end of the pass, frees the sync for its next slot (or a run asked for meanwhile) and
 * finishes the job as succeeded with the result as its output. *result (may be NULL) gets
 * a new copy of the result. JN_ERR_CONFLICT when the lease was lost: nothing written. */
jn_err_t jn_syncs_run_succeed(PGconn *conn, const jn_sync_run_t *run, json_object **result);

/* Ends a run that failed: nothing deleted, error ({"type","message",...}, borrowed) kept
 * as the sync's latest error with the changes the run did commit as its result; the
 * pass goes on with the next run; the job finishes as failed (the next slot is the
 * retry). Fenced. */
jn_err_t jn_syncs_run_fail(PGconn *conn, const jn_sync_run_t *run, json_object *error);

/* Runs inside the transaction that ends a run, after its outcome is written and before it
 * commits: result is the run's result on success (NULL on failure), error the error on
 * failure. What it writes commits with the outcome or not at all (the sync webhooks to the
 * app). An error rolls the end of the run back. */
typedef jn_err_t (*jn_sync_finish_hook_fn)(PGconn *conn, const jn_sync_run_t *run,
                                           json_object *result, json_object *error, void *ud);

/* jn_syncs_run_succeed / jn_syncs_run_fail with a hook (may be NULL). */
jn_err_t jn_syncs_run_succeed_with(PGconn *conn, const jn_sync_run_t *run,
                                   jn_sync_finish_hook_fn hook, void *ud, json_object **result);
jn_err_t jn_syncs_run_fail_with(PGconn *conn, const jn_sync_run_t *run, json_object *error,
                                jn_sync_finish_hook_fn hook, void *ud);

#endif
