/*
 * dispatch.c - job consumption for junction-worker.
 *
 * Job envelope (docs/topics.md): {"version":1,"job_id":"…","kind":"sync|action|webhook",
 * …}. No job kind has a handler yet, so every message is dead-lettered with a reason;
 * kinds gain handlers as they are built.
 */
#include "dispatch.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"

#define DLQ_TIMEOUT_MS 30000

/* Returns the reason the message cannot be run, or NULL when it can. */
static const char *job_problem(const jn_kafka_message_t *msg)
{
    if (msg->value_len == 0)
        return "empty message";
    json_tokener *tok = json_tokener_new();
    json_object *job = json_tokener_parse_ex(tok, msg->value, (int)msg->value_len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    const char *problem = NULL;
    json_object *v;
    if (!job || !complete)
        problem = "not valid JSON";
    else if (!json_object_is_type(job, json_type_object))
        problem = "not a JSON object";
    else if (!json_object_object_get_ex(job, "version", &v) ||
             !json_object_is_type(v, json_type_int) || json_object_get_int(v) != 1)
        problem = "unsupported or missing version (expected 1)";
    else if (!json_object_object_get_ex(job, "job_id", &v) ||
             !json_object_is_type(v, json_type_string))
        problem = "missing job_id";
    else
        problem = "no handler for this job kind in this worker version";
    json_object_put(job);
    return problem;
}

static jn_err_t dead_letter(jn_engine_t *svc, const jn_kafka_message_t *msg, const char *reason)
{
    char dlq[160];
    jn_kafka_topic_name(&svc->config, "dlq", dlq, sizeof dlq);
    json_object *entry = json_object_new_object();
    json_object_object_add(entry, "version", json_object_new_int(1));
    json_object_object_add(entry, "reason", json_object_new_string(reason));
    json_object_object_add(entry, "topic", json_object_new_string(msg->topic));
    json_object_object_add(entry, "partition", json_object_new_int(msg->partition));
    json_object_object_add(entry, "offset", json_object_new_int64(msg->offset));
    json_object_object_add(
        entry, "payload",
        json_object_new_string_len(msg->value ? msg->value : "", (int)msg->value_len));
    size_t len = 0;
    const char *text = json_object_to_json_string_length(entry, JSON_C_TO_STRING_PLAIN, &len);
    jn_err_t err = jn_kafka_produce_sync(svc->producer, dlq, msg->key, msg->key_len, text, len,
                                         DLQ_TIMEOUT_MS);
    json_object_put(entry);
    return err;
}

int jn_dispatch_run(jn_engine_t *svc)
{
    char actions[160], syncs[160], webhooks[160];
    jn_kafka_topic_name(&svc->config, "actions", actions, sizeof actions);
    jn_kafka_topic_name(&svc->config, "syncs", syncs, sizeof syncs);
    jn_kafka_topic_name(&svc->config, "webhooks", webhooks, sizeof webhooks);
    const char *topics[] = {actions, syncs, webhooks};
    char group[160];
    snprintf(group, sizeof group, "%s.workers", svc->config.topic_prefix);

    jn_kafka_consumer_t *consumer = jn_kafka_consumer_new(&svc->config, group, topics, 3);
    if (!consumer)
        return 1;
    jn_metric_t *dead = jn_metrics_counter("jn_worker_dead_lettered_total",
                                           "Job messages sent to the dead-letter topic", NULL);
    while (!jn_service_stopping()) {
        jn_kafka_message_t msg;
        if (jn_kafka_consumer_poll(consumer, 500, &msg) != JN_OK)
            continue;
        const char *problem = job_problem(&msg);
        jn_log_warn("dispatch", "%s[%d]@%lld: %s; sending to the dead-letter topic", msg.topic,
                    msg.partition, msg.offset, problem);
        /* Retry the dead-lettering until it succeeds or we stop: the offset must not move
         * past a message that is neither handled nor kept. */
        jn_err_t err;
        while ((err = dead_letter(svc, &msg, problem)) != JN_OK && !jn_service_stopping())
            jn_log_warn("dispatch", "dead-lettering failed (%s); retrying", jn_err_str(err));
        if (err == JN_OK) {
            jn_metric_inc(dead);
            jn_kafka_consumer_done(consumer, &msg);
        } else {
            jn_kafka_consumer_release(&msg);
        }
    }
    jn_kafka_consumer_free(consumer);
    return 0;
}
