#!/usr/bin/env bash
# Puts the Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule
# CRDs into a cache keyed by version (from the Go module proxy, the only
# place they can come from here) and prints the directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

kinds=(servicemonitors podmonitors prometheusrules)
if [ ! -f "$MONITORING_CRDS_DIR/monitoring.coreos.com_prometheusrules.yaml" ]; then
  log "fetching the Prometheus Operator $PROMETHEUS_OPERATOR_VERSION CRDs"
  work="$(mktemp -d)"
  trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
  module="$(GOMODCACHE="$work" GOFLAGS=-mod=mod go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$MONITORING_CRDS_DIR"
  for kind in "${kinds[@]}"; do
    cp "$module/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$MONITORING_CRDS_DIR/"
  done
fi
echo "$MONITORING_CRDS_DIR"
