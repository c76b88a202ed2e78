/*
 * relay.h - the outbox relay: publishes every committed record change from record_outbox
 * to <prefix>.records, then deletes it (docs/record-change-topics.md).
 *
 * Relays run as threads of junction-worker (JUNCTION_RELAY_THREADS, default one per
 * worker): workers are the processes that scale with the records being written, each
 * already holds PostgreSQL and Kafka, and relays share the outbox's 64 shards by leases
 * (store/outbox.h), so any number may run: each takes its fair share, a new one gets
 * shards within seconds, and the shards of one that died are taken when its lease expires.
 *
 * One relay thread loops: renew its leases (store/outbox.h), read the heads of its shards
 * in id order, publish each change as a version-1 event (store/record_events.h) keyed by
 * the record's identity with its own idempotent, gapless producer, wait for Kafka's
 * acknowledgements, and delete the rows all of whose events were acknowledged - per shard
 * only the leading rows, so that what follows a failure is published again after it, in
 * order. Delivery is at least once: a relay killed between the acknowledgement and the
 * delete leaves rows that are published again with the same event ids.
 *
 * Failures: a Kafka outage holds the cycle (messages never time out) while the relay
 * keeps its leases; a producer that failed for good (the gapless guarantee) is replaced
 * and the cycle's rows are published again; an event the broker refuses for its size is
 * sent once more on its own and, refused again, without its payload (the relay then also
 * lowers its size limit below what the broker refused); a row that cannot be read (a
 * sealed payload no key opens) holds its shard and is logged until it can.
 */
#ifndef JN_WORKER_RELAY_H
#define JN_WORKER_RELAY_H

#include "core/config.h"
#include "core/crypto.h"
#include "store/pg.h"

typedef struct jn_relay jn_relay_t;

typedef struct {
    int threads;          /* relay threads (each with its own producer and leases) */
    int lease_s;          /* the shard lease */
    long max_event_bytes; /* key + value + headers of one event; above, its payload goes */
    int batch_changes;    /* changes a cycle reads, over all its shards */
    int idle_poll_ms;     /* the longest pause between reads when there is nothing to do */
} jn_relay_options_t;

/* The options a worker's configuration asks for. */
void jn_relay_options_from_config(const jn_config_t *cfg, jn_relay_options_t *opts);

/* Starts opts->threads relays publishing to cfg's <prefix>.records, with the database
 * connections of pg and payloads opened with ring (both borrowed: they must outlive the
 * relay). NULL when threads is 0 or a producer cannot be made (logged). */
jn_relay_t *jn_relay_start(const jn_config_t *cfg, const jn_crypto_keyring_t *ring,
                           jn_pg_pool_t *pg, const jn_relay_options_t *opts);

/* Events acknowledged by Kafka so far, over all threads. */
long long jn_relay_published(const jn_relay_t *r);

/* Stops the threads (each finishes or abandons its cycle, deletes what was acknowledged,
 * gives its shards back), flushes and frees. NULL is fine. */
void jn_relay_stop(jn_relay_t *r);

#endif
