//! The state machine: all sessions, the subscription index and retained messages, changed
//! only by applying [`Command`]s in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::codec::{PacketId, QoS, TopicName};
use crate::router::Router;

use super::command::{Applied, Command};
use super::message::{ClientId, Message};
use super::placement::Placement;
use super::session::{Seq, SessionState, SharedKey, Subscription};

mod routing;
mod sessions;
mod subscriptions;

pub use routing::{GroupTargets, SpreadTargets};

/// What to do when a message arrives for a session whose queue is full: it holds
/// `queue_max` messages, or the message's bytes would take it past `queue_bytes_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Keep the queue, drop the new message (Mosquitto's behaviour).
    #[default]
    DropNew,
    /// Make room by dropping the oldest messages not yet half-way through QoS 2, as many as
    /// both bounds need; when they cannot make enough room, drop the new message.
    DropOldest,
}

/// Limits the state machine enforces. Part of the state, so every replica applies the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateConfig {
    /// Most QoS 1/2 messages one session may hold (queued plus in flight).
    pub queue_max: usize,
    /// Most payload plus topic bytes ([`Message::size_bytes`]) the messages of one session
    /// may add up to (queued plus in flight). A message larger than this on its own is never
    /// queued. Each session counts a message it holds in full, shared or not.
    pub queue_bytes_max: usize,
    pub overflow: OverflowPolicy,
    /// Most retained messages: a `SetRetained` for a topic without one is ignored beyond it
    /// (the broker refuses such publishes before they get here; this keeps the bound hard).
    pub retained_max: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            queue_max: 1000,
            // 64 times the default packet_size_max (1 MiB): room for 64 messages of the
            // largest size or queue_max messages of up to 64 KiB, while one session's worst
            // case stays 64 MiB instead of queue_max × packet_size_max (about 1 GiB).
            queue_bytes_max: 64 * 1024 * 1024,
            overflow: OverflowPolicy::DropNew,
            retained_max: 1_000_000,
        }
    }
}

/// Sessions, subscriptions and retained messages.
#[derive(Debug, Clone, Default)]
pub struct State {
    config: StateConfig,
    sessions: BTreeMap<ClientId, SessionState>,
    /// Every subscription of every session, indexed by filter for routing.
    router: Router<ClientId, Subscription>,
    retained: BTreeMap<TopicName, Arc<Message>>,
    /// Round-robin position of each shared subscription.
    shared_cursors: BTreeMap<SharedKey, usize>,
    /// Sessions with a pending will or an expiry, by the time the next one is due.
    timers: BTreeSet<(u64, ClientId)>,
    /// The deadline each session has in `timers`.
    timer_of: BTreeMap<ClientId, u64>,
    /// The cluster's local sessions and the batches applied (replicated state only).
    placement: Placement,
    /// A queue was restored over `queue_max` or `queue_bytes_max` (the operator lowered
    /// them): it keeps what it holds and takes nothing new until it drains, so the bound is
    /// no longer an invariant of this state. Derived from the snapshot and the configuration,
    /// so the same on every node.
    queues_over_bound: bool,
}

impl State {
    pub fn new(config: StateConfig) -> State {
        State {
            config,
            ..State::default()
        }
    }

    /// A state from its durable parts, as a snapshot holds them, with the derived indexes (the
    /// router and the timers) rebuilt from the sessions. Every session must be filed under its
    /// own client id.
    pub(super) fn from_parts(
        config: StateConfig,
        sessions: BTreeMap<ClientId, SessionState>,
        retained: BTreeMap<TopicName, Arc<Message>>,
        shared_cursors: BTreeMap<SharedKey, usize>,
        placement: Placement,
    ) -> State {
        let mut state = State {
            config,
            sessions,
            retained,
            shared_cursors,
            placement,
            ..State::default()
        };
        for (client_id, session) in &state.sessions {
            assert_eq!(
                client_id, &session.client_id,
                "session filed under another id"
            );
            for (filter, subscription) in &session.subscriptions {
                state
                    .router
                    .insert(filter, client_id.clone(), *subscription);
            }
        }
        let client_ids: Vec<ClientId> = state.sessions.keys().cloned().collect();
        for client_id in &client_ids {
            state.reindex(client_id);
        }
        state.queues_over_bound = state.sessions.values().any(|session| {
            session.queue.len() > state.config.queue_max
                || session.queue_bytes() > state.config.queue_bytes_max
        });
        state
    }

    /// Whether a queue was restored over the configured bounds (see the field).
    pub fn queues_over_bound(&self) -> bool {
        self.queues_over_bound
    }

    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// Retained messages by topic (the topic a `SetRetained` filed them under).
    pub(super) fn retained_by_topic(&self) -> &BTreeMap<TopicName, Arc<Message>> {
        &self.retained
    }

    /// The round-robin position of each shared subscription. Durable, unlike the indexes:
    /// which member gets the next message depends on it.
    pub(super) fn shared_cursors(&self) -> &BTreeMap<SharedKey, usize> {
        &self.shared_cursors
    }

    /// Where the cluster's local sessions are, and the batches applied from each node.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Whether a batch of proposals is new (see [`Placement::accept_batch`]), recording it.
    pub fn accept_batch(&mut self, batch: super::placement::BatchId) -> bool {
        self.placement.accept_batch(batch)
    }

    pub fn session(&self, client_id: &str) -> Option<&SessionState> {
        self.sessions.get(client_id)
    }

    pub fn sessions(&self) -> impl Iterator<Item = &SessionState> {
        self.sessions.values()
    }

    /// Whether a retained message for `topic` fits under `retained_max` (it does when the
    /// topic has one already, which it would replace).
    pub fn retained_room(&self, topic: &TopicName) -> bool {
        self.retained.len() < self.config.retained_max || self.retained.contains_key(topic)
    }

    pub fn retained(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.retained.values()
    }

    /// Forgets every retained message (a mirror about to be rebuilt).
    pub fn clear_retained(&mut self) {
        self.retained.clear();
    }

    pub fn subscription_count(&self) -> usize {
        self.router.len()
    }

    /// Bytes of the filters of every subscription.
    pub fn subscription_bytes(&self) -> usize {
        self.router.filter_bytes()
    }

    /// The earliest time (unix ms) a will or a session expiry falls due.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The commands that wills and expiries due at `now_ms` call for.
    pub fn due(&self, now_ms: u64) -> Vec<Command> {
        self.timers
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .filter_map(|(_, client_id)| {
                let session = self.sessions.get(client_id)?;
                let client_id = client_id.clone();
                if session.expires_at_ms().is_some_and(|at| at <= now_ms) {
                    Some(Command::EndSession { client_id, now_ms })
                } else if session.will_due_ms.is_some_and(|at| at <= now_ms) {
                    Some(Command::PublishWill { client_id, now_ms })
                } else {
                    None
                }
            })
            .collect()
    }

    /// Applies one command. Deterministic: the same commands in the same order give the same
    /// state and the same reports on every replica.
    pub fn apply(&mut self, command: Command) -> Applied {
        let mut applied = Applied::default();
        match command {
            Command::OpenSession {
                client_id,
                clean_start,
                expiry_secs,
                will,
                now_ms,
                place,
            } => self.open_session(
                client_id,
                (clean_start, expiry_secs),
                will,
                (now_ms, place),
                &mut applied,
            ),
            Command::CloseSession {
                client_id,
                expiry_secs,
                publish_will,
                now_ms,
                place,
            } => {
                if self
                    .sessions
                    .get(&client_id)
                    .is_some_and(|s| s.place == place)
                {
                    self.close_session(&client_id, expiry_secs, publish_will, now_ms, &mut applied)
                }
            }
            Command::EndSession { client_id, now_ms } => {
                self.end_if_expired(&client_id, now_ms, &mut applied)
            }
            Command::PublishWill { client_id, now_ms } => {
                self.will_if_due(&client_id, now_ms, &mut applied)
            }
            Command::Subscribe {
                client_id,
                subscriptions,
                now_ms,
            } => self.subscribe(&client_id, subscriptions, now_ms, &mut applied),
            Command::Unsubscribe { client_id, filters } => {
                self.unsubscribe(&client_id, filters, &mut applied)
            }
            Command::Publish {
                message,
                origin,
                skip_shared,
            } => self.publish(&message, origin, &skip_shared, &mut applied),
            Command::SetRetained { topic, message } => self.set_retained(topic, message),
            Command::Acked { client_id, seq } => self.acked(&client_id, seq),
            Command::PubRecReceived { client_id, seq } => self.pubrec_received(&client_id, seq),
            Command::PubRelReceived {
                client_id,
                packet_id,
            } => {
                let known = self.pubrel_received(&client_id, packet_id);
                applied.existed.push(known);
            }
            Command::ReleaseShared { client_id, seqs } => {
                self.release_shared(&client_id, &seqs, &mut applied)
            }
            Command::PublishShared {
                key,
                message,
                retain,
            } => {
                self.deliver_to_group(&key, &message, retain, None, &mut applied);
            }
            Command::OpenLocal { client_id, place } => {
                self.open_local(client_id, place, &mut applied)
            }
            Command::CloseLocal { client_id, place } => {
                self.placement.close(&client_id, place);
            }
            Command::SubscribeLocal {
                client_id,
                place,
                subscriptions,
            } => self.placement.subscribe(&client_id, place, &subscriptions),
            Command::UnsubscribeLocal {
                client_id,
                place,
                filters,
            } => self.placement.unsubscribe(&client_id, place, &filters),
            Command::NodeDown {
                node,
                incarnation,
                now_ms,
            } => self.node_down(node, incarnation, now_ms, &mut applied),
        }
        applied
    }

    /// Sets or (`None`) clears the retained message of `topic`; a new topic is refused when
    /// `retained_max` topics already have one.
    fn set_retained(&mut self, topic: TopicName, message: Option<Arc<Message>>) {
        match message {
            Some(message) => {
                let room = self.retained.len() < self.config.retained_max
                    || self.retained.contains_key(&topic);
                if room {
                    self.retained.insert(topic, message);
                }
            }
            None => {
                self.retained.remove(&topic);
            }
        }
    }

    /// The queued message `seq` of `client_id` is done with (acknowledged, given up or
    /// expired): it leaves the queue.
    fn acked(&mut self, client_id: &ClientId, seq: Seq) {
        if let Some(s) = self.sessions.get_mut(client_id) {
            if let Some(i) = s.index_of(seq) {
                s.remove_queued(i);
            }
        }
    }

    /// The publisher sent PUBREL for `packet_id`: it is no longer awaiting release. Returns
    /// whether it was.
    fn pubrel_received(&mut self, client_id: &ClientId, packet_id: PacketId) -> bool {
        self.sessions
            .get_mut(client_id)
            .is_some_and(|s| s.incoming_qos2.remove(&packet_id))
    }

    /// The client sent PUBREC for the QoS 2 message `seq`: from now on it is released, not
    /// sent again.
    fn pubrec_received(&mut self, client_id: &ClientId, seq: Seq) {
        if let Some(s) = self.sessions.get_mut(client_id) {
            if let Some(i) = s.index_of(seq) {
                let queued = &mut s.queue[i];
                queued.pubrec_received = queued.qos == QoS::ExactlyOnce;
            }
        }
    }

    /// Updates the timer index of one session after a change.
    fn reindex(&mut self, client_id: &ClientId) {
        if let Some(old) = self.timer_of.remove(client_id) {
            self.timers.remove(&(old, client_id.clone()));
        }
        let deadline =
            self.sessions
                .get(client_id)
                .and_then(|s| match (s.will_due_ms, s.expires_at_ms()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                });
        if let Some(at) = deadline {
            self.timers.insert((at, client_id.clone()));
            self.timer_of.insert(client_id.clone(), at);
        }
    }

    /// Checks every invariant; panics naming the broken one. Cheap enough to call after
    /// each command in tests and in the simulator.
    pub fn validate(&self) {
        let mut subscriptions = 0;
        for (client_id, session) in &self.sessions {
            assert_eq!(
                client_id, &session.client_id,
                "session filed under another id"
            );
            session.validate();
            assert!(
                self.queues_over_bound || session.queue.len() <= self.config.queue_max,
                "queue of {client_id} over its limit"
            );
            assert!(
                self.queues_over_bound || session.queue_bytes() <= self.config.queue_bytes_max,
                "queue of {client_id} over its byte limit"
            );
            for (filter, subscription) in &session.subscriptions {
                assert_eq!(
                    self.router.get(filter, client_id),
                    Some(subscription),
                    "subscription {filter:?} of {client_id} missing from the router"
                );
            }
            subscriptions += session.subscriptions.len();
        }
        assert_eq!(
            self.router.len(),
            subscriptions,
            "router holds unknown subscriptions"
        );
        assert_eq!(
            self.timers.len(),
            self.timer_of.len(),
            "timer index out of step"
        );
        self.placement.validate();
        for (at, client_id) in &self.timers {
            assert_eq!(
                self.timer_of.get(client_id),
                Some(at),
                "timer index out of step"
            );
            assert!(
                self.sessions.contains_key(client_id),
                "timer for a gone session"
            );
        }
    }
}
