#!/usr/bin/env bash
# deploy/local/up.sh — quickstart: everything needed to run Junction locally.
#
# deps.sh -> build.sh -> postgres.sh start -> kafka.sh start -> services.sh start ->
# demo.sh start (a demo provider and integration "demo" wired to it), then prints the
# gateway URL, the dev secret key, the first calls to try, where the logs are and how
# to stop. Idempotent: a second run only checks and returns quickly.
set -euo pipefail
JL_TAG=up
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

step() {
  "$LIB_DIR/$1" "${@:2}" || die "$1 ${*:2} failed (see above)"
}

summary() {
  source "$LIB_DIR/env.sh"
  cat <<EOF2

Junction is up.
  gateway:         http://127.0.0.1:$JUNCTION_PORT
  operations:      http://127.0.0.1:$JUNCTION_ADMIN_PORT/health  (/livez, /readyz, /metrics)
  dev secret key:  $JUNCTION_SECRET_KEY_DEV
  database:        $JUNCTION_DATABASE_URL
  kafka:           $JUNCTION_KAFKA_BROKERS
  logs:            $LOG_DIR/
  environment:     source deploy/local/env.sh
  demo provider:   http://127.0.0.1:${JUNCTION_DEMO_PORT:-3010}  (integration "demo", connection "demo-connection")
  stop:            deploy/local/down.sh   (--purge also deletes the data)

Try it (the demo action, then the records the demo sync saved — they appear within a
minute of the first start):
  curl -s -X POST http://127.0.0.1:$JUNCTION_PORT/action/trigger -H "Authorization: Bearer $JUNCTION_SECRET_KEY_DEV" \\
    -H "Connection-Id: demo-connection" -H "Provider-Config-Key: demo" -H "Content-Type: application/json" \\
    -d '{"action_name":"post-note","input":{"text":"hello"}}'
  curl -s "http://127.0.0.1:$JUNCTION_PORT/records?model=Item&limit=5" -H "Authorization: Bearer $JUNCTION_SECRET_KEY_DEV" \\
    -H "Connection-Id: demo-connection" -H "Provider-Config-Key: demo"
EOF2
}

main() {
  local t0=$SECONDS
  step deps.sh
  step build.sh
  step postgres.sh start
  step kafka.sh start
  step services.sh start
  step demo.sh start
  summary
  log "ready in $((SECONDS - t0)) s"
}

main "$@"
