#!/usr/bin/env bash
# bench/lib.sh — what the benchmarks share (sourced, not run): a throwaway database and
# topic prefix, the fake provider as the upstream, Junction's programs started on it, and
# one API-key connection ("c1" of integration "bench") to the fake.
#
# PostgreSQL and Kafka from deploy/local must run (tests/run.sh or deploy/local/up.sh
# leaves them running). Everything started here stops when the script exits.
# shellcheck source=/dev/null
HERE="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BUILD="${JUNCTION_BUILD_DIR:-$REPO/build}"
source "$REPO/deploy/local/env.sh"
WORK="$(mktemp -d)"
DB="jn_bench_$$"
KEY="bench-secret-key-$$"
PIDS=()
PORT_BASE=$((20000 + $$ % 20000))

bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$JUNCTION_DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  # BENCH_LOGS=DIR keeps the programs' logs for a look at where the time went.
  [[ -n ${BENCH_LOGS:-} ]] && mkdir -p "$BENCH_LOGS" && cp "$WORK"/*.log "$BENCH_LOGS"/ 2>/dev/null
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

# bench_need BIN... — each must have been built.
bench_need() {
  local bin
  for bin in "$@"; do
    [[ -x $bin ]] || { echo "bench: $bin is missing; run: cmake --build $BUILD" >&2; exit 1; }
  done
}

# bench_wait_for URL — until it answers 2xx, for at most 60 s.
bench_wait_for() {
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "bench: $1 did not come up" >&2; exit 1; }
    sleep 0.1
  done
}

# bench_start_fake — the fake provider on a free port: sets FAKE and FAKE_PORT, and
# registers the API key "bench-key".
bench_start_fake() {
  bench_need "$BUILD/tests/support/fake_provider"
  "$BUILD/tests/support/fake_provider" >"$WORK/fake.log" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 10))
  until grep -q "listening on" "$WORK/fake.log"; do
    ((SECONDS < deadline)) || { echo "bench: fake provider did not start" >&2; exit 1; }
    sleep 0.05
  done
  FAKE_PORT=$(sed -n 's/^listening on \([0-9]*\).*/\1/p' "$WORK/fake.log" | head -1)
  FAKE="http://127.0.0.1:$FAKE_PORT"
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"key":"bench-key"}' \
    "$FAKE/_admin/api_keys"
}

# bench_env — the environment of a Junction program on the bench's database.
bench_env() {
  printf '%s\n' "JUNCTION_DATABASE_URL=${JUNCTION_DATABASE_URL%/*}/$DB" \
    "JUNCTION_SECRET_KEY_DEV=$KEY" "JUNCTION_TOPIC_PREFIX=$DB" "JUNCTION_TOPIC_PARTITIONS=1" \
    "JUNCTION_BIND_ADDRESS=127.0.0.1" "JUNCTION_LOG_LEVEL=warn"
}

# bench_start_gateway [VAR=value...] — a gateway on the bench's database: sets GW (its
# URL) and creates the database first.
bench_start_gateway() {
  bench_need "$BUILD/api-gateway/junction-gateway"
  psql -q "$JUNCTION_DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
  local port=$PORT_BASE admin=$((PORT_BASE + 1))
  mapfile -t vars < <(bench_env)
  env "${vars[@]}" JUNCTION_PORT=$port JUNCTION_ADMIN_PORT=$admin "$@" \
    "$BUILD/api-gateway/junction-gateway" >"$WORK/gateway.log" 2>&1 &
  PIDS+=($!)
  GW="http://127.0.0.1:$port"
  bench_wait_for "http://127.0.0.1:$admin/health"
}

# bench_start_worker [VAR=value...] — a worker beside the gateway: sets WORKER_PID.
bench_start_worker() {
  bench_need "$BUILD/worker/junction-worker"
  local port=$((PORT_BASE + 5))
  mapfile -t vars < <(bench_env)
  env "${vars[@]}" JUNCTION_WORKER_PORT=$port "$@" \
    "$BUILD/worker/junction-worker" >"$WORK/worker.log" 2>&1 &
  WORKER_PID=$!
  PIDS+=($WORKER_PID)
  bench_wait_for "http://127.0.0.1:$port/livez"
}

# bench_api METHOD PATH [BODY] — the gateway's API with the bench's key; fails loudly.
bench_api() {
  curl -fsS -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -X "$1" ${3:+-d "$3"} "$GW$2" || { echo "bench: $1 $2 failed" >&2; exit 1; }
}

# bench_connection — provider "bench-api" (API key in x-api-key) at the fake, integration
# "bench", connection "c1", and loopback admitted by the egress policy.
bench_connection() {
  bench_api PATCH /junction/environment '{"egress_allowlist":"127.0.0.0/8"}'
  bench_api PUT /junction/providers/bench-api "{\"display_name\":\"Bench\",
    \"categories\":[\"dev-tools\"],\"docs\":\"https://example.com\",\"auth_mode\":\"API_KEY\",
    \"proxy\":{\"base_url\":\"$FAKE\",\"headers\":{\"x-api-key\":\"\${apiKey}\"}},
    \"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"Key\"}}}"
  bench_api POST /integrations '{"provider":"bench-api","unique_key":"bench"}'
  bench_api POST /connections \
    '{"provider_config_key":"bench","connection_id":"c1","credentials":{"type":"API_KEY","apiKey":"bench-key"}}'
}

# bench_field NAME LINE — a "name=value" figure from load's output line.
bench_field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# bench_rss_kb PID — the process's resident memory now, in KiB.
bench_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
