/*
 * sync_fixture.h - what the syncs and records tests share: a gateway on its own database
 * with an integration "hn" (no credentials needed) in dev and prod, a pool on that
 * database, connections made through the API, deployments through jn_syncs_reconcile,
 * and runs started the way the scheduler and a worker start them (request, fire, claim,
 * begin).
 */
#ifndef JN_TEST_SYNC_FIXTURE_H
#define JN_TEST_SYNC_FIXTURE_H

#include <json-c/json.h>
#include <stdbool.h>

#include "core/crypto.h"
#include "harness.h"
#include "store/pg.h"
#include "store/records.h"
#include "store/syncs.h"

typedef struct {
    jn_test_gateway_t gw;
    jn_pg_pool_t *pool;
    jn_crypto_keyring_t ring;
    long long env[2];         /* dev, prod */
    long long integration[2]; /* "hn" in dev, in prod */
} jn_test_syncs_t;

/* Starts the gateway (extra_env may be NULL) and creates the integrations. */
void jn_test_syncs_start(jn_test_syncs_t *f, const char *gateway_bin, const char *const *extra_env);
void jn_test_syncs_stop(jn_test_syncs_t *f);

/* A pooled connection to the fixture's database (fails the test when there is none). */
PGconn *jn_test_syncs_db(jn_test_syncs_t *f);
void jn_test_syncs_release(jn_test_syncs_t *f, PGconn *conn);

/* The number in the first column of the first row of printf-style SQL (-1: no row/NULL). */
long long jn_test_syncs_number(jn_test_syncs_t *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Runs printf-style SQL without a result; fails the test on an error. */
void jn_test_syncs_sql(jn_test_syncs_t *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The environment's secret key: 0 dev, 1 prod. */
const char *jn_test_syncs_key(const jn_test_syncs_t *f, int env);

/* Creates connection cid of "hn" in env (0 dev, 1 prod) over HTTP; returns its row id. */
long long jn_test_syncs_connection(jn_test_syncs_t *f, int env, const char *cid);

/* Deploys decls to "hn" of env (the whole set). */
void jn_test_syncs_deploy(jn_test_syncs_t *f, int env, const jn_sync_decl_t *decls, size_t n);

/* The sync row id of (cid, name, variant) in env. */
long long jn_test_syncs_id(jn_test_syncs_t *f, int env, const char *cid, const char *name,
                           const char *variant);

/* Starts a run of sync sync_id as the scheduler and a worker do: asks for a run in mode,
 * fires due syncs until this one has a job, claims it as owner (lease lease_s) and begins
 * the run. Fails the test on any error. */
void jn_test_syncs_begin_run(jn_test_syncs_t *f, int env, long long sync_id, jn_sync_mode_t mode,
                             const char *owner, int lease_s, jn_sync_run_t *run);

/* Saves (or, with op 'u'/'d', updates or deletes) the records of the JSON array text with
 * the run's writer; fails the test unless the store answers want. */
jn_records_counts_t jn_test_syncs_write(jn_test_syncs_t *f, const jn_sync_run_t *run, char op,
                                        const char *model, const char *json, jn_err_t want);

/* GET path (with the connection headers of cid when not NULL) on the gateway with env's
 * key; *resp is the parsed body. Returns the status. */
long jn_test_syncs_get(jn_test_syncs_t *f, int env, const char *cid, const char *path,
                       json_object **resp);

/* Starts a junction-scheduler on the fixture's database and topic prefix (extra_env may
 * be NULL), and waits until its admin port answers /livez. Returns that port. */
int jn_test_syncs_scheduler_start(jn_test_syncs_t *f, jn_test_process_t *p,
                                  const char *scheduler_bin, const char *const *extra_env);
/* SIGTERMs it and checks that it stopped cleanly. */
void jn_test_syncs_scheduler_stop(jn_test_process_t *p);

#endif
