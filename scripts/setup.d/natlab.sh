#!/usr/bin/env bash
# NAT lab prerequisite: nftables gives `nft`, which the NAT routers need.
# Quiet and idempotent; only acts when `nft` is missing and we are root.
set -euo pipefail
command -v nft >/dev/null 2>&1 && exit 0
[ -x /usr/sbin/nft ] && exit 0
[ "$(id -u)" = "0" ] || exit 0
command -v apt-get >/dev/null 2>&1 || exit 0
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq nftables >/dev/null 2>&1; then
    # Package lists missing or stale: refresh once, then retry.
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq nftables >/dev/null 2>&1 || \
        echo "natlab: could not install nftables; NAT lab tests will skip" >&2
fi
exit 0
