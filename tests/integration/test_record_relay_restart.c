/*
 * Integration: the outbox relay while the Kafka broker restarts (stops and starts the
 * shared broker, so it runs alone: RUN_SERIAL).
 *
 * What it proves: during a stream of sequence-numbered changes (ten records of two
 * connections updated round after round, each round one committed batch, the round number
 * in every record), with the broker stopped and started again in the middle, every
 * committed change arrives; per record the rounds arrive in order with no gap; and
 * duplicates, if any, carry the same event id and the same bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "harness.h"
#include "record_stream.h"
#include "sync_fixture.h"

#define RECORDS 10
#define CONNECTIONS 2

static jn_test_syncs_t fx;
static const char *const contact_models[] = {"Contact"};

static int setup(void **state)
{
    (void)state;
    const char *env[] = {"JUNCTION_TOPIC_PARTITIONS=4", NULL};
    jn_test_syncs_start(&fx, GATEWAY_BIN, env);
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

typedef struct {
    atomic_int phase; /* 0 running, 1 broker down, 2 broker back, 3 done */
    int stop_rc, start_rc;
} restart_t;

/* Stops the broker a moment into the stream, starts it again a few seconds later. */
static void *restart_broker(void *arg)
{
    restart_t *r = arg;
    usleep(1500 * 1000);
    r->stop_rc = jn_test_run("deploy/local/kafka.sh stop >/dev/null 2>&1");
    atomic_store(&r->phase, 1);
    usleep(3000 * 1000);
    r->start_rc = jn_test_run("deploy/local/kafka.sh start >/dev/null 2>&1");
    atomic_store(&r->phase, 2);
    usleep(2000 * 1000);
    atomic_store(&r->phase, 3);
    return NULL;
}

static int index_of_key(char keys[][160], int n, const char *key)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(keys[i], key) == 0)
            return i;
    }
    return -1;
}

static void test_broker_restart_mid_stream(void **state)
{
    (void)state;
    jn_test_process_t w;
    char admin[64];
    const char *env[] = {"JUNCTION_RELAY_LEASE_SECONDS=3", "JUNCTION_WORKER_SYNCS=1",
                         "JUNCTION_WORKER_ACTIONS=1", NULL};
    jn_test_service_start(&w, &fx.gw, WORKER_BIN, "relay-restart", env, admin);
    jn_sync_run_t runs[CONNECTIONS];
    for (int c = 0; c < CONNECTIONS; c++) {
        char cid[32];
        snprintf(cid, sizeof cid, "seq%d", c);
        jn_test_syncs_connection(&fx, 0, cid);
        long long sync = jn_test_syncs_id(&fx, 0, cid, "contacts", NULL);
        jn_test_syncs_begin_run(&fx, 0, sync, JN_SYNC_RUN_INCREMENTAL, "test", 3600, &runs[c]);
    }

    restart_t r = {0};
    pthread_t t;
    pthread_create(&t, NULL, restart_broker, &r);
    int rounds = 0, during_outage = 0;
    while (atomic_load(&r.phase) < 3 || rounds < 50) {
        jn_buf_t b;
        jn_buf_init(&b, 1 << 20);
        jn_buf_append_str(&b, "[");
        for (int i = 0; i < RECORDS; i++)
            jn_buf_printf(&b, "%s{\"id\":\"r%d\",\"round\":%d}", i ? "," : "", i, rounds);
        jn_buf_append_str(&b, "]");
        for (int c = 0; c < CONNECTIONS; c++)
            jn_test_syncs_write(&fx, &runs[c], 's', "Contact", b.data, JN_OK);
        jn_buf_cleanup(&b);
        during_outage += atomic_load(&r.phase) == 1;
        rounds++;
        usleep(20 * 1000);
    }
    pthread_join(t, NULL);
    assert_int_equal(r.stop_rc, 0);
    assert_int_equal(r.start_rc, 0);
    printf("# %d rounds of %d records x %d connections, %d of them while the broker was down\n",
           rounds, RECORDS, CONNECTIONS, during_outage);
    assert_true(during_outage > 0);

    jn_test_stream_t s;
    jn_test_stream_open(&s, fx.gw.db);
    size_t want = (size_t)rounds * RECORDS * CONNECTIONS;
    size_t got = jn_test_stream_read(&s, want, 120000);
    jn_test_stream_expect_all(&s, &fx);
    assert_int_equal(got, want);
    jn_test_stream_drain(&s, 1000);
    size_t dups = jn_test_stream_check(&s);
    printf("# %zu events read, %zu duplicates\n", s.count, dups);

    /* Per record, the rounds of its first occurrences: 0, 1, 2, ... without a gap. */
    char keys[RECORDS * CONNECTIONS][160];
    int next[RECORDS * CONNECTIONS];
    int nkeys = 0;
    char(*seen)[37] = calloc(s.count, sizeof *seen);
    size_t nseen = 0;
    for (size_t i = 0; i < s.count; i++) {
        const jn_test_event_t *e = &s.events[i];
        bool dup = false;
        for (size_t j = 0; j < nseen && !dup; j++)
            dup = strcmp(seen[j], e->event_id) == 0;
        if (dup)
            continue;
        snprintf(seen[nseen++], 37, "%s", e->event_id);
        int k = index_of_key(keys, nkeys, e->key);
        if (k < 0) {
            assert_true(nkeys < RECORDS * CONNECTIONS);
            k = nkeys++;
            snprintf(keys[k], sizeof keys[k], "%s", e->key);
            next[k] = 0;
        }
        json_object *payload = json_object_object_get(e->event, "payload");
        int round = json_object_get_int(json_object_object_get(payload, "round"));
        if (round != next[k])
            fail_msg("%s: round %d arrived where %d was due", e->key, round, next[k]);
        next[k]++;
    }
    assert_int_equal(nkeys, RECORDS * CONNECTIONS);
    for (int k = 0; k < nkeys; k++)
        assert_int_equal(next[k], rounds);
    free(seen);
    assert_true(jn_test_service_stop(&w, 30000));
    jn_test_stream_close(&s);
    for (int c = 0; c < CONNECTIONS; c++)
        jn_sync_run_cleanup(&runs[c]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_restart_mid_stream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
