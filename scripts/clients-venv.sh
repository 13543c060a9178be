#!/usr/bin/env bash
# Prints the path of the Python virtualenv of other projects' Open Inference
# Protocol clients (KServe's SDK), creating it first when missing. Apart from
# the zoo's, so their dependencies never move the zoo's pinned exporters.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/venv.sh" clients "$here/../tests/clients/requirements.txt"
