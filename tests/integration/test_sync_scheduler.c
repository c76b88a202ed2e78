/*
 * Integration: junction-scheduler against PostgreSQL and Kafka, with a fake worker that
 * consumes <prefix>.syncs, claims each run and ends it as a worker would.
 *
 * What it proves, asserted from the jobs table: two schedulers and 2,000 syncs at a 30 s
 * frequency for three minutes fire every slot exactly once, with no run of a sync created
 * before its previous run ended, starts spread over the interval, and a p99 lateness that is
 * reported (and bounded); both schedulers take part. A run that overruns skips slots
 * instead of queueing them. After the schedulers were down for many slots, each sync fires
 * one catch-up run, not one per missed slot. A run whose worker died is sent again once
 * its lease expires, the successor takes it over, and the stale worker's late writes and
 * commit are refused.
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
#include <time.h>

#include "core/config.h"
#include "harness.h"
#include "net/job_message.h"
#include "net/kafka.h"
#include "store/jobs.h"
#include "sync_fixture.h"

#define SYNCS 2000
#define FREQUENCY_S 30
#define WINDOW_MS (180 * 1000)
#define OVERRUN_EVERY 100 /* sync ids divisible by it take 45 s: longer than their interval */

static jn_test_syncs_t fx;
static jn_config_t cfg;

static const char *const models[] = {"Item"};
static const jn_sync_decl_t lease_decl = {"lease-sync", false, false, false, 3600, models, 1};
static const jn_sync_decl_t sched_decl = {"sched", false, false, true, FREQUENCY_S, models, 1};

static int setup(void **state)
{
    (void)state;
    jn_test_syncs_start(&fx, GATEWAY_BIN, NULL);
    jn_config_load_or_exit(&cfg, JN_PROGRAM_TOOL);
    snprintf(cfg.topic_prefix, sizeof cfg.topic_prefix, "%s", fx.gw.db);
    /* 2,000 connections at once (their credentials are never opened). */
    jn_test_syncs_sql(&fx,
                      "INSERT INTO connections (environment_id, integration_id, connection_id, "
                      "credentials_type, credentials_sealed) SELECT %lld, %lld, 'sched' || g, "
                      "'NONE', 'unused' FROM generate_series(1, %d) g",
                      fx.env[0], fx.integration[0], SYNCS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_config_cleanup(&cfg);
    jn_test_syncs_stop(&fx);
    return 0;
}

/* ---- a fake worker: consumes sync runs, claims them, ends them after a while ---- */

typedef struct {
    jn_sync_run_t run;
    long finish_at_ms;
} held_t;

typedef struct {
    jn_kafka_consumer_t *consumer;
    pthread_t consumer_thread, finisher_thread;
    atomic_bool stop, drain;
    pthread_mutex_t lock;
    held_t *held;
    size_t held_count, held_cap;
    atomic_long claimed, finished, duplicates;
    const char *only_job; /* when set: claim only this job, and never finish it */
    atomic_int only_seen; /* messages seen for only_job */
} worker_t;

static void *consume(void *arg)
{
    worker_t *w = arg;
    unsigned seed = 1234;
    while (!atomic_load(&w->stop)) {
        jn_kafka_message_t msg;
        if (jn_kafka_consumer_poll(w->consumer, 200, &msg) != JN_OK)
            continue;
        jn_job_ref_t ref;
        char why[128];
        jn_err_t err = jn_job_message_decode(msg.value, msg.value_len, &ref, why, sizeof why);
        jn_kafka_consumer_done(w->consumer, &msg);
        assert_int_equal(err, JN_OK);
        if (w->only_job) {
            if (strcmp(ref.id, w->only_job) == 0)
                atomic_fetch_add(&w->only_seen, 1);
            continue;
        }
        PGconn *conn = jn_test_syncs_db(&fx);
        jn_job_t job;
        err = jn_jobs_claim(conn, ref.id, "fake-worker", 120, &job);
        if (err == JN_ERR_CONFLICT) { /* sent again while we run it: nothing to do */
            atomic_fetch_add(&w->duplicates, 1);
            jn_test_syncs_release(&fx, conn);
            continue;
        }
        assert_int_equal(err, JN_OK);
        held_t h = {.finish_at_ms = 0};
        err = jn_syncs_run_begin(conn, fx.env[0], ref.id, job.lease_token, &h.run);
        jn_test_syncs_release(&fx, conn);
        assert_int_equal(err, JN_OK);
        /* Runs take 0.2 to 3 s; the overrunning syncs' take 45 s. */
        h.finish_at_ms =
            jn_test_now_ms() +
            (h.run.sync_id % OVERRUN_EVERY == 0 ? 45000 : 200 + (long)(rand_r(&seed) % 2800));
        jn_job_cleanup(&job);
        pthread_mutex_lock(&w->lock);
        if (w->held_count == w->held_cap) {
            w->held_cap = w->held_cap ? w->held_cap * 2 : 256;
            w->held = realloc(w->held, w->held_cap * sizeof *w->held);
            assert_non_null(w->held);
        }
        w->held[w->held_count++] = h;
        pthread_mutex_unlock(&w->lock);
        atomic_fetch_add(&w->claimed, 1);
    }
    return NULL;
}

static void *finish(void *arg)
{
    worker_t *w = arg;
    for (;;) {
        bool drain = atomic_load(&w->drain);
        pthread_mutex_lock(&w->lock);
        size_t left = w->held_count;
        for (size_t i = 0; i < w->held_count;) {
            if (!drain && w->held[i].finish_at_ms > jn_test_now_ms()) {
                i++;
                continue;
            }
            held_t h = w->held[i];
            w->held[i] = w->held[--w->held_count];
            pthread_mutex_unlock(&w->lock);
            PGconn *conn = jn_test_syncs_db(&fx);
            jn_err_t err = jn_syncs_run_succeed(conn, &h.run, NULL);
            jn_test_syncs_release(&fx, conn);
            assert_int_equal(err, JN_OK);
            jn_sync_run_cleanup(&h.run);
            atomic_fetch_add(&w->finished, 1);
            pthread_mutex_lock(&w->lock);
        }
        left = w->held_count;
        pthread_mutex_unlock(&w->lock);
        if (drain && left == 0 && atomic_load(&w->stop))
            return NULL;
        struct timespec pause = {0, 20 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static void worker_start(worker_t *w, const char *only_job)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    w->only_job = only_job;
    char topic[160], group[160];
    jn_kafka_topic_name(&cfg, "syncs", topic, sizeof topic);
    jn_test_unique("fake_workers", group, sizeof group);
    const char *topics[] = {topic};
    w->consumer = jn_kafka_consumer_new(&cfg, group, topics, 1);
    assert_non_null(w->consumer);
    pthread_create(&w->consumer_thread, NULL, consume, w);
    pthread_create(&w->finisher_thread, NULL, finish, w);
}

/* Stops consuming, ends every held run at once, and frees. */
static void worker_stop(worker_t *w)
{
    atomic_store(&w->stop, true);
    pthread_join(w->consumer_thread, NULL);
    atomic_store(&w->drain, true);
    pthread_join(w->finisher_thread, NULL);
    jn_kafka_consumer_free(w->consumer);
    free(w->held);
    pthread_mutex_destroy(&w->lock);
}

static long long metric(int port, const char *name)
{
    char url[128], *text = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    assert_int_equal(jn_test_http("GET", url, NULL, NULL, 0, &text), 200);
    long long v = -1;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ')
            v = strtoll(line + strlen(name) + 1, NULL, 10);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return v;
}

/* ---- a dead worker's run ---- */

typedef struct {
    worker_t *w;
    int want;
} seen_wait_t;

static bool job_seen(void *ud)
{
    seen_wait_t *s = ud;
    return atomic_load(&s->w->only_seen) >= s->want;
}

static void test_a_dead_workers_run_is_sent_again_and_taken_over(void **state)
{
    (void)state;
    jn_test_syncs_deploy(&fx, 0, &lease_decl, 1);
    const char *const env[] = {"JUNCTION_JOB_RESEND_SECONDS=1", "JUNCTION_SCHEDULER_TICK_MS=100",
                               NULL};
    jn_test_process_t scheduler;
    jn_test_syncs_scheduler_start(&fx, &scheduler, SCHEDULER_BIN, env);
    long long sync = jn_test_syncs_id(&fx, 0, "sched1", "lease-sync", NULL);
    /* A run is asked for; the first worker claims it with a short lease and dies. */
    json_object *resp = NULL;
    long st = jn_test_api(&fx.gw, "POST", "/sync/trigger", fx.gw.dev_key,
                          "{\"syncs\":[\"lease-sync\"],\"provider_config_key\":\"hn\","
                          "\"connection_id\":\"sched1\"}",
                          &resp);
    jn_test_expect_status(st, 200, resp, "trigger");
    json_object_put(resp);
    char *job_id = NULL;
    for (int i = 0; i < 100 && !job_id; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT current_job_id FROM syncs WHERE id = %lld", sync);
        job_id = jn_test_sql_value(fx.gw.db_url, sql);
        if (job_id && !*job_id) {
            free(job_id);
            job_id = NULL;
        }
        if (!job_id) {
            struct timespec pause = {0, 100 * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
    assert_non_null(job_id);
    worker_t w;
    worker_start(&w, job_id);
    seen_wait_t once = {&w, 1};
    assert_true(jn_test_wait_until(job_seen, &once, 30000));
    PGconn *conn = jn_test_syncs_db(&fx);
    jn_job_t job;
    assert_int_equal(jn_jobs_claim(conn, job_id, "dying-worker", 2, &job), JN_OK);
    jn_sync_run_t stale;
    assert_int_equal(jn_syncs_run_begin(conn, fx.env[0], job_id, job.lease_token, &stale), JN_OK);
    jn_job_cleanup(&job);
    jn_test_syncs_release(&fx, conn);
    long claimed_at = jn_test_now_ms();
    jn_test_syncs_write(&fx, &stale, 's', "Item", "[{\"id\":\"before-death\"}]", JN_OK);
    /* No heartbeat: once the lease has expired, the scheduler sends the job again. */
    seen_wait_t again = {&w, atomic_load(&w.only_seen) + 1};
    bool resent = jn_test_wait_until(job_seen, &again, 30000);
    long after_ms = jn_test_now_ms() - claimed_at;
    worker_stop(&w);
    assert_true(resent);
    assert_true(after_ms >= 1900); /* not before the 2 s lease ran out */
    conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_jobs_claim(conn, job_id, "next-worker", 60, &job), JN_OK);
    assert_int_equal(job.lease_token, stale.writer.lease_token + 1);
    assert_int_equal(job.attempts, 2);
    jn_sync_run_t fresh;
    assert_int_equal(jn_syncs_run_begin(conn, fx.env[0], job_id, job.lease_token, &fresh), JN_OK);
    jn_job_cleanup(&job);
    /* The dead worker wakes up: its late writes and commit are refused. */
    jn_test_syncs_write(&fx, &stale, 's', "Item", "[{\"id\":\"after-death\"}]", JN_ERR_CONFLICT);
    assert_int_equal(jn_syncs_run_succeed(conn, &stale, NULL), JN_ERR_CONFLICT);
    jn_test_syncs_write(&fx, &fresh, 's', "Item", "[{\"id\":\"successor\"}]", JN_OK);
    assert_int_equal(jn_syncs_run_succeed(conn, &fresh, NULL), JN_OK);
    jn_test_syncs_release(&fx, conn);
    jn_sync_run_cleanup(&stale);
    jn_sync_run_cleanup(&fresh);
    jn_test_syncs_scheduler_stop(&scheduler);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM records r JOIN record_scopes s ON "
                                          "s.id = r.scope_id JOIN connections c ON c.id = "
                                          "s.connection_id WHERE c.connection_id = 'sched1'"),
                     2);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM jobs WHERE id = '%s' AND state = "
                                          "'succeeded' AND attempts = 2",
                                          job_id),
                     1);
    free(job_id);
}

/* ---- 2,000 syncs, two schedulers, three minutes ---- */

static bool window_over(void *ud)
{
    return jn_test_now_ms() >= *(long *)ud;
}

static void test_two_schedulers_fire_every_slot_exactly_once(void **state)
{
    (void)state;
    worker_t w;
    worker_start(&w, NULL);
    jn_test_process_t schedulers[2];
    int ports[2];
    for (int i = 0; i < 2; i++)
        ports[i] = jn_test_syncs_scheduler_start(&fx, &schedulers[i], SCHEDULER_BIN, NULL);
    /* Deploy inside a transaction whose now() we keep: every sync's first slot is its
     * first after that instant. */
    PGconn *conn = jn_test_syncs_db(&fx);
    assert_int_equal(jn_pg_exec_script(conn, "BEGIN"), JN_OK);
    PGresult *r = NULL;
    assert_int_equal(jn_pg_exec(conn, "SELECT now()::text", 0, NULL, &r), JN_OK);
    char start[64];
    snprintf(start, sizeof start, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const jn_sync_decl_t decls[] = {lease_decl, sched_decl};
    char why[256] = "";
    assert_int_equal(
        jn_syncs_reconcile(conn, fx.env[0], fx.integration[0], decls, 2, NULL, why, sizeof why),
        JN_OK);
    assert_int_equal(jn_pg_exec_script(conn, "COMMIT"), JN_OK);
    jn_test_syncs_release(&fx, conn);
    long until = jn_test_now_ms() + WINDOW_MS;
    assert_true(jn_test_wait_until(window_over, &until, WINDOW_MS + 5000));
    /* Slots up to two seconds ago must all have fired. */
    char *end = jn_test_sql_value(fx.gw.db_url, "SELECT (now() - interval '2 seconds')::text");
    long long fired[2] = {metric(ports[0], "jn_syncs_fired_total"),
                          metric(ports[1], "jn_syncs_fired_total")};
    for (int i = 0; i < 2; i++)
        jn_test_syncs_scheduler_stop(&schedulers[i]);
    worker_stop(&w);
    print_message("fake worker: %ld runs claimed, %ld finished, %ld duplicate messages\n",
                  atomic_load(&w.claimed), atomic_load(&w.finished), atomic_load(&w.duplicates));

    const char *sched_jobs = "SELECT (input->>'sync_id')::bigint AS id, "
                             "(input->>'slot')::timestamptz AS slot, created_at, finished_at "
                             "FROM jobs WHERE kind = 'sync' AND function_name = 'sched'";
    char sql[4096];
    /* Never two jobs for one slot. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (SELECT id, slot FROM (%s) j WHERE slot IS NOT NULL "
             "GROUP BY id, slot HAVING count(*) > 1) d",
             sched_jobs);
    assert_int_equal(jn_test_syncs_number(&fx, "%s", sql), 0);
    /* Every slot of every sync that does not overrun, from the first after the deployment
     * to two seconds ago, fired. */
    snprintf(sql, sizeof sql,
             "WITH s AS (SELECT id, sync_next_slot(id, %d, '%s'::timestamptz) AS first "
             " FROM syncs WHERE name = 'sched' AND id %% %d <> 0),"
             "exp AS (SELECT s.id, g AS slot FROM s, generate_series(s.first, '%s'::timestamptz,"
             " interval '%d seconds') g),"
             "got AS (%s) "
             "SELECT (SELECT count(*) FROM exp)::text || ' ' || (SELECT count(*) FROM exp "
             " LEFT JOIN got USING (id, slot) WHERE got.id IS NULL)::text",
             FREQUENCY_S, start, OVERRUN_EVERY, end, FREQUENCY_S, sched_jobs);
    char *counts = jn_test_sql_value(fx.gw.db_url, sql);
    long long want = 0, missed = -1;
    assert_int_equal(sscanf(counts, "%lld %lld", &want, &missed), 2);
    free(counts);
    print_message("slots due in the window: %lld, missed: %lld\n", want, missed);
    assert_true(want >= (SYNCS - SYNCS / OVERRUN_EVERY) * (WINDOW_MS / 1000 / FREQUENCY_S - 1));
    assert_int_equal(missed, 0);
    /* No run of a sync was created before its previous run ended. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (%s) a JOIN (%s) b ON a.id = b.id AND a.created_at < "
             "b.created_at WHERE b.created_at < coalesce(a.finished_at, 'infinity')",
             sched_jobs, sched_jobs);
    assert_int_equal(jn_test_syncs_number(&fx, "%s", sql), 0);
    /* Overrunning syncs skipped slots instead of queueing them. */
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM syncs WHERE name = 'sched' AND "
                                          "id %% %d = 0 AND skipped_slots = 0",
                                          OVERRUN_EVERY),
                     0);
    snprintf(sql, sizeof sql,
             "SELECT max(n) FROM (SELECT id, count(*) AS n FROM (%s) j WHERE id %% %d = 0 GROUP "
             "BY id) x",
             sched_jobs, OVERRUN_EVERY);
    assert_true(jn_test_syncs_number(&fx, "%s", sql) <= WINDOW_MS / 1000 / 45 + 1);
    /* Lateness: from a slot to its job. */
    snprintf(sql, sizeof sql,
             "SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY l))::text || ' ' ||"
             " round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY l))::text || ' ' ||"
             " round(1000 * max(l))::text FROM (SELECT extract(epoch FROM created_at - slot) AS l "
             "FROM (%s) j WHERE slot IS NOT NULL) x",
             sched_jobs);
    char *lateness = jn_test_sql_value(fx.gw.db_url, sql);
    long p50 = 0, p99 = 0, max = 0;
    assert_int_equal(sscanf(lateness, "%ld %ld %ld", &p50, &p99, &max), 3);
    free(lateness);
    /* Spread: the busiest second of slots against the mean (2,000 / 30 = 67 a second). */
    snprintf(sql, sizeof sql,
             "SELECT max(n) FROM (SELECT date_trunc('second', slot), count(*) AS n FROM (%s) j "
             "WHERE slot IS NOT NULL GROUP BY 1) x",
             sched_jobs);
    long long busiest = jn_test_syncs_number(&fx, "%s", sql);
    print_message("lateness from slot to job: p50 %ld ms, p99 %ld ms, max %ld ms; busiest second "
                  "%lld starts (mean %d); fired by scheduler 1: %lld, by scheduler 2: %lld\n",
                  p50, p99, max, busiest, SYNCS / FREQUENCY_S, fired[0], fired[1]);
    assert_true(p99 < 2000);
    assert_true(busiest < 3 * SYNCS / FREQUENCY_S);
    assert_true(fired[0] > 0 && fired[1] > 0); /* no single leader: both fire */
    free(end);
}

/* ---- after downtime ---- */

static bool all_caught_up(void *ud)
{
    (void)ud;
    return jn_test_syncs_number(&fx, "SELECT count(DISTINCT input->>'sync_id') FROM jobs WHERE "
                                     "input->>'reason' = 'catch_up'") == SYNCS;
}

static void test_after_downtime_one_catch_up_run(void **state)
{
    (void)state;
    /* The schedulers were down for ten minutes: twenty slots missed by every sync. */
    char *restart = jn_test_sql_value(fx.gw.db_url, "SELECT now()::text");
    jn_test_syncs_sql(&fx, "UPDATE syncs SET next_due_at = now() - interval '10 minutes', "
                           "current_job_id = NULL WHERE name = 'sched'");
    worker_t w;
    worker_start(&w, NULL);
    jn_test_process_t scheduler;
    jn_test_syncs_scheduler_start(&fx, &scheduler, SCHEDULER_BIN, NULL);
    bool caught_up = jn_test_wait_until(all_caught_up, NULL, 60000);
    jn_test_syncs_scheduler_stop(&scheduler);
    worker_stop(&w);
    assert_true(caught_up);
    /* One catch-up run per sync, and no run for any slot missed while down: after it, only
     * slots that came after the restart. */
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM (SELECT input->>'sync_id' FROM "
                                          "jobs WHERE input->>'reason' = 'catch_up' GROUP BY 1 "
                                          "HAVING count(*) = 1) x"),
                     SYNCS);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM jobs WHERE kind = 'sync' AND "
                                          "created_at > '%s' AND input->>'reason' = 'schedule' "
                                          "AND (input->>'slot')::timestamptz < '%s'",
                                          restart, restart),
                     0);
    assert_int_equal(jn_test_syncs_number(&fx,
                                          "SELECT count(*) FROM syncs WHERE name = 'sched' "
                                          "AND next_due_at > now() + interval '%d seconds'",
                                          FREQUENCY_S),
                     0);
    free(restart);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_dead_workers_run_is_sent_again_and_taken_over),
        cmocka_unit_test(test_two_schedulers_fire_every_slot_exactly_once),
        cmocka_unit_test(test_after_downtime_one_catch_up_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
