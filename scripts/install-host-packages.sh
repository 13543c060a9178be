#!/usr/bin/env bash
# Installs the Debian packages the local cluster needs on the host: iproute2
# (network namespaces, veth, bridge), nftables (kube-proxy's nftables mode),
# conntrack, openssl and curl. Quiet and quick when they are present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

need=()
for pair in ip:iproute2 nft:nftables conntrack:conntrack openssl:openssl curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
[ "$(id -u)" -eq 0 ] || die "the local cluster needs root (network namespaces, nftables); missing packages: ${need[*]}"
log "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
