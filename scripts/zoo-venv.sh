#!/usr/bin/env bash
# Prints the path of the zoo's Python virtualenv, creating it first when
# missing. It lives in the cache, keyed by a hash of tests/zoo/requirements.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
req="$here/../tests/zoo/requirements.txt"
venv="$AIMASS_CACHE_DIR/venv-zoo-$(sha256sum "$req" | cut -c1-12)"
# A virtualenv cannot be moved (its scripts name their interpreter by
# absolute path), so it is built in place and marked complete at the end.
if [ ! -f "$venv/.complete" ]; then
  log "creating the zoo's Python environment in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  touch "$venv/.complete"
fi
echo "$venv"
