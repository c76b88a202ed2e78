#!/usr/bin/env bash
# bench/actions.sh [seconds] [threads] — the action round trip against a direct call.
#
# Starts the fake provider, a gateway and a worker on a throwaway database (PostgreSQL
# and Kafka from deploy/local must run), deploys examples/fake-provider/post-note.lua,
# then measures in the same run, on loopback:
#   direct:  POST <fake>/api/echo with the API key — what the action itself calls
#   action:  POST <gateway>/action/trigger running post-note synchronously
#            (gateway -> Kafka -> worker -> sandbox -> fake provider -> PostgreSQL ->
#            the gateway hears the outcome)
# and prints actions/s, p50 and p99 of each, the round trip's overhead over the direct
# call, the cost of building a sandbox (bench/sandbox, when built), and the worker's
# resident memory idle and while 32 actions run at once.
set -euo pipefail
SECONDS_RUN="${1:-10}"
THREADS="${2:-4}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_need "$BUILD/bench/load"
bench_start_fake
bench_start_gateway
bench_connection
bench_start_worker JUNCTION_WORKER_ACTIONS=32
IDLE_KB=$(bench_rss_kb "$WORKER_PID")

# post-note, and "hold": an action that waits about 1.5 s on the provider.
python3 - "$REPO/examples/fake-provider/post-note.lua" >"$WORK/deploy.json" <<'PY'
import json, sys
hold = """return {
  type = 'action', description = 'waits on a slow provider call',
  exec = function(ctx, input)
    ctx:get{ endpoint = '/api/drip', params = { bytes = '64', interval_ms = '500' } }
    return { ok = true }
  end,
}"""
print(json.dumps({"functions": [
    {"name": "post-note", "source": open(sys.argv[1]).read()},
    {"name": "hold", "source": hold}]}))
PY
bench_api PUT /junction/integrations/bench/functions "$(cat "$WORK/deploy.json")"

echo "bench: ${SECONDS_RUN}s per case, $THREADS client threads, loopback, $(nproc) cores"
run_load() { "$BUILD/bench/load" "$SECONDS_RUN" "$THREADS" "$@"; }
ACTION_HEADERS=("Authorization: Bearer $KEY" "Connection-Id: c1" "Provider-Config-Key: bench"
  "Content-Type: application/json")
export LOAD_BODY='{"action_name":"post-note","input":{"text":"hello"}}'
# Warm up: the worker's sessions, the gateway's caches, the consumer group.
"$BUILD/bench/load" 2 1 "$GW/action/trigger" "${ACTION_HEADERS[@]}" >/dev/null
action=$(run_load "$GW/action/trigger" "${ACTION_HEADERS[@]}")
export LOAD_BODY='{"body":"hello"}'
direct=$(run_load "$FAKE/api/echo" "x-api-key: bench-key" "Content-Type: application/json")
unset LOAD_BODY
echo "direct: $direct"
echo "action: $action"
awk -v d50="$(bench_field p50_ms "$direct")" -v a50="$(bench_field p50_ms "$action")" \
  -v d99="$(bench_field p99_ms "$direct")" -v a99="$(bench_field p99_ms "$action")" \
  'BEGIN { printf "round-trip overhead: p50 %+.3f ms, p99 %+.3f ms (goal: p50 <= +2 ms)\n", a50-d50, a99-d99 }'

# Where the time goes, from the job rows: created (gateway) -> started (a worker claimed
# it: Kafka and the worker's pickup) -> finished (the run, its outcome committed).
psql -qtA "${JUNCTION_DATABASE_URL%/*}/$DB" -c "
  SELECT format('stages p50: queue %s ms, run %s ms (of %s actions)',
    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)) * 1000)::numeric, 2),
    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) * 1000)::numeric, 2),
    count(*))
  FROM jobs WHERE function_name = 'post-note' AND state = 'succeeded'"

if [[ -x $BUILD/bench/sandbox ]]; then
  "$BUILD/bench/sandbox"
fi

# Memory: idle, then with 32 actions in flight at once.
WARM_KB=$(bench_rss_kb "$WORKER_PID")
for _ in $(seq 32); do
  curl -fsS -o /dev/null -X POST "$GW/action/trigger" -H "X-Async: true" \
    -H "Authorization: Bearer $KEY" -H "Connection-Id: c1" -H "Provider-Config-Key: bench" \
    -H 'Content-Type: application/json' -d '{"action_name":"hold"}'
done
running() {
  psql -qtA "${JUNCTION_DATABASE_URL%/*}/$DB" \
    -c "SELECT count(*) FROM jobs WHERE function_name = 'hold' AND state = 'running'"
}
deadline=$((SECONDS + 30)) peak_kb=0 peak_running=0
while ((SECONDS < deadline)); do
  n=$(running)
  kb=$(bench_rss_kb "$WORKER_PID")
  if ((n > peak_running || (n == peak_running && kb > peak_kb))); then
    peak_running=$n peak_kb=$kb
  fi
  ((n == 32)) && break
  sleep 0.05
done
awk -v idle="$IDLE_KB" -v warm="$WARM_KB" -v peak="$peak_kb" -v n="$peak_running" \
  'BEGIN { printf "worker RSS: idle %.1f MB (goal <= 30), after the runs above %.1f MB, with %d actions running %.1f MB: %.2f MB per running action (goal <= 2)\n",
           idle/1024, warm/1024, n, peak/1024, n ? (peak-warm)/1024/n : 0 }'
