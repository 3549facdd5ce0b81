//! Transports: what turns an accepted connection into the MQTT byte stream. Plain TCP, TLS
//! (rustls), WebSocket (tokio-tungstenite) and WebSocket over TLS, each optionally behind a
//! PROXY protocol header ([`proxy`]).
//!
//! Everything here works on [`BoxStream`]s from a [`Net`](crate::net::Net) listener, so the
//! same handshakes run on real sockets and in the simulator. It knows nothing of MQTT packets
//! beyond the WebSocket subprotocol rules of MQTT §6.

pub mod proxy;
pub mod tls;
pub mod ws;
mod ws_stream;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::net::BoxStream;
pub use proxy::ProxyError;
pub use tls::{ClientAuth, TlsAcceptor, TlsConfigError, TlsSettings};
pub use ws::WsConfig;
pub use ws_stream::WsStream;

/// How long a client may take over the TLS and WebSocket handshakes before it is dropped,
/// unless configured otherwise.
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// The kind of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// MQTT over TCP (default port 1883).
    Tcp,
    /// MQTT over TLS (default port 8883).
    Tls,
    /// MQTT over WebSocket on path `/mqtt` (default port 8083).
    Ws,
    /// MQTT over WebSocket over TLS (default port 8084).
    Wss,
}

impl Transport {
    /// Lowercase name, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connection after its transport's handshakes: ready for MQTT.
pub struct Accepted {
    /// The MQTT byte stream.
    pub stream: BoxStream,
    /// The client's end-entity certificate, when it presented one over TLS or WSS (already
    /// verified against the configured client CA); the broker may use it as an identity.
    pub client_cert: Option<CertificateDer<'static>>,
    /// The client's address as a PROXY protocol header named it (`None`: no header, or one
    /// naming no address; the socket's peer stands).
    pub source: Option<SocketAddr>,
}

/// Finishes accepting connections for one listener: runs its transport's handshakes, all
/// within one deadline.
#[derive(Clone)]
pub struct TransportAcceptor {
    /// The handshakes to run and what they need.
    kind: Kind,
    /// The deadline for all handshakes of one connection together, so a slow client cannot
    /// take the TLS deadline and then the WebSocket one.
    handshake_timeout: Duration,
    /// Every connection starts with a PROXY protocol header (v1 or v2), before TLS.
    proxy_protocol: bool,
}

/// [`Transport`] with what each handshake needs, so a TLS listener cannot lack its acceptor.
#[derive(Clone)]
enum Kind {
    Tcp,
    Tls(TlsAcceptor),
    Ws(WsConfig),
    Wss(TlsAcceptor, WsConfig),
}

impl TransportAcceptor {
    /// Plain TCP: no handshake.
    pub fn tcp() -> TransportAcceptor {
        TransportAcceptor {
            kind: Kind::Tcp,
            handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            proxy_protocol: false,
        }
    }

    /// TLS with `acceptor` (see [`tls::acceptor`]).
    pub fn tls(acceptor: TlsAcceptor, handshake_timeout: Duration) -> TransportAcceptor {
        TransportAcceptor {
            kind: Kind::Tls(acceptor),
            handshake_timeout,
            proxy_protocol: false,
        }
    }

    /// WebSocket on plain TCP.
    pub fn ws(config: WsConfig, handshake_timeout: Duration) -> TransportAcceptor {
        TransportAcceptor {
            kind: Kind::Ws(config),
            handshake_timeout,
            proxy_protocol: false,
        }
    }

    /// WebSocket over TLS.
    pub fn wss(
        acceptor: TlsAcceptor,
        config: WsConfig,
        handshake_timeout: Duration,
    ) -> TransportAcceptor {
        TransportAcceptor {
            kind: Kind::Wss(acceptor, config),
            handshake_timeout,
            proxy_protocol: false,
        }
    }

    /// The same, expecting a PROXY protocol header (v1 or v2) at the start of every
    /// connection: one that is missing or malformed fails the accept with a [`ProxyError`].
    pub fn with_proxy_protocol(mut self, on: bool) -> TransportAcceptor {
        self.proxy_protocol = on;
        self
    }

    /// Which transport this is.
    pub fn transport(&self) -> Transport {
        match self.kind {
            Kind::Tcp => Transport::Tcp,
            Kind::Tls(_) => Transport::Tls,
            Kind::Ws(_) => Transport::Ws,
            Kind::Wss(_, _) => Transport::Wss,
        }
    }

    /// Turns a freshly accepted `stream` into the MQTT byte stream of this transport: nothing
    /// for TCP, the TLS handshake, the WebSocket upgrade, or both in turn for WSS.
    ///
    /// Run it in the connection's own task, not in the accept loop: a handshake waits for the
    /// client. Errors: `TimedOut` past the handshake deadline, or the handshake's failure.
    pub async fn accept(&self, mut stream: BoxStream) -> io::Result<Accepted> {
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let remaining = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let source = if self.proxy_protocol {
            proxy::read_header(&mut stream, remaining())
                .await
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        } else {
            None
        };
        let mut accepted = self.handshake(stream, remaining).await?;
        accepted.source = source;
        Ok(accepted)
    }

    /// The transport's own handshakes, within what `remaining` leaves of the deadline.
    async fn handshake(
        &self,
        stream: BoxStream,
        remaining: impl Fn() -> Duration,
    ) -> io::Result<Accepted> {
        match &self.kind {
            Kind::Tcp => Ok(Accepted {
                stream,
                client_cert: None,
                source: None,
            }),
            Kind::Tls(acceptor) => {
                let (stream, client_cert) =
                    tls::accept_with_client_cert(acceptor, stream, remaining()).await?;
                Ok(Accepted {
                    stream,
                    client_cert,
                    source: None,
                })
            }
            Kind::Ws(config) => {
                let stream = ws::accept(stream, config, remaining()).await?;
                Ok(Accepted {
                    stream: Box::new(stream),
                    client_cert: None,
                    source: None,
                })
            }
            Kind::Wss(acceptor, config) => {
                let (stream, client_cert) =
                    tls::accept_with_client_cert(acceptor, stream, remaining()).await?;
                let stream = ws::accept(stream, config, remaining()).await?;
                Ok(Accepted {
                    stream: Box::new(stream),
                    client_cert,
                    source: None,
                })
            }
        }
    }
}
