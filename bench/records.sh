#!/usr/bin/env bash
# bench/records.sh [records] — the records store and API against PostgreSQL's own speed.
#
# Starts a gateway on a throwaway database (PostgreSQL and Kafka from deploy/local must run:
# tests/run.sh or deploy/local/up.sh leaves them running), then measures in the same run,
# on loopback (bench/records.c):
#   ingest: jn_records_save, the whole path, beside a raw binary COPY of the same rows;
#   read:   GET /records pages of 1,000, beside a raw keyset SELECT of the same rows;
# and prints records/s of each and the ratios.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
RECORDS="${1:-100000}"
BUILD="${JUNCTION_BUILD_DIR:-$REPO/build}"
# shellcheck source=/dev/null
source "$REPO/deploy/local/env.sh"
for bin in "$BUILD/api-gateway/junction-gateway" "$BUILD/bench/records"; do
  [[ -x $bin ]] || { echo "bench: $bin is missing; run: cmake --build $BUILD" >&2; exit 1; }
done
WORK="$(mktemp -d)"
DB="jn_bench_records_$$"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$JUNCTION_DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$JUNCTION_DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
DB_URL="${JUNCTION_DATABASE_URL%/*}/$DB"
free_port() { # a loopback port nothing listens on now
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
# A port can be taken between the check and the bind: try a few.
for attempt in 1 2 3; do
  GW_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  KEY="bench-secret-key-$$"
  JUNCTION_DATABASE_URL="$DB_URL" JUNCTION_PORT=$GW_PORT JUNCTION_ADMIN_PORT=$ADMIN_PORT \
    JUNCTION_SECRET_KEY_DEV=$KEY JUNCTION_TOPIC_PREFIX=$DB JUNCTION_TOPIC_PARTITIONS=1 \
    JUNCTION_BIND_ADDRESS=127.0.0.1 JUNCTION_LOG_LEVEL=warn \
    "$BUILD/api-gateway/junction-gateway" >"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/health" 2>/dev/null; do
    kill -0 "$GW_PID" 2>/dev/null || break
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/health" 2>/dev/null && break
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  ((attempt < 3)) || { echo "bench: the gateway did not come up" >&2; cat "$WORK/gateway.log" >&2; exit 1; }
done
echo "bench: $(nproc) cores; PostgreSQL $(psql -At "$DB_URL" -c 'SHOW server_version')"
"$BUILD/bench/records" "$DB_URL" "http://127.0.0.1:$GW_PORT" "$KEY" "$RECORDS"
