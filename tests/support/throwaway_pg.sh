#!/usr/bin/env bash
# tests/support/throwaway_pg.sh start DIR PORT | stop DIR — a PostgreSQL cluster of its own
# for a test that must freeze or kill its database (never the shared one).
#
# start: initdb into DIR/data (once), then pg_ctl start listening on 127.0.0.1:PORT only,
# without a unix socket, trusting loopback (the cluster lives for one test run and holds
# nothing). Connect as postgresql://postgres@127.0.0.1:PORT/postgres.
# stop: pg_ctl stop -m immediate, then remove DIR.
# As root the server runs as the OS user postgres (deploy/local/lib.sh's as_pg).
set -euo pipefail

JL_TAG=throwaway_pg
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/lib.sh"

cmd_start() {
  local dir port=$2
  mkdir -p "$1/data"
  dir=$(cd "$1" && pwd)
  chmod 700 "$dir/data"
  ((EUID != 0)) || chown postgres: "$dir" "$dir/data"
  if [[ ! -f $dir/data/PG_VERSION ]]; then
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C \
      --auth-local=trust --auth-host=trust >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 -s \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off" \
    start || { cat "$dir/data/server.log" >&2; die "pg_ctl start failed"; }
}

cmd_stop() {
  local dir
  [[ -d $1 ]] || return 0
  dir=$(cd "$1" && pwd)
  if [[ -f $dir/data/postmaster.pid ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 -s stop || true
  fi
  rm -rf "$dir"
}

PG_BIN=$(pg_bindir) || die "PostgreSQL server binaries not found; run deploy/local/deps.sh"
case "${1:-}" in
  start) cmd_start "$2" "$3" ;;
  stop) cmd_stop "$2" ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
