# shellcheck shell=bash
# deploy/local/lib.sh — shared helpers for the local development scripts.
#
# Sourced (never run) by the other scripts in deploy/local/ and by tests/run.sh.
# Defines REPO (repository root), STATE (the folder these scripts own:
# databases, Kafka data and jars, logs, pid files, generated secrets), the port
# variables, and small helpers: logging, waiting for TCP ports with a deadline,
# and starting/stopping background processes through pid files.
# It does not change shell options; the scripts sourcing it use set -euo pipefail.

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$LIB_DIR/../.." && pwd)"
STATE="${JUNCTION_LOCAL_DIR:-$REPO/.local}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
RUN_DIR="$STATE/run"
LOG_DIR="$STATE/logs"

export JUNCTION_PG_PORT="${JUNCTION_PG_PORT:-55432}"
export JUNCTION_KAFKA_PORT="${JUNCTION_KAFKA_PORT:-19092}"
export JUNCTION_KAFKA_CONTROLLER_PORT="${JUNCTION_KAFKA_CONTROLLER_PORT:-19093}"
export JUNCTION_PORT="${JUNCTION_PORT:-3003}"
export JUNCTION_ADMIN_PORT="${JUNCTION_ADMIN_PORT:-$((JUNCTION_PORT + 3))}"
export JUNCTION_SCHEDULER_PORT="${JUNCTION_SCHEDULER_PORT:-3004}"
export JUNCTION_WORKER_PORT="${JUNCTION_WORKER_PORT:-3005}"

# Name shown in front of every message; scripts set it after sourcing.
JL_TAG="${JL_TAG:-junction}"

log() { printf '%s: %s\n' "$JL_TAG" "$*"; }
warn() { printf '%s: warning: %s\n' "$JL_TAG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$JL_TAG" "$*" >&2; exit 1; }

# need_cmd COMMAND DEBIAN_PACKAGE — fail clearly when a command is missing.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 ||
    die "command '$1' not found (Debian package $2); run deploy/local/deps.sh"
}

ensure_dirs() { mkdir -p "$RUN_DIR" "$LOG_DIR"; }

# take_lock NAME — serialize start/stop of one component across processes.
# The lock lives on fd 9 until the script exits; background children must be
# started with 9>&- so they do not inherit it.
take_lock() {
  ensure_dirs
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$RUN_DIR/$1.lock"
  flock -w 300 9 || die "waited 300 s for the lock $RUN_DIR/$1.lock"
}

# port_open HOST PORT — true if something accepts TCP connections there.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_port HOST PORT SECONDS [PID] — poll until the port accepts connections.
# Returns 0 when open, 1 on deadline, 2 if PID (when given) exits first.
wait_port() {
  local host=$1 port=$2 deadline=$((SECONDS + $3)) pid=${4:-}
  until port_open "$host" "$port"; do
    if [[ -n $pid ]] && ! pid_alive "$pid"; then return 2; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# pid_alive PID — the process exists and is not a zombie.
pid_alive() {
  local pid=$1 stat
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  if [[ ! -d /proc/self ]]; then kill -0 "$pid" 2>/dev/null; return; fi
  read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# pid_cmdline PID — print the command line of PID with spaces between arguments.
pid_cmdline() {
  local -a args
  mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 1
  printf '%s\n' "${args[*]}"
}

# pid_matches PID NEEDLE... — the command line of PID contains every NEEDLE.
pid_matches() {
  local pid=$1 cmd needle
  shift
  cmd=$(pid_cmdline "$pid") || return 1
  for needle in "$@"; do [[ $cmd == *"$needle"* ]] || return 1; done
}

# pid_from_file PIDFILE [NEEDLE...] — print the pid if it is alive and its
# command line contains the needles; otherwise remove the stale file, return 1.
pid_from_file() {
  local file=$1 pid=
  shift
  [[ -f $file ]] || return 1
  read -r pid <"$file" || true
  if [[ -n $pid ]] && pid_alive "$pid" && pid_matches "$pid" "$@"; then
    printf '%s\n' "$pid"
    return 0
  fi
  rm -f "$file"
  return 1
}

# own_ancestry — print this shell's pid and all its ancestors (never killed).
own_ancestry() {
  local pid=$BASHPID stat
  while [[ $pid =~ ^[0-9]+$ && $pid != 0 ]]; do
    printf '%s\n' "$pid"
    read -r stat 2>/dev/null <"/proc/$pid/stat" || break
    stat=${stat##*) }
    stat=${stat#* }
    pid=${stat%% *}
  done
  [[ $$ != "$BASHPID" ]] && printf '%s\n' "$$"
  return 0
}

# pids_matching NEEDLE... — live processes whose command line contains all
# needles, excluding this shell and its ancestors.
pids_matching() {
  local dir pid
  local -A skip=()
  for pid in $(own_ancestry); do skip[$pid]=1; done
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [[ -n ${skip[$pid]:-} ]] && continue
    pid_alive "$pid" && pid_matches "$pid" "$@" && printf '%s\n' "$pid"
  done
  return 0
}

# wait_exit PID SECONDS — poll until PID has exited; 1 on deadline.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while pid_alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# kill_pid NAME PID SECONDS — SIGTERM, wait up to SECONDS, then SIGKILL.
kill_pid() {
  local name=$1 pid=$2 timeout=$3
  kill -TERM "$pid" 2>/dev/null || true
  wait_exit "$pid" "$timeout" && return 0
  warn "$name (pid $pid) still running after ${timeout}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait_exit "$pid" 10 || die "$name (pid $pid) did not exit even after SIGKILL"
}

# start_bg PIDFILE LOGFILE COMMAND... — run COMMAND detached in its own session,
# output appended to LOGFILE, pid written to PIDFILE.
start_bg() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
  printf '%s\n' "$!" >"$pidfile"
}

# stop_pidfile NAME PIDFILE SECONDS [NEEDLE...] — stop the process recorded in
# PIDFILE (SIGTERM, then SIGKILL after SECONDS). Not running is fine.
stop_pidfile() {
  local name=$1 file=$2 timeout=$3 pid
  shift 3
  if ! pid=$(pid_from_file "$file" "$@"); then
    log "$name is not running"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill_pid "$name" "$pid" "$timeout"
  rm -f "$file"
}

# pg_bindir — print the folder of the PostgreSQL server binaries (initdb, pg_ctl…);
# fails when there is none.
pg_bindir() {
  if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
    printf '%s\n' /usr/lib/postgresql/15/bin
  elif command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    pg_config --bindir
  else
    return 1
  fi
}

# as_pg COMMAND... — run as a cluster's owner (the OS user postgres when we are root:
# PostgreSQL refuses to run as root).
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# pg_home_dir — where postgres.sh keeps its cluster: $STATE/postgres, or, when we are
# root and the OS user postgres cannot enter $STATE (a clone under /root, say), a folder
# under /var/lib named after $STATE, so the server never needs the user's folders opened.
pg_home_dir() {
  if ((EUID == 0)) && id -u postgres >/dev/null 2>&1 &&
    ! (cd / && runuser -u postgres -- test -x "$STATE") 2>/dev/null; then
    printf '/var/lib/junction-local/%s\n' "$(printf '%s' "$STATE" | cksum | cut -d' ' -f1)"
  else
    printf '%s\n' "$STATE/postgres"
  fi
}

# pg_socket_dir — where postgres.sh puts its unix socket: $STATE/postgres/run,
# or a short folder under /tmp when that path is too long for a socket name.
pg_socket_dir() {
  local dir
  dir="$(pg_home_dir)/run"
  if ((${#dir} + 20 > 100)); then
    dir="${TMPDIR:-/tmp}/junction-pg-$(printf '%s' "$STATE" | cksum | cut -d' ' -f1)"
  fi
  printf '%s\n' "$dir"
}

# java_major [JAVA] — print the major version of the java binary (e.g. 17).
java_major() {
  local java=${1:-java} line ver
  line=$("$java" -version 2>&1 | head -n 1) || return 1
  [[ $line =~ \"([0-9][0-9._]*) ]] || return 1
  ver=${BASH_REMATCH[1]}
  [[ $ver == 1.* ]] && ver=${ver#1.}
  printf '%s\n' "${ver%%[._]*}"
}

# tail_log FILE [LINES] — show the end of a log file to explain a failure.
tail_log() {
  local file=$1 lines=${2:-30}
  [[ -s $file ]] || { printf '  (log %s is empty or missing)\n' "$file" >&2; return 0; }
  printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
  tail -n "$lines" "$file" >&2
  printf -- '---\n' >&2
}
