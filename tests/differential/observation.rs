//! What one broker did in one scenario: each step's answer, and for each connection the
//! application messages it delivered (in which step) and how the connection ended; and the
//! step-by-step timeline printed for a replay.

use std::collections::BTreeMap;
use std::fmt;

use super::link::ConnId;
use super::scenario::{Scenario, Version};

/// A broker's answer to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    /// The TCP connect failed, or the broker closed the new connection without a CONNACK.
    NoConnAck,
    SubAck(Vec<u8>),
    /// MQTT 3.1.1's UNSUBACK has no codes: empty.
    UnsubAck(Vec<u8>),
    /// The reason codes of the publish's acknowledgements: PUBACK, or PUBREC and PUBCOMP
    /// (always 0 in MQTT 3.1.1).
    Published(Vec<u8>),
    /// Nothing to wait for: a QoS 0 publish, a DISCONNECT, a drop.
    Done,
    /// The client had no connection (the broker refused or closed an earlier one).
    NotConnected,
    /// The broker closed the connection instead of answering.
    ClosedInstead,
    /// No answer in time.
    NoAnswer,
}

/// One application message as a client received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The step during which (or during whose settling) it arrived.
    pub step: usize,
    /// Relative to the scenario's root.
    pub topic: String,
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
}

/// What the spec fixes about a delivery: the comparison key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
}

impl Delivery {
    pub fn message(&self) -> Message {
        Message {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos: self.qos,
            retain: self.retain,
        }
    }
}

/// How the client ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEnd {
    Disconnect,
    Drop,
}

/// Everything seen on one connection.
#[derive(Debug, Clone)]
pub struct ConnRecord {
    pub version: Version,
    pub deliveries: Vec<Delivery>,
    /// The DISCONNECT the broker sent: in which step, with which reason code.
    pub server_disconnect: Option<(usize, u8)>,
    /// In which step the broker closed the connection (also after the client's DISCONNECT).
    pub closed_at: Option<usize>,
    /// In which step and how the client ended it.
    pub client_end: Option<(usize, ClientEnd)>,
    /// Bytes from the broker that do not decode.
    pub garbage: Option<String>,
}

impl ConnRecord {
    pub fn new(version: Version) -> ConnRecord {
        ConnRecord {
            version,
            deliveries: Vec::new(),
            server_disconnect: None,
            closed_at: None,
            client_end: None,
            garbage: None,
        }
    }

    /// How the connection ended, as compared between brokers.
    pub fn ending(&self) -> String {
        let mut parts = Vec::new();
        if let Some((step, end)) = self.client_end {
            parts.push(format!("client {end:?} in step {step}"));
        }
        if let Some((step, code)) = self.server_disconnect {
            parts.push(format!("broker DISCONNECT 0x{code:02X} in step {step}"));
        }
        match self.closed_at {
            Some(step) => parts.push(format!("broker closed in step {step}")),
            None if self.client_end.is_none() => parts.push("open".into()),
            None => {}
        }
        if let Some(garbage) = &self.garbage {
            parts.push(format!("undecodable bytes: {garbage}"));
        }
        parts.join(", ")
    }
}

/// What one broker did in one scenario.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// One per step.
    pub outcomes: Vec<Outcome>,
    pub connections: BTreeMap<ConnId, ConnRecord>,
}

impl Observation {
    /// The step-by-step story: each step, the broker's answer, then what every connection
    /// received during it.
    pub fn timeline(&self, scenario: &Scenario) -> String {
        let mut out = String::new();
        for (n, step) in scenario.steps.iter().enumerate() {
            let outcome = self.outcomes.get(n).map_or("-".into(), |o| o.to_string());
            out.push_str(&format!("  [{n:2}] {step}  =>  {outcome}\n"));
            for (conn, record) in &self.connections {
                for delivery in record.deliveries.iter().filter(|d| d.step == n) {
                    out.push_str(&format!(
                        "         c{}#{} <- {delivery}\n",
                        conn.client, conn.number
                    ));
                }
                if record.server_disconnect.is_some_and(|(step, _)| step == n)
                    || record.closed_at == Some(n)
                {
                    out.push_str(&format!(
                        "         c{}#{} ended: {}\n",
                        conn.client,
                        conn.number,
                        record.ending()
                    ));
                }
            }
        }
        out
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::ConnAck {
                session_present,
                code,
            } => write!(
                f,
                "CONNACK present={} code=0x{code:02X}",
                u8::from(*session_present)
            ),
            Outcome::NoConnAck => f.write_str("no CONNACK (closed)"),
            Outcome::SubAck(codes) => write!(f, "SUBACK {}", hex(codes)),
            Outcome::UnsubAck(codes) => write!(f, "UNSUBACK {}", hex(codes)),
            Outcome::Published(codes) => write!(f, "acked {}", hex(codes)),
            Outcome::Done => f.write_str("sent"),
            Outcome::NotConnected => f.write_str("skipped: not connected"),
            Outcome::ClosedInstead => f.write_str("connection closed instead of an answer"),
            Outcome::NoAnswer => f.write_str("no answer in time"),
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message())?;
        if self.dup {
            f.write_str(" dup")?;
        }
        Ok(())
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retain = if self.retain { " retain" } else { "" };
        write!(f, "{} q{}{retain} {:?}", self.topic, self.qos, self.payload)
    }
}

/// Reason codes as `[0x00, 0x11]`.
fn hex(codes: &[u8]) -> String {
    let list: Vec<String> = codes.iter().map(|c| format!("0x{c:02X}")).collect();
    format!("[{}]", list.join(", "))
}
