//! The admin HTTP API (DESIGN §7), on axum: the cluster (nodes, leader, term, commit and
//! applied index; joining and removing nodes), this node's clients and the sessions, health,
//! and Prometheus metrics. Served on a listener of the node's `Net`, like everything else.
//!
//! Errors are JSON (`{"error": "..."}`) with a status code that says whose fault it is.

mod listener;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use openraft::{ChangeMembers, Raft, ServerState};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cluster::{join, TypeConfig};
use crate::net::Listener;
use crate::server::Hub;

pub use listener::AdminListener;

/// What the handlers reach.
#[derive(Clone)]
pub struct Admin {
    pub hub: Arc<Hub>,
    pub raft: Raft<TypeConfig>,
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve<L: Listener>(
    listener: L,
    admin: Admin,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(AdminListener::new(listener), router(admin))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes of the API.
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/cluster/nodes", axum::routing::post(add_node))
        .route("/api/v1/cluster/nodes/{id}", delete(remove_node))
        .route("/api/v1/clients", get(clients))
        .route(
            "/api/v1/clients/{client_id}",
            get(client).delete(kick_client),
        )
        .route("/api/v1/sessions/{client_id}", get(session))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(admin)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn healthz(State(admin): State<Admin>) -> Response {
    let available = admin.hub.lock().broker.is_available();
    if available {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no quorum: not serving clients",
        )
    }
}

/// The cluster as this node sees it.
async fn cluster(State(admin): State<Admin>) -> Json<Value> {
    let metrics = admin.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let nodes: Vec<Value> = membership
        .nodes()
        .map(|(id, node)| {
            let role = if voters.contains(id) {
                "voter"
            } else {
                "learner"
            };
            let matched = metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|log_id| log_id.index);
            json!({ "id": id, "addr": node.addr, "role": role, "matched_index": matched })
        })
        .collect();
    let state = match metrics.state {
        ServerState::Leader => "leader",
        ServerState::Candidate => "candidate",
        ServerState::Follower => "follower",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    Json(json!({
        "node_id": metrics.id,
        "state": state,
        "leader": metrics.current_leader,
        "term": metrics.current_term,
        "last_log_index": metrics.last_log_index,
        "applied_index": metrics.last_applied.map(|id| id.index),
        "snapshot_index": metrics.snapshot.map(|id| id.index),
        "millis_since_quorum_ack": metrics.millis_since_quorum_ack,
        "serving": admin.hub.lock().broker.is_available(),
        "nodes": nodes,
    }))
}

#[derive(Deserialize)]
struct NewNode {
    id: u64,
    addr: String,
}

/// Adds a node (as a learner, caught up, then a voter). Only the leader can; another node
/// answers 409 with the leader it knows.
async fn add_node(State(admin): State<Admin>, body: Option<Json<NewNode>>) -> Response {
    let Some(Json(node)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"id\": N, \"addr\": \"HOST:PORT\"}",
        );
    };
    if node.id == 0 || node.addr.is_empty() {
        return error(StatusCode::BAD_REQUEST, "id must be above 0 and addr set");
    }
    let reply = join(&admin.raft, node.id, node.addr).await;
    if reply.ok {
        return Json(json!({ "ok": true, "id": node.id })).into_response();
    }
    if reply.error == "not the leader" {
        let body = json!({
            "error": "not the leader",
            "leader_id": reply.leader_id,
            "leader_addr": reply.leader_addr,
        });
        return (StatusCode::CONFLICT, Json(body)).into_response();
    }
    error(StatusCode::INTERNAL_SERVER_ERROR, reply.error)
}

/// Removes a node from the voters and the membership. Only the leader can.
async fn remove_node(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "the node id is not a number");
    };
    let metrics = admin.raft.metrics().borrow().clone();
    if metrics.current_leader != Some(metrics.id) {
        let body = json!({ "error": "not the leader", "leader_id": metrics.current_leader });
        return (StatusCode::CONFLICT, Json(body)).into_response();
    }
    let membership = metrics.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("node {id} is not a member"));
    }
    if id == metrics.id {
        // openraft 0.9 has no leadership transfer, and a leader taking itself out trips
        // its own invariants: another node must lead when this one is removed.
        return error(
            StatusCode::CONFLICT,
            "the leader cannot remove itself: stop it so another node leads, then remove it there",
        );
    }
    let ids = BTreeSet::from([id]);
    if membership.voter_ids().any(|v| v == id) {
        let change = ChangeMembers::RemoveVoters(ids.clone());
        if let Err(e) = admin.raft.change_membership(change, false).await {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    }
    match admin
        .raft
        .change_membership(ChangeMembers::RemoveNodes(ids), false)
        .await
    {
        Ok(_) => Json(json!({ "ok": true, "id": id })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The clients connected to this node.
async fn clients(State(admin): State<Admin>) -> Json<Value> {
    let core = admin.hub.lock();
    let clients: Vec<Value> = core
        .broker
        .connected_clients()
        .map(|(client_id, durable)| json!({ "client_id": client_id.as_str(), "durable": durable }))
        .collect();
    Json(json!({ "node_id": core.broker.place().node, "clients": clients }))
}

async fn client(State(admin): State<Admin>, Path(client_id): Path<String>) -> Response {
    let found = admin
        .hub
        .lock()
        .broker
        .connected_clients()
        .find(|(c, _)| c.as_str() == client_id)
        .map(|(_, durable)| durable);
    match found {
        Some(durable) => {
            Json(json!({ "client_id": client_id, "durable": durable })).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("{client_id} is not connected here"),
        ),
    }
}

/// Disconnects a client connected to this node (MQTT 5: `0x98 Administrative action`).
async fn kick_client(State(admin): State<Admin>, Path(client_id): Path<String>) -> Response {
    let mut core = admin.hub.lock();
    if !core.broker.kick(&client_id) {
        return error(
            StatusCode::NOT_FOUND,
            format!("{client_id} is not connected here"),
        );
    }
    let now_ms = admin.hub.clock().unix_ms();
    core.dispatch(None, now_ms, &admin.hub.qos0_dropped);
    Json(json!({ "ok": true, "client_id": client_id })).into_response()
}

/// A session as the cluster's replicated state (or this node's local tier) holds it.
async fn session(State(admin): State<Admin>, Path(client_id): Path<String>) -> Response {
    let core = admin.hub.lock();
    let Some(session) = core.broker.session(&client_id) else {
        return error(StatusCode::NOT_FOUND, format!("no session of {client_id}"));
    };
    let subscriptions: Vec<Value> = session
        .subscriptions
        .iter()
        .map(|(filter, s)| json!({ "filter": filter.as_str(), "qos": s.options.qos as u8 }))
        .collect();
    let inflight = session.queue.iter().filter(|q| q.pubrec_received).count();
    Json(json!({
        "client_id": session.client_id.as_str(),
        "connected": session.connected,
        "node": session.place.node,
        "expiry_secs": session.expiry_secs,
        "queued": session.queue.len(),
        "awaiting_pubcomp": inflight,
        "incoming_qos2": session.incoming_qos2.len(),
        "subscriptions": subscriptions,
        "will": session.will.is_some(),
    }))
    .into_response()
}

/// Prometheus text exposition of the node's counters and its Raft state.
async fn metrics(State(admin): State<Admin>) -> Response {
    let raft = admin.raft.metrics().borrow().clone();
    let (stats, connections, sessions, subscriptions, retained) = {
        let core = admin.hub.lock();
        let broker = &core.broker;
        (
            *broker.stats(),
            broker.connection_count(),
            broker.session_count(),
            broker.subscription_count(),
            broker.state().retained().count(),
        )
    };
    let qos0_dropped = admin
        .hub
        .qos0_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        text.push_str(&format!(
            "# HELP keel_{name} {help}\n# TYPE keel_{name} {kind}\nkeel_{name} {value}\n"
        ));
    };
    gauge(
        "connections",
        "Connections serving a session.",
        "gauge",
        connections as u64,
    );
    gauge(
        "sessions",
        "Sessions, durable and local.",
        "gauge",
        sessions as u64,
    );
    gauge(
        "subscriptions",
        "Subscriptions of every session.",
        "gauge",
        subscriptions as u64,
    );
    gauge(
        "retained_messages",
        "Retained messages.",
        "gauge",
        retained as u64,
    );
    gauge(
        "messages_received_total",
        "PUBLISH packets accepted.",
        "counter",
        stats.publishes_received,
    );
    gauge(
        "messages_sent_total",
        "PUBLISH packets handed to connections.",
        "counter",
        stats.deliveries,
    );
    gauge(
        "messages_dropped_queue_full_total",
        "QoS 1/2 messages dropped for a full session queue.",
        "counter",
        stats.dropped_queue_full,
    );
    gauge(
        "messages_dropped_expired_total",
        "Messages whose expiry passed before delivery.",
        "counter",
        stats.dropped_expired,
    );
    gauge(
        "messages_dropped_qos0_total",
        "QoS 0 deliveries dropped for a slow connection.",
        "counter",
        qos0_dropped,
    );
    gauge(
        "raft_term",
        "The current Raft term.",
        "gauge",
        raft.current_term,
    );
    gauge(
        "raft_last_log_index",
        "Index of the last log entry.",
        "gauge",
        raft.last_log_index.unwrap_or(0),
    );
    gauge(
        "raft_applied_index",
        "Index of the last entry applied.",
        "gauge",
        raft.last_applied.map_or(0, |id| id.index),
    );
    gauge(
        "raft_leader",
        "1 while this node leads.",
        "gauge",
        u64::from(raft.state == ServerState::Leader),
    );
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}
