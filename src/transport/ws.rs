//! The WebSocket upgrade for the WS and WSS listeners (MQTT §6): path `/mqtt`, subprotocol
//! `mqtt`, size limits and a deadline. The upgraded connection is a [`WsStream`].

use std::io;
use std::time::Duration;

use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::WsStream;
use crate::net::BoxStream;

/// The only request path upgraded; other paths get HTTP 404.
pub const WS_PATH: &str = "/mqtt";

/// Subprotocols accepted, in order of preference when a client offers several: `mqtt` is the
/// name MQTT 3.1.1 and 5.0 register [MQTT-6.0.0-3]; `mqttv3.1` is what MQTT 3.1 clients send.
pub const WS_SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Limits of a WebSocket connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsConfig {
    /// Largest message (and so frame) payload accepted from a client, in bytes; a larger one
    /// closes the connection. It bounds what a connection buffers on the read side. Most
    /// clients send one MQTT packet per message, so keep it at least the broker's largest
    /// accepted packet. Outgoing frames are cut at this size too.
    pub message_size_max: usize,
    /// Bytes tungstenite reads from the socket at a time; allocated once per connection.
    pub read_buffer_size: usize,
    /// Bytes of outgoing frames tungstenite gathers before writing to the socket (a flush
    /// writes them sooner).
    pub write_buffer_size: usize,
}

impl Default for WsConfig {
    fn default() -> WsConfig {
        WsConfig {
            message_size_max: 1024 * 1024,
            // tungstenite's defaults are 128 KiB each, allocated for every connection; MQTT
            // packets are mostly small and idle connections are many.
            read_buffer_size: 8 * 1024,
            write_buffer_size: 8 * 1024,
        }
    }
}

impl WsConfig {
    /// The tungstenite configuration these limits stand for.
    fn tungstenite(&self) -> WebSocketConfig {
        // What the write buffer can hold at most: what waits for a write-out, one frame
        // (payload plus the 14-byte largest header) and a pong or close reply. `WsStream`
        // waits for the buffer to drain before it adds a frame, so this is never reached; it
        // is there so that a bug cannot grow the buffer without limit.
        let write_buffer_max = self.write_buffer_size + self.message_size_max + 14 + 256;
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(write_buffer_max)
            .max_message_size(Some(self.message_size_max))
            .max_frame_size(Some(self.message_size_max))
    }
}

/// Runs the server side of the WebSocket upgrade on `stream`, giving up after `timeout`.
///
/// Accepts only a GET on [`WS_PATH`] (HTTP 404 otherwise). When the client offers
/// subprotocols, one of [`WS_SUBPROTOCOLS`] must be among them and is echoed back; an offer
/// without either is refused with HTTP 400. A client that offers none is accepted, as
/// most brokers do, although MQTT requires clients to offer `mqtt`.
///
/// Errors: `TimedOut` when the deadline passes, `InvalidData` for a refused or malformed
/// upgrade request.
pub async fn accept(
    stream: BoxStream,
    config: &WsConfig,
    timeout: Duration,
) -> io::Result<WsStream> {
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        check_upgrade,
        Some(config.tungstenite()),
    );
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(websocket)) => Ok(WsStream::new(websocket, config.message_size_max)),
        Ok(Err(error)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("websocket upgrade failed: {error}"),
        )),
        Err(_elapsed) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "websocket upgrade not finished within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

/// Checks the upgrade request and picks the subprotocol (tungstenite's handshake callback).
// The error type is fixed by tungstenite's `Callback` trait.
#[allow(clippy::result_large_err)]
fn check_upgrade(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() != WS_PATH {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            format!("no websocket endpoint here: MQTT is served on {WS_PATH}"),
        ));
    }
    let offered = offered_subprotocols(request);
    if offered.is_empty() {
        return Ok(response);
    }
    match WS_SUBPROTOCOLS.iter().find(|ours| offered.contains(ours)) {
        Some(chosen) => {
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(chosen));
            Ok(response)
        }
        None => Err(refusal(
            StatusCode::BAD_REQUEST,
            format!("unsupported websocket subprotocol: offer one of {WS_SUBPROTOCOLS:?}"),
        )),
    }
}

/// Every subprotocol in the request's `Sec-WebSocket-Protocol` headers (each may be a
/// comma-separated list, and the header may repeat). Values that are not text are skipped.
fn offered_subprotocols(request: &Request) -> Vec<&str> {
    request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect()
}

fn refusal(status: StatusCode, body: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, protocols: &[&str]) -> Request {
        let mut builder = Request::builder().uri(path);
        for protocol in protocols {
            builder = builder.header(SEC_WEBSOCKET_PROTOCOL, *protocol);
        }
        builder.body(()).unwrap()
    }

    fn chosen(response: &Response) -> Option<&str> {
        response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .map(|v| v.to_str().unwrap())
    }

    #[test]
    fn upgrade_on_mqtt_path_echoes_the_mqtt_subprotocol() {
        let response = check_upgrade(&request("/mqtt", &["mqtt"]), Response::default()).unwrap();
        assert_eq!(chosen(&response), Some("mqtt"));
    }

    #[test]
    fn mqtt_is_preferred_over_mqttv31_from_a_list() {
        let offer = request("/mqtt", &["foo, mqttv3.1", "mqtt"]);
        let response = check_upgrade(&offer, Response::default()).unwrap();
        assert_eq!(chosen(&response), Some("mqtt"));
    }

    #[test]
    fn mqttv31_alone_is_accepted() {
        let offer = request("/mqtt?x=1", &["mqttv3.1"]);
        let response = check_upgrade(&offer, Response::default()).unwrap();
        assert_eq!(chosen(&response), Some("mqttv3.1"));
    }

    #[test]
    fn no_subprotocol_offered_is_accepted_without_one() {
        let response = check_upgrade(&request("/mqtt", &[]), Response::default()).unwrap();
        assert_eq!(chosen(&response), None);
    }

    #[test]
    fn other_paths_get_404() {
        let refused = check_upgrade(&request("/", &["mqtt"]), Response::default()).unwrap_err();
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
        let refused =
            check_upgrade(&request("/mqtt/x", &["mqtt"]), Response::default()).unwrap_err();
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn only_foreign_subprotocols_get_400() {
        let refused =
            check_upgrade(&request("/mqtt", &["chat, soap"]), Response::default()).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
}
