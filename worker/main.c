/*
 * junction-worker: a consumer-group member that executes jobs. Scale out by running
 * more of them.
 */
#include "dispatch.h"
#include "engine/engine.h"

int main(void)
{
    jn_engine_t engine;
    jn_engine_start(&engine, "worker", JN_PROGRAM_WORKER);
    jn_engine_listen(&engine);
    int rc = jn_dispatch_run(&engine);
    jn_engine_stop(&engine);
    return rc;
}
