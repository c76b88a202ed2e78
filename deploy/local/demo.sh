#!/usr/bin/env bash
# deploy/local/demo.sh start|stop|status — the quickstart's demo: a provider to talk to
# and an integration already wired to it.
#
# start: runs the project's fake provider (the one the tests use: an API with items,
# pagination, an echo endpoint, API keys) on 127.0.0.1:$JUNCTION_DEMO_PORT (default
# 3010) as "the demo provider", then, through the running gateway's API with the dev
# key: admits 127.0.0.1 in the dev environment's egress allow-list, registers the custom
# provider "demo-api", creates integration "demo", deploys examples/fake-provider's
# fetch-items (a sync) and post-note (an action) to it, and imports connection
# "demo-connection" with the demo provider's API key. Idempotent.
# stop: stops the demo provider (the integration and its data stay).
set -euo pipefail
JL_TAG=demo
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$LIB_DIR/env.sh"

BUILD_DIR="${JUNCTION_BUILD_DIR:-$REPO/build}"
DEMO_PORT="${JUNCTION_DEMO_PORT:-3010}"
DEMO_BIN="$BUILD_DIR/tests/support/fake_provider"
DEMO_URL="http://127.0.0.1:$DEMO_PORT"
GW="http://127.0.0.1:$JUNCTION_PORT"
PID_FILE="$RUN_DIR/demo-provider.pid"
LOG_FILE="$LOG_DIR/demo-provider.log"
DEMO_KEY="demo-key"

# api METHOD PATH [BODY] — the gateway's API with the dev key; prints the body, fails
# on a status other than 2xx or the ones listed in OK_ALSO.
api() {
  local out status
  out=$(curl -sS -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $JUNCTION_SECRET_KEY_DEV" \
    -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$GW$2") ||
    die "$1 $2: the gateway did not answer (is it running? deploy/local/services.sh status)"
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  if [[ $status != 2* && " ${OK_ALSO:-} " != *" $status "* ]]; then
    die "$1 $2 answered $status: $out"
  fi
  printf '%s\n' "$out"
}

start_provider() {
  if pid_from_file "$PID_FILE" "fake_provider" >/dev/null; then
    log "demo provider already running on $DEMO_URL"
  else
    [[ -x $DEMO_BIN ]] || die "$DEMO_BIN is missing: run deploy/local/build.sh"
    port_open 127.0.0.1 "$DEMO_PORT" && die "port $DEMO_PORT is taken (set JUNCTION_DEMO_PORT)"
    ensure_dirs
    log "starting the demo provider on $DEMO_URL"
    start_bg "$PID_FILE" "$LOG_FILE" "$DEMO_BIN" --port "$DEMO_PORT"
    local deadline=$((SECONDS + 20))
    until curl -fsS -o /dev/null "$DEMO_URL/_admin/config" 2>/dev/null; do
      ((SECONDS < deadline)) || { tail_log "$LOG_FILE" 20; die "the demo provider did not start"; }
      sleep 0.1
    done
  fi
  # Its state lives in memory: (re)register the demo key.
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d "{\"key\":\"$DEMO_KEY\"}" "$DEMO_URL/_admin/api_keys"
}

allow_loopback() {
  local current
  current=$(api GET /junction/environment | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["egress_allowlist"])')
  if [[ ",$current," == *",127.0.0.1/32,"* || ",$current," == *",127.0.0.0/8,"* ]]; then
    return 0
  fi
  log "admitting 127.0.0.1 in the dev environment's egress allow-list"
  api PATCH /junction/environment "{\"egress_allowlist\":\"${current:+$current,}127.0.0.1/32\"}" >/dev/null
}

wire_integration() {
  api PUT /junction/providers/demo-api "{\"display_name\":\"Demo provider\",
    \"categories\":[\"dev-tools\"],\"docs\":\"https://example.com/demo\",\"auth_mode\":\"API_KEY\",
    \"proxy\":{\"base_url\":\"$DEMO_URL\",\"headers\":{\"x-api-key\":\"\${apiKey}\"}},
    \"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\",\"secret\":true}}}" >/dev/null
  OK_ALSO=409 api POST /integrations '{"provider":"demo-api","unique_key":"demo"}' >/dev/null
  local body
  body=$(python3 - "$REPO/examples/fake-provider" <<'PY'
import json, os, sys
d = sys.argv[1]
print(json.dumps({"functions": [
    {"name": n, "source": open(os.path.join(d, n + ".lua")).read()}
    for n in ("fetch-items", "post-note")]}))
PY
)
  api PUT /junction/integrations/demo/functions "$body" >/dev/null
  if ! OK_ALSO=404 api GET '/connections/demo-connection?provider_config_key=demo' |
    grep -q '"connection_id"'; then
    api POST /connections "{\"provider_config_key\":\"demo\",\"connection_id\":\"demo-connection\",
      \"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"$DEMO_KEY\"}}" >/dev/null
  fi
  log "integration \"demo\" with connection \"demo-connection\" is ready"
}

cmd_start() {
  take_lock demo
  start_provider
  allow_loopback
  wire_integration
}

cmd_stop() {
  take_lock demo
  stop_pidfile "demo provider" "$PID_FILE" 10 "fake_provider"
}

cmd_status() {
  if pid=$(pid_from_file "$PID_FILE" "fake_provider"); then
    log "demo provider running (pid $pid) on $DEMO_URL"
  else
    log "demo provider not running"
    return 1
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
