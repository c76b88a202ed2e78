#!/usr/bin/env bash
# deploy/local/deps.sh — make sure the Debian packages Junction needs are installed.
#
# Build tools, C libraries with headers, clang-format, PostgreSQL 15, Java 17
# and Maven (for the local Kafka broker), Node.js with npm (the tests run Nango's
# own SDK against Junction; any node on PATH will do), and Python's jsonschema (the
# tests validate record-change events against their published JSON Schema). Fast path (everything present) is a
# single dpkg-query call. As root on Debian: apt-get update once, then
# apt-get install -y the missing packages. Otherwise: print exactly what is
# missing and exit 1.
set -euo pipefail
JL_TAG=deps
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
  gcc cmake make pkg-config git curl ca-certificates openssl procps iproute2
  librdkafka-dev libpq-dev libjson-c-dev libcurl4-openssl-dev libssl-dev
  liblua5.4-dev libcmocka-dev clang-format
  postgresql-15 postgresql-client-15 maven python3-jsonschema
)
JAVA_PACKAGE=openjdk-17-jre-headless

# Non-Debian fallback: commands and pkg-config modules that must exist.
COMMANDS=(gcc cmake make pkg-config git curl openssl clang-format psql java mvn node npm python3)
PC_MODULES=(rdkafka libpq json-c libcurl openssl lua5.4 cmocka)

# missing_debs — print the Debian packages from PACKAGES (+ Java) not installed.
missing_debs() {
  local pkg state
  local -A ok=()
  while read -r pkg state; do
    [[ $state == ii ]] && ok[$pkg]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' \
    "${PACKAGES[@]}" "$JAVA_PACKAGE" 2>/dev/null || true)
  for pkg in "${PACKAGES[@]}"; do
    [[ -n ${ok[$pkg]:-} ]] || printf '%s\n' "$pkg"
  done
  [[ -n ${ok[$JAVA_PACKAGE]:-} ]] || java_ok || printf '%s\n' "$JAVA_PACKAGE"
  command -v node >/dev/null 2>&1 || printf '%s\n' nodejs
  command -v npm >/dev/null 2>&1 || printf '%s\n' npm
}

# java_ok — some java on PATH (or JAVA_HOME) is version 17 or newer.
java_ok() {
  local java=${JAVA_HOME:+$JAVA_HOME/bin/}java major
  command -v "$java" >/dev/null 2>&1 || return 1
  major=$(java_major "$java") || return 1
  ((major >= 17))
}

# check_non_debian — report missing commands / libraries by name, no installs.
check_non_debian() {
  local missing=() c m
  for c in "${COMMANDS[@]}"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("command:$c")
  done
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] || command -v pg_config >/dev/null 2>&1 ||
    missing+=("postgresql-15-server")
  if command -v pkg-config >/dev/null 2>&1; then
    for m in "${PC_MODULES[@]}"; do
      pkg-config --exists "$m" || missing+=("library:$m")
    done
  fi
  java_ok || missing+=("java>=17")
  ((${#missing[@]} == 0)) && { log "all dependencies present"; return 0; }
  die "not a Debian system; install these yourself: ${missing[*]}"
}

install_debs() {
  log "installing: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$@"
}

main() {
  if [[ ! -f /etc/debian_version ]] || ! command -v dpkg-query >/dev/null 2>&1; then
    check_non_debian
    return
  fi
  local missing
  mapfile -t missing < <(missing_debs)
  if ((${#missing[@]} == 0)); then
    log "all packages present"
    return 0
  fi
  if ((EUID != 0)); then
    die "missing Debian packages (run as root to install): ${missing[*]}
  sudo apt-get install -y ${missing[*]}"
  fi
  install_debs "${missing[@]}"
  mapfile -t missing < <(missing_debs)
  ((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
  log "all packages present"
}

main "$@"
