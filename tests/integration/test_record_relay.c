/*
 * Integration: the outbox relay against real PostgreSQL, Kafka and junction-worker
 * processes. Records are written through the records store on leased runs (as a sync run
 * writes them); workers publish them; the test reads <prefix>.records from its beginning
 * and judges it with the sequence oracle (record_stream.h).
 *
 * What it proves: every committed change arrives as a version-1 event with the right
 * identity, payload (opened when sealed), cursor, seq, job id and event id, valid against
 * docs/record-change-event.schema.json, and its outbox row is deleted; junction-tail prints
 * exactly the filtered events, and a consumer group resumes where it stopped; a worker
 * SIGKILLed between commit and publish, and one frozen past its lease, lose nothing (the
 * frozen one cannot delete what its successor owns), duplicates carry the same event id
 * and content; two relays share the shards, both publish, and publish nothing twice; a
 * hostile tenant's 1 MB payloads go without payload and its thousand one-record batches
 * all arrive; a broker that refuses events for their size gets them without payload, and
 * nothing after them is lost or reordered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "harness.h"
#include "record_stream.h"
#include "sync_fixture.h"

static jn_test_syncs_t fx;
static int conn_seq; /* makes connection ids unique per test */

static const char *const contact_models[] = {"Contact"};

static int setup(void **state)
{
    (void)state;
    /* Four partitions: records spread, and one record's changes must stay in one. */
    const char *env[] = {"JUNCTION_TOPIC_PARTITIONS=4", NULL};
    jn_test_syncs_start(&fx, GATEWAY_BIN, env);
    const jn_sync_decl_t decls[] = {{"contacts", false, false, false, 3600, contact_models, 1}};
    jn_test_syncs_deploy(&fx, 0, decls, 1);
    jn_test_syncs_deploy(&fx, 1, decls, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_test_syncs_stop(&fx);
    return 0;
}

/* A running sync run of a new connection of env, named into cid. */
static void new_run(int env, char cid[32], jn_sync_run_t *run)
{
    snprintf(cid, 32, "c%d", ++conn_seq);
    jn_test_syncs_connection(&fx, env, cid);
    long long sync = jn_test_syncs_id(&fx, env, cid, "contacts", NULL);
    jn_test_syncs_begin_run(&fx, env, sync, JN_SYNC_RUN_INCREMENTAL, "test", 3600, run);
}

/* Records id <prefix><from>..<to-1> with n = value, as a JSON array (caller frees). */
static char *records(const char *prefix, int from, int to, int value)
{
    jn_buf_t b;
    jn_buf_init(&b, 64 * 1024 * 1024);
    jn_buf_append_str(&b, "[");
    for (int i = from; i < to; i++)
        jn_buf_printf(&b, "%s{\"id\":\"%s%d\",\"n\":%d,\"name\":\"Ada \\\"%d\\\"\",\"tags\":[1,2]}",
                      i > from ? "," : "", prefix, i, value, i);
    jn_buf_append_str(&b, "]");
    return jn_buf_take(&b, NULL);
}

static void save(const jn_sync_run_t *run, char op, const char *json)
{
    jn_test_syncs_write(&fx, run, op, "Contact", json, JN_OK);
}

static long long committed_changes(void)
{
    return jn_test_syncs_number(&fx, "SELECT coalesce(sum(last_seq), 0) FROM record_scopes");
}

static long long outbox_rows(void)
{
    return jn_test_syncs_number(&fx, "SELECT count(*) FROM record_outbox");
}

static bool outbox_empty(void *ud)
{
    (void)ud;
    return outbox_rows() == 0;
}

/* The workers a test started, killed after it whether it passed or not. */
static jn_test_process_t workers[8];
static int nworkers;

static int kill_workers(void **state)
{
    (void)state;
    for (int i = 0; i < nworkers; i++) {
        if (workers[i].pid > 0)
            jn_test_signal(&workers[i], SIGCONT);
        jn_test_process_kill(&workers[i]);
    }
    nworkers = 0;
    return 0;
}

/* A worker beside the gateway with short relay leases; extra may add variables. */
static jn_test_process_t *start_worker(const char *name, char admin[64], const char *extra)
{
    assert_true(nworkers < 8);
    jn_test_process_t *p = &workers[nworkers++];
    const char *env[] = {"JUNCTION_RELAY_LEASE_SECONDS=3",
                         "JUNCTION_WORKER_ACTIONS=1",
                         "JUNCTION_WORKER_SYNCS=1",
                         "JUNCTION_WORKER_WEBHOOKS=1",
                         "JUNCTION_WORKER_DELIVERIES=1",
                         extra,
                         NULL};
    jn_test_service_start(p, &fx.gw, WORKER_BIN, name, env, admin);
    return p;
}

/* The value of a metric without labels on an admin port's /metrics, -1 when absent. */
static long long metric(const char *admin, const char *name)
{
    char url[128];
    snprintf(url, sizeof url, "%s/metrics", admin);
    char *text = NULL;
    long st = jn_test_http("GET", url, NULL, NULL, 0, &text);
    long long v = -1;
    size_t n = strlen(name);
    for (char *line = text; st == 200 && line && *line;) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = strtoll(line + n + 1, NULL, 10);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    free(text);
    return v;
}

/* Reads the whole topic until every committed change arrived, judges it, and checks the
 * outbox emptied; returns the duplicates. */
static size_t read_all(jn_test_stream_t *s, int timeout_ms)
{
    long long want = committed_changes();
    size_t got = jn_test_stream_read(s, (size_t)want, timeout_ms);
    if (got < (size_t)want)
        jn_test_stream_expect_all(s, &fx); /* names the first missing */
    jn_test_stream_expect_all(s, &fx);
    if (!jn_test_wait_until(outbox_empty, NULL, 20000))
        fail_msg("%lld outbox rows left after publishing", outbox_rows());
    jn_test_stream_drain(s, 500);
    return jn_test_stream_check(s);
}

/* The duplicates the topic holds now: earlier tests' (a relay killed between Kafka's
 * acknowledgement and its delete leaves some) are in every later stream, which reads the
 * topic from its beginning; a test counts only those it adds. */
static size_t duplicates_so_far(void)
{
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    jn_test_stream_read(&s, (size_t)committed_changes(), 30000);
    jn_test_stream_drain(&s, 500);
    size_t d = jn_test_stream_check(&s);
    jn_test_stream_close(&s);
    return d;
}

static json_object *field(const jn_test_event_t *e, const char *name)
{
    json_object *v = NULL;
    json_object_object_get_ex(e->event, name, &v);
    return v;
}

static const char *str(const jn_test_event_t *e, const char *name)
{
    json_object *v = field(e, name);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* The nth change (1, 2, ... in seq order) of record record_id of connection cid in s. */
static const jn_test_event_t *event_of(const jn_test_stream_t *s, const char *cid,
                                       const char *record_id, int nth)
{
    const jn_test_event_t *found[64];
    int n = 0;
    for (size_t i = 0; i < s->count && n < 64; i++) {
        const jn_test_event_t *e = &s->events[i];
        const char *c = str(e, "connection_id"), *r = str(e, "record_id");
        if (!c || !r || strcmp(c, cid) != 0 || strcmp(r, record_id) != 0)
            continue;
        bool dup = false;
        for (int j = 0; j < n && !dup; j++)
            dup = found[j]->seq == e->seq;
        if (!dup)
            found[n++] = e;
    }
    for (int a = 0; a < n; a++) { /* by seq */
        for (int b = a + 1; b < n; b++) {
            if (found[b]->seq < found[a]->seq) {
                const jn_test_event_t *t = found[a];
                found[a] = found[b];
                found[b] = t;
            }
        }
    }
    if (nth >= 1 && nth <= n)
        return found[nth - 1];
    for (size_t i = 0; i < s->count; i++) {
        const char *c = str(&s->events[i], "connection_id");
        if (c && strcmp(c, cid) == 0)
            print_message("%s\n", s->events[i].value);
    }
    fail_msg("no change %d of %s/%s (%d found)", nth, cid, record_id, n);
    return NULL;
}

/* ---- the event ---- */

static void test_events_and_schema(void **state)
{
    (void)state;
    char cid[32], sealed_cid[32];
    jn_sync_run_t run, sealed;
    new_run(0, cid, &run);
    save(&run, 's',
         "[{\"id\":\"a\",\"n\":1},{\"id\":2,\"n\":2,\"x\":{\"b\":1,\"a\":[1.5,\"\\u00e9\"]}},"
         "{\"id\":\"we\\\"ird/\\\\id\",\"n\":3}]");
    save(&run, 'u', "[{\"id\":\"a\",\"n\":10}]");
    save(&run, 'd', "[\"2\"]");
    /* prod seals payloads at rest: the topic still carries them in the clear */
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_records_set_encryption(conn, fx.env[1], true), JN_OK);
    jn_test_syncs_release(&fx, conn);
    new_run(1, sealed_cid, &sealed);
    assert_true(sealed.writer.encrypt);
    save(&sealed, 's', "[{\"id\":\"s1\",\"secret\":\"plain text\"}]");
    assert_int_equal(jn_test_syncs_number(&fx, "SELECT count(*) FROM record_outbox WHERE sealed"),
                     1);

    char admin[64];
    jn_test_process_t *w = start_worker("relay-events", admin, NULL);
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    size_t dups = read_all(&s, 30000);
    assert_int_equal(dups, 0);

    long long scope = jn_test_syncs_number(
        &fx, "SELECT s.id FROM record_scopes s WHERE s.connection = '%s'", cid);
    const jn_test_event_t *added = event_of(&s, cid, "a", 1);
    assert_string_equal(str(added, "action"), "ADDED");
    assert_string_equal(str(added, "environment"), "dev");
    assert_int_equal(json_object_get_int64(field(added, "environment_id")), fx.env[0]);
    assert_string_equal(str(added, "provider_config_key"), "hn");
    assert_string_equal(str(added, "provider"), "hackernews");
    assert_string_equal(str(added, "model"), "Contact");
    assert_string_equal(str(added, "job_id"), run.writer.job_id);
    assert_int_equal(json_object_get_int(field(added, "version")), 1);
    /* the payload is the record's canonical JSON, byte for byte as stored */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT '\"payload\":' || payload || '}' FROM records WHERE scope_id = %lld AND "
             "external_id = '2'",
             scope);
    char *stored = jn_test_sql_value(fx.gw.db_url, sql);
    const jn_test_event_t *two = event_of(&s, cid, "2", 1);
    assert_non_null(
        strstr(two->value,
               "\"payload\":{\"id\":\"2\",\"n\":2,\"x\":{\"a\":[1.5,\"\xc3\xa9\"],\"b\":1}}}"));
    assert_non_null(strstr(two->value, stored));
    free(stored);
    /* the key is the record's identity, the same for every change of it */
    char key[256];
    snprintf(key, sizeof key, "[%lld,\"hn\",\"%s\",\"Contact\",\"a\"]", fx.env[0], cid);
    assert_string_equal(added->key, key);
    const jn_test_event_t *updated = event_of(&s, cid, "a", 2);
    assert_string_equal(str(updated, "action"), "UPDATED");
    assert_string_equal(updated->key, key);
    assert_int_equal(json_object_get_int(json_object_object_get(field(updated, "payload"), "n")),
                     10);
    const jn_test_event_t *weird = event_of(&s, cid, "we\"ird/\\id", 1);
    assert_non_null(strstr(weird->key, "\"we\\\"ird/\\\\id\""));
    const jn_test_event_t *deleted = event_of(&s, cid, "2", 2);
    assert_string_equal(str(deleted, "action"), "DELETED");
    assert_true(json_object_is_type(field(deleted, "payload"), json_type_null));
    /* event id and cursor as the records store and the API make them */
    snprintf(sql, sizeof sql, "SELECT records_event_id(%lld, %lld)::text", scope, updated->seq);
    char *id = jn_test_sql_value(fx.gw.db_url, sql);
    assert_string_equal(updated->event_id, id);
    free(id);
    snprintf(sql, sizeof sql, "SELECT records_cursor(%lld, %lld)", scope, updated->seq);
    char *cursor = jn_test_sql_value(fx.gw.db_url, sql);
    assert_string_equal(str(updated, "cursor"), cursor);
    free(cursor);
    /* changed_at is the record's last_modified_at */
    snprintf(sql, sizeof sql,
             "SELECT to_char(updated_at AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM records WHERE scope_id = %lld AND "
             "external_id = 'a'",
             scope);
    char *at = jn_test_sql_value(fx.gw.db_url, sql);
    assert_string_equal(str(updated, "changed_at"), at);
    free(at);
    /* the sealed payload arrives opened */
    const jn_test_event_t *secret = event_of(&s, sealed_cid, "s1", 1);
    assert_string_equal(str(secret, "environment"), "prod");
    assert_non_null(strstr(secret->value, "\"payload\":{\"id\":\"s1\",\"secret\":\"plain text\"}"));

    /* every event validates against the published schema; a broken one does not */
    jn_test_stream_validate(&s, WORK_DIR);
    const char *bad[] = {"{\"version\":2}"};
    assert_int_not_equal(jn_test_validate_lines(bad, 1, WORK_DIR), 0);
    char *tampered = strdup(added->value);
    char *p = strstr(tampered, "\"ADDED\"");
    memcpy(p, "\"ADDXD\"", 7);
    const char *one[] = {tampered};
    assert_int_not_equal(jn_test_validate_lines(one, 1, WORK_DIR), 0);
    free(tampered);

    assert_true(metric(admin, "jn_relay_events_published_total") >= (long long)s.count);
    assert_true(metric(admin, "jn_relay_shards_held") == 64);
    assert_true(jn_test_service_stop(w, 30000));
    /* a stopping relay gives its shards back */
    assert_int_equal(
        jn_test_syncs_number(&fx, "SELECT count(*) FROM record_outbox_shards WHERE owner IS NOT "
                                  "NULL"),
        0);
    jn_test_stream_close(&s);
    jn_sync_run_cleanup(&run);
    jn_sync_run_cleanup(&sealed);
}

/* ---- junction-tail ---- */

/* Runs junction-tail with args until it exits; returns its output (caller frees). */
static char *tail(const char *const *args, const char *name)
{
    const char *argv[24];
    size_t n = 0;
    argv[n++] = TAIL_BIN;
    for (size_t i = 0; args[i] && n < 20; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "JUNCTION_TOPIC_PREFIX=%s", fx.gw.db);
    const char *env[] = {prefix, NULL};
    jn_test_process_t p;
    jn_test_spawn(&p, argv, env, name);
    if (!jn_test_process_wait(&p, 60000)) {
        jn_test_process_kill(&p);
        fail_msg("junction-tail did not exit");
    }
    assert_int_equal(p.exit_status, 0);
    return jn_test_read_log(&p);
}

static int count_lines(const char *text, const char *containing)
{
    int n = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len && line[0] == '{' &&
            (!containing || memmem(line, len, containing, strlen(containing))))
            n++;
        line = end ? end + 1 : NULL;
    }
    return n;
}

static void test_tail(void **state)
{
    (void)state;
    char cid[32], other[32];
    jn_sync_run_t run, run2;
    new_run(0, cid, &run);
    new_run(0, other, &run2);
    char *a = records("t", 0, 30, 1);
    save(&run, 's', a);
    save(&run2, 's', a);
    free(a);
    save(&run, 'd', "[\"t0\",\"t1\"]");
    char admin[64];
    jn_test_process_t *w = start_worker("relay-tail", admin, NULL);
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    read_all(&s, 30000);
    jn_test_stream_close(&s);

    /* filtered by connection and model: exactly that connection's 32 events */
    const char *by_conn[] = {"--from-beginning", "--connection",   cid,    "--model",
                             "Contact",          "--idle-exit-ms", "3000", NULL};
    char *out = tail(by_conn, "tail-conn");
    char want[64];
    snprintf(want, sizeof want, "\"connection_id\":\"%s\"", cid);
    assert_int_equal(count_lines(out, NULL), 32);
    assert_int_equal(count_lines(out, want), 32);
    free(out);
    /* and by action, in text form */
    const char *deletes[] = {
        "--from-beginning", "--connection", cid, "--action", "DELETED", "--format", "text",
        "--idle-exit-ms",   "3000",         NULL};
    out = tail(deletes, "tail-deletes");
    assert_non_null(strstr(out, "DELETED dev/hn/"));
    assert_non_null(strstr(out, " Contact t0 "));
    assert_non_null(strstr(out, " Contact t1 "));
    assert_null(strstr(out, "ADDED"));
    free(out);
    /* a filter nothing matches prints nothing */
    const char *none[] = {"--from-beginning", "--integration", "nope",
                          "--idle-exit-ms",   "2000",          NULL};
    out = tail(none, "tail-none");
    assert_int_equal(count_lines(out, NULL), 0);
    free(out);

    /* a consumer group: the first run prints everything so far, the next only what came
     * after, and --count stops it */
    char group[64];
    jn_test_unique("tailgroup", group, sizeof group);
    const char *grp[] = {"--group", group, "--connection", other, "--idle-exit-ms", "10000", NULL};
    out = tail(grp, "tail-group-1");
    assert_int_equal(count_lines(out, NULL), 30);
    free(out);
    save(&run2, 'd', "[\"t5\"]");
    const char *grp_count[] = {"--group", group, "--connection", other, "--count", "1", NULL};
    out = tail(grp_count, "tail-group-2");
    assert_int_equal(count_lines(out, NULL), 1);
    assert_non_null(strstr(out, "\"record_id\":\"t5\""));
    assert_non_null(strstr(out, "\"action\":\"DELETED\""));
    free(out);
    /* bad arguments: status 2, nothing read */
    const char *bad_argv[] = {TAIL_BIN, "--action", "MOVED", NULL};
    jn_test_process_t p;
    jn_test_spawn(&p, bad_argv, NULL, "tail-bad");
    assert_true(jn_test_process_wait(&p, 10000));
    assert_int_equal(p.exit_status, 2);

    assert_true(jn_test_service_stop(w, 30000));
    jn_sync_run_cleanup(&run);
    jn_sync_run_cleanup(&run2);
}

/* ---- a relay killed between commit and publish ---- */

static void test_relay_killed_mid_stream(void **state)
{
    (void)state;
    /* Committed while no relay runs: 40 batches of 500 over four connections. */
    jn_sync_run_t runs[4];
    char cids[4][32];
    for (int c = 0; c < 4; c++)
        new_run(0, cids[c], &runs[c]);
    for (int b = 0; b < 10; b++) {
        for (int c = 0; c < 4; c++) {
            char *j = records("k", b * 500, (b + 1) * 500, b);
            save(&runs[c], 's', j);
            free(j);
        }
    }
    long long rows = outbox_rows();
    assert_true(rows >= 40);

    /* Small cycles, so that the kill lands while the backlog is being published. */
    char admin[64];
    jn_test_process_t *w = start_worker("relay-killed", admin, "JUNCTION_RELAY_BATCH_CHANGES=500");
    long deadline = jn_test_now_ms() + 30000;
    while (outbox_rows() == rows && jn_test_now_ms() < deadline)
        usleep(2000);
    jn_test_signal(w, SIGKILL);
    jn_test_process_wait(w, 10000);
    long long left = outbox_rows();
    assert_true(left < rows);
    assert_true(left > 0); /* killed with a backlog: some published, some not */

    /* Its shards are taken when its lease expires; everything arrives. */
    char admin2[64];
    jn_test_process_t *w2 = start_worker("relay-after-kill", admin2, NULL);
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    size_t dups = read_all(&s, 60000);
    printf("# killed relay: %lld of %lld rows left, %zu duplicates (same event id, same bytes)\n",
           left, rows, dups);
    assert_true(jn_test_service_stop(w2, 30000));
    jn_test_stream_close(&s);
    for (int c = 0; c < 4; c++)
        jn_sync_run_cleanup(&runs[c]);
}

/* ---- a relay frozen past its lease ---- */

static bool shards_moved(void *ud)
{
    const char *owner_like = ud;
    return jn_test_syncs_number(&fx,
                                "SELECT count(*) FROM record_outbox_shards WHERE owner LIKE '%s'",
                                owner_like) == 64;
}

static void test_frozen_relay_is_fenced(void **state)
{
    (void)state;
    char admin1[64], admin2[64];
    size_t earlier = duplicates_so_far();
    jn_test_process_t *w1 = start_worker("relay-frozen", admin1, "JUNCTION_INSTANCE_ID=frozen");
    char cid[32];
    jn_sync_run_t run;
    new_run(0, cid, &run);
    char *j = records("f", 0, 200, 1);
    save(&run, 's', j);
    free(j);
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    read_all(&s, 30000);
    long long tokens =
        jn_test_syncs_number(&fx, "SELECT sum(lease_token) FROM record_outbox_shards");

    /* Frozen: its leases run out, another relay takes every shard and goes on. */
    jn_test_signal(w1, SIGSTOP);
    jn_test_process_t *w2 =
        start_worker("relay-successor", admin2, "JUNCTION_INSTANCE_ID=successor");
    if (!jn_test_wait_until(shards_moved, "successor/%", 30000))
        fail_msg("the shards of a frozen relay were not taken over");
    assert_true(jn_test_syncs_number(&fx, "SELECT sum(lease_token) FROM record_outbox_shards") >=
                tokens + 64);
    for (int b = 1; b <= 3; b++) {
        j = records("f", 0, 200, b + 1);
        save(&run, 's', j);
        free(j);
    }
    read_all(&s, 30000);

    /* Thawed: it finds its leases gone, deletes nothing of its successor's, and the two
     * share the shards again. */
    jn_test_signal(w1, SIGCONT);
    j = records("f", 0, 200, 9);
    save(&run, 's', j);
    free(j);
    read_all(&s, 30000);
    assert_int_equal(jn_test_stream_check(&s), earlier);
    assert_true(jn_test_service_stop(w1, 30000));
    assert_true(jn_test_service_stop(w2, 30000));
    jn_test_stream_close(&s);
    jn_sync_run_cleanup(&run);
}

/* ---- two relays ---- */

static bool both_hold(void *ud)
{
    (void)ud;
    return jn_test_syncs_number(&fx, "SELECT count(DISTINCT owner) FROM record_outbox_shards WHERE "
                                     "owner LIKE 'pair-_/%%' AND lease_until > now()") == 2 &&
           jn_test_syncs_number(&fx, "SELECT count(*) FROM record_outbox_shards WHERE owner "
                                     "LIKE 'pair-_/%%' AND lease_until > now()") == 64;
}

static void test_two_relays(void **state)
{
    (void)state;
    char admin1[64], admin2[64];
    size_t earlier = duplicates_so_far();
    jn_test_process_t *w1 = start_worker("relay-pair-1", admin1, "JUNCTION_INSTANCE_ID=pair-1");
    jn_test_process_t *w2 = start_worker("relay-pair-2", admin2, "JUNCTION_INSTANCE_ID=pair-2");
    if (!jn_test_wait_until(both_hold, NULL, 30000))
        fail_msg("two relays did not share the 64 shards");
    long long p1 = metric(admin1, "jn_relay_shards_held"),
              p2 = metric(admin2, "jn_relay_shards_held");
    printf("# shares: %lld and %lld shards\n", p1, p2);
    assert_int_equal(p1 + p2, 64);
    assert_true(p1 >= 16 && p2 >= 16);

    /* A stream of writes over 24 connections (scopes spread over the shards). */
    long long before1 = metric(admin1, "jn_relay_events_published_total");
    long long before2 = metric(admin2, "jn_relay_events_published_total");
    jn_sync_run_t runs[24];
    char cids[24][32];
    for (int c = 0; c < 24; c++)
        new_run(0, cids[c], &runs[c]);
    for (int b = 0; b < 5; b++) {
        for (int c = 0; c < 24; c++) {
            char *j = records("p", 0, 100, b);
            save(&runs[c], 's', j);
            free(j);
        }
    }
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    size_t dups = read_all(&s, 60000);
    assert_int_equal(dups, earlier);
    long long by1 = metric(admin1, "jn_relay_events_published_total") - before1;
    long long by2 = metric(admin2, "jn_relay_events_published_total") - before2;
    printf("# published: %lld and %lld events\n", by1, by2);
    assert_true(by1 > 0 && by2 > 0);
    assert_int_equal(by1 + by2, 24 * 5 * 100);

    /* One stops: the other takes every shard at once and goes on. */
    assert_true(jn_test_service_stop(w1, 30000));
    if (!jn_test_wait_until(shards_moved, "pair-2/%", 10000))
        fail_msg("the shards of a stopped relay did not move");
    char *j = records("p", 0, 100, 99);
    save(&runs[0], 's', j);
    free(j);
    dups = read_all(&s, 30000);
    assert_int_equal(dups, earlier);
    assert_true(jn_test_service_stop(w2, 30000));
    jn_test_stream_close(&s);
    for (int c = 0; c < 24; c++)
        jn_sync_run_cleanup(&runs[c]);
}

/* ---- a hostile tenant ---- */

static void test_huge_payloads_and_tiny_batches(void **state)
{
    (void)state;
    char admin[64];
    size_t earlier = duplicates_so_far();
    jn_test_process_t *w = start_worker("relay-hostile", admin, NULL);
    char cid[32], small_cid[32];
    jn_sync_run_t run, small;
    new_run(1, cid, &run);
    new_run(0, small_cid, &small);
    /* Records of the store's maximum (1 MB): above the topic's default message size. */
    size_t big = 1024 * 1024 - 64;
    jn_buf_t b;
    jn_buf_init(&b, 8 * 1024 * 1024);
    jn_buf_append_str(&b, "[");
    for (int i = 0; i < 3; i++) {
        jn_buf_printf(&b, "%s{\"id\":\"big%d\",\"blob\":\"", i ? "," : "", i);
        for (size_t k = 0; k < big - 40; k++)
            jn_buf_append(&b, &"abcdefghijklmnopqrstuvwxyz012345"[(k * 7 + (size_t)i) % 32], 1);
        jn_buf_append_str(&b, "\"}");
    }
    jn_buf_append_str(&b, ",{\"id\":\"fits\",\"n\":1}]");
    save(&run, 's', b.data);
    jn_buf_cleanup(&b);
    /* ...and a thousand batches of one record each, beside another tenant's records. */
    for (int i = 0; i < 1000; i++) {
        char one[96];
        snprintf(one, sizeof one, "[{\"id\":\"tiny%d\",\"n\":%d}]", i % 50, i);
        save(&run, 's', one);
        if (i % 100 == 0) {
            char *j = records("o", i, i + 10, i);
            save(&small, 's', j);
            free(j);
        }
    }
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    assert_int_equal(read_all(&s, 120000), earlier);
    for (int i = 0; i < 3; i++) {
        char rid[16];
        snprintf(rid, sizeof rid, "big%d", i);
        const jn_test_event_t *e = event_of(&s, cid, rid, 1);
        assert_string_equal(str(e, "payload_omitted"), "too_large");
        assert_true(json_object_is_type(field(e, "payload"), json_type_null));
    }
    const jn_test_event_t *fits = event_of(&s, cid, "fits", 1);
    assert_null(str(fits, "payload_omitted"));
    assert_true(metric(admin, "jn_relay_payloads_omitted_total") >= 3);
    jn_test_stream_validate(&s, WORK_DIR);
    assert_true(jn_test_service_stop(w, 30000));
    jn_test_stream_close(&s);
    jn_sync_run_cleanup(&run);
    jn_sync_run_cleanup(&small);
}

/* ---- a broker that refuses events for their size ---- */

/* Sets max.message.bytes of topic (AlterConfigs); value NULL restores the default. */
static void topic_max_bytes(const char *topic, const char *value)
{
    char why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", jn_test_env("JUNCTION_KAFKA_BROKERS"), why,
                      sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    assert_non_null(rk);
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    if (value)
        rd_kafka_ConfigResource_set_config(res, "max.message.bytes", value);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AlterConfigs(rk, &res, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    assert_non_null(ev);
    if (rd_kafka_event_error(ev))
        fail_msg("AlterConfigs: %s", rd_kafka_event_error_string(ev));
    size_t n = 0;
    const rd_kafka_ConfigResource_t **out =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
    assert_int_equal(n, 1);
    if (rd_kafka_ConfigResource_error(out[0]))
        fail_msg("AlterConfigs: %s", rd_kafka_ConfigResource_error_string(out[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

static void test_broker_refuses_for_size(void **state)
{
    (void)state;
    char topic[160];
    snprintf(topic, sizeof topic, "%s.records", fx.gw.db);
    topic_max_bytes(topic, "20000");
    char admin[64];
    jn_test_process_t *w = start_worker("relay-refused", admin, NULL);
    char cid[32];
    jn_sync_run_t run;
    new_run(0, cid, &run);
    /* Small records, then 50 KB ones (below the relay's own limit, above the topic's),
     * then small ones again, all of the same records: the big changes arrive without
     * payload, nothing after them is lost, and each record's changes stay in order. */
    for (int round = 0; round < 3; round++) {
        jn_buf_t b;
        jn_buf_init(&b, 4 * 1024 * 1024);
        jn_buf_append_str(&b, "[");
        for (int i = 0; i < 20; i++) {
            jn_buf_printf(&b, "%s{\"id\":\"z%d\",\"round\":%d,\"blob\":\"", i ? "," : "", i, round);
            /* pseudo-random text, so that compression does not shrink it below the limit */
            size_t len = round == 1 && i % 4 == 0 ? 50000 : 10;
            unsigned x = 2166136261u ^ (unsigned)(i * 7919 + round);
            for (size_t k = 0; k < len; k++) {
                x = x * 1103515245u + 12345u;
                jn_buf_append(&b,
                              &"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                               "+/"[(x >> 16) % 64],
                              1);
            }
            jn_buf_append_str(&b, "\"}");
        }
        jn_buf_append_str(&b, "]");
        save(&run, 's', b.data);
        jn_buf_cleanup(&b);
    }
    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    read_all(&s, 60000);
    int omitted = 0;
    for (int i = 0; i < 20; i++) {
        char rid[16];
        snprintf(rid, sizeof rid, "z%d", i);
        const jn_test_event_t *e = event_of(&s, cid, rid, 2);
        if (i % 4 == 0) {
            assert_string_equal(str(e, "payload_omitted"), "too_large");
            omitted++;
        } else {
            assert_null(str(e, "payload_omitted"));
        }
        const jn_test_event_t *after = event_of(&s, cid, rid, 3);
        assert_null(str(after, "payload_omitted"));
    }
    assert_int_equal(omitted, 5);
    jn_test_stream_validate(&s, WORK_DIR);
    assert_true(jn_test_service_stop(w, 30000));
    topic_max_bytes(topic, NULL);
    jn_test_stream_close(&s);
    jn_sync_run_cleanup(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_events_and_schema, kill_workers),
        cmocka_unit_test_teardown(test_tail, kill_workers),
        cmocka_unit_test_teardown(test_relay_killed_mid_stream, kill_workers),
        cmocka_unit_test_teardown(test_frozen_relay_is_fenced, kill_workers),
        cmocka_unit_test_teardown(test_two_relays, kill_workers),
        cmocka_unit_test_teardown(test_huge_payloads_and_tiny_batches, kill_workers),
        cmocka_unit_test_teardown(test_broker_refuses_for_size, kill_workers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
