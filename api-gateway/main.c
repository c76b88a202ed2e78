/*
 * junction-gateway: the public HTTP API. It never runs scripts: it validates, stores
 * state in PostgreSQL and enqueues jobs to Kafka.
 */
#include "service.h"

/* Request bodies above this get 413 (Nango accepts up to 75 MB of JSON). */
#define GATEWAY_MAX_BODY (75u * 1024 * 1024)

int main(void)
{
    jn_service_t svc;
    jn_service_start(&svc, "gateway", JN_PROGRAM_GATEWAY, GATEWAY_MAX_BODY);
    jn_service_listen(&svc);
    while (!jn_service_wait_for_stop(1000))
        ;
    jn_service_stop(&svc);
    return 0;
}
