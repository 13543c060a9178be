#!/usr/bin/env bash
# Prints the path of a Python virtualenv built from a requirements file,
# creating it first when missing: venv.sh NAME REQUIREMENTS. It lives in the
# cache, keyed by NAME and a hash of the requirements.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
name="$1"
req="$2"
venv="$AIMASS_CACHE_DIR/venv-$name-$(sha256sum "$req" | cut -c1-12)"
# A virtualenv cannot be moved (its scripts name their interpreter by
# absolute path), so it is built in place and marked complete at the end.
if [ ! -f "$venv/.complete" ]; then
  log "creating the $name Python environment in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  touch "$venv/.complete"
fi
echo "$venv"
