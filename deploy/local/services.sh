#!/usr/bin/env bash
# deploy/local/services.sh start|stop|status [gateway|scheduler|worker ...]
#
# Runs the three Junction programs from the build dir (${JUNCTION_BUILD_DIR:-build})
# in the background with the environment of env.sh, working directory = repo root.
# Output goes to $STATE/logs/junction-<name>.log, pid files to $STATE/run/.
# start waits until GET /health answers 200 on each service's operational port (the
# gateway's admin port, the scheduler's and the worker's own).
set -euo pipefail
JL_TAG=services
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$LIB_DIR/env.sh"

BUILD_DIR="${JUNCTION_BUILD_DIR:-$REPO/build}"
ALL=(gateway scheduler worker)
declare -A BIN=(
  [gateway]=api-gateway/junction-gateway
  [scheduler]=scheduler/junction-scheduler
  [worker]=worker/junction-worker
)
declare -A PORT=(
  [gateway]=$JUNCTION_PORT
  [scheduler]=$JUNCTION_SCHEDULER_PORT
  [worker]=$JUNCTION_WORKER_PORT
)
declare -A HEALTH_PORT=(
  [gateway]=$JUNCTION_ADMIN_PORT
  [scheduler]=$JUNCTION_SCHEDULER_PORT
  [worker]=$JUNCTION_WORKER_PORT
)
START_DEADLINE=60
STOP_TIMEOUT=20

bin_path() { printf '%s/%s\n' "$BUILD_DIR" "${BIN[$1]}"; }
pid_file() { printf '%s/junction-%s.pid\n' "$RUN_DIR" "$1"; }
log_file() { printf '%s/junction-%s.log\n' "$LOG_DIR" "$1"; }
running_pid() { pid_from_file "$(pid_file "$1")" "/${BIN[$1]}"; }

healthy() {
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${HEALTH_PORT[$1]}/health" 2>/dev/null
}

check_binaries() {
  local name missing=()
  for name in "$@"; do
    [[ -x $(bin_path "$name") ]] || missing+=("$(bin_path "$name")")
  done
  ((${#missing[@]} == 0)) && return 0
  die "missing program(s): ${missing[*]}
  run cmake --build first (deploy/local/build.sh)"
}

launch() {
  local name=$1
  if port_open 127.0.0.1 "${PORT[$name]}"; then
    die "port ${PORT[$name]} for $name is already used by another process"
  fi
  if port_open 127.0.0.1 "${HEALTH_PORT[$name]}"; then
    die "port ${HEALTH_PORT[$name]} for $name is already used by another process"
  fi
  log "starting junction-$name on port ${PORT[$name]}"
  (cd "$REPO" && start_bg "$(pid_file "$name")" "$(log_file "$name")" "$(bin_path "$name")")
}

# wait_healthy NAME... — poll /health of each until 200, fail if one exits.
wait_healthy() {
  local deadline=$((SECONDS + START_DEADLINE)) name pid pending=("$@") left
  while ((${#pending[@]} > 0)); do
    left=()
    for name in "${pending[@]}"; do
      healthy "$name" && { log "junction-$name is healthy on port ${PORT[$name]}"; continue; }
      if ! pid=$(running_pid "$name"); then
        tail_log "$(log_file "$name")" 30
        die "junction-$name exited during start-up (log above)"
      fi
      left+=("$name")
    done
    pending=("${left[@]}")
    ((${#pending[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for name in "${pending[@]}"; do tail_log "$(log_file "$name")" 30; done
      die "no healthy answer from ${pending[*]} after $START_DEADLINE s" \
        "(curl http://127.0.0.1:<port>/health)"
    fi
    sleep 0.25
  done
}

cmd_start() {
  take_lock services
  check_binaries "$@"
  local name
  for name in "$@"; do
    if running_pid "$name" >/dev/null; then
      log "junction-$name already running"
    else
      launch "$name"
    fi
  done
  wait_healthy "$@"
}

cmd_stop() {
  take_lock services
  local name
  for name in "$@"; do
    stop_pidfile "junction-$name" "$(pid_file "$name")" "$STOP_TIMEOUT" "$(bin_path "$name")"
  done
}

cmd_status() {
  local name pid rc=0
  for name in "$@"; do
    if pid=$(running_pid "$name"); then
      if healthy "$name"; then
        log "junction-$name running (pid $pid), healthy on port ${PORT[$name]}"
      else
        log "junction-$name running (pid $pid), /health not answering on port ${PORT[$name]}"
        rc=1
      fi
    else
      log "junction-$name not running"
      rc=1
    fi
  done
  return "$rc"
}

main() {
  local cmd=${1:-} name
  shift || true
  (($# > 0)) || set -- "${ALL[@]}"
  for name in "$@"; do
    [[ -n ${BIN[$name]:-} ]] || die "unknown service '$name' (choose from: ${ALL[*]})"
  done
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    *) die "usage: $0 start|stop|status [${ALL[*]}]" ;;
  esac
}

main "$@"
