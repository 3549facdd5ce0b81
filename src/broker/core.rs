//! [`Broker`]: the sessions of this node's connections, in two tiers.
//!
//! *Durable* sessions (that outlive their connection) live in the replicated [`State`]: every
//! change to them is a [`Proposal`] the shell commits through the log, and takes effect only
//! when [`Broker::apply_committed`] applies it, in log order, on every replica. *Local*
//! sessions (that end with their connection) live in a second `State` that only this node
//! has, changed at once with no log write: the fast path of DESIGN §2.
//!
//! Requests whose reply must wait for a commit (PUBACK/PUBREC of a publish that reaches a
//! durable session, SUBACK of a durable session...) are answered by [`Effect::Reply`], for
//! the fast path at once and otherwise when the proposal is applied.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::codec::{PacketId, QoS, ReasonCode, TopicFilter, TopicName};
use crate::state::{
    packet_id_for, Applied, ClientId, Command, Message, SharedKey, State, StateConfig,
    Subscription, Will,
};

use super::proposal::{Completion, ConnId, Origin, Proposal, Ticket};

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

/// Most commands in one proposal made of merged fire-and-forget proposals.
const MERGED_COMMANDS_MAX: usize = 256;

/// Where a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// In the replicated state: changed only through the log.
    Durable,
    /// In this node's own state: changed at once, gone with the connection.
    Local,
}

impl Tier {
    /// Sessions that outlive their connection are durable (DESIGN §1).
    pub fn of(expiry_secs: u32) -> Tier {
        if expiry_secs > 0 {
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

/// A connection of this node serving a session.
#[derive(Debug)]
struct Connection {
    client_id: ClientId,
    tier: Tier,
    /// A durable session is served only once its `OpenSession` is applied.
    opened: bool,
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
    node: u64,
    incarnation: u64,
    /// The replica of the replicated state: changed only by [`Broker::apply_committed`].
    durable: State,
    /// Sessions that end with their connection, and a mirror of the retained messages.
    local: State,
    connections: BTreeMap<ConnId, Connection>,
    /// The connection serving each connected client id.
    owners: BTreeMap<ClientId, ConnId>,
    /// How far each disconnected durable session's queue was sent here, for DUP on resume.
    sent_before: BTreeMap<ClientId, u64>,
    /// QoS 2 packet ids of durable publishers proposed and not yet applied: a resend meanwhile
    /// is a duplicate.
    proposed_qos2: BTreeSet<(ClientId, PacketId)>,
    /// Durable sessions whose due will or expiry is proposed and not yet applied.
    proposed_due: BTreeSet<ClientId>,
    /// Round robin over shared groups for QoS 0 fast-path deliveries to durable sessions.
    direct_cursor: usize,
    /// Set when the log stopped taking proposals: no connection is served any more.
    unavailable: Option<ReasonCode>,
    effects: Vec<Effect>,
    proposals: Vec<Proposal>,
    stats: BrokerStats,
}

impl Broker {
    /// A broker for node 1 in its first run; see [`Broker::with_identity`].
    pub fn new(config: BrokerConfig) -> Broker {
        Broker::with_identity(config, 1, 0)
    }

    /// A broker for `node`; `incarnation` must differ between runs of the node.
    pub fn with_identity(config: BrokerConfig, node: u64, incarnation: u64) -> Broker {
        Broker {
            config,
            node,
            incarnation,
            durable: State::new(config.state),
            local: State::new(config.state),
            connections: BTreeMap::new(),
            owners: BTreeMap::new(),
            sent_before: BTreeMap::new(),
            proposed_qos2: BTreeSet::new(),
            proposed_due: BTreeSet::new(),
            direct_cursor: 0,
            unavailable: None,
            effects: Vec::new(),
            proposals: Vec::new(),
            stats: BrokerStats::default(),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The replicated state as this node has applied it.
    pub fn state(&self) -> &State {
        &self.durable
    }

    /// The sessions that end with their connection.
    pub fn local_state(&self) -> &State {
        &self.local
    }

    /// Replaces the replicated state (restore from a snapshot). Connections of durable
    /// sessions are dropped: what they had in flight may no longer be there.
    pub fn install_state(&mut self, state: State) {
        let durable: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.tier == Tier::Durable)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in durable {
            if let Some(connection) = self.connections.remove(&conn) {
                self.owners.remove(&connection.client_id);
            }
            self.effects.push(Effect::Disconnect {
                conn,
                reason: ReasonCode::ServerUnavailable,
            });
        }
        self.local.clear_retained();
        for message in state.retained() {
            self.local.apply(Command::SetRetained {
                topic: message.topic.clone(),
                message: Some(message.clone()),
            });
        }
        self.durable = state;
        self.proposed_qos2.clear();
        self.proposed_due.clear();
    }

    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// Number of connections serving a session.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The session of a client id, durable or local.
    pub fn session(&self, client_id: &str) -> Option<&crate::state::SessionState> {
        self.durable
            .session(client_id)
            .or_else(|| self.local.session(client_id))
    }

    /// Sessions of both tiers.
    pub fn session_count(&self) -> usize {
        self.durable.sessions().count() + self.local.sessions().count()
    }

    /// Subscriptions of both tiers.
    pub fn subscription_count(&self) -> usize {
        self.durable.subscription_count() + self.local.subscription_count()
    }

    /// The effects gathered since the last call, for the shell to carry out in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The proposals gathered since the last call, for the shell to commit in order.
    pub fn take_proposals(&mut self) -> Vec<Proposal> {
        std::mem::take(&mut self.proposals)
    }

    /// Applies every pending proposal at once, as a log that commits instantly would (tests
    /// and tools that run without a log).
    pub fn commit_pending(&mut self) {
        loop {
            let proposals = self.take_proposals();
            if proposals.is_empty() {
                return;
            }
            for proposal in proposals {
                self.apply_committed(proposal);
            }
        }
    }

    /// After a restart, once the log is replayed: durable sessions that the replica shows
    /// connected lost their connection in the crash, so they are closed (publishing their
    /// wills, as any abnormal end does); and every message still queued may have been sent
    /// before the crash, so it is resent with DUP set ([MQTT-3.3.1-1]). Returns the proposals
    /// to commit before any client is served.
    pub fn recover(&mut self, now_ms: u64) -> Vec<Proposal> {
        let mut commands = Vec::new();
        for session in self.durable.sessions() {
            if let Some(last) = session.queue.back() {
                self.sent_before.insert(session.client_id.clone(), last.seq);
            }
            if crate::planted::planted().drop_queue_on_restart {
                commands.extend(session.queue.iter().map(|queued| Command::Acked {
                    client_id: session.client_id.clone(),
                    seq: queued.seq,
                }));
            }
            if session.connected {
                commands.push(Command::CloseSession {
                    client_id: session.client_id.clone(),
                    expiry_secs: session.expiry_secs,
                    publish_will: true,
                    now_ms,
                });
            }
        }
        if commands.is_empty() {
            return Vec::new();
        }
        vec![Proposal {
            commands,
            origin: None,
        }]
    }

    /// The log failed: every connection is closed with `reason` and new ones are refused,
    /// so nothing more is acknowledged (clients go elsewhere or retry later).
    pub fn set_unavailable(&mut self, reason: ReasonCode) {
        self.unavailable = Some(reason);
        for (conn, connection) in std::mem::take(&mut self.connections) {
            self.owners.remove(&connection.client_id);
            self.effects.push(Effect::Disconnect { conn, reason });
        }
        self.proposals.clear();
    }

    /// The client id a connection serves.
    pub fn client_of(&self, conn: ConnId) -> Option<&ClientId> {
        self.connections.get(&conn).map(|c| &c.client_id)
    }

    /// Opens or resumes the session of a new connection; the CONNACK waits for the reply
    /// to `ticket` (Session Present).
    ///
    /// A connection already serving the client id is told to disconnect with 0x8E
    /// (Session taken over). Queued messages are sent once the session is open.
    pub fn connect(&mut self, conn: ConnId, ticket: Ticket, request: ConnectRequest, now_ms: u64) {
        if let Some(reason) = self.unavailable {
            self.effects.push(Effect::Disconnect { conn, reason });
            return;
        }
        let client_id = request.client_id.clone();
        if let Some(old) = self.owners.remove(&client_id) {
            if let Some(old_connection) = self.connections.remove(&old) {
                if old_connection.tier == Tier::Durable {
                    self.sent_before
                        .insert(client_id.clone(), old_connection.sent_through);
                }
            }
            self.effects.push(Effect::Disconnect {
                conn: old,
                reason: ReasonCode::SessionTakenOver,
            });
        }
        let tier = Tier::of(request.expiry_secs);
        let window = usize::from(request.receive_maximum.min(self.config.inflight_max).max(1));
        self.connections.insert(
            conn,
            Connection {
                client_id: client_id.clone(),
                tier,
                opened: false,
                window,
                inflight: BTreeMap::new(),
                sent_through: 0,
                dup_through: 0,
            },
        );
        self.owners.insert(client_id.clone(), conn);
        let open = Command::OpenSession {
            client_id: client_id.clone(),
            clean_start: request.clean_start,
            expiry_secs: request.expiry_secs,
            will: request.will.map(Box::new),
            now_ms,
        };
        match tier {
            Tier::Local => {
                // A durable session of the same client id ends: this one starts clean
                // (a session with expiry 0 cannot resume one, [MQTT-3.1.2-4]).
                if self.durable.session(&client_id).is_some() {
                    self.propose(
                        vec![
                            Command::OpenSession {
                                client_id: client_id.clone(),
                                clean_start: true,
                                expiry_secs: 0,
                                will: None,
                                now_ms,
                            },
                            Command::CloseSession {
                                client_id: client_id.clone(),
                                expiry_secs: 0,
                                publish_will: false,
                                now_ms,
                            },
                        ],
                        None,
                    );
                }
                let applied = self.apply_in(Tier::Local, open);
                self.opened(conn, applied.session_present, ticket, now_ms);
            }
            Tier::Durable => {
                // A local session of the same client id was just taken over: it ends.
                if self.local.session(&client_id).is_some() {
                    self.apply_in(
                        Tier::Local,
                        Command::CloseSession {
                            client_id: client_id.clone(),
                            expiry_secs: 0,
                            publish_will: true,
                            now_ms,
                        },
                    );
                }
                self.propose(vec![open], Some((conn, ticket, 0)));
            }
        }
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
            .tier(connection.tier)
            .session(&client_id)
            .map(|s| {
                s.queue
                    .iter()
                    .filter(|q| q.shared.is_some() && may_go_elsewhere(q, connection.sent_through))
                    .map(|q| q.seq)
                    .collect()
            })
            .unwrap_or_default();
        let mut commands = Vec::new();
        if !release.is_empty() {
            commands.push(Command::ReleaseShared {
                client_id: client_id.clone(),
                seqs: release,
            });
        }
        if connection.tier == Tier::Durable {
            self.sent_before
                .insert(client_id.clone(), connection.sent_through);
        }
        commands.push(Command::CloseSession {
            client_id,
            expiry_secs,
            publish_will,
            now_ms,
        });
        self.run(connection.tier, commands, None);
    }

    /// Routes a publish received at `message.received_at_ms`; the PUBACK/PUBREC waits for
    /// the reply to `ticket` (QoS 0 gets none). `qos2_packet_id` is the packet id of a QoS 2
    /// publish, remembered until PUBREL so that a resend is not routed twice. With
    /// `retain_update` a RETAIN publish sets (or, when empty, clears) the retained message
    /// of its topic.
    pub fn publish(
        &mut self,
        conn: ConnId,
        ticket: Ticket,
        message: Message,
        qos2_packet_id: Option<PacketId>,
        retain_update: bool,
    ) -> Result<(), PublishError> {
        let (client_id, tier) = self
            .connections
            .get(&conn)
            .map(|c| (c.client_id.clone(), c.tier))
            .ok_or(PublishError::NotConnected)?;
        if let Some(packet_id) = qos2_packet_id {
            let (known, awaiting) = self.qos2_receive_state(tier, &client_id, packet_id);
            if known {
                // A resend: acknowledged again, not routed again.
                self.reply(
                    conn,
                    ticket,
                    Completion {
                        duplicate: true,
                        ..Completion::default()
                    },
                );
                return Ok(());
            }
            if awaiting >= usize::from(self.config.receive_maximum) {
                return Err(PublishError::ReceiveMaximumExceeded);
            }
        }
        self.stats.publishes_received += 1;
        let message = Arc::new(message);
        let qos = message.qos;
        // Sessions of this node that end with their connection get it now. A QoS 2 publisher
        // of this tier has its packet id remembered here too.
        let local_origin = match (qos2_packet_id, tier) {
            (Some(packet_id), Tier::Local) => Some((client_id.clone(), packet_id)),
            _ => None,
        };
        let local = self.apply_in(
            Tier::Local,
            Command::Publish {
                message: message.clone(),
                origin: local_origin,
                skip_shared: self.groups_kept_durable(&message),
            },
        );
        let matched = local.matched;
        // A shared group gives each message to one member: the groups the local tier served
        // are skipped by the durable one.
        let skip_shared = local.shared_served;
        let dropped_queue_full = local.dropped_queue_full;
        let mut commands = Vec::new();
        let retained_update = retain_update && message.retain;
        if retained_update {
            // This node's local sessions see the new retained message from the moment it is
            // received, as they got it live: one subscribing before the update commits gets
            // it as retained rather than not at all. The commit sets it again (in log order).
            self.local.apply(set_retained(&message));
            commands.push(set_retained(&message));
        }
        let durable_origin = match (qos2_packet_id, tier) {
            (Some(packet_id), Tier::Durable) => Some((client_id, packet_id)),
            _ => None,
        };
        if qos == QoS::AtMostOnce {
            // QoS 0 is never queued: connected durable sessions get it straight from the
            // replica, with no log write.
            self.deliver_direct_durable(&message, &skip_shared);
            if !commands.is_empty() {
                self.propose(commands, None);
            }
            return Ok(());
        }
        // A retained update is logged with its publish: a durable subscription committed
        // between receipt and the update is matched at apply, in log order, so it gets the
        // message live rather than missing both the live copy and the retained one.
        if retained_update || durable_origin.is_some() || self.durable.matches_any(&message.topic) {
            if let Some(key) = &durable_origin {
                self.proposed_qos2.insert(key.clone());
            }
            commands.push(Command::Publish {
                message,
                origin: durable_origin,
                skip_shared,
            });
            let local_matched = u32::try_from(matched).unwrap_or(u32::MAX);
            if crate::planted::planted().ack_before_commit {
                self.reply(conn, ticket, Completion::default());
                self.propose(commands, None);
                return Ok(());
            }
            self.propose(commands, Some((conn, ticket, local_matched)));
            return Ok(());
        }
        // No durable subscription can match and nothing is retained: the acknowledgement
        // needs no log write.
        self.reply(
            conn,
            ticket,
            Completion {
                matched,
                dropped_queue_full,
                ..Completion::default()
            },
        );
        Ok(())
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
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        self.stats.discarded += 1;
        self.run(tier, vec![Command::Acked { client_id, seq }], None);
        self.pump(conn, now_ms);
        true
    }

    /// PUBREC from a subscriber: the QoS 2 message was delivered; PUBREL follows, at once
    /// for a local session and once the PUBREC is committed for a durable one.
    pub fn pubrec(&mut self, conn: ConnId, packet_id: PacketId) -> PubRecOutcome {
        let Some(connection) = self.connections.get(&conn) else {
            return PubRecOutcome::Unknown;
        };
        let Some(&seq) = connection.inflight.get(&packet_id) else {
            return PubRecOutcome::Unknown;
        };
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        let is_qos2 = self
            .tier(tier)
            .session(&client_id)
            .and_then(|s| s.queued(seq))
            .is_some_and(|q| q.qos == QoS::ExactlyOnce);
        if !is_qos2 {
            return PubRecOutcome::Unknown;
        }
        match tier {
            Tier::Local => {
                self.apply_in(Tier::Local, Command::PubRecReceived { client_id, seq });
                PubRecOutcome::Release
            }
            Tier::Durable => {
                self.propose(vec![Command::PubRecReceived { client_id, seq }], None);
                PubRecOutcome::Committing
            }
        }
    }

    /// PUBREL from a publisher; the PUBCOMP waits for the reply to `ticket` (whether the
    /// packet id was awaiting it).
    pub fn pubrel(&mut self, conn: ConnId, ticket: Ticket, packet_id: PacketId) {
        let Some(connection) = self.connections.get(&conn) else {
            return self.reply(conn, ticket, unknown());
        };
        let client_id = connection.client_id.clone();
        let command = Command::PubRelReceived {
            client_id,
            packet_id,
        };
        self.run(connection.tier, vec![command], Some((conn, ticket, 0)));
    }

    /// Adds subscriptions; the SUBACK waits for the reply to `ticket` (whether each
    /// existed). Retained messages are delivered as the subscriptions' Retain Handling says.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        ticket: Ticket,
        subscriptions: Vec<(TopicFilter, Subscription)>,
        now_ms: u64,
    ) {
        let Some(connection) = self.connections.get(&conn) else {
            return self.reply(conn, ticket, Completion::default());
        };
        let command = Command::Subscribe {
            client_id: connection.client_id.clone(),
            subscriptions,
            now_ms,
        };
        self.run(connection.tier, vec![command], Some((conn, ticket, 0)));
    }

    /// Removes subscriptions; the UNSUBACK waits for the reply to `ticket` (whether each
    /// existed).
    pub fn unsubscribe(&mut self, conn: ConnId, ticket: Ticket, filters: Vec<TopicFilter>) {
        let Some(connection) = self.connections.get(&conn) else {
            return self.reply(conn, ticket, Completion::default());
        };
        let client_id = connection.client_id.clone();
        let tier = connection.tier;
        // Messages that came through a shared subscription being removed go to another
        // member, except QoS 2 messages already sent.
        let leaving: Vec<(&str, &str)> = filters.iter().filter_map(|f| f.shared()).collect();
        let release: Vec<u64> = match self.tier(tier).session(&client_id) {
            Some(session) if !leaving.is_empty() => session
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
        let mut commands = vec![Command::Unsubscribe {
            client_id: client_id.clone(),
            filters,
        }];
        if !release.is_empty() {
            commands.push(Command::ReleaseShared {
                client_id,
                seqs: release,
            });
        }
        self.run(tier, commands, Some((conn, ticket, 0)));
    }

    /// Applies wills and session expiries that are due: those of local sessions at once,
    /// those of durable sessions through the log.
    pub fn tick(&mut self, now_ms: u64) {
        for command in self.local.due(now_ms) {
            self.apply_in(Tier::Local, command);
        }
        for command in self.durable.due(now_ms) {
            let client_id = match &command {
                Command::EndSession { client_id, .. } | Command::PublishWill { client_id, .. } => {
                    client_id.clone()
                }
                _ => continue,
            };
            if self.proposed_due.insert(client_id) {
                self.propose(vec![command], None);
            }
        }
    }

    /// When [`Broker::tick`] next has work to do (unix ms).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match (
            self.local.next_deadline_ms(),
            self.durable.next_deadline_ms(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A publish on behalf of this node (`$SYS`), with no publisher: QoS 0, retained on this
    /// node only (the figures are the node's own).
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
            self.apply_in(
                Tier::Local,
                Command::SetRetained {
                    topic: message.topic.clone(),
                    message: Some(message.clone()),
                },
            );
        }
        let local = self.apply_in(
            Tier::Local,
            Command::Publish {
                message: message.clone(),
                origin: None,
                skip_shared: Vec::new(),
            },
        );
        self.deliver_direct_durable(&message, &local.shared_served);
    }

    /// The shared groups matching a message that only their durable members may take: a
    /// QoS 1/2 message for a group with a durable member stays in the log. Given to a member
    /// that ends with its connection, it would be lost when this node crashes, and a QoS 2
    /// message sent to that member could then be neither resent to another member (a second
    /// copy for the group) nor dropped (a loss). QoS 0 goes to whichever member is first.
    fn groups_kept_durable(&self, message: &Message) -> Vec<SharedKey> {
        if message.qos == QoS::AtMostOnce {
            return Vec::new();
        }
        self.durable.shared_groups_matching(&message.topic)
    }

    /// QoS 0 to the connected durable sessions, from the replica, with no log write.
    fn deliver_direct_durable(&mut self, message: &Arc<Message>, skip_shared: &[SharedKey]) {
        self.direct_cursor = self.direct_cursor.wrapping_add(1);
        let directs = self
            .durable
            .direct_deliveries(message, self.direct_cursor, skip_shared);
        for direct in directs {
            self.deliver_direct(Tier::Durable, direct);
        }
    }

    /// Applies a committed proposal to the replicated state, in log order; replies to the
    /// request it carries when it came from this node's current run.
    pub fn apply_committed(&mut self, proposal: Proposal) {
        let mut completion = Completion::default();
        let mut replied = false;
        let reply_to = proposal.origin.filter(|o| self.is_mine(o));
        for command in proposal.commands {
            let opening = match &command {
                Command::OpenSession {
                    client_id, now_ms, ..
                } => Some((client_id.clone(), *now_ms)),
                _ => None,
            };
            match &command {
                Command::Publish {
                    origin: Some((client_id, packet_id)),
                    ..
                } => {
                    self.proposed_qos2.remove(&(client_id.clone(), *packet_id));
                }
                Command::EndSession { client_id, .. } | Command::PublishWill { client_id, .. } => {
                    self.proposed_due.remove(client_id);
                }
                Command::SetRetained { topic, message } => {
                    // This node's local sessions read retained messages from their own state.
                    self.local.apply(Command::SetRetained {
                        topic: topic.clone(),
                        message: message.clone(),
                    });
                }
                _ => {}
            }
            let pubrec = match &command {
                Command::PubRecReceived { client_id, seq } => Some((client_id.clone(), *seq)),
                _ => None,
            };
            let applied = self.apply_in(Tier::Durable, command);
            // The simulator checks the replicated state after every command it applies, so
            // a corruption is caught at the command that made it.
            #[cfg(feature = "sim")]
            self.durable.validate();
            if let Some((client_id, now_ms)) = opening {
                replied |=
                    self.session_opened(&client_id, applied.session_present, reply_to, now_ms);
            }
            if let Some((client_id, seq)) = pubrec {
                self.release_committed(&client_id, seq);
            }
            completion.session_present |= applied.session_present;
            completion.matched += applied.matched;
            completion.dropped_queue_full += applied.dropped_queue_full;
            completion.duplicate |= applied.duplicate;
            completion.existed.extend(applied.existed);
        }
        match reply_to {
            Some(origin) if !replied => {
                completion.matched += origin.local_matched as usize;
                self.reply(origin.conn, origin.ticket, completion);
            }
            _ => {}
        }
    }

    fn is_mine(&self, origin: &Origin) -> bool {
        origin.node == self.node && origin.incarnation == self.incarnation
    }

    fn tier(&self, tier: Tier) -> &State {
        match tier {
            Tier::Durable => &self.durable,
            Tier::Local => &self.local,
        }
    }

    /// Whether a QoS 2 packet id of this publisher is awaiting PUBREL (or, for a durable
    /// publisher, proposed), and how many are.
    fn qos2_receive_state(
        &self,
        tier: Tier,
        client_id: &ClientId,
        packet_id: PacketId,
    ) -> (bool, usize) {
        let (known, awaiting) = self.tier(tier).session(client_id).map_or((false, 0), |s| {
            (s.incoming_qos2.contains(&packet_id), s.incoming_qos2.len())
        });
        if tier == Tier::Local {
            return (known, awaiting);
        }
        let key = (client_id.clone(), packet_id);
        let proposed = self
            .proposed_qos2
            .range((client_id.clone(), PacketId::MIN)..)
            .take_while(|(c, _)| c == client_id)
            .count();
        (
            known || self.proposed_qos2.contains(&key),
            awaiting + proposed,
        )
    }

    /// Runs commands on a tier: at once for local sessions, through the log for durable
    /// ones. With `reply_to`, the connection's request is answered when they are applied.
    fn run(&mut self, tier: Tier, commands: Vec<Command>, reply_to: Option<(ConnId, Ticket, u32)>) {
        match tier {
            Tier::Durable => self.propose(commands, reply_to),
            Tier::Local => {
                let mut completion = Completion::default();
                for command in commands {
                    let applied = self.apply_in(Tier::Local, command);
                    completion.matched += applied.matched;
                    completion.existed.extend(applied.existed);
                }
                if let Some((conn, ticket, _)) = reply_to {
                    self.reply(conn, ticket, completion);
                }
            }
        }
    }

    fn propose(&mut self, commands: Vec<Command>, reply_to: Option<(ConnId, Ticket, u32)>) {
        let origin = reply_to.map(|(conn, ticket, local_matched)| Origin {
            node: self.node,
            incarnation: self.incarnation,
            conn,
            ticket,
            local_matched,
        });
        // Commands nobody waits for (acknowledgements from subscribers, above all) join the
        // previous such proposal: one proposal per message would cost more than the command.
        if origin.is_none() {
            if let Some(last) = self.proposals.last_mut() {
                if last.origin.is_none() && last.commands.len() < MERGED_COMMANDS_MAX {
                    last.commands.extend(commands);
                    return;
                }
            }
        }
        self.proposals.push(Proposal { commands, origin });
    }

    fn reply(&mut self, conn: ConnId, ticket: Ticket, completion: Completion) {
        self.effects.push(Effect::Reply {
            conn,
            ticket,
            completion,
        });
    }

    /// The `OpenSession` of a durable session was applied: the connection that asked for it
    /// is served from now on (returns true: it got its reply); another connection of this
    /// node with the same client id (taken over through another node) is told to go.
    fn session_opened(
        &mut self,
        client_id: &ClientId,
        present: bool,
        origin: Option<Origin>,
        now_ms: u64,
    ) -> bool {
        let Some(&conn) = self.owners.get(client_id) else {
            return false;
        };
        let ours = origin.is_some_and(|o| o.conn == conn);
        let Some(connection) = self.connections.get(&conn) else {
            return false;
        };
        if connection.tier != Tier::Durable || connection.opened {
            if !ours && connection.tier == Tier::Durable {
                // Opened again by another connection elsewhere: this one is taken over.
                self.connections.remove(&conn);
                self.owners.remove(client_id);
                self.effects.push(Effect::Disconnect {
                    conn,
                    reason: ReasonCode::SessionTakenOver,
                });
            }
            return false;
        }
        match origin {
            Some(origin) if ours => {
                self.opened(conn, present, origin.ticket, now_ms);
                true
            }
            _ => false,
        }
    }

    /// The session of `conn` is open: reply to the CONNECT, then send what is queued.
    fn opened(&mut self, conn: ConnId, present: bool, ticket: Ticket, now_ms: u64) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.opened = true;
        let before = self.sent_before.remove(&connection.client_id);
        connection.dup_through = if present { before.unwrap_or(0) } else { 0 };
        self.reply(
            conn,
            ticket,
            Completion {
                session_present: present,
                ..Completion::default()
            },
        );
        self.pump(conn, now_ms);
    }

    /// A committed PUBREC: the connection that has the message in flight sends PUBREL.
    fn release_committed(&mut self, client_id: &ClientId, seq: u64) {
        let Some(&conn) = self.owners.get(client_id) else {
            return;
        };
        let packet_id = packet_id_for(seq);
        let in_flight = self
            .connections
            .get(&conn)
            .is_some_and(|c| c.tier == Tier::Durable && c.inflight.get(&packet_id) == Some(&seq));
        if in_flight {
            self.effects.push(Effect::Deliver {
                conn,
                delivery: Delivery::Release(packet_id),
            });
        }
    }

    fn complete(&mut self, conn: ConnId, packet_id: PacketId, qos: QoS, now_ms: u64) -> bool {
        let Some(connection) = self.connections.get(&conn) else {
            return false;
        };
        let Some(&seq) = connection.inflight.get(&packet_id) else {
            return false;
        };
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        let queued = self
            .tier(tier)
            .session(&client_id)
            .and_then(|s| s.queued(seq));
        let acked = match queued {
            // The wrong acknowledgement for the flow (PUBACK for QoS 2, PUBCOMP before
            // PUBREC): ignore it.
            Some(q) if q.qos != qos || (qos == QoS::ExactlyOnce && !q.pubrec_received) => {
                return false
            }
            Some(_) => true,
            // The message left the queue meanwhile (dropped for a full queue): free the id.
            None => false,
        };
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.inflight.remove(&packet_id);
        }
        if acked {
            self.run(tier, vec![Command::Acked { client_id, seq }], None);
        }
        self.pump(conn, now_ms);
        true
    }

    /// Applies a command to one tier and acts on what it reports.
    fn apply_in(&mut self, tier: Tier, command: Command) -> Applied {
        let now_ms = match &command {
            Command::OpenSession { now_ms, .. }
            | Command::CloseSession { now_ms, .. }
            | Command::EndSession { now_ms, .. }
            | Command::PublishWill { now_ms, .. }
            | Command::Subscribe { now_ms, .. } => *now_ms,
            Command::Publish { message, .. } => message.received_at_ms,
            _ => 0,
        };
        let applied = match tier {
            Tier::Durable => self.durable.apply(command),
            Tier::Local => self.local.apply(command),
        };
        self.stats.dropped_queue_full += applied.dropped_queue_full as u64;
        for direct in applied.direct.iter().cloned() {
            self.deliver_direct(tier, direct);
        }
        for client_id in &applied.queued_for {
            if let Some(&conn) = self.owners.get(client_id) {
                if self.connections.get(&conn).is_some_and(|c| c.tier == tier) {
                    self.pump(conn, now_ms);
                }
            }
        }
        if tier == Tier::Durable {
            for client_id in &applied.ended {
                self.sent_before.remove(client_id);
            }
        }
        for will in &applied.wills {
            self.route_will(tier, will.clone());
        }
        if tier == Tier::Local {
            // A local member left its shared group with messages no other local member can
            // take: they go to the group's durable members, through the log, rather than
            // end with the local session.
            let handed_over: Vec<Command> = applied
                .unplaced_shared
                .iter()
                .filter(|(key, _, _)| self.durable.has_shared_group(key))
                .map(|(key, message, retain)| Command::PublishShared {
                    key: key.clone(),
                    message: message.clone(),
                    retain: *retain,
                })
                .collect();
            if !handed_over.is_empty() {
                self.propose(handed_over, None);
            }
        }
        applied
    }

    /// A will published in one tier reaches the sessions of the other.
    fn route_will(&mut self, from: Tier, will: Arc<Message>) {
        match from {
            Tier::Durable => {
                if will.retain {
                    self.local.apply(set_retained(&will));
                }
                // The durable tier gave shared groups with durable members their copy.
                let skip_shared = self.durable.shared_groups_matching(&will.topic);
                self.apply_in(
                    Tier::Local,
                    Command::Publish {
                        message: will,
                        origin: None,
                        skip_shared,
                    },
                );
            }
            Tier::Local => {
                let mut commands = Vec::new();
                if will.retain {
                    commands.push(set_retained(&will));
                }
                // The local tier gave shared groups with local members their copy.
                let skip_shared = self.local.shared_groups_matching(&will.topic);
                if will.qos == QoS::AtMostOnce {
                    self.deliver_direct_durable(&will, &skip_shared);
                } else if self.durable.matches_any(&will.topic) {
                    commands.push(Command::Publish {
                        message: will,
                        origin: None,
                        skip_shared,
                    });
                }
                if !commands.is_empty() {
                    self.propose(commands, None);
                }
            }
        }
    }

    /// Sends a QoS 0 delivery to the connection of its session, if it is served here.
    fn deliver_direct(&mut self, tier: Tier, direct: crate::state::DirectDelivery) {
        let Some(&conn) = self.owners.get(&direct.client_id) else {
            return;
        };
        if !self
            .connections
            .get(&conn)
            .is_some_and(|c| c.tier == tier && c.opened)
        {
            return;
        }
        self.stats.deliveries += 1;
        self.effects.push(Effect::Deliver {
            conn,
            delivery: Delivery::Publish {
                message: direct.message,
                qos: QoS::AtMostOnce,
                packet_id: None,
                retain: direct.retain,
                dup: false,
                subscription_ids: direct.subscription_ids,
            },
        });
    }

    /// Sends queued messages to a connection while its window has room.
    fn pump(&mut self, conn: ConnId, now_ms: u64) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if !connection.opened {
            return;
        }
        let state = match connection.tier {
            Tier::Durable => &self.durable,
            Tier::Local => &self.local,
        };
        let Some(session) = state.session(&connection.client_id) else {
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
            let delivery = if queued.pubrec_received
                && !crate::planted::planted().resend_publish_after_pubrec
            {
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
        if expired.is_empty() {
            return;
        }
        let (client_id, tier) = (connection.client_id.clone(), connection.tier);
        let commands = expired
            .into_iter()
            .map(|seq| Command::Acked {
                client_id: client_id.clone(),
                seq,
            })
            .collect();
        match tier {
            Tier::Durable => self.propose(commands, None),
            Tier::Local => {
                for command in commands {
                    self.local.apply(command);
                }
            }
        }
    }

    /// Checks the invariants of the core and its states; panics with the broken one.
    pub fn validate(&self) {
        self.durable.validate();
        self.local.validate();
        assert_eq!(
            self.owners.len(),
            self.connections.len(),
            "owner index out of step"
        );
        for (client_id, conn) in &self.owners {
            let connection = &self.connections[conn];
            assert_eq!(&connection.client_id, client_id, "owner index out of step");
            if !connection.opened {
                continue;
            }
            let session = self
                .tier(connection.tier)
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
        for session in self.local.sessions() {
            assert!(
                session.expiry_secs == 0,
                "a local session outlives its connection"
            );
        }
    }
}

/// The command a RETAIN publish makes: an empty payload clears the topic's retained message
/// ([MQTT-3.3.1-6], [MQTT-3.3.1-7]); the message is still delivered to subscribers.
fn set_retained(message: &Arc<Message>) -> Command {
    Command::SetRetained {
        topic: message.topic.clone(),
        message: (!message.payload.is_empty()).then(|| message.clone()),
    }
}

/// The completion of a request about something unknown.
fn unknown() -> Completion {
    Completion {
        existed: vec![false],
        ..Completion::default()
    }
}

/// Whether a shared-subscription message may go to another member when this one leaves:
/// QoS 1 always; QoS 2 only if it was never sent here, since a QoS 2 message once sent must
/// be completed with the same client ([MQTT-4.8.2-4]).
fn may_go_elsewhere(queued: &crate::state::QueuedMessage, sent_through: u64) -> bool {
    !queued.pubrec_received && (queued.qos == QoS::AtLeastOnce || queued.seq > sent_through)
}
