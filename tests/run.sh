#!/usr/bin/env bash
# tests/run.sh [--no-asan] — the project's single test command.
#
# deps.sh -> tests/sdk/install.sh -> postgres.sh start -> kafka.sh start -> env.sh -> build.sh -> ctest,
# then the same with the sanitizer build (build.sh --asan, ctest on build-asan)
# unless --no-asan or JUNCTION_TEST_NO_ASAN=1. PostgreSQL and Kafka are left
# running so the next run is fast. Exits non-zero if anything fails and ends
# with a one-line summary.
# shellcheck source-path=SCRIPTDIR source-path=SCRIPTDIR/../deploy/local
set -euo pipefail
JL_TAG=tests
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/local/lib.sh"

TEST_TIMEOUT="${JUNCTION_TEST_TIMEOUT:-600}"
PASSED=0
FAILED=0
BROKEN=0
DETAILS=()

# stage SCRIPT ARGS... — run a deploy/local script; stop everything if it fails.
stage() {
  log "== $*"
  "$LIB_DIR/$1" "${@:2}" || finish_broken "$*"
}

# details — the per-build results so far, joined with "; ".
details() {
  local d out=""
  for d in "${DETAILS[@]}"; do out+="${out:+; }$d"; done
  printf '%s\n' "${out:-no tests ran}"
}

# finish_broken STAGE — a stage other than the tests themselves failed.
finish_broken() {
  log "$(details)"
  printf 'tests: FAILED at "%s" (see above)\n' "$1"
  exit 1
}

start_stack() {
  "$LIB_DIR/postgres.sh" start && "$LIB_DIR/kafka.sh" start
}

# run_ctest LABEL DIR — run ctest serially, add its counts to the totals.
run_ctest() {
  local label=$1 dir=$2 out="$LOG_DIR/ctest-$1.log" rc=0 line
  log "== ctest ($label): $dir"
  start_stack || finish_broken "start PostgreSQL/Kafka before ctest ($label)"
  ctest --test-dir "$dir" -j1 --output-on-failure --no-tests=error \
    --timeout "$TEST_TIMEOUT" 2>&1 | tee "$out" || rc=$?
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1 || true)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    local failed=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]}
    PASSED=$((PASSED + total - failed))
    FAILED=$((FAILED + failed))
    DETAILS+=("$label: $((total - failed))/$total passed")
  else
    DETAILS+=("$label: ctest gave no result")
  fi
  if ((rc != 0)); then
    BROKEN=1
    DETAILS+=("$label: ctest exit status $rc")
  fi
}

main() {
  local asan=1 t0=$SECONDS
  [[ ${JUNCTION_TEST_NO_ASAN:-} == 1 ]] && asan=0
  for arg in "$@"; do
    case "$arg" in
      --no-asan) asan=0 ;;
      *) die "usage: $0 [--no-asan]" ;;
    esac
  done
  export JUNCTION_REPO_DIR="$REPO" JUNCTION_LOCAL_DIR="$STATE"
  stage deps.sh
  log "== tests/sdk/install.sh"
  "$REPO/tests/sdk/install.sh" || finish_broken "tests/sdk/install.sh"
  stage postgres.sh start
  stage kafka.sh start
  source "$LIB_DIR/env.sh"
  need_cmd ctest cmake
  stage build.sh
  run_ctest release "${JUNCTION_BUILD_DIR:-$REPO/build}"
  if ((asan)); then
    stage build.sh --asan
    run_ctest asan "${JUNCTION_ASAN_BUILD_DIR:-$REPO/build-asan}"
  else
    DETAILS+=("asan: skipped")
  fi
  start_stack >/dev/null || warn "could not leave PostgreSQL/Kafka running"
  log "$(details) (in $((SECONDS - t0)) s)"
  printf 'tests: %d passed, %d failed\n' "$PASSED" "$FAILED"
  ((FAILED == 0 && BROKEN == 0))
}

main "$@"
