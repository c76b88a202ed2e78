/*
 * job_message.c - encoding and strict decoding of job messages.
 */
#include "net/job_message.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/json_util.h"
#include "core/log.h"

char *jn_job_message_encode(const jn_job_ref_t *job, char key[40])
{
    if (job->connection_id)
        snprintf(key, 40, "%lld", job->connection_id);
    else
        snprintf(key, 40, "%s", job->id);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(JN_JOB_MESSAGE_VERSION));
    json_object_object_add(o, "job_id", json_object_new_string(job->id));
    json_object_object_add(o, "kind", json_object_new_string(jn_job_kind_name(job->kind)));
    json_object_object_add(o, "environment_id", json_object_new_int64(job->environment_id));
    json_object_object_add(o, "connection_id", json_object_new_int64(job->connection_id));
    char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    if (!text)
        abort();
    return text;
}

static jn_err_t reason(char *why, size_t why_len, const char *text)
{
    snprintf(why, why_len, "%s", text);
    return JN_ERR_INVALID;
}

jn_err_t jn_job_message_decode(const void *value, size_t len, jn_job_ref_t *out, char *why,
                               size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return reason(why, why_len, "empty message");
    json_object *o = NULL;
    jn_field_error_t fe;
    if (jn_json_parse(value, len, true, &o, &fe) != JN_OK) {
        char text[400];
        snprintf(text, sizeof text, "not a valid JSON object (%s)", fe.message);
        return reason(why, why_len, text);
    }
    static const char *const keys[] = {"version",        "job_id",        "kind",
                                       "environment_id", "connection_id", NULL};
    jn_err_t err = JN_OK;
    json_object *v = NULL;
    const char *text = NULL;
    char msg[160];
    if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int)) {
        err = reason(why, why_len, "version: missing or not an integer");
    } else if (json_object_get_int(v) != JN_JOB_MESSAGE_VERSION) {
        snprintf(msg, sizeof msg, "unsupported version %d (this worker reads %d)",
                 json_object_get_int(v), JN_JOB_MESSAGE_VERSION);
        err = reason(why, why_len, msg);
    } else if (jn_json_only_keys(o, keys, "", &fe) != JN_OK) {
        snprintf(msg, sizeof msg, "%.60s: %.90s", fe.path, fe.message);
        err = reason(why, why_len, msg);
    } else if (jn_json_string(o, "job_id", true, 36, &text, &fe) != JN_OK ||
               !jn_uuid_shaped(text, false)) {
        err = reason(why, why_len, "job_id: not a UUID");
    } else {
        snprintf(out->id, sizeof out->id, "%s", text);
        if (jn_json_string(o, "kind", true, 16, &text, &fe) != JN_OK ||
            jn_job_kind_parse(text, &out->kind) != JN_OK)
            err = reason(why, why_len, "kind: must be action, sync, webhook or delivery");
        else if (!json_object_object_get_ex(o, "environment_id", &v) ||
                 !json_object_is_type(v, json_type_int) || json_object_get_int64(v) <= 0)
            err = reason(why, why_len, "environment_id: must be a positive integer");
        else {
            out->environment_id = json_object_get_int64(v);
            if (!json_object_object_get_ex(o, "connection_id", &v) ||
                !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                err = reason(why, why_len, "connection_id: must be an integer >= 0");
            else
                out->connection_id = json_object_get_int64(v);
        }
    }
    json_object_put(o);
    return err;
}

const char *jn_job_message_topic_kind(jn_job_kind_t kind)
{
    switch (kind) {
    case JN_JOB_ACTION: return "actions";
    case JN_JOB_SYNC: return "syncs";
    case JN_JOB_WEBHOOK: return "webhooks";
    case JN_JOB_DELIVERY: return "deliveries";
    }
    return "actions";
}

jn_err_t jn_job_message_send(jn_kafka_producer_t *producer, const char *topic_prefix,
                             const jn_job_ref_t *job)
{
    char key[40], topic[160];
    snprintf(topic, sizeof topic, "%s.%s", topic_prefix, jn_job_message_topic_kind(job->kind));
    char *value = jn_job_message_encode(job, key);
    jn_err_t err =
        jn_kafka_produce(producer, topic, key, strlen(key), value, strlen(value), NULL, NULL);
    free(value);
    return err;
}

size_t jn_job_message_send_all(jn_kafka_producer_t *producer, const char *topic_prefix,
                               const jn_job_ref_t *jobs, size_t count)
{
    size_t failed = 0;
    for (size_t i = 0; i < count; i++) {
        jn_err_t err = jn_job_message_send(producer, topic_prefix, &jobs[i]);
        if (err) {
            failed++;
            jn_log_warn("jobs",
                        "job %s: its message could not be queued (%s); the scheduler resends it",
                        jobs[i].id, jn_err_str(err));
        }
    }
    return failed;
}
