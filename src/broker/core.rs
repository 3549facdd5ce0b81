//! [`Broker`]: applies commands for the connections of this node and decides what each
//! connection sends next.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::codec::{PacketId, QoS, ReasonCode, TopicFilter, TopicName};
use crate::state::{
    packet_id_for, Applied, ClientId, Command, Message, State, StateConfig, Subscription, Will,
};

/// Identifies one network connection of this node. Never reused.
pub type ConnId = u64;

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

/// Something the shell must do for a connection other than the caller's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Deliver {
        conn: ConnId,
        delivery: Delivery,
    },
    /// Close the connection with this DISCONNECT reason (MQTT 5) or just close (MQTT 3).
    Disconnect {
        conn: ConnId,
        reason: ReasonCode,
    },
}

/// What a publish did, for the PUBACK/PUBREC reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Sessions the message reached; 0 means "no matching subscribers" (0x10).
    pub matched: usize,
    /// Sessions that matched but whose queue was full (0x97 "quota exceeded" when no
    /// session took the message).
    pub dropped_queue_full: usize,
    /// A QoS 2 resend of a packet id already routed: acknowledged, not routed again.
    pub duplicate: bool,
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
    /// QoS 1/2 messages dropped because a session's queue was full.
    pub dropped_queue_full: u64,
    /// Messages whose expiry interval passed before they could be sent.
    pub dropped_expired: u64,
    /// Messages given up for a client: too large for it, or refused by it.
    pub discarded: u64,
}

/// A connection of this node serving a session.
#[derive(Debug)]
struct Connection {
    client_id: ClientId,
    /// How many QoS 1/2 messages may be in flight to the client.
    window: usize,
    /// QoS 1/2 messages sent and not yet acknowledged: packet id → queue seq.
    inflight: BTreeMap<PacketId, u64>,
    /// The highest seq sent on this connection; later queue entries are not sent yet.
    sent_through: u64,
    /// Entries up to this seq may have been sent on an earlier connection: resend with DUP.
    dup_through: u64,
}

/// The broker core of one node.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    state: State,
    connections: BTreeMap<ConnId, Connection>,
    /// The connection serving each connected client id.
    owners: BTreeMap<ClientId, ConnId>,
    /// How far each disconnected session's queue was sent, for DUP on resume.
    sent_before: BTreeMap<ClientId, u64>,
    effects: Vec<Effect>,
    stats: BrokerStats,
}

impl Broker {
    pub fn new(config: BrokerConfig) -> Broker {
        Broker {
            config,
            state: State::new(config.state),
            connections: BTreeMap::new(),
            owners: BTreeMap::new(),
            sent_before: BTreeMap::new(),
            effects: Vec::new(),
            stats: BrokerStats::default(),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// Number of connections serving a session.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The effects gathered since the last call, for the shell to carry out in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The client id a connection serves.
    pub fn client_of(&self, conn: ConnId) -> Option<&ClientId> {
        self.connections.get(&conn).map(|c| &c.client_id)
    }

    /// Opens or resumes the session of a new connection; returns Session Present.
    ///
    /// A connection already serving the client id is told to disconnect with 0x8E
    /// (Session taken over). Queued messages are sent to the new connection.
    pub fn connect(&mut self, conn: ConnId, request: ConnectRequest, now_ms: u64) -> bool {
        let client_id = request.client_id.clone();
        if let Some(old) = self.owners.remove(&client_id) {
            if let Some(old_connection) = self.connections.remove(&old) {
                self.sent_before
                    .insert(client_id.clone(), old_connection.sent_through);
            }
            self.effects.push(Effect::Disconnect {
                conn: old,
                reason: ReasonCode::SessionTakenOver,
            });
        }
        let applied = self.apply(Command::OpenSession {
            client_id: client_id.clone(),
            clean_start: request.clean_start,
            expiry_secs: request.expiry_secs,
            will: request.will.map(Box::new),
            now_ms,
        });
        let dup_through = if applied.session_present {
            self.sent_before.remove(&client_id).unwrap_or(0)
        } else {
            self.sent_before.remove(&client_id);
            0
        };
        let window = usize::from(request.receive_maximum.min(self.config.inflight_max).max(1));
        self.connections.insert(
            conn,
            Connection {
                client_id: client_id.clone(),
                window,
                inflight: BTreeMap::new(),
                sent_through: 0,
                dup_through,
            },
        );
        self.owners.insert(client_id, conn);
        self.pump(conn, now_ms);
        applied.session_present
    }

    /// The connection ended. `expiry_secs` is the session expiry in force at the end and
    /// `publish_will` is false after a normal DISCONNECT. A connection that was taken over
    /// changes nothing.
    pub fn disconnect(&mut self, conn: ConnId, expiry_secs: u32, publish_will: bool, now_ms: u64) {
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        let client_id = connection.client_id;
        self.owners.remove(&client_id);
        // Shared-subscription messages go to another member, except QoS 2 messages already
        // sent: those must be completed with this client ([MQTT-4.8.2-4]).
        let release: Vec<u64> = self
            .state
            .session(&client_id)
            .map(|s| {
                s.queue
                    .iter()
                    .filter(|q| q.shared.is_some() && may_go_elsewhere(q, connection.sent_through))
                    .map(|q| q.seq)
                    .collect()
            })
            .unwrap_or_default();
        if !release.is_empty() {
            self.apply(Command::ReleaseShared {
                client_id: client_id.clone(),
                seqs: release,
            });
        }
        self.sent_before
            .insert(client_id.clone(), connection.sent_through);
        self.apply(Command::CloseSession {
            client_id,
            expiry_secs,
            publish_will,
            now_ms,
        });
    }

    /// Routes a publish received at `message.received_at_ms`. `qos2_packet_id` is the packet
    /// id of a QoS 2 publish, remembered until PUBREL so that a resend is not routed twice.
    /// With `retain_update` a RETAIN publish sets (or, when empty, clears) the retained
    /// message of its topic.
    pub fn publish(
        &mut self,
        conn: ConnId,
        message: Message,
        qos2_packet_id: Option<PacketId>,
        retain_update: bool,
    ) -> Result<PublishOutcome, PublishError> {
        let client_id = self.owner_client(conn)?;
        if let Some(packet_id) = qos2_packet_id {
            let (known, awaiting) = self.state.session(&client_id).map_or((false, 0), |s| {
                (s.incoming_qos2.contains(&packet_id), s.incoming_qos2.len())
            });
            if !known && awaiting >= usize::from(self.config.receive_maximum) {
                return Err(PublishError::ReceiveMaximumExceeded);
            }
        }
        self.stats.publishes_received += 1;
        let message = Arc::new(message);
        if retain_update && message.retain {
            // An empty retained payload clears the topic's retained message
            // ([MQTT-3.3.1-6], [MQTT-3.3.1-7]); it is still delivered to subscribers.
            let retained = (!message.payload.is_empty()).then(|| message.clone());
            self.apply(Command::SetRetained {
                topic: message.topic.clone(),
                message: retained,
            });
        }
        let applied = self.apply(Command::Publish {
            message,
            origin: qos2_packet_id.map(|id| (client_id, id)),
        });
        Ok(PublishOutcome {
            matched: applied.matched,
            dropped_queue_full: applied.dropped_queue_full,
            duplicate: applied.duplicate,
        })
    }

    /// PUBACK from a subscriber. Returns false for an unknown packet id.
    pub fn puback(&mut self, conn: ConnId, packet_id: PacketId, now_ms: u64) -> bool {
        self.complete(conn, packet_id, QoS::AtLeastOnce, now_ms)
    }

    /// PUBCOMP from a subscriber. Returns false for an unknown packet id.
    pub fn pubcomp(&mut self, conn: ConnId, packet_id: PacketId, now_ms: u64) -> bool {
        self.complete(conn, packet_id, QoS::ExactlyOnce, now_ms)
    }

    /// The message sent with this packet id will not be sent: it is too large for the
    /// client, or the client refused it (a PUBACK/PUBREC reason of 0x80 or more).
    pub fn discard(&mut self, conn: ConnId, packet_id: PacketId, now_ms: u64) -> bool {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return false;
        };
        let Some(seq) = connection.inflight.remove(&packet_id) else {
            return false;
        };
        let client_id = connection.client_id.clone();
        self.stats.discarded += 1;
        self.apply(Command::Acked { client_id, seq });
        self.pump(conn, now_ms);
        true
    }

    /// PUBREC from a subscriber: the QoS 2 message was delivered; PUBREL follows. Returns
    /// false for an unknown packet id (answered with PUBREL 0x92 in MQTT 5).
    pub fn pubrec(&mut self, conn: ConnId, packet_id: PacketId) -> bool {
        let Some(connection) = self.connections.get(&conn) else {
            return false;
        };
        let Some(&seq) = connection.inflight.get(&packet_id) else {
            return false;
        };
        let client_id = connection.client_id.clone();
        let is_qos2 = self
            .state
            .session(&client_id)
            .and_then(|s| s.queued(seq))
            .is_some_and(|q| q.qos == QoS::ExactlyOnce);
        if is_qos2 {
            self.apply(Command::PubRecReceived { client_id, seq });
        }
        is_qos2
    }

    /// PUBREL from a publisher; returns whether the packet id was awaiting it.
    pub fn pubrel(&mut self, conn: ConnId, packet_id: PacketId) -> bool {
        let Ok(client_id) = self.owner_client(conn) else {
            return false;
        };
        let applied = self.apply(Command::PubRelReceived {
            client_id,
            packet_id,
        });
        applied.existed.first().copied().unwrap_or(false)
    }

    /// Adds subscriptions; returns for each whether it replaced an existing one. Retained
    /// messages are delivered as the subscriptions' Retain Handling says.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        subscriptions: Vec<(TopicFilter, Subscription)>,
        now_ms: u64,
    ) -> Vec<bool> {
        let Ok(client_id) = self.owner_client(conn) else {
            return Vec::new();
        };
        self.apply(Command::Subscribe {
            client_id,
            subscriptions,
            now_ms,
        })
        .existed
    }

    /// Removes subscriptions; returns for each whether it existed.
    pub fn unsubscribe(
        &mut self,
        conn: ConnId,
        filters: Vec<TopicFilter>,
        now_ms: u64,
    ) -> Vec<bool> {
        let Ok(client_id) = self.owner_client(conn) else {
            return Vec::new();
        };
        // Messages that came through a shared subscription being removed go to another
        // member, except QoS 2 messages already sent.
        let leaving: Vec<(&str, &str)> = filters.iter().filter_map(|f| f.shared()).collect();
        let release: Vec<u64> = match (self.state.session(&client_id), self.connections.get(&conn))
        {
            (Some(session), Some(connection)) if !leaving.is_empty() => session
                .queue
                .iter()
                .filter(|q| {
                    q.shared
                        .as_ref()
                        .is_some_and(|key| leaving.contains(&(&*key.group, &*key.filter)))
                })
                .filter(|q| may_go_elsewhere(q, connection.sent_through))
                .map(|q| q.seq)
                .collect(),
            _ => Vec::new(),
        };
        let existed = self
            .apply(Command::Unsubscribe {
                client_id: client_id.clone(),
                filters,
            })
            .existed;
        if !release.is_empty() {
            self.apply(Command::ReleaseShared {
                client_id,
                seqs: release,
            });
            self.forget_missing_inflight(conn);
            self.pump(conn, now_ms);
        }
        existed
    }

    /// Applies wills and session expiries that are due.
    pub fn tick(&mut self, now_ms: u64) {
        for command in self.state.due(now_ms) {
            self.apply(command);
        }
    }

    /// When [`Broker::tick`] next has work to do (unix ms).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.state.next_deadline_ms()
    }

    /// A publish on behalf of the broker itself (`$SYS`), with no publisher.
    pub fn publish_system(
        &mut self,
        topic: TopicName,
        payload: bytes::Bytes,
        retain: bool,
        now_ms: u64,
    ) {
        let message = Arc::new(Message {
            topic,
            payload,
            qos: QoS::AtMostOnce,
            retain,
            properties: Default::default(),
            publisher: None,
            received_at_ms: now_ms,
        });
        if retain {
            self.apply(Command::SetRetained {
                topic: message.topic.clone(),
                message: Some(message.clone()),
            });
        }
        self.apply(Command::Publish {
            message,
            origin: None,
        });
    }

    fn owner_client(&self, conn: ConnId) -> Result<ClientId, PublishError> {
        self.connections
            .get(&conn)
            .map(|c| c.client_id.clone())
            .ok_or(PublishError::NotConnected)
    }

    fn complete(&mut self, conn: ConnId, packet_id: PacketId, qos: QoS, now_ms: u64) -> bool {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return false;
        };
        let Some(&seq) = connection.inflight.get(&packet_id) else {
            return false;
        };
        let client_id = connection.client_id.clone();
        let queued = self.state.session(&client_id).and_then(|s| s.queued(seq));
        match queued {
            // The wrong acknowledgement for the flow (PUBACK for QoS 2, PUBCOMP before
            // PUBREC): ignore it.
            Some(q) if q.qos != qos || (qos == QoS::ExactlyOnce && !q.pubrec_received) => false,
            Some(_) => {
                connection.inflight.remove(&packet_id);
                self.apply(Command::Acked { client_id, seq });
                self.pump(conn, now_ms);
                true
            }
            // The message left the queue meanwhile (dropped for a full queue): free the id.
            None => {
                connection.inflight.remove(&packet_id);
                self.pump(conn, now_ms);
                true
            }
        }
    }

    /// Applies a command and acts on what it reports.
    fn apply(&mut self, command: Command) -> Applied {
        let now_ms = match &command {
            Command::OpenSession { now_ms, .. }
            | Command::CloseSession { now_ms, .. }
            | Command::EndSession { now_ms, .. }
            | Command::PublishWill { now_ms, .. }
            | Command::Subscribe { now_ms, .. } => *now_ms,
            Command::Publish { message, .. } => message.received_at_ms,
            _ => 0,
        };
        let applied = self.state.apply(command);
        self.stats.dropped_queue_full += applied.dropped_queue_full as u64;
        self.stats.deliveries += applied.direct.len() as u64;
        for direct in &applied.direct {
            if let Some(&conn) = self.owners.get(&direct.client_id) {
                self.effects.push(Effect::Deliver {
                    conn,
                    delivery: Delivery::Publish {
                        message: direct.message.clone(),
                        qos: QoS::AtMostOnce,
                        packet_id: None,
                        retain: direct.retain,
                        dup: false,
                        subscription_ids: direct.subscription_ids.clone(),
                    },
                });
            }
        }
        for client_id in &applied.queued_for {
            if let Some(&conn) = self.owners.get(client_id) {
                self.pump(conn, now_ms);
            }
        }
        for client_id in &applied.ended {
            self.sent_before.remove(client_id);
        }
        applied
    }

    /// Drops in-flight entries whose queued message is gone (released to another member).
    fn forget_missing_inflight(&mut self, conn: ConnId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let Some(session) = self.state.session(&connection.client_id) else {
            return;
        };
        connection
            .inflight
            .retain(|_, seq| session.queued(*seq).is_some());
    }

    /// Sends queued messages to a connection while its window has room.
    fn pump(&mut self, conn: ConnId, now_ms: u64) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let Some(session) = self.state.session(&connection.client_id) else {
            return;
        };
        let mut expired = Vec::new();
        let sent_through = connection.sent_through;
        let unsent = session.queue.partition_point(|q| q.seq <= sent_through);
        for queued in session.queue.range(unsent..) {
            if connection.inflight.len() >= connection.window {
                break;
            }
            let packet_id = packet_id_for(queued.seq);
            if connection.inflight.contains_key(&packet_id) {
                // The id is still held by a message 65,535 places earlier: wait for it.
                break;
            }
            connection.sent_through = queued.seq;
            if queued.message.is_expired(now_ms) && !queued.pubrec_received {
                expired.push(queued.seq);
                self.stats.dropped_expired += 1;
                continue;
            }
            connection.inflight.insert(packet_id, queued.seq);
            let delivery = if queued.pubrec_received {
                Delivery::Release(packet_id)
            } else {
                Delivery::Publish {
                    message: queued.message.clone(),
                    qos: queued.qos,
                    packet_id: Some(packet_id),
                    retain: queued.retain,
                    dup: queued.seq <= connection.dup_through,
                    subscription_ids: queued.subscription_ids.clone(),
                }
            };
            self.stats.deliveries += 1;
            self.effects.push(Effect::Deliver { conn, delivery });
        }
        let client_id = connection.client_id.clone();
        for seq in expired {
            self.state.apply(Command::Acked {
                client_id: client_id.clone(),
                seq,
            });
        }
    }

    /// Checks the invariants of the core and its state; panics with the broken one.
    pub fn validate(&self) {
        self.state.validate();
        assert_eq!(
            self.owners.len(),
            self.connections.len(),
            "owner index out of step"
        );
        for (client_id, conn) in &self.owners {
            let connection = &self.connections[conn];
            assert_eq!(&connection.client_id, client_id, "owner index out of step");
            let session = self
                .state
                .session(client_id)
                .unwrap_or_else(|| panic!("connected {client_id} has no session"));
            assert!(
                session.connected,
                "session of a live connection marked disconnected"
            );
            assert!(
                connection.inflight.len() <= connection.window,
                "window overrun"
            );
            for (packet_id, seq) in &connection.inflight {
                assert_eq!(
                    packet_id_for(*seq),
                    *packet_id,
                    "in-flight id does not match its seq"
                );
            }
        }
    }
}

/// Whether a shared-subscription message may go to another member when this one leaves:
/// QoS 1 always; QoS 2 only if it was never sent here, since a QoS 2 message once sent must
/// be completed with the same client ([MQTT-4.8.2-4]).
fn may_go_elsewhere(queued: &crate::state::QueuedMessage, sent_through: u64) -> bool {
    !queued.pubrec_received && (queued.qos == QoS::AtLeastOnce || queued.seq > sent_through)
}
