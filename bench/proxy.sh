#!/usr/bin/env bash
# bench/proxy.sh [seconds] [threads] — proxy throughput and latency against direct calls.
#
# Starts the fake provider and a gateway on a throwaway database (PostgreSQL and Kafka
# from deploy/local must run: tests/run.sh or deploy/local/up.sh leaves them running),
# sets up a connection, then measures in the same run, on loopback:
#   direct:  GET <fake provider>/api/me with the API key
#   proxied: GET <gateway>/proxy/api/me with Connection-Id / Provider-Config-Key
# and prints req/s, p50 and p99 of each and the ratios.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SECONDS_RUN="${1:-10}"
THREADS="${2:-4}"
BUILD="${JUNCTION_BUILD_DIR:-$REPO/build}"
# shellcheck source=/dev/null
source "$REPO/deploy/local/env.sh"
for bin in "$BUILD/tests/support/fake_provider" "$BUILD/api-gateway/junction-gateway" "$BUILD/bench/load"; do
  [[ -x $bin ]] || { echo "bench: $bin is missing; run: cmake --build $BUILD" >&2; exit 1; }
done
WORK="$(mktemp -d)"
DB="jn_bench_$$"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$JUNCTION_DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() { # url
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "bench: $1 did not come up" >&2; exit 1; }
    sleep 0.1
  done
}

"$BUILD/tests/support/fake_provider" >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
deadline=$((SECONDS + 10))
until grep -q "listening on" "$WORK/fake.log"; do
  ((SECONDS < deadline)) || { echo "bench: fake provider did not start" >&2; exit 1; }
  sleep 0.05
done
FAKE_PORT=$(sed -n 's/^listening on \([0-9]*\).*/\1/p' "$WORK/fake.log" | head -1)
FAKE="http://127.0.0.1:$FAKE_PORT"
curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"key":"bench-key"}' "$FAKE/_admin/api_keys"

psql -q "$JUNCTION_DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
GW_PORT=$((20000 + $$ % 20000))
KEY="bench-secret-key-$$"
JUNCTION_DATABASE_URL="${JUNCTION_DATABASE_URL%/*}/$DB" JUNCTION_PORT=$GW_PORT JUNCTION_SECRET_KEY_DEV=$KEY \
  JUNCTION_TOPIC_PREFIX=$DB JUNCTION_TOPIC_PARTITIONS=1 JUNCTION_BIND_ADDRESS=127.0.0.1 JUNCTION_LOG_LEVEL=warn \
  "$BUILD/api-gateway/junction-gateway" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
GW="http://127.0.0.1:$GW_PORT"
wait_for "$GW/health"
auth=(-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')
curl -fsS -o /dev/null "${auth[@]}" -X PATCH -d '{"egress_allowlist":"127.0.0.0/8"}' "$GW/junction/environment"
curl -fsS -o /dev/null "${auth[@]}" -X PUT "$GW/junction/providers/bench-api" -d "{\"display_name\":\"Bench\",
  \"categories\":[\"dev-tools\"],\"docs\":\"https://example.com\",\"auth_mode\":\"API_KEY\",
  \"proxy\":{\"base_url\":\"$FAKE\",\"headers\":{\"x-api-key\":\"\${apiKey}\"}},
  \"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"Key\"}}}"
curl -fsS -o /dev/null "${auth[@]}" -X POST "$GW/integrations" -d '{"provider":"bench-api","unique_key":"bench"}'
curl -fsS -o /dev/null "${auth[@]}" -X POST "$GW/connections" \
  -d '{"provider_config_key":"bench","connection_id":"c1","credentials":{"type":"API_KEY","apiKey":"bench-key"}}'

echo "bench: ${SECONDS_RUN}s per case, $THREADS client threads, loopback, $(nproc) cores"
direct=$("$BUILD/bench/load" "$SECONDS_RUN" "$THREADS" "$FAKE/api/me" "x-api-key: bench-key")
proxied=$("$BUILD/bench/load" "$SECONDS_RUN" "$THREADS" "$GW/proxy/api/me" "Authorization: Bearer $KEY" \
  "Connection-Id: c1" "Provider-Config-Key: bench")
echo "direct:  $direct"
echo "proxied: $proxied"
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
awk -v dr="$(field rps "$direct")" -v pr="$(field rps "$proxied")" \
  -v d50="$(field p50_ms "$direct")" -v p50="$(field p50_ms "$proxied")" \
  -v d99="$(field p99_ms "$direct")" -v p99="$(field p99_ms "$proxied")" \
  'BEGIN { printf "ratio:   proxied/direct rps=%.2f p50=%.2fx (+%.3f ms) p99=%.2fx (+%.3f ms)\n", pr/dr, p50/d50, p50-d50, p99/d99, p99-d99 }'
