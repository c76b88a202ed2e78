/*
 * records_relay - the outbox relay's throughput beside librdkafka's own, in one run.
 *
 *   records_relay <gateway url> <secret key> [changes per round] [rounds]
 *
 * Run in the environment of a worker on the gateway's database (bench/records_relay.sh
 * does it all). One relay thread (worker/relay.c) runs through the whole run, as in a
 * worker. Each round writes the changes through the records store (1 KB records, batches
 * of 1,000, one scope), moving each committed outbox row aside at once, so that they wait;
 * then:
 *   relay:  the rows are put back into record_outbox in one statement, and the relay is
 *           timed from that commit until every event was acknowledged and every row
 *           deleted: noticing them (it polls an idle outbox every 200 ms), reading the
 *           rows, encoding, producing, waiting for the acknowledgements, the fenced delete;
 *   direct: the same events, encoded ahead from the rows (not timed), produced straight
 *           with librdkafka with the relay's producer settings (idempotent, acks=all, lz4,
 *           gapless, linger 5 ms, no message timeout, messages copied) to <prefix>.records,
 *           until every one is acknowledged.
 * The order of the two sides alternates by round, so that both meet the same load on a
 * shared machine. Prints each round's events/s and the ratio, then the medians.
 */
#include <curl/curl.h>
#include <json-c/json.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"
#include "net/kafka.h"
#include "relay.h"
#include "store/pg.h"
#include "store/record_events.h"
#include "store/records.h"
#include "store/syncs.h"
#include "sync_run.h"

#define BATCH 1000
#define MAX_ROUNDS 50

/* A ~1 KB record whose content changes with the round. */
static void make_record(jn_buf_t *b, int i, int round)
{
    jn_buf_printf(b,
                  "{\"id\":\"rec-%08d\",\"email\":\"user%d@example.com\",\"first_name\":\"Ada\","
                  "\"last_name\":\"Lovelace %d\",\"company\":{\"name\":\"Analytical Engines "
                  "Ltd\",\"domain\":\"engines.example.com\",\"size\":%d},\"round\":%d,"
                  "\"active\":%s,\"tags\":[\"customer\",\"newsletter\",\"beta\"],\"notes\":\"",
                  i, i, i, i % 5000, round, i % 2 ? "true" : "false");
    for (int k = 0; k < 14; k++)
        jn_buf_append_str(b, "Lorem ipsum dolor sit amet, consectetur adipiscing. ");
    jn_buf_append_str(b, "\"}");
}

static long long count_outbox(PGconn *conn)
{
    PGresult *r = NULL;
    if (jn_pg_exec(conn, "SELECT count(*) FROM record_outbox", 0, NULL, &r))
        bench_die("cannot count the outbox");
    long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* ---- the direct side ---- */

typedef struct {
    jn_buf_t key, value;
    char event_id[37];
} event_t;

static long long direct_acked, direct_failed;

static void direct_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        direct_failed++;
    else
        direct_acked++;
}

static rd_kafka_t *direct_producer(const jn_config_t *cfg)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char max[32];
    snprintf(max, sizeof max, "%ld", cfg->relay_max_event_bytes + (64L << 10));
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) ||
        rd_kafka_conf_set(conf, "acks", "all", err, sizeof err) ||
        rd_kafka_conf_set(conf, "compression.codec", "lz4", err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.gapless.guarantee", "true", err, sizeof err) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "0", err, sizeof err) ||
        rd_kafka_conf_set(conf, "message.max.bytes", max, err, sizeof err))
        bench_die(err);
    rd_kafka_conf_set_dr_msg_cb(conf, direct_delivered);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        bench_die(err);
    return rk;
}

/* The events of every held outbox row, encoded as the relay encodes them; *n of them. */
static event_t *encode_outbox(PGconn *conn, const jn_crypto_keyring_t *ring, long max_bytes,
                              size_t *n)
{
    PGresult *r = NULL;
    if (jn_pg_exec(conn,
                   "SELECT o.id, o.environment_id, o.integration, o.connection, o.model, "
                   "o.scope_id, o.job_id, o.sealed, o.changes, o.environment_name, o.provider, "
                   "to_char(o.changed_at AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                   "FROM bench_held o ORDER BY o.shard, o.id",
                   0, NULL, &r))
        bench_die("cannot read the outbox");
    size_t cap = 0, count = 0;
    event_t *events = NULL;
    for (int i = 0; i < PQntuples(r); i++) {
        jn_outbox_row_t row = {
            .id = strtoll(PQgetvalue(r, i, 0), NULL, 10),
            .environment_id = strtoll(PQgetvalue(r, i, 1), NULL, 10),
            .environment = PQgetvalue(r, i, 9),
            .integration = PQgetvalue(r, i, 2),
            .provider = PQgetvalue(r, i, 10),
            .connection = PQgetvalue(r, i, 3),
            .model = PQgetvalue(r, i, 4),
            .scope_id = strtoll(PQgetvalue(r, i, 5), NULL, 10),
            .job_id = PQgetisnull(r, i, 6) ? NULL : PQgetvalue(r, i, 6),
            .sealed = PQgetvalue(r, i, 7)[0] == 't',
            .changes = PQgetvalue(r, i, 8),
            .changes_len = (size_t)PQgetlength(r, i, 8),
            .changed_at = PQgetvalue(r, i, 11),
        };
        jn_record_change_t *changes = NULL;
        size_t nc = 0;
        char why[256];
        if (jn_record_changes_parse(row.changes, row.changes_len, &changes, &nc, why, sizeof why))
            bench_die(why);
        if (count + nc > cap) {
            cap = (count + nc) * 2;
            events = realloc(events, cap * sizeof *events);
            if (!events)
                bench_die("out of memory");
        }
        for (size_t k = 0; k < nc; k++) {
            event_t *e = &events[count++];
            jn_buf_init(&e->key, 8 * 1024);
            jn_buf_init(&e->value, (size_t)max_bytes + 64 * 1024);
            memcpy(e->event_id, changes[k].event_id, sizeof e->event_id);
            bool omitted = false;
            if (jn_record_event_encode(&row, &changes[k], ring, (size_t)max_bytes, false, &e->key,
                                       &e->value, &omitted))
                bench_die("an event does not encode");
        }
        free(changes);
    }
    PQclear(r);
    *n = count;
    return events;
}

static void free_events(event_t *events, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jn_buf_cleanup(&events[i].key);
        jn_buf_cleanup(&events[i].value);
    }
    free(events);
}

/* Produces every event (copied, as the relay's are) and waits for every acknowledgement; returns
 * seconds. */
static double produce_direct(rd_kafka_t *rk, const char *topic, const event_t *events, size_t n)
{
    direct_acked = direct_failed = 0;
    double t0 = bench_now_s();
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY((void *)events[i].key.data, events[i].key.len),
                RD_KAFKA_V_VALUE((void *)events[i].value.data, events[i].value.len),
                RD_KAFKA_V_HEADER(JN_RECORD_EVENT_ID_HEADER, events[i].event_id, 36),
                RD_KAFKA_V_HEADER(JN_RECORD_EVENT_VERSION_HEADER, "1", 1), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                bench_die(rd_kafka_err2str(err));
            rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
    }
    while (direct_acked + direct_failed < (long long)n)
        rd_kafka_poll(rk, 50);
    double s = bench_now_s() - t0;
    if (direct_failed)
        bench_die("Kafka refused events of the direct side");
    return s;
}

/* ---- the relay side ---- */

/* Puts the held rows back into the outbox at once, for the running relay to find, and
 * waits until it published expect more events and the outbox is empty; returns seconds
 * from the commit of the rows. */
static double run_relay(jn_relay_t *relay, PGconn *conn, long long expect)
{
    long long before = jn_relay_published(relay);
    if (jn_pg_exec_script(conn, "INSERT INTO record_outbox SELECT * FROM bench_held; "
                                "TRUNCATE bench_held"))
        bench_die("cannot release the held rows");
    double t0 = bench_now_s(), deadline = t0 + 600;
    while (jn_relay_published(relay) - before < expect || count_outbox(conn) > 0) {
        if (bench_now_s() > deadline)
            bench_die("the relay did not drain the outbox in 10 minutes");
        usleep(2000);
    }
    return bench_now_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        bench_die("usage: records_relay <gateway url> <secret key> [changes per round] [rounds]");
    const char *gw = argv[1], *key = argv[2];
    int total = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 50000;
    int rounds = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 5;
    total = (total / BATCH) * BATCH;
    if (total <= 0 || rounds < 1 || rounds > MAX_ROUNDS)
        bench_die("changes must be at least 1000 and rounds 1-50");
    jn_log_init("bench", JN_LOG_ERROR);
    jn_config_t cfg;
    jn_config_load_or_exit(&cfg, JN_PROGRAM_WORKER);
    jn_crypto_keyring_t ring;
    jn_crypto_keyring_init(&ring, cfg.encryption_key);
    jn_pg_options_t opts;
    jn_pg_options_default(&opts, 4);
    opts.statement_timeout_ms = 600000;
    opts.query_deadline_ms = 610000;
    jn_pg_pool_t *pool = jn_pg_pool_new_with(cfg.database_url, "bench_relay", &opts);
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, 5000, &err);
    if (!conn)
        bench_die("cannot reach PostgreSQL");
    if (count_outbox(conn) != 0)
        bench_die("the outbox is not empty: run on a database of its own");

    /* An integration, a connection and a sync run. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    jn_sync_run_t run;
    bench_sync_run(conn, gw, key, &run);

    char topic[160];
    jn_kafka_topic_name(&cfg, "records", topic, sizeof topic);
    rd_kafka_t *rk = direct_producer(&cfg);
    printf("bench: %d changes per round (1 KB records, outbox rows of %d), %d rounds, topic %s, "
           "%d partitions\n",
           total, BATCH, rounds, topic, cfg.topic_partitions);
    fflush(stdout);

    /* One relay runs through all rounds, as in a worker: its producer and leases are warm.
     * A round's rows are moved aside as they are written and put back at once. */
    if (jn_pg_exec_script(conn, "DROP TABLE IF EXISTS bench_held; "
                                "CREATE TABLE bench_held (LIKE record_outbox)"))
        bench_die("cannot create the table of held rows");
    jn_relay_options_t ropts;
    jn_relay_options_from_config(&cfg, &ropts);
    ropts.threads = 1;
    jn_relay_t *relay = jn_relay_start(&cfg, &ring, pool, &ropts);
    if (!relay)
        bench_die("the relay did not start");
    double relay_eps[MAX_ROUNDS], direct_eps[MAX_ROUNDS], ratio[MAX_ROUNDS];
    /* Round 0 warms up both sides (connections, metadata, the topic's first segment) and
     * is not counted. */
    for (int round = 0; round <= rounds; round++) {
        for (int b = 0; b < total / BATCH; b++) {
            jn_buf_t t;
            jn_buf_init(&t, 8L * 1024 * 1024);
            jn_buf_append_str(&t, "[");
            for (int i = 0; i < BATCH; i++) {
                if (i)
                    jn_buf_append_str(&t, ",");
                make_record(&t, b * BATCH + i, round);
            }
            jn_buf_append_str(&t, "]");
            json_object *batch = json_tokener_parse(t.data);
            jn_buf_cleanup(&t);
            jn_records_counts_t counts;
            jn_field_error_t e;
            if (!batch || jn_records_save(conn, &ring, &run.writer, "Contact", batch, &counts, &e))
                bench_die("a batch did not save");
            json_object_put(batch);
            /* the relay may have published some already: those count for neither side */
            if (jn_pg_exec_script(conn, "WITH m AS (DELETE FROM record_outbox RETURNING *) "
                                        "INSERT INTO bench_held SELECT * FROM m"))
                bench_die("cannot hold the rows aside");
        }
        /* wait until the relay has nothing in flight from those races */
        for (long long seen = -1; seen != jn_relay_published(relay);) {
            seen = jn_relay_published(relay);
            usleep(300000);
        }
        size_t n = 0;
        event_t *events = encode_outbox(conn, &ring, cfg.relay_max_event_bytes, &n);
        if (n > (size_t)total || n < (size_t)total / 2)
            bench_die("the held rows are not the round's changes");
        double relay_s, direct_s;
        if (round % 2) {
            direct_s = produce_direct(rk, topic, events, n);
            relay_s = run_relay(relay, conn, (long long)n);
        } else {
            relay_s = run_relay(relay, conn, (long long)n);
            direct_s = produce_direct(rk, topic, events, n);
        }
        free_events(events, n);
        double re = (double)n / relay_s, de = (double)n / direct_s;
        printf("%s %d: relay %.0f events/s (%.2f s), direct %.0f events/s (%.2f s), ratio %.2f\n",
               round ? "round" : "warm-up", round, re, relay_s, de, direct_s, re / de);
        fflush(stdout);
        if (round) {
            relay_eps[round - 1] = re;
            direct_eps[round - 1] = de;
            ratio[round - 1] = re / de;
        }
    }
    printf("median over %d rounds: relay %.0f events/s, direct %.0f events/s, ratio %.2f\n", rounds,
           median(relay_eps, rounds), median(direct_eps, rounds), median(ratio, rounds));
    jn_relay_stop(relay);
    rd_kafka_destroy(rk);
    curl_global_cleanup();
    jn_sync_run_cleanup(&run);
    jn_pg_release(pool, conn);
    jn_pg_pool_free(pool);
    jn_config_cleanup(&cfg);
    return 0;
}
