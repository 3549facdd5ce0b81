//! The state all connection tasks of a node share: the broker core and each connection's
//! outbox, behind one lock that is never held across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::broker::{Broker, ConnId, Effect};
use crate::cluster::{AppliedPosition, Applier, ProposalFailure, ProposalQueue};
use crate::codec::ReasonCode;
use crate::net::Clock;
use crate::session::Session;
use crate::state::State;

use super::outbox::{Outbox, Outgoing};

/// The broker core and the outboxes of the connections it serves.
pub struct Core {
    pub broker: Broker,
    outboxes: BTreeMap<ConnId, Arc<Outbox>>,
    /// Where the broker's proposals go to be committed.
    proposals: Arc<ProposalQueue>,
    /// How far the broker's replicated state has applied the log.
    position: AppliedPosition,
}

/// Shared by every task of the node.
pub struct Hub {
    core: Mutex<Core>,
    clock: Arc<dyn Clock>,
    next_conn: AtomicU64,
    /// QoS 0 deliveries dropped because a connection's outbox was full.
    pub qos0_dropped: AtomicU64,
}

impl Hub {
    pub fn new(broker: Broker, proposals: Arc<ProposalQueue>, clock: Arc<dyn Clock>) -> Hub {
        Hub {
            clock,
            core: Mutex::new(Core {
                broker,
                outboxes: BTreeMap::new(),
                proposals,
                position: AppliedPosition::default(),
            }),
            next_conn: AtomicU64::new(1),
            qos0_dropped: AtomicU64::new(0),
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
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let outbox = Arc::new(Outbox::new(qos0_max));
        self.lock().outboxes.insert(conn, outbox.clone());
        (conn, outbox)
    }

    pub fn unregister(&self, conn: ConnId) {
        self.lock().outboxes.remove(&conn);
    }

    /// Sends something to every registered connection (shutdown).
    pub fn broadcast(&self, make: impl Fn() -> Outgoing) {
        let core = self.lock();
        for outbox in core.outboxes.values() {
            outbox.push(make());
        }
    }
}

impl Core {
    /// Carries out the broker's effects until there are none: deliveries for `own` go
    /// straight into its session (so they follow the packets it just produced), the rest
    /// to the outboxes of their connections.
    pub fn dispatch(
        &mut self,
        mut own: Option<&mut Session>,
        now_ms: u64,
        qos0_dropped: &AtomicU64,
    ) {
        loop {
            self.proposals.push(self.broker.take_proposals());
            let effects = self.broker.take_effects();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                let (conn, outgoing) = match effect {
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
                            match item {
                                Outgoing::Deliver(delivery) => {
                                    session.deliver(delivery, &mut self.broker, now_ms)
                                }
                                Outgoing::Disconnect(reason) => session.kick(reason),
                                Outgoing::Reply(ticket, completion) => {
                                    session.on_reply(ticket, completion)
                                }
                            }
                        }
                    }
                    _ => {
                        if let Some(outbox) = self.outboxes.get(&conn) {
                            if !outbox.push(outgoing) {
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
    fn apply(&self, proposals: Vec<crate::broker::Proposal>, position: AppliedPosition) {
        let mut core = self.lock();
        for proposal in proposals {
            core.broker.apply_committed(proposal);
        }
        core.position = position;
        core.dispatch(None, 0, &self.qos0_dropped);
    }

    fn snapshot(&self) -> (Vec<u8>, AppliedPosition) {
        let core = self.lock();
        (core.broker.state().to_snapshot(), core.position.clone())
    }

    fn install(&self, state: &[u8], position: AppliedPosition) -> Result<(), String> {
        let mut core = self.lock();
        let state =
            State::from_snapshot(core.broker.config().state, state).map_err(|e| e.to_string())?;
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

impl ProposalFailure for Hub {
    fn log_failed(&self, why: String) {
        tracing::error!(%why, "the log does not take proposals: this node stops acknowledging");
        let mut core = self.lock();
        core.broker.set_unavailable(ReasonCode::UnspecifiedError);
        core.dispatch(None, 0, &self.qos0_dropped);
    }
}
