/*
 * junction-scheduler: turns each enabled sync's frequency into sync-run jobs on time
 * and recovers work whose lease expired. Several replicas may run at once.
 */
#include "service.h"

int main(void)
{
    jn_service_t svc;
    jn_service_start(&svc, "scheduler", JN_PROGRAM_SCHEDULER, 64 * 1024);
    jn_service_listen(&svc);
    while (!jn_service_wait_for_stop(1000))
        ;
    jn_service_stop(&svc);
    return 0;
}
