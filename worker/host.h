/*
 * host.h - the worker's side of the script seam (script_ctx.h): jn_script_host_t for one
 * run, bound to one job's connection through its provider session.
 *
 * HTTP goes through the session (credentials, refresh, retries, rate limits, the
 * environment's egress policy); a base_url_override on another origin than the
 * provider's is sent without the connection's credentials, so a script cannot hand them
 * to a host of its choosing. Metadata is read and written in PostgreSQL for this
 * connection only. Records and checkpoints belong to sync runs (bound by the sync
 * runner); an action's host leaves them NULL. Every call ends by the run's deadline, and
 * at once (JN_ERR_TIMEOUT) once the run is told to stop (the worker drains, or the job's
 * lease was lost).
 *
 * With journal set, calls that change something are journaled (store/job_calls.h): a run
 * that takes over a job from a dead worker is answered from the journal for the calls its
 * predecessor made, so the provider sees those side effects once.
 *
 * dry_run records what the script did (HTTP calls, logs) to a file and refuses every
 * write (metadata, records, checkpoints) with a clear message — for authors trying a
 * script against a real connection (junction-worker --dry-run).
 */
#ifndef JN_WORKER_HOST_H
#define JN_WORKER_HOST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "engine/engine.h"
#include "providers/session.h"
#include "script_ctx.h"
#include "store/records.h"
#include "store/syncs.h"

typedef struct {
    jn_engine_t *engine;
    jn_session_t *session;   /* borrowed; open for the run */
    const char *job_id;      /* for log lines; may be NULL */
    const atomic_bool *stop; /* the run must end now (the worker drains); may be NULL */
    const atomic_bool *lost; /* the job's lease was lost; may be NULL */
    FILE *dry_run;           /* non-NULL: record here, write nothing */
    char base_origin[256];   /* the provider's base URL's origin, "" when unknown */
    char base_url[512];      /* the provider's resolved base URL */
    /* The call journal (store/job_calls.h), for action runs: set journal and the run's
     * lease token; the rest is the host's. */
    bool journal;
    long long lease_token;
    int journal_seq;        /* journaled calls so far */
    bool journal_replaying; /* earlier entries may still answer */
    bool journal_off;       /* the script left the journal's path */
    /* Sync runs and webhook handlers: the job's record writer (records and
     * records_by_ids), and for a sync run the run itself (checkpoints). NULL for an
     * action. A write refused because the lease was lost sets *lost_flag. */
    const jn_records_writer_t *writer;
    const jn_sync_run_t *sync_run;
    atomic_bool *lost_flag;
} jn_worker_host_t;

/* Binds h to a session (the rest of h set by the caller) and fills host's functions for an
 * action run: http, paginate_config, connection, metadata, environment variables, log. */
void jn_worker_host_init(jn_worker_host_t *h, jn_script_host_t *host);

#endif
