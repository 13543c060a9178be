#!/usr/bin/env bash
# The tree benchmark (`make bench-trees`): our tree operators against
# onnxruntime on the zoo's small ensembles and on the deep ones of
# bench/models.py (a random forest of unpruned trees, LightGBM with 63
# leaves), at 1, 256 and 4,096 rows. Prints times and ratios; asserts nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
. "$repo/scripts/lib.sh"
models="$("$here/models.sh")"
log "building the tree benchmark"
(cd "$repo" && cargo build --quiet --locked --release -p aimass-engine --bin aimass-tree-bench)
bench="$CARGO_TARGET_DIR/release/aimass-tree-bench"
"$bench"
"$bench" --zoo "$models" --models rf_deep,lgbm_63
