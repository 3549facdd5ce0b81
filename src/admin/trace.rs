//! `/api/v1/trace`: per-client traces on demand. `POST /api/v1/trace/{client_id}` starts
//! recording what that client sends and is sent (`{"payload": true}` keeps the start of each
//! PUBLISH payload too), `GET` reads the events (`?since=SEQ` for the newer ones only),
//! `DELETE` stops and forgets, and `GET /api/v1/trace` lists the traced clients. A trace
//! follows the client id, connected or not, across reconnections, on this node only.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, Admin, Params};
use crate::codec::MqttString;
use crate::server::trace::{Started, Trace};

/// The body of `POST /api/v1/trace/{client_id}`, which may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StartRequest {
    /// Keep the first bytes of each PUBLISH payload.
    payload: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    /// Only the events numbered after this one.
    since: Option<u64>,
}

/// A trace's description, without its events.
fn summary(client_id: &str, trace: &Trace) -> Value {
    json!({
        "client_id": client_id,
        "started_at_ms": trace.started_at_ms,
        "payload": trace.with_payload,
        "events": trace.events.len(),
        "capacity": trace.events.capacity(),
        "overwritten": trace.events.overwritten(),
        "last_seq": trace.events.last_seq(),
    })
}

/// A client id as the path gives it, or why it cannot be one (for a 400).
fn client_id(text: &str) -> Result<MqttString, String> {
    MqttString::new(text).map_err(|e| format!("{text:?} is not a client id: {e}"))
}

/// Every traced client, with the limits in force.
pub(super) async fn list(State(admin): State<Admin>) -> Response {
    let tracer = &admin.hub.tracer;
    let limits = tracer.limits();
    let traces: Vec<Value> = tracer.read(|traces| {
        traces
            .iter()
            .map(|(client_id, trace)| summary(client_id, trace))
            .collect()
    });
    Json(json!({
        "clients_max": limits.clients_max,
        "events_max": limits.events_max,
        "traces": traces,
    }))
    .into_response()
}

/// Starts tracing a client: 201 for a new trace, 200 when one was running (it goes on as it
/// was), 409 when `[admin] trace_clients_max` clients are traced already.
pub(super) async fn start(
    State(admin): State<Admin>,
    Path(text): Path<String>,
    body: Bytes,
) -> Response {
    let id = match client_id(&text) {
        Ok(id) => id,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else {
        match serde_json::from_slice::<StartRequest>(&body) {
            Ok(request) => request,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be {{\"payload\": true|false}} or empty: {e}"),
                )
            }
        }
    };
    let now_ms = admin.hub.clock().unix_ms();
    match admin.hub.tracer.start(id.as_str(), request.payload, now_ms) {
        Ok(started) => {
            let status = match started {
                Started::New => StatusCode::CREATED,
                Started::AlreadyTracing => StatusCode::OK,
            };
            let started = started == Started::New;
            let body = json!({ "ok": true, "client_id": id.as_str(), "started": started });
            (status, Json(body)).into_response()
        }
        Err(why) => error(StatusCode::CONFLICT, why),
    }
}

/// The events of a traced client, oldest first; `?since=SEQ` leaves out those up to `SEQ`.
pub(super) async fn events(
    State(admin): State<Admin>,
    Path(text): Path<String>,
    Params(query): Params<EventsQuery>,
) -> Response {
    let id = match client_id(&text) {
        Ok(id) => id,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let since = query.since.unwrap_or(0);
    let found = admin.hub.tracer.read(|traces| {
        let trace = traces.get(id.as_str())?;
        let events: Vec<Value> = trace
            .events
            .since(since)
            .map(|(seq, event)| {
                let mut value = json!(event);
                value["seq"] = json!(seq);
                value
            })
            .collect();
        let mut body = summary(id.as_str(), trace);
        body["events"] = Value::Array(events);
        Some(body)
    });
    match found {
        Some(body) => Json(body).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("{} is not traced", id.as_str()),
        ),
    }
}

/// Stops tracing a client and forgets its events.
pub(super) async fn stop(State(admin): State<Admin>, Path(text): Path<String>) -> Response {
    let id = match client_id(&text) {
        Ok(id) => id,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    if !admin.hub.tracer.stop(id.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            format!("{} is not traced", id.as_str()),
        );
    }
    Json(json!({ "ok": true, "client_id": id.as_str() })).into_response()
}
