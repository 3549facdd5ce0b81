//! The state all connection tasks of a node share: the broker core and each connection's
//! outbox, behind one lock that is never held across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::broker::{Broker, ConnId, Effect};
use crate::cluster::{
    AppliedPosition, Applier, ClusterView, Forwarder, InstallError, NoForwarder, ProposalFailure,
    ProposalQueue,
};
use crate::codec::ReasonCode;
use crate::net::Clock;
use crate::session::Session;
use crate::state::State;

use super::admission::ListenerStats;
use super::outbox::{Outbox, Outgoing};
use super::trace::Tracer;

/// The broker core and the outboxes of the connections it serves.
pub struct Core {
    pub broker: Broker,
    outboxes: BTreeMap<ConnId, Arc<Outbox>>,
    /// Where the broker's proposals go to be committed.
    proposals: Arc<ProposalQueue>,
    /// How far the broker's replicated state has applied the log.
    position: AppliedPosition,
    /// Where publishes for other nodes go (the fast path between nodes).
    forwarder: Arc<dyn Forwarder>,
    /// The read task's wake-up (see `Hub::read_wake`).
    read_wake: Arc<Notify>,
}

/// How often the limits the shell enforces (per connection, before the session state
/// machine) were hit.
#[derive(Debug, Default)]
pub struct ShellStats {
    /// Connections closed at once because `connections_max` were open.
    pub refused_connections_max: AtomicU64,
    /// Connections whose accept waited for `connection_rate_max`.
    pub throttled_accepts: AtomicU64,
    /// Connections closed because a packet took longer than `packet_timeout` to arrive.
    pub closed_slow_packets: AtomicU64,
    /// Bytes read from and written to client connections (after TLS and WebSocket).
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Connections closed because their PROXY protocol header was missing or malformed.
    pub proxy_refused: AtomicU64,
    /// Cluster peers refused (TLS, certificates, calls as another node), by reason.
    pub peer_refusals: Arc<crate::grpc::PeerRefusals>,
    /// Each MQTT listener's connections and refusals, registered when it is bound. Locked
    /// only then and when metrics are read, never on a connection's path.
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
}

impl ShellStats {
    /// Registers a bound listener's counters, for the metrics.
    pub fn register_listener(&self, stats: Arc<ListenerStats>) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stats);
    }

    /// The counters of every listener, in the order they were bound.
    pub fn listeners(&self) -> Vec<Arc<ListenerStats>> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Shared by every task of the node.
pub struct Hub {
    core: Mutex<Core>,
    clock: Arc<dyn Clock>,
    next_conn: AtomicU64,
    /// QoS 0 deliveries dropped because a connection's outbox was full.
    pub qos0_dropped: AtomicU64,
    /// Counters of the shell's limits.
    pub shell_stats: ShellStats,
    /// The clients traced on an operator's request (admin API).
    pub tracer: Tracer,
    /// Wakes the read task when publishes wait for a read of the commit index.
    pub read_wake: Arc<Notify>,
}

impl Hub {
    pub fn new(broker: Broker, proposals: Arc<ProposalQueue>, clock: Arc<dyn Clock>) -> Hub {
        let read_wake = Arc::new(Notify::new());
        Hub {
            clock,
            core: Mutex::new(Core {
                broker,
                outboxes: BTreeMap::new(),
                proposals,
                position: AppliedPosition::default(),
                forwarder: Arc::new(NoForwarder),
                read_wake: read_wake.clone(),
            }),
            next_conn: AtomicU64::new(1),
            qos0_dropped: AtomicU64::new(0),
            shell_stats: ShellStats::default(),
            tracer: Tracer::default(),
            read_wake,
        }
    }

    /// Locks the core. A panic while holding it poisons it; the state may then be broken,
    /// so the process must not go on serving from it.
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core
            .lock()
            .expect("broker core poisoned by a panic: refusing to serve from broken state")
    }

    /// A new connection id and its outbox, registered for deliveries.
    pub fn register(&self, qos0_max: usize) -> (ConnId, Arc<Outbox>) {
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let outbox = Arc::new(Outbox::new(qos0_max));
        self.lock().outboxes.insert(conn, outbox.clone());
        (conn, outbox)
    }

    pub fn unregister(&self, conn: ConnId) {
        self.lock().outboxes.remove(&conn);
    }
}

impl Core {
    /// Carries out the broker's effects until there are none: deliveries for `own` go
    /// straight into its session (so they follow the packets it just produced), the rest
    /// to the outboxes of their connections. Returns how many went to other connections.
    pub fn dispatch(
        &mut self,
        mut own: Option<&mut Session>,
        now_ms: u64,
        qos0_dropped: &AtomicU64,
    ) -> usize {
        let mut handed_off = 0;
        loop {
            self.proposals.push(self.broker.take_proposals());
            let effects = self.broker.take_effects();
            if effects.is_empty() {
                if self.broker.wants_read() {
                    self.read_wake.notify_one();
                }
                return handed_off;
            }
            for effect in effects {
                let (conn, outgoing) = match effect {
                    Effect::Forward {
                        node,
                        message,
                        groups,
                    } => {
                        self.forwarder.forward(node.into(), message, groups);
                        continue;
                    }
                    Effect::Deliver { conn, delivery } => (conn, Outgoing::Deliver(delivery)),
                    Effect::Disconnect { conn, reason } => (conn, Outgoing::Disconnect(reason)),
                    Effect::Reply {
                        conn,
                        ticket,
                        completion,
                    } => (conn, Outgoing::Reply(ticket, completion)),
                };
                match own.as_deref_mut() {
                    Some(session) if session.conn() == conn => {
                        // Deliveries other tasks queued for this connection come first:
                        // handing this one over directly must not overtake them (MQTT 4.6).
                        let mut queued = Vec::new();
                        if let Some(outbox) = self.outboxes.get(&conn) {
                            outbox.drain_into(&mut queued);
                        }
                        for item in queued.into_iter().chain(std::iter::once(outgoing)) {
                            item.hand_to(session, &mut self.broker, now_ms);
                        }
                    }
                    _ => {
                        if let Some(outbox) = self.outboxes.get(&conn) {
                            if outbox.push(outgoing) {
                                handed_off += 1;
                            } else {
                                qos0_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Applier for Hub {
    fn apply(&self, batches: Vec<crate::cluster::Batch>, position: AppliedPosition) {
        let mut core = self.lock();
        for batch in batches {
            core.broker.apply_batch(batch.id, batch.proposals);
        }
        core.position = position;
        core.dispatch(None, 0, &self.qos0_dropped);
    }

    fn snapshot(&self) -> (Vec<u8>, AppliedPosition) {
        let core = self.lock();
        (core.broker.state().to_snapshot(), core.position.clone())
    }

    fn install(&self, state: &[u8], position: AppliedPosition) -> Result<(), InstallError> {
        let mut core = self.lock();
        let state = State::from_snapshot(core.broker.config().state, state)?;
        core.broker.install_state(state);
        core.position = position;
        core.dispatch(None, 0, &self.qos0_dropped);
        Ok(())
    }

    fn position(&self) -> AppliedPosition {
        self.lock().position.clone()
    }

    fn recover(&self) -> Vec<crate::broker::Proposal> {
        let now_ms = self.clock.unix_ms();
        self.lock().broker.recover(now_ms)
    }
}

impl Hub {
    /// The node's wall clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Sets where publishes for other nodes go (before the node serves anyone).
    pub fn set_forwarder(&self, forwarder: Arc<dyn Forwarder>) {
        self.lock().forwarder = forwarder;
    }
}

impl ClusterView for Hub {
    fn set_role(&self, single_voter: bool, leader: bool, quorum: bool) {
        let mut core = self.lock();
        let was_available = core.broker.is_available();
        core.broker.set_cluster_role(single_voter, leader);
        core.broker.set_quorum(quorum);
        if was_available != core.broker.is_available() {
            if quorum {
                tracing::info!("quorum reached: serving clients again");
            } else {
                tracing::warn!("no quorum for an election timeout: clients are sent away (DISCONNECT 0x9C, CONNACK 0x88)");
            }
        }
        let now_ms = self.clock.unix_ms();
        core.dispatch(None, now_ms, &self.qos0_dropped);
        if core.broker.wants_read() {
            self.read_wake.notify_one();
        }
    }

    fn start_read(&self) -> Option<u64> {
        let mut core = self.lock();
        core.broker.wants_read().then(|| core.broker.start_read())
    }

    fn read_done(&self, round: u64) {
        let mut core = self.lock();
        core.broker.read_done(round);
        let now_ms = self.clock.unix_ms();
        core.dispatch(None, now_ms, &self.qos0_dropped);
    }
}

impl ProposalFailure for Hub {
    fn log_failed(&self, why: String) {
        tracing::error!(%why, "the log does not take proposals: this node stops acknowledging");
        let mut core = self.lock();
        core.broker.set_unavailable(ReasonCode::UnspecifiedError);
        core.dispatch(None, 0, &self.qos0_dropped);
    }
}
