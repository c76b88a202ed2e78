/*
 * sync_loop.h - the scheduler's own thread for syncs and jobs: every tick it fires the
 * due syncs and sends their runs' job messages; every few seconds it sends again the jobs
 * whose message may have been lost (queued and never claimed, or running past an expired
 * lease: a worker that died) and purges the records of deleted connections.
 *
 * Every step is a short transaction that is safe beside any number of other schedulers
 * (row locks with SKIP LOCKED); no lock or transaction is held while Kafka is asked. A
 * message is sent after the job's row committed, so a crash in between costs a delay (the
 * resend finds the job), never the job.
 */
#ifndef JN_SCHEDULER_SYNC_LOOP_H
#define JN_SCHEDULER_SYNC_LOOP_H

#include "engine/engine.h"

typedef struct jn_sync_loop jn_sync_loop_t;

/* Starts the thread; it runs until jn_service_stopping() or jn_sync_loop_stop(). */
jn_sync_loop_t *jn_sync_loop_start(jn_engine_t *e);

/* Stops the thread (after its current step) and frees it. NULL is fine. */
void jn_sync_loop_stop(jn_sync_loop_t *l);

#endif
