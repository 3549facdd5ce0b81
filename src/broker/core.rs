//! [`Broker`]: the sessions of this node's connections, in two tiers.
//!
//! *Durable* sessions (that outlive their connection) live in the replicated [`State`]: every
//! change to them is a [`Proposal`] the shell commits through the log, and takes effect only
//! when [`Broker::apply_committed`] applies it, in log order, on every replica. *Local*
//! sessions (that end with their connection) live in a second `State` that only this node
//! has, changed at once with no log write: the fast path of docs/design.md §2.
//!
//! Requests whose reply must wait for a commit (PUBACK/PUBREC of a publish that reaches a
//! durable session, SUBACK of a durable session...) are answered by [`Effect::Reply`], for
//! the fast path at once and otherwise when the proposal is applied.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::codec::{PacketId, QoS, ReasonCode, TopicFilter, TopicName};
use crate::state::{
    packet_id_for, Applied, BatchId, ClientId, Command, Message, Place, SharedKey, State,
    StateConfig, Subscription, Will,
};

use super::pending::PendingSubscriptions;
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
    /// Send a publish to another node for the sessions it serves without the log (the fast
    /// path): its local sessions, and for QoS 0 its connected durable ones. `groups` are the
    /// shared groups matching the topic that the node is to serve (one member each).
    Forward {
        node: u64,
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

/// Most commands in one proposal made of merged fire-and-forget proposals.
const MERGED_COMMANDS_MAX: usize = 256;

/// A publish whose acknowledgement waits for a read of the commit index: it skipped the
/// log because the replica showed no durable subscription matching, which holds only once
/// the replica has applied everything committed before the publish arrived (docs/design.md §2).
#[derive(Debug)]
struct FreshWait {
    /// The publisher.
    client_id: ClientId,
    conn: ConnId,
    ticket: Ticket,
    message: Arc<Message>,
    /// Sessions of this node's local tier the message reached.
    matched: usize,
    dropped_queue_full: usize,
    /// Shared groups already served off the log.
    skip_shared: Vec<SharedKey>,
}

/// A local session's subscriptions whose retained messages wait for their commit, and when
/// they were made.
type RetainedRequest = (ClientId, Vec<(TopicFilter, Subscription)>, u64);

/// What [`Broker::route_fast`] did.
struct FastRoute {
    matched: usize,
    dropped_queue_full: usize,
    skip_shared: Vec<SharedKey>,
}

/// Where the fast path sends a publish: the other nodes, each with the shared groups it
/// serves, and the groups matching the topic that this node does not serve.
#[derive(Debug, Default)]
struct Spread {
    forward: BTreeMap<u64, Vec<SharedKey>>,
    not_here: Vec<SharedKey>,
}

/// Where a session lives.
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

/// A connection of this node serving a session.
#[derive(Debug)]
struct Connection {
    client_id: ClientId,
    tier: Tier,
    /// A session is served only once its registration (`OpenSession`, `OpenLocal`) is
    /// applied.
    opened: bool,
    /// A local session: Session Present of its CONNACK, known at connect and sent once its
    /// registration commits.
    local_present: bool,
    /// How many QoS 1/2 messages may be in flight to the client.
    window: usize,
    /// QoS 1/2 messages sent and not yet acknowledged: packet id → queue seq.
    inflight: BTreeMap<PacketId, u64>,
    /// The highest seq sent on this connection; later queue entries are not sent yet.
    sent_through: u64,
    /// Entries up to this seq may have been sent on an earlier connection: resend with DUP.
    dup_through: u64,
    /// When its CONNECT arrived (this node's clock): a QoS 0 message another node received
    /// before then was not meant for this connection (see [`Broker::forwarded`]).
    connected_at_ms: u64,
}

impl Connection {
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
    fn sent_bound(&self) -> Option<u64> {
        match (self.tier, self.opened) {
            (Tier::Durable, false) if crate::planted::planted().release_sent_shared => {
                Some(self.sent_through)
            }
            (Tier::Durable, false) => None,
            _ => Some(self.sent_through.max(self.dup_through)),
        }
    }
}

/// The broker core of one node.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    /// This node and run: where its connections are served.
    place: Place,
    /// Whether this node is the only voter of its cluster: nobody else commits anything, so
    /// the replica is always fresh (see [`Broker::read_done`]).
    single_voter: bool,
    /// Whether this node proposes the durable sessions' due wills and expiries (the leader
    /// does, so they are proposed once).
    timer_duty: bool,
    /// Replies held until a read of the commit index shows the replica fresh (publishes that
    /// skip the log on a node of a larger cluster), with the read round each joined.
    awaiting_fresh: Vec<(u64, FreshWait)>,
    /// The round new entries of `awaiting_fresh` join; a round is read once it is started.
    read_round: u64,
    /// Replies to requests of local sessions whose own part is done, held until their
    /// registration commits (SUBACK of a local SUBSCRIBE).
    held: BTreeMap<(ConnId, Ticket), Completion>,
    /// Round robin over shared groups' members across nodes, for the fast path.
    spread_cursor: BTreeMap<SharedKey, usize>,
    /// QoS 2 publishes of durable sessions, by request, routed off the log once they commit.
    deferred: BTreeMap<(ConnId, Ticket), Arc<Message>>,
    /// Retained messages a local session's new subscriptions call for, sent once the
    /// subscriptions commit.
    held_retained: BTreeMap<(ConnId, Ticket), RetainedRequest>,
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
    /// Subscriptions of durable sessions proposed here and not yet applied: a publish read
    /// after the SUBSCRIBE sees them (see [`PendingSubscriptions`]).
    pending_subscriptions: PendingSubscriptions,
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

    /// A broker for `node`; `incarnation` must grow from one run of the node to the next.
    pub fn with_identity(config: BrokerConfig, node: u64, incarnation: u64) -> Broker {
        Broker {
            config,
            place: Place { node, incarnation },
            single_voter: true,
            timer_duty: true,
            awaiting_fresh: Vec::new(),
            read_round: 1,
            held: BTreeMap::new(),
            spread_cursor: BTreeMap::new(),
            deferred: BTreeMap::new(),
            held_retained: BTreeMap::new(),
            durable: State::new(config.state),
            local: State::new(config.state),
            connections: BTreeMap::new(),
            owners: BTreeMap::new(),
            sent_before: BTreeMap::new(),
            proposed_qos2: BTreeSet::new(),
            proposed_due: BTreeSet::new(),
            pending_subscriptions: PendingSubscriptions::default(),
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
        // Their connections are gone with the old state.
        self.pending_subscriptions.clear();
        // Local sessions whose registration the installed state does not have here were
        // taken over meanwhile.
        let gone: Vec<ClientId> = self
            .connections
            .values()
            .filter(|c| {
                c.opened && self.durable.placement().local_place(&c.client_id) != Some(self.place)
            })
            .map(|c| c.client_id.clone())
            .collect();
        for client_id in gone {
            self.displace(&client_id, None, ReasonCode::SessionTakenOver, 0);
        }
    }

    /// Tells the broker about its cluster: whether this node is the only voter, and whether
    /// it leads (and so proposes the durable sessions' due wills and expiries).
    pub fn set_cluster_role(&mut self, single_voter: bool, leader: bool) {
        self.single_voter = single_voter;
        self.timer_duty = leader;
    }

    /// Whether the node last heard it leads its cluster (a node alone always does).
    pub fn leads(&self) -> bool {
        self.timer_duty
    }

    /// This node and run.
    pub fn place(&self) -> Place {
        self.place
    }

    /// Counts a CONNECT refused for its credentials or authorisation.
    pub fn auth_failed(&mut self) {
        self.stats.auth_failures += 1;
    }

    /// QoS 1/2 messages in flight to connections of this node, and messages queued in the
    /// sessions of both tiers (in flight included).
    pub fn inflight_and_queued(&self) -> (usize, usize) {
        let inflight = self.connections.values().map(|c| c.inflight.len()).sum();
        let queued = self.sessions().map(|s| s.queue.len()).sum();
        (inflight, queued)
    }

    /// Payload and topic bytes of the messages queued in the sessions of both tiers (in
    /// flight included), as `queue_bytes_max` counts them.
    pub fn queued_bytes(&self) -> usize {
        self.sessions().map(|s| s.queue_bytes()).sum()
    }

    /// Counts a limit hit by a session (the session state machine enforces them).
    pub fn limit_hit(&mut self, count: impl FnOnce(&mut LimitStats)) {
        count(&mut self.stats.limits);
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

    /// The sessions of both tiers: every durable session of the cluster, and the sessions of
    /// this node that end with their connections.
    pub fn sessions(&self) -> impl Iterator<Item = &crate::state::SessionState> {
        self.durable.sessions().chain(self.local.sessions())
    }

    /// Sessions of both tiers.
    pub fn session_count(&self) -> usize {
        self.durable.sessions().count() + self.local.sessions().count()
    }

    /// Subscriptions of both tiers.
    /// Bytes of the filters of every subscription this node holds (both tiers).
    pub fn subscription_bytes(&self) -> usize {
        self.durable.subscription_bytes() + self.local.subscription_bytes()
    }

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
            if session.place.node != self.place.node {
                continue;
            }
            if let Some(last) = session.queue.back() {
                self.sent_before.insert(session.client_id.clone(), last.seq);
            }
            if crate::planted::planted().drop_queue_on_restart {
                commands.extend(session.queue.iter().map(|queued| Command::Acked {
                    client_id: session.client_id.clone(),
                    seq: queued.seq,
                }));
            }
        }
        // Every connection of the earlier runs is gone: durable sessions they served close
        // (publishing their wills, as any abnormal end does), local sessions end.
        commands.push(Command::NodeDown {
            node: self.place.node,
            incarnation: self.place.incarnation,
            now_ms,
        });
        vec![Proposal {
            commands,
            origin: None,
            from: None,
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
        self.pending_subscriptions.clear();
    }

    /// Whether the node reaches a quorum of its cluster. Without one nothing it is asked can
    /// commit: its clients are told to go (MQTT 5 DISCONNECT `0x9C Use another server`; `0x88 Server
    /// unavailable` exists only in CONNACK, where new ones get it) so they
    /// reconnect to the majority, and new ones are refused until the quorum is back (G5).
    ///
    /// The connections end the usual way (their sessions close through the log once it takes
    /// proposals again, publishing wills), unlike after a failure of the log itself.
    pub fn set_quorum(&mut self, reached: bool) {
        match (reached, self.unavailable) {
            (false, None) => {
                let reason = ReasonCode::ServerUnavailable;
                self.unavailable = Some(reason);
                for &conn in self.connections.keys() {
                    self.effects.push(Effect::Disconnect { conn, reason });
                }
            }
            (true, Some(ReasonCode::ServerUnavailable)) => self.unavailable = None,
            _ => {}
        }
    }

    /// Whether the node serves clients now.
    pub fn is_available(&self) -> bool {
        self.unavailable.is_none()
    }

    /// The clients connected here, with whether their session is durable.
    pub fn connected_clients(&self) -> impl Iterator<Item = (&ClientId, bool)> {
        self.owners.iter().filter_map(|(client_id, conn)| {
            let connection = self.connections.get(conn)?;
            connection
                .opened
                .then_some((client_id, connection.tier == Tier::Durable))
        })
    }

    /// Disconnects the connection of `client_id` here, as an administrator asked (MQTT 5
    /// `0x98 Administrative action`); false if it is not connected here.
    pub fn kick(&mut self, client_id: &str) -> bool {
        let Some(&conn) = self.owners.get(client_id) else {
            return false;
        };
        self.effects.push(Effect::Disconnect {
            conn,
            reason: ReasonCode::AdministrativeAction,
        });
        true
    }

    /// The client id a connection serves; `None` once the broker has let the connection go
    /// (taken over, or dropped with the state it served): a DISCONNECT is then on its way
    /// ([`Effect::Disconnect`] is pushed whenever a connection is let go).
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
                self.remember_sent(&old_connection);
            }
            self.effects.push(Effect::Disconnect {
                conn: old,
                reason: ReasonCode::SessionTakenOver,
            });
        }
        let tier = Tier::of(request.clean_start, request.expiry_secs);
        let window = usize::from(request.receive_maximum.min(self.config.inflight_max).max(1));
        self.connections.insert(
            conn,
            Connection {
                client_id: client_id.clone(),
                tier,
                opened: false,
                local_present: false,
                window,
                inflight: BTreeMap::new(),
                sent_through: 0,
                dup_through: 0,
                connected_at_ms: now_ms,
            },
        );
        self.owners.insert(client_id.clone(), conn);
        let place = self.place;
        let open = Command::OpenSession {
            client_id: client_id.clone(),
            clean_start: request.clean_start,
            expiry_secs: request.expiry_secs,
            will: request.will.map(Box::new),
            now_ms,
            place,
        };
        match tier {
            Tier::Local => {
                // A clean start: a durable session of the same client id ends
                // ([MQTT-3.1.2-4]). Always proposed, whatever the replica shows: a replica
                // that has not applied that session yet (a lagging node, or a CONNECT of the
                // same client id still committing here) would leave it behind for a later
                // CONNECT to resume. In log order the pair ends whatever session there is,
                // and leaves nothing behind when there is none.
                let mut commands = vec![
                    Command::OpenSession {
                        client_id: client_id.clone(),
                        clean_start: true,
                        expiry_secs: 0,
                        will: None,
                        now_ms,
                        place,
                    },
                    Command::CloseSession {
                        client_id: client_id.clone(),
                        expiry_secs: 0,
                        publish_will: false,
                        now_ms,
                        place,
                    },
                ];
                let applied = self.apply_in(Tier::Local, open);
                if let Some(connection) = self.connections.get_mut(&conn) {
                    connection.local_present = applied.session_present;
                }
                // Served once the registration commits: then every node routes to it, and
                // a connection elsewhere with this client id has been told to go.
                commands.push(Command::OpenLocal { client_id, place });
                self.propose(commands, Some((conn, ticket, 0)));
            }
            Tier::Durable => {
                // A local session of the same client id was just taken over: it ends.
                if self.local.session(&client_id).is_some() {
                    self.end_local(&client_id, true, now_ms);
                }
                self.propose(vec![open], Some((conn, ticket, 0)));
            }
        }
    }

    /// A connection of a durable session ends here: what it (or a connection before it) may
    /// have sent, for DUP and for shared messages when the session is next served here. Only
    /// ever grows for a session: a connection that ends before it has resent what an earlier
    /// one sent must not make those messages look unsent.
    fn remember_sent(&mut self, connection: &Connection) {
        if connection.tier != Tier::Durable {
            return;
        }
        let sent = connection.sent_through.max(connection.dup_through);
        let before = self
            .sent_before
            .entry(connection.client_id.clone())
            .or_default();
        *before = (*before).max(sent);
    }

    /// Ends the local session of `client_id` here and its registration in the cluster.
    fn end_local(&mut self, client_id: &ClientId, publish_will: bool, now_ms: u64) {
        self.apply_in(
            Tier::Local,
            Command::CloseSession {
                client_id: client_id.clone(),
                expiry_secs: 0,
                publish_will,
                now_ms,
                place: self.place,
            },
        );
        self.propose(
            vec![Command::CloseLocal {
                client_id: client_id.clone(),
                place: self.place,
            }],
            None,
        );
    }

    /// The connection ended. `expiry_secs` is the session expiry in force at the end and
    /// `publish_will` is false after a normal DISCONNECT. A connection that was taken over
    /// changes nothing.
    pub fn disconnect(&mut self, conn: ConnId, expiry_secs: u32, publish_will: bool, now_ms: u64) {
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        let client_id = connection.client_id.clone();
        self.owners.remove(&client_id);
        // Shared-subscription messages go to another member, except QoS 2 messages already
        // sent: those must be completed with this client ([MQTT-4.8.2-4]).
        let release: Vec<u64> = self
            .tier(connection.tier)
            .session(&client_id)
            .map(|s| {
                s.queue
                    .iter()
                    .filter(|q| q.shared.is_some() && may_go_elsewhere(q, connection.sent_bound()))
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
        self.remember_sent(&connection);
        commands.push(Command::CloseSession {
            client_id: client_id.clone(),
            expiry_secs,
            publish_will,
            now_ms,
            place: self.place,
        });
        self.run_as(connection.tier, &client_id, commands, None);
        // Proposed after the registration if that is still on its way, so applied after it.
        if connection.tier == Tier::Local {
            self.propose(
                vec![Command::CloseLocal {
                    client_id,
                    place: self.place,
                }],
                None,
            );
        }
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
        self.stats.received_by_qos[message.qos as usize] += 1;
        let message = Arc::new(message);
        let qos = message.qos;
        let mut commands = Vec::new();
        let retained_update = retain_update && message.retain;
        if retained_update {
            // This node's local sessions see the new retained message from the moment it is
            // received, as they got it live: one subscribing before the update commits gets
            // it as retained rather than not at all. The commit sets it again (in log order).
            self.local.apply(set_retained(&message));
            commands.push(set_retained(&message));
        }
        if let (Some(packet_id), Tier::Durable) = (qos2_packet_id, tier) {
            // A QoS 2 publish of a durable session: its packet id is remembered in the log, so
            // the sessions off the log get it only once that commits. Sent to them before, it
            // would come again if this node crashed first: the publisher resends it, and the
            // broker no longer knows it had it.
            self.proposed_qos2.insert((client_id.clone(), packet_id));
            commands.push(Command::Publish {
                message: message.clone(),
                origin: Some((client_id.clone(), packet_id, self.place)),
                skip_shared: Vec::new(),
            });
            if crate::planted::planted().ack_before_commit {
                self.reply(conn, ticket, Completion::default());
                self.route_fast(&message, None);
                self.propose(commands, None);
                return Ok(());
            }
            self.deferred.insert((conn, ticket), message);
            self.propose_as(&client_id, commands, Some((conn, ticket, 0)));
            return Ok(());
        }
        // Sessions of this node that end with their connection get it now. A QoS 2 publisher
        // of this tier has its packet id remembered here too.
        let local_origin = match (qos2_packet_id, tier) {
            (Some(packet_id), Tier::Local) => Some((client_id.clone(), packet_id, self.place)),
            _ => None,
        };
        let fast = self.route_fast(&message, local_origin);
        let (matched, dropped_queue_full, skip_shared) =
            (fast.matched, fast.dropped_queue_full, fast.skip_shared);
        if qos == QoS::AtMostOnce {
            // QoS 0 is never queued: connected durable sessions get it straight from the
            // replica, with no log write, and so do those whose subscription is on its way
            // to the log.
            let reached = self.deliver_direct_durable(&message, &skip_shared, None);
            self.deliver_to_pending(&message, &reached);
            if !commands.is_empty() {
                self.propose(commands, None);
            }
            return Ok(());
        }
        // A retained update is logged with its publish: a durable subscription committed
        // between receipt and the update is matched at apply, in log order, so it gets the
        // message live rather than missing both the live copy and the retained one. So is a
        // publish matching a subscription this node proposed and has not applied yet: it is
        // matched after that subscription, as it was read after it.
        if retained_update
            || self.durable.matches_any(&message.topic)
            || self.pending_subscriptions.matches(&message.topic)
        {
            commands.push(Command::Publish {
                message,
                origin: None,
                skip_shared,
            });
            let local_matched = u32::try_from(matched).unwrap_or(u32::MAX);
            if crate::planted::planted().ack_before_commit {
                self.reply(conn, ticket, Completion::default());
                self.propose(commands, None);
                return Ok(());
            }
            self.propose_as(&client_id, commands, Some((conn, ticket, local_matched)));
            return Ok(());
        }
        let wait = FreshWait {
            client_id,
            conn,
            ticket,
            message,
            matched,
            dropped_queue_full,
            skip_shared,
        };
        if self.single_voter {
            // No durable subscription can match and nothing is retained: the acknowledgement
            // needs no log write. The replica of the only voter has applied everything.
            self.fresh(wait);
        } else {
            self.awaiting_fresh.push((self.read_round, wait));
        }
        Ok(())
    }

    /// Routes a publish to the sessions off the log: this node's local sessions and, through
    /// the forwarder, other nodes'. Returns what the local tier did and the shared groups the
    /// durable tier must skip (served here or by another node).
    fn route_fast(
        &mut self,
        message: &Arc<Message>,
        local_origin: Option<(ClientId, PacketId, Place)>,
    ) -> FastRoute {
        let spread = self.spread(message);
        let mut skip_local = self.groups_kept_durable(message);
        skip_local.extend(spread.not_here.iter().cloned());
        let local = self.apply_in(
            Tier::Local,
            Command::Publish {
                message: message.clone(),
                origin: local_origin,
                skip_shared: skip_local,
            },
        );
        let mut skip_shared = local.shared_served;
        skip_shared.extend(spread.not_here);
        self.forward(message, spread.forward);
        FastRoute {
            matched: local.matched,
            dropped_queue_full: local.dropped_queue_full,
            skip_shared,
        }
    }

    /// Whether publishes wait for a read of the commit index (see [`Broker::start_read`]).
    pub fn wants_read(&self) -> bool {
        self.awaiting_fresh
            .last()
            .is_some_and(|(round, _)| *round == self.read_round)
    }

    /// Starts a read round: the publishes waiting so far are answered by
    /// [`Broker::read_done`] with the round returned, once the replica has applied the
    /// commit index read after it started. Later ones wait for the next round.
    pub fn start_read(&mut self) -> u64 {
        let round = self.read_round;
        self.read_round += 1;
        round
    }

    /// The replica has applied everything committed when `round` started: the publishes of
    /// that round and earlier are judged against it.
    pub fn read_done(&mut self, round: u64) {
        let split = self.awaiting_fresh.partition_point(|(r, _)| *r <= round);
        let ready: Vec<FreshWait> = self.awaiting_fresh.drain(..split).map(|(_, w)| w).collect();
        for wait in ready {
            self.fresh(wait);
        }
    }

    /// A publish that skipped the log, judged against a fresh replica: a durable subscription
    /// that appeared meanwhile gets it through the log after all.
    fn fresh(&mut self, wait: FreshWait) {
        let FreshWait {
            client_id,
            conn,
            ticket,
            message,
            matched,
            dropped_queue_full,
            skip_shared,
        } = wait;
        if self.durable.matches_any(&message.topic) {
            let local_matched = u32::try_from(matched).unwrap_or(u32::MAX);
            let command = Command::Publish {
                message,
                origin: None,
                skip_shared,
            };
            self.propose_as(
                &client_id,
                vec![command],
                Some((conn, ticket, local_matched)),
            );
            return;
        }
        self.reply(
            conn,
            ticket,
            Completion {
                matched,
                dropped_queue_full,
                ..Completion::default()
            },
        );
    }

    /// A publish another node forwarded for this node's sessions (the fast path): its local
    /// sessions, and for QoS 0 its connected durable ones. Of the shared groups matching the
    /// topic only `groups` are served here.
    pub fn forwarded(&mut self, message: Arc<Message>, groups: &[SharedKey]) {
        let mut matching = self.local.shared_groups_matching(&message.topic);
        matching.extend(self.durable.shared_groups_matching(&message.topic));
        let skip: Vec<SharedKey> = matching
            .into_iter()
            .filter(|key| !groups.contains(key))
            .collect();
        let local = self.apply_in(
            Tier::Local,
            Command::Publish {
                message: message.clone(),
                origin: None,
                skip_shared: skip.clone(),
            },
        );
        if message.qos == QoS::AtMostOnce {
            let mut served = local.shared_served;
            served.extend(skip);
            // A forward can arrive late (a peer that was down, a slow link): a durable session
            // that connected here after the publish was received may have had it on the
            // connection it had then, elsewhere. QoS 0 is never sent twice: such a connection
            // does not get it (a loss QoS 0 allows).
            let connected_before = Some(message.received_at_ms);
            self.deliver_direct_durable(&message, &served, connected_before);
        }
    }

    /// Which other nodes a publish received here must reach off the log, and which shared
    /// groups each serves. Nothing in a cluster of one.
    fn spread(&mut self, message: &Arc<Message>) -> Spread {
        let mut spread = Spread::default();
        if self.single_voter {
            return spread;
        }
        let me = self.place.node;
        let targets = self.durable.spread_targets(message, me);
        for node in targets.plain_nodes {
            spread.forward.entry(node).or_default();
        }
        for (key, group) in targets.groups {
            if message.qos != QoS::AtMostOnce && group.has_durable_members {
                // Kept in the log for its durable members (`groups_kept_durable`).
                continue;
            }
            let here = self.local.shared_group_size(&key) + group.connected_here;
            let candidates = here + group.elsewhere.len();
            if candidates == 0 {
                continue;
            }
            let cursor = self.spread_cursor.entry(key.clone()).or_default();
            let pick = *cursor % candidates;
            *cursor = cursor.wrapping_add(1);
            if pick < here {
                continue;
            }
            let node = group.elsewhere[pick - here];
            spread.forward.entry(node).or_default().push(key.clone());
            spread.not_here.push(key);
        }
        spread
    }

    fn forward(&mut self, message: &Arc<Message>, forward: BTreeMap<u64, Vec<SharedKey>>) {
        for (node, groups) in forward {
            self.effects.push(Effect::Forward {
                node,
                message: message.clone(),
                groups,
            });
        }
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
        let tier = connection.tier;
        let command = Command::PubRelReceived {
            client_id: client_id.clone(),
            packet_id,
        };
        self.run_as(tier, &client_id, vec![command], Some((conn, ticket, 0)));
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
        let client_id = connection.client_id.clone();
        if connection.tier == Tier::Local {
            // Subscribed here at once; the SUBACK waits for the route to commit, so that a
            // publish on any node after it reaches this session.
            let register = Command::SubscribeLocal {
                client_id: client_id.clone(),
                place: self.place,
                subscriptions: subscriptions.clone(),
            };
            // The retained messages go out once the route commits, from this node's mirror
            // as the log has it then: sent now they could be older than one acknowledged
            // elsewhere before this SUBSCRIBE (G4).
            let (retained, applied) = self
                .local
                .subscribe_deferring_retained(&client_id, subscriptions);
            let applied = self.act_on(Tier::Local, applied, now_ms);
            let completion = Completion {
                existed: applied.existed,
                ..Completion::default()
            };
            self.held.insert((conn, ticket), completion);
            if !retained.is_empty() {
                self.held_retained
                    .insert((conn, ticket), (client_id.clone(), retained, now_ms));
            }
            self.propose_as(&client_id, vec![register], Some((conn, ticket, 0)));
            return;
        }
        self.pending_subscriptions
            .proposed(&client_id, &subscriptions);
        let command = Command::Subscribe {
            client_id: client_id.clone(),
            subscriptions,
            now_ms,
        };
        self.propose_as(&client_id, vec![command], Some((conn, ticket, 0)));
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
                .filter(|q| may_go_elsewhere(q, connection.sent_bound()))
                .map(|q| q.seq)
                .collect(),
            _ => Vec::new(),
        };
        if tier == Tier::Local {
            let unregister = Command::UnsubscribeLocal {
                client_id: client_id.clone(),
                place: self.place,
                filters: filters.clone(),
            };
            self.propose_as(&client_id, vec![unregister], None);
        }
        let mut commands = vec![Command::Unsubscribe {
            client_id: client_id.clone(),
            filters,
        }];
        if !release.is_empty() {
            commands.push(Command::ReleaseShared {
                client_id: client_id.clone(),
                seqs: release,
            });
        }
        self.run_as(tier, &client_id, commands, Some((conn, ticket, 0)));
    }

    /// Applies wills and session expiries that are due: those of local sessions at once,
    /// those of durable sessions through the log.
    pub fn tick(&mut self, now_ms: u64) {
        for command in self.local.due(now_ms) {
            self.apply_in(Tier::Local, command);
        }
        if !self.timer_duty {
            return;
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
        self.deliver_direct_durable(&message, &local.shared_served, None);
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

    /// QoS 0 to the connected durable sessions, from the replica, with no log write; with
    /// `connected_before`, only to connections whose CONNECT arrived by then.
    /// Returns the sessions it was meant for.
    fn deliver_direct_durable(
        &mut self,
        message: &Arc<Message>,
        skip_shared: &[SharedKey],
        connected_before: Option<u64>,
    ) -> Vec<ClientId> {
        self.direct_cursor = self.direct_cursor.wrapping_add(1);
        let directs = self.durable.direct_deliveries(
            message,
            self.direct_cursor,
            skip_shared,
            self.place.node,
        );
        let mut reached = Vec::with_capacity(directs.len());
        for direct in directs {
            reached.push(direct.client_id.clone());
            self.deliver_direct(Tier::Durable, direct, connected_before);
        }
        reached
    }

    /// A QoS 0 message to the sessions connected here whose subscriptions are proposed and
    /// not yet applied, except those the replica already `reached` (overlapping
    /// subscriptions get one copy).
    fn deliver_to_pending(&mut self, message: &Arc<Message>, reached: &[ClientId]) {
        if self.pending_subscriptions.is_empty() {
            return;
        }
        for pending in self.pending_subscriptions.qos0_deliveries(message) {
            if reached.contains(&pending.client_id) {
                continue;
            }
            let direct = crate::state::DirectDelivery {
                client_id: pending.client_id,
                message: message.clone(),
                retain: pending.retain,
                subscription_ids: pending.subscription_ids,
            };
            self.deliver_direct(Tier::Durable, direct, None);
        }
    }

    /// Applies a committed batch of proposals, unless a copy of it was applied before (a
    /// proposal retried after a timeout whose first attempt committed too).
    pub fn apply_batch(&mut self, batch: BatchId, proposals: Vec<Proposal>) {
        if !self.durable.accept_batch(batch) {
            return;
        }
        for proposal in proposals {
            self.apply_committed(proposal);
        }
    }

    /// Applies a committed proposal to the replicated state, in log order; replies to the
    /// request it carries when it came from this node's current run.
    pub fn apply_committed(&mut self, proposal: Proposal) {
        let mut completion = Completion::default();
        let mut replied = false;
        let reply_to = proposal.origin.filter(|o| self.is_mine(o));
        if let Some((client_id, place)) = &proposal.from {
            if !self.holds(client_id, *place) {
                self.void(&proposal, reply_to);
                return;
            }
        }
        let asking = reply_to.map(|o| o.conn);
        for command in proposal.commands {
            let opening = match &command {
                Command::OpenSession {
                    client_id, now_ms, ..
                } => Some((client_id.clone(), *now_ms, Tier::Durable)),
                Command::OpenLocal { client_id, .. } => Some((client_id.clone(), 0, Tier::Local)),
                _ => None,
            };
            let reason = match &command {
                Command::NodeDown { .. } => ReasonCode::ServerUnavailable,
                _ => ReasonCode::SessionTakenOver,
            };
            let now_ms = command_time(&command);
            match &command {
                Command::Publish {
                    origin: Some((client_id, packet_id, _)),
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
            if let Command::Subscribe {
                client_id,
                subscriptions,
                ..
            } = &command
            {
                if proposal
                    .from
                    .as_ref()
                    .is_some_and(|(_, p)| *p == self.place)
                {
                    self.pending_subscriptions.settled(client_id, subscriptions);
                }
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
            for (client_id, place) in &applied.displaced {
                if *place == self.place {
                    self.displace(client_id, asking, reason, now_ms);
                }
            }
            if let Some((client_id, now_ms, tier)) = opening {
                replied |= self.session_opened(
                    &client_id,
                    tier,
                    applied.session_present,
                    applied.resumed_from,
                    reply_to,
                    now_ms,
                );
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
        if let Some(origin) = reply_to {
            if let Some((client_id, retained, at_ms)) =
                self.held_retained.remove(&(origin.conn, origin.ticket))
            {
                let mut applied = Applied::default();
                self.local
                    .send_retained(&client_id, &retained, at_ms, &mut applied);
                self.act_on(Tier::Local, applied, at_ms);
            }
            if let Some(message) = self.deferred.remove(&(origin.conn, origin.ticket)) {
                if !completion.duplicate {
                    completion.matched += self.route_fast(&message, None).matched;
                }
            }
        }
        match reply_to {
            Some(origin) if !replied => {
                if let Some(held) = self.held.remove(&(origin.conn, origin.ticket)) {
                    completion.existed = held.existed;
                }
                completion.matched += origin.local_matched as usize;
                self.reply(origin.conn, origin.ticket, completion);
            }
            _ => {}
        }
    }

    /// A commit moved the session of `client_id` away from this node (or ended this run's
    /// connections): the connection serving it here, unless it is the one that asked, goes
    /// with `reason`. A local session ends with it, publishing its will.
    fn displace(
        &mut self,
        client_id: &ClientId,
        asking: Option<ConnId>,
        reason: ReasonCode,
        now_ms: u64,
    ) {
        let Some(&conn) = self.owners.get(client_id) else {
            return;
        };
        let served = self.connections.get(&conn).is_some_and(|c| c.opened);
        if Some(conn) == asking || !served {
            return;
        }
        self.owners.remove(client_id);
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        self.effects.push(Effect::Disconnect { conn, reason });
        self.remember_sent(&connection);
        if connection.tier == Tier::Local {
            self.apply_in(
                Tier::Local,
                Command::CloseSession {
                    client_id: client_id.clone(),
                    expiry_secs: 0,
                    publish_will: true,
                    now_ms,
                    place: self.place,
                },
            );
        }
    }

    /// Whether the session of `client_id` is served at `place` (or was last, for a durable
    /// session now disconnected), as the replicated state has it.
    fn holds(&self, client_id: &ClientId, place: Place) -> bool {
        self.durable
            .session(client_id)
            .is_some_and(|s| s.place == place)
            || self.durable.placement().local_place(client_id) == Some(place)
    }

    /// Forgets a proposal that came from a connection which no longer holds its session: it
    /// takes no effect, and what this node kept for its reply goes.
    fn void(&mut self, proposal: &Proposal, reply_to: Option<Origin>) {
        let mine = proposal
            .from
            .as_ref()
            .is_some_and(|(_, p)| *p == self.place);
        for command in &proposal.commands {
            match command {
                Command::Publish {
                    origin: Some((client_id, packet_id, _)),
                    ..
                } => {
                    self.proposed_qos2.remove(&(client_id.clone(), *packet_id));
                }
                Command::Subscribe {
                    client_id,
                    subscriptions,
                    ..
                } if mine => self.pending_subscriptions.settled(client_id, subscriptions),
                _ => {}
            }
        }
        if let Some(origin) = reply_to {
            let key = (origin.conn, origin.ticket);
            self.held.remove(&key);
            self.held_retained.remove(&key);
            self.deferred.remove(&key);
        }
    }

    fn is_mine(&self, origin: &Origin) -> bool {
        origin.node == self.place.node && origin.incarnation == self.place.incarnation
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
        self.run_from(tier, None, commands, reply_to)
    }

    /// [`Broker::run`] for what only the connection holding `client_id`'s session may ask
    /// (see [`Proposal::from`]).
    fn run_as(
        &mut self,
        tier: Tier,
        client_id: &ClientId,
        commands: Vec<Command>,
        reply_to: Option<(ConnId, Ticket, u32)>,
    ) {
        self.run_from(tier, Some(client_id), commands, reply_to)
    }

    fn run_from(
        &mut self,
        tier: Tier,
        client_id: Option<&ClientId>,
        commands: Vec<Command>,
        reply_to: Option<(ConnId, Ticket, u32)>,
    ) {
        match tier {
            Tier::Durable => match client_id {
                Some(client_id) => self.propose_as(client_id, commands, reply_to),
                None => self.propose(commands, reply_to),
            },
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
        self.propose_from(commands, reply_to, None);
    }

    /// Proposes what only the connection holding `client_id`'s session may ask: void if the
    /// session has moved by the time it is applied (see [`Proposal::from`]).
    fn propose_as(
        &mut self,
        client_id: &ClientId,
        commands: Vec<Command>,
        reply_to: Option<(ConnId, Ticket, u32)>,
    ) {
        self.propose_from(commands, reply_to, Some((client_id.clone(), self.place)));
    }

    fn propose_from(
        &mut self,
        commands: Vec<Command>,
        reply_to: Option<(ConnId, Ticket, u32)>,
        from: Option<(ClientId, Place)>,
    ) {
        let origin = reply_to.map(|(conn, ticket, local_matched)| Origin {
            node: self.place.node,
            incarnation: self.place.incarnation,
            conn,
            ticket,
            local_matched,
        });
        // Commands nobody waits for (acknowledgements from subscribers, above all) join the
        // previous such proposal: one proposal per message would cost more than the command.
        if origin.is_none() && from.is_none() {
            if let Some(last) = self.proposals.last_mut() {
                if last.origin.is_none()
                    && last.from.is_none()
                    && last.commands.len() < MERGED_COMMANDS_MAX
                {
                    last.commands.extend(commands);
                    return;
                }
            }
        }
        self.proposals.push(Proposal {
            commands,
            origin,
            from,
        });
    }

    fn reply(&mut self, conn: ConnId, ticket: Ticket, completion: Completion) {
        self.effects.push(Effect::Reply {
            conn,
            ticket,
            completion,
        });
    }

    /// The registration of a session was applied (`OpenSession`, `OpenLocal`): the connection
    /// of this node that asked for it is served from now on (returns true: it got its reply).
    fn session_opened(
        &mut self,
        client_id: &ClientId,
        tier: Tier,
        present: bool,
        resumed_from: Option<Place>,
        origin: Option<Origin>,
        now_ms: u64,
    ) -> bool {
        let Some(origin) = origin else {
            return false;
        };
        let Some(&conn) = self.owners.get(client_id) else {
            return false;
        };
        let Some(connection) = self.connections.get(&conn) else {
            return false;
        };
        if origin.conn != conn || connection.tier != tier || connection.opened {
            return false;
        }
        let present = match tier {
            Tier::Local => connection.local_present,
            Tier::Durable => present,
        };
        if tier == Tier::Durable && present && resumed_from != Some(self.place) {
            // Served elsewhere last: whatever is queued may have been sent there.
            if let Some(last) = self.durable.session(client_id).and_then(|s| s.queue.back()) {
                let before = self.sent_before.entry(client_id.clone()).or_default();
                *before = (*before).max(last.seq);
            }
        }
        self.opened(conn, present, origin.ticket, now_ms);
        true
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
        let now_ms = command_time(&command);
        let applied = match tier {
            Tier::Durable => self.durable.apply(command),
            Tier::Local => self.local.apply(command),
        };
        self.act_on(tier, applied, now_ms)
    }

    /// Carries out what applying a command to a tier reported.
    fn act_on(&mut self, tier: Tier, applied: Applied, now_ms: u64) -> Applied {
        self.stats.dropped_queue_full += applied.dropped_queue_full as u64;
        let for_bytes = applied.dropped_queue_bytes as u64;
        self.stats.limits.queue += applied.dropped_queue_full as u64 - for_bytes;
        self.stats.limits.queue_bytes += for_bytes;
        for direct in applied.direct.iter().cloned() {
            self.deliver_direct(tier, direct, None);
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
                    self.deliver_direct_durable(&will, &skip_shared, None);
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

    /// Sends a QoS 0 delivery to the connection of its session, if it is served here (and,
    /// with `connected_before`, connected by then).
    fn deliver_direct(
        &mut self,
        tier: Tier,
        direct: crate::state::DirectDelivery,
        connected_before: Option<u64>,
    ) {
        let Some(&conn) = self.owners.get(&direct.client_id) else {
            return;
        };
        if !self.connections.get(&conn).is_some_and(|c| {
            c.tier == tier
                && c.opened
                && connected_before.is_none_or(|before| c.connected_at_ms <= before)
        }) {
            return;
        }
        self.stats.deliveries += 1;
        self.stats.sent_by_qos[QoS::AtMostOnce as usize] += 1;
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
                self.stats.sent_by_qos[queued.qos as usize] += 1;
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

/// The time a command happens at, as far as it carries one.
fn command_time(command: &Command) -> u64 {
    match command {
        Command::OpenSession { now_ms, .. }
        | Command::CloseSession { now_ms, .. }
        | Command::EndSession { now_ms, .. }
        | Command::PublishWill { now_ms, .. }
        | Command::NodeDown { now_ms, .. }
        | Command::Subscribe { now_ms, .. } => *now_ms,
        Command::Publish { message, .. } => message.received_at_ms,
        _ => 0,
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
/// QoS 1 always; QoS 2 only if it was certainly never sent to the client (seq above
/// `sent_bound`, see [`Connection::sent_bound`]), since a QoS 2 message once sent must be
/// completed with the same client ([MQTT-4.8.2-4], [MQTT-4.8.2-5]).
fn may_go_elsewhere(queued: &crate::state::QueuedMessage, sent_bound: Option<u64>) -> bool {
    !queued.pubrec_received
        && (queued.qos == QoS::AtLeastOnce || sent_bound.is_some_and(|bound| queued.seq > bound))
}
