#!/usr/bin/env bash
# Prints the folder of the benchmarks' models (bench/models.py), writing them
# into the cache first when missing, keyed by the generator and the zoo's
# pinned exporters.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
. "$repo/scripts/lib.sh"
zoo="$("$repo/scripts/zoo-venv.sh")"
models="$AIMASS_CACHE_DIR/bench-models-$(cat "$here/models.py" "$repo/tests/zoo/requirements.txt" | sha256sum | cut -c1-12)"
if [ ! -f "$models/.complete" ]; then
  log "writing the benchmarks' models to $models (about 4 minutes, once)"
  rm -rf "$models"
  "$zoo/bin/python" "$here/models.py" "$models" >&2
  touch "$models/.complete"
fi
echo "$models"
