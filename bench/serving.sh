#!/usr/bin/env bash
# The serving benchmark (`make bench-serving`; `make bench-drift`,
# `make bench-shadow` and `make bench-ensemble` for its drift-counting,
# shadow and ensemble comparisons; see bench/README.md): builds
# the release server and the bare HTTP ceiling, prepares the Python
# environments and the models (cached), installs wrk when missing, and runs
# bench/serving.py. Loopback only, each load bounded in time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
. "$repo/scripts/lib.sh"

if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "the benchmark's load generator, wrk, is missing: apt-get install wrk"
  log "installing wrk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
log "building the release server and the HTTP ceiling"
(cd "$repo" && cargo build --quiet --locked --release -p aimass-inference-server \
  --bin aimass-inference-server --bin aimass-http-ceiling)
reference="$("$repo/scripts/venv.sh" bench "$here/requirements.txt")"
models="$("$here/models.sh")"
exec python3 "$here/serving.py" --bin "$CARGO_TARGET_DIR/release" --python "$reference/bin/python" \
  --models "$models" --zoo "$repo/tests/zoo/models" --seconds "${AIMASS_BENCH_SECONDS:-10}" "$@"
