//! The [`Broker`] itself: what it holds, how it is built, what it tells of itself, and the
//! invariants it keeps. What it does lives beside it, a file a job: `lifecycle` (connect,
//! takeover, disconnect, recovery), `publish` (routing, the fast path, forwarding),
//! `freshness` (publishes waiting for a read of the commit index), `subscribe`, `outbound`
//! (acknowledgements from subscribers and the outbound window), `apply` (committed
//! proposals, in log order) and `propose` (the one way commands are run).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::codec::{PacketId, ReasonCode, TopicFilter};
use crate::state::{
    ClientId, Incarnation, Message, NodeId, Place, Seq, SharedKey, State, Subscription,
};

use super::freshness::FreshnessGate;
use super::pending::PendingSubscriptions;
use super::proposal::{Completion, ConnId, Origin, Proposal, Ticket};
use super::types::{BrokerConfig, BrokerStats, Effect, LimitStats, Tier};
use super::window::Connection;

/// A local session's subscriptions whose retained messages wait for their commit, and when
/// they were made.
pub(super) type RetainedRequest = (ClientId, Vec<(TopicFilter, Subscription)>, u64);

/// The broker core of one node.
#[derive(Debug)]
pub struct Broker {
    pub(super) config: BrokerConfig,
    /// This node and run: where its connections are served.
    pub(super) place: Place,
    /// Whether this node is the only voter of its cluster: nobody else commits anything, so
    /// the replica is always fresh (see [`Broker::read_done`]).
    pub(super) single_voter: bool,
    /// Whether this node proposes the durable sessions' due wills and expiries (the leader
    /// does, so they are proposed once).
    pub(super) timer_duty: bool,
    /// Replies held until a read of the commit index shows the replica fresh (publishes that
    /// skip the log on a node of a larger cluster).
    pub(super) fresh: FreshnessGate,
    /// Replies to requests of local sessions whose own part is done, held until their
    /// registration commits (SUBACK of a local SUBSCRIBE).
    pub(super) held: BTreeMap<(ConnId, Ticket), Completion>,
    /// Round robin over shared groups' members across nodes, for the fast path.
    pub(super) spread_cursor: BTreeMap<SharedKey, usize>,
    /// QoS 2 publishes of durable sessions, by request, routed off the log once they commit.
    pub(super) deferred: BTreeMap<(ConnId, Ticket), Arc<Message>>,
    /// Retained messages a local session's new subscriptions call for, sent once the
    /// subscriptions commit.
    pub(super) held_retained: BTreeMap<(ConnId, Ticket), RetainedRequest>,
    /// The replica of the replicated state: changed only by [`Broker::apply_committed`].
    pub(super) durable: State,
    /// Sessions that end with their connection, and a mirror of the retained messages.
    pub(super) local: State,
    pub(super) connections: BTreeMap<ConnId, Connection>,
    /// The connection serving each connected client id.
    pub(super) owners: BTreeMap<ClientId, ConnId>,
    /// How far each disconnected durable session's queue was sent here, for DUP on resume.
    pub(super) sent_before: BTreeMap<ClientId, Seq>,
    /// QoS 2 packet ids of durable publishers proposed and not yet applied: a resend meanwhile
    /// is a duplicate.
    pub(super) proposed_qos2: BTreeSet<(ClientId, PacketId)>,
    /// Durable sessions whose due will or expiry is proposed and not yet applied.
    pub(super) proposed_due: BTreeSet<ClientId>,
    /// Subscriptions of durable sessions proposed here and not yet applied: a publish read
    /// after the SUBSCRIBE sees them (see [`PendingSubscriptions`]).
    pub(super) pending_subscriptions: PendingSubscriptions,
    /// Round robin over shared groups for QoS 0 fast-path deliveries to durable sessions.
    pub(super) direct_cursor: usize,
    /// Set when the log stopped taking proposals: no connection is served any more.
    pub(super) unavailable: Option<ReasonCode>,
    pub(super) effects: Vec<Effect>,
    pub(super) proposals: Vec<Proposal>,
    pub(super) stats: BrokerStats,
}

impl Broker {
    /// A broker for node 1 in its first run; see [`Broker::with_identity`].
    pub fn new(config: BrokerConfig) -> Broker {
        Broker::with_identity(config, NodeId(1), Incarnation(0))
    }

    /// A broker for `node`; `incarnation` must grow from one run of the node to the next.
    pub fn with_identity(config: BrokerConfig, node: NodeId, incarnation: Incarnation) -> Broker {
        Broker {
            config,
            place: Place { node, incarnation },
            single_voter: true,
            timer_duty: true,
            fresh: FreshnessGate::default(),
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
        let inflight = self
            .connections
            .values()
            .map(|c| c.window.in_flight())
            .sum();
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

    /// The client id a connection serves; `None` once the broker has let the connection go
    /// (taken over, or dropped with the state it served): a DISCONNECT is then on its way
    /// ([`Effect::Disconnect`] is pushed whenever a connection is let go).
    pub fn client_of(&self, conn: ConnId) -> Option<&ClientId> {
        self.connections.get(&conn).map(|c| &c.client_id)
    }

    pub(super) fn tier(&self, tier: Tier) -> &State {
        match tier {
            Tier::Durable => &self.durable,
            Tier::Local => &self.local,
        }
    }

    pub(super) fn is_mine(&self, origin: &Origin) -> bool {
        origin.place == self.place
    }

    /// Checks the invariants of the core and its states; panics with the broken one.
    pub fn validate(&self) {
        self.durable.validate();
        self.local.validate();
        self.fresh.validate();
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
            connection.window.validate();
        }
        for session in self.local.sessions() {
            assert!(
                session.expiry_secs == 0,
                "a local session outlives its connection"
            );
        }
    }
}
