#!/usr/bin/env bash
# Fuzzes what the inference server reads from callers (cargo-fuzz targets in
# inference-server/fuzz): the JSON request decoder, the binary data extension
# and BYTES tensors, each for AIMASS_FUZZ_RUNS executions (10 million by
# default), and prints the executions and crashes of each. Not part of
# `make test`: it takes minutes per target.
#
# cargo-fuzz wants a nightly compiler for its -Z flags; RUSTC_BOOTSTRAP lets
# the stable toolchain take them. No sanitizer runtime is needed
# (--sanitizer none): a panic is what counts as a crash here, and the code is
# free of `unsafe`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"
cd "$here/.."

runs="${AIMASS_FUZZ_RUNS:-10000000}"
cargo_fuzz_version="0.13.2"
tools="$AIMASS_CACHE_DIR/cargo-fuzz-$cargo_fuzz_version"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  log "installing cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version" --root "$tools"
fi
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
work="$AIMASS_CACHE_DIR/fuzz"
export CARGO_TARGET_DIR="$work/target"
mkdir -p "$work"

cd inference-server
status=0
for target in json_request binary_extension bytes_tensor; do
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log "fuzzing $target for $runs executions"
  report="$work/$target.log"
  if cargo fuzz run --sanitizer none --release "$target" "$corpus" -- \
      -runs="$runs" -artifact_prefix="$artifacts/" -print_final_stats=1 >"$report" 2>&1; then
    result="0 crashes"
  else
    result="CRASHED (see $report and $artifacts)"
    status=1
  fi
  executed="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$report" | grep -o '[0-9]*$' || echo '?')"
  printf '%-18s %12s executions  %s\n' "$target" "$executed" "$result"
done
exit "$status"
