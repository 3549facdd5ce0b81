#!/usr/bin/env bash
# Durable throughput: pairs QoS 1 (100 pairs, 64 B, MQTT 3.1.1) to clean subscribers (no log
# write) and to persistent subscribers (every message committed to the Raft log in RocksDB)
# under each `durability.sync` mode. Keel gets one worker thread (KEEL_WORKER_THREADS to change),
# so the figures compare with the 2026-11-22 ones in docs/benchmarks.md.
#
#   scripts/bench-durable.sh [DURATION_SECONDS]
#
# Prints one line per case: the delivered msgs/s, latency and correctness from keel-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keel-target}"
cargo build --release --workspace --bin keel --bin keel-bench >/dev/null
KEEL="$CARGO_TARGET_DIR/release/keel"
BENCH="$CARGO_TARGET_DIR/release/keel-bench"
WORK="$(mktemp -d /tmp/keel-bench-durable.XXXXXX)"
PORT=21883
BROKER_PID=""
stop() { [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null; BROKER_PID=""; }
trap stop EXIT

run_case() {
    local name="$1" sync="$2" persistent="$3"
    rm -rf "$WORK/data"
    printf '[durability]\nsync = "%s"\n[mqtt]\nsys_interval_secs = 0\n' "$sync" > "$WORK/keel.toml"
    TOKIO_WORKER_THREADS="${KEEL_WORKER_THREADS:-1}" "$KEEL" serve --config "$WORK/keel.toml" \
        --listen "127.0.0.1:$PORT" --ws-listen "" --http-listen "" --data-dir "$WORK/data" \
        >"$WORK/$name.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    local flags=()
    [ "$persistent" = 1 ] && flags+=(--persistent)
    "$BENCH" --port "$PORT" --broker-pid "$BROKER_PID" --duration "$DURATION" "${flags[@]}" \
        pairs --count 100 --qos 1 > "$WORK/$name.out" 2>&1
    stop
    printf '%-28s %s | %s | %s\n' "$name" \
        "$(grep -m1 '^delivered' "$WORK/$name.out")" \
        "$(grep -m1 '^latency' "$WORK/$name.out")" \
        "$(grep -m1 '^correctness' "$WORK/$name.out")"
}

run_case "clean subscribers (no log)" batch 0
run_case "persistent, sync=batch" batch 1
run_case "persistent, sync=always" always 1
run_case "persistent, sync=none" none 1
echo "logs and full reports: $WORK"
