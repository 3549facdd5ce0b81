//! The broker's public vocabulary: its limits, what a connection asks of it, what it asks of
//! the shell ([`Effect`], [`Delivery`]), its counters, and the two tiers sessions live in.

use std::num::NonZeroU32;
use std::sync::Arc;

use crate::codec::{PacketId, QoS, ReasonCode};
use crate::state::{ClientId, Message, NodeId, SharedKey, StateConfig, Will};

use super::proposal::{Completion, ConnId, Ticket};

/// Limits of the broker core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Most QoS 1/2 messages in flight to one client, whatever Receive Maximum it allows.
    pub inflight_max: u16,
    /// Most QoS 2 publishes a client may have awaiting PUBREL (our Receive Maximum).
    pub receive_maximum: u16,
    pub state: StateConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            inflight_max: 256,
            receive_maximum: 256,
            state: StateConfig::default(),
        }
    }
}

/// A CONNECT that the session layer has validated and authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub client_id: ClientId,
    pub clean_start: bool,
    pub expiry_secs: u32,
    pub will: Option<Will>,
    /// The client's Receive Maximum: how many QoS 1/2 messages it takes in flight.
    pub receive_maximum: u16,
}

/// One PUBLISH (or, for a QoS 2 message already received, PUBREL) to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Publish {
        message: Arc<Message>,
        qos: QoS,
        /// `None` for QoS 0.
        packet_id: Option<PacketId>,
        retain: bool,
        dup: bool,
        subscription_ids: Vec<NonZeroU32>,
    },
    /// Resend PUBREL for a QoS 2 message whose PUBREC arrived on an earlier connection.
    Release(PacketId),
}

/// Something the shell must do for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The request `ticket` of the connection is done.
    Reply {
        conn: ConnId,
        ticket: Ticket,
        completion: Completion,
    },
    Deliver {
        conn: ConnId,
        delivery: Delivery,
    },
    /// Close the connection with this DISCONNECT reason (MQTT 5) or just close (MQTT 3).
    Disconnect {
        conn: ConnId,
        reason: ReasonCode,
    },
    /// Send a publish to another node for the sessions it serves without the log (the fast
    /// path): its local sessions, and for QoS 0 its connected durable ones. `groups` are the
    /// shared groups matching the topic that the node is to serve (one member each).
    Forward {
        node: NodeId,
        message: Arc<Message>,
        groups: Vec<SharedKey>,
    },
}

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The client has more QoS 2 publishes awaiting PUBREL than our Receive Maximum.
    #[error("receive maximum exceeded")]
    ReceiveMaximumExceeded,
    /// The connection no longer serves a session (taken over).
    #[error("connection does not own a session")]
    NotConnected,
}

/// Counters of what the broker did, for `$SYS` topics and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokerStats {
    /// PUBLISH packets accepted from clients (and wills and `$SYS` publishes).
    pub publishes_received: u64,
    /// PUBLISH packets handed to connections to send.
    pub deliveries: u64,
    /// QoS 1/2 messages dropped because a session's queue was full (`queue_max` or
    /// `queue_bytes_max`; `limits` tells them apart).
    pub dropped_queue_full: u64,
    /// Messages whose expiry interval passed before they could be sent.
    pub dropped_expired: u64,
    /// Messages given up for a client: too large for it, or refused by it.
    pub discarded: u64,
    /// Limits hit, by limit.
    pub limits: LimitStats,
    /// PUBLISH packets accepted, by QoS (0, 1, 2).
    pub received_by_qos: [u64; 3],
    /// PUBLISH packets handed to connections, by QoS (resends of QoS 2 as PUBREL not
    /// counted).
    pub sent_by_qos: [u64; 3],
    /// CONNECTs refused for their credentials or authorisation (0x86, 0x87).
    pub auth_failures: u64,
}

/// How often each per-client limit refused something.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LimitStats {
    /// Subscriptions refused for `subscriptions_max`.
    pub subscriptions: u64,
    /// Subscriptions refused for `subscription_bytes_max` (one session's filters).
    pub subscription_bytes: u64,
    /// Subscriptions refused for `node_subscription_bytes_max` (every session's filters).
    pub node_subscription_bytes: u64,
    /// Publishes and filters refused for `topic_levels_max`.
    pub topic_levels: u64,
    /// Clients disconnected for `publish_rate_max`.
    pub publish_rate: u64,
    /// Retained messages refused for `retained_max`.
    pub retained: u64,
    /// Messages dropped for `queue_max` (a session holding that many).
    pub queue: u64,
    /// Messages dropped for `queue_bytes_max` (a session holding that many bytes).
    pub queue_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// In the replicated state: changed only through the log.
    Durable,
    /// In this node's own state: changed at once, gone with the connection.
    Local,
}

impl Tier {
    /// The tier of a connection's session, from its CONNECT. Sessions that outlive their
    /// connection are durable (docs/design.md §1); so is one that may resume an existing session
    /// (Clean Start 0 with expiry 0, MQTT 5): whether a session exists is known only in log
    /// order, and a resumed session keeps its queue and QoS state ([MQTT-3.1.2-5]; the
    /// expiry of the new CONNECT only says how long it lives after this connection). Such a
    /// session still ends when its connection closes. Only a clean start with expiry 0 (and
    /// MQTT 3.1.1's clean session) is a session of this node alone.
    pub fn of(clean_start: bool, expiry_secs: u32) -> Tier {
        let resumes = !clean_start && !crate::planted::planted().resume_needs_expiry;
        if expiry_secs > 0 || resumes {
            Tier::Durable
        } else {
            Tier::Local
        }
    }
}

/// Whether a subscriber's PUBREC lets the session send PUBREL now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubRecOutcome {
    /// Send PUBREL now.
    Release,
    /// PUBREL follows once the PUBREC is committed ([`Delivery::Release`]).
    Committing,
    /// No QoS 2 message is in flight with that id.
    Unknown,
}
