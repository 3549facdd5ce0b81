//! The commands that change durable state, and what applying one reports back.
//!
//! Every change to sessions, subscriptions, queues, QoS 2 receive state and retained messages
//! is one of these, applied in order by [`super::State::apply`]. A single node applies them as
//! it goes; a cluster replicates them in a log first. Commands carry everything they need
//! (including `now_ms`), so applying one is deterministic.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::{PacketId, QoS, TopicFilter, TopicName};

use super::message::{ClientId, Message};
use super::placement::{Incarnation, NodeId, Place};
use super::session::{Seq, SharedKey, Subscription, Will};

/// Serde writes commands into the Raft log (postcard, see `persist`): variants and fields are
/// written in declaration order, so reordering, adding or removing any (or changing the type
/// of one) changes the log format and needs a new `COMMANDS_VERSION`; and, since the Raft
/// log's entries carry no version, more than that (see `COMMANDS_VERSION`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A client connected. With `clean_start` (or no session) a new session begins; otherwise
    /// the existing one resumes. A session still connected is taken over.
    OpenSession {
        client_id: ClientId,
        clean_start: bool,
        expiry_secs: u32,
        /// Boxed: a will is large and rare, and commands are many.
        will: Option<Box<Will>>,
        now_ms: u64,
        /// Where the connection is served.
        place: Place,
    },
    /// The connection of a session ended. `expiry_secs` is the final Session Expiry Interval
    /// (MQTT 5 may change it at DISCONNECT); with 0 the session ends now. With
    /// `publish_will` false (a normal DISCONNECT) the will is discarded. Only the connection
    /// at `place` closes the session: one taken over meanwhile (by a connection elsewhere)
    /// changes nothing.
    CloseSession {
        client_id: ClientId,
        expiry_secs: u32,
        publish_will: bool,
        now_ms: u64,
        place: Place,
    },
    /// The session expired: it ends, publishing a will still pending.
    EndSession { client_id: ClientId, now_ms: u64 },
    /// The will delay of a disconnected session passed: publish its will.
    PublishWill { client_id: ClientId, now_ms: u64 },
    Subscribe {
        client_id: ClientId,
        subscriptions: Vec<(TopicFilter, Subscription)>,
        now_ms: u64,
    },
    Unsubscribe {
        client_id: ClientId,
        filters: Vec<TopicFilter>,
    },
    /// Route a message to the matching sessions. `origin` is the publisher, packet id and
    /// connection place of a QoS 2 publish: the id is remembered until PUBREL, and a resent
    /// publish with the same id is not routed again. A publish from a connection that no
    /// longer holds its session (taken over elsewhere while this command was on its way) is
    /// not routed at all: the publisher resends it on its new connection, which may already
    /// have completed it.
    Publish {
        message: Arc<Message>,
        origin: Option<Qos2Origin>,
        /// Shared groups that already gave the message to one of their members elsewhere
        /// (a session of the node's local tier): none of this state's members get it.
        skip_shared: Vec<SharedKey>,
    },
    /// Set (or, with `None`, clear) the retained message of a topic.
    SetRetained {
        topic: TopicName,
        message: Option<Arc<Message>>,
    },
    /// The subscriber acknowledged the message at `seq` (PUBACK or PUBCOMP), or the broker
    /// gave up on it (expired, too large for the client, refused by the client).
    Acked { client_id: ClientId, seq: Seq },
    /// The subscriber sent PUBREC for the QoS 2 message at `seq`.
    PubRecReceived { client_id: ClientId, seq: Seq },
    /// The publisher released a QoS 2 packet id with PUBREL.
    PubRelReceived {
        client_id: ClientId,
        packet_id: PacketId,
    },
    /// The shared-subscription messages at `seqs` go to other members of their groups (the
    /// session's connection ended before it acknowledged them).
    ReleaseShared { client_id: ClientId, seqs: Vec<Seq> },
    /// A message released by a member of a shared group in another state (a local session
    /// that ended with no other local member to take it) goes to one of this state's members
    /// of the group, if it has any.
    PublishShared {
        key: SharedKey,
        message: Arc<Message>,
        retain: bool,
    },
    /// A session that ends with its connection connected at `place`: registered so that
    /// other nodes route to it and a connection elsewhere takes it over.
    OpenLocal { client_id: ClientId, place: Place },
    /// The local session at `place` ended.
    CloseLocal { client_id: ClientId, place: Place },
    /// Subscriptions of the local session at `place`, for routing from other nodes.
    SubscribeLocal {
        client_id: ClientId,
        place: Place,
        subscriptions: Vec<(TopicFilter, Subscription)>,
    },
    UnsubscribeLocal {
        client_id: ClientId,
        place: Place,
        filters: Vec<TopicFilter>,
    },
    /// Every connection `node` served in a run before `incarnation` is gone: the node
    /// restarted, or was declared gone. Durable sessions connected there are closed (their
    /// wills published, their expiry started), local sessions there end.
    NodeDown {
        node: NodeId,
        incarnation: Incarnation,
        now_ms: u64,
    },
}

/// Who sent a QoS 2 publish, for [`Command::Publish`]: its packet id is remembered for the
/// publisher until PUBREL (a resend with the same id is not routed again), and a publish from
/// a connection that no longer holds its session is not routed at all.
///
/// Part of the log format: serde writes a struct as its fields in order, the same bytes as
/// the tuple `(ClientId, PacketId, Place)` this was before (`COMMANDS_VERSION` 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qos2Origin {
    /// The publisher's session.
    pub client_id: ClientId,
    /// The packet id of the PUBLISH, released by the publisher's PUBREL.
    pub packet_id: PacketId,
    /// Where the publisher's connection was served when it sent the PUBLISH.
    pub place: Place,
}

/// A QoS 0 delivery decided while applying a command: sent at once to a connected session,
/// never queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectDelivery {
    pub client_id: ClientId,
    pub message: Arc<Message>,
    pub retain: bool,
    pub subscription_ids: Vec<std::num::NonZeroU32>,
}

/// A shared-subscription message that a releasing session keeps because no other member of
/// its group is in the same state (see [`Applied::unplaced_shared`]): for the broker to offer
/// to the group's members elsewhere, as a [`Command::PublishShared`] with the same fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnplacedShared {
    pub key: SharedKey,
    pub message: Arc<Message>,
    /// The RETAIN flag of the delivery.
    pub retain: bool,
}

/// What applying a command did, for the broker to act on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// OpenSession: an existing session was resumed.
    pub session_present: bool,
    /// OpenSession: the session was connected elsewhere and is taken over.
    pub taken_over: bool,
    /// Sessions that got new queued messages (to send if connected).
    pub queued_for: Vec<ClientId>,
    /// QoS 0 deliveries to connected sessions.
    pub direct: Vec<DirectDelivery>,
    /// Publish: sessions the message reached (queued or direct), for "no matching
    /// subscribers" (0x10).
    pub matched: usize,
    /// Publish: a QoS 2 resend whose packet id was already routed; nothing was done.
    pub duplicate: bool,
    /// Messages dropped because a session's queue was full (by count or by bytes).
    pub dropped_queue_full: usize,
    /// Of `dropped_queue_full`, the messages dropped for `queue_bytes_max` alone.
    pub dropped_queue_bytes: usize,
    /// Unsubscribe: whether each filter had a subscription. Subscribe: whether each existed
    /// before (for Retain Handling 1). PubRelReceived: whether the id was known.
    pub existed: Vec<bool>,
    /// Sessions that ended (expired, clean start, expiry 0), to forget their connections.
    pub ended: Vec<ClientId>,
    /// Publish: the shared groups that gave the message to a member.
    pub shared_served: Vec<SharedKey>,
    /// Wills this command published (already routed in this state), for the broker to route
    /// to sessions kept elsewhere.
    pub wills: Vec<Arc<Message>>,
    /// Connections that this command displaced, with the place that served them: taken over
    /// by a connection elsewhere, or gone with their node's run. The node at that place
    /// closes its connection for the client id (unless it is the one that asked).
    pub displaced: Vec<(ClientId, Place)>,
    /// OpenSession: where the session's last connection was, when it resumed one.
    pub resumed_from: Option<Place>,
    /// ReleaseShared: messages whose group had no other member in this state, so they stay
    /// with the releasing session (for the broker to offer to the group's members elsewhere).
    pub unplaced_shared: Vec<UnplacedShared>,
}

/// QoS of a delivery: the lower of publish and subscription.
pub fn delivery_qos(published: QoS, subscribed: QoS) -> QoS {
    published.min(subscribed)
}
