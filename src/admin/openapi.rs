//! `GET /api/v1/openapi.json`: the API described in OpenAPI 3.0. Written by hand next to the
//! routes; `tests/operations/admin.rs` asks every operation it lists of a running node, so a
//! route missing from the node (or renamed) fails a test.

use axum::Json;
use serde_json::{json, Value};

fn paging() -> Value {
    json!([
        { "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 1, "default": 1 } },
        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 10000, "default": 100 } }
    ])
}

/// An operation with the answers every operation may give: 200, 400, 401 (with credentials
/// configured), 404, and 503 when it took longer than `admin.request_timeout_secs`.
fn op(summary: &str) -> Value {
    json!({
        "summary": summary,
        "responses": {
            "200": { "description": "done" },
            "400": { "description": "a bad request (JSON: {\"error\": ...})" },
            "401": { "description": "credentials needed (API key or basic auth)" },
            "404": { "description": "no such thing" },
            "503": { "description": "not answered within admin.request_timeout_secs" }
        }
    })
}

/// `operation` with more possible answers.
fn answers(mut operation: Value, more: &[(&str, &str)]) -> Value {
    for (status, description) in more {
        operation["responses"][*status] = json!({ "description": description });
    }
    operation
}

/// Why a membership change may be refused.
const CHANGE_REFUSED: &str = "not the leader (with leader_id and leader_addr), another change \
    running, the node not answering at its address as that id or not catching up, or the \
    voters after the change without a reachable majority (JSON: {\"error\": why})";

fn with(mut operation: Value, key: &str, value: Value) -> Value {
    operation[key] = value;
    operation
}

fn path_param(name: &str) -> Value {
    json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }])
}

/// The description of every operation of the API.
pub fn spec() -> Value {
    let body = |schema: Value| json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Keel admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Cluster, clients, sessions, subscriptions, retained messages, publishing, per-client traces, health and metrics of a Keel node. Errors are JSON: {\"error\": \"...\"}."
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer" },
                "basic": { "type": "http", "scheme": "basic" }
            }
        },
        "security": [ { "apiKey": [] }, { "basic": [] } ],
        "paths": {
            "/healthz": { "get": with(answers(op("200 while the node serves clients, 503 without quorum"),
                &[("503", "the node serves no clients (no quorum)")]), "security", json!([])) },
            "/metrics": { "get": op("Prometheus text exposition") },
            "/api/v1/openapi.json": { "get": op("this document") },
            "/api/v1/cluster": { "get": op("nodes, roles, leader, term, log and applied index") },
            "/api/v1/cluster/nodes": { "post": with(answers(op("add a node: it must answer at addr as that id; a learner until caught up, then a voter; on the leader"),
                &[("409", CHANGE_REFUSED), ("503", "Raft failed, or not answered in time")]), "requestBody",
                body(json!({ "type": "object", "required": ["id", "addr"], "properties": { "id": { "type": "integer" }, "addr": { "type": "string" } } }))) },
            "/api/v1/cluster/nodes/{id}": { "delete": with(answers(op("remove a node; on the leader"),
                &[("409", CHANGE_REFUSED), ("503", "Raft failed, or not answered in time")]), "parameters", path_param("id")) },
            "/api/v1/clients": { "get": with(op("clients connected to this node"), "parameters", paging()) },
            "/api/v1/clients/{client_id}": {
                "get": with(op("a client connected to this node"), "parameters", path_param("client_id")),
                "delete": with(op("disconnect it (MQTT 5: 0x98 Administrative action)"), "parameters", path_param("client_id"))
            },
            "/api/v1/sessions/{client_id}": { "get": with(op("a session: subscriptions, queue, in-flight state"), "parameters", path_param("client_id")) },
            "/api/v1/subscriptions": { "get": with(op("subscriptions, all or one client's (?client_id=)"), "parameters",
                json!([paging()[0], paging()[1], { "name": "client_id", "in": "query", "schema": { "type": "string" } }])) },
            "/api/v1/retained": { "get": with(op("retained messages, all or matching ?topic=FILTER"), "parameters",
                json!([paging()[0], paging()[1], { "name": "topic", "in": "query", "schema": { "type": "string" } }])) },
            "/api/v1/retained/{topic}": {
                "get": with(op("one retained message with its payload (text, or payload_base64)"), "parameters", path_param("topic")),
                "delete": with(answers(op("delete it (an empty retained publish, answered once committed)"),
                    &[("422", "the broker refused the publish (with its reason_code)"), ("503", "the node serves no clients now")]), "parameters", path_param("topic"))
            },
            "/api/v1/trace": { "get": op("the clients traced on this node, with trace_clients_max and trace_events_max") },
            "/api/v1/trace/{client_id}": {
                "post": with(with(with(op("start tracing a client: every packet it sends and is sent (type, packet id, topic, QoS, reason codes, sizes), CONNECT refusals and disconnections, kept in a ring of trace_events_max events and logged at info under target keel::trace; 201 started, 200 already traced, 409 trace_clients_max reached"),
                    "parameters", path_param("client_id")),
                    "requestBody", json!({ "required": false, "content": { "application/json": { "schema":
                        { "type": "object", "properties": { "payload": { "type": "boolean", "default": false, "description": "keep the first 256 bytes of each PUBLISH payload" } } } } } })),
                    "responses", json!({
                        "200": { "description": "already traced" }, "201": { "description": "started" },
                        "400": { "description": "not a client id, or a bad body" },
                        "401": { "description": "credentials needed (API key or basic auth)" },
                        "409": { "description": "trace_clients_max clients are traced already" },
                        "503": { "description": "not answered within admin.request_timeout_secs" } })),
                "get": with(with(op("the events of a traced client, oldest first, each with its seq; ?since=SEQ for the newer ones only"),
                    "parameters", json!([path_param("client_id")[0], { "name": "since", "in": "query", "schema": { "type": "integer", "minimum": 0 } }])),
                    "responses", json!({
                        "200": { "description": "the trace: client_id, started_at_ms, payload, capacity, overwritten, last_seq, events" },
                        "400": { "description": "not a client id, or a bad ?since" },
                        "401": { "description": "credentials needed (API key or basic auth)" },
                        "404": { "description": "the client is not traced" },
                        "503": { "description": "not answered within admin.request_timeout_secs" } })),
                "delete": with(op("stop tracing a client and forget its events"), "parameters", path_param("client_id"))
            },
            "/api/v1/reload": { "post": answers(op("read the configuration again (as SIGHUP): auth, ACL, admin access, session limits; 400 keeps the one in force"),
                &[("409", "the node was not started from a configuration it can read again")]) },
            "/api/v1/publish": { "post": with(answers(op("publish a message (the topic by MQTT's rules: not empty, no wildcard), answered when the broker acknowledges it"),
                &[("422", "the broker refused the publish (with its reason_code)"), ("503", "the node serves no clients now")]), "requestBody",
                body(json!({ "type": "object", "required": ["topic"], "properties": {
                    "topic": { "type": "string" }, "payload": { "type": "string" },
                    "encoding": { "type": "string", "enum": ["plain", "base64"] },
                    "qos": { "type": "integer", "enum": [0, 1, 2] }, "retain": { "type": "boolean" } } }))) }
        }
    })
}

pub(super) async fn openapi() -> Json<Value> {
    Json(spec())
}
