//! `/api/v1/cluster`: the cluster as this node sees it, and membership changes.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use openraft::{ChangeMembers, ServerState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, Admin};
use crate::cluster::{change_refused, join};

/// The cluster as this node sees it.
pub(super) async fn cluster(State(admin): State<Admin>) -> Json<Value> {
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
pub(super) struct NewNode {
    id: u64,
    addr: String,
}

/// Adds a node (as a learner, caught up, then a voter). Only the leader can; another node
/// answers 409 with the leader it knows.
pub(super) async fn add_node(State(admin): State<Admin>, body: Option<Json<NewNode>>) -> Response {
    let Some(Json(node)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"id\": N, \"addr\": \"HOST:PORT\"}",
        );
    };
    if node.id == 0 || node.addr.is_empty() {
        return error(StatusCode::BAD_REQUEST, "id must be above 0 and addr set");
    }
    let metrics = admin.raft.metrics().borrow().clone();
    if metrics.current_leader == Some(metrics.id) {
        if let Some(reason) = change_refused(&metrics, None) {
            return error(StatusCode::CONFLICT, reason);
        }
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
pub(super) async fn remove_node(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
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
    if let Some(reason) = change_refused(&metrics, Some(id)) {
        return error(StatusCode::CONFLICT, reason);
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
