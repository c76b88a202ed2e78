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
SECONDS_RUN="${1:-10}"
THREADS="${2:-4}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if [[ ! -x $NGINX ]]; then
  echo "bench: nginx is missing (Debian package nginx-light); installing it" >&2
  apt-get install -y nginx-light >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y nginx-light >/dev/null; }
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
fi
bench_need "$BUILD/bench/load"
bench_start_fake
bench_start_gateway
bench_connection
NGINX_PORT=$((PORT_BASE + 2))

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
bench_wait_for "http://127.0.0.1:$NGINX_PORT/api/me"

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
awk -v nr="$(bench_field rps "$nginx")" -v pr="$(bench_field rps "$proxied")" \
  -v n50="$(bench_field p50_ms "$nginx")" -v p50="$(bench_field p50_ms "$proxied")" \
  -v n99="$(bench_field p99_ms "$nginx")" -v p99="$(bench_field p99_ms "$proxied")" \
  'BEGIN { printf "junction/nginx: rps %.2fx, p50 %+.3f ms, p99 %+.3f ms (goal: >= 0.5x, p50 within +0.3 ms)\n", pr/nr, p50-n50, p99-n99 }'
