/*
 * Integration: the records store against PostgreSQL, written as a worker writes (runs
 * started through the scheduler's and the worker's store calls) and read back through the
 * gateway's records API.
 *
 * What it proves: many pages of upserts count exactly; a rerun changes nothing and emits
 * nothing; changes, deletions, undeletions and partial updates give exact added /
 * updated / deleted counts and the API shows exactly them; reordered keys and other
 * spellings of the same numbers count as unchanged; bad records are refused naming the
 * record and field, with nothing written; a full sync that fails deletes nothing and the
 * pass goes on; a stale worker's writes and commit are refused once its lease was taken
 * over; every change has one outbox row in its transaction with a deterministic event id;
 * payloads are sealed at rest when the environment asks; environments never meet; a page
 * ends at its byte budget and the next goes on from there; the metadata's times are the
 * stored ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "harness.h"
#include "store/jobs.h"
#include "sync_fixture.h"

static jn_test_syncs_t fx;
static long long scope_seq; /* makes connection ids unique per test */

static const char *const contact_models[] = {"Contact"};
static const char *const two_models[] = {"Contact", "Deal"};

static int setup(void **state)
{
    (void)state;
    jn_test_syncs_start(&fx, GATEWAY_BIN, NULL);
    /* Paused syncs (auto_start false): nothing fires unless a test asks. */
    const jn_sync_decl_t decls[] = {
        {"contacts", false, false, false, 3600, contact_models, 1},
        {"full-contacts", true, true, false, 3600, two_models, 2},
    };
    jn_test_syncs_deploy(&fx, 0, decls, 2);
    jn_test_syncs_deploy(&fx, 1, decls, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_syncs_stop(&fx);
    return 0;
}

/* A new connection and the id of its sync name. */
static long long new_sync(int env, const char *name, char cid[64])
{
    snprintf(cid, 64, "c%lld", ++scope_seq);
    jn_test_syncs_connection(&fx, env, cid);
    return jn_test_syncs_id(&fx, env, cid, name, NULL);
}

/* A JSON array of records id prefix<from>..<to-1> with field v = value (and a nested
 * object and a list, so the payload is not trivial). */
static char *records_json(const char *prefix, int from, int to, const char *value)
{
    jn_buf_t b;
    jn_buf_init(&b, 64 * 1024 * 1024);
    jn_buf_append_str(&b, "[");
    for (int i = from; i < to; i++)
        jn_buf_printf(&b,
                      "%s{\"id\":\"%s%d\",\"v\":\"%s\",\"n\":%d,\"address\":{\"city\":\"Lyon\","
                      "\"zip\":\"69001\"},\"tags\":[\"a\",\"b\"]}",
                      i > from ? "," : "", prefix, i, value, i);
    jn_buf_append_str(&b, "]");
    return jn_buf_take(&b, NULL);
}

/* Fails unless result holds {model: {added, updated, deleted}} with these counts. */
static void expect_result(json_object *result, const char *model, long long added,
                          long long updated, long long deleted)
{
    json_object *m = NULL;
    if (!json_object_object_get_ex(result, model, &m))
        fail_msg("no %s in %s", model, json_object_to_json_string(result));
    const char *names[] = {"added", "updated", "deleted"};
    long long want[] = {added, updated, deleted};
    for (int i = 0; i < 3; i++) {
        json_object *v = NULL;
        json_object_object_get_ex(m, names[i], &v);
        if (!v || json_object_get_int64(v) != want[i])
            fail_msg("%s.%s: %s, wanted %lld", model, names[i], json_object_to_json_string(result),
                     want[i]);
    }
}

static void succeed(jn_sync_run_t *run, json_object **result)
{
    PGconn *conn = jn_test_syncs_db(&fx);
    jn_err_t err = jn_syncs_run_succeed(conn, run, result);
    jn_test_syncs_release(&fx, conn);
    if (err)
        fail_msg("run succeed: %s", jn_err_str(err));
}

static void fail_run(jn_sync_run_t *run)
{
    PGconn *conn = jn_test_syncs_db(&fx);
    json_object *error = json_tokener_parse("{\"type\":\"script_error\",\"message\":\"boom\"}");
    jn_err_t err = jn_syncs_run_fail(conn, run, error);
    json_object_put(error);
    jn_test_syncs_release(&fx, conn);
    assert_int_equal(err, JN_OK);
}

static long long scope_of(const char *cid, const char *model)
{
    return jn_test_syncs_number(&fx,
                                "SELECT s.id FROM record_scopes s JOIN connections c ON c.id = "
                                "s.connection_id WHERE c.connection_id = '%s' AND s.model = '%s'",
                                cid, model);
}

static long long count_records(const char *cid, const char *model, const char *where)
{
    return jn_test_syncs_number(&fx, "SELECT count(*) FROM records WHERE scope_id = %lld AND %s",
                                scope_of(cid, model), where);
}

/* The outbox's changes, one row each, in the order a relay publishes them. */
#define CHANGES                                                                                    \
    "(SELECT o.*, c->>'record_id' AS record_id, c->>'action' AS action, c->>'payload' AS "         \
    "payload, (c->>'seq')::bigint AS seq, c->>'event_id' AS event_id, c->>'cursor' AS cursor "     \
    "FROM record_outbox o, json_array_elements(o.changes::json) c) ch"

static long long count_outbox(const char *cid, const char *action)
{
    return jn_test_syncs_number(&fx,
                                "SELECT count(*) FROM " CHANGES " WHERE connection = '%s' AND "
                                "action = '%s'",
                                cid, action);
}

/* What paging through the API saw. */
typedef struct {
    int pages;
    size_t rows;    /* records over all pages, a repeated one counted again */
    size_t largest; /* records of the fullest page */
} paging_t;

/* Every record the API returns for cid (all pages of limit), as id -> record; seen (may be
 * NULL) receives how the pages went. */
static json_object *api_pages(int env, const char *cid, const char *extra, int limit,
                              paging_t *seen)
{
    paging_t dummy;
    seen = seen ? seen : &dummy;
    memset(seen, 0, sizeof *seen);
    json_object *all = json_object_new_object();
    char cursor[128] = "";
    for (int page = 0; page < 1000; page++) {
        char path[512];
        snprintf(path, sizeof path, "/records?model=Contact&limit=%d%s%s%s", limit, extra,
                 cursor[0] ? "&cursor=" : "", cursor);
        json_object *resp = NULL;
        long st = jn_test_syncs_get(&fx, env, cid, path, &resp);
        jn_test_expect_status(st, 200, resp, "GET /records");
        json_object *records = NULL;
        json_object_object_get_ex(resp, "records", &records);
        size_t n = json_object_array_length(records);
        seen->pages++;
        seen->rows += n;
        seen->largest = n > seen->largest ? n : seen->largest;
        for (size_t i = 0; i < n; i++) {
            json_object *r = json_object_array_get_idx(records, i);
            json_object *id = NULL;
            json_object_object_get_ex(r, "id", &id);
            json_object_object_add(all, json_object_get_string(id), json_object_get(r));
        }
        const char *next = jn_test_json_str(resp, "next_cursor");
        if (!next) {
            json_object_put(resp);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", next);
        json_object_put(resp);
    }
    return all;
}

/* Every record the API returns for cid (all pages of 1000), as id -> record. */
static json_object *api_all(int env, const char *cid, const char *extra)
{
    return api_pages(env, cid, extra, 1000, NULL);
}

static const char *action_of(json_object *all, const char *id)
{
    json_object *r = NULL;
    if (!json_object_object_get_ex(all, id, &r))
        return "(absent)";
    return jn_test_json_str(r, "_nango_metadata.last_action");
}

/* ---- tests ---- */

static void test_pages_of_upserts_and_a_rerun(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    long long added = 0;
    for (int page = 0; page < 5; page++) {
        char *json = records_json("r", page * 1000, page * 1000 + 1000, "one");
        jn_records_counts_t c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
        free(json);
        assert_int_equal(c.added, 1000);
        assert_int_equal(c.updated + c.unchanged + c.skipped, 0);
        added += c.added;
    }
    json_object *result = NULL;
    succeed(&run, &result);
    assert_int_equal(added, 5000);
    expect_result(result, "Contact", 5000, 0, 0);
    assert_int_equal(json_object_object_length(result), 1);
    json_object_put(result);
    jn_sync_run_cleanup(&run);
    assert_int_equal(count_outbox(cid, "ADDED"), 5000);
    long long last_seq = jn_test_syncs_number(
        &fx, "SELECT last_seq FROM record_scopes WHERE id = %lld", scope_of(cid, "Contact"));
    assert_int_equal(last_seq, 5000);

    /* The same records again, in other batches: nothing changes, nothing is emitted. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    for (int page = 0; page < 4; page++) {
        char *json = records_json("r", page * 1250, page * 1250 + 1250, "one");
        jn_records_counts_t c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
        free(json);
        assert_int_equal(c.unchanged, 1250);
        assert_int_equal(c.added + c.updated + c.deleted, 0);
    }
    succeed(&run, &result);
    expect_result(result, "Contact", 0, 0, 0);
    assert_int_equal(json_object_object_length(result), 1);
    json_object_put(result);
    jn_sync_run_cleanup(&run);
    assert_int_equal(count_outbox(cid, "ADDED") + count_outbox(cid, "UPDATED"), 5000);
    assert_int_equal(jn_test_syncs_number(&fx, "SELECT last_seq FROM record_scopes WHERE id = %lld",
                                          scope_of(cid, "Contact")),
                     last_seq);
    json_object *all = api_all(0, cid, "");
    assert_int_equal(json_object_object_length(all), 5000);
    assert_string_equal(action_of(all, "r4321"), "ADDED");
    json_object_put(all);
}

static void test_changes_deletes_and_undeletes_count_exactly(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    char *json = records_json("r", 0, 1000, "one");
    jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);

    /* Run 2: 100 changed, 50 new, 850 the same, 30 deleted explicitly (one of them twice,
     * and one that never existed). */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    json = records_json("r", 0, 100, "two");
    jn_records_counts_t c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    assert_int_equal(c.updated, 100);
    json = records_json("r", 100, 1050, "one");
    c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    assert_int_equal(c.added, 50);
    assert_int_equal(c.unchanged, 900);
    jn_buf_t del;
    jn_buf_init(&del, 1 << 20);
    jn_buf_append_str(&del, "[{\"id\":\"r500\"},\"r500\",\"nope\"");
    for (int i = 501; i < 530; i++)
        jn_buf_printf(&del, ",{\"id\":\"r%d\",\"ignored\":true}", i);
    jn_buf_append_str(&del, "]");
    c = jn_test_syncs_write(&fx, &run, 'd', "Contact", del.data, JN_OK);
    assert_int_equal(c.deleted, 30);
    assert_int_equal(c.skipped, 2);
    /* Deleting again changes nothing. */
    c = jn_test_syncs_write(&fx, &run, 'd', "Contact", del.data, JN_OK);
    assert_int_equal(c.deleted, 0);
    jn_buf_cleanup(&del);
    json_object *result = NULL;
    succeed(&run, &result);
    expect_result(result, "Contact", 50, 100, 30);
    assert_int_equal(json_object_object_length(result), 1);
    json_object_put(result);
    jn_sync_run_cleanup(&run);

    json_object *all = api_all(0, cid, "");
    assert_int_equal(json_object_object_length(all), 1050);
    assert_string_equal(action_of(all, "r5"), "UPDATED");
    assert_string_equal(jn_test_json_str(json_object_object_get(all, "r5"), "v"), "two");
    assert_string_equal(action_of(all, "r1049"), "ADDED");
    assert_string_equal(action_of(all, "r510"), "DELETED");
    assert_non_null(
        jn_test_json_str(json_object_object_get(all, "r510"), "_nango_metadata.deleted_at"));
    assert_string_equal(action_of(all, "r700"), "ADDED");
    json_object_put(all);
    all = api_all(0, cid, "&filter=deleted");
    assert_int_equal(json_object_object_length(all), 30);
    json_object_put(all);
    all = api_all(0, cid, "&filter=UPDATED,deleted");
    assert_int_equal(json_object_object_length(all), 130);
    json_object_put(all);

    /* Run 3: a deleted record saved again is ADDED again, first seen anew. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    json = records_json("r", 500, 510, "one");
    c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    assert_int_equal(c.added, 10);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    all = api_all(0, cid, "");
    assert_string_equal(action_of(all, "r505"), "ADDED");
    assert_null(
        jn_test_json_str(json_object_object_get(all, "r505"), "_nango_metadata.deleted_at"));
    /* first_seen_at (milliseconds) is the start of last_modified_at (microseconds). */
    const char *seen =
        jn_test_json_str(json_object_object_get(all, "r505"), "_nango_metadata.first_seen_at");
    const char *modified =
        jn_test_json_str(json_object_object_get(all, "r505"), "_nango_metadata.last_modified_at");
    assert_int_equal(strlen(seen), 24);
    assert_int_equal(strlen(modified), 27);
    assert_memory_equal(seen, modified, 23);
    json_object_put(all);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT live_count FROM record_scopes WHERE id = %lld",
                                          scope_of(cid, "Contact")),
                     1030);
    assert_int_equal(count_records(cid, "Contact",
                                   "first_seen_at = updated_at AND "
                                   "external_id BETWEEN 'r500' AND 'r509'"),
                     10);
}

static void test_key_order_and_number_spelling_do_not_change_a_record(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    jn_records_counts_t c = jn_test_syncs_write(
        &fx, &run, 's', "Contact",
        "[{\"id\":\"a\",\"x\":1,\"y\":{\"b\":[1,2.5,{\"q\":true,\"p\":null}],\"a\":100},"
        "\"s\":\"\\u00e9\\n\"},{\"id\":7,\"w\":0.1}]",
        JN_OK);
    assert_int_equal(c.added, 2);
    c = jn_test_syncs_write(
        &fx, &run, 's', "Contact",
        "[{\"s\":\"\xc3\xa9\\n\",\"y\":{\"a\":1e2,\"b\":[1.0,25e-1,{\"p\":null,\"q\":true}]},"
        "\"x\":1.00,\"id\":\"a\",\"_nango_metadata\":{\"cursor\":\"whatever\"}},"
        "{\"w\":1e-1,\"id\":\"7\"}]",
        JN_OK);
    assert_int_equal(c.unchanged, 2);
    assert_int_equal(c.added + c.updated, 0);
    /* A real change is still one. */
    c = jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"7\",\"w\":0.2}]", JN_OK);
    assert_int_equal(c.updated, 1);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    json_object *all = api_all(0, cid, "");
    /* Ids come back as strings; payloads in canonical form. */
    assert_string_equal(jn_test_json_str(json_object_object_get(all, "7"), "id"), "7");
    assert_string_equal(jn_test_json_str(json_object_object_get(all, "a"), "y.a"), "100");
    json_object_put(all);
}

static void test_bad_records_are_refused_and_nothing_is_written(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"keep\",\"v\":1}]", JN_OK);
    struct {
        const char *json;
        const char *path;
        jn_err_t err;
    } cases[] = {
        {"[{\"id\":\"ok\"},{\"v\":1}]", "records[1].id", JN_ERR_INVALID},
        {"[{\"id\":\"ok\"},{\"id\":\"\"}]", "records[1].id", JN_ERR_INVALID},
        {"[{\"id\":true}]", "records[0].id", JN_ERR_INVALID},
        {"[{\"id\":1.5}]", "records[0].id", JN_ERR_INVALID},
        {"[{\"id\":{\"a\":1}}]", "records[0].id", JN_ERR_INVALID},
        {"[{\"id\":\"ok\"},[1]]", "records[1]", JN_ERR_INVALID},
        {"{\"id\":\"ok\"}", "records", JN_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *records = json_tokener_parse(cases[i].json);
        PGconn *conn = jn_test_syncs_db(&fx);
        jn_records_counts_t counts;
        jn_field_error_t e = {{0}, {0}};
        jn_err_t err =
            jn_records_save(conn, &fx.ring, &run.writer, "Contact", records, &counts, &e);
        jn_test_syncs_release(&fx, conn);
        json_object_put(records);
        if (err != cases[i].err || strcmp(e.path, cases[i].path) != 0)
            fail_msg("case %zu: %s at '%s' (%s), wanted '%s'", i, jn_err_str(err), e.path,
                     e.message, cases[i].path);
    }
    /* A number JSON cannot hold, a record past the size cap, an id past 255 bytes, a model
     * name with "::". */
    json_object *records = json_tokener_parse("[{\"id\":\"n\",\"deep\":{\"x\":[0]}}]");
    json_object *deep = json_object_object_get(json_object_array_get_idx(records, 0), "deep");
    json_object_array_put_idx(json_object_object_get(deep, "x"), 0, json_object_new_double(NAN));
    PGconn *conn = jn_test_syncs_db(&fx);
    jn_records_counts_t counts;
    jn_field_error_t e = {{0}, {0}};
    assert_int_equal(jn_records_save(conn, &fx.ring, &run.writer, "Contact", records, &counts, &e),
                     JN_ERR_INVALID);
    assert_string_equal(e.path, "records[0].deep.x[0]");
    json_object_put(records);
    char *big = malloc(JN_RECORDS_MAX_RECORD_BYTES + 100);
    memset(big, 'x', JN_RECORDS_MAX_RECORD_BYTES + 99);
    big[JN_RECORDS_MAX_RECORD_BYTES + 99] = '\0';
    records = json_object_new_array();
    json_object *rec = json_object_new_object();
    json_object_object_add(rec, "id", json_object_new_string("big"));
    json_object_object_add(rec, "blob", json_object_new_string(big));
    json_object_array_add(records, rec);
    free(big);
    assert_int_equal(jn_records_save(conn, &fx.ring, &run.writer, "Contact", records, &counts, &e),
                     JN_ERR_TOO_LARGE);
    assert_string_equal(e.path, "records[0]");
    json_object_put(records);
    char long_id[300];
    memset(long_id, 'i', 256);
    long_id[256] = '\0';
    records = json_object_new_array();
    rec = json_object_new_object();
    json_object_object_add(rec, "id", json_object_new_string(long_id));
    json_object_array_add(records, rec);
    assert_int_equal(jn_records_save(conn, &fx.ring, &run.writer, "Contact", records, &counts, &e),
                     JN_ERR_INVALID);
    assert_int_equal(
        jn_records_save(conn, &fx.ring, &run.writer, "Con::tact", records, &counts, &e),
        JN_ERR_INVALID);
    assert_string_equal(e.path, "model");
    json_object_put(records);
    jn_test_syncs_release(&fx, conn);
    /* Only the first record was ever written; no event but its own. */
    assert_int_equal(count_records(cid, "Contact", "true"), 1);
    assert_int_equal(count_outbox(cid, "ADDED"), 1);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
}

static void test_partial_updates_merge_into_live_records(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact",
                        "[{\"id\":\"a\",\"name\":\"Ann\",\"address\":{\"city\":\"Lyon\","
                        "\"zip\":\"69001\"},\"tags\":[\"x\"]},{\"id\":\"b\",\"name\":\"Bob\"},"
                        "{\"id\":\"gone\",\"name\":\"G\"}]",
                        JN_OK);
    jn_test_syncs_write(&fx, &run, 'd', "Contact", "[\"gone\"]", JN_OK);
    /* a: nested merge and a replaced list; two updates of b in one batch apply in order;
     * gone (deleted) and missing are skipped; c's update leaves it as it was. */
    jn_records_counts_t c = jn_test_syncs_write(
        &fx, &run, 'u', "Contact",
        "[{\"id\":\"a\",\"address\":{\"city\":\"Paris\"},\"tags\":[\"y\",\"z\"]},"
        "{\"id\":\"b\",\"age\":40},{\"id\":\"b\",\"name\":\"Robert\"},"
        "{\"id\":\"gone\",\"name\":\"back?\"},{\"id\":\"missing\",\"name\":\"M\"}]",
        JN_OK);
    assert_int_equal(c.updated, 2);
    assert_int_equal(c.skipped, 2);
    c = jn_test_syncs_write(&fx, &run, 'u', "Contact", "[{\"id\":\"b\",\"age\":40}]", JN_OK);
    assert_int_equal(c.unchanged, 1);
    assert_int_equal(c.updated, 0);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    json_object *all = api_all(0, cid, "");
    json_object *a = json_object_object_get(all, "a"), *b = json_object_object_get(all, "b");
    assert_string_equal(jn_test_json_str(a, "address.city"), "Paris");
    assert_string_equal(jn_test_json_str(a, "address.zip"), "69001");
    assert_string_equal(jn_test_json_str(a, "tags.1"), "z");
    assert_null(jn_test_json_str(a, "tags.2"));
    assert_string_equal(jn_test_json_str(b, "name"), "Robert");
    assert_string_equal(jn_test_json_str(b, "age"), "40");
    assert_string_equal(action_of(all, "gone"), "DELETED");
    assert_string_equal(action_of(all, "missing"), "(absent)");
    json_object_put(all);
}

/* A full sync with track_deletes: a failed run deletes nothing and the pass goes on with
 * the next run; a successful run deletes what the pass did not see. */
static void test_full_sync_failure_deletes_nothing(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "full-contacts", cid);
    jn_sync_run_t run;
    /* Run 1 (succeeds): r0..r99. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    char *json = records_json("r", 0, 100, "one");
    jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    jn_test_syncs_write(&fx, &run, 's', "Deal", "[{\"id\":\"d1\"},{\"id\":\"d2\"}]", JN_OK);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    assert_int_equal(count_records(cid, "Contact", "deleted_at IS NULL"), 100);

    /* Run 2 sees only r0..r59 and fails half-way: nothing is deleted. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    json = records_json("r", 0, 60, "one");
    jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    fail_run(&run);
    jn_sync_run_cleanup(&run);
    assert_int_equal(count_records(cid, "Contact", "deleted_at IS NULL"), 100);
    assert_int_equal(count_records(cid, "Deal", "deleted_at IS NULL"), 2);
    assert_int_equal(count_outbox(cid, "DELETED"), 0);
    json_object *resp = NULL;
    long st;
    char path[256];
    snprintf(path, sizeof path,
             "/sync/status?syncs=full-contacts&provider_config_key=hn"
             "&connection_id=%s",
             cid);
    st = jn_test_syncs_get(&fx, 0, NULL, path, &resp);
    jn_test_expect_status(st, 200, resp, "status");
    /* Paused (it is not auto-started), its last run failed, its error kept. */
    assert_string_equal(jn_test_json_str(resp, "syncs.0.status"), "PAUSED");
    assert_string_equal(jn_test_json_str(resp, "syncs.0.latestExecutionStatus"), "FAILED");
    assert_string_equal(jn_test_json_str(resp, "syncs.0.latestError.message"), "boom");
    assert_string_equal(jn_test_json_str(resp, "syncs.0.latestResult.Contact.updated"), "0");
    json_object_put(resp);

    /* Run 3 continues the pass: it sees r5..r94 (and no Deal). Seen in this pass: r0..r94
     * (run 2 saw r0..r59), so exactly r95..r99 and both deals are deleted. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    json = records_json("r", 5, 95, "one");
    jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    json_object *result = NULL;
    succeed(&run, &result);
    jn_sync_run_cleanup(&run);
    expect_result(result, "Contact", 0, 0, 5);
    expect_result(result, "Deal", 0, 0, 2);
    assert_int_equal(json_object_object_length(result), 2);
    json_object_put(result);
    assert_int_equal(count_records(cid, "Contact", "deleted_at IS NULL"), 95);
    assert_int_equal(count_records(cid, "Contact",
                                   "deleted_at IS NOT NULL AND external_id "
                                   "IN ('r95','r96','r97','r98','r99')"),
                     5);

    /* Run 4 is a new pass: it sees r5..r94 again, so r0..r4 go now. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    json = records_json("r", 5, 95, "one");
    jn_records_counts_t c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    assert_int_equal(c.unchanged, 90);
    succeed(&run, &result);
    jn_sync_run_cleanup(&run);
    expect_result(result, "Contact", 0, 0, 5);
    expect_result(result, "Deal", 0, 0, 0);
    assert_int_equal(json_object_object_length(result), 2);
    json_object_put(result);
    assert_int_equal(count_records(cid, "Contact", "deleted_at IS NULL"), 90);
    json_object *all = api_all(0, cid, "&filter=deleted");
    assert_int_equal(json_object_object_length(all), 10);
    json_object_put(all);
}

/* A reset with emptyCache: the run starts from nothing (checkpoint cleared, every record
 * marked deleted), and what it saves again is ADDED. */
static void test_reset_with_empty_cache(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    char *json = records_json("r", 0, 20, "one");
    jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    PGconn *conn = jn_test_syncs_db(&fx);
    json_object *cp = json_tokener_parse("{\"since\":\"2026-01-01\"}");
    assert_int_equal(jn_syncs_checkpoint_save(conn, &run, cp), JN_OK);
    json_object_put(cp);
    jn_test_syncs_release(&fx, conn);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);

    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    assert_non_null(run.checkpoint);
    assert_true(run.last_sync_date[0] != '\0');
    jn_sync_run_cleanup(&run);
    /* That run is abandoned: cancel it as a reset would. */
    assert_int_equal(
        jn_test_syncs_number(&fx,
                             "WITH c AS (UPDATE jobs SET state = 'cancelled' WHERE id ="
                             " (SELECT current_job_id FROM syncs WHERE id = %lld) "
                             "RETURNING 1) SELECT count(*) FROM c",
                             sync),
        1);
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_FULL_EMPTY, "w1", 60, &run);
    assert_null(run.checkpoint);
    assert_string_equal(run.last_sync_date, "");
    assert_int_equal(count_records(cid, "Contact", "deleted_at IS NULL"), 0);
    json = records_json("r", 0, 10, "one");
    jn_records_counts_t c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
    free(json);
    assert_int_equal(c.added, 10);
    json_object *result = NULL;
    succeed(&run, &result);
    jn_sync_run_cleanup(&run);
    expect_result(result, "Contact", 10, 0, 20);
    assert_int_equal(json_object_object_length(result), 1);
    json_object_put(result);
    json_object *all = api_all(0, cid, "");
    assert_string_equal(action_of(all, "r3"), "ADDED");
    assert_string_equal(action_of(all, "r15"), "DELETED");
    json_object_put(all);
}

/* A worker whose lease expired and was taken over can neither write nor commit. */
static void test_stale_worker_is_fenced_off(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t stale;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "old-worker", 60, &stale);
    jn_test_syncs_write(&fx, &stale, 's', "Contact", "[{\"id\":\"a\",\"v\":1}]", JN_OK);
    /* The old worker stalls; its lease runs out and another worker claims the job. */
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "WITH u AS (UPDATE jobs SET lease_until = now() - "
                                          "interval '1 second' WHERE id = '%s' RETURNING 1) "
                                          "SELECT count(*) FROM u",
                                          stale.writer.job_id),
                     1);
    PGconn *conn = jn_test_syncs_db(&fx);
    jn_job_t job;
    assert_int_equal(jn_jobs_claim(conn, stale.writer.job_id, "new-worker", 60, &job), JN_OK);
    assert_int_equal(job.lease_token, stale.writer.lease_token + 1);
    jn_sync_run_t fresh;
    assert_int_equal(jn_syncs_run_begin(conn, fx.env[0], job.id, job.lease_token, &fresh), JN_OK);
    jn_job_cleanup(&job);
    /* The old worker wakes up: every write and its commit are refused, nothing lands. */
    jn_test_syncs_write(&fx, &stale, 's', "Contact", "[{\"id\":\"a\",\"v\":2},{\"id\":\"b\"}]",
                        JN_ERR_CONFLICT);
    jn_test_syncs_write(&fx, &stale, 'd', "Contact", "[\"a\"]", JN_ERR_CONFLICT);
    json_object *cp = json_tokener_parse("{\"page\":9}");
    assert_int_equal(jn_syncs_checkpoint_save(conn, &stale, cp), JN_ERR_CONFLICT);
    json_object_put(cp);
    assert_int_equal(jn_syncs_run_succeed(conn, &stale, NULL), JN_ERR_CONFLICT);
    assert_int_equal(jn_syncs_run_fail(conn, &stale, NULL), JN_ERR_CONFLICT);
    assert_int_equal(count_records(cid, "Contact", "true"), 1);
    assert_int_equal(count_records(cid, "Contact", "external_id = 'a' AND seq = 1"), 1);
    /* The successor writes and finishes. */
    jn_test_syncs_write(&fx, &fresh, 's', "Contact", "[{\"id\":\"a\",\"v\":3}]", JN_OK);
    assert_int_equal(jn_syncs_run_succeed(conn, &fresh, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM jobs WHERE id = '%s' AND state = "
                                          "'succeeded' AND lease_token = %lld",
                                          fresh.writer.job_id, fresh.writer.lease_token),
                     1);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM syncs WHERE id = %lld AND "
                                          "current_job_id IS NULL AND last_status = 'success'",
                                          sync),
                     1);
    jn_sync_run_cleanup(&stale);
    jn_sync_run_cleanup(&fresh);
}

/* Each change has one outbox row: its action, payload (none for a delete), cursor (the
 * API's for that version), job and a deterministic event id. */
static void test_outbox_rows_follow_the_changes(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"a\",\"v\":1},{\"id\":\"b\"}]",
                        JN_OK);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"a\",\"v\":2},{\"id\":\"b\"}]",
                        JN_OK);
    jn_test_syncs_write(&fx, &run, 'd', "Contact", "[\"b\"]", JN_OK);
    long long scope = scope_of(cid, "Contact");
    /* One row per batch that changed something; four changes in all. */
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM record_outbox WHERE scope_id = "
                                          "%lld",
                                          scope),
                     3);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM " CHANGES " WHERE scope_id = "
                                          "%lld",
                                          scope),
                     4);
    /* Order, actions, payloads, per record. */
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(record_id || ':' || action || ':' || coalesce(payload, '-'), ' ' "
             "ORDER BY seq) FROM " CHANGES " WHERE scope_id = %lld",
             scope);
    char *v = jn_test_sql_value(fx.gw.db_url, sql);
    assert_string_equal(v, "a:ADDED:{\"id\":\"a\",\"v\":1} b:ADDED:{\"id\":\"b\"} "
                           "a:UPDATED:{\"id\":\"a\",\"v\":2} b:DELETED:-");
    free(v);
    /* Each change's fields; the rows' shard, job, counts and seq range. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM " CHANGES " WHERE scope_id = %lld AND job_id = '%s' AND "
             "environment_id = %lld AND integration = 'hn' AND connection = '%s' AND "
             "model = 'Contact' AND event_id = records_event_id(scope_id, seq)::text "
             "AND shard = scope_id %% 64 AND NOT sealed AND cursor = records_cursor(scope_id, seq) "
             "AND seq BETWEEN first_seq AND last_seq",
             scope, run.writer.job_id, fx.env[0], cid);
    assert_int_equal(jn_test_syncs_number(&fx, "%s", sql), 4);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT sum(change_count) FROM record_outbox WHERE "
                                          "scope_id = %lld",
                                          scope),
                     4);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    /* The cursor in the outbox is the one the API gives for that version. */
    json_object *all = api_all(0, cid, "");
    char *cursor = NULL;
    snprintf(sql, sizeof sql,
             "SELECT cursor FROM " CHANGES " WHERE scope_id = %lld AND record_id = 'a' "
             "ORDER BY seq DESC LIMIT 1",
             scope);
    cursor = jn_test_sql_value(fx.gw.db_url, sql);
    assert_string_equal(
        jn_test_json_str(json_object_object_get(all, "a"), "_nango_metadata.cursor"), cursor);
    char c_text[64];
    jn_records_cursor_encode(scope, 3, c_text);
    assert_string_equal(cursor, c_text);
    free(cursor);
    json_object_put(all);
}

static void test_encryption_at_rest(void **state)
{
    (void)state;
    json_object *resp = NULL;
    long st = jn_test_api(&fx.gw, "PATCH", "/junction/environment/records", fx.gw.prod_key,
                          "{\"encrypt_payloads\":true}", &resp);
    jn_test_expect_status(st, 200, resp, "encrypt prod");
    assert_string_equal(jn_test_json_str(resp, "data.encrypt_payloads"), "true");
    json_object_put(resp);
    char cid[64];
    long long sync = new_sync(1, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 1, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    assert_true(run.writer.encrypt);
    jn_test_syncs_write(&fx, &run, 's', "Contact",
                        "[{\"id\":\"s1\",\"secret\":\"PLAINTEXT-MARKER\"},{\"id\":\"s2\"}]", JN_OK);
    jn_records_counts_t c = jn_test_syncs_write(
        &fx, &run, 'u', "Contact", "[{\"id\":\"s2\",\"more\":\"PLAINTEXT-MARKER-2\"}]", JN_OK);
    assert_int_equal(c.updated, 1);
    c = jn_test_syncs_write(&fx, &run, 's', "Contact",
                            "[{\"secret\":\"PLAINTEXT-MARKER\",\"id\":\"s1\"}]", JN_OK);
    assert_int_equal(c.unchanged, 1);
    /* Nothing readable at rest, in the records or the outbox. */
    long long scope = scope_of(cid, "Contact");
    assert_int_equal(count_records(cid, "Contact", "sealed AND payload NOT LIKE '%MARKER%'"), 2);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM " CHANGES " WHERE scope_id = "
                                          "%lld AND sealed AND payload NOT LIKE '%%MARKER%%'",
                                          scope),
                     3);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM record_outbox WHERE scope_id = "
                                          "%lld AND changes LIKE '%%MARKER%%'",
                                          scope),
                     0);
    /* Reads open them. */
    PGconn *conn = jn_test_syncs_db(&fx);
    json_object *ids = json_tokener_parse("[\"s1\",\"s2\",\"nope\"]"), *got = NULL;
    jn_field_error_t e;
    assert_int_equal(jn_records_get_by_ids(conn, &fx.ring, fx.env[1], run.writer.connection_id,
                                           "Contact", ids, &got, &e),
                     JN_OK);
    assert_int_equal(json_object_object_length(got), 2);
    assert_string_equal(jn_test_json_str(got, "s2.more"), "PLAINTEXT-MARKER-2");
    json_object_put(got);
    /* Another environment reads nothing of it. */
    assert_int_equal(jn_records_get_by_ids(conn, &fx.ring, fx.env[0], run.writer.connection_id,
                                           "Contact", ids, &got, &e),
                     JN_OK);
    assert_int_equal(json_object_object_length(got), 0);
    json_object_put(got);
    json_object_put(ids);
    jn_test_syncs_release(&fx, conn);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    json_object *all = api_all(1, cid, "");
    assert_string_equal(jn_test_json_str(json_object_object_get(all, "s1"), "secret"),
                        "PLAINTEXT-MARKER");
    json_object_put(all);
    st = jn_test_api(&fx.gw, "PATCH", "/junction/environment/records", fx.gw.prod_key,
                     "{\"encrypt_payloads\":false}", &resp);
    jn_test_expect_status(st, 200, resp, "decrypt prod");
    json_object_put(resp);
}

/* A job of one environment cannot write as another's, and the API of one environment does
 * not show another's connection. */
static void test_environments_do_not_meet(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"a\"}]", JN_OK);
    jn_sync_run_t forged = run;
    forged.writer.environment_id = fx.env[1];
    jn_test_syncs_write(&fx, &forged, 's', "Contact", "[{\"id\":\"b\"}]", JN_ERR_CONFLICT);
    PGconn *conn = jn_test_syncs_db(&fx);
    jn_sync_run_t other;
    assert_int_equal(
        jn_syncs_run_begin(conn, fx.env[1], run.writer.job_id, run.writer.lease_token, &other),
        JN_ERR_NOT_FOUND);
    jn_test_syncs_release(&fx, conn);
    char path[256];
    snprintf(path, sizeof path, "/records?model=Contact");
    json_object *resp = NULL;
    long st = jn_test_syncs_get(&fx, 1, cid, path, &resp);
    jn_test_expect_status(st, 404, resp, "prod reads dev's connection");
    json_object_put(resp);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    assert_int_equal(count_records(cid, "Contact", "true"), 1);
}

static void test_checkpoints(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    assert_null(run.checkpoint);
    PGconn *conn = jn_test_syncs_db(&fx);
    json_object *cp = json_tokener_parse("{\"cursor\":\"abc\",\"page\":3}"), *got = NULL;
    assert_int_equal(jn_syncs_checkpoint_save(conn, &run, cp), JN_OK);
    assert_int_equal(jn_syncs_checkpoint_get(conn, &run, &got), JN_OK);
    assert_string_equal(jn_test_json_str(got, "cursor"), "abc");
    json_object_put(got);
    json_object *bad = json_tokener_parse("[1]");
    assert_int_equal(jn_syncs_checkpoint_save(conn, &run, bad), JN_ERR_INVALID);
    json_object_put(bad);
    assert_int_equal(jn_syncs_checkpoint_clear(conn, &run), JN_OK);
    assert_int_equal(jn_syncs_checkpoint_get(conn, &run, &got), JN_OK);
    assert_null(got);
    assert_int_equal(jn_syncs_checkpoint_save(conn, &run, cp), JN_OK);
    json_object_put(cp);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
    /* The next run starts from it, with last_sync_date set. */
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    assert_string_equal(jn_test_json_str(run.checkpoint, "page"), "3");
    assert_int_equal(strlen(run.last_sync_date), 24);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
}

/* Pages stop at the page's byte budget (JN_RECORDS_PAGE_BYTES of payload) however high
 * the limit, and the next page goes on from there: nothing is skipped, nothing repeated. */
static void test_big_payloads_end_a_page_early(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    enum { RECORDS = 40, BYTES = 999000 };
    char *blob = malloc(BYTES + 1);
    assert_non_null(blob);
    memset(blob, 'b', BYTES);
    blob[BYTES] = '\0';
    for (int batch = 0; batch < 4; batch++) {
        jn_buf_t b;
        jn_buf_init(&b, 64 * 1024 * 1024);
        jn_buf_append_str(&b, "[");
        for (int i = 0; i < RECORDS / 4; i++)
            jn_buf_printf(&b, "%s{\"id\":\"big%d\",\"blob\":\"%s\"}", i ? "," : "",
                          batch * (RECORDS / 4) + i, blob);
        jn_buf_append_str(&b, "]");
        char *json = jn_buf_take(&b, NULL);
        jn_records_counts_t c = jn_test_syncs_write(&fx, &run, 's', "Contact", json, JN_OK);
        free(json);
        assert_int_equal(c.added, RECORDS / 4);
    }
    free(blob);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    assert_true(jn_test_syncs_number(&fx, "SELECT max_payload FROM record_scopes WHERE id = %lld",
                                     scope_of(cid, "Contact")) > BYTES);
    paging_t seen;
    json_object *all = api_pages(0, cid, "", 100, &seen);
    /* Every record once, whole, over more than one page, none past the record that
     * crosses the budget. */
    assert_int_equal(json_object_object_length(all), RECORDS);
    assert_int_equal(seen.rows, RECORDS);
    assert_true(seen.pages >= 2);
    assert_true((long)(seen.largest - 1) * BYTES < JN_RECORDS_PAGE_BYTES);
    for (int k = 0; k < RECORDS; k++) {
        char id[16];
        snprintf(id, sizeof id, "big%d", k);
        const char *blob_seen = jn_test_json_str(json_object_object_get(all, id), "blob");
        assert_non_null(blob_seen);
        assert_int_equal(strlen(blob_seen), BYTES);
    }
    json_object_put(all);
}

/* The metadata's times are the stored ones, in UTC, with milliseconds (last_modified_at with
 * microseconds), as Nango writes them. */
static void test_metadata_times_are_the_stored_ones(void **state)
{
    (void)state;
    char cid[64];
    long long sync = new_sync(0, "contacts", cid);
    jn_sync_run_t run;
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 60, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"t1\"},{\"id\":\"t2\"}]", JN_OK);
    jn_test_syncs_write(&fx, &run, 'd', "Contact", "[{\"id\":\"t2\"}]", JN_OK);
    succeed(&run, NULL);
    jn_sync_run_cleanup(&run);
    json_object *all = api_all(0, cid, "");
    assert_int_equal(json_object_object_length(all), 2);
    const char *fields[] = {"first_seen_at", "updated_at", "deleted_at"};
    const char *names[] = {"first_seen_at", "last_modified_at", "deleted_at"};
    const char *ids[] = {"t1", "t2"};
    for (int k = 0; k < 2; k++) {
        json_object *r = json_object_object_get(all, ids[k]);
        for (int f = 0; f < 3; f++) {
            char path[64];
            snprintf(path, sizeof path, "_nango_metadata.%s", names[f]);
            const char *shown = jn_test_json_str(r, path);
            if (f == 2 && k == 0) {
                assert_null(shown);
                continue;
            }
            assert_non_null(shown);
            bool micro = f == 1; /* last_modified_at has microseconds, as in Nango */
            if (strlen(shown) != (micro ? 27u : 24u))
                fail_msg("%s.%s is %s", ids[k], names[f], shown);
            long long same = jn_test_syncs_number(
                &fx,
                "SELECT count(*) FROM records WHERE scope_id = %lld AND external_id = '%s' AND "
                "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.%s\"Z\"') = '%s'",
                scope_of(cid, "Contact"), ids[k], fields[f], micro ? "US" : "MS", shown);
            if (same != 1)
                fail_msg("%s.%s is %s, not the stored time", ids[k], names[f], shown);
        }
    }
    json_object_put(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_of_upserts_and_a_rerun),
        cmocka_unit_test(test_changes_deletes_and_undeletes_count_exactly),
        cmocka_unit_test(test_key_order_and_number_spelling_do_not_change_a_record),
        cmocka_unit_test(test_bad_records_are_refused_and_nothing_is_written),
        cmocka_unit_test(test_partial_updates_merge_into_live_records),
        cmocka_unit_test(test_full_sync_failure_deletes_nothing),
        cmocka_unit_test(test_reset_with_empty_cache),
        cmocka_unit_test(test_stale_worker_is_fenced_off),
        cmocka_unit_test(test_outbox_rows_follow_the_changes),
        cmocka_unit_test(test_encryption_at_rest),
        cmocka_unit_test(test_environments_do_not_meet),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_big_payloads_end_a_page_early),
        cmocka_unit_test(test_metadata_times_are_the_stored_ones),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
