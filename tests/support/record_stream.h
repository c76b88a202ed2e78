/*
 * record_stream.h - what the record-change topic tests share: reading <prefix>.records
 * from its beginning, and the oracle that judges what was read (Kafka Connect's
 * sequence-number checks): every committed change present, duplicates only as exact
 * copies with the same event id, each record's changes in commit order, one partition per
 * record, and each event valid against docs/record-change-event.schema.json.
 */
#ifndef JN_TEST_RECORD_STREAM_H
#define JN_TEST_RECORD_STREAM_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "net/kafka.h"
#include "sync_fixture.h"

typedef struct {
    char event_id[37];  /* from the junction-event-id header */
    char *key, *value;  /* as read (new strings) */
    json_object *event; /* value parsed; NULL when it is not JSON */
    int partition;
    long long offset;
    long long seq; /* the event's seq, 0 when absent */
} jn_test_event_t;

typedef struct {
    jn_kafka_consumer_t *consumer;
    jn_test_event_t *events; /* in arrival order */
    size_t count, cap;
} jn_test_stream_t;

/* Starts reading <prefix>.records from its beginning. */
void jn_test_stream_open(jn_test_stream_t *s, const char *prefix);
void jn_test_stream_close(jn_test_stream_t *s);

/* Reads until at least want distinct event ids arrived or timeout_ms passed; returns how
 * many distinct event ids the stream holds. */
size_t jn_test_stream_read(jn_test_stream_t *s, size_t want, int timeout_ms);

/* Reads for quiet_ms more: what arrives meanwhile (late duplicates, strays) is kept. */
void jn_test_stream_drain(jn_test_stream_t *s, int quiet_ms);

/* Distinct event ids read so far. */
size_t jn_test_stream_distinct(const jn_test_stream_t *s);

/* The oracle, failing the test on a violation: duplicates are byte-equal copies of the
 * first; within a key, first occurrences have strictly increasing seq; a key stays in one
 * partition; the event id header equals the value's. Returns how many duplicates. */
size_t jn_test_stream_check(const jn_test_stream_t *s);

/* Fails unless every change the fixture's database ever committed (seq 1..last_seq of
 * every scope) arrived. */
void jn_test_stream_expect_all(const jn_test_stream_t *s, jn_test_syncs_t *f);

/* The first event of event_id, or NULL. */
const jn_test_event_t *jn_test_stream_find(const jn_test_stream_t *s, const char *event_id);

/* Validates every event read against docs/record-change-event.schema.json with Python's
 * jsonschema (Draft 2020-12); fails the test on the first invalid one. */
void jn_test_stream_validate(const jn_test_stream_t *s, const char *work_dir);

/* Runs the schema validator over the given JSON lines; returns its exit status. */
int jn_test_validate_lines(const char *const *lines, size_t n, const char *work_dir);

#endif
