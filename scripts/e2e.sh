#!/usr/bin/env bash
# Runs the cluster tests (tests/e2e). With KUBECONFIG set they run against that
# cluster; otherwise against the local cluster, which is started for the run
# and stopped afterwards (unless it was already running, or
# AIMASS_KEEP_CLUSTER=1). Arguments go to `cargo test` (make bench-scale
# passes a test and --ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
cd "$here/.."

# The tests start the operator and the console (and the node agent runs the inference server)
# from these binaries, and run the kubectl plugin.
cargo build --quiet --locked -p aimass-operator -p aimass-inference-server -p aimass-audit -p aimass-cli -p aimass-console --bins

if [ -n "${KUBECONFIG:-}" ]; then
  log "running the cluster tests against KUBECONFIG=$KUBECONFIG"
  exec cargo test --locked -p aimass-e2e "$@"
fi

dir="${AIMASS_CLUSTER_DIR:-$PWD/.cluster}"
started=0
if ! { [ -f "$dir/admin.kubeconfig" ] && "$KUBECTL_BIN_DIR/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1; }; then
  "$here/cluster-up.sh"
  started=1
fi
if [ "$started" = 1 ] && [ "${AIMASS_KEEP_CLUSTER:-0}" != 1 ]; then
  trap '"$here/cluster-down.sh"' EXIT
fi
KUBECONFIG="$dir/admin.kubeconfig" cargo test --locked -p aimass-e2e "$@"
