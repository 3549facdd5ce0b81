//! Per-client tracing on demand: an operator starts a trace for a client id (admin API), and
//! from then on every packet that client sends and is sent, and what happens to its
//! connections, is kept in a bounded ring of events for that client and logged at `info` under
//! the target `keel::trace` with the client id as a field.
//!
//! Untraced clients must not pay for it: a connection asks [`Tracer::tap`] before it reads or
//! writes a batch of packets, which while no client is traced is one atomic load. Only while
//! some client is traced does it take the tracer's lock, per packet.
//!
//! | file | owns |
//! |------|------|
//! | `ring.rs` | the bounded, numbered ring of events |
//! | `event.rs` | an event: a packet summarised (never the password, the payload on request) |

mod event;
mod ring;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::broker::ConnId;
use crate::codec::{DecodeError, Packet};
use crate::session::Session;

pub use event::{Direction, TraceEvent, PAYLOAD_CAPTURE_MAX};
pub use ring::Ring;

/// How much tracing may hold: `[admin] trace_clients_max` and `trace_events_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLimits {
    /// Most clients traced at once.
    pub clients_max: usize,
    /// Most events kept per traced client; older ones make room for newer.
    pub events_max: usize,
}

impl Default for TraceLimits {
    fn default() -> TraceLimits {
        TraceLimits {
            clients_max: 16,
            events_max: 1000,
        }
    }
}

/// The trace of one client.
#[derive(Debug)]
pub struct Trace {
    /// When it started (unix ms).
    pub started_at_ms: u64,
    /// Whether PUBLISH payloads are kept (their first [`PAYLOAD_CAPTURE_MAX`] bytes).
    pub with_payload: bool,
    pub events: Ring<TraceEvent>,
}

/// Why a trace could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("already tracing {max} clients (trace_clients_max): stop one first")]
    TooManyClients { max: usize },
}

/// Whether [`Tracer::start`] started a trace or found one running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    New,
    AlreadyTracing,
}

/// The traced clients of a node.
#[derive(Debug, Default)]
pub struct Tracer {
    /// Whether any client is traced: all an untraced connection looks at.
    active: AtomicBool,
    /// Events recorded since the node started, for the metrics.
    recorded: AtomicU64,
    traces: Mutex<Traces>,
}

#[derive(Debug, Default)]
struct Traces {
    limits: TraceLimits,
    by_client: BTreeMap<String, Trace>,
    /// Connections serving a traced client, by the client id they were seen with: a CONNECT
    /// names its client before the session knows it, and a refused one never does.
    conns: BTreeMap<ConnId, String>,
}

impl Tracer {
    fn lock(&self) -> MutexGuard<'_, Traces> {
        // Nothing in here is left half-changed by a panic: each change is one map operation.
        self.traces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts new limits in force: `clients_max` for traces started from now on, `events_max`
    /// for the rings of traces started from now on.
    pub fn set_limits(&self, limits: TraceLimits) {
        self.lock().limits = limits;
    }

    pub fn limits(&self) -> TraceLimits {
        self.lock().limits
    }

    /// Whether any client is traced.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Events recorded since the node started.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Starts tracing `client_id` (keeping `payloads` of its publishes when asked); a trace
    /// already running goes on as it was.
    pub fn start(
        &self,
        client_id: &str,
        with_payload: bool,
        now_ms: u64,
    ) -> Result<Started, TraceError> {
        let mut traces = self.lock();
        if traces.by_client.contains_key(client_id) {
            return Ok(Started::AlreadyTracing);
        }
        let limits = traces.limits;
        if traces.by_client.len() >= limits.clients_max {
            return Err(TraceError::TooManyClients {
                max: limits.clients_max,
            });
        }
        let trace = Trace {
            started_at_ms: now_ms,
            with_payload,
            events: Ring::new(limits.events_max),
        };
        traces.by_client.insert(client_id.to_owned(), trace);
        self.active.store(true, Ordering::Release);
        tracing::info!(target: "keel::trace", client_id, with_payload, "trace started");
        Ok(Started::New)
    }

    /// Stops tracing `client_id`, forgetting its events; false when it was not traced.
    pub fn stop(&self, client_id: &str) -> bool {
        let mut traces = self.lock();
        if traces.by_client.remove(client_id).is_none() {
            return false;
        }
        traces.conns.retain(|_, traced| traced != client_id);
        self.active
            .store(!traces.by_client.is_empty(), Ordering::Release);
        tracing::info!(target: "keel::trace", client_id, "trace stopped");
        true
    }

    /// Reads the traces under the lock: `read` gets each traced client id and its trace.
    pub fn read<T>(&self, read: impl FnOnce(&BTreeMap<String, Trace>) -> T) -> T {
        read(&self.lock().by_client)
    }

    /// What a connection uses to record a batch of packets, or `None` (the common case, one
    /// atomic load; `now_ms` is not even asked) while no client is traced.
    #[inline]
    pub fn tap<'a>(&'a self, session: &Session, now_ms: impl FnOnce() -> u64) -> Option<Tap<'a>> {
        if !self.is_active() {
            return None;
        }
        Some(Tap {
            tracer: self,
            conn: session.conn(),
            client_id: session.client_id().map(|c| c.as_str().to_owned()),
            now_ms: now_ms(),
        })
    }

    /// Records `event` of connection `conn` if it serves a traced client: the one it is bound
    /// to, else `client_id` (binding it). `bind` names the client a CONNECT asks to be.
    fn record(
        &self,
        conn: ConnId,
        client_id: Option<&str>,
        bind: Option<&str>,
        event: impl FnOnce(bool) -> TraceEvent,
    ) {
        let (client, line) = {
            let mut traces = self.lock();
            let traces = &mut *traces;
            let client = match traces.conns.get(&conn) {
                Some(bound) => bound.clone(),
                None => match bind.or(client_id) {
                    Some(id) if traces.by_client.contains_key(id) => {
                        traces.conns.insert(conn, id.to_owned());
                        id.to_owned()
                    }
                    _ => return,
                },
            };
            let Some(trace) = traces.by_client.get_mut(&client) else {
                return;
            };
            let event = event(trace.with_payload);
            let line = event.to_string();
            trace.events.push(event);
            (client, line)
        };
        self.recorded.fetch_add(1, Ordering::Relaxed);
        // Logged outside the lock: writing a log line may block on its output.
        tracing::info!(target: "keel::trace", client_id = %client, conn = conn.0, "{line}");
    }

    /// Forgets connection `conn` (it closed), returning the traced client it served.
    fn unbind(&self, conn: ConnId) -> Option<String> {
        self.lock().conns.remove(&conn)
    }
}

/// One connection's view of the tracer for a batch of packets: who it is and when.
pub struct Tap<'a> {
    tracer: &'a Tracer,
    conn: ConnId,
    /// The session's client id when the tap was taken (`None` before CONNECT).
    client_id: Option<String>,
    now_ms: u64,
}

impl Tap<'_> {
    /// A packet came from the client, `size_bytes` long.
    pub fn received(&self, packet: &Packet, size_bytes: usize) {
        let bind = match packet {
            Packet::Connect(connect) => Some(connect.client_id.as_str()),
            _ => None,
        };
        self.record(bind, |with_payload| {
            let at = (self.now_ms, self.conn);
            TraceEvent::packet(at, Direction::In, packet, size_bytes, with_payload)
        });
    }

    /// A packet went to the client, `size_bytes` long.
    pub fn sent(&self, packet: &Packet, size_bytes: usize) {
        self.record(None, |with_payload| {
            let at = (self.now_ms, self.conn);
            TraceEvent::packet(at, Direction::Out, packet, size_bytes, with_payload)
        });
    }

    /// The client sent bytes that are not a packet (the connection closes).
    pub fn malformed(&self, error: &DecodeError) {
        self.record(None, |_| {
            TraceEvent::connection(self.now_ms, self.conn, "malformed", error.to_string())
        });
    }

    /// Where the connection comes from (the socket's peer, or the client a PROXY protocol
    /// header named), recorded after its CONNECT.
    pub fn peer(&self, addr: std::net::SocketAddr) {
        self.record(None, |_| {
            TraceEvent::connection(self.now_ms, self.conn, "peer", addr.to_string())
        });
    }

    /// The connection ended.
    pub fn closed(&self) {
        self.record(None, |_| {
            TraceEvent::connection(self.now_ms, self.conn, "closed", String::new())
        });
        self.tracer.unbind(self.conn);
    }

    fn record(&self, bind: Option<&str>, event: impl FnOnce(bool) -> TraceEvent) {
        let client_id = self.client_id.as_deref();
        self.tracer.record(self.conn, client_id, bind, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(clients_max: usize, events_max: usize) -> Tracer {
        let tracer = Tracer::default();
        tracer.set_limits(TraceLimits {
            clients_max,
            events_max,
        });
        tracer
    }

    fn event(kind: &'static str) -> impl FnOnce(bool) -> TraceEvent {
        move |_| TraceEvent::new(0, ConnId(0), Direction::In, kind)
    }

    fn kinds(tracer: &Tracer, client_id: &str) -> Vec<&'static str> {
        tracer.read(|traces| {
            traces[client_id]
                .events
                .since(0)
                .map(|(_, e)| e.kind)
                .collect()
        })
    }

    #[test]
    fn only_traced_clients_are_recorded_and_only_while_traced() {
        let tracer = limits(4, 10);
        assert!(!tracer.is_active());
        assert_eq!(tracer.start("a", false, 0), Ok(Started::New));
        assert_eq!(tracer.start("a", true, 0), Ok(Started::AlreadyTracing));
        assert!(tracer.is_active());
        tracer.record(ConnId(1), Some("a"), None, event("PUBLISH"));
        tracer.record(ConnId(2), Some("b"), None, event("PUBLISH"));
        assert_eq!(kinds(&tracer, "a"), ["PUBLISH"]);
        assert_eq!(tracer.recorded(), 1);
        assert!(tracer.stop("a"));
        assert!(!tracer.stop("a"));
        assert!(!tracer.is_active(), "the last trace stopped");
    }

    #[test]
    fn a_connect_binds_its_connection_so_a_refusal_is_recorded_too() {
        let tracer = limits(4, 10);
        tracer.start("dev", false, 0).unwrap();
        // CONNECT names the client; the session never learns it when it is refused.
        tracer.record(ConnId(7), None, Some("dev"), event("CONNECT"));
        tracer.record(ConnId(7), None, None, event("CONNACK"));
        tracer.record(ConnId(8), None, None, event("CONNACK"));
        assert_eq!(kinds(&tracer, "dev"), ["CONNECT", "CONNACK"]);
        assert_eq!(tracer.unbind(ConnId(7)).as_deref(), Some("dev"));
        assert_eq!(tracer.unbind(ConnId(7)), None);
    }

    #[test]
    fn traces_and_their_events_are_bounded() {
        let tracer = limits(2, 3);
        tracer.start("a", false, 0).unwrap();
        tracer.start("b", false, 0).unwrap();
        assert_eq!(
            tracer.start("c", false, 0),
            Err(TraceError::TooManyClients { max: 2 })
        );
        for _ in 0..5 {
            tracer.record(ConnId(1), Some("a"), None, event("PINGREQ"));
        }
        tracer.read(|traces| {
            assert_eq!(traces["a"].events.len(), 3);
            assert_eq!(traces["a"].events.overwritten(), 2);
        });
    }

    #[test]
    fn stopping_a_trace_unbinds_its_connections() {
        let tracer = limits(4, 10);
        tracer.start("a", false, 0).unwrap();
        tracer.record(ConnId(1), Some("a"), None, event("PINGREQ"));
        tracer.stop("a");
        tracer.start("a", false, 0).unwrap();
        // Connection 1 is found again through its session's client id, not a stale binding.
        tracer.record(ConnId(1), None, None, event("PINGREQ"));
        assert!(kinds(&tracer, "a").is_empty());
        tracer.record(ConnId(1), Some("a"), None, event("PINGREQ"));
        assert_eq!(kinds(&tracer, "a"), ["PINGREQ"]);
    }
}
