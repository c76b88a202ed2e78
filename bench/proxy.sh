#!/usr/bin/env bash
# bench/proxy.sh [seconds] [threads] — proxy throughput and latency against two baselines.
#
# Starts the fake provider and a gateway on a throwaway database (PostgreSQL and Kafka
# from deploy/local must run: tests/run.sh or deploy/local/up.sh leaves them running),
# sets up a connection, then measures in the same run, on loopback:
#   direct:  GET <fake provider>/api/me with the API key
#   nginx:   the same through nginx (Debian's package, one worker process) as a keep-alive
#            reverse proxy that injects the API key header, as the gateway does
#   proxied: GET <gateway>/proxy/api/me with Connection-Id / Provider-Config-Key
# and prints req/s, p50 and p99 of each and the gateway's figures against nginx's.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SECONDS_RUN="${1:-10}"
THREADS="${2:-4}"
BUILD="${JUNCTION_BUILD_DIR:-$REPO/build}"
# shellcheck source=/dev/null
source "$REPO/deploy/local/env.sh"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if [[ ! -x $NGINX ]]; then
  echo "bench: nginx is missing (Debian package nginx-light); installing it" >&2
  apt-get install -y nginx-light >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y nginx-light >/dev/null; }
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
fi
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
ADMIN_PORT=$((GW_PORT + 1))
NGINX_PORT=$((GW_PORT + 2))
KEY="bench-secret-key-$$"
JUNCTION_DATABASE_URL="${JUNCTION_DATABASE_URL%/*}/$DB" JUNCTION_PORT=$GW_PORT JUNCTION_ADMIN_PORT=$ADMIN_PORT \
  JUNCTION_SECRET_KEY_DEV=$KEY JUNCTION_TOPIC_PREFIX=$DB JUNCTION_TOPIC_PARTITIONS=1 \
  JUNCTION_BIND_ADDRESS=127.0.0.1 JUNCTION_LOG_LEVEL=warn \
  "$BUILD/api-gateway/junction-gateway" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
GW="http://127.0.0.1:$GW_PORT"
wait_for "http://127.0.0.1:$ADMIN_PORT/health"
auth=(-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')
curl -fsS -o /dev/null "${auth[@]}" -X PATCH -d '{"egress_allowlist":"127.0.0.0/8"}' "$GW/junction/environment"
curl -fsS -o /dev/null "${auth[@]}" -X PUT "$GW/junction/providers/bench-api" -d "{\"display_name\":\"Bench\",
  \"categories\":[\"dev-tools\"],\"docs\":\"https://example.com\",\"auth_mode\":\"API_KEY\",
  \"proxy\":{\"base_url\":\"$FAKE\",\"headers\":{\"x-api-key\":\"\${apiKey}\"}},
  \"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"Key\"}}}"
curl -fsS -o /dev/null "${auth[@]}" -X POST "$GW/integrations" -d '{"provider":"bench-api","unique_key":"bench"}'
curl -fsS -o /dev/null "${auth[@]}" -X POST "$GW/connections" \
  -d '{"provider_config_key":"bench","connection_id":"c1","credentials":{"type":"API_KEY","apiKey":"bench-key"}}'

# nginx: one worker, keep-alive to the upstream, the key injected like the gateway does.
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  upstream fake { server 127.0.0.1:$FAKE_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-api-key bench-key;
    }
  }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$NGINX_PORT/api/me"

echo "bench: ${SECONDS_RUN}s per case, $THREADS client threads, loopback, $(nproc) cores"
run_load() { "$BUILD/bench/load" "$SECONDS_RUN" "$THREADS" "$@"; }
# Warm the gateway's connection cache and upstream pool first.
run_load "$GW/proxy/api/me" "Authorization: Bearer $KEY" "Connection-Id: c1" \
  "Provider-Config-Key: bench" >/dev/null
direct=$(run_load "$FAKE/api/me" "x-api-key: bench-key")
nginx=$(run_load "http://127.0.0.1:$NGINX_PORT/api/me")
proxied=$(run_load "$GW/proxy/api/me" "Authorization: Bearer $KEY" "Connection-Id: c1" \
  "Provider-Config-Key: bench")
echo "direct:  $direct"
echo "nginx:   $nginx"
echo "proxied: $proxied"
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
awk -v nr="$(field rps "$nginx")" -v pr="$(field rps "$proxied")" \
  -v n50="$(field p50_ms "$nginx")" -v p50="$(field p50_ms "$proxied")" \
  -v n99="$(field p99_ms "$nginx")" -v p99="$(field p99_ms "$proxied")" \
  'BEGIN { printf "junction/nginx: rps %.2fx, p50 %+.3f ms, p99 %+.3f ms (goal: >= 0.5x, p50 within +0.3 ms)\n", pr/nr, p50-n50, p99-n99 }'
