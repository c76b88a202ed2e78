/*
 * kafka.h - Kafka producer, consumer-group consumer and topic set-up (librdkafka).
 *
 * Producer: idempotent, acks=all, lz4; delivery reports are served by a background
 * thread, so jn_kafka_produce_sync() can wait for the broker's acknowledgement.
 * Consumer: a consumer-group member with cooperative-sticky assignment; offsets are
 * stored only when the caller says a message is done (at-least-once: a crash before
 * that redelivers the message).
 * Topics: <prefix>.actions, .syncs, .webhooks, .deliveries, .records, .dlq, created at
 * start-up if missing.
 * All handles are thread-safe as librdkafka's are, except a consumer, which belongs to
 * the thread that polls it.
 */
#ifndef JN_KAFKA_H
#define JN_KAFKA_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

typedef struct jn_kafka_producer jn_kafka_producer_t;
typedef struct jn_kafka_consumer jn_kafka_consumer_t;

/* The topic kinds; the full name is "<prefix>.<kind>". */
extern const char *const jn_kafka_topic_kinds[];
extern const size_t jn_kafka_topic_kind_count;

/* Writes "<prefix>.<kind>" into out. */
void jn_kafka_topic_name(const jn_config_t *cfg, const char *kind, char *out, size_t cap);

/* Creates a producer for cfg's brokers. NULL (and a log line) when librdkafka refuses
 * the configuration; brokers need not be up yet. */
jn_kafka_producer_t *jn_kafka_producer_new(const jn_config_t *cfg, const char *client_id);

/* How a producer trades latency for throughput, and what it does on a failure. */
typedef struct {
    int linger_ms;          /* how long a message waits for others to share its batch */
    int message_timeout_ms; /* a message unacknowledged this long fails; 0: never */
    long max_message_bytes; /* the largest message accepted locally; 0: librdkafka's 1 MB */
    bool gapless;           /* a failure that would leave a gap in a partition (a message
                               refused, later ones accepted) stops the producer for good
                               instead: jn_kafka_producer_failed() turns true, and nothing
                               produced after the refused message is written */
} jn_kafka_producer_options_t;

/* jn_kafka_producer_new with these options (idempotent, acks=all and lz4 as always). */
jn_kafka_producer_t *jn_kafka_producer_new_with(const jn_config_t *cfg, const char *client_id,
                                                const jn_kafka_producer_options_t *opts);

/* True once the producer has failed for good (a gapless producer's refused message, or
 * another fatal error): it writes nothing more, and every message it holds fails. Free it
 * and make another. why (may be NULL) receives librdkafka's reason. */
bool jn_kafka_producer_failed(jn_kafka_producer_t *p, char *why, size_t cap);

/* Flushes outstanding messages for up to timeout_ms, then frees. NULL is fine. */
void jn_kafka_producer_free(jn_kafka_producer_t *p, int timeout_ms);

/* Called once per message from the delivery thread: err JN_OK when the broker stored it. */
typedef void (*jn_kafka_delivery_fn)(jn_err_t err, void *opaque);

/* Queues a message (copied). JN_ERR_KAFKA_UNAVAILABLE when the local queue is full,
 * JN_ERR_TOO_LARGE for a message above the producer's (or, in the delivery report, the
 * broker's) size limit, JN_ERR_KAFKA on an unknown topic or a failed producer. on_delivery
 * may be NULL. */
jn_err_t jn_kafka_produce(jn_kafka_producer_t *p, const char *topic, const void *key,
                          size_t key_len, const void *value, size_t value_len,
                          jn_kafka_delivery_fn on_delivery, void *opaque);

/* jn_kafka_produce with message headers: headers is a NULL-terminated list of name, value,
 * name, value, ... (strings, copied); NULL for none. */
jn_err_t jn_kafka_produce_with_headers(jn_kafka_producer_t *p, const char *topic, const void *key,
                                       size_t key_len, const void *value, size_t value_len,
                                       const char *const *headers, jn_kafka_delivery_fn on_delivery,
                                       void *opaque);

/* Produces and waits up to timeout_ms for the acknowledgement. JN_OK means the broker
 * has the message; JN_ERR_TIMEOUT means it may still arrive. */
jn_err_t jn_kafka_produce_sync(jn_kafka_producer_t *p, const char *topic, const void *key,
                               size_t key_len, const void *value, size_t value_len, int timeout_ms);

/* Waits until every queued message is delivered or timeout_ms passes. */
jn_err_t jn_kafka_flush(jn_kafka_producer_t *p, int timeout_ms);

/* Asks the cluster for its metadata within timeout_ms: JN_OK when a broker answers. */
jn_err_t jn_kafka_ping(jn_kafka_producer_t *p, int timeout_ms);

/* Creates the job and event topics that do not exist yet, with cfg's partition count and
 * replication factor. Existing topics are left as they are. */
jn_err_t jn_kafka_ensure_topics(jn_kafka_producer_t *p, const jn_config_t *cfg, int timeout_ms);

/* Creates one topic if missing (used by tests and ensure_topics). */
jn_err_t jn_kafka_create_topic(jn_kafka_producer_t *p, const char *topic, int partitions,
                               int replication, int timeout_ms);

/* A message borrowed from the consumer; valid until jn_kafka_consumer_done(). */
typedef struct {
    const char *topic;
    int partition;
    long long offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    void *handle; /* rd_kafka_message_t */
} jn_kafka_message_t;

/* Joins group_id and subscribes to topics. NULL with a log line on bad configuration. */
jn_kafka_consumer_t *jn_kafka_consumer_new(const jn_config_t *cfg, const char *group_id,
                                           const char *const *topics, size_t topic_count);

/* A consumer outside any group that reads every partition of topic from its beginning
 * (or, with from_end, from the messages that arrive from now on), for tools that follow a
 * topic. The partitions are looked up within timeout_ms: NULL (logged) when the topic is
 * unknown or no broker answers. Nothing is committed: release messages with
 * jn_kafka_consumer_forget. */
jn_kafka_consumer_t *jn_kafka_consumer_new_reader(const jn_config_t *cfg, const char *topic,
                                                  bool from_end, int timeout_ms);

/* Waits up to timeout_ms for a message. JN_OK and *msg filled; JN_ERR_TIMEOUT when
 * nothing came; transient errors are logged and reported as JN_ERR_TIMEOUT. */
jn_err_t jn_kafka_consumer_poll(jn_kafka_consumer_t *c, int timeout_ms, jn_kafka_message_t *msg);

/* Copies the value of msg's last header called name into out (NUL-terminated, cut to
 * cap). False when msg has no such header. */
bool jn_kafka_message_header(const jn_kafka_message_t *msg, const char *name, char *out,
                             size_t cap);

/* Marks msg processed (its offset will be committed) and releases it. */
void jn_kafka_consumer_done(jn_kafka_consumer_t *c, jn_kafka_message_t *msg);

/* Releases msg without storing its offset. Only safe while no later message of the same
 * partition is marked done (offsets commit as a high-water mark): the job layer uses it
 * when it is about to stop consuming, so the message is delivered again after a restart
 * or rebalance. */
void jn_kafka_consumer_release(jn_kafka_message_t *msg);

/* Stores next_offset (the offset of the first message not yet done) for commit, for a
 * consumer that finishes messages out of order and tracks the low-water mark itself. */
void jn_kafka_consumer_store(jn_kafka_consumer_t *c, const char *topic, int partition,
                             long long next_offset);

/* Pauses (or resumes) fetching from every assigned partition; polling goes on, so the
 * member stays in its group. */
void jn_kafka_consumer_pause(jn_kafka_consumer_t *c, bool pause);

/* Releases msg without storing anything (the caller stores offsets itself). */
void jn_kafka_consumer_forget(jn_kafka_message_t *msg);

/* Commits stored offsets, leaves the group and frees. NULL is fine. */
void jn_kafka_consumer_free(jn_kafka_consumer_t *c);

#endif
