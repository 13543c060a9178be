#!/usr/bin/env bash
# The batch scoring benchmark (`make bench-scoring`): the release inference
# server's `score` command over 1 million rows (and 10 million for memory)
# of the zoo's GBDT and of a 200-tree LightGBM on 20 features, CSV and
# Parquet in and out, against our tree operators alone on the same model and
# batch size in the same run (the ceiling); and one shard against three at
# once. Asserts nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
. "$repo/scripts/lib.sh"
if [ ! -x /usr/bin/time ]; then
  [ "$(id -u)" -eq 0 ] || die "GNU time, which measures each shard's peak memory, is missing: apt-get install time"
  log "installing GNU time"
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends time >/dev/null
fi
models="$("$here/models.sh")"
zoo_python="$("$repo/scripts/zoo-venv.sh")/bin/python"
# pyarrow writes the Parquet copies of the data sets.
parquet_python="$("$repo/scripts/venv.sh" parquet "$repo/tests/e2e/scripts/parquet-requirements.txt")/bin/python"
log "building the release server and the tree benchmark"
(cd "$repo" && cargo build --quiet --locked --release -p aimass-inference-server -p aimass-engine \
  --bin aimass-inference-server --bin aimass-tree-bench)
work="$(mktemp -d "${TMPDIR:-/tmp}/aimass-bench-scoring.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$zoo_python" "$here/scoring.py" "$CARGO_TARGET_DIR/release" "$models" "$repo/tests/zoo/models" "$work" "$parquet_python"
