#!/usr/bin/env bash
# Fuzz smoke test for CI: runs every cargo-fuzz target for SECONDS (default 30) from the
# committed seeds, without a sanitizer, on stable Rust; exits non-zero on the first crash,
# leak, timeout or out-of-memory, after printing libFuzzer's report.
#
#   fuzz/smoke.sh [SECONDS]
#
# Builds into $CARGO_TARGET_DIR (default /var/tmp/keel-fuzz-target). New corpus entries go to
# a temporary directory that is removed afterwards; crash inputs stay in fuzz/artifacts/TARGET/.
set -euo pipefail

seconds="${1:-30}"
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keel-fuzz-target}"
corpus_root="$(mktemp -d)"
trap 'rm -rf "$corpus_root"' EXIT

cargo fuzz build -s none
for target in $(cargo fuzz list); do
    mkdir "$corpus_root/$target"
    log="$corpus_root/$target.log"
    echo "fuzz smoke: $target for ${seconds}s"
    # -timeout: an input that takes 10 s is a hang, not slowness.
    if ! cargo fuzz run -s none "$target" "$corpus_root/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 80 "$log"
        echo "fuzz smoke: $target FAILED"
        exit 1
    fi
    grep -E '^Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec' "$log" || true
done
echo "fuzz smoke: every target ran ${seconds}s without a crash"
