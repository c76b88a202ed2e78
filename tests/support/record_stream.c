/*
 * record_stream.c - reading and judging <prefix>.records in tests (see record_stream.h).
 */
#include "record_stream.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

void jn_test_stream_open(jn_test_stream_t *s, const char *prefix)
{
    memset(s, 0, sizeof *s);
    jn_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.kafka_brokers, sizeof cfg.kafka_brokers, "%s",
             jn_test_env("JUNCTION_KAFKA_BROKERS"));
    snprintf(cfg.topic_prefix, sizeof cfg.topic_prefix, "%s", prefix);
    snprintf(cfg.instance_id, sizeof cfg.instance_id, "test-%ld", (long)getpid());
    char topic[160];
    jn_kafka_topic_name(&cfg, "records", topic, sizeof topic);
    s->consumer = jn_kafka_consumer_new_reader(&cfg, topic, false, 20000);
    if (!s->consumer)
        fail_msg("cannot read %s", topic);
}

void jn_test_stream_close(jn_test_stream_t *s)
{
    jn_kafka_consumer_free(s->consumer);
    for (size_t i = 0; i < s->count; i++) {
        free(s->events[i].key);
        free(s->events[i].value);
        json_object_put(s->events[i].event);
    }
    free(s->events);
    memset(s, 0, sizeof *s);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t jn_test_stream_distinct(const jn_test_stream_t *s)
{
    if (!s->count)
        return 0;
    const char **ids = malloc(s->count * sizeof *ids);
    for (size_t i = 0; i < s->count; i++)
        ids[i] = s->events[i].event_id;
    qsort(ids, s->count, sizeof *ids, by_id);
    size_t n = 1;
    for (size_t i = 1; i < s->count; i++)
        n += strcmp(ids[i], ids[i - 1]) != 0;
    free(ids);
    return n;
}

/* Polls one message into s; false when none came within timeout_ms. */
static bool poll_one(jn_test_stream_t *s, int timeout_ms)
{
    jn_kafka_message_t m;
    if (jn_kafka_consumer_poll(s->consumer, timeout_ms, &m) != JN_OK)
        return false;
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->events = realloc(s->events, s->cap * sizeof *s->events);
    }
    jn_test_event_t *e = &s->events[s->count++];
    memset(e, 0, sizeof *e);
    jn_kafka_message_header(&m, "junction-event-id", e->event_id, sizeof e->event_id);
    e->key = strndup(m.key ? m.key : "", m.key_len);
    e->value = strndup(m.value ? m.value : "", m.value_len);
    e->partition = m.partition;
    e->offset = m.offset;
    e->event = json_tokener_parse(e->value);
    json_object *seq = NULL;
    if (e->event && json_object_object_get_ex(e->event, "seq", &seq))
        e->seq = json_object_get_int64(seq);
    jn_kafka_consumer_forget(&m);
    return true;
}

size_t jn_test_stream_read(jn_test_stream_t *s, size_t want, int timeout_ms)
{
    long deadline = jn_test_now_ms() + timeout_ms;
    size_t distinct = jn_test_stream_distinct(s);
    size_t since_count = 0;
    while (distinct < want && jn_test_now_ms() < deadline) {
        if (poll_one(s, 200))
            since_count++;
        /* Counting distinct ids sorts: do it every thousand messages or when idle. */
        if (since_count >= 1000 || (since_count && s->count >= want)) {
            distinct = jn_test_stream_distinct(s);
            since_count = 0;
        }
    }
    return jn_test_stream_distinct(s);
}

void jn_test_stream_drain(jn_test_stream_t *s, int quiet_ms)
{
    long deadline = jn_test_now_ms() + quiet_ms;
    while (jn_test_now_ms() < deadline)
        poll_one(s, 100);
}

const jn_test_event_t *jn_test_stream_find(const jn_test_stream_t *s, const char *event_id)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->events[i].event_id, event_id) == 0)
            return &s->events[i];
    }
    return NULL;
}

static const jn_test_stream_t *sort_stream;

/* By key, then partition and offset: each key's events in the order a consumer reads
 * them. */
static int by_key(const void *a, const void *b)
{
    const jn_test_event_t *x = &sort_stream->events[*(const size_t *)a];
    const jn_test_event_t *y = &sort_stream->events[*(const size_t *)b];
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    if (x->partition != y->partition)
        return x->partition - y->partition;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

size_t jn_test_stream_check(const jn_test_stream_t *s)
{
    size_t *order = malloc((s->count ? s->count : 1) * sizeof *order);
    for (size_t i = 0; i < s->count; i++)
        order[i] = i;
    sort_stream = s;
    qsort(order, s->count, sizeof *order, by_key);
    size_t dups = 0;
    for (size_t g = 0; g < s->count;) {
        size_t end = g;
        while (end < s->count && strcmp(s->events[order[end]].key, s->events[order[g]].key) == 0)
            end++;
        long long last = 0;
        for (size_t i = g; i < end; i++) {
            const jn_test_event_t *e = &s->events[order[i]];
            if (!e->event)
                fail_msg("not JSON: %s", e->value);
            const char *id = json_object_get_string(json_object_object_get(e->event, "event_id"));
            if (!id || strcmp(id, e->event_id) != 0)
                fail_msg("header event id %s, value's %s", e->event_id, id ? id : "(none)");
            if (e->partition != s->events[order[g]].partition)
                fail_msg("key %s in partitions %d and %d", e->key, e->partition,
                         s->events[order[g]].partition);
            const jn_test_event_t *first = NULL;
            for (size_t j = g; j < i && !first; j++) {
                if (strcmp(s->events[order[j]].event_id, e->event_id) == 0)
                    first = &s->events[order[j]];
            }
            if (first) {
                if (strcmp(first->value, e->value) != 0)
                    fail_msg("event %s published twice with different contents:\n%s\n%s",
                             e->event_id, first->value, e->value);
                dups++;
                continue;
            }
            if (e->seq <= last)
                fail_msg("key %s: seq %lld after %lld (offset %lld): out of order", e->key, e->seq,
                         last, e->offset);
            last = e->seq;
        }
        g = end;
    }
    free(order);
    return dups;
}

void jn_test_stream_expect_all(const jn_test_stream_t *s, jn_test_syncs_t *f)
{
    PGconn *conn = jn_test_syncs_db(f);
    PGresult *r = PQexec(conn, "SELECT records_event_id(s.id, g)::text FROM record_scopes s, "
                               "generate_series(1, s.last_seq) g ORDER BY 1");
    jn_test_syncs_release(f, conn);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("expected events: %s", PQresultErrorMessage(r));
    int n = PQntuples(r);
    const char **got = malloc((s->count ? s->count : 1) * sizeof *got);
    for (size_t i = 0; i < s->count; i++)
        got[i] = s->events[i].event_id;
    qsort(got, s->count, sizeof *got, by_id);
    size_t j = 0, missing = 0;
    const char *first_missing = NULL;
    for (int i = 0; i < n; i++) {
        const char *want = PQgetvalue(r, i, 0);
        while (j < s->count && strcmp(got[j], want) < 0)
            j++;
        if (j >= s->count || strcmp(got[j], want) != 0) {
            if (!missing++)
                first_missing = want;
        }
    }
    if (missing)
        fail_msg("%zu of %d committed changes never arrived (first: %s); %zu events read", missing,
                 n, first_missing, s->count);
    free(got);
    PQclear(r);
}

int jn_test_validate_lines(const char *const *lines, size_t n, const char *work_dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/events-%ld.jsonl", work_dir, (long)getpid());
    FILE *out = fopen(path, "w");
    if (!out)
        fail_msg("cannot write %s", path);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s\n", lines[i]);
    fclose(out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 tests/support/validate_events.py docs/record-change-event.schema.json '%s'",
             path);
    int rc = jn_test_run(cmd);
    unlink(path);
    return rc;
}

void jn_test_stream_validate(const jn_test_stream_t *s, const char *work_dir)
{
    const char **lines = malloc((s->count ? s->count : 1) * sizeof *lines);
    for (size_t i = 0; i < s->count; i++)
        lines[i] = s->events[i].value;
    int rc = jn_test_validate_lines(lines, s->count, work_dir);
    free(lines);
    if (rc != 0)
        fail_msg("events do not validate against the schema (exit status %d)", rc);
}
