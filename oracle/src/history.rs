//! The oracle's record of a run: every send, acknowledgement, delivery and fault, in one total
//! order that respects what the clients observed. In the simulator that is the order turmoil
//! executed them (every host runs on one thread); against real processes (`jepsen/`) it is the
//! order the clients took the history's lock, and clients record a send *before* the bytes go
//! out and an acknowledgement or delivery *after* it arrived, so whatever one observation
//! caused stands after it. Either way the index of an event is a "happened before" among the
//! clients' observations.
//!
//! Clients record what their application saw, never what the broker did: an operation whose
//! acknowledgement never came is *unknown* (it may or may not have taken effect), and the
//! checkers treat it so.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use keel::codec::QoS;

/// One message of the workload: which publisher sent it and its place in that publisher's
/// sequence (the payload carries both, see [`MsgId::payload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId {
    pub publisher: u32,
    pub seq: u64,
}

impl MsgId {
    pub fn payload(self) -> String {
        format!("{}:{}", self.publisher, self.seq)
    }

    pub fn parse(payload: &[u8]) -> Option<MsgId> {
        let text = std::str::from_utf8(payload).ok()?;
        let (publisher, seq) = text.split_once(':')?;
        Some(MsgId {
            publisher: publisher.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}#{}", self.publisher, self.seq)
    }
}

/// A connection of a client: the client's name and how many connections it opened before.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnRef {
    pub client: String,
    pub conn: u32,
}

impl fmt::Display for ConnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.client, self.conn)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// CONNECT sent on a new connection.
    ConnectSent {
        at: ConnRef,
        clean_start: bool,
        /// The session outlives the connection (v3 clean_session=0, v5 expiry > 0).
        durable: bool,
        /// The node connected to.
        node: String,
        /// MQTT 5 (else 3.1.1).
        #[serde(default)]
        v5: bool,
        /// MQTT 5: the Session Expiry Interval property as sent; `None` when absent (which
        /// means 0). Always `None` for 3.1.1.
        #[serde(default)]
        expiry_secs: Option<u32>,
    },
    /// A DISCONNECT sent by the client (a normal close), with the Session Expiry Interval it
    /// carried (MQTT 5 may change the expiry there; `None`: absent, the CONNECT's holds).
    DisconnectSent {
        at: ConnRef,
        expiry_secs: Option<u32>,
    },
    /// A successful CONNACK.
    Connected { at: ConnRef, session_present: bool },
    /// The connection ended: closed by the broker (DISCONNECT with `reason`, or EOF), timed
    /// out, or dropped by the client (a client crash or an abandoned connection).
    ConnectionLost { at: ConnRef, why: String },
    /// The client opened a new connection with the same client id while `old` was still open.
    TakeoverStarted { old: ConnRef, new: ConnRef },
    SubscribeSent {
        at: ConnRef,
        filter: String,
        qos: QoS,
    },
    /// SUBACK granting `granted` (a failure code is never recorded as `Subscribed`).
    Subscribed {
        at: ConnRef,
        filter: String,
        granted: QoS,
    },
    /// PUBLISH sent (`dup` for a resend of the same packet after a reconnect).
    PublishSent {
        at: ConnRef,
        msg: MsgId,
        topic: String,
        qos: QoS,
        retain: bool,
        dup: bool,
    },
    /// The publish is acknowledged: PUBACK (QoS 1) or PUBREC (QoS 2) with a success code.
    PublishAcked { at: ConnRef, msg: MsgId },
    /// PUBCOMP for a QoS 2 publish: the publisher's side of the exchange is complete.
    PublishCompleted { at: ConnRef, msg: MsgId },
    /// An application message handed to the subscribing application: every QoS 0/1 PUBLISH,
    /// and a QoS 2 PUBLISH whose packet id was not already awaiting PUBREL ([MQTT-4.3.3]).
    Delivered {
        at: ConnRef,
        msg: MsgId,
        topic: String,
        /// The QoS of the PUBLISH as received (the lower of publish and subscription QoS).
        qos: QoS,
        dup: bool,
        /// The RETAIN flag as received: set only on retained copies sent on subscribe
        /// (the workload never asks for Retain As Published).
        retain: bool,
        /// The PUBLISH's packet id (QoS 1/2), for reading a trace.
        #[serde(default)]
        packet_id: Option<u16>,
    },
    /// A PUBREL from the broker reached a subscriber (QoS 2: the packet id is released), for
    /// reading a trace.
    ReleaseReceived { at: ConnRef, packet_id: u16 },
    /// A retained-reader connection saw everything the broker sends after its SUBACK (it waited
    /// for a while after the SUBACK): a topic without a retained delivery had none.
    RetainedReadDone { at: ConnRef },
    /// Bytes from the broker that do not decode as an MQTT packet of the connection's
    /// protocol (the connection is given up, a `ConnectionLost` follows).
    MalformedFromBroker { at: ConnRef, error: String },
    /// Fault injection (for reading a trace; the checkers use only the phase markers).
    Fault { what: String },
    /// Faults stop here and every fault is healed; the liveness phase starts.
    LivenessStarted,
    /// The end of the run (after the liveness bound).
    Finished,
}

/// An event with the time it was recorded at: ms since the start of the run (simulated time in
/// the simulator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at_ms: u64,
    pub event: Event,
}

/// The shared, append-only history. Clones share one record.
#[derive(Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl History {
    pub fn record(&self, at_ms: u64, event: Event) {
        self.lock().push(Entry { at_ms, event });
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A broken guarantee, found by a checker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The guarantee of docs/design.md §1 (or invariant) that does not hold, e.g. `"G1 delivery"`.
    pub guarantee: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.guarantee, self.detail)
    }
}
