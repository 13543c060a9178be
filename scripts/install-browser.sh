#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser test (Playwright
# drives it through executable_path; `playwright install` is never used).
# Quiet and quick when it is present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

command -v chromium >/dev/null 2>&1 && exit 0
[ "$(id -u)" -eq 0 ] || die "installing chromium for the browser test needs root (apt-get install chromium)"
log "installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
