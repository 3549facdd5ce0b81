#!/usr/bin/env bash
# Cluster throughput and latency against one node, on this machine (release build):
#
#   - durable QoS 1 pairs (100 pairs, 64 B, MQTT 3.1.1, persistent subscribers, sync=batch) on
#     a single node, and on a 3-node cluster with the publishers on node 1 and the
#     subscribers on node 2, so every message is replicated by Raft and crosses nodes;
#   - QoS 0 pairs at a fixed rate from node 1 to clean subscribers on node 2 (the fast path
#     between nodes), for its latency.
#
#   scripts/bench-cluster.sh [DURATION_SECONDS] [RATE_MSGS_PER_S]
#
# Each node gets one worker thread (KEEL_WORKER_THREADS to change): three nodes and the load
# generator share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
RATE="${2:-10000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keel-target}"
cargo build --release --workspace --bin keel --bin keel-bench >/dev/null
KEEL="$CARGO_TARGET_DIR/release/keel"
BENCH="$CARGO_TARGET_DIR/release/keel-bench"
WORK="$(mktemp -d /tmp/keel-bench-cluster.XXXXXX)"
PIDS=()
stop() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap stop EXIT

printf '[durability]\nsync = "batch"\n[mqtt]\nsys_interval_secs = 0\n' > "$WORK/keel.toml"

wait_port() {
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "nothing listens on $1" >&2
    return 1
}

start_node() { # id peers
    local id="$1" peers="$2"
    local flags=()
    if [ -n "$peers" ]; then
        # Plaintext between the nodes, as the figures of earlier runs were measured.
        flags+=(--node-id "$id" --cluster-listen "127.0.0.1:$((27000 + id))" --peers "$peers" --cluster-insecure)
    fi
    TOKIO_WORKER_THREADS="${KEEL_WORKER_THREADS:-1}" "$KEEL" serve --config "$WORK/keel.toml" \
        --listen "127.0.0.1:$((21882 + id))" --ws-listen "" \
        --http-listen "127.0.0.1:$((28082 + id))" --data-dir "$WORK/data$id" "${flags[@]}" \
        >"$WORK/node$id.log" 2>&1 &
    PIDS+=($!)
}

wait_ready() { # admin port: until it serves and knows a leader
    for _ in $(seq 300); do
        if curl -s --max-time 1 "http://127.0.0.1:$1/api/v1/cluster" | grep -q '"leader":[0-9].*"serving":true\|"serving":true.*"leader":[0-9]'; then
            return 0
        fi
        sleep 0.1
    done
    echo "node on admin port $1 not ready" >&2
    return 1
}

line() { # name output-file
    printf '%-44s %s | %s | %s\n' "$1" \
        "$(grep -m1 '^delivered' "$2")" "$(grep -m1 '^latency' "$2")" "$(grep -m1 '^correctness' "$2")"
}

# One node.
rm -rf "$WORK"/data*
start_node 1 ""
wait_port 21883
wait_ready 28083
"$BENCH" --port 21883 --duration "$DURATION" --persistent pairs --count 100 --qos 1 > "$WORK/single.out" 2>&1
stop
line "1 node, durable QoS 1 pairs" "$WORK/single.out"

# Three nodes.
rm -rf "$WORK"/data*
PEERS="1@127.0.0.1:27001,2@127.0.0.1:27002,3@127.0.0.1:27003"
for id in 1 2 3; do start_node "$id" "$PEERS"; done
for id in 1 2 3; do wait_port $((21882 + id)); wait_ready $((28082 + id)); done
# Publishers on a follower go to the leader through gRPC: say which node leads.
leader="$(curl -s --max-time 1 http://127.0.0.1:28083/api/v1/cluster | grep -o '"leader":[0-9]*' | cut -d: -f2)"
echo "3 nodes: node ${leader:-?} leads"
"$BENCH" --port 21883 --sub-port 21884 --duration "$DURATION" --persistent \
    pairs --count 100 --qos 1 > "$WORK/cluster.out" 2>&1
line "3 nodes, durable QoS 1 pairs, node 1 -> 2" "$WORK/cluster.out"
"$BENCH" --port 21883 --sub-port 21884 --duration "$DURATION" --rate "$RATE" \
    pairs --count 100 --qos 0 > "$WORK/qos0.out" 2>&1
line "3 nodes, QoS 0 at $RATE/s, node 1 -> 2" "$WORK/qos0.out"
stop
echo "logs and full reports: $WORK"
