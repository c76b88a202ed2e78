/*
 * sync_run.h - what the records benchmarks share: a sync run to write records with, the
 * clock and the way out.
 *
 * Through the gateway at gw (with the environment's secret key): integration "bench"
 * (provider hackernews) and connection "b1"; through the stores: sync "bench" of model
 * "Contact", fired, claimed and begun as a run. Any failure ends the program with a line
 * on stderr (a benchmark has nothing to recover).
 */
#ifndef JN_BENCH_SYNC_RUN_H
#define JN_BENCH_SYNC_RUN_H

#include <libpq-fe.h>

#include "store/syncs.h"

/* Prints "bench: <what>" on stderr and exits 1. */
void bench_die(const char *what);

/* Seconds on the monotonic clock. */
double bench_now_s(void);

/* Fills *run (its writer writes the records of "Contact" for connection "b1"); the
 * caller frees it with jn_sync_run_cleanup. */
void bench_sync_run(PGconn *conn, const char *gw, const char *key, jn_sync_run_t *run);

#endif
