/*
 * Integration: the records API over HTTP (GET /records, PATCH /records/prune) against a
 * gateway and PostgreSQL, with records written as a worker writes them.
 *
 * What it proves: Nango's parameters are checked one by one with a clear 400; pages of any
 * size chain through next_cursor to exactly the stored records, in cursor order, each with
 * its _nango_metadata; filter, ids and modified_after select what they say; pruning empties
 * payloads up to a cursor and a save of the same content brings them back silently; and a
 * reader paging with the cursor while two writers storm the same model ends with exactly
 * the final state of every record, never seeing one version twice or a version go back;
 * pruning while a writer changes the same records loses none of its changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "harness.h"
#include "sync_fixture.h"

static jn_test_syncs_t fx;
static int connection_seq;

static const char *const contact_models[] = {"Contact"};

static int setup(void **state)
{
    (void)state;
    jn_test_syncs_start(&fx, GATEWAY_BIN, NULL);
    const jn_sync_decl_t decls[] = {{"contacts", false, false, false, 3600, contact_models, 1}};
    jn_test_syncs_deploy(&fx, 0, decls, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_syncs_stop(&fx);
    return 0;
}

/* A connection with a run begun on its sync. */
static void new_run(char cid[64], jn_sync_run_t *run)
{
    snprintf(cid, 64, "api%d", ++connection_seq);
    jn_test_syncs_connection(&fx, 0, cid);
    long long sync = jn_test_syncs_id(&fx, 0, cid, "contacts", NULL);
    jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "w1", 600, run);
}

static void save_range(const jn_sync_run_t *run, int from, int to, const char *tag)
{
    jn_buf_t b;
    jn_buf_init(&b, 16 * 1024 * 1024);
    jn_buf_append_str(&b, "[");
    for (int i = from; i < to; i++)
        jn_buf_printf(&b, "%s{\"id\":\"r%05d\",\"tag\":\"%s\",\"n\":%d}", i > from ? "," : "", i,
                      tag, i);
    jn_buf_append_str(&b, "]");
    jn_test_syncs_write(&fx, run, 's', "Contact", b.data, JN_OK);
    jn_buf_cleanup(&b);
}

static long get(const char *cid, const char *query, json_object **resp)
{
    char path[2048];
    snprintf(path, sizeof path, "/records?%s", query);
    return jn_test_syncs_get(&fx, 0, cid, path, resp);
}

static void test_parameters_are_checked(void **state)
{
    (void)state;
    char cid[64];
    jn_sync_run_t run;
    new_run(cid, &run);
    save_range(&run, 0, 3, "x");
    char other_cursor[64];
    jn_records_cursor_encode(999999, 1, other_cursor);
    char bad_cursor_q[160];
    snprintf(bad_cursor_q, sizeof bad_cursor_q, "model=Contact&cursor=%s", other_cursor);
    char many_ids[4096] = "model=Contact";
    for (int i = 0; i < 101; i++)
        snprintf(many_ids + strlen(many_ids), sizeof many_ids - strlen(many_ids), "&ids=i%d", i);
    const struct {
        const char *query;
        const char *code;
        const char *field;
    } cases[] = {
        {"", "invalid_query_params", "model"},
        {"model=Con::tact", "invalid_query_params", "model"},
        {"model=Contact&variant=a::b", "invalid_query_params", "variant"},
        {"model=Contact&limit=0", "invalid_query_params", "limit"},
        {"model=Contact&limit=10001", "invalid_query_params", "limit"},
        {"model=Contact&limit=ten", "invalid_query_params", "limit"},
        {"model=Contact&filter=added,removed", "invalid_query_params", "filter"},
        {"model=Contact&filter=", "invalid_query_params", "filter"},
        {"model=Contact&modified_after=yesterday", "invalid_query_params", "modified_after"},
        {"model=Contact&modified_after=2001-01-01T00:00:00Z", "invalid_query_params",
         "modified_after"},
        {"model=Contact&cursor=not-a-cursor", "invalid_query_params", "cursor"},
        {bad_cursor_q, "invalid_query_params", "cursor"},
        {many_ids, "invalid_query_params", "ids"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *resp = NULL;
        long st = get(cid, cases[i].query, &resp);
        if (st != 400 || !jn_test_json_str(resp, "error.code") ||
            strcmp(jn_test_json_str(resp, "error.code"), cases[i].code) != 0 ||
            strcmp(jn_test_json_str(resp, "error.errors.0.path.0"), cases[i].field) != 0)
            fail_msg("'%s': %ld %s", cases[i].query, st,
                     resp ? json_object_to_json_string(resp) : "");
        json_object_put(resp);
    }
    /* The connection headers are required; an unknown connection is 404. */
    json_object *resp = NULL;
    assert_int_equal(jn_test_syncs_get(&fx, 0, NULL, "/records?model=Contact", &resp), 400);
    assert_string_equal(jn_test_json_str(resp, "error.code"), "invalid_headers");
    json_object_put(resp);
    assert_int_equal(get("nobody", "model=Contact", &resp), 404);
    assert_string_equal(jn_test_json_str(resp, "error.code"), "unknown_connection");
    json_object_put(resp);
    /* A model with no records yet is an empty page, not an error. */
    assert_int_equal(get(cid, "model=Nothing", &resp), 200);
    assert_string_equal(json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PLAIN),
                        "{\"records\":[],\"next_cursor\":null}");
    json_object_put(resp);
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
}

/* Reads every page of query with the given limit: the records in order (new array). */
static json_object *read_all(const char *cid, const char *query, int limit, int *pages)
{
    json_object *out = json_object_new_array();
    char cursor[128] = "";
    *pages = 0;
    for (;;) {
        char q[1024];
        snprintf(q, sizeof q, "%s&limit=%d%s%s", query, limit, cursor[0] ? "&cursor=" : "", cursor);
        json_object *resp = NULL;
        long st = get(cid, q, &resp);
        jn_test_expect_status(st, 200, resp, q);
        (*pages)++;
        json_object *records = json_object_object_get(resp, "records");
        for (size_t i = 0; i < json_object_array_length(records); i++)
            json_object_array_add(out, json_object_get(json_object_array_get_idx(records, i)));
        const char *next = jn_test_json_str(resp, "next_cursor");
        if (next)
            snprintf(cursor, sizeof cursor, "%s", next);
        json_object_put(resp);
        if (!next)
            return out;
        assert_true(*pages < 10000);
    }
}

static void test_pages_filters_ids_and_time(void **state)
{
    (void)state;
    char cid[64];
    jn_sync_run_t run;
    new_run(cid, &run);
    save_range(&run, 0, 2500, "a");
    int pages = 0;
    json_object *all = read_all(cid, "model=Contact", 1000, &pages);
    assert_int_equal(json_object_array_length(all), 2500);
    assert_int_equal(pages, 3);
    /* Cursor order is the order of the changes; each record carries its metadata. */
    json_object *first = json_object_array_get_idx(all, 0);
    assert_string_equal(jn_test_json_str(first, "id"), "r00000");
    assert_string_equal(jn_test_json_str(first, "tag"), "a");
    assert_string_equal(jn_test_json_str(first, "_nango_metadata.last_action"), "ADDED");
    assert_null(jn_test_json_str(first, "_nango_metadata.deleted_at"));
    assert_null(jn_test_json_str(first, "_nango_metadata.pruned_at"));
    assert_int_equal(strlen(jn_test_json_str(first, "_nango_metadata.last_modified_at")), 27);
    long long prev = 0;
    for (size_t i = 0; i < 2500; i++) {
        long long scope, seq;
        assert_int_equal(
            jn_records_cursor_decode(
                jn_test_json_str(json_object_array_get_idx(all, i), "_nango_metadata.cursor"),
                &scope, &seq),
            JN_OK);
        assert_true(seq > prev);
        prev = seq;
    }
    json_object_put(all);
    /* Other page sizes chain to the same records. */
    all = read_all(cid, "model=Contact", 7, &pages);
    assert_int_equal(json_object_array_length(all), 2500);
    assert_int_equal(pages, 358);
    json_object_put(all);

    /* Changes after a moment: 100 updated, 10 deleted. */
    /* A whole second after every write so far (the parameter has second precision). */
    char *now = jn_test_sql_value(fx.gw.db_url,
                                  "SELECT to_char(date_trunc('second', now() AT TIME ZONE 'UTC') "
                                  "+ interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
    struct timespec pause = {2, 100 * 1000000L};
    nanosleep(&pause, NULL);
    save_range(&run, 100, 200, "b");
    jn_test_syncs_write(&fx, &run, 'd', "Contact",
                        "[\"r00000\",\"r00001\",\"r00002\",\"r00003\",\"r00004\","
                        "\"r00005\",\"r00006\",\"r00007\",\"r00008\",\"r00009\"]",
                        JN_OK);
    char q[256];
    snprintf(q, sizeof q, "model=Contact&modified_after=%s", now);
    all = read_all(cid, q, 1000, &pages);
    assert_int_equal(json_object_array_length(all), 110);
    json_object_put(all);
    snprintf(q, sizeof q, "model=Contact&delta=%s&filter=updated", now);
    all = read_all(cid, q, 1000, &pages);
    assert_int_equal(json_object_array_length(all), 100);
    json_object_put(all);
    free(now);
    all = read_all(cid, "model=Contact&filter=deleted", 3, &pages);
    assert_int_equal(json_object_array_length(all), 10);
    assert_string_equal(
        jn_test_json_str(json_object_array_get_idx(all, 0), "_nango_metadata.last_action"),
        "DELETED");
    json_object_put(all);
    all = read_all(cid, "model=Contact&filter=added,deleted", 1000, &pages);
    assert_int_equal(json_object_array_length(all), 2400);
    json_object_put(all);
    all = read_all(cid, "model=Contact&ids=r00150&ids=r00003&ids=r02499&ids=nope", 1000, &pages);
    assert_int_equal(json_object_array_length(all), 3);
    /* In cursor order: r02499 (first save), r00150 (updated), r00003 (deleted last). */
    assert_string_equal(jn_test_json_str(json_object_array_get_idx(all, 0), "id"), "r02499");
    assert_string_equal(jn_test_json_str(json_object_array_get_idx(all, 1), "tag"), "b");
    assert_string_equal(jn_test_json_str(json_object_array_get_idx(all, 2), "id"), "r00003");
    json_object_put(all);
    all = read_all(cid, "model=Contact&ids[]=r00150", 1000, &pages);
    assert_int_equal(json_object_array_length(all), 1);
    json_object_put(all);
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
}

static long prune(const char *cid, const char *body, json_object **resp)
{
    char url[512], auth[256], h_cid[128];
    snprintf(url, sizeof url, "%s/records/prune", fx.gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", fx.gw.dev_key);
    snprintf(h_cid, sizeof h_cid, "Connection-Id: %s", cid);
    const char *headers[] = {auth, h_cid, "Provider-Config-Key: hn",
                             "Content-Type: application/json", NULL};
    char *text = NULL;
    long st = jn_test_http("PATCH", url, headers, body, strlen(body), &text);
    *resp = json_tokener_parse(text ? text : "");
    free(text);
    return st;
}

static void test_prune(void **state)
{
    (void)state;
    char cid[64];
    jn_sync_run_t run;
    new_run(cid, &run);
    save_range(&run, 0, 50, "p");
    int pages = 0;
    json_object *all = read_all(cid, "model=Contact", 1000, &pages);
    const char *until =
        jn_test_json_str(json_object_array_get_idx(all, 29), "_nango_metadata.cursor");
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"Contact\",\"until_cursor\":\"%s\",\"limit\":20}",
             until);
    json_object *resp = NULL;
    long st = prune(cid, body, &resp);
    jn_test_expect_status(st, 200, resp, "prune 20");
    assert_string_equal(jn_test_json_str(resp, "count"), "20");
    assert_string_equal(jn_test_json_str(resp, "has_more"), "true");
    json_object_put(resp);
    st = prune(cid, body, &resp);
    jn_test_expect_status(st, 200, resp, "prune the rest");
    assert_string_equal(jn_test_json_str(resp, "count"), "10");
    assert_string_equal(jn_test_json_str(resp, "has_more"), "false");
    json_object_put(resp);
    json_object_put(all);
    all = read_all(cid, "model=Contact", 1000, &pages);
    json_object *pruned = json_object_array_get_idx(all, 10),
                *kept = json_object_array_get_idx(all, 30);
    assert_string_equal(jn_test_json_str(pruned, "id"), "r00010");
    assert_null(jn_test_json_str(pruned, "tag"));
    assert_non_null(jn_test_json_str(pruned, "_nango_metadata.pruned_at"));
    assert_string_equal(jn_test_json_str(kept, "tag"), "p");
    json_object_put(all);
    /* Saving the same content again restores the payload without a change. */
    jn_records_counts_t c = jn_test_syncs_write(
        &fx, &run, 's', "Contact", "[{\"id\":\"r00010\",\"tag\":\"p\",\"n\":10}]", JN_OK);
    assert_int_equal(c.unchanged, 1);
    all = read_all(cid, "model=Contact&ids=r00010", 1000, &pages);
    assert_string_equal(jn_test_json_str(json_object_array_get_idx(all, 0), "tag"), "p");
    assert_null(jn_test_json_str(json_object_array_get_idx(all, 0), "_nango_metadata.pruned_at"));
    json_object_put(all);
    /* Bad bodies. */
    const char *bad[][2] = {
        {"{\"until_cursor\":\"x\"}", "model"},
        {"{\"model\":\"Contact\"}", "until_cursor"},
        {"{\"model\":\"Contact\",\"until_cursor\":\"zzz\"}", "until_cursor"},
        {"{\"model\":\"Contact\",\"until_cursor\":\"x\",\"limit\":0}", "limit"},
        {"{\"model\":\"Contact\",\"until_cursor\":\"x\",\"extra\":1}", "extra"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = prune(cid, bad[i][0], &resp);
        if (st != 400 || strcmp(jn_test_json_str(resp, "error.errors.0.path.0"), bad[i][1]) != 0)
            fail_msg("%s: %ld %s", bad[i][0], st, json_object_to_json_string(resp));
        json_object_put(resp);
    }
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
}

/* ---- a reader paging while writers storm ---- */

#define STORM_IDS 400
#define STORM_MS 8000

typedef struct {
    const jn_sync_run_t *run;
    int parity;              /* the writer owns the ids of this parity */
    int version[STORM_IDS];  /* the last version saved, 0: never */
    bool deleted[STORM_IDS]; /* the last write was a delete */
    long batches;
    unsigned seed;
    int ms; /* how long it writes; 0: STORM_MS */
} writer_t;

/* Batches of saves (each a new version of distinct ids) and deletes, as fast as they go. */
static void *storm_writer(void *arg)
{
    writer_t *w = arg;
    long until = jn_test_now_ms() + (w->ms ? w->ms : STORM_MS);
    while (jn_test_now_ms() < until) {
        bool del = rand_r(&w->seed) % 5 == 0, used[STORM_IDS] = {false};
        int n = 1 + rand_r(&w->seed) % 40, ids[40], k = 0;
        while (k < n) {
            int id = (rand_r(&w->seed) % (STORM_IDS / 2)) * 2 + w->parity;
            if (!used[id]) {
                used[id] = true;
                ids[k++] = id;
            }
        }
        jn_buf_t b;
        jn_buf_init(&b, 1 << 20);
        jn_buf_append_str(&b, "[");
        for (k = 0; k < n; k++) {
            if (del)
                jn_buf_printf(&b, "%s\"s%03d\"", k ? "," : "", ids[k]);
            else
                jn_buf_printf(&b, "%s{\"id\":\"s%03d\",\"version\":%d}", k ? "," : "", ids[k],
                              w->version[ids[k]] + 1);
        }
        jn_buf_append_str(&b, "]");
        jn_test_syncs_write(&fx, w->run, del ? 'd' : 's', "Contact", b.data, JN_OK);
        jn_buf_cleanup(&b);
        for (k = 0; k < n; k++) {
            if (del) {
                w->deleted[ids[k]] = w->version[ids[k]] > 0;
            } else {
                w->version[ids[k]]++;
                w->deleted[ids[k]] = false;
            }
        }
        w->batches++;
    }
    return NULL;
}

typedef struct {
    int version; /* as last seen; 0: never seen */
    bool deleted;
    long long seq; /* of the last version seen */
} seen_t;

/* Applies one page to what the reader knows; fails the test if a record comes back at a
 * position it was already seen at or before (the same version twice, or going back). */
static void apply_page(json_object *records, seen_t *seen, long long *last_seq, long *received)
{
    for (size_t i = 0; i < json_object_array_length(records); i++) {
        json_object *r = json_object_array_get_idx(records, i);
        const char *id = jn_test_json_str(r, "id");
        long long scope, seq;
        assert_int_equal(
            jn_records_cursor_decode(jn_test_json_str(r, "_nango_metadata.cursor"), &scope, &seq),
            JN_OK);
        if (seq <= *last_seq)
            fail_msg("record %s at %lld came after %lld", id, seq, *last_seq);
        *last_seq = seq;
        int idx = (int)strtol(id + 1, NULL, 10);
        assert_true(idx >= 0 && idx < STORM_IDS);
        if (seq <= seen[idx].seq)
            fail_msg("record %s seen again at %lld (last at %lld)", id, seq, seen[idx].seq);
        seen[idx].seq = seq;
        const char *action = jn_test_json_str(r, "_nango_metadata.last_action");
        seen[idx].deleted = strcmp(action, "DELETED") == 0;
        const char *v = jn_test_json_str(r, "version");
        int version = v ? (int)strtol(v, NULL, 10) : 0;
        if (version < seen[idx].version)
            fail_msg("record %s went back from version %d to %d", id, seen[idx].version, version);
        seen[idx].version = version;
        (*received)++;
    }
}

static void test_reader_during_a_write_storm_ends_with_the_final_state(void **state)
{
    (void)state;
    char cid[64];
    jn_sync_run_t run;
    new_run(cid, &run);
    writer_t writers[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        memset(&writers[i], 0, sizeof writers[i]);
        writers[i].run = &run;
        writers[i].parity = i;
        writers[i].seed = 7u + (unsigned)i;
        pthread_create(&threads[i], NULL, storm_writer, &writers[i]);
    }
    static seen_t seen[STORM_IDS];
    memset(seen, 0, sizeof seen);
    long long last_seq = 0;
    long received = 0, pages = 0;
    char cursor[128] = "";
    unsigned seed = 42;
    long storm_end = jn_test_now_ms() + STORM_MS;
    bool done = false;
    for (;;) {
        /* Page sizes vary; an empty page waits a little, as a polling client does. */
        char q[256];
        snprintf(q, sizeof q, "model=Contact&limit=%d%s%s", 1 + (int)(rand_r(&seed) % 150),
                 cursor[0] ? "&cursor=" : "", cursor);
        json_object *resp = NULL;
        long st = get(cid, q, &resp);
        jn_test_expect_status(st, 200, resp, "storm page");
        pages++;
        json_object *records = json_object_object_get(resp, "records");
        size_t n = json_object_array_length(records);
        apply_page(records, seen, &last_seq, &received);
        const char *next = jn_test_json_str(resp, "next_cursor");
        if (next)
            snprintf(cursor, sizeof cursor, "%s", next);
        else if (n)
            snprintf(cursor, sizeof cursor, "%s",
                     jn_test_json_str(json_object_array_get_idx(records, n - 1),
                                      "_nango_metadata.cursor"));
        json_object_put(resp);
        if (!next && done)
            break; /* caught up after the writers stopped */
        if (!done && jn_test_now_ms() > storm_end) {
            /* Past the storm: wait for the writers, then read to the end once more. */
            for (int i = 0; i < 2; i++)
                pthread_join(threads[i], NULL);
            done = true;
        }
        if (!next && !done) {
            struct timespec pause = {0, 5 * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
    /* The reader knows exactly the final state of every record. */
    long versions = 0;
    for (int id = 0; id < STORM_IDS; id++) {
        const writer_t *w = &writers[id % 2];
        versions += w->version[id];
        if (seen[id].version != w->version[id] || seen[id].deleted != w->deleted[id])
            fail_msg("s%03d: the reader has version %d%s, the store %d%s", id, seen[id].version,
                     seen[id].deleted ? " (deleted)" : "", w->version[id],
                     w->deleted[id] ? " (deleted)" : "");
    }
    print_message("write storm: %ld + %ld batches, %ld versions, the reader got %ld changes in "
                  "%ld pages\n",
                  writers[0].batches, writers[1].batches, versions, received, pages);
    assert_true(writers[0].batches > 20 && writers[1].batches > 20);
    assert_true(pages > 50);
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
}

/* Pruning while a writer changes the same records: every change lands (the writer reaches
 * rows by ctid, and a prune that moved a row under it would make it miss the row), so
 * saving each live record's last version again changes nothing and brings back every
 * pruned payload. */
static void test_prune_during_writes_loses_nothing(void **state)
{
    (void)state;
    char cid[64];
    jn_sync_run_t run;
    new_run(cid, &run);
    jn_test_syncs_write(&fx, &run, 's', "Contact", "[{\"id\":\"s000\",\"version\":0}]", JN_OK);
    long long scope = jn_test_syncs_number(
        &fx,
        "SELECT s.id FROM record_scopes s JOIN connections c ON c.id = s.connection_id "
        "WHERE c.connection_id = '%s' AND s.model = 'Contact'",
        cid);
    char until[64], body[256];
    jn_records_cursor_encode(scope, 999999999999999999LL, until); /* all there is and will be */
    snprintf(body, sizeof body, "{\"model\":\"Contact\",\"until_cursor\":\"%s\",\"limit\":50}",
             until);
    writer_t w;
    memset(&w, 0, sizeof w);
    w.run = &run;
    w.seed = 99;
    w.ms = 4000;
    w.version[0] = 0;
    pthread_t thread;
    pthread_create(&thread, NULL, storm_writer, &w);
    long pruned = 0, calls = 0, end = jn_test_now_ms() + 4000;
    while (jn_test_now_ms() < end) {
        json_object *resp = NULL;
        long st = prune(cid, body, &resp);
        jn_test_expect_status(st, 200, resp, "prune during writes");
        pruned += strtol(jn_test_json_str(resp, "count"), NULL, 10);
        calls++;
        json_object_put(resp);
    }
    pthread_join(thread, NULL);
    /* The last version of every live record, saved again. */
    jn_buf_t b;
    jn_buf_init(&b, 1 << 20);
    jn_buf_append_str(&b, "[");
    int live = 0;
    for (int id = 0; id < STORM_IDS; id += 2) {
        if (w.version[id] > 0 && !w.deleted[id])
            jn_buf_printf(&b, "%s{\"id\":\"s%03d\",\"version\":%d}", live++ ? "," : "", id,
                          w.version[id]);
    }
    jn_buf_append_str(&b, "]");
    jn_records_counts_t c = jn_test_syncs_write(&fx, &run, 's', "Contact", b.data, JN_OK);
    jn_buf_cleanup(&b);
    print_message("prune during writes: %ld batches, %ld prune calls pruned %ld payloads; "
                  "%d live records\n",
                  w.batches, calls, pruned, live);
    if (c.unchanged != live || c.added || c.updated)
        fail_msg("re-saving the last versions: %lld unchanged, %lld added, %lld updated of %d",
                 c.unchanged, c.added, c.updated, live);
    assert_true(w.batches > 20 && pruned > 100);
    /* The API shows every live record whole, at its last version. */
    int pages = 0, whole = 0;
    json_object *all = read_all(cid, "model=Contact&filter=added,updated", 1000, &pages);
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *r = json_object_array_get_idx(all, i);
        int id = (int)strtol(jn_test_json_str(r, "id") + 1, NULL, 10);
        const char *v = jn_test_json_str(r, "version");
        if (id == 0 && w.version[0] == 0)
            continue; /* the first record, never written again */
        if (!v || strtol(v, NULL, 10) != w.version[id] ||
            jn_test_json_str(r, "_nango_metadata.pruned_at"))
            fail_msg("s%03d: %s, wanted version %d unpruned", id, json_object_to_json_string(r),
                     w.version[id]);
        whole++;
    }
    assert_int_equal(whole, live);
    json_object_put(all);
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_syncs_run_succeed(conn, &run, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parameters_are_checked),
        cmocka_unit_test(test_pages_filters_ids_and_time),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_reader_during_a_write_storm_ends_with_the_final_state),
        cmocka_unit_test(test_prune_during_writes_loses_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
