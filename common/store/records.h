/*
 * records.h - the records store: what syncs save, diffed by content, with a cursor in
 * commit order and a transactional outbox of every change (migration 0013,
 * docs/records.md).
 *
 * A record is (connection, model, id) with a JSON payload. Writes come from one running
 * job at a time per connection and model (a sync run, a webhook handler), each batch in
 * one transaction that is fenced by the job's lease: if the lease was lost the batch
 * writes nothing and the call answers JN_ERR_CONFLICT. Within a batch:
 *   - save: a record is hashed over its canonical JSON (core/canonical_json.h, with
 *     "_nango_metadata" dropped and "id" as a string), so key order and number spelling
 *     never make a change. New -> ADDED; deleted before -> ADDED again (first_seen_at
 *     restarts); another hash -> UPDATED; the same hash -> unchanged (no write, no event);
 *   - update: a partial record deep-merged into the stored one (objects merged key by key,
 *     anything else replaced); only live records are updated, others are skipped;
 *   - delete: live records become DELETED; their last payload is kept.
 * Every change gets the next number of its (connection, model) scope, taken under the
 * scope's row lock, so numbers follow commit order: the records API's cursor
 * (jn_records_list_json) never skips a change committed behind a reader. Every change is
 * written to record_outbox in the same transaction (event id, payload, cursor, job).
 * Payloads are sealed with AES-256-GCM when the environment asks for it
 * (jn_records_set_encryption), bound to their record; reads open them.
 *
 * Every function is scoped by environment id and never touches another environment's rows.
 * Functions take a connection from the caller (pooled or not) and manage their own
 * transaction (the connection must not be inside one). Thread-safe as libpq connections
 * are: one connection per thread.
 */
#ifndef JN_RECORDS_H
#define JN_RECORDS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/crypto.h"
#include "core/err.h"
#include "core/json_util.h"

#define JN_RECORDS_MAX_BATCH 10000                     /* records per call */
#define JN_RECORDS_MAX_RECORD_BYTES (1024 * 1024)      /* one record's canonical JSON */
#define JN_RECORDS_MAX_BATCH_BYTES (64L * 1024 * 1024) /* a whole call's */
#define JN_RECORDS_MAX_ID 255                          /* bytes of a record id */
#define JN_RECORDS_MAX_MODEL 255                       /* bytes of a model name */
#define JN_RECORDS_MAX_PAGE 10000                      /* records per page read */
#define JN_RECORDS_PAGE_BYTES (32L * 1024 * 1024)      /* stored payload bytes per page */
#define JN_RECORDS_MAX_CURSOR 1000

/* The planner settings every records statement runs under, in its own transaction (SET
 * LOCAL): the statements are written for index access to one scope (a page is one range of
 * the cursor index, a batch a thousand primary-key probes), and neither a partition whose
 * statistics are not yet gathered nor a staging table without any may turn that into a scan
 * of the partition (docs/records.md). */
#define JN_RECORDS_PLAN_SETTINGS                                                                   \
    "SET LOCAL enable_hashjoin TO off; SET LOCAL enable_mergejoin TO off; "                        \
    "SET LOCAL enable_bitmapscan TO off; SET LOCAL enable_seqscan TO off; "                        \
    "SET LOCAL enable_material TO off; SET LOCAL enable_memoize TO off; SET LOCAL jit TO off; "

/* Who writes: one leased job of one connection. Filled by jn_syncs_run_begin for a sync
 * run, or by jn_records_writer_begin for any other job. Plain data; copy freely. */
typedef struct {
    long long environment_id;
    long long connection_id;   /* connections.id */
    char integration_key[256]; /* the integration's unique_key, for change events */
    char connection_key[256];  /* the connection's connection_id, for change events */
    char variant[256];         /* "base" or the sync's variant: models become "Model::v" */
    char job_id[37];
    long long lease_token; /* the fence: the token jn_jobs_claim gave */
    long long generation;  /* stamped on every record written (track_deletes) */
    bool mark_seen;        /* a tracking full sync: unchanged records are stamped too */
    bool encrypt;          /* seal payloads (the environment's setting at start) */
} jn_records_writer_t;

/* What one call did. */
typedef struct {
    long long added, updated, deleted;
    long long unchanged; /* saved or merged with the same content */
    long long skipped;   /* not applied: a duplicate id superseded later in the batch, an
                            update or delete of a record that is absent, deleted or pruned */
} jn_records_counts_t;

/* A writer for job job_id (running, leased with lease_token) of environment env_id, for a
 * job that is not a sync run (e.g. a webhook handler). Takes a new generation. variant may
 * be NULL ("base"). JN_ERR_CONFLICT when the lease is not (or no longer) held;
 * JN_ERR_INVALID when the job has no connection. */
jn_err_t jn_records_writer_begin(PGconn *conn, long long env_id, const char *job_id,
                                 long long lease_token, const char *variant,
                                 jn_records_writer_t *out);

/* The full model name a writer's variant gives model ("Contact" or "Contact::eu") into out.
 * JN_ERR_INVALID when model is empty, too long or holds "::" or control characters. */
jn_err_t jn_records_model_name(const char *model, const char *variant, char *out, size_t cap);

/* Saves records (a JSON array of objects, each with an "id" that is a non-empty string or
 * an integer) of model. On a validation error nothing is written: JN_ERR_INVALID, or
 * JN_ERR_TOO_LARGE past a cap, with e naming the record and field ("records[3].id").
 * JN_ERR_CONFLICT: the lease was lost, nothing written. Database errors as jn_pg_exec.
 * counts is filled on success. ring seals when the writer encrypts. */
jn_err_t jn_records_save(PGconn *conn, const jn_crypto_keyring_t *ring,
                         const jn_records_writer_t *w, const char *model, json_object *records,
                         jn_records_counts_t *counts, jn_field_error_t *e);

/* Partial updates: each object carries "id" and the fields to change (deep merge). Same
 * errors as save. */
jn_err_t jn_records_update(PGconn *conn, const jn_crypto_keyring_t *ring,
                           const jn_records_writer_t *w, const char *model, json_object *records,
                           jn_records_counts_t *counts, jn_field_error_t *e);

/* Deletes: each item is an object with an "id" (other fields ignored) or a bare id. Same
 * errors as save. */
jn_err_t jn_records_delete(PGconn *conn, const jn_crypto_keyring_t *ring,
                           const jn_records_writer_t *w, const char *model, json_object *records,
                           jn_records_counts_t *counts, jn_field_error_t *e);

/* Marks DELETED, in batches of batch rows (each its own fenced transaction), the live
 * records of model that no run since generation since_gen has written or seen: deletion
 * detection at the end of a successful full pass. *deleted gets the total. */
jn_err_t jn_records_delete_unseen(PGconn *conn, const jn_records_writer_t *w, const char *model,
                                  long long since_gen, int batch, long long *deleted);

/* Marks DELETED every live record of model (emptyCache), in batches, fenced. */
jn_err_t jn_records_delete_all(PGconn *conn, const jn_records_writer_t *w, const char *model,
                               int batch, long long *deleted);

/* The live records of model (full name) of connection row connection_id whose ids are in
 * ids (a JSON array of strings or integers, at most JN_RECORDS_MAX_PAGE): *out is a new
 * object id -> record (absent ids are missing). Not fenced: a read. */
jn_err_t jn_records_get_by_ids(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                               long long connection_id, const char *model, json_object *ids,
                               json_object **out, jn_field_error_t *e);

/* The canonical JSON of a payload as stored (a records row's or a record_outbox row's,
 * sealed or not) of record record_id in scope (record_scopes.id): *text is a new string of
 * *len bytes that the caller wipes (jn_secure_wipe) and frees. JN_ERR_INTERNAL when a
 * sealed payload does not open with ring (a wrong key, or a blob moved to another row). */
jn_err_t jn_records_open_payload(const jn_crypto_keyring_t *ring, long long scope,
                                 const char *record_id, const char *stored, bool sealed,
                                 char **text, size_t *len);

/* ---- reading: the records API ---- */

enum {
    JN_RECORDS_FILTER_ADDED = 1,
    JN_RECORDS_FILTER_UPDATED = 2,
    JN_RECORDS_FILTER_DELETED = 4,
};

typedef struct {
    const char *provider_config_key;
    const char *connection_id;
    const char *model;       /* full name ("Model" or "Model::variant") */
    const char *cursor;      /* NULL: from the first change */
    bool has_modified_after; /* only changes at or after modified_after (unix seconds) */
    long long modified_after;
    unsigned filter;        /* JN_RECORDS_FILTER_* bits; 0 = every action */
    const char *const *ids; /* only these record ids; NULL = all */
    size_t id_count;
    int limit; /* 1..JN_RECORDS_MAX_PAGE */
} jn_records_query_t;

/* One page of the records API as the JSON body {"records":[...],"next_cursor":...}: each
 * record is its payload with "_nango_metadata" {first_seen_at, last_modified_at,
 * last_action, deleted_at, pruned_at, cursor}, in cursor order. next_cursor is the cursor
 * of the page's last record when more records follow, else null. A page also ends early
 * (with a next_cursor) past JN_RECORDS_PAGE_BYTES of payload, after at least one record.
 * *body is new (free()). JN_ERR_NOT_FOUND: no such connection in env_id. JN_ERR_INVALID
 * (e names "cursor"): a cursor that is malformed or from another connection or model. */
jn_err_t jn_records_list_json(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                              const jn_records_query_t *q, char **body, size_t *body_len,
                              jn_field_error_t *e);

/* Empties the payloads of the records of model up to and including until_cursor, at most
 * limit of them (1..JN_RECORDS_MAX_PAGE); metadata and hashes stay, and a later save of
 * the same content restores the payload without a change. *count pruned, *has_more when
 * records up to the cursor remain unpruned. Errors as jn_records_list_json. */
jn_err_t jn_records_prune(PGconn *conn, long long env_id, const char *provider_config_key,
                          const char *connection_id, const char *model, const char *until_cursor,
                          int limit, long long *count, bool *has_more, jn_field_error_t *e);

/* The cursor text of (scope, seq) into out (at least 64 bytes), and back. */
void jn_records_cursor_encode(long long scope, long long seq, char out[64]);
jn_err_t jn_records_cursor_decode(const char *cursor, long long *scope, long long *seq);

/* ---- operations ---- */

/* Sets whether env_id's record payloads are sealed from now on. */
jn_err_t jn_records_set_encryption(PGconn *conn, long long env_id, bool encrypt);
jn_err_t jn_records_get_encryption(PGconn *conn, long long env_id, bool *encrypt);

/* Deletes up to batch records of one scope of a deleted connection (scopes are marked for
 * purge when their connection goes), with a DELETED event for each live one, and the
 * scope with its last batch. Safe to run from several schedulers (SKIP LOCKED). *purged
 * receives how many records went; *more is false when no scope was waiting. */
jn_err_t jn_records_purge_step(PGconn *conn, int batch, long long *purged, bool *more);

#endif
