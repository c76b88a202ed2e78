/*
 * Integration: a message produced by one process is consumed by a consumer-group member
 * in another, against the real broker; the program's topics are created at start-up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "harness.h"
#include "net/kafka.h"
#include "core/log.h"

static jn_config_t cfg;

static int setup(void **state)
{
    (void)state;
    jn_log_init("test_kafka", JN_LOG_WARN);
    jn_config_load_or_exit(&cfg, JN_PROGRAM_TOOL);
    return 0;
}

static void test_produced_in_one_process_consumed_in_another(void **state)
{
    (void)state;
    char topic[96], group[96], value[96];
    jn_test_unique("jt_roundtrip", topic, sizeof topic);
    jn_test_unique("jt_group", group, sizeof group);
    jn_test_unique("payload", value, sizeof value);

    jn_kafka_producer_t *p = jn_kafka_producer_new(&cfg, "test_kafka");
    assert_non_null(p);
    assert_int_equal(jn_kafka_create_topic(p, topic, 3, 1, 15000), JN_OK);
    /* Creating it again is harmless. */
    assert_int_equal(jn_kafka_create_topic(p, topic, 3, 1, 15000), JN_OK);

    /* The consumer runs in a separate process and joins the group first. */
    jn_test_process_t consumer;
    const char *argv[] = {KAFKA_PROBE_BIN, "consume", topic, group, "2", "60000", NULL};
    jn_test_spawn(&consumer, argv, NULL, topic);

    /* One message from this process, one from a third process. */
    assert_int_equal(jn_kafka_produce_sync(p, topic, "conn-1", 6, value, strlen(value), 30000),
                     JN_OK);
    jn_test_process_t producer;
    const char *pargv[] = {KAFKA_PROBE_BIN,        "produce", topic, "conn-2",
                           "from-another-process", NULL};
    char plog[128];
    snprintf(plog, sizeof plog, "%s_producer", topic);
    jn_test_spawn(&producer, pargv, NULL, plog);
    assert_true(jn_test_process_wait(&producer, 60000));
    assert_int_equal(producer.exit_status, 0);

    assert_true(jn_test_process_wait(&consumer, 70000));
    char *out = jn_test_read_log(&consumer);
    if (consumer.exit_status != 0)
        fail_msg("consumer exited %d:\n%s", consumer.exit_status, out);
    assert_non_null(strstr(out, value));
    assert_non_null(strstr(out, "from-another-process"));
    free(out);
    jn_kafka_producer_free(p, 5000);
}

static void test_ensure_topics_creates_every_kind(void **state)
{
    (void)state;
    jn_config_t mine = cfg;
    jn_test_unique("jt_prefix", mine.topic_prefix, sizeof mine.topic_prefix);
    mine.topic_partitions = 2;
    jn_kafka_producer_t *p = jn_kafka_producer_new(&mine, "test_kafka");
    assert_int_equal(jn_kafka_ensure_topics(p, &mine, 15000), JN_OK);
    assert_int_equal(jn_kafka_ensure_topics(p, &mine, 15000), JN_OK);
    /* Every topic accepts a message now (auto-creation is off on the broker). */
    for (size_t i = 0; i < jn_kafka_topic_kind_count; i++) {
        char topic[160];
        jn_kafka_topic_name(&mine, jn_kafka_topic_kinds[i], topic, sizeof topic);
        assert_int_equal(jn_kafka_produce_sync(p, topic, "k", 1, "v", 1, 30000), JN_OK);
    }
    jn_kafka_producer_free(p, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produced_in_one_process_consumed_in_another),
        cmocka_unit_test(test_ensure_topics_creates_every_kind),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
