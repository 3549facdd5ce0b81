#!/usr/bin/env bash
# A rolling restart under load: starts a 3-node cluster on loopback (scripts/cluster.sh up),
# runs the Jepsen-style workload against it (QoS 1 and 2 publishers, persistent subscribers,
# a shared group, retained readers; keel-jepsen --external), restarts every node once with
# `scripts/cluster.sh roll` in the middle, and judges the history with the simulator's
# checkers: nothing acknowledged lost, no QoS 2 message twice. The summary reports the
# longest window without an acknowledgement ("max unavailability").
#
#   scripts/roll-test.sh              # 60 s of load (the roll inside it) + 30 s of liveness
#   ROLL_SECONDS=120 scripts/roll-test.sh
#
# Needs no root. Uses the ports of scripts/cluster.sh (1883-1885, 7001-7003, 18083-18085).
# Exit status: 0 valid, 1 invalid, 2 the run could not be made. The report goes to
# jepsen/store/<run>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keel-target}"
seconds="${ROLL_SECONDS:-60}"

cargo build --release --workspace --bin keel --bin keel-jepsen
export KEEL_BIN="$CARGO_TARGET_DIR/release/keel"
KEEL_CLUSTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/keel-roll.XXXXXX")"
export KEEL_CLUSTER_DIR
# As in jepsen/: the workload's subscribers drop and take over their own connections so often
# that they fall far behind; a larger queue bound keeps the run about delivery, not overflow
# (any overflow is reported).
export KEEL_NODE_CONFIG="$KEEL_CLUSTER_DIR/node-extra.toml"
cat >"$KEEL_NODE_CONFIG" <<'TOML'
[mqtt]
queue_max = 100000
sys_interval_secs = 0
TOML
trap 'scripts/cluster.sh clean >/dev/null' EXIT

scripts/cluster.sh up 3 >/dev/null
status=0
out="$(mktemp)"
"$CARGO_TARGET_DIR/release/keel-jepsen" \
    --external 127.0.0.1:1883,127.0.0.1:1884,127.0.0.1:1885 \
    --external-admin 127.0.0.1:18083,127.0.0.1:18084,127.0.0.1:18085 \
    --during "scripts/cluster.sh roll" \
    --time-limit "$seconds" --liveness 30 "$@" 2>&1 | tee "$out" || status=$?
# The nodes' logs go into the run's report directory before the cluster is removed.
report="$(sed -n 's/^report: //p' "$out")"
if [ -n "$report" ] && [ -d "$report" ]; then
    for i in 1 2 3; do cp "$KEEL_CLUSTER_DIR/node$i/log" "$report/n$i.log"; done
fi
rm -f "$out"
exit "$status"
