/*
 * sync_fixture.c - the syncs and records tests' fixture (see sync_fixture.h).
 */
#include "sync_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/jobs.h"

void jn_test_syncs_start(jn_test_syncs_t *f, const char *gateway_bin, const char *const *extra_env)
{
    memset(f, 0, sizeof *f);
    jn_test_gateway_start(&f->gw, gateway_bin, extra_env);
    const char *b64 = jn_test_env("JUNCTION_ENCRYPTION_KEY");
    unsigned char key[32];
    size_t key_len = 0;
    assert_int_equal(jn_base64_decode(b64, strlen(b64), key, sizeof key, &key_len), JN_OK);
    jn_crypto_keyring_init(&f->ring, key);
    f->pool = jn_pg_pool_new(f->gw.db_url, "test_syncs", 8);
    for (int env = 0; env < 2; env++) {
        json_object *resp = NULL;
        long st = jn_test_api(&f->gw, "POST", "/integrations", jn_test_syncs_key(f, env),
                              "{\"provider\":\"hackernews\",\"unique_key\":\"hn\"}", &resp);
        jn_test_expect_status(st, 200, resp, "create integration hn");
        json_object_put(resp);
        f->env[env] = jn_test_syncs_number(f, "SELECT id FROM environments WHERE name = '%s'",
                                           env ? "prod" : "dev");
        f->integration[env] = jn_test_syncs_number(
            f, "SELECT id FROM integrations WHERE environment_id = %lld AND unique_key = 'hn'",
            f->env[env]);
    }
}

void jn_test_syncs_stop(jn_test_syncs_t *f)
{
    jn_pg_pool_free(f->pool);
    jn_crypto_keyring_cleanup(&f->ring);
    jn_test_gateway_stop(&f->gw);
}

PGconn *jn_test_syncs_db(jn_test_syncs_t *f)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(f->pool, 5000, &err);
    if (!conn)
        fail_msg("no database connection: %s", jn_err_str(err));
    return conn;
}

void jn_test_syncs_release(jn_test_syncs_t *f, PGconn *conn)
{
    jn_pg_release(f->pool, conn);
}

long long jn_test_syncs_number(jn_test_syncs_t *f, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *v = jn_test_sql_value(f->gw.db_url, sql);
    long long n = v && *v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return n;
}

void jn_test_syncs_sql(jn_test_syncs_t *f, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGconn *conn = jn_test_syncs_db(f);
    jn_err_t err = jn_pg_exec_script(conn, sql);
    jn_test_syncs_release(f, conn);
    if (err)
        fail_msg("%s: %s", sql, jn_err_str(err));
}

const char *jn_test_syncs_key(const jn_test_syncs_t *f, int env)
{
    return env ? f->gw.prod_key : f->gw.dev_key;
}

long long jn_test_syncs_connection(jn_test_syncs_t *f, int env, const char *cid)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"provider_config_key\":\"hn\",\"connection_id\":\"%s\","
             "\"credentials\":{\"type\":\"NONE\"}}",
             cid);
    json_object *resp = NULL;
    long st = jn_test_api(&f->gw, "POST", "/connections", jn_test_syncs_key(f, env), body, &resp);
    jn_test_expect_status(st, 201, resp, "create connection");
    json_object_put(resp);
    return jn_test_syncs_number(f,
                                "SELECT id FROM connections WHERE integration_id = %lld AND "
                                "connection_id = '%s'",
                                f->integration[env], cid);
}

void jn_test_syncs_deploy(jn_test_syncs_t *f, int env, const jn_sync_decl_t *decls, size_t n)
{
    PGconn *conn = jn_test_syncs_db(f);
    char why[512] = "";
    jn_err_t err =
        jn_syncs_reconcile(conn, f->env[env], f->integration[env], decls, n, NULL, why, sizeof why);
    jn_test_syncs_release(f, conn);
    if (err)
        fail_msg("deploy: %s: %s", jn_err_str(err), why);
}

long long jn_test_syncs_id(jn_test_syncs_t *f, int env, const char *cid, const char *name,
                           const char *variant)
{
    return jn_test_syncs_number(f,
                                "SELECT s.id FROM syncs s JOIN connections c ON c.id = "
                                "s.connection_id WHERE c.integration_id = %lld AND "
                                "c.connection_id = '%s' AND s.name = '%s' AND s.variant = '%s'",
                                f->integration[env], cid, name, variant ? variant : "base");
}

void jn_test_syncs_begin_run(jn_test_syncs_t *f, int env, long long sync_id, jn_sync_mode_t mode,
                             const char *owner, int lease_s, jn_sync_run_t *run)
{
    PGconn *conn = jn_test_syncs_db(f);
    char sql[512];
    /* A request, as POST /sync/trigger makes it (without cancelling: the test decides). */
    snprintf(sql, sizeof sql,
             "UPDATE syncs SET requested_mode = '%s', next_due_at = now() WHERE id = %lld",
             jn_sync_mode_name(mode), sync_id);
    assert_int_equal(jn_pg_exec_script(conn, sql), JN_OK);
    char job_id[37] = "";
    for (int round = 0; round < 100 && !job_id[0]; round++) {
        jn_job_ref_t *jobs = NULL;
        size_t n = 0, skipped = 0;
        assert_int_equal(jn_syncs_fire_due(conn, 1000, &jobs, &n, &skipped), JN_OK);
        free(jobs);
        char *v = NULL;
        snprintf(sql, sizeof sql,
                 "SELECT current_job_id FROM syncs WHERE id = %lld AND requested_mode IS NULL",
                 sync_id);
        PGresult *r = NULL;
        assert_int_equal(jn_pg_exec(conn, sql, 0, NULL, &r), JN_OK);
        if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            v = PQgetvalue(r, 0, 0);
        if (v)
            snprintf(job_id, sizeof job_id, "%s", v);
        PQclear(r);
    }
    if (!job_id[0])
        fail_msg("sync %lld was not fired (is a run of it in flight?)", sync_id);
    jn_job_t job;
    jn_err_t err = jn_jobs_claim(conn, job_id, owner, lease_s, &job);
    if (err)
        fail_msg("claim %s: %s", job_id, jn_err_str(err));
    err = jn_syncs_run_begin(conn, f->env[env], job_id, job.lease_token, run);
    jn_job_cleanup(&job);
    jn_test_syncs_release(f, conn);
    if (err)
        fail_msg("begin run %s: %s", job_id, jn_err_str(err));
}

jn_records_counts_t jn_test_syncs_write(jn_test_syncs_t *f, const jn_sync_run_t *run, char op,
                                        const char *model, const char *json, jn_err_t want)
{
    json_object *records = json_tokener_parse(json);
    assert_non_null(records);
    PGconn *conn = jn_test_syncs_db(f);
    jn_records_counts_t counts = {0};
    jn_field_error_t e = {{0}, {0}};
    jn_err_t err =
        op == 'u'   ? jn_records_update(conn, &f->ring, &run->writer, model, records, &counts, &e)
        : op == 'd' ? jn_records_delete(conn, &f->ring, &run->writer, model, records, &counts, &e)
                    : jn_records_save(conn, &f->ring, &run->writer, model, records, &counts, &e);
    jn_test_syncs_release(f, conn);
    json_object_put(records);
    if (err != want)
        fail_msg("write '%c' %s: %s (wanted %s) %s: %s", op, model, jn_err_str(err),
                 jn_err_str(want), e.path, e.message);
    return counts;
}

long jn_test_syncs_get(jn_test_syncs_t *f, int env, const char *cid, const char *path,
                       json_object **resp)
{
    char url[2048], auth[256], h_cid[300];
    snprintf(url, sizeof url, "%s%s", f->gw.url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jn_test_syncs_key(f, env));
    snprintf(h_cid, sizeof h_cid, "Connection-Id: %s", cid ? cid : "");
    const char *headers[] = {auth, cid ? h_cid : NULL, cid ? "Provider-Config-Key: hn" : NULL,
                             NULL};
    char *text = NULL;
    long status = jn_test_http("GET", url, headers, NULL, 0, &text);
    if (resp)
        *resp = json_tokener_parse(text ? text : "");
    free(text);
    return status;
}

typedef struct {
    char url[64];
} livez_t;

static bool livez(void *ud)
{
    livez_t *l = ud;
    return jn_test_http("GET", l->url, NULL, NULL, 0, NULL) == 200;
}

int jn_test_syncs_scheduler_start(jn_test_syncs_t *f, jn_test_process_t *p,
                                  const char *scheduler_bin, const char *const *extra_env)
{
    /* Static: the environment strings must outlive the spawn (two schedulers may run). */
    static char e_db[2][600], e_prefix[2][128], e_port[2][64];
    static int turn;
    int t = turn++ % 2;
    int port = jn_test_free_port();
    snprintf(e_db[t], sizeof e_db[t], "JUNCTION_DATABASE_URL=%s", f->gw.db_url);
    snprintf(e_prefix[t], sizeof e_prefix[t], "JUNCTION_TOPIC_PREFIX=%s", f->gw.db);
    snprintf(e_port[t], sizeof e_port[t], "JUNCTION_SCHEDULER_PORT=%d", port);
    const char *env[32];
    size_t n = 0;
    for (size_t i = 0; extra_env && extra_env[i] && n < 24; i++)
        env[n++] = extra_env[i];
    env[n++] = e_db[t];
    env[n++] = e_prefix[t];
    env[n++] = e_port[t];
    env[n++] = "JUNCTION_TOPIC_PARTITIONS=1";
    env[n++] = "JUNCTION_BIND_ADDRESS=127.0.0.1";
    env[n] = NULL;
    const char *argv[] = {scheduler_bin, NULL};
    char name[128];
    snprintf(name, sizeof name, "%s_scheduler_%d", f->gw.db, turn);
    jn_test_spawn(p, argv, env, name);
    livez_t l;
    snprintf(l.url, sizeof l.url, "http://127.0.0.1:%d/livez", port);
    if (!jn_test_wait_until(livez, &l, 60000)) {
        char *log = jn_test_read_log(p);
        jn_test_process_kill(p);
        fail_msg("the scheduler did not start:\n%s", log);
    }
    return port;
}

void jn_test_syncs_scheduler_stop(jn_test_process_t *p)
{
    jn_test_signal(p, SIGTERM);
    bool exited = jn_test_process_wait(p, 20000);
    if (!exited)
        jn_test_process_kill(p);
    assert_true(exited);
    assert_int_equal(p->exit_status, 0);
}
