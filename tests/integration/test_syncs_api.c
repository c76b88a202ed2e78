/*
 * Integration: the sync lifecycle over HTTP (the /sync routes) against a gateway and PostgreSQL,
 * with deployments made through jn_syncs_reconcile (as the deploy API will call it) and
 * runs made through the stores (as a worker will).
 *
 * What it proves: a new connection gets its integration's syncs (running ones due at once,
 * others paused) and a deployment gives existing connections new syncs spread over their
 * interval; trigger (opts, the deprecated sync_mode and full_resync), start and pause
 * change exactly the syncs they name and refuse bad bodies and unknown names with a clear
 * error, changing nothing; a reset cancels the run in flight; GET /sync/status has Nango's
 * shape before, during and after runs; per-connection frequencies and variants work;
 * removing a script stops its syncs and keeps their records; deleting a connection takes
 * its syncs and, through the scheduler, its records (with a DELETED event each); another
 * environment sees none of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "store/jobs.h"
#include "sync_fixture.h"

static jn_test_syncs_t fx;

static const char *const contact_models[] = {"Contact"};
static const char *const deal_models[] = {"Deal", "Note"};
static const char *const ticket_models[] = {"Ticket"};

static const jn_sync_decl_t base_decls[] = {
    {"contacts", false, false, true, 300, contact_models, 1},
    {"deals", true, true, false, 3600, deal_models, 2},
};

static int setup(void **state)
{
    (void)state;
    jn_test_syncs_start(&fx, GATEWAY_BIN, NULL);
    jn_test_syncs_deploy(&fx, 0, base_decls, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_syncs_stop(&fx);
    return 0;
}

static long post(const char *path, const char *body, json_object **resp)
{
    return jn_test_api(&fx.gw, "POST", path, fx.gw.dev_key, body, resp);
}

/* Takes the response by address: the status call and the response are then evaluated in
 * order (a function's arguments are not). */
static void ok(long st, json_object **resp, const char *what)
{
    jn_test_expect_status(st, 200, *resp, what);
    json_object_put(*resp);
    *resp = NULL;
}

static long long sync_number(const char *cid, const char *name, const char *variant,
                             const char *expr)
{
    return jn_test_syncs_number(&fx,
                                "SELECT %s FROM syncs s JOIN connections c ON c.id = "
                                "s.connection_id WHERE c.connection_id = '%s' AND s.name = '%s' "
                                "AND s.variant = '%s'",
                                expr, cid, name, variant ? variant : "base");
}

static json_object *status(const char *query)
{
    char path[512];
    snprintf(path, sizeof path, "/sync/status?%s", query);
    json_object *resp = NULL;
    long st = jn_test_syncs_get(&fx, 0, NULL, path, &resp);
    jn_test_expect_status(st, 200, resp, path);
    return resp;
}

static void test_new_connection_gets_its_syncs(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "new1");
    assert_int_equal(sync_number("new1", "contacts", NULL,
                                 "count(*) FILTER (WHERE state = 'running' AND next_due_at <= "
                                 "now())"),
                     1);
    assert_int_equal(
        sync_number("new1", "deals", NULL,
                    "count(*) FILTER (WHERE state = 'paused' AND next_due_at IS NULL)"),
        1);
    json_object *resp = status("syncs=*&provider_config_key=hn&connection_id=new1");
    json_object *syncs = json_object_object_get(resp, "syncs");
    assert_int_equal(json_object_array_length(syncs), 2);
    json_object *c = json_object_array_get_idx(syncs, 0), *d = json_object_array_get_idx(syncs, 1);
    assert_int_equal(strlen(jn_test_json_str(c, "id")), 36);
    assert_string_equal(jn_test_json_str(c, "connection_id"), "new1");
    assert_string_equal(jn_test_json_str(c, "name"), "contacts");
    assert_string_equal(jn_test_json_str(c, "variant"), "base");
    assert_string_equal(jn_test_json_str(c, "type"), "INITIAL");
    assert_string_equal(jn_test_json_str(c, "status"), "SUCCESS");
    assert_string_equal(jn_test_json_str(c, "frequency"), "every 5m");
    assert_non_null(jn_test_json_str(c, "nextScheduledSyncAt"));
    assert_true(json_object_object_get_ex(c, "finishedAt", NULL));
    assert_null(jn_test_json_str(c, "finishedAt"));
    assert_string_equal(json_object_to_json_string(json_object_object_get(c, "latestResult")),
                        "{ }");
    assert_null(jn_test_json_str(c, "latestExecutionStatus"));
    assert_string_equal(jn_test_json_str(c, "recordCount.Contact"), "0");
    assert_true(json_object_object_get_ex(c, "checkpoint", NULL));
    assert_null(jn_test_json_str(c, "checkpoint"));
    assert_string_equal(jn_test_json_str(d, "status"), "PAUSED");
    assert_string_equal(jn_test_json_str(d, "frequency"), "every 1h");
    assert_null(jn_test_json_str(d, "nextScheduledSyncAt"));
    assert_string_equal(jn_test_json_str(d, "recordCount.Note"), "0");
    json_object_put(resp);
    /* Named syncs, and the integration and connection from the headers. */
    char url[512], auth[256];
    snprintf(url, sizeof url, "%s/sync/status?syncs=deals", fx.gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", fx.gw.dev_key);
    const char *headers[] = {auth, "Provider-Config-Key: hn", "Connection-Id: new1", NULL};
    char *text = NULL;
    assert_int_equal(jn_test_http("GET", url, headers, NULL, 0, &text), 200);
    resp = json_tokener_parse(text);
    free(text);
    assert_int_equal(json_object_array_length(json_object_object_get(resp, "syncs")), 1);
    assert_string_equal(jn_test_json_str(resp, "syncs.0.name"), "deals");
    json_object_put(resp);
}

static void test_deploying_to_existing_connections_spreads_first_runs(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "old1");
    jn_test_syncs_connection(&fx, 0, "old2");
    const jn_sync_decl_t decls[] = {
        base_decls[0],
        base_decls[1],
        {"tickets", false, false, true, 600, ticket_models, 1},
    };
    PGconn *conn = jn_test_syncs_db(&fx);
    jn_sync_reconcile_counts_t counts;
    char why[256] = "";
    assert_int_equal(
        jn_syncs_reconcile(conn, fx.env[0], fx.integration[0], decls, 3, &counts, why, sizeof why),
        JN_OK);
    jn_test_syncs_release(&fx, conn);
    long long connections = jn_test_syncs_number(
        &fx, "SELECT count(*) FROM connections WHERE integration_id = %lld", fx.integration[0]);
    assert_int_equal(counts.created, connections);
    assert_int_equal(counts.stopped, 0);
    /* Due within one interval, not all now. */
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM syncs WHERE name = 'tickets' AND "
                                          "next_due_at > now() AND next_due_at <= now() + "
                                          "interval '600 seconds'"),
                     connections);
    /* A bad declaration changes nothing. */
    const jn_sync_decl_t bad[] = {{"x", false, false, true, 10, ticket_models, 1}};
    conn = jn_test_syncs_db(&fx);
    assert_int_equal(
        jn_syncs_reconcile(conn, fx.env[0], fx.integration[0], bad, 1, NULL, why, sizeof why),
        JN_ERR_INVALID);
    assert_non_null(strstr(why, "x: frequency"));
    assert_int_equal(
        jn_syncs_reconcile(conn, fx.env[1], fx.integration[0], decls, 3, NULL, why, sizeof why),
        JN_ERR_NOT_FOUND);
    jn_test_syncs_release(&fx, conn);
    assert_int_equal(jn_test_syncs_number(&fx, "SELECT count(*) FROM syncs WHERE state = "
                                               "'stopped'"),
                     0);
    jn_test_syncs_deploy(&fx, 0, base_decls, 2); /* tickets removed again */
    assert_int_equal(jn_test_syncs_number(&fx, "SELECT count(*) FROM syncs WHERE name = "
                                               "'tickets' AND state <> 'stopped'"),
                     0);
}

static void test_pause_start_and_trigger(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "ctl1");
    json_object *resp = NULL;
    ok(post("/sync/pause",
            "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\",\"connection_id\":\"ctl1\"}",
            &resp),
       &resp, "pause");
    assert_int_equal(
        sync_number("ctl1", "contacts", NULL,
                    "count(*) FILTER (WHERE state = 'paused' AND next_due_at IS NULL)"),
        1);
    json_object *st = status("syncs=contacts&provider_config_key=hn&connection_id=ctl1");
    assert_string_equal(jn_test_json_str(st, "syncs.0.status"), "PAUSED");
    json_object_put(st);
    ok(post("/sync/start",
            "{\"syncs\":[{\"name\":\"deals\"},\"contacts\"],"
            "\"provider_config_key\":\"hn\",\"connection_id\":\"ctl1\"}",
            &resp),
       &resp, "start");
    assert_int_equal(sync_number("ctl1", "deals", NULL,
                                 "count(*) FILTER (WHERE state = 'running' AND requested_mode = "
                                 "'incremental' AND next_due_at <= now())"),
                     1);
    /* The modes, in every spelling. */
    const struct {
        const char *body;
        const char *mode;
    } modes[] = {
        {"{\"syncs\":[\"deals\"],\"provider_config_key\":\"hn\",\"connection_id\":\"ctl1\","
         "\"opts\":{\"reset\":true}}",
         "full"},
        {"{\"syncs\":[\"deals\"],\"provider_config_key\":\"hn\",\"connection_id\":\"ctl1\","
         "\"opts\":{\"reset\":true,\"emptyCache\":true}}",
         "full_empty"},
        {"{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\",\"connection_id\":\"ctl1\","
         "\"sync_mode\":\"full_refresh\"}",
         "full"},
        {"{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\",\"connection_id\":\"ctl1\","
         "\"sync_mode\":\"full_refresh_and_clear_cache\"}",
         "full_empty"},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        jn_test_syncs_sql(&fx, "UPDATE syncs SET requested_mode = NULL");
        ok(post("/sync/trigger", modes[i].body, &resp), &resp, modes[i].body);
        const char *name = strstr(modes[i].body, "deals") ? "deals" : "contacts";
        char expr[128];
        snprintf(expr, sizeof expr, "count(*) FILTER (WHERE requested_mode = '%s')", modes[i].mode);
        if (sync_number("ctl1", name, NULL, expr) != 1)
            fail_msg("%s did not ask for %s", modes[i].body, modes[i].mode);
    }
    /* A weaker request does not undo a stronger one still pending. */
    ok(post("/sync/trigger",
            "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\","
            "\"connection_id\":\"ctl1\",\"full_resync\":false}",
            &resp),
       &resp, "full_resync false");
    assert_int_equal(sync_number("ctl1", "contacts", NULL,
                                 "count(*) FILTER (WHERE requested_mode = 'full_empty')"),
                     1);
    /* Keys from the headers, every sync, every connection. */
    jn_test_syncs_sql(&fx, "UPDATE syncs SET requested_mode = NULL");
    char url[512], auth[256];
    snprintf(url, sizeof url, "%s/sync/trigger", fx.gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", fx.gw.dev_key);
    const char *headers[] = {auth, "Provider-Config-Key: hn", "Content-Type: application/json",
                             NULL};
    assert_int_equal(jn_test_http("POST", url, headers, "{\"syncs\":[]}", 12, NULL), 200);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM syncs WHERE state <> 'stopped' AND "
                                          "requested_mode IS DISTINCT FROM 'incremental'"),
                     0);
}

static void test_bad_requests_change_nothing(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "bad1");
    char *before = jn_test_sql_value(
        fx.gw.db_url, "SELECT md5(string_agg(s::text, '|' ORDER BY id)) FROM syncs s");
    const struct {
        const char *path;
        const char *body;
        long status;
        const char *code;
    } cases[] = {
        {"/sync/trigger", "{\"syncs\":[\"contacts\"],\"connection_id\":\"bad1\"}", 400,
         "invalid_body"},
        {"/sync/trigger",
         "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\",\"opts\":{\"reset\":true},"
         "\"sync_mode\":\"full_refresh\"}",
         400, "invalid_body"},
        {"/sync/trigger",
         "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\",\"opts\":{\"emptyCache\":true}}",
         400, "invalid_body"},
        {"/sync/trigger",
         "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\",\"opts\":{\"purge\":true}}", 400,
         "invalid_body"},
        {"/sync/trigger",
         "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\",\"sync_mode\":"
         "\"everything\"}",
         400, "invalid_body"},
        {"/sync/trigger", "{\"syncs\":\"contacts\",\"provider_config_key\":\"hn\"}", 400,
         "invalid_body"},
        {"/sync/trigger", "{\"syncs\":[42],\"provider_config_key\":\"hn\"}", 400, "invalid_body"},
        {"/sync/trigger", "{\"syncs\":[\"contacts::bad variant\"],\"provider_config_key\":\"hn\"}",
         400, "invalid_body"},
        {"/sync/trigger", "{\"provider_config_key\":\"hn\",\"extra\":1}", 400, "invalid_body"},
        {"/sync/trigger", "not json", 400, "invalid_body"},
        {"/sync/start", "{\"provider_config_key\":\"hn\"}", 400, "invalid_body"},
        {"/sync/trigger", "{\"syncs\":[\"contacts\",\"nope\"],\"provider_config_key\":\"hn\"}", 404,
         "not_found"},
        {"/sync/trigger",
         "{\"syncs\":[\"contacts::eu\"],\"provider_config_key\":\"hn\",\"connection_id\":\"bad1\"}",
         404, "not_found"},
        {"/sync/pause",
         "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\","
         "\"connection_id\":\"nobody\"}",
         404, "not_found"},
        {"/sync/start", "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"nope\"}", 404,
         "not_found"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        long st = post(cases[i].path, cases[i].body, &resp);
        const char *code = jn_test_json_str(resp, "error.code");
        if (st != cases[i].status || !code || strcmp(code, cases[i].code) != 0)
            fail_msg("%s %s: %ld %s", cases[i].path, cases[i].body, st,
                     resp ? json_object_to_json_string(resp) : "");
        json_object_put(resp);
    }
    /* Prod has an integration "hn" too, but not dev's connection. */
    json_object *resp = NULL;
    long st = jn_test_api(&fx.gw, "POST", "/sync/trigger", fx.gw.prod_key,
                          "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\","
                          "\"connection_id\":\"bad1\"}",
                          &resp);
    jn_test_expect_status(st, 404, resp, "prod triggers dev's sync");
    json_object_put(resp);
    st = jn_test_syncs_get(&fx, 0, NULL, "/sync/status?provider_config_key=hn", &resp);
    jn_test_expect_status(st, 400, resp, "status without syncs");
    json_object_put(resp);
    char *after = jn_test_sql_value(
        fx.gw.db_url, "SELECT md5(string_agg(s::text, '|' ORDER BY id)) FROM syncs s");
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_status_through_a_run_and_a_reset(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "run1");
    long long sync = jn_test_syncs_id(&fx, 0, "run1", "contacts", NULL);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 600, &run);
    json_object *st = status("syncs=contacts&provider_config_key=hn&connection_id=run1");
    assert_string_equal(jn_test_json_str(st, "syncs.0.status"), "RUNNING");
    assert_string_equal(jn_test_json_str(st, "syncs.0.latestExecutionStatus"), "RUNNING");
    assert_false(json_object_object_get_ex(
        json_object_array_get_idx(json_object_object_get(st, "syncs"), 0), "finishedAt", NULL));
    json_object_put(st);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":1},{\"id\":2},{\"id\":3}]", JN_OK);
    PGconn *conn = jn_test_syncs_db(&fx);
    json_object *cp = json_tokener_parse("{\"updated_after\":\"2026-11-01\"}");
    assert_int_equal(jn_syncs_checkpoint_save(conn, &run, cp), JN_OK);
    json_object_put(cp);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
    st = status("syncs=contacts&provider_config_key=hn&connection_id=run1");
    assert_string_equal(jn_test_json_str(st, "syncs.0.status"), "SUCCESS");
    assert_string_equal(jn_test_json_str(st, "syncs.0.type"), "INCREMENTAL");
    assert_string_equal(jn_test_json_str(st, "syncs.0.latestExecutionStatus"), "SUCCESS");
    assert_string_equal(jn_test_json_str(st, "syncs.0.latestResult.Contact.added"), "3");
    assert_string_equal(jn_test_json_str(st, "syncs.0.recordCount.Contact"), "3");
    assert_string_equal(jn_test_json_str(st, "syncs.0.checkpoint.updated_after"), "2026-11-01");
    assert_int_equal(strlen(jn_test_json_str(st, "syncs.0.finishedAt")), 24);
    json_object_put(st);

    /* A reset while a run is in flight cancels it: its worker can write nothing more. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 600, &run);
    json_object *resp = NULL;
    ok(post("/sync/trigger",
            "{\"syncs\":[\"contacts\"],\"provider_config_key\":\"hn\","
            "\"connection_id\":\"run1\",\"opts\":{\"reset\":true}}",
            &resp),
       &resp, "reset");
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM jobs WHERE id = '%s' AND "
                                          "state = 'cancelled'",
                                          run.writer.job_id),
                     1);
    assert_int_equal(sync_number("run1", "contacts", NULL,
                                 "count(*) FILTER (WHERE current_job_id IS NULL AND "
                                 "requested_mode = 'full' AND next_due_at <= now())"),
                     1);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":9}]", JN_ERR_CONFLICT);
    conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_ERR_CONFLICT);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
    /* The reset run clears the checkpoint and last_sync_date. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_FULL, "w1", 600, &run);
    assert_null(run.checkpoint);
    assert_string_equal(run.last_sync_date, "");
    st = status("syncs=contacts&provider_config_key=hn&connection_id=run1");
    assert_null(jn_test_json_str(st, "syncs.0.checkpoint"));
    json_object_put(st);
    conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
}

static void test_connection_frequency(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "freq1");
    json_object *resp = NULL;
    long st = jn_test_api(&fx.gw, "PUT", "/sync/update-connection-frequency", fx.gw.dev_key,
                          "{\"sync_name\":\"contacts\",\"provider_config_key\":\"hn\","
                          "\"connection_id\":\"freq1\",\"frequency\":\"every 2 hours\"}",
                          &resp);
    jn_test_expect_status(st, 200, resp, "frequency");
    assert_string_equal(jn_test_json_str(resp, "frequency"), "every 2 hours");
    json_object_put(resp);
    assert_int_equal(sync_number("freq1", "contacts", NULL,
                                 "count(*) FILTER (WHERE frequency_override_s = 7200 AND "
                                 "next_due_at > now() AND next_due_at <= now() + interval '2 "
                                 "hours')"),
                     1);
    json_object *s = status("syncs=contacts&provider_config_key=hn&connection_id=freq1");
    assert_string_equal(jn_test_json_str(s, "syncs.0.frequency"), "every 2h");
    json_object_put(s);
    st = jn_test_api(&fx.gw, "PUT", "/sync/update-connection-frequency", fx.gw.dev_key,
                     "{\"sync_name\":\"contacts\",\"provider_config_key\":\"hn\","
                     "\"connection_id\":\"freq1\",\"frequency\":null}",
                     &resp);
    jn_test_expect_status(st, 200, resp, "frequency null");
    assert_string_equal(jn_test_json_str(resp, "frequency"), "every 5m");
    json_object_put(resp);
    assert_int_equal(sync_number("freq1", "contacts", NULL,
                                 "count(*) FILTER (WHERE frequency_override_s IS NULL)"),
                     1);
    const char *bad[][2] = {
        {"{\"sync_name\":\"contacts\",\"provider_config_key\":\"hn\",\"connection_id\":\"freq1\","
         "\"frequency\":\"10s\"}",
         "400"},
        {"{\"sync_name\":\"contacts\",\"provider_config_key\":\"hn\",\"connection_id\":\"freq1\","
         "\"frequency\":\"sometimes\"}",
         "400"},
        {"{\"sync_name\":\"contacts\",\"provider_config_key\":\"hn\",\"connection_id\":\"freq1\"}",
         "400"},
        {"{\"sync_name\":\"contacts\",\"provider_config_key\":\"hn\",\"frequency\":\"1h\"}", "400"},
        {"{\"sync_name\":\"nope\",\"provider_config_key\":\"hn\",\"connection_id\":\"freq1\","
         "\"frequency\":\"1h\"}",
         "404"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = jn_test_api(&fx.gw, "PUT", "/sync/update-connection-frequency", fx.gw.dev_key,
                         bad[i][0], &resp);
        if (st != strtol(bad[i][1], NULL, 10))
            fail_msg("%s: %ld %s", bad[i][0], st, json_object_to_json_string(resp));
        json_object_put(resp);
    }
}

static void test_variants(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "var1");
    const char *body = "{\"provider_config_key\":\"hn\",\"connection_id\":\"var1\"}";
    json_object *resp = NULL;
    long st = post("/sync/contacts/variant/eu", body, &resp);
    jn_test_expect_status(st, 200, resp, "create variant");
    assert_string_equal(jn_test_json_str(resp, "name"), "contacts");
    assert_string_equal(jn_test_json_str(resp, "variant"), "eu");
    assert_int_equal(strlen(jn_test_json_str(resp, "id")), 36);
    json_object_put(resp);
    st = post("/sync/contacts/variant/eu", body, &resp);
    jn_test_expect_status(st, 409, resp, "again");
    json_object_put(resp);
    st = post("/sync/contacts/variant/base", body, &resp);
    jn_test_expect_status(st, 400, resp, "base");
    json_object_put(resp);
    st = post("/sync/nope/variant/eu", body, &resp);
    jn_test_expect_status(st, 404, resp, "no base");
    json_object_put(resp);
    /* The variant runs on its own, into its own models. */
    long long sync = jn_test_syncs_id(&fx, 0, "var1", "contacts", "eu");
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 600, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"e1\"}]", JN_OK);
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
    json_object *s =
        status("syncs=contacts::eu,contacts&provider_config_key=hn&connection_id=var1");
    assert_int_equal(json_object_array_length(json_object_object_get(s, "syncs")), 2);
    json_object *eu = NULL;
    for (size_t i = 0; i < 2; i++) {
        json_object *x = json_object_array_get_idx(json_object_object_get(s, "syncs"), i);
        if (strcmp(jn_test_json_str(x, "variant"), "eu") == 0)
            eu = x;
    }
    assert_non_null(eu);
    assert_string_equal(jn_test_json_str(eu, "recordCount.Contact"), "1");
    json_object_put(s);
    st = jn_test_syncs_get(&fx, 0, "var1", "/records?model=Contact&variant=eu", &resp);
    jn_test_expect_status(st, 200, resp, "variant records");
    assert_string_equal(jn_test_json_str(resp, "records.0.id"), "e1");
    json_object_put(resp);
    st = jn_test_syncs_get(&fx, 0, "var1", "/records?model=Contact", &resp);
    assert_int_equal(json_object_array_length(json_object_object_get(resp, "records")), 0);
    json_object_put(resp);
    /* Deleted: stopped, records kept; created again: back. */
    st = jn_test_api(&fx.gw, "DELETE", "/sync/contacts/variant/eu", fx.gw.dev_key, body, &resp);
    ok(st, &resp, "delete variant");
    assert_int_equal(sync_number("var1", "contacts", "eu",
                                 "count(*) FILTER (WHERE state = "
                                 "'stopped' AND next_due_at IS NULL)"),
                     1);
    s = status("syncs=contacts::eu&provider_config_key=hn&connection_id=var1");
    assert_string_equal(jn_test_json_str(s, "syncs.0.status"), "STOPPED");
    json_object_put(s);
    ok(post("/sync/contacts/variant/eu", body, &resp), &resp, "create again");
    assert_int_equal(sync_number("var1", "contacts", "eu",
                                 "count(*) FILTER (WHERE state = "
                                 "'running')"),
                     1);
}

static void test_removed_script_stops_its_syncs(void **state)
{
    (void)state;
    jn_test_syncs_connection(&fx, 0, "rm1");
    long long sync = jn_test_syncs_id(&fx, 0, "rm1", "deals", NULL);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 600, &run);
    jn_test_syncs_write(&fx, &run, 's', "Deal", "[{\"id\":\"d1\"}]", JN_OK);
    jn_test_syncs_deploy(&fx, 0, base_decls, 1); /* deals removed */
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM jobs WHERE id = '%s' AND "
                                          "state = 'cancelled'",
                                          run.writer.job_id),
                     1);
    jn_test_syncs_write(&fx, &run, 's', "Deal", "[{\"id\":\"d2\"}]", JN_ERR_CONFLICT);
    jn_sync_run_cleanup(&run);
    json_object *s = status("syncs=deals&provider_config_key=hn&connection_id=rm1");
    assert_string_equal(jn_test_json_str(s, "syncs.0.status"), "STOPPED");
    json_object_put(s);
    json_object *resp = NULL;
    long st =
        post("/sync/trigger", "{\"syncs\":[\"deals\"],\"provider_config_key\":\"hn\"}", &resp);
    jn_test_expect_status(st, 404, resp, "trigger a stopped sync");
    json_object_put(resp);
    st = jn_test_syncs_get(&fx, 0, "rm1", "/records?model=Deal", &resp);
    assert_string_equal(jn_test_json_str(resp, "records.0.id"), "d1");
    json_object_put(resp);
    jn_test_syncs_deploy(&fx, 0, base_decls, 2); /* back: paused, as declared */
    assert_int_equal(sync_number("rm1", "deals", NULL, "count(*) FILTER (WHERE state = 'paused')"),
                     1);
}

static bool scopes_gone(void *ud)
{
    return jn_test_syncs_number(&fx,
                                "SELECT count(*) FROM record_scopes WHERE connection_id = %lld",
                                *(long long *)ud) == 0;
}

static void test_deleted_connection_takes_its_syncs_and_records(void **state)
{
    (void)state;
    long long row = jn_test_syncs_connection(&fx, 0, "del1");
    long long sync = jn_test_syncs_id(&fx, 0, "del1", "contacts", NULL);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 600, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}]",
                        JN_OK);
    jn_test_syncs_write(&fx, &run, 'd', "Contact", "[\"c\"]", JN_OK);
    json_object *resp = NULL;
    long st = jn_test_api(&fx.gw, "DELETE", "/connections/del1?provider_config_key=hn",
                          fx.gw.dev_key, NULL, &resp);
    ok(st, &resp, "delete connection");
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM syncs WHERE connection_id = "
                                          "%lld",
                                          row),
                     0);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"z\"}]", JN_ERR_CONFLICT);
    jn_sync_run_cleanup(&run);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM record_scopes WHERE "
                                          "connection_id = %lld AND purge_requested_at IS "
                                          "NOT NULL",
                                          row),
                     1);
    /* The scheduler purges them, with a DELETED event for each live record. */
    jn_test_process_t scheduler;
    jn_test_syncs_scheduler_start(&fx, &scheduler, SCHEDULER_BIN, NULL);
    bool gone = jn_test_wait_until(scopes_gone, &row, 30000);
    jn_test_syncs_scheduler_stop(&scheduler);
    assert_true(gone);
    assert_int_equal(jn_test_syncs_number(&fx, "SELECT count(*) FROM records r WHERE NOT EXISTS "
                                               "(SELECT 1 FROM record_scopes s WHERE s.id = "
                                               "r.scope_id)"),
                     0);
    char *v = jn_test_sql_value(
        fx.gw.db_url, "SELECT string_agg((c->>'record_id') || ':' || (c->>'action'), ' ' "
                      "ORDER BY o.id, (c->>'seq')::bigint) FROM record_outbox o, "
                      "json_array_elements(o.changes::json) c WHERE o.connection = 'del1'");
    assert_string_equal(v, "a:ADDED b:ADDED c:ADDED c:DELETED a:DELETED b:DELETED");
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_connection_gets_its_syncs),
        cmocka_unit_test(test_deploying_to_existing_connections_spreads_first_runs),
        cmocka_unit_test(test_pause_start_and_trigger),
        cmocka_unit_test(test_bad_requests_change_nothing),
        cmocka_unit_test(test_status_through_a_run_and_a_reset),
        cmocka_unit_test(test_connection_frequency),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_removed_script_stops_its_syncs),
        cmocka_unit_test(test_deleted_connection_takes_its_syncs_and_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
