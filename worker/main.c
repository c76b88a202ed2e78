/*
 * junction-worker: a consumer-group member that executes jobs (pipeline.h, runner.h), and
 * the outbox relays that publish record changes (relay.h). Scale out by running more of
 * them. With --dry-run it runs one script against a real
 * connection instead, prints what it did, and saves nothing (dry_run.h).
 */
#include <string.h>

#include "dry_run.h"
#include "engine/engine.h"
#include "pipeline.h"
#include "relay.h"
#include "runner.h"
#include "scripts/sandbox.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dry-run") == 0)
        return jn_dry_run_main(argc, argv);
    jn_engine_t engine;
    jn_engine_start(&engine, "worker", JN_PROGRAM_WORKER);
    jn_engine_listen(&engine);
    jn_sandbox_set_process_budget((size_t)engine.config.worker_script_memory_mb << 20);
    jn_runner_t *runner = jn_runner_new(&engine);
    jn_pipeline_options_t opts = {
        .concurrency = {engine.config.worker_actions, engine.config.worker_syncs,
                        engine.config.worker_webhooks, engine.config.worker_deliveries},
        .drain_ms = engine.config.worker_drain_s * 1000,
        .env_share_percent = engine.config.worker_env_share_percent,
        .run = jn_runner_run,
        .ud = runner,
    };
    jn_pipeline_t *pipeline = jn_pipeline_start(&engine, &opts);
    jn_relay_options_t relay_opts;
    jn_relay_options_from_config(&engine.config, &relay_opts);
    jn_relay_t *relay = jn_relay_start(&engine.config, &engine.keyring, engine.pg, &relay_opts);
    int rc = pipeline && (relay || relay_opts.threads == 0) ? 0 : 1;
    while (rc == 0 && !jn_service_wait_for_stop(1000))
        ;
    jn_pipeline_stop(pipeline);
    /* The relays stop last and hand their shards back: what is left goes out from another
     * worker at once. */
    jn_relay_stop(relay);
    jn_runner_free(runner);
    jn_engine_stop(&engine);
    return rc;
}
