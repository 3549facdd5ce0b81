//! MQTT over real sockets, one test program: the protocol as clients see it (CONNECT,
//! keep-alive, QoS, retained messages, sessions, subscriptions, MQTT 5 features, wills, bad
//! input), the limits, and the transports (TCP, TLS, WebSocket, WSS). The clients are
//! rumqttc, raw packets through Keel's codec, and Debian's `mosquitto-clients`.
//!
//! One program rather than one per file, so `cargo test` links the whole stack once for all
//! of them; each module is one former program (`cargo test --test mqtt qos::` runs one).

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod connect;
mod every_transport;
mod keep_alive;
mod limits;
mod mosquitto_clients;
mod qos;
mod retained;
mod sessions;
mod smoke;
mod subscriptions;
mod transport;
mod v5_features;
mod will;
