#!/usr/bin/env bash
# deploy/local/build.sh [--asan] [extra cmake configure args...]
#
# Configures (only when there is no CMakeCache.txt yet, or when extra args are
# given) and builds Junction with CMake:
#   default: ${JUNCTION_BUILD_DIR:-build}, CMAKE_BUILD_TYPE=RelWithDebInfo
#   --asan:  ${JUNCTION_ASAN_BUILD_DIR:-build-asan}, plus -DJUNCTION_SANITIZE=ON
# JUNCTION_BUILD_TYPE overrides the build type, JUNCTION_JOBS the -j (2).
set -euo pipefail
JL_TAG=build
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD_TYPE="${JUNCTION_BUILD_TYPE:-RelWithDebInfo}"
JOBS="${JUNCTION_JOBS:-2}"

configure() {
  local dir=$1
  shift
  cmake -S "$REPO" -B "$dir" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@" ||
    die "cmake configure failed for $dir"
}

main() {
  local dir="${JUNCTION_BUILD_DIR:-$REPO/build}" flags=() user_args=()
  while (($# > 0)); do
    case "$1" in
      --asan)
        dir="${JUNCTION_ASAN_BUILD_DIR:-$REPO/build-asan}"
        flags=(-DJUNCTION_SANITIZE=ON)
        ;;
      *) user_args+=("$1") ;;
    esac
    shift
  done
  need_cmd cmake cmake
  [[ -f $REPO/CMakeLists.txt ]] || die "no CMakeLists.txt in $REPO"
  if [[ ! -f $dir/CMakeCache.txt ]] || ((${#user_args[@]} > 0)); then
    configure "$dir" "${flags[@]}" "${user_args[@]}"
  fi
  local t0=$SECONDS
  cmake --build "$dir" -j "$JOBS" || die "build failed in $dir"
  log "built $dir in $((SECONDS - t0)) s"
}

main "$@"
