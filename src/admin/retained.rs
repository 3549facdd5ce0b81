//! `/api/v1/retained` and `/api/v1/publish`: the retained messages (list, read, delete) and
//! publishing over HTTP. Writes go through a loopback MQTT session (`server::loopback`), so
//! they are acknowledged exactly when an MQTT client's would be.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, paged, Admin, Paging, Params};
use crate::codec::{QoS, TopicFilter, TopicName};
use crate::router::filter_matches;
use crate::server::loopback;
use crate::state::Message;

/// How long an HTTP publish waits for its acknowledgement.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
pub(super) struct RetainedQuery {
    /// A topic filter; every retained message by default.
    topic: Option<String>,
    // Not a flattened `Paging`: serde_urlencoded cannot read numbers in a flattened struct.
    page: Option<usize>,
    limit: Option<usize>,
}

/// A message as JSON: the payload as text when it is UTF-8, otherwise base64.
fn message_json(message: &Message, with_payload: bool) -> Value {
    let mut value = json!({
        "topic": message.topic.as_str(),
        "qos": message.qos as u8,
        "payload_bytes": message.payload.len(),
        "publisher": message.publisher.as_ref().map(|p| p.as_str()),
        "received_at_ms": message.received_at_ms,
    });
    if with_payload {
        match std::str::from_utf8(&message.payload) {
            Ok(text) => value["payload"] = json!(text),
            Err(_) => {
                value["payload_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&message.payload))
            }
        }
    }
    value
}

/// The retained messages (the replicated ones), those matching `?topic=` when given, a page
/// at a time, without their payloads.
pub(super) async fn list(
    State(admin): State<Admin>,
    Params(query): Params<RetainedQuery>,
) -> Response {
    let filter = query.topic.as_deref().unwrap_or("#");
    if TopicFilter::new(filter).is_err() || filter.starts_with("$share/") {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{filter:?} is not a topic filter"),
        );
    }
    let core = admin.hub.lock();
    let all: Vec<Value> = core
        .broker
        .state()
        .retained()
        .filter(|m| filter_matches(filter, m.topic.as_str()))
        .map(|m| message_json(m, false))
        .collect();
    let paging = Paging {
        page: query.page,
        limit: query.limit,
    };
    paged(json!({}), "retained", all, paging)
}

/// One retained message, with its payload.
pub(super) async fn get_one(State(admin): State<Admin>, Path(topic): Path<String>) -> Response {
    let found = admin
        .hub
        .lock()
        .broker
        .state()
        .retained()
        .find(|m| m.topic.as_str() == topic)
        .map(|message| message_json(message, true));
    match found {
        Some(message) => Json(message).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no retained message on {topic:?}"),
        ),
    }
}

/// `text` as a topic a client could publish to, or a 400 saying why not: at least one
/// character ([MQTT-4.7.3-1]; an MQTT client may send an empty one only with a topic alias),
/// no wildcard, no NUL, at most 65,535 bytes.
fn publishable(text: &str) -> Result<TopicName, Box<Response>> {
    let refuse = |why: &str| Box::new(error(StatusCode::BAD_REQUEST, format!("{text:?} {why}")));
    if text.is_empty() {
        return Err(refuse(
            "is not a topic name: a topic has at least one character",
        ));
    }
    TopicName::new(text).map_err(|e| refuse(&format!("is not a topic name: {e}")))
}

/// Deletes the retained message of a topic: an empty retained publish at QoS 1, as an MQTT
/// client would send, answered once it is committed.
pub(super) async fn delete_one(State(admin): State<Admin>, Path(topic): Path<String>) -> Response {
    let name = match publishable(&topic) {
        Ok(name) => name,
        Err(refused) => return *refused,
    };
    let exists = admin
        .hub
        .lock()
        .broker
        .state()
        .retained()
        .any(|m| m.topic.as_str() == topic);
    if !exists {
        return error(
            StatusCode::NOT_FOUND,
            format!("no retained message on {topic:?}"),
        );
    }
    let packet = loopback::packet(name, Bytes::new(), QoS::AtLeastOnce, true);
    answer(
        loopback::publish(&admin.ctx, packet, PUBLISH_TIMEOUT).await,
        &topic,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishRequest {
    topic: String,
    /// Text; or base64 with `"encoding": "base64"`.
    #[serde(default)]
    payload: String,
    #[serde(default)]
    encoding: Encoding,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    retain: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Plain,
    Base64,
}

/// `POST /api/v1/publish`: `{"topic", "payload", "encoding": "plain"|"base64", "qos", "retain"}`.
/// Answered when the broker acknowledges it (QoS 1/2: once committed where durable
/// subscribers match), with the reason code it would send an MQTT 5 client.
pub(super) async fn publish(
    State(admin): State<Admin>,
    body: Result<Json<PublishRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"topic\", \"payload\", \"encoding\", \"qos\", \"retain\"}}: {}",
                    rejection.body_text()
                ),
            )
        }
    };
    let topic = match publishable(&request.topic) {
        Ok(topic) => topic,
        Err(refused) => return *refused,
    };
    let qos = match request.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("qos {other} is not 0, 1 or 2"),
            )
        }
    };
    let payload = match request.encoding {
        Encoding::Plain => Bytes::from(request.payload),
        Encoding::Base64 => {
            match base64::engine::general_purpose::STANDARD.decode(request.payload.as_bytes()) {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("payload: {e}")),
            }
        }
    };
    let packet = loopback::packet(topic, payload, qos, request.retain);
    answer(
        loopback::publish(&admin.ctx, packet, PUBLISH_TIMEOUT).await,
        &request.topic,
    )
}

/// The HTTP answer to a loopback publish.
fn answer(
    outcome: Result<crate::codec::ReasonCode, loopback::LoopbackError>,
    topic: &str,
) -> Response {
    match outcome {
        Ok(reason) if !reason.is_error() => Json(json!({
            "ok": true,
            "topic": topic,
            "reason_code": reason.as_u8(),
        }))
        .into_response(),
        Ok(reason) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": format!("the broker refused the publish: {reason:?}"),
                "reason_code": reason.as_u8(),
            })),
        )
            .into_response(),
        Err(loopback::LoopbackError::Refused(reason)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the node serves no clients now: {reason:?}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
