#!/usr/bin/env bash
# Stops the local cluster started by cluster-up.sh: every process it started
# (each in its own session, so their children go too), its state and its
# network. Leaves no process behind.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

dir="${AIMASS_CLUSTER_DIR:-$here/../.cluster}"
bridge="${AIMASS_BRIDGE:-aimass0}"
[ -d "$dir" ] || exit 0

pids=()
for f in "$dir"/pids/*; do
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  # Each component leads its own process group (setsid); signal the group.
  kill -TERM -- "-$pid" 2>/dev/null && pids+=("$pid")
done
deadline=$((SECONDS + 15))
for pid in "${pids[@]}"; do
  while kill -0 -- "-$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
done
# Wait until no process started for this cluster (they all name its folder
# on their command line) is left, however it was started.
cluster_dir="$(cd "$dir" && pwd)"
deadline=$((SECONDS + 10))
while pgrep -f -- "$cluster_dir/" >/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
pkill -KILL -f -- "$cluster_dir/" 2>/dev/null || true
# Pod processes the agent could not stop (if it died): their process groups.
for f in "$dir"/agent/pods/*/groups/*; do
  [ -f "$f" ] && kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
done
for ns in $(ip netns list 2>/dev/null | awk '/^aimass-/ {print $1}'); do
  ip netns del "$ns" 2>/dev/null || true
done
nft delete table ip kube-proxy 2>/dev/null || true
nft delete table ip6 kube-proxy 2>/dev/null || true
if [ -f "$dir/cluster.json" ]; then
  svc_cidr="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["serviceCIDR"])' "$dir/cluster.json")"
  ip route del "$svc_cidr" dev "$bridge" 2>/dev/null || true
fi
ip link del "$bridge" 2>/dev/null || true
rm -rf "$dir"
log "cluster stopped"
