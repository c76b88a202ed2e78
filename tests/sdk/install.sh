#!/usr/bin/env bash
# tests/sdk/install.sh — installs the client SDKs the compatibility tests run, pinned,
# into $JUNCTION_LOCAL_DIR/sdk (cached: a second run only checks). Needs node and npm
# (deploy/local/deps.sh installs them) and the npm registry.
set -euo pipefail
JL_TAG=sdk
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/lib.sh"
NANGO_NODE_VERSION=0.71.10
DIR="$STATE/sdk"
need_cmd node nodejs
need_cmd npm npm
installed=$(node -e "try { console.log(require('$DIR/node_modules/@nangohq/node/package.json').version) } catch (e) {}" 2>/dev/null || true)
if [[ $installed == "$NANGO_NODE_VERSION" ]]; then
  log "@nangohq/node $installed present"
  exit 0
fi
mkdir -p "$DIR"
log "installing @nangohq/node $NANGO_NODE_VERSION into $DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error \
  "@nangohq/node@$NANGO_NODE_VERSION" >/dev/null || die "npm install @nangohq/node failed"
