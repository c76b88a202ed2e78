#!/usr/bin/env bash
# deploy/local/up.sh — quickstart: everything needed to run Junction locally.
#
# deps.sh -> build.sh -> postgres.sh start -> kafka.sh start -> services.sh start,
# then prints the gateway URL, the dev secret key, where the logs are and how to
# stop. Idempotent: a second run only checks and returns quickly.
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
  stop:            deploy/local/down.sh   (--purge also deletes the data)
EOF2
}

main() {
  local t0=$SECONDS
  step deps.sh
  step build.sh
  step postgres.sh start
  step kafka.sh start
  step services.sh start
  summary
  log "ready in $((SECONDS - t0)) s"
}

main "$@"
