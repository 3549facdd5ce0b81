//! The application message as the broker stores it: once, shared by every queue holding it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{MqttString, PublishProperties, QoS, TopicName};

/// An identifier of a client, as sent in CONNECT (or assigned by the broker).
pub type ClientId = MqttString;

/// A published message. Queues and retained slots hold it behind an `Arc`, so a message that
/// matches many sessions is stored once and fan-out copies no payload.
///
/// Serde writes it into the Raft log and snapshots: changing its fields changes both formats
/// (see `persist`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub topic: TopicName,
    pub payload: Bytes,
    /// The QoS it was published with; each delivery is at most this.
    pub qos: QoS,
    /// The RETAIN flag it was published with (for Retain As Published).
    pub retain: bool,
    /// Properties forwarded to subscribers. Never holds a topic alias or subscription
    /// identifiers: those belong to one connection and are set per delivery.
    pub properties: PublishProperties,
    /// The publishing client, for No Local; `None` for wills of ended sessions and `$SYS`.
    pub publisher: Option<ClientId>,
    /// When the broker received it (unix ms), to count down the Message Expiry Interval.
    pub received_at_ms: u64,
}

impl Message {
    /// What the message counts against a session's `queue_bytes_max`: its payload and topic
    /// bytes. Properties are left out: they are small next to a payload, and a bound that an
    /// operator can compute from what clients publish is easier to reason about.
    pub fn size_bytes(&self) -> usize {
        self.topic.len() + self.payload.len()
    }

    /// The absolute expiry time (unix ms), if the message has an expiry interval.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.properties
            .message_expiry_interval
            .map(|secs| self.received_at_ms.saturating_add(u64::from(secs) * 1000))
    }

    /// Seconds left of the expiry interval at `now_ms`, rounded up as §3.3.2.3.3 asks the
    /// server to send; `Some(0)` once expired; `None` without an expiry interval.
    pub fn expiry_left_secs(&self, now_ms: u64) -> Option<u32> {
        let expires_at = self.expires_at_ms()?;
        let left_ms = expires_at.saturating_sub(now_ms);
        Some(u32::try_from(left_ms.div_ceil(1000)).unwrap_or(u32::MAX))
    }

    /// True when the expiry interval has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|at| now_ms >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(expiry: Option<u32>) -> Message {
        Message {
            topic: TopicName::new("t").unwrap(),
            payload: Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: PublishProperties {
                message_expiry_interval: expiry,
                ..Default::default()
            },
            publisher: None,
            received_at_ms: 10_000,
        }
    }

    #[test]
    fn expiry_counts_down_from_reception() {
        let m = message(Some(5));
        assert_eq!(m.expiry_left_secs(10_000), Some(5));
        assert_eq!(m.expiry_left_secs(12_500), Some(3));
        assert!(!m.is_expired(14_999));
        assert!(m.is_expired(15_000));
        assert_eq!(m.expiry_left_secs(20_000), Some(0));
        assert_eq!(message(None).expiry_left_secs(99_999), None);
        assert!(!message(None).is_expired(u64::MAX));
    }
}
