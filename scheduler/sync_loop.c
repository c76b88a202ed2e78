/*
 * sync_loop.c - firing due syncs, resending lost job messages, purging deleted
 * connections' records (see sync_loop.h).
 */
#include "sync_loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "net/job_message.h"
#include "store/records.h"
#include "store/syncs.h"

#define FIRE_BATCH 500 /* syncs fired per transaction */
#define FIRE_ROUNDS 40 /* transactions per tick at most: then sleep, then go on */
#define RESEND_EVERY_MS 5000
#define RESEND_BATCH 500
#define PURGE_EVERY_MS 10000
#define PURGE_BATCH 5000
#define PURGE_ROUNDS 20
#define KAFKA_FLUSH_MS 10000

struct jn_sync_loop {
    jn_engine_t *e;
    pthread_t thread;
    atomic_bool stop;
    jn_metric_t *fired, *skipped, *resent, *purged, *errors;
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool stopping(jn_sync_loop_t *l)
{
    return atomic_load(&l->stop) || jn_service_stopping();
}

/* Sends each job's message on its kind's topic and waits for the broker. A message that
 * fails is sent again by the resend step later. */
static void send_jobs(jn_sync_loop_t *l, const jn_job_ref_t *jobs, size_t n)
{
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        char key[40], topic[160];
        char *value = jn_job_message_encode(&jobs[i], key);
        jn_kafka_topic_name(&l->e->config, jn_job_message_topic_kind(jobs[i].kind), topic,
                            sizeof topic);
        if (jn_kafka_produce(l->e->producer, topic, key, strlen(key), value, strlen(value), NULL,
                             NULL) != JN_OK)
            failed++;
        free(value);
    }
    if (n && jn_kafka_flush(l->e->producer, KAFKA_FLUSH_MS) != JN_OK)
        failed = n;
    if (failed) {
        jn_metric_add(l->errors, 1);
        jn_log_warn("scheduler",
                    "%zu of %zu job messages not confirmed by Kafka; they will be "
                    "sent again",
                    failed, n);
    }
}

/* Fires due syncs until none are due (or FIRE_ROUNDS transactions). */
static void fire(jn_sync_loop_t *l, PGconn *conn)
{
    for (int round = 0; round < FIRE_ROUNDS && !stopping(l); round++) {
        jn_job_ref_t *jobs = NULL;
        size_t n = 0, skipped = 0;
        jn_err_t err = jn_syncs_fire_due(conn, FIRE_BATCH, &jobs, &n, &skipped);
        if (err) {
            jn_metric_add(l->errors, 1);
            jn_log_warn("scheduler", "firing due syncs failed: %s", jn_err_str(err));
            free(jobs);
            return;
        }
        send_jobs(l, jobs, n);
        free(jobs);
        jn_metric_add(l->fired, (int64_t)n);
        jn_metric_add(l->skipped, (int64_t)skipped);
        if (n + skipped < FIRE_BATCH)
            return;
    }
}

static void resend(jn_sync_loop_t *l, PGconn *conn)
{
    jn_job_ref_t *jobs = NULL;
    size_t n = 0;
    jn_err_t err =
        jn_jobs_due_for_send(conn, RESEND_BATCH, l->e->config.job_resend_seconds, &jobs, &n);
    if (err) {
        jn_metric_add(l->errors, 1);
        jn_log_warn("scheduler", "finding jobs to send again failed: %s", jn_err_str(err));
    } else if (n) {
        jn_log_info("scheduler", "sending %zu job messages again (lost, or their lease expired)",
                    n);
        send_jobs(l, jobs, n);
        jn_metric_add(l->resent, (int64_t)n);
    }
    free(jobs);
}

static void purge(jn_sync_loop_t *l, PGconn *conn)
{
    for (int round = 0; round < PURGE_ROUNDS && !stopping(l); round++) {
        long long purged = 0;
        bool more = false;
        jn_err_t err = jn_records_purge_step(conn, PURGE_BATCH, &purged, &more);
        if (err) {
            jn_metric_add(l->errors, 1);
            jn_log_warn("scheduler", "purging deleted connections' records failed: %s",
                        jn_err_str(err));
            return;
        }
        jn_metric_add(l->purged, purged);
        if (!more)
            return;
    }
}

static void *run(void *arg)
{
    jn_sync_loop_t *l = arg;
    long next_resend = 0, next_purge = 0;
    int tick = l->e->config.scheduler_tick_ms;
    while (!stopping(l)) {
        jn_err_t err;
        PGconn *conn = jn_pg_acquire(l->e->pg, 2000, &err);
        if (conn) {
            fire(l, conn);
            long now = now_ms();
            if (now >= next_resend) {
                resend(l, conn);
                next_resend = now + RESEND_EVERY_MS;
            }
            if (now >= next_purge) {
                purge(l, conn);
                next_purge = now + PURGE_EVERY_MS;
            }
            jn_pg_release(l->e->pg, conn);
        }
        jn_service_wait_for_stop(conn ? tick : 1000);
    }
    return NULL;
}

jn_sync_loop_t *jn_sync_loop_start(jn_engine_t *e)
{
    jn_sync_loop_t *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->e = e;
    atomic_init(&l->stop, false);
    l->fired = jn_metrics_counter("jn_syncs_fired_total",
                                  "Sync runs created by the schedule "
                                  "or on request",
                                  NULL);
    l->skipped =
        jn_metrics_counter("jn_syncs_skipped_slots_total",
                           "Slots skipped because the sync's last run was in flight", NULL);
    l->resent = jn_metrics_counter("jn_jobs_resent_total",
                                   "Job messages sent again (lost, or the lease expired)", NULL);
    l->purged = jn_metrics_counter("jn_records_purged_total",
                                   "Records deleted with their deleted connection", NULL);
    l->errors = jn_metrics_counter("jn_scheduler_errors_total",
                                   "Scheduler steps that failed (retried next round)", NULL);
    if (pthread_create(&l->thread, NULL, run, l) != 0)
        abort();
    return l;
}

void jn_sync_loop_stop(jn_sync_loop_t *l)
{
    if (!l)
        return;
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    free(l);
}
