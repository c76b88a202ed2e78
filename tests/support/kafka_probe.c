/*
 * kafka_probe - a second process for Kafka integration tests.
 *
 *   kafka_probe consume <topic> <group> <count> <timeout_ms>
 *       joins <group>, prints each message value on its own line, marks it done, and
 *       exits 0 after <count> messages or 3 when the timeout passes first. With
 *       JN_PROBE_HEADER=<name> in the environment, each line starts with that header's
 *       value (or "-") and a tab.
 *   kafka_probe produce <topic> <key> <value>
 *       produces one message and exits 0 once the broker acknowledged it.
 *   kafka_probe produce-junk <topic> <key> <bytes>
 *       the same with a value of <bytes> bytes of quotes and backslashes (what JSON
 *       escaping grows most), for dead-letter tests.
 * Brokers come from JUNCTION_KAFKA_BROKERS, like the services.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "net/kafka.h"
#include "core/log.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
    jn_log_init("kafka_probe", JN_LOG_WARN);
    jn_config_t cfg;
    jn_config_load_or_exit(&cfg, JN_PROGRAM_TOOL);
    if (argc == 6 && strcmp(argv[1], "consume") == 0) {
        const char *topics[] = {argv[2]};
        jn_kafka_consumer_t *c = jn_kafka_consumer_new(&cfg, argv[3], topics, 1);
        if (!c)
            return 2;
        long want = strtol(argv[4], NULL, 10);
        long until = now_ms() + strtol(argv[5], NULL, 10);
        long got = 0;
        while (got < want && now_ms() < until) {
            jn_kafka_message_t msg;
            if (jn_kafka_consumer_poll(c, 200, &msg) != JN_OK)
                continue;
            const char *header = getenv("JN_PROBE_HEADER");
            if (header && *header) {
                char value[1024];
                printf("%s\t",
                       jn_kafka_message_header(&msg, header, value, sizeof value) ? value : "-");
            }
            printf("%.*s\n", (int)msg.value_len, (const char *)msg.value);
            fflush(stdout);
            jn_kafka_consumer_done(c, &msg);
            got++;
        }
        jn_kafka_consumer_free(c);
        return got == want ? 0 : 3;
    }
    if (argc == 5 && strcmp(argv[1], "produce") == 0) {
        jn_kafka_producer_t *p = jn_kafka_producer_new(&cfg, "kafka_probe");
        if (!p)
            return 2;
        jn_err_t err = jn_kafka_produce_sync(p, argv[2], argv[3], strlen(argv[3]), argv[4],
                                             strlen(argv[4]), 30000);
        jn_kafka_producer_free(p, 5000);
        return err == JN_OK ? 0 : 4;
    }
    if (argc == 5 && strcmp(argv[1], "produce-junk") == 0) {
        long n = strtol(argv[4], NULL, 10);
        if (n < 1 || n > (8L << 20))
            return 1;
        char *value = malloc((size_t)n);
        if (!value)
            return 2;
        for (long i = 0; i < n; i++)
            value[i] = i % 2 ? '"' : '\\';
        jn_kafka_producer_t *p = jn_kafka_producer_new(&cfg, "kafka_probe");
        if (!p)
            return 2;
        jn_err_t err =
            jn_kafka_produce_sync(p, argv[2], argv[3], strlen(argv[3]), value, (size_t)n, 30000);
        jn_kafka_producer_free(p, 5000);
        free(value);
        return err == JN_OK ? 0 : 4;
    }
    fprintf(stderr, "usage: kafka_probe consume <topic> <group> <count> <timeout_ms>\n"
                    "       kafka_probe produce <topic> <key> <value>\n"
                    "       kafka_probe produce-junk <topic> <key> <bytes>\n");
    return 1;
}
