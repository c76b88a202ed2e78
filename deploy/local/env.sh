# shellcheck shell=bash
# deploy/local/env.sh — environment for running Junction against the local stack.
#
# Usage:  source deploy/local/env.sh        (or: eval "$(deploy/local/env.sh)")
# Exports JUNCTION_DATABASE_URL, JUNCTION_KAFKA_BROKERS, the port variables,
# JUNCTION_ENCRYPTION_KEY and JUNCTION_SECRET_KEY_DEV / _PROD. Secrets are
# generated once into $STATE/secrets/ (mode 600). Variables that are already
# set are left alone. Safe to source from an interactive shell: it changes no
# shell options, defines no functions and never exits the shell.

_jl_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_jl_state="${JUNCTION_LOCAL_DIR:-$_jl_here/../../.local}"
mkdir -p "$_jl_state/secrets" && chmod 700 "$_jl_state/secrets"
_jl_state="$(cd "$_jl_state" && pwd)"

export JUNCTION_PG_PORT="${JUNCTION_PG_PORT:-55432}"
export JUNCTION_KAFKA_PORT="${JUNCTION_KAFKA_PORT:-19092}"
export JUNCTION_KAFKA_CONTROLLER_PORT="${JUNCTION_KAFKA_CONTROLLER_PORT:-19093}"
export JUNCTION_PORT="${JUNCTION_PORT:-3003}"
export JUNCTION_ADMIN_PORT="${JUNCTION_ADMIN_PORT:-$((JUNCTION_PORT + 3))}"
export JUNCTION_SCHEDULER_PORT="${JUNCTION_SCHEDULER_PORT:-3004}"
export JUNCTION_WORKER_PORT="${JUNCTION_WORKER_PORT:-3005}"
export JUNCTION_DEMO_PORT="${JUNCTION_DEMO_PORT:-3010}"
export JUNCTION_DATABASE_URL="${JUNCTION_DATABASE_URL:-postgresql://junction:junction@127.0.0.1:$JUNCTION_PG_PORT/junction}"
export JUNCTION_KAFKA_BROKERS="${JUNCTION_KAFKA_BROKERS:-127.0.0.1:$JUNCTION_KAFKA_PORT}"
# The local stack is for this machine only: every listener on loopback.
export JUNCTION_BIND_ADDRESS="${JUNCTION_BIND_ADDRESS:-127.0.0.1}"
# The demo and the tests' fake providers live on loopback: let environments open it (and
# nothing else internal).
export JUNCTION_EGRESS_ADMISSIBLE="${JUNCTION_EGRESS_ADMISSIBLE-127.0.0.0/8,::1/128}"

# Secret files: write to a temp file, then move into place without clobbering,
# so two concurrent first runs agree on one value.
if [[ ! -s $_jl_state/secrets/encryption-key ]]; then
  (umask 077
    if command -v openssl >/dev/null 2>&1; then
      openssl rand -base64 32
    else
      head -c 32 /dev/urandom | base64
    fi >"$_jl_state/secrets/.encryption-key.$$" &&
    mv -n "$_jl_state/secrets/.encryption-key.$$" "$_jl_state/secrets/encryption-key"
    rm -f "$_jl_state/secrets/.encryption-key.$$")
fi
for _jl_name in secret-key-dev secret-key-prod; do
  if [[ ! -s $_jl_state/secrets/$_jl_name ]]; then
    (umask 077
      if command -v openssl >/dev/null 2>&1; then
        _jl_hex=$(openssl rand -hex 16)
      else
        _jl_hex=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
      fi
      # 8-4-4-4-12, shaped like a version-4 UUID (version 4, variant 8..b).
      printf '%s-%s-4%s-%x%s-%s\n' "${_jl_hex:0:8}" "${_jl_hex:8:4}" "${_jl_hex:13:3}" \
        $(((0x${_jl_hex:16:1} & 3) | 8)) "${_jl_hex:17:3}" "${_jl_hex:20:12}" \
        >"$_jl_state/secrets/.$_jl_name.$$" &&
        mv -n "$_jl_state/secrets/.$_jl_name.$$" "$_jl_state/secrets/$_jl_name"
      rm -f "$_jl_state/secrets/.$_jl_name.$$")
  fi
done

if [[ -z ${JUNCTION_ENCRYPTION_KEY:-} ]]; then
  JUNCTION_ENCRYPTION_KEY="$(<"$_jl_state/secrets/encryption-key")"
  export JUNCTION_ENCRYPTION_KEY
fi
if [[ -z ${JUNCTION_SECRET_KEY_DEV:-} ]]; then
  JUNCTION_SECRET_KEY_DEV="$(<"$_jl_state/secrets/secret-key-dev")"
  export JUNCTION_SECRET_KEY_DEV
fi
if [[ -z ${JUNCTION_SECRET_KEY_PROD:-} ]]; then
  JUNCTION_SECRET_KEY_PROD="$(<"$_jl_state/secrets/secret-key-prod")"
  export JUNCTION_SECRET_KEY_PROD
fi
unset _jl_here _jl_state _jl_name _jl_hex

# Executed instead of sourced: print the exports for eval.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  for _jl_name in JUNCTION_DATABASE_URL JUNCTION_KAFKA_BROKERS JUNCTION_ENCRYPTION_KEY \
    JUNCTION_SECRET_KEY_DEV JUNCTION_SECRET_KEY_PROD JUNCTION_PG_PORT JUNCTION_KAFKA_PORT \
    JUNCTION_KAFKA_CONTROLLER_PORT JUNCTION_PORT JUNCTION_ADMIN_PORT JUNCTION_SCHEDULER_PORT \
    JUNCTION_WORKER_PORT JUNCTION_BIND_ADDRESS JUNCTION_EGRESS_ADMISSIBLE; do
    printf 'export %s=%q\n' "$_jl_name" "${!_jl_name}"
  done
  unset _jl_name
fi
