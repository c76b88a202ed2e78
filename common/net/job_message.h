/*
 * job_message.h - the Kafka message that tells a worker to run a job (docs/topics.md).
 *
 * A message only points at its job: the row in PostgreSQL (store/jobs.h) holds the input,
 * the state and the lease, so a message can be sent again, duplicated or delivered late
 * without harm. Value (JSON, version 1):
 *   {"version":1,"job_id":"<uuid>","kind":"action|sync|webhook|delivery","environment_id":<n>,
 *    "connection_id":<connections.id or 0>}
 * Key: the connection's id in decimal (a job without a connection: its job id), so that
 * one connection's jobs stay in order on one partition. Topics: <prefix>.actions,
 * <prefix>.syncs, <prefix>.webhooks, <prefix>.deliveries by kind.
 */
#ifndef JN_JOB_MESSAGE_H
#define JN_JOB_MESSAGE_H

#include <stddef.h>

#include "core/err.h"
#include "net/kafka.h"
#include "store/jobs.h"

#define JN_JOB_MESSAGE_VERSION 1

/* The message's value as a new string (free()), and its key into key (at least 40 bytes). */
char *jn_job_message_encode(const jn_job_ref_t *job, char key[40]);

/* Parses a message's value strictly. JN_ERR_INVALID with a reason for the dead-letter
 * topic ("not valid JSON", "unsupported version 2", "job_id: not a UUID", ...). */
jn_err_t jn_job_message_decode(const void *value, size_t len, jn_job_ref_t *out, char *why,
                               size_t why_len);

/* Queues the job's message on <topic_prefix>.<kind topic>. The job row must be committed
 * first; a message that never arrives is resent by the scheduler's recovery, so a
 * failure here (JN_ERR_KAFKA_UNAVAILABLE: the local queue is full) loses nothing. */
jn_err_t jn_job_message_send(jn_kafka_producer_t *producer, const char *topic_prefix,
                             const jn_job_ref_t *job);

/* jn_job_message_send for each of count jobs (rows committed already); a failure is logged
 * and left to the scheduler's resend. Returns how many failed. */
size_t jn_job_message_send_all(jn_kafka_producer_t *producer, const char *topic_prefix,
                               const jn_job_ref_t *jobs, size_t count);

/* The topic kind a job kind travels on: "actions", "syncs", "webhooks", "deliveries". */
const char *jn_job_message_topic_kind(jn_job_kind_t kind);

#endif
