//! One session's durable state: subscriptions, queued and in-flight messages, QoS 2 receive
//! state and the will.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::{PacketId, QoS, SubscriptionOptions, TopicFilter, SHARED_PREFIX};

use super::message::{ClientId, Message};
use super::named_number::named_number;
use super::placement::Place;

/// A subscription as the session holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    /// The MQTT 5 Subscription Identifier sent with it, echoed in matching publishes.
    pub identifier: Option<NonZeroU32>,
}

/// The shared subscription that chose this session for a message, so the message can go to
/// another member if this one leaves before acknowledging it.
///
/// Read back (from a snapshot) only if `$share/{group}/{filter}` is a valid shared filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "SharedKeyParts")]
pub struct SharedKey {
    pub group: Box<str>,
    /// The filter after the group, as matched against topic names.
    pub filter: Box<str>,
}

/// A [`SharedKey`] as read, before its parts are checked.
#[derive(Deserialize)]
struct SharedKeyParts {
    group: Box<str>,
    filter: Box<str>,
}

impl TryFrom<SharedKeyParts> for SharedKey {
    type Error = String;

    fn try_from(parts: SharedKeyParts) -> Result<SharedKey, String> {
        let SharedKeyParts { group, filter } = parts;
        let whole = format!("{SHARED_PREFIX}{group}/{filter}");
        let valid = TopicFilter::new(&whole)
            .is_ok_and(|f| f.shared() == Some((group.as_ref(), filter.as_ref())));
        if !valid {
            return Err(format!("invalid shared subscription {whole:?}"));
        }
        Ok(SharedKey { group, filter })
    }
}

named_number! {
    /// The position of a message in its session's queue. A session issues them from 1 up
    /// ([`SessionState::next_seq`]), one per message queued, and never again: a seq names one
    /// message of one session for good, across connections and restarts, and the packet id the
    /// message is sent under is derived from it ([`packet_id_for`]). Serialized as the bare number
    /// (`transparent`): the log and snapshots hold the same bytes as when this was a `u64`.
    pub struct Seq;
}

impl Seq {
    /// Below every seq a session issues: "none yet" for a connection that sent nothing.
    pub const ZERO: Seq = Seq(0);
    /// The first seq a session issues.
    pub const FIRST: Seq = Seq(1);

    /// The seq issued after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

/// A QoS 1 or 2 message waiting in a session for delivery or acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Position in the session's queue; strictly increasing. The packet id used to send the
    /// message is derived from it ([`packet_id_for`]), so it is the same after a restart.
    pub seq: Seq,
    pub message: Arc<Message>,
    /// The delivery QoS: the lower of the published and the subscribed QoS, at least 1.
    pub qos: QoS,
    /// The RETAIN flag of the delivery.
    pub retain: bool,
    pub subscription_ids: Vec<NonZeroU32>,
    pub shared: Option<SharedKey>,
    /// QoS 2: the subscriber's PUBREC arrived, so the message was delivered and only PUBREL
    /// may follow; resending the PUBLISH would duplicate it.
    pub pubrec_received: bool,
}

/// The packet id for the message at `seq`: 1 to 65535, cycling with the sequence.
pub fn packet_id_for(seq: Seq) -> PacketId {
    let id = (seq.0 % u64::from(u16::MAX)) as u16 + 1;
    PacketId::new(id).unwrap_or(PacketId::MIN)
}

/// A will message and when to publish it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Will {
    pub message: Message,
    /// Seconds to wait after the connection ends (MQTT 5 Will Delay Interval).
    pub delay_secs: u32,
}

/// The state of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub client_id: ClientId,
    /// Seconds the session outlives its connection; `u32::MAX` means never expires.
    pub expiry_secs: u32,
    /// True while a connection serves the session.
    pub connected: bool,
    /// When the last connection ended (unix ms), while disconnected.
    pub disconnected_at_ms: Option<u64>,
    pub subscriptions: BTreeMap<TopicFilter, Subscription>,
    /// QoS 1/2 messages not yet acknowledged, oldest first. Read it freely; change it only
    /// through [`SessionState::push_queued`] and [`SessionState::remove_queued`], which keep
    /// `queue_bytes` equal to its contents (`check` asserts it).
    pub queue: VecDeque<QueuedMessage>,
    /// The [`Message::size_bytes`] of every message in `queue`, summed: kept up to date with
    /// each push and removal so that `queue_bytes_max` is checked without a scan of the
    /// queue. Derived, so snapshots do not hold it; restoring a session rebuilds it.
    pub(super) queue_bytes: usize,
    /// The seq the next message queued gets.
    pub next_seq: Seq,
    /// Packet ids of QoS 2 publishes received and routed, awaiting the client's PUBREL.
    pub incoming_qos2: BTreeSet<PacketId>,
    /// Boxed: most sessions have none, and a will is large.
    pub will: Option<Box<Will>>,
    /// When the pending will is due (unix ms), once the connection has ended.
    pub will_due_ms: Option<u64>,
    /// Where the session's connection is served (while connected) or last was.
    pub place: Place,
}

impl SessionState {
    pub fn new(client_id: ClientId, expiry_secs: u32, place: Place) -> SessionState {
        SessionState {
            client_id,
            expiry_secs,
            connected: true,
            disconnected_at_ms: None,
            subscriptions: BTreeMap::new(),
            queue: VecDeque::new(),
            queue_bytes: 0,
            next_seq: Seq::FIRST,
            incoming_qos2: BTreeSet::new(),
            will: None,
            will_due_ms: None,
            place,
        }
    }

    /// When the session ends if nobody reconnects (unix ms); `None` while connected or when
    /// it never expires.
    pub fn expires_at_ms(&self) -> Option<u64> {
        if self.expiry_secs == u32::MAX {
            return None;
        }
        self.disconnected_at_ms
            .map(|at| at.saturating_add(u64::from(self.expiry_secs) * 1000))
    }

    /// Payload and topic bytes of the messages the session holds (queued and in flight),
    /// the quantity `queue_bytes_max` bounds.
    pub fn queue_bytes(&self) -> usize {
        self.queue_bytes
    }

    /// Appends a message to the queue, counting its bytes.
    pub(super) fn push_queued(&mut self, queued: QueuedMessage) {
        // Sequence numbers strictly increase along the queue and were issued by `next_seq`:
        // acknowledgements, PUBREL and DUP all find messages by seq.
        assert!(
            self.queue.back().is_none_or(|last| last.seq < queued.seq)
                && queued.seq < self.next_seq,
            "seq {} queued for {} out of order or not issued",
            queued.seq,
            self.client_id
        );
        self.queue_bytes += queued.message.size_bytes();
        self.queue.push_back(queued);
    }

    /// Removes the message at `index` of the queue, uncounting its bytes.
    pub(super) fn remove_queued(&mut self, index: usize) -> Option<QueuedMessage> {
        let removed = self.queue.remove(index)?;
        // Never below zero: the bytes of every message in the queue were added when it was
        // pushed.
        self.queue_bytes = (self.queue_bytes.checked_sub(removed.message.size_bytes()))
            .expect("queue bytes below zero");
        Some(removed)
    }

    /// The queued message with this sequence number.
    pub fn queued(&self, seq: Seq) -> Option<&QueuedMessage> {
        self.index_of(seq).map(|i| &self.queue[i])
    }

    pub(super) fn index_of(&self, seq: Seq) -> Option<usize> {
        // The queue is sorted by seq, and acknowledgements mostly hit the front.
        match self.queue.front() {
            Some(front) if front.seq == seq => Some(0),
            _ => self.queue.binary_search_by_key(&seq, |q| q.seq).ok(),
        }
    }

    /// Checks the invariants of one session; panics with the broken one.
    pub fn validate(&self) {
        if let Err(broken) = self.check() {
            panic!("{broken}");
        }
    }

    /// The invariants [`SessionState::validate`] asserts, as an error naming the broken one:
    /// for a session read back from storage, where a broken invariant means corrupt data.
    pub(super) fn check(&self) -> Result<(), String> {
        let client_id = &self.client_id;
        let mut last = Seq::ZERO;
        let mut bytes = 0;
        for queued in &self.queue {
            bytes += queued.message.size_bytes();
            let seq = queued.seq;
            if seq <= last {
                return Err(format!("queue of {client_id} out of order at seq {seq}"));
            }
            if seq >= self.next_seq {
                return Err(format!("seq {seq} of {client_id} not yet issued"));
            }
            if queued.qos == QoS::AtMostOnce {
                return Err(format!("QoS 0 message queued for {client_id} at seq {seq}"));
            }
            if queued.pubrec_received && queued.qos != QoS::ExactlyOnce {
                return Err(format!(
                    "PUBREC recorded for a QoS 1 message of {client_id} at seq {seq}"
                ));
            }
            last = seq;
        }
        if bytes != self.queue_bytes {
            return Err(format!(
                "queue of {client_id} holds {bytes} bytes but counts {}",
                self.queue_bytes
            ));
        }
        if !self.connected && self.disconnected_at_ms.is_none() {
            return Err(format!(
                "disconnected session {client_id} without a disconnection time"
            ));
        }
        if self.will_due_ms.is_some() && (self.connected || self.will.is_none()) {
            return Err(format!("will of {client_id} due without a pending will"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_cycle_through_1_to_65535() {
        assert_eq!(packet_id_for(Seq(0)).get(), 1);
        assert_eq!(packet_id_for(Seq(1)).get(), 2);
        assert_eq!(packet_id_for(Seq(65_534)).get(), 65_535);
        assert_eq!(packet_id_for(Seq(65_535)).get(), 1);
        assert_eq!(
            packet_id_for(Seq(u64::MAX)).get(),
            (u64::MAX % 65_535) as u16 + 1
        );
    }
}
