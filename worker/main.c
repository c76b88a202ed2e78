/*
 * junction-worker: a consumer-group member that executes jobs. Scale out by running
 * more of them.
 */
#include "dispatch.h"
#include "net/service.h"

int main(void)
{
    jn_service_t svc;
    jn_service_start(&svc, "worker", JN_PROGRAM_WORKER, 64 * 1024);
    jn_service_listen(&svc);
    int rc = jn_dispatch_run(&svc);
    jn_service_stop(&svc);
    return rc;
}
