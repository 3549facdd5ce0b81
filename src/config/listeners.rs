//! `[listeners]`: the addresses the node listens on and the caps of its MQTT listeners.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::addr::{collide, listen_addr};
use super::{ensure, Config, InvalidConfig};

/// `[listeners]`: one address per kind of listener (`""` turns a listener off), and for each
/// MQTT listener a cap on its connections (`0`: only `mqtt.connections_max` applies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenersConfig {
    /// MQTT over TCP. Default `0.0.0.0:1883`.
    #[serde(with = "listen_addr")]
    pub tcp: Option<SocketAddr>,
    /// MQTT over WebSocket, upgraded on path `/mqtt` only. Default `0.0.0.0:8083`.
    #[serde(with = "listen_addr")]
    pub ws: Option<SocketAddr>,
    /// The admin HTTP API and `/metrics`. Default `127.0.0.1:18083`: an address that other
    /// hosts reach needs `[admin]` credentials (validation refuses it otherwise).
    #[serde(with = "listen_addr")]
    pub http: Option<SocketAddr>,
    /// MQTT over TLS; started only when `[tls]` is configured. Default `0.0.0.0:8883`.
    #[serde(with = "listen_addr")]
    pub tls: Option<SocketAddr>,
    /// MQTT over WebSocket over TLS (path `/mqtt`); started only when `[tls]` is configured.
    /// Default `0.0.0.0:8084`.
    #[serde(with = "listen_addr")]
    pub wss: Option<SocketAddr>,
    /// Most connections the `tcp` listener holds at once; more are closed as they are
    /// accepted, as beyond `mqtt.connections_max`. 0: no cap of its own. Default 0.
    pub tcp_connections_max: u32,
    /// The same for the `ws` listener. Default 0.
    pub ws_connections_max: u32,
    /// The same for the `tls` listener. Default 0.
    pub tls_connections_max: u32,
    /// The same for the `wss` listener. Default 0.
    pub wss_connections_max: u32,
    /// Every connection to the `tcp` listener starts with a PROXY protocol header (v1 or v2,
    /// from a load balancer); the client address it names is the one authentication, the
    /// ACL, traces and logs see. A connection without one, or with a malformed one, is
    /// closed and counted. Default `false`.
    pub tcp_proxy_protocol: bool,
    /// The same for the `tls` listener (the header comes before the TLS handshake).
    /// Default `false`.
    pub tls_proxy_protocol: bool,
}

impl ListenersConfig {
    /// A `*_connections_max` value as a cap: `None` for 0, which means no cap of its own.
    pub fn cap(connections_max: u32) -> Option<usize> {
        (connections_max > 0).then_some(connections_max as usize)
    }
}

impl Default for ListenersConfig {
    fn default() -> ListenersConfig {
        let any = |port| Some(SocketAddr::from(([0, 0, 0, 0], port)));
        ListenersConfig {
            tcp: any(1883),
            ws: any(8083),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 18083))),
            tls: any(8883),
            wss: any(8084),
            tcp_connections_max: 0,
            ws_connections_max: 0,
            tls_connections_max: 0,
            wss_connections_max: 0,
            tcp_proxy_protocol: false,
            tls_proxy_protocol: false,
        }
    }
}

impl Config {
    /// `[listeners]`: at least one MQTT listener, and no two listeners (the cluster's
    /// included) on one port.
    pub(super) fn validate_listeners(&self) -> Result<(), InvalidConfig> {
        let listeners = &self.listeners;
        let (tls, wss) = (self.tls_listener(), self.wss_listener());
        let mqtt = [listeners.tcp, listeners.ws, tls, wss];
        ensure(mqtt.iter().any(Option::is_some), "listeners", || {
            "no MQTT listener is on (tcp, ws, or tls/wss with [tls] configured)".to_owned()
        })?;
        let mut bound: Vec<(&'static str, SocketAddr)> = Vec::new();
        let all = [
            ("listeners.tcp", listeners.tcp),
            ("listeners.ws", listeners.ws),
            ("listeners.http", listeners.http),
            ("listeners.tls", tls),
            ("listeners.wss", wss),
            ("cluster.listen", self.cluster.listen),
        ];
        for (field, addr) in all {
            let Some(addr) = addr else { continue };
            if let Some((other, _)) = bound.iter().find(|(_, a)| collide(*a, addr)) {
                return Err(InvalidConfig {
                    field,
                    problem: format!("{addr} is also the address of {other}"),
                });
            }
            bound.push((field, addr));
        }
        Ok(())
    }

    /// The TLS listener's address, when it is on and `[tls]` is configured.
    pub fn tls_listener(&self) -> Option<SocketAddr> {
        self.listeners.tls.filter(|_| self.tls.is_some())
    }

    /// The WSS listener's address, when it is on and `[tls]` is configured.
    pub fn wss_listener(&self) -> Option<SocketAddr> {
        self.listeners.wss.filter(|_| self.tls.is_some())
    }
}
