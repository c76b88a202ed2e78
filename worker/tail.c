/*
 * junction-tail: follows <prefix>.records and prints its record-change events, filtered by
 * environment, integration, connection, model and action (docs/record-change-topics.md).
 *
 *   junction-tail [--group ID] [--from-beginning] [--integration KEY] [--connection ID]
 *                 [--model NAME] [--environment NAME] [--action ADDED|UPDATED|DELETED]
 *                 [--format json|text] [--count N] [--idle-exit-ms MS]
 *                 [--brokers HOST:PORT,...] [--prefix PREFIX]
 *
 * With --group it is a member of that consumer group: it resumes where the group stopped
 * (a new group starts at the beginning of the topic) and commits what it printed, so
 * several tails with one group share the partitions. Without it, it reads every partition
 * outside any group, from now on (or from the beginning). json prints each event as
 * published, one a line; text prints one summary line per event. Brokers and prefix come
 * from JUNCTION_KAFKA_BROKERS and JUNCTION_TOPIC_PREFIX unless given. It stops on SIGINT or
 * SIGTERM, after --count events, or after --idle-exit-ms without a message; the exit
 * status is 0, or 1 when the topic cannot be read, 2 on bad arguments.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "net/kafka.h"
#include "net/service.h"

typedef struct {
    const char *group;
    bool from_beginning;
    const char *integration, *connection, *model, *environment, *action;
    bool text;
    long count;
    long idle_exit_ms;
    const char *brokers, *prefix;
} options_t;

static int usage(const char *why)
{
    fprintf(stderr,
            "junction-tail: %s\n"
            "usage: junction-tail [--group ID] [--from-beginning] [--integration KEY]\n"
            "         [--connection ID] [--model NAME] [--environment NAME]\n"
            "         [--action ADDED|UPDATED|DELETED] [--format json|text] [--count N]\n"
            "         [--idle-exit-ms MS] [--brokers HOST:PORT,...] [--prefix PREFIX]\n",
            why);
    return 2;
}

static bool number(const char *s, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, options_t *o)
{
    memset(o, 0, sizeof *o);
    o->brokers = getenv("JUNCTION_KAFKA_BROKERS");
    o->prefix = getenv("JUNCTION_TOPIC_PREFIX");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--from-beginning") == 0) {
            o->from_beginning = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return usage("follows the record-change topic");
        if (i + 1 >= argc)
            return usage("an option needs a value");
        const char *v = argv[++i];
        if (strcmp(a, "--group") == 0)
            o->group = v;
        else if (strcmp(a, "--integration") == 0)
            o->integration = v;
        else if (strcmp(a, "--connection") == 0)
            o->connection = v;
        else if (strcmp(a, "--model") == 0)
            o->model = v;
        else if (strcmp(a, "--environment") == 0)
            o->environment = v;
        else if (strcmp(a, "--action") == 0) {
            if (strcmp(v, "ADDED") && strcmp(v, "UPDATED") && strcmp(v, "DELETED"))
                return usage("--action must be ADDED, UPDATED or DELETED");
            o->action = v;
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "json") && strcmp(v, "text"))
                return usage("--format must be json or text");
            o->text = strcmp(v, "text") == 0;
        } else if (strcmp(a, "--count") == 0) {
            if (!number(v, &o->count) || o->count == 0)
                return usage("--count must be a positive number");
        } else if (strcmp(a, "--idle-exit-ms") == 0) {
            if (!number(v, &o->idle_exit_ms) || o->idle_exit_ms == 0)
                return usage("--idle-exit-ms must be a positive number");
        } else if (strcmp(a, "--brokers") == 0)
            o->brokers = v;
        else if (strcmp(a, "--prefix") == 0)
            o->prefix = v;
        else
            return usage("unknown option");
    }
    if (!o->brokers || !*o->brokers)
        return usage("no brokers: set JUNCTION_KAFKA_BROKERS or give --brokers");
    if (!o->prefix || !*o->prefix)
        o->prefix = "junction";
    return 0;
}

static const char *member(json_object *event, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(event, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool matches(const char *want, const char *got)
{
    return !want || (got && strcmp(want, got) == 0);
}

/* Prints the event when it passes the filters; true when printed. */
static bool show(const options_t *o, const void *value, size_t len)
{
    json_tokener *tok = json_tokener_new();
    json_object *event = json_tokener_parse_ex(tok, value, (int)len);
    json_tokener_free(tok);
    if (!event || !json_object_is_type(event, json_type_object)) {
        json_object_put(event);
        fprintf(stderr, "junction-tail: skipped a message that is not a JSON object\n");
        return false;
    }
    bool ok = matches(o->integration, member(event, "provider_config_key")) &&
              matches(o->connection, member(event, "connection_id")) &&
              matches(o->model, member(event, "model")) &&
              matches(o->environment, member(event, "environment")) &&
              matches(o->action, member(event, "action"));
    if (ok && o->text) {
        json_object *seq = json_object_object_get(event, "seq");
        const char *omitted = member(event, "payload_omitted");
        printf("%s %-7s %s/%s/%s %s %s seq=%lld cursor=%s event=%s%s\n",
               member(event, "changed_at") ? member(event, "changed_at") : "-",
               member(event, "action") ? member(event, "action") : "?",
               member(event, "environment") ? member(event, "environment") : "-",
               member(event, "provider_config_key") ? member(event, "provider_config_key") : "-",
               member(event, "connection_id") ? member(event, "connection_id") : "-",
               member(event, "model") ? member(event, "model") : "-",
               member(event, "record_id") ? member(event, "record_id") : "-",
               (long long)json_object_get_int64(seq),
               member(event, "cursor") ? member(event, "cursor") : "-",
               member(event, "event_id") ? member(event, "event_id") : "-",
               omitted ? " (payload omitted)" : "");
    } else if (ok) {
        fwrite(value, 1, len, stdout);
        fputc('\n', stdout);
    }
    json_object_put(event);
    return ok;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    options_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    jn_log_init("junction-tail", JN_LOG_WARN);
    jn_service_install_signals();
    setvbuf(stdout, NULL, _IOLBF, 0);
    jn_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    if (snprintf(cfg.kafka_brokers, sizeof cfg.kafka_brokers, "%s", o.brokers) >=
            (int)sizeof cfg.kafka_brokers ||
        snprintf(cfg.topic_prefix, sizeof cfg.topic_prefix, "%s", o.prefix) >=
            (int)sizeof cfg.topic_prefix)
        return usage("--brokers or --prefix is too long");
    char host[64] = "tail";
    gethostname(host, sizeof host - 1);
    snprintf(cfg.instance_id, sizeof cfg.instance_id, "junction-tail-%s-%ld", host, (long)getpid());
    char topic[160];
    jn_kafka_topic_name(&cfg, "records", topic, sizeof topic);
    const char *topics[] = {topic};
    jn_kafka_consumer_t *c =
        o.group ? jn_kafka_consumer_new(&cfg, o.group, topics, 1)
                : jn_kafka_consumer_new_reader(&cfg, topic, !o.from_beginning, 10000);
    if (!c) {
        fprintf(stderr, "junction-tail: cannot read %s from %s\n", topic, o.brokers);
        return 1;
    }
    long printed = 0;
    long long last = now_ms();
    while (!jn_service_stopping() && (!o.count || printed < o.count)) {
        jn_kafka_message_t m;
        if (jn_kafka_consumer_poll(c, 200, &m) != JN_OK) {
            if (o.idle_exit_ms && now_ms() - last >= o.idle_exit_ms)
                break;
            continue;
        }
        last = now_ms();
        printed += show(&o, m.value, m.value_len);
        if (o.group)
            jn_kafka_consumer_done(c, &m);
        else
            jn_kafka_consumer_forget(&m);
    }
    fflush(stdout);
    jn_kafka_consumer_free(c);
    return 0;
}
