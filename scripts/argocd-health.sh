#!/usr/bin/env bash
# Evaluates an Argo CD health check (docs/argocd/*.lua) on an object, as Argo
# CD does: `obj` is the object, the script returns {status, message}.
# Usage: argocd-health.sh CHECK.lua < object.json   → prints "Status: message"
# Lua comes from the PyPI package lupa, installed into a cache keyed by version.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

LUPA_VERSION="2.8"
lupa_dir="$AIMASS_CACHE_DIR/lupa-$LUPA_VERSION"
if [ ! -d "$lupa_dir/lupa" ]; then
  log "installing lupa $LUPA_VERSION (Lua for Python)"
  python3 -m pip install --quiet --no-deps --disable-pip-version-check --root-user-action=ignore --target "$lupa_dir" "lupa==$LUPA_VERSION"
fi
# stdin carries the object, so the program comes as an argument.
program='
import json, sys
import lupa
lua = lupa.LuaRuntime(unpack_returned_tuples=True)
def to_lua(value):
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(v) for v in value])
    return value
check = lua.eval("function(obj) " + open(sys.argv[1]).read() + " end")
result = check(to_lua(json.load(sys.stdin)))
print(result["status"] + ": " + str(result["message"]))
'
PYTHONPATH="$lupa_dir" python3 -c "$program" "$1"
