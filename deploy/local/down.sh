#!/usr/bin/env bash
# deploy/local/down.sh [--purge] — stop everything up.sh started.
#
# services.sh stop, kafka.sh stop, postgres.sh stop; then makes sure no process
# of ours is left: pid files in $STATE/run, and anything whose command line
# mentions $STATE. Data is kept; --purge also deletes $STATE except the cached
# Kafka jars ($STATE/kafka/libs).
set -euo pipefail
JL_TAG=down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FAILED=()

stop_part() {
  "$LIB_DIR/$1" stop || FAILED+=("$1")
}

# sweep_pidfiles — anything still alive behind a pid file gets stopped.
sweep_pidfiles() {
  local file pid
  for file in "$RUN_DIR"/*.pid; do
    [[ -f $file ]] || continue
    if pid=$(pid_from_file "$file"); then
      warn "$(basename "$file" .pid) (pid $pid) still running; stopping it"
      kill_pid "$(basename "$file" .pid)" "$pid" 10
    fi
    rm -f "$file"
  done
}

# sweep_state_processes — any process whose command line mentions $STATE.
sweep_state_processes() {
  local pid
  for pid in $(pids_matching "$STATE/"); do
    warn "stopping leftover pid $pid: $(pid_cmdline "$pid" | cut -c1-120)"
    kill_pid "pid $pid" "$pid" 10
  done
}

verify_clean() {
  local left
  left=$(pids_matching "$STATE/")
  [[ -z $left ]] || die "processes still running: $left"
}

purge() {
  [[ -n $STATE && $STATE != / && $STATE != "$REPO" && $STATE != "$HOME" ]] ||
    die "refusing to purge $STATE"
  local entry
  for entry in "$STATE"/* "$STATE"/.[!.]*; do
    if [[ -e $entry && $entry != "$STATE/kafka" ]]; then rm -rf "$entry"; fi
  done
  for entry in "$STATE/kafka"/* "$STATE/kafka"/.[!.]*; do
    if [[ -e $entry && $entry != "$STATE/kafka/libs" ]]; then rm -rf "$entry"; fi
  done
  local sock home
  sock=$(pg_socket_dir)
  if [[ $sock != "$STATE"/* ]]; then rm -rf "$sock"; fi
  home=$(pg_home_dir)
  if [[ $home == /var/lib/junction-local/* ]]; then rm -rf "$home"; fi
  log "purged $STATE (kept the Kafka jars in $STATE/kafka/libs)"
}

main() {
  local do_purge=0
  case "${1:-}" in
    "") ;;
    --purge) do_purge=1 ;;
    *) die "usage: $0 [--purge]" ;;
  esac
  stop_part demo.sh
  stop_part services.sh
  stop_part kafka.sh
  stop_part postgres.sh
  sweep_pidfiles
  sweep_state_processes
  verify_clean
  if ((do_purge)); then purge; fi
  ((${#FAILED[@]} == 0)) || die "these did not stop cleanly: ${FAILED[*]}"
  log "everything stopped"
}

main "$@"
