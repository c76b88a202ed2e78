/*
 * junction-scheduler: turns each enabled sync's frequency into sync-run jobs on time,
 * recovers work whose lease expired, and refreshes OAuth tokens before they expire.
 * Several replicas may run at once: every task here is safe to run concurrently.
 */
#include "core/log.h"
#include "engine/engine.h"
#include "providers/token_refresh.h"
#include "sync_loop.h"

#define SWEEP_BATCH 100

/* Refreshes tokens about to expire, so a sync or proxy call never waits on a refresh. */
static void refresh_sweep(jn_engine_t *e)
{
    int refreshed = 0, failed = 0;
    jn_err_t err =
        jn_token_refresh_sweep(e->pg, &e->keyring, e->catalog, SWEEP_BATCH, &refreshed, &failed);
    if (err)
        jn_log_warn("refresh", "token refresh sweep stopped early: %s", jn_err_str(err));
    else if (refreshed || failed)
        jn_log_info("refresh", "token refresh sweep: %d refreshed, %d failed", refreshed, failed);
}

int main(void)
{
    jn_engine_t engine;
    jn_engine_start(&engine, "scheduler", JN_PROGRAM_SCHEDULER);
    jn_engine_listen(&engine);
    /* Syncs and job recovery on their own thread: a slow refresh sweep (it waits on
     * providers) never makes a sync late. */
    jn_sync_loop_t *syncs = jn_sync_loop_start(&engine);
    do
        refresh_sweep(&engine);
    while (!jn_service_wait_for_stop(engine.config.refresh_sweep_seconds * 1000));
    jn_sync_loop_stop(syncs);
    jn_engine_stop(&engine);
    return 0;
}
