/*
 * records_purge.c - the records of deleted connections, deleted in the background.
 *
 * Deleting a connection must not wait on millions of rows: a trigger marks its scopes for
 * purge (migration 0013) and the scheduler deletes them here, a batch per transaction,
 * with a DELETED change in the outbox for every record that was live.
 */
#include "store/records.h"

#include <stdio.h>
#include <stdlib.h>

#include "store/pg.h"

jn_err_t jn_records_purge_step(PGconn *conn, int batch, long long *purged, bool *more)
{
    *purged = 0;
    *more = false;
    char size[16];
    snprintf(size, sizeof size, "%d", batch < 1 ? 1 : batch);
    const char *params[] = {size};
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN; " JN_RECORDS_PLAN_SETTINGS);
    if (err)
        return err;
    PGresult *r = NULL;
    /* One scope at a time, locked so that another scheduler takes another. The live
     * records leave with a DELETED event each, numbered after the scope's last change; the
     * scope goes with its last batch. */
    err = jn_pg_exec(
        conn,
        "WITH sc AS MATERIALIZED (SELECT id, environment_id, integration, connection, model,"
        "  last_seq, provider, environment_name FROM record_scopes"
        "  WHERE purge_requested_at IS NOT NULL"
        "  ORDER BY purge_requested_at LIMIT 1 FOR UPDATE SKIP LOCKED),"
        "gone AS MATERIALIZED (DELETE FROM records r USING (SELECT x.ctid AS tid"
        "  FROM sc, records x WHERE x.scope_id = sc.id LIMIT $1::int) d"
        "  WHERE r.scope_id = (SELECT id FROM sc) AND r.ctid = d.tid"
        "  RETURNING r.external_id, r.deleted_at IS NULL AS live),"
        "chg AS MATERIALIZED (SELECT g.external_id, sc.last_seq + row_number() OVER"
        "  (ORDER BY g.external_id COLLATE \"C\") AS seq, sc.id, sc.environment_id,"
        "  sc.integration, sc.connection, sc.model, sc.provider, coalesce((SELECT e.name"
        "  FROM environments e WHERE e.id = sc.environment_id), sc.environment_name) AS env"
        "  FROM gone g, sc WHERE g.live),"
        "ob AS (INSERT INTO record_outbox (shard, environment_id, integration, connection,"
        "  model, scope_id, change_count, first_seq, last_seq, changes, sealed, provider,"
        "  environment_name)"
        "  SELECT (id % 64)::smallint, environment_id, integration, connection, model, id,"
        "  count(*), min(seq), max(seq), json_agg(json_build_object('event_id',"
        "  records_event_id(id, seq), 'record_id', external_id, 'action', 'DELETED', 'seq', seq,"
        "  'cursor', records_cursor(id, seq), 'payload', NULL) ORDER BY seq)::text, false,"
        "  provider, env FROM chg"
        "  GROUP BY id, environment_id, integration, connection, model, provider, env),"
        "bump AS (UPDATE record_scopes s SET last_seq = s.last_seq + (SELECT count(*) FROM chg),"
        "  live_count = s.live_count - (SELECT count(*) FROM chg) FROM sc WHERE s.id = sc.id"
        "  AND (SELECT count(*) FROM gone) >= $1::int),"
        "drop_scope AS (DELETE FROM record_scopes s USING sc WHERE s.id = sc.id"
        "  AND (SELECT count(*) FROM gone) < $1::int)"
        "SELECT (SELECT count(*) FROM sc), (SELECT count(*) FROM gone)",
        1, params, &r);
    if (!err) {
        *more = strtoll(PQgetvalue(r, 0, 0), NULL, 10) > 0;
        *purged = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}
