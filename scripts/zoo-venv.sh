#!/usr/bin/env bash
# Prints the path of the zoo's Python virtualenv (exporters, onnxruntime,
# tritonclient, moto), creating it first when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/venv.sh" zoo "$here/../tests/zoo/requirements.txt"
