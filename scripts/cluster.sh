#!/usr/bin/env bash
# A local Keel cluster on loopback, in one command.
#
#   scripts/cluster.sh up [N]     build (release) if needed and start N nodes (default 3)
#   scripts/cluster.sh status     each node's view of the cluster (GET /api/v1/cluster)
#   scripts/cluster.sh kill I     SIGKILL node I (its data stays)
#   scripts/cluster.sh start I    start node I again on its data directory
#   scripts/cluster.sh roll       restart every node, one at a time (a rolling restart)
#   scripts/cluster.sh down       stop every node (SIGTERM) and keep the data
#   scripts/cluster.sh clean      stop every node and delete the data
#
# Node I (from 1) listens on MQTT 127.0.0.1:(1882+I), WebSocket :(8082+I)/mqtt, admin HTTP
# :(18082+I) and for its peers on :(7000+I); its data, log and pid file are in
# ${KEEL_CLUSTER_DIR:-./keel-cluster}/nodeI. The nodes talk over mutual TLS: `up` makes a
# cluster CA and a certificate per node (keel cert) in ${KEEL_CLUSTER_DIR}/certs.
# Set KEEL_BIN to use another binary, and KEEL_NODE_CONFIG to a TOML file of settings that
# `up` adds to every node's configuration.
#
# `roll` restarts the followers first and the leader last, each with SIGTERM (a leader hands
# its leadership to an up-to-date peer before it stops) and waits, before the next, until
# the node is back, serving, and has caught up with the leader's log.
set -euo pipefail

DIR="${KEEL_CLUSTER_DIR:-./keel-cluster}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${KEEL_BIN:-$TARGET/release/keel}"

die() { echo "cluster.sh: $*" >&2; exit 1; }

nodes() { cat "$DIR/size" 2>/dev/null || echo 3; }

peers() {
    local n="$1" list="" i
    for i in $(seq 1 "$n"); do
        list="${list:+$list,}$i@127.0.0.1:$((7000 + i))"
    done
    echo "$list"
}

# The cluster CA (once) and node I's certificate and configuration (once per node).
node_tls() {
    local i="$1" dir="$DIR/node$1" certs="$DIR/certs"
    [ -f "$certs/ca.pem" ] || "$BIN" cert create-ca --dir "$certs" 2>/dev/null
    [ -f "$certs/node-$i.pem" ] || "$BIN" cert create-node --node-id "$i" --host 127.0.0.1 --dir "$certs" 2>/dev/null
    if [ ! -f "$dir/keel.toml" ]; then
        printf '[cluster.tls]\nca = "%s"\ncert = "%s"\nkey = "%s"\n' \
            "$certs/ca.pem" "$certs/node-$i.pem" "$certs/node-$i.key" >"$dir/keel.toml"
        # More settings for every node (TOML tables other than [cluster.tls]).
        if [ -n "${KEEL_NODE_CONFIG:-}" ]; then cat "$KEEL_NODE_CONFIG" >>"$dir/keel.toml"; fi
    fi
}

start_node() {
    local i="$1" n dir
    n="$(nodes)"
    dir="$DIR/node$i"
    mkdir -p "$dir"
    node_tls "$i"
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "node $i already runs (pid $(cat "$dir/pid"))"
        return
    fi
    "$BIN" serve \
        --config "$dir/keel.toml" \
        --node-id "$i" \
        --listen "127.0.0.1:$((1882 + i))" \
        --ws-listen "127.0.0.1:$((8082 + i))" \
        --http-listen "127.0.0.1:$((18082 + i))" \
        --cluster-listen "127.0.0.1:$((7000 + i))" \
        --peers "$(peers "$n")" \
        --data-dir "$dir/data" \
        >>"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    echo "node $i: pid $!, MQTT 127.0.0.1:$((1882 + i)), admin http://127.0.0.1:$((18082 + i))"
}

# Sends SIGNAL to node I and waits (30 s at most) until it has exited.
stop_node() {
    local i="$1" signal="$2" pid_file="$DIR/node$1/pid" pid
    [ -f "$pid_file" ] || return 0
    pid="$(cat "$pid_file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "-$signal" "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && die "node $i (pid $pid) is still running 30 s after SIG$signal"
    fi
    rm -f "$pid_file"
}

# Node I's view of the cluster (GET /api/v1/cluster), or nothing.
view() {
    curl -s --max-time 2 "http://127.0.0.1:$((18082 + $1))/api/v1/cluster" || true
}

# A top-level field of a node's view ("" when absent or null).
field() {
    python3 -c 'import json, sys
try:
    value = json.loads(sys.argv[1]).get(sys.argv[2])
except ValueError:
    value = None
print("" if value is None else str(value).lower())' "$1" "$2"
}

# The index up to which node I's log matches the leader's, in the leader's view ("" if none).
matched() {
    python3 -c 'import json, sys
try:
    nodes = json.loads(sys.argv[1]).get("nodes", [])
except ValueError:
    nodes = []
print(next((str(n["matched_index"]) for n in nodes
            if n["id"] == int(sys.argv[2]) and n["matched_index"] is not None), ""))' "$1" "$2"
}

# The leader as any node sees it ("" when none answers with one).
leader() {
    local i id
    for i in $(seq 1 "$(nodes)"); do
        id="$(field "$(view "$i")" leader)"
        if [ -n "$id" ]; then echo "$id"; return; fi
    done
}

# Waits (60 s at most) until node I serves, knows a leader, and that leader has replicated to
# node I everything it had when node I came back.
wait_caught_up() {
    local i="$1" target="" lead lead_view mine
    for _ in $(seq 1 300); do
        mine="$(view "$i")"
        lead="$(field "$mine" leader)"
        if [ "$(field "$mine" serving)" = "true" ] && [ -n "$lead" ]; then
            lead_view="$(view "$lead")"
            [ -n "$target" ] || target="$(field "$lead_view" last_log_index)"
            if [ "$lead" = "$i" ] || { [ -n "$target" ] && [ "$(matched "$lead_view" "$i")" -ge "$target" ] 2>/dev/null; }; then
                return 0
            fi
        fi
        sleep 0.2
    done
    die "node $i has not caught up 60 s after its restart; see $DIR/node$i/log"
}

case "${1:-}" in
    up)
        n="${2:-3}"
        [ "$n" -ge 1 ] || die "a cluster needs at least one node"
        if [ ! -x "$BIN" ]; then
            echo "building $BIN"
            cargo build --release --bin keel
        fi
        mkdir -p "$DIR"
        echo "$n" >"$DIR/size"
        for i in $(seq 1 "$n"); do start_node "$i"; done
        echo "waiting until every node knows the leader and serves..."
        for _ in $(seq 1 150); do
            ready=0
            for i in $(seq 1 "$n"); do
                view="$(curl -s --max-time 1 "http://127.0.0.1:$((18082 + i))/api/v1/cluster" || true)"
                if echo "$view" | grep -q '"leader":[0-9]' && echo "$view" | grep -q '"serving":true'; then
                    ready=$((ready + 1))
                fi
            done
            if [ "$ready" -eq "$n" ]; then
                "$0" status
                exit 0
            fi
            sleep 0.2
        done
        die "the cluster is not ready after 30 s; see $DIR/node*/log"
        ;;
    status)
        for i in $(seq 1 "$(nodes)"); do
            echo "node $i: $(curl -s --max-time 2 "http://127.0.0.1:$((18082 + i))/api/v1/cluster" || echo 'not answering')"
        done
        ;;
    kill)
        [ -n "${2:-}" ] || die "which node?"
        stop_node "$2" KILL
        echo "node $2 killed"
        ;;
    start)
        [ -n "${2:-}" ] || die "which node?"
        start_node "$2"
        ;;
    roll)
        first_leader="$(leader)"
        [ -n "$first_leader" ] || die "no node knows a leader: is the cluster up?"
        order=""
        for i in $(seq 1 "$(nodes)"); do
            [ "$i" = "$first_leader" ] || order="$order $i"
        done
        for i in $order $first_leader; do
            started="$(date +%s.%N)"
            echo "node $i: stopping (SIGTERM)$([ "$i" = "$first_leader" ] && echo ', hands leadership over')"
            stop_node "$i" TERM
            start_node "$i" >/dev/null
            wait_caught_up "$i"
            printf 'node %s: back, serving and caught up after %.1f s (leader: node %s)\n' \
                "$i" "$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$(leader)"
        done
        echo "rolling restart done"
        ;;
    down)
        for i in $(seq 1 "$(nodes)"); do stop_node "$i" TERM; done
        echo "stopped; data kept in $DIR"
        ;;
    clean)
        for i in $(seq 1 "$(nodes)"); do stop_node "$i" TERM; done
        rm -rf "$DIR"
        echo "stopped and removed $DIR"
        ;;
    *)
        sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
