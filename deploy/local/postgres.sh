#!/usr/bin/env bash
# deploy/local/postgres.sh start|stop|status — Junction's own PostgreSQL 15 cluster.
#
# Data in $STATE/postgres/data, listening on 127.0.0.1:$JUNCTION_PG_PORT only,
# unix socket in $STATE/postgres/run, log in $STATE/logs/postgres.log.
# Creates role junction (password junction) and database junction once.
# As root the server runs as the OS user postgres (PostgreSQL refuses root).
set -euo pipefail
JL_TAG=postgres
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_DIR="$(pg_home_dir)"
PG_DATA="$PG_DIR/data"
PG_LOG="$LOG_DIR/postgres.log"
# Relocated out of $STATE: the server writes its log beside its data, linked from $LOG_DIR.
[[ $PG_DIR == "$STATE"/* ]] || PG_LOG="$PG_DIR/postgres.log"
PG_PORT="$JUNCTION_PG_PORT"

find_bindir() {
  PG_BIN=$(pg_bindir) ||
    die "PostgreSQL server binaries not found (Debian package postgresql-15); run deploy/local/deps.sh"
}

# check_traversable — the postgres OS user must reach $PG_DIR.
check_traversable() {
  ((EUID == 0)) || return 0
  if [[ $PG_DIR != "$STATE"/* ]]; then
    mkdir -p "$PG_DIR" && chmod 755 "$(dirname "$PG_DIR")"
    log "the OS user postgres cannot enter $STATE; keeping the cluster in $PG_DIR"
    return 0
  fi
  as_pg test -x "$STATE" && return 0
  local dir="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${STATE#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    as_pg test -x "$dir" ||
      die "the OS user postgres cannot enter $dir (needed to reach $PG_DATA).
  Fix: chmod o+x $dir   or set JUNCTION_LOCAL_DIR to a folder postgres can reach."
  done
}

prepare_dirs() {
  ensure_dirs
  if ((EUID == 0)); then
    id -u postgres >/dev/null 2>&1 ||
      die "OS user postgres does not exist (Debian package postgresql-15); run deploy/local/deps.sh"
  fi
  check_traversable
  mkdir -p "$PG_DIR" "$PG_SOCK"
  touch "$PG_LOG"
  [[ $PG_LOG == "$LOG_DIR"/* ]] || ln -sfn "$PG_LOG" "$LOG_DIR/postgres.log"
  chmod 700 "$PG_SOCK"
  if ((EUID == 0)); then
    chown postgres: "$PG_DIR" "$PG_SOCK" "$PG_LOG"
    [[ -d $PG_DATA ]] && chown postgres: "$PG_DATA"
  fi
  return 0
}

# write_owned FILE — write stdin to FILE, owned by the cluster owner, mode 600.
write_owned() {
  cat >"$1"
  chmod 600 "$1"
  ((EUID != 0)) || chown postgres: "$1"
}

init_cluster() {
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  if [[ -d $PG_DATA ]] && [[ -n $(ls -A "$PG_DATA") ]]; then
    die "$PG_DATA is not empty but holds no cluster (an interrupted initdb?); remove it and retry"
  fi
  log "creating cluster in $PG_DATA"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  ((EUID != 0)) || chown postgres: "$PG_DATA"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >>"$PG_LOG" 2>&1 ||
    { tail_log "$PG_LOG"; die "initdb failed"; }
  printf "\ninclude_if_exists = 'junction.conf'\n" >>"$PG_DATA/postgresql.conf"
}

# write_config — settings rewritten on every start so port changes apply.
write_config() {
  write_owned "$PG_DATA/junction.conf" <<EOF
# Written by deploy/local/postgres.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 128MB
fsync = on
password_encryption = scram-sha-256
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  write_owned "$PG_DATA/pg_hba.conf" <<'EOF'
# Written by deploy/local/postgres.sh. The socket directory is private (0700).
local   all  all                trust
host    all  all  127.0.0.1/32  scram-sha-256
host    all  all  ::1/128       scram-sha-256
EOF
}

is_running() {
  [[ -f $PG_DATA/PG_VERSION ]] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

wait_ready() {
  local deadline=$((SECONDS + 60))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; do
    ((SECONDS < deadline)) || { tail_log "$PG_LOG"; die "not ready after 60 s"; }
    sleep 0.2
  done
}

# psql_admin — run SQL from stdin as the postgres superuser over the socket.
psql_admin() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" \
    -U postgres -d postgres
}

ensure_role_db() {
  psql_admin <<'EOF' || die "could not create role/database junction"
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'junction') THEN
    CREATE ROLE junction LOGIN CREATEDB PASSWORD 'junction';
  END IF;
END
$$;
SELECT 'CREATE DATABASE junction OWNER junction'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'junction')
\gexec
EOF
}

cmd_start() {
  take_lock postgres
  prepare_dirs
  init_cluster
  if is_running; then
    wait_ready
    ensure_role_db
    log "already running on 127.0.0.1:$PG_PORT"
    return 0
  fi
  port_open 127.0.0.1 "$PG_PORT" &&
    die "port $PG_PORT is already used by another process (set JUNCTION_PG_PORT)"
  write_config
  local t0=$SECONDS
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -s start 9>&- ||
    { tail_log "$PG_LOG"; die "pg_ctl start failed"; }
  wait_ready
  ensure_role_db
  log "started on 127.0.0.1:$PG_PORT in $((SECONDS - t0)) s (database junction, user junction)"
}

cmd_stop() {
  take_lock postgres
  if ! is_running; then
    log "not running"
    return 0
  fi
  log "stopping"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop ||
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 -s stop ||
    die "could not stop the server in $PG_DATA"
}

cmd_status() {
  if is_running; then
    log "running on 127.0.0.1:$PG_PORT (pid $(head -n 1 "$PG_DATA/postmaster.pid"))"
  else
    log "not running"
    return 1
  fi
}

main() {
  find_bindir
  PG_SOCK=$(pg_socket_dir)
  case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) die "usage: $0 start|stop|status" ;;
  esac
}

main "$@"
