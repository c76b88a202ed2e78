/*
 * junction-scheduler: turns each enabled sync's frequency into sync-run jobs on time,
 * recovers work whose lease expired, and refreshes OAuth tokens before they expire.
 * Several replicas may run at once: every task here is safe to run concurrently.
 */
#include <stdlib.h>

#include "providers/catalog.h"
#include "core/crypto.h"
#include "core/log.h"
#include "net/service.h"
#include "providers/token_refresh.h"

#define SWEEP_BATCH 100

/* Refreshes tokens about to expire, so a sync or proxy call never waits on a refresh. */
static void refresh_sweep(jn_service_t *svc, const jn_crypto_keyring_t *ring,
                          const jn_catalog_t *catalog)
{
    int refreshed = 0, failed = 0;
    jn_err_t err = jn_token_refresh_sweep(svc->pg, ring, catalog, SWEEP_BATCH, &refreshed, &failed);
    if (err)
        jn_log_warn("refresh", "token refresh sweep stopped early: %s", jn_err_str(err));
    else if (refreshed || failed)
        jn_log_info("refresh", "token refresh sweep: %d refreshed, %d failed", refreshed, failed);
}

int main(void)
{
    jn_service_t svc;
    jn_service_start(&svc, "scheduler", JN_PROGRAM_SCHEDULER, 64 * 1024);
    jn_catalog_t *catalog = NULL;
    char why[512];
    if (jn_catalog_load_builtin(&catalog, why, sizeof why) != JN_OK) {
        jn_log_error("catalog", "%s", why);
        exit(2);
    }
    jn_crypto_keyring_t ring;
    jn_service_keyring(&svc, &ring);
    jn_service_listen(&svc);
    do
        refresh_sweep(&svc, &ring, catalog);
    while (!jn_service_wait_for_stop(svc.config.refresh_sweep_seconds * 1000));
    jn_service_stop(&svc);
    jn_catalog_free(catalog);
    jn_crypto_keyring_cleanup(&ring);
    return 0;
}
