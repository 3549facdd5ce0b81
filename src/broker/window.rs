//! A connection of this node and its outbound window: which QoS 1/2 messages of its session
//! are in flight to the client, how far the queue was sent, and what an earlier connection
//! may already have sent.

use std::collections::BTreeMap;

use crate::codec::{PacketId, QoS};
use crate::state::{packet_id_for, ClientId, QueuedMessage, Seq};

use super::types::Tier;

/// A connection of this node serving a session.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) client_id: ClientId,
    pub(super) tier: Tier,
    /// A session is served only once its registration (`OpenSession`, `OpenLocal`) is
    /// applied.
    pub(super) opened: bool,
    /// A local session: Session Present of its CONNACK, known at connect and sent once its
    /// registration commits.
    pub(super) local_present: bool,
    pub(super) window: OutboundWindow,
    /// When its CONNECT arrived (this node's clock): a QoS 0 message another node received
    /// before then was not meant for this connection (see [`super::Broker::forwarded`]).
    pub(super) connected_at_ms: u64,
}

impl Connection {
    pub(super) fn new(client_id: ClientId, tier: Tier, window: usize, now_ms: u64) -> Connection {
        Connection {
            client_id,
            tier,
            opened: false,
            local_present: false,
            window: OutboundWindow::new(window),
            connected_at_ms: now_ms,
        }
    }

    /// The highest queue seq that may have reached the client, on this connection or (for a
    /// resumed durable session) on one before it; `None` when that is unknown.
    ///
    /// Unknown for a durable connection that never opened: this node's replica has not
    /// applied its `OpenSession` (that is what opening waits for), so every message it shows
    /// queued was routed before that point of the log, and an earlier connection, on any
    /// node, may have sent it. A node whose replica was stale (paused, or cut off from its
    /// peers) once released such messages to another member of their shared group when a
    /// CONNECT it took timed out, and the group got them twice (jepsen, seeds 1796514293 and
    /// 1796515831).
    pub(super) fn sent_bound(&self) -> Option<Seq> {
        match (self.tier, self.opened) {
            (Tier::Durable, false) if crate::planted::planted().release_sent_shared => {
                Some(self.window.sent_through())
            }
            (Tier::Durable, false) => None,
            _ => Some(self.window.sent_or_dup_through()),
        }
    }
}

/// The QoS 1/2 messages of one connection's session in flight to its client.
///
/// Invariants (checked by [`OutboundWindow::validate`], kept by every method that writes):
/// no more than `size` messages in flight; each under the packet id its seq gives
/// ([`packet_id_for`]); none beyond `sent_through`, which only grows.
#[derive(Debug)]
pub(super) struct OutboundWindow {
    /// How many QoS 1/2 messages may be in flight to the client.
    size: usize,
    /// QoS 1/2 messages sent and not yet acknowledged: packet id → queue seq.
    inflight: BTreeMap<PacketId, Seq>,
    /// The highest seq sent on this connection; later queue entries are not sent yet.
    sent_through: Seq,
    /// Entries up to this seq may have been sent on an earlier connection: resend with DUP.
    dup_through: Seq,
}

impl OutboundWindow {
    fn new(size: usize) -> OutboundWindow {
        OutboundWindow {
            size,
            inflight: BTreeMap::new(),
            sent_through: Seq::ZERO,
            dup_through: Seq::ZERO,
        }
    }

    /// Messages in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Whether one more message may be sent.
    pub(super) fn has_room(&self) -> bool {
        self.inflight.len() < self.size
    }

    /// The queue seq sent under `packet_id`, if it is in flight.
    pub(super) fn seq_of(&self, packet_id: PacketId) -> Option<Seq> {
        self.inflight.get(&packet_id).copied()
    }

    /// Frees `packet_id` (acknowledged, or given up); returns the seq it carried.
    pub(super) fn remove(&mut self, packet_id: PacketId) -> Option<Seq> {
        self.inflight.remove(&packet_id)
    }

    /// The highest seq sent on this connection.
    pub(super) fn sent_through(&self) -> Seq {
        self.sent_through
    }

    /// The highest seq this connection or one before it may have sent.
    pub(super) fn sent_or_dup_through(&self) -> Seq {
        self.sent_through.max(self.dup_through)
    }

    /// Whether `seq` may have reached the client on an earlier connection (resend with DUP).
    pub(super) fn is_resend(&self, seq: Seq) -> bool {
        seq <= self.dup_through
    }

    /// Once the session is open: entries up to `seq` may have been sent before.
    pub(super) fn set_dup_through(&mut self, seq: Seq) {
        self.dup_through = seq;
    }

    /// The queue entry `seq` was handled (sent, or dropped as expired): later ones come next.
    pub(super) fn pass(&mut self, seq: Seq) {
        assert!(
            seq > self.sent_through,
            "queue seq {seq} handled after {}: seqs strictly increase",
            self.sent_through
        );
        self.sent_through = seq;
    }

    /// Puts the entry just passed in flight under `packet_id`.
    pub(super) fn send(&mut self, packet_id: PacketId, seq: Seq) {
        assert!(self.has_room(), "window overrun");
        assert_eq!(seq, self.sent_through, "only the entry just passed is sent");
        let previous = self.inflight.insert(packet_id, seq);
        assert!(
            previous.is_none(),
            "packet id {packet_id:?} reused in flight"
        );
    }

    /// Whether `packet_id` is still held by an earlier message.
    pub(super) fn holds(&self, packet_id: PacketId) -> bool {
        self.inflight.contains_key(&packet_id)
    }

    /// Checks the invariants; panics with the broken one.
    pub(super) fn validate(&self) {
        assert!(self.inflight.len() <= self.size, "window overrun");
        for (packet_id, seq) in &self.inflight {
            assert_eq!(
                packet_id_for(*seq),
                *packet_id,
                "in-flight id does not match its seq"
            );
            assert!(*seq <= self.sent_through, "in flight beyond what was sent");
        }
    }
}

/// Whether a shared-subscription message may go to another member when this one leaves:
/// QoS 1 always; QoS 2 only if it was certainly never sent to the client (seq above
/// `sent_bound`, see [`Connection::sent_bound`]), since a QoS 2 message once sent must be
/// completed with the same client ([MQTT-4.8.2-4], [MQTT-4.8.2-5]).
pub(super) fn may_go_elsewhere(queued: &QueuedMessage, sent_bound: Option<Seq>) -> bool {
    !queued.pubrec_received
        && (queued.qos == QoS::AtLeastOnce || sent_bound.is_some_and(|bound| queued.seq > bound))
}
