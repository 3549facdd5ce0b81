//! `/api/v1/cluster`: the cluster as this node sees it, and membership changes.

use std::collections::BTreeSet;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use openraft::ServerState;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, Admin};
use crate::cluster::ChangeError;

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

/// Adds a node: 200 once it is a voter; 400 for a malformed request; 409 with why when this
/// node does not lead, another change is running, the node does not answer as itself at its
/// address or does not catch up, or the change would leave no reachable majority.
pub(super) async fn add_node(
    State(admin): State<Admin>,
    body: Result<Json<NewNode>, JsonRejection>,
) -> Response {
    let node = match body {
        Ok(Json(node)) => node,
        Err(rejection) => {
            let why = rejection.body_text();
            let expected = "expected a JSON body {\"id\": N, \"addr\": \"HOST:PORT\"}";
            return error(StatusCode::BAD_REQUEST, format!("{expected}: {why}"));
        }
    };
    match admin.changer.add(node.id, &node.addr).await {
        Ok(_) => Json(json!({ "ok": true, "id": node.id })).into_response(),
        Err(refused) => change_error(refused),
    }
}

/// Removes a node from the voters and the membership. Only the leader can, and only while
/// the voters left have a reachable majority.
pub(super) async fn remove_node(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "the node id is not a number");
    };
    match admin.changer.remove(id).await {
        Ok(()) => Json(json!({ "ok": true, "id": id })).into_response(),
        Err(refused) => change_error(refused),
    }
}

/// A refused or failed change as its status and JSON body.
fn change_error(refused: ChangeError) -> Response {
    let status = match &refused {
        ChangeError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ChangeError::NotFound(_) => StatusCode::NOT_FOUND,
        ChangeError::NotLeader {
            leader_id,
            leader_addr,
        } => {
            let body = json!({
                "error": "not the leader",
                "leader_id": leader_id,
                "leader_addr": leader_addr,
            });
            return (StatusCode::CONFLICT, Json(body)).into_response();
        }
        ChangeError::Refused(_) => StatusCode::CONFLICT,
        ChangeError::Failed(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, refused)
}
