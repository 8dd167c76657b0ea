#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, libFuzzer, stable toolchain, so --sanitizer none) and runs each
# for a bounded time from the seed corpus in fuzz/corpus/<target>/. Fails on a crash, a timeout, an
# out-of-memory or an allocation over the limit; the input is kept in fuzz/artifacts/<target>/ and its
# path printed. Prints each target's executions per second and inputs tried.
# Usage: fuzz/run.sh [seconds per target, default 30] [target ...]
# A long run of one target (new inputs are kept in the seed corpus): docs/security-testing.md.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(payment_request camt settlement_csv client_assertion form registry_toml)

# .ci/run builds in a stage of its own (to time it) and sets FUZZ_BUILT=1.
if [ "${FUZZ_BUILT:-0}" != 1 ]; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
  cargo fuzz build --sanitizer none
fi
BIN_DIR=target/$(rustc -vV | sed -n 's/^host: //p')/release

FAILED=0
for target in "${TARGETS[@]}"; do
  mkdir -p "artifacts/$target"
  work=$(mktemp -d)
  log=$(mktemp)
  echo "-- $target (${SECONDS_EACH}s)"
  # New inputs go to a scratch directory; the committed seeds are read only.
  if "$BIN_DIR/$target" "$work" "corpus/$target" \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="artifacts/$target/" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "   ok: ${runs:-?} inputs tried, ${rate:-?} executions/s, corpus $(ls "$work" | wc -l) new inputs"
  else
    FAILED=1
    tail -n 40 "$log"
    echo "   FAILED: $target; the input is in fuzz/$(grep -o 'artifacts/[^ ]*' "$log" | tail -n 1)" >&2
  fi
  rm -rf "$work" "$log"
done
exit "$FAILED"
