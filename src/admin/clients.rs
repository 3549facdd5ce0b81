//! `/api/v1/clients`, `/api/v1/sessions` and `/api/v1/subscriptions`: who is connected to
//! this node, the sessions the cluster keeps, their subscriptions; kicking a client.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, paged, Admin, Paging, Params};

/// The clients connected to this node, a page at a time (`?page=1&limit=100`).
pub(super) async fn clients(
    State(admin): State<Admin>,
    Params(paging): Params<Paging>,
) -> Response {
    let core = admin.hub.lock();
    let all: Vec<Value> = core
        .broker
        .connected_clients()
        .map(|(client_id, durable)| json!({ "client_id": client_id.as_str(), "durable": durable }))
        .collect();
    let base = json!({ "node_id": core.broker.place().node });
    paged(base, "clients", all, paging)
}

pub(super) async fn client(State(admin): State<Admin>, Path(client_id): Path<String>) -> Response {
    let core = admin.hub.lock();
    let found = core
        .broker
        .connected_clients()
        .find(|(c, _)| c.as_str() == client_id)
        .map(|(_, durable)| durable);
    let Some(durable) = found else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{client_id} is not connected here"),
        );
    };
    let subscriptions = core
        .broker
        .session(&client_id)
        .map_or(0, |s| s.subscriptions.len());
    Json(json!({
        "client_id": client_id,
        "durable": durable,
        "node_id": core.broker.place().node,
        "subscriptions": subscriptions,
    }))
    .into_response()
}

/// Disconnects a client connected to this node (MQTT 5: `0x98 Administrative action`).
pub(super) async fn kick_client(
    State(admin): State<Admin>,
    Path(client_id): Path<String>,
) -> Response {
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
pub(super) async fn session(State(admin): State<Admin>, Path(client_id): Path<String>) -> Response {
    let core = admin.hub.lock();
    let Some(session) = core.broker.session(&client_id) else {
        return error(StatusCode::NOT_FOUND, format!("no session of {client_id}"));
    };
    let subscriptions: Vec<Value> = session
        .subscriptions
        .iter()
        .map(|(filter, s)| json!({ "filter": filter.as_str(), "qos": s.options.qos as u8 }))
        .collect();
    let awaiting_pubcomp = session.queue.iter().filter(|q| q.pubrec_received).count();
    Json(json!({
        "client_id": session.client_id.as_str(),
        "connected": session.connected,
        "node": session.place.node,
        "expiry_secs": session.expiry_secs,
        "queued": session.queue.len(),
        "queued_bytes": session.queue_bytes(),
        "awaiting_pubcomp": awaiting_pubcomp,
        "incoming_qos2": session.incoming_qos2.len(),
        "subscriptions": subscriptions,
        "will": session.will.is_some(),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct SubscriptionQuery {
    client_id: Option<String>,
    // Not a flattened `Paging`: serde_urlencoded cannot read numbers in a flattened struct.
    page: Option<usize>,
    limit: Option<usize>,
}

/// Every subscription (the cluster's durable sessions and this node's local ones), or one
/// client's (`?client_id=`), a page at a time.
pub(super) async fn subscriptions(
    State(admin): State<Admin>,
    Params(query): Params<SubscriptionQuery>,
) -> Response {
    let core = admin.hub.lock();
    let all: Vec<Value> = core
        .broker
        .sessions()
        .filter(|s| {
            query
                .client_id
                .as_deref()
                .is_none_or(|c| s.client_id.as_str() == c)
        })
        .flat_map(|s| {
            s.subscriptions.iter().map(move |(filter, sub)| {
                json!({
                    "client_id": s.client_id.as_str(),
                    "filter": filter.as_str(),
                    "qos": sub.options.qos as u8,
                    "no_local": sub.options.no_local,
                    "retain_as_published": sub.options.retain_as_published,
                    "identifier": sub.identifier,
                })
            })
        })
        .collect();
    let paging = Paging {
        page: query.page,
        limit: query.limit,
    };
    paged(json!({}), "subscriptions", all, paging)
}
