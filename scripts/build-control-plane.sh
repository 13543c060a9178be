#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kube-proxy from Go modules (tests/cluster/k8s) into a cache keyed by version.
# A warm cache returns at once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

components=(etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
missing=()
for c in "${components[@]}"; do [ -x "$K8S_BIN_DIR/$c" ] || missing+=("$c"); done
[ ${#missing[@]} -eq 0 ] && exit 0

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mod="$here/../tests/cluster/k8s"
mkdir -p "$K8S_BIN_DIR.partial"
ver="k8s.io/component-base/version"
major="${KUBERNETES_VERSION#v}"; major="${major%%.*}"
minor="${KUBERNETES_VERSION#v*.}"; minor="${minor%%.*}"
ldflags="-s -w -X $ver.gitVersion=$KUBERNETES_VERSION -X $ver.gitMajor=$major -X $ver.gitMinor=$minor -X $ver.gitTreeState=clean"
for c in "${missing[@]}"; do
  log "building $c (first time only; cached in $K8S_BIN_DIR)"
  if [ "$c" = etcd ]; then pkg=./cmd/etcd; else pkg="k8s.io/kubernetes/cmd/$c"; fi
  (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$K8S_BIN_DIR.partial/$c" "$pkg")
done
mkdir -p "$K8S_BIN_DIR"
for c in "${missing[@]}"; do mv "$K8S_BIN_DIR.partial/$c" "$K8S_BIN_DIR/$c"; done
rmdir "$K8S_BIN_DIR.partial" 2>/dev/null || true
