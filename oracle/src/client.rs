//! One MQTT connection of a workload client, through Keel's own codec, recording what it sees
//! in the [`History`]. Every wait is bounded and keep-alive finds dead links: turmoil drops the
//! bytes of a partitioned link for good and never fails a connect to a crashed host, and on a
//! real network an `iptables` partition looks the same.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::history::{ConnRef, Event, History};
use keel::codec::*;
use keel::net::{BoxStream, Net};

/// Keep-alive the workload clients ask for. The broker drops a silent client after 1.5× this,
/// and a client gives up on a silent broker after twice this.
pub const KEEP_ALIVE: Duration = Duration::from_secs(4);
/// Deadline of a connect and its CONNACK.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one write. turmoil's TCP gives a sender 64 segments of credit that come back
/// only as the peer reads them, and a partition drops segments with their credit: without a
/// deadline a client writing into a partitioned link blocks for good (seed 26).
pub const WRITE_TIMEOUT: Duration = KEEP_ALIVE;
/// Session expiry of durable v5 sessions: longer than any run.
pub const SESSION_EXPIRY_SECS: u32 = 100_000;

/// The MQTT port of every node the workload connects to.
pub const MQTT_PORT: u16 = 1883;

/// Milliseconds since the start of the run: the times of the history. The simulator reads its
/// simulated time; a real run its own monotonic clock.
#[derive(Clone)]
pub struct RunClock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl RunClock {
    pub fn new(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> RunClock {
        RunClock(Arc::new(now_ms))
    }

    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

/// What a client asks of a connection.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    /// The node: a host name or IP address, connected to on [`MQTT_PORT`], or an
    /// `IP:PORT` address.
    pub host: String,
    pub client_id: String,
    pub protocol: Protocol,
    pub clean_start: bool,
    /// MQTT 5: the Session Expiry Interval property (`None`: absent). MQTT 3.1.1 has none:
    /// its session lasts when `clean_start` (clean session) is 0.
    pub expiry_secs: Option<u32>,
}

impl ConnectSpec {
    /// Whether the session outlives the connection.
    pub fn durable(&self) -> bool {
        if self.protocol.is_v5() {
            self.expiry_secs.unwrap_or(0) > 0
        } else {
            !self.clean_start
        }
    }
}

pub struct Conn {
    pub at: ConnRef,
    /// The Session Expiry Interval its CONNECT carried (MQTT 5).
    expiry_secs: Option<u32>,
    stream: BoxStream,
    protocol: Protocol,
    decoder: Decoder,
    read_buf: BytesMut,
    history: History,
    clock: RunClock,
    /// When the last packet arrived (for the client's side of keep-alive).
    last_heard_ms: u64,
    last_sent_ms: u64,
}

/// Why a connection ended, as the client saw it.
pub type Lost = String;

impl Conn {
    /// Connects, sends CONNECT and waits for a successful CONNACK; returns Session Present.
    pub async fn open<N: Net>(
        net: &N,
        spec: &ConnectSpec,
        at: ConnRef,
        history: &History,
        clock: &RunClock,
    ) -> Result<(Conn, bool), Lost> {
        Conn::start(net, spec, at, history, clock)
            .await?
            .await_connack()
            .await
    }

    /// Connects and sends CONNECT, without waiting for the CONNACK.
    pub async fn start<N: Net>(
        net: &N,
        spec: &ConnectSpec,
        at: ConnRef,
        history: &History,
        clock: &RunClock,
    ) -> Result<Conn, Lost> {
        // A host may name its own port ("127.0.0.1:1884": nodes of one machine).
        let addr = match spec.host.parse::<std::net::SocketAddr>() {
            Ok(addr) => addr.to_string(),
            Err(_) => format!("{}:{MQTT_PORT}", spec.host),
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, net.connect(&addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect failed: {e}"))?;
        let mut conn = Conn {
            at,
            expiry_secs: spec.expiry_secs.filter(|_| spec.protocol.is_v5()),
            stream,
            protocol: spec.protocol,
            decoder: Decoder::with_protocol(spec.protocol, PACKET_SIZE_LIMIT),
            read_buf: BytesMut::with_capacity(4096),
            history: history.clone(),
            clock: clock.clone(),
            last_heard_ms: clock.now_ms(),
            last_sent_ms: clock.now_ms(),
        };
        let mut properties = ConnectProperties::default();
        let v5 = spec.protocol.is_v5();
        let expiry_secs = spec.expiry_secs.filter(|_| v5);
        properties.session_expiry_interval = expiry_secs;
        history.record(
            clock.now_ms(),
            Event::ConnectSent {
                at: conn.at.clone(),
                clean_start: spec.clean_start,
                durable: spec.durable(),
                node: spec.host.clone(),
                v5,
                expiry_secs,
            },
        );
        let client_id = MqttString::new(&spec.client_id).map_err(|e| e.to_string())?;
        conn.send(Packet::Connect(Box::new(Connect {
            protocol: spec.protocol,
            clean_start: spec.clean_start,
            keep_alive: KEEP_ALIVE.as_secs() as u16,
            properties,
            client_id,
            will: None,
            username: None,
            password: None,
        })))
        .await?;
        Ok(conn)
    }

    /// Waits for the CONNACK of [`Conn::start`]; returns Session Present.
    async fn await_connack(mut self) -> Result<(Conn, bool), Lost> {
        let reply = tokio::time::timeout(CONNECT_TIMEOUT, self.read_packet())
            .await
            .map_err(|_| "no CONNACK in time".to_string())
            .and_then(|r| r);
        match reply {
            Ok(Packet::ConnAck(ack)) if ack.reason_code == ReasonCode::Success => {
                self.history.record(
                    self.clock.now_ms(),
                    Event::Connected {
                        at: self.at.clone(),
                        session_present: ack.session_present,
                    },
                );
                Ok((self, ack.session_present))
            }
            Ok(other) => Err(self.lost(format!("refused: {other:?}"))),
            Err(why) => Err(self.lost(why)),
        }
    }

    /// The Session Expiry Interval its CONNECT carried (MQTT 5; `None`: absent).
    pub fn expiry_secs(&self) -> Option<u32> {
        self.expiry_secs
    }

    /// Records the end of this connection and returns why, for `?`.
    pub fn lost(&self, why: String) -> Lost {
        self.history.record(
            self.clock.now_ms(),
            Event::ConnectionLost {
                at: self.at.clone(),
                why: why.clone(),
            },
        );
        why
    }

    pub async fn send(&mut self, packet: Packet) -> Result<(), Lost> {
        let mut buf = BytesMut::new();
        packet
            .encode(self.protocol, &mut buf)
            .map_err(|e| format!("encode: {e}"))?;
        self.last_sent_ms = self.clock.now_ms();
        let stream = &mut self.stream;
        let written = tokio::time::timeout(WRITE_TIMEOUT, async move {
            stream.write_all(&buf).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write: {e}")),
            Err(_) => Err("write timed out".into()),
        }
    }

    /// The next packet, with no deadline of its own.
    async fn read_packet(&mut self) -> Result<Packet, Lost> {
        loop {
            let decoded = self.decoder.decode(&mut self.read_buf).map_err(|e| {
                self.history.record(
                    self.clock.now_ms(),
                    Event::MalformedFromBroker {
                        at: self.at.clone(),
                        error: e.to_string(),
                    },
                );
                format!("malformed packet from the broker: {e}")
            })?;
            if let Some(packet) = decoded {
                self.last_heard_ms = self.clock.now_ms();
                return Ok(packet);
            }
            match self.stream.read_buf(&mut self.read_buf).await {
                Ok(0) => return Err("closed by the broker (EOF)".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// The next packet other than PINGRESP, keeping the connection alive meanwhile: a PINGREQ
    /// after half the keep-alive without sending, and the connection is given up when
    /// nothing at all arrived for twice the keep-alive. A DISCONNECT from the broker ends it.
    /// Waits at most `wait` in all (`None`: until something arrives or the link is dead).
    pub async fn recv(&mut self, wait: Option<Duration>) -> Result<Option<Packet>, Lost> {
        let give_up_at = wait.map(|w| self.clock.now_ms() + w.as_millis() as u64);
        let half = KEEP_ALIVE.as_millis() as u64 / 2;
        loop {
            let now = self.clock.now_ms();
            if now.saturating_sub(self.last_heard_ms) >= 2 * KEEP_ALIVE.as_millis() as u64 {
                return Err("broker silent for two keep-alives".into());
            }
            if now.saturating_sub(self.last_sent_ms) >= half {
                self.send(Packet::PingReq).await?;
            }
            let mut slice = half
                .saturating_sub(now.saturating_sub(self.last_sent_ms))
                .max(1);
            if let Some(at) = give_up_at {
                if now >= at {
                    return Ok(None);
                }
                slice = slice.min(at - now);
            }
            match tokio::time::timeout(Duration::from_millis(slice), self.read_packet()).await {
                Err(_) => continue,
                Ok(Err(why)) => return Err(why),
                Ok(Ok(Packet::PingResp)) => continue,
                Ok(Ok(Packet::Disconnect(d))) => {
                    return Err(format!("DISCONNECT {:#04x}", d.reason_code.as_u8()))
                }
                Ok(Ok(packet)) => return Ok(Some(packet)),
            }
        }
    }

    /// The next packet within `wait`, or an error when none came.
    pub async fn expect(&mut self, wait: Duration, what: &str) -> Result<Packet, Lost> {
        match self.recv(Some(wait)).await? {
            Some(packet) => Ok(packet),
            None => Err(format!("no {what} in time")),
        }
    }

    /// Ends the connection with a DISCONNECT (a clean close; a durable session stays). MQTT 5
    /// may set the Session Expiry Interval there (`expiry_secs`; ignored for 3.1.1).
    pub async fn disconnect(mut self, expiry_secs: Option<u32>) {
        let expiry_secs = expiry_secs.filter(|_| self.protocol.is_v5());
        let mut disconnect = Disconnect::new(ReasonCode::Success);
        disconnect.properties.session_expiry_interval = expiry_secs;
        self.history.record(
            self.clock.now_ms(),
            Event::DisconnectSent {
                at: self.at.clone(),
                expiry_secs,
            },
        );
        let _ = self.send(Packet::Disconnect(disconnect)).await;
        self.lost("client disconnected".into());
    }
}

/// Whether a connection ended as `why` says was a CONNECT refused with a CONNACK. Keel
/// refuses a CONNECT that way only once it can take no effect any more: before the broker
/// took it, or after it took effect and another connection superseded it. A connection
/// closed without a CONNACK (or lost) leaves its CONNECT's outcome open, possibly for long:
/// the node may have proposed its session and commit it later.
pub fn connect_refused(why: &str) -> bool {
    why.starts_with("refused: ")
}

/// The QoS a SUBACK reason code grants, if it is a success.
pub fn granted_qos(code: ReasonCode) -> Option<QoS> {
    match code {
        ReasonCode::Success => Some(QoS::AtMostOnce),
        ReasonCode::GrantedQoS1 => Some(QoS::AtLeastOnce),
        ReasonCode::GrantedQoS2 => Some(QoS::ExactlyOnce),
        _ => None,
    }
}
