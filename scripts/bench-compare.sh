#!/usr/bin/env bash
# Runs the same keel-bench scenarios against Mosquitto, rumqttd and Keel on this machine, one
# broker at a time (a fresh broker process per scenario), and prints Keel's ratio to each peer.
#
#   scripts/bench-compare.sh [--brokers mosquitto,rumqttd,keel] [--duration 20] [--warmup 2]
#                            [--scenarios pairs-q1,pairs-q2,fanout-q0,fanout-q1,rate10k,idle]
#                            [--mqtt-version 3|5] [--idle-connections 10000] [--out DIR]
#                            [--repeat N]
#
# Installs what is missing: Mosquitto (Debian package), rumqttd (`cargo install rumqttd`, kept
# under $RUMQTTD_ROOT, default /var/tmp/rumqttd-install; several minutes the first time), jq.
# Builds keel and keel-bench once in release (CARGO_TARGET_DIR, default /var/tmp/keel-target).
# A broker that fails to start is reported and skipped, the others still run.
#
# Each run's JSON line (keel-bench --json, plus "broker" and "case") goes to DIR/results.jsonl.
# `--report FILE` prints the tables again from such a file without running anything.
# `--repeat N` runs every scenario N times, the brokers taking turns, and the tables show the
# median of each figure (and the worst lost/duplicated counts): one run on a shared 2-core
# machine varies by 10-20 %, more than the differences a latency comparison looks for.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPTS="$PWD/scripts"

BROKERS="mosquitto,rumqttd,keel"
SCENARIOS="pairs-q1,pairs-q2,fanout-q0,fanout-q1,rate10k,idle"
DURATION=20
WARMUP=2
DRAIN=10
MQTT_VERSION=3
PAIRS=100
FANOUT=1000
RATE=10000
IDLE_CONNECTIONS=10000
REPEAT=1
OUT=""
REPORT_ONLY=""
EXTRA=()

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --brokers) BROKERS="$2"; shift 2 ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --drain) DRAIN="$2"; shift 2 ;;
        --mqtt-version) MQTT_VERSION="$2"; shift 2 ;;
        --pairs) PAIRS="$2"; shift 2 ;;
        --fanout) FANOUT="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --idle-connections) IDLE_CONNECTIONS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --report) REPORT_ONLY="$2"; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

# --- Report (printed from the JSON lines) ----------------------------------------------------
# One line per (case, broker): the median of every figure over its runs, the worst of the
# error counts, and how many runs there were.
aggregate() {
    jq -c -s '
      def median: sort | if length == 0 then null
                         elif length % 2 == 1 then .[length / 2 | floor]
                         else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      map(select(.failed != true)) | group_by([.case, .broker])[] |
      . as $runs | $runs[0] + {runs: ($runs | length)} +
      ([ "msgs_per_sec", "p50_ms", "p99_ms", "p999_ms", "broker_cpu_percent",
         "broker_cpu_us_per_msg", "loadgen_cpu_us_per_msg", "broker_rss_kb_end",
         "kb_per_connection", "connections_made" ] |
        map(. as $k | {($k): ($runs | map(.[$k] | select(. != null)) | median
                               | if . == null then null else . * 1000 | round / 1000 end)})
        | add) +
      ([ "lost", "duplicated", "out_of_order" ] |
        map(. as $k | {($k): ($runs | map(.[$k] // 0) | max)}) | add) ' "$1"
    jq -c 'select(.failed == true)' "$1"
}

report() {
    local RESULTS AGGREGATED="$1"
    RESULTS="$(mktemp)"
    aggregate "$AGGREGATED" > "$RESULTS"
    echo
    echo "Results ($AGGREGATED): $(jq -rs 'map(select(.failed != true)) | first |
        "MQTT \(.mqtt_version // "?"), \(.duration_secs // "?") s per run"' "$RESULTS"),\
     $(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "$(jq -s 'map(.runs // 1) | max' "$RESULTS")" -gt 1 ]; then
        echo "Each figure is the median of its runs (runs per case and broker: $(jq -rs \
            'map(.runs // 1) | unique | map(tostring) | join(", ")' "$RESULTS"))."
    fi
    echo
    # CPU per message (µs of CPU per delivered message) does not shrink when other processes take
    # the cores, so it is the fair way to check that the generator costs less than the broker.
    printf '%-10s %-10s %12s %9s %6s %5s %6s %7s %10s %8s %8s\n' \
        case broker msgs/s p99_ms lost dup ooo cpu% rss_kb brk_us gen_us
    jq -r 'select(.failed != true) | [.case, .broker,
            (if .scenario == "idle" then "-" else (.msgs_per_sec | floor | tostring) end),
            (.p99_ms // "-" | tostring), (.lost | tostring), (.duplicated | tostring),
            (.out_of_order | tostring), (.broker_cpu_percent // "-" | tostring),
            (.broker_rss_kb_end // "-" | tostring), (.broker_cpu_us_per_msg // "-" | tostring),
            (.loadgen_cpu_us_per_msg // "-" | tostring)] | @tsv' \
        "$RESULTS" | while IFS=$'\t' read -r c b m p l d o cpu rss bus gus; do
        printf '%-10s %-10s %12s %9s %6s %5s %6s %7s %10s %8s %8s\n' "$c" "$b" "$m" "$p" "$l" "$d" "$o" "$cpu" "$rss" "$bus" "$gus"
    done
    jq -r 'select(.scenario == "idle" and .failed != true) |
        "idle \(.broker): \(.connections_made)/\(.connections_asked) connections, \(.kb_per_connection // "?") KB broker RSS each"' "$RESULTS"
    jq -r 'select(.failed != true and .scenario != "idle" and .broker_cpu_us_per_msg != null
                  and .loadgen_cpu_us_per_msg > .broker_cpu_us_per_msg) |
        "note: \(.case) on \(.broker): the generator used more CPU per message than the broker"' "$RESULTS"
    jq -r 'select(.failed == true) | "failed: \(.case) on \(.broker)"' "$RESULTS"

    echo
    echo "Keel's ratio to each peer (throughput: Keel ÷ peer, higher is better; rate10k p99 and"
    echo "idle KB/connection: Keel ÷ peer, lower is better):"
    jq -rs '
      def metric: if .scenario == "idle" then .kb_per_connection
                  elif .rate != null then .p99_ms else .msgs_per_sec end;
      def name: if .scenario == "idle" then "KB/conn" elif .rate != null then "p99 ms" else "msgs/s" end;
      map(select(.failed != true)) | group_by(.case)[] |
      (map(select(.broker == "keel")) | first) as $k |
      .[] | select(.broker != "keel") |
      if $k == null then "\(.case): \(.broker) \(name) \(metric) — keel: no result"
      elif (metric // 0) == 0 then "\(.case): keel÷\(.broker) n/a"
      else "\(.case): keel÷\(.broker) = \(($k | metric) / metric * 100 | round / 100) (\(name): keel \($k | metric), \(.broker) \(metric); keel lost \($k.lost) dup \($k.duplicated) ooo \($k.out_of_order))"
      end' "$RESULTS"

    echo
    echo "Targets (Keel ≥ 2× Mosquitto's msgs/s with 0 lost, 0 duplicated; at 10 k msgs/s p99 no"
    echo "worse than Mosquitto's; idle ≤ 4 KB/connection):"
    jq -rs '
      map(select(.failed != true)) as $all |
      def get(c; b): $all | map(select(.case == c and .broker == b)) | first;
      (["pairs-q1", "pairs-q2", "fanout-q0", "fanout-q1"][] as $c |
        get($c; "keel") as $k | get($c; "mosquitto") as $m |
        if $k == null or $m == null then "\($c): not measured (needs keel and mosquitto)"
        else ($k.msgs_per_sec / $m.msgs_per_sec) as $r |
          "\($c): \(if $r >= 2 and $k.lost == 0 and $k.duplicated == 0 then "PASS" else "FAIL" end) (\($r * 100 | round / 100)×, lost \($k.lost), dup \($k.duplicated)\(if $k.out_of_order > 0 then "; but \($k.out_of_order) out of order, which MQTT forbids too" else "" end))"
        end),
      (get("rate10k"; "keel") as $k | get("rate10k"; "mosquitto") as $m |
        if $k == null or $m == null then "rate10k: not measured (needs keel and mosquitto)"
        else "rate10k: \(if $k.p99_ms <= $m.p99_ms then "PASS" else "FAIL" end) (p99 keel \($k.p99_ms) ms, mosquitto \($m.p99_ms) ms)"
        end),
      (get("idle"; "keel") as $k |
        if $k == null then "idle: not measured"
        else "idle: \(if ($k.kb_per_connection // 1e9) <= 4 then "PASS" else "FAIL" end) (\($k.kb_per_connection) KB/connection)"
        end)' "$RESULTS"
    rm -f "$RESULTS"
}
if [ -n "$REPORT_ONLY" ]; then
    report "$REPORT_ONLY"
    exit 0
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keel-target}"
RUMQTTD_ROOT="${RUMQTTD_ROOT:-/var/tmp/rumqttd-install}"
OUT="${OUT:-$(mktemp -d /tmp/keel-bench-compare.XXXXXX)}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
has_broker() { case ",$BROKERS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# --- What is needed -------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v jq >/dev/null || { log "installing jq"; apt_install jq; }
MOSQUITTO=""
if has_broker mosquitto; then
    MOSQUITTO="$(command -v mosquitto || true)"
    [ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
    if [ -z "$MOSQUITTO" ]; then
        log "installing mosquitto (Debian package)"
        apt_install mosquitto
        MOSQUITTO=/usr/sbin/mosquitto
    fi
fi
RUMQTTD=""
if has_broker rumqttd; then
    RUMQTTD="$(command -v rumqttd || true)"
    [ -z "$RUMQTTD" ] && [ -x "$RUMQTTD_ROOT/bin/rumqttd" ] && RUMQTTD="$RUMQTTD_ROOT/bin/rumqttd"
    if [ -z "$RUMQTTD" ]; then
        # Without --locked: rumqttd's own lock file does not build on current Rust.
        log "installing rumqttd into $RUMQTTD_ROOT (takes several minutes)"
        cargo install rumqttd --root "$RUMQTTD_ROOT"
        RUMQTTD="$RUMQTTD_ROOT/bin/rumqttd"
    fi
fi
log "building keel and keel-bench (release, $CARGO_TARGET_DIR)"
cargo build --release --workspace --bin keel --bin keel-bench
BENCH="$CARGO_TARGET_DIR/release/keel-bench"
KEEL="$CARGO_TARGET_DIR/release/keel"

# Idle connections need file descriptors in both the generator and the broker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "open files limit: $(ulimit -n)"

# --- Brokers --------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port below the kernel's ephemeral range, so that no client socket of an earlier run (the
# idle scenario leaves thousands in TIME_WAIT) holds it; nobody may be listening on it either.
free_port() {
    local low port
    low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
    while :; do
        port=$((10000 + RANDOM % (low - 10000)))
        port_open "$port" || { echo "$port"; return; }
    done
}

BROKER_PID=""
BROKER_PORT=""
# Starts broker $1 on a free port; sets BROKER_PID and BROKER_PORT (the port for
# $MQTT_VERSION). Returns 1 when it does not come up within 20 s.
start_broker() {
    local name="$1" dir="$OUT/$1" port port5
    mkdir -p "$dir"
    port="$(free_port)"
    case "$name" in
        mosquitto)
            sed "s/@PORT@/$port/" "$SCRIPTS/mosquitto.conf" > "$dir/mosquitto.conf"
            "$MOSQUITTO" -c "$dir/mosquitto.conf" >>"$dir/broker.log" 2>&1 &
            BROKER_PID=$!
            ;;
        rumqttd)
            port5="$(free_port)"
            sed -e "s/@PORT@/$port/" -e "s/@PORT5@/$port5/" "$SCRIPTS/rumqttd.toml" > "$dir/rumqttd.toml"
            "$RUMQTTD" -q -c "$dir/rumqttd.toml" >>"$dir/broker.log" 2>&1 &
            BROKER_PID=$!
            [ "$MQTT_VERSION" = 5 ] && port="$port5"
            ;;
        keel)
            rm -rf "$dir/data"
            # Keel as shipped: one worker thread per core (tokio's default). KEEL_WORKER_THREADS
            # sets another number (tokio reads TOKIO_WORKER_THREADS), e.g. 1 to leave the
            # generator a core of its own, as single-threaded Mosquitto does.
            TOKIO_WORKER_THREADS="${KEEL_WORKER_THREADS:-$(nproc)}" "$KEEL" serve --listen "127.0.0.1:$port" --ws-listen "127.0.0.1:$(free_port)" \
                --http-listen "127.0.0.1:$(free_port)" --data-dir "$dir/data" \
                >>"$dir/broker.log" 2>&1 &
            BROKER_PID=$!
            ;;
        *) echo "unknown broker $name" >&2; return 1 ;;
    esac
    BROKER_PORT="$port"
    for _ in $(seq 200); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            log "$name exited at start-up; last lines of $dir/broker.log:"
            tail -5 "$dir/broker.log" >&2 || true
            return 1
        fi
        port_open "$port" && return 0
        sleep 0.1
    done
    log "$name did not open port $port within 20 s"
    stop_broker
    return 1
}

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}
trap stop_broker EXIT

# --- Scenarios ------------------------------------------------------------------------------
scenario_args() {
    case "$1" in
        pairs-q1) echo "pairs --count $PAIRS --qos 1" ;;
        pairs-q2) echo "pairs --count $PAIRS --qos 2" ;;
        pairs-q0) echo "pairs --count $PAIRS --qos 0" ;;
        fanout-q0) echo "fanout --subscribers $FANOUT --qos 0" ;;
        fanout-q1) echo "fanout --subscribers $FANOUT --qos 1" ;;
        fanout-q2) echo "fanout --subscribers $FANOUT --qos 2" ;;
        fanin-q1) echo "fanin --publishers $PAIRS --qos 1" ;;
        rate10k) echo "pairs --count $PAIRS --qos 1 --rate $RATE" ;;
        idle) echo "idle --connections $IDLE_CONNECTIONS" ;;
        *) return 1 ;;
    esac
}

IFS=',' read -r -a BROKER_LIST <<< "$BROKERS"
IFS=',' read -r -a SCENARIO_LIST <<< "$SCENARIOS"
for case_name in "${SCENARIO_LIST[@]}"; do
    scenario_args "$case_name" >/dev/null || { echo "unknown scenario $case_name" >&2; exit 2; }
done

declare -A SKIPPED=()
for case_name in "${SCENARIO_LIST[@]}"; do
  for round in $(seq "$REPEAT"); do
    for broker in "${BROKER_LIST[@]}"; do
        [ -n "${SKIPPED[$broker]:-}" ] && continue
        # A port taken between the check and the bind is retried on other ports.
        started=0
        for _ in 1 2 3; do
            if start_broker "$broker"; then started=1; break; fi
        done
        if [ "$started" = 0 ]; then
            SKIPPED[$broker]="did not start three times (see $OUT/$broker/broker.log)"
            log "skipping $broker: ${SKIPPED[$broker]}"
            continue
        fi
        # shellcheck disable=SC2046 # word splitting of the scenario's arguments is intended
        args=($(scenario_args "$case_name"))
        log "$broker: $case_name (${args[*]}), ${DURATION}s, run $round of $REPEAT"
        line=""
        if line="$(timeout $((DURATION + WARMUP + 2 * DRAIN + 300)) "$BENCH" "${args[@]}" \
                --port "$BROKER_PORT" --broker-pid "$BROKER_PID" --mqtt-version "$MQTT_VERSION" \
                --duration "$DURATION" --warmup "$WARMUP" --drain "$DRAIN" --json \
                "${EXTRA[@]}" 2>>"$OUT/$broker/bench.err")"; then
            jq -c --arg broker "$broker" --arg case "$case_name" \
                '. + {broker: $broker, case: $case}' <<< "$line" | tee -a "$RESULTS" >&2
        else
            log "$broker: $case_name failed; see $OUT/$broker/bench.err"
            jq -nc --arg broker "$broker" --arg case "$case_name" \
                '{broker: $broker, case: $case, failed: true}' >> "$RESULTS"
        fi
        stop_broker
    done
  done
done

report "$RESULTS"
for broker in "${!SKIPPED[@]}"; do echo "skipped $broker: ${SKIPPED[$broker]}"; done
