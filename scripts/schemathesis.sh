#!/usr/bin/env bash
# Schemathesis (PyPI) against the admin API's OpenAPI document, on a node with an API key:
#
#   1. with the key: no 5xx answer, no status or content type the document does not list;
#   2. without it: the same, and nothing the node holds changed (retained messages, traces,
#      the cluster's membership), since every request but /healthz must be refused.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]     (default 25 per operation)
#
# Installs schemathesis with pip if it is missing. Uses $KEEL_BIN, else builds the release
# binary.
set -euo pipefail

EXAMPLES="${1:-25}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${KEEL_BIN:-$TARGET/release/keel}"
KEY="schemathesis-admin-key-0123456789"

command -v schemathesis >/dev/null || python3 -m pip install --quiet schemathesis
[ -x "$BIN" ] || cargo build --release --bin keel

WORK="$(mktemp -d)"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MQTT="$(free_port)"
ADMIN="$(free_port)"
cat >"$WORK/keel.toml" <<EOF
[listeners]
tcp = "127.0.0.1:$MQTT"
ws = ""
http = "127.0.0.1:$ADMIN"
[mqtt]
sys_interval_secs = 0
[durability]
store = "memory"
[admin]
api_key = "$KEY"
EOF
"$BIN" serve --config "$WORK/keel.toml" --data-dir "$WORK/data" >"$WORK/keel.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null && break
    sleep 0.1
done

# A node with credentials serves its document only to callers that have them: schemathesis
# gets it as a file.
curl -sf -H "Authorization: Bearer $KEY" "http://127.0.0.1:$ADMIN/api/v1/openapi.json" >"$WORK/openapi.json"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance"
run() { # extra schemathesis flags
    schemathesis run "$WORK/openapi.json" --url "http://127.0.0.1:$ADMIN" --checks "$CHECKS" \
        --max-examples "$EXAMPLES" --seed 16 --phases examples,coverage,fuzzing --workers 1 \
        --warnings off "$@"
}
state() { # what an unauthenticated request must not change
    for path in /api/v1/retained?limit=10000 /api/v1/trace /api/v1/cluster; do
        curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$ADMIN$path" |
            python3 -c 'import json, sys; d = json.load(sys.stdin); [d.pop(k, None) for k in ("millis_since_quorum_ack", "term", "last_log_index", "applied_index", "snapshot_index")]; print(json.dumps(d, sort_keys=True))'
    done
}

echo "== with the API key"
# The key travels as a header; the document's securitySchemes name it as bearer auth.
run -H "Authorization: Bearer $KEY"

echo "== without credentials"
before="$(state)"
run
after="$(state)"
if [ "$before" != "$after" ]; then
    echo "an unauthenticated run changed the node's state:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
fi
echo "no state changed without credentials"
