/*
 * dispatch.h - the worker's consume loop: reads job messages from the job topics as a
 * consumer-group member, hands each to the handler for its kind, and stores the offset
 * only after the handler finished (at-least-once). A message that is not a job this
 * worker knows (malformed JSON, unknown version or kind) goes to <prefix>.dlq with the
 * reason, so bad input is kept for inspection and never blocks the partition.
 */
#ifndef JN_WORKER_DISPATCH_H
#define JN_WORKER_DISPATCH_H

#include "engine/engine.h"

/* Consumes until jn_service_stopping(); returns 0, or 1 when the consumer cannot start. */
int jn_dispatch_run(jn_engine_t *svc);

#endif
