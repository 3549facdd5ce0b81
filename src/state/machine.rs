//! The state machine: all sessions, the subscription index and retained messages, changed
//! only by applying [`Command`]s in order.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::codec::{QoS, RetainHandling, TopicName};
use crate::router::{filter_matches, Match, Router};

use super::command::{delivery_qos, Applied, Command, DirectDelivery};
use super::message::{ClientId, Message};
use super::placement::{Place, Placement};
use super::session::{QueuedMessage, SessionState, SharedKey, Subscription, Will};

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

/// What [`State::spread_targets`] finds.
#[derive(Debug, Default)]
pub struct SpreadTargets {
    pub plain_nodes: BTreeSet<u64>,
    pub groups: BTreeMap<SharedKey, GroupTargets>,
}

/// The candidate members of one shared group for a message, as [`State::spread_targets`]
/// counts them.
#[derive(Debug, Default)]
pub struct GroupTargets {
    /// Whether the group has durable members (connected or not).
    pub has_durable_members: bool,
    /// QoS 0: durable members connected at the asking node.
    pub connected_here: usize,
    /// The node of each candidate member elsewhere: local members, and for QoS 0 connected
    /// durable members. A node appears once per member.
    pub elsewhere: Vec<u64>,
}

fn shared_key<K: Ord, V>(group: &crate::router::SharedGroup<K, V>) -> SharedKey {
    SharedKey {
        group: group.group.clone(),
        filter: group.filter.clone(),
    }
}

/// One delivery decided by routing, before it is queued or sent.
struct Target {
    client_id: ClientId,
    qos: QoS,
    retain: bool,
    subscription_ids: Vec<NonZeroU32>,
    shared: Option<SharedKey>,
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
            } => {
                // A local session of the client id is taken over by this durable one.
                if let Some(old) = self.placement.take(&client_id) {
                    if old != place {
                        applied.displaced.push((client_id.clone(), old));
                    }
                }
                self.open_session(
                    client_id,
                    (clean_start, expiry_secs),
                    will,
                    (now_ms, place),
                    &mut applied,
                )
            }
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
                // Only a session still expired at the command's time ends: the leader
                // proposes from its replica, which may be behind the log (the session may
                // have been resumed and closed again since, with another expiry: the
                // widened simulator found a session of expiry "never" ended by an expiry
                // proposed for its earlier connection of expiry 1 s).
                let expired = self.sessions.get(&client_id).is_some_and(|s| {
                    !s.connected && s.expires_at_ms().is_some_and(|at| at <= now_ms)
                });
                if expired {
                    self.end_session(&client_id, now_ms, &mut applied);
                }
            }
            Command::PublishWill { client_id, now_ms } => {
                let will = match self.sessions.get_mut(&client_id) {
                    // Likewise only a will whose delay has passed at the command's time.
                    Some(s) if !s.connected && s.will_due_ms.is_some_and(|at| at <= now_ms) => {
                        s.will_due_ms = None;
                        s.will.take()
                    }
                    _ => None,
                };
                if let Some(will) = will {
                    self.publish_will(will, now_ms, &mut applied);
                }
                self.reindex(&client_id);
            }
            Command::Subscribe {
                client_id,
                subscriptions,
                now_ms,
            } => self.subscribe(&client_id, subscriptions, now_ms, &mut applied),
            Command::Unsubscribe { client_id, filters } => {
                for filter in filters {
                    let removed = self.router.remove(&filter, &client_id).is_some();
                    if let Some(s) = self.sessions.get_mut(&client_id) {
                        s.subscriptions.remove(&filter);
                    }
                    applied.existed.push(removed);
                }
            }
            Command::Publish {
                message,
                origin,
                skip_shared,
            } => {
                if let Some((client_id, packet_id, place)) = origin {
                    if let Some(s) = self.sessions.get_mut(&client_id) {
                        if s.place != place || !s.incoming_qos2.insert(packet_id) {
                            applied.duplicate = true;
                            return applied;
                        }
                    }
                }
                self.route(&message, &skip_shared, &mut applied);
            }
            Command::SetRetained { topic, message } => match message {
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
            },
            Command::Acked { client_id, seq } => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    if let Some(i) = s.index_of(seq) {
                        s.remove_queued(i);
                    }
                }
            }
            Command::PubRecReceived { client_id, seq } => {
                if let Some(s) = self.sessions.get_mut(&client_id) {
                    if let Some(i) = s.index_of(seq) {
                        let queued = &mut s.queue[i];
                        queued.pubrec_received = queued.qos == QoS::ExactlyOnce;
                    }
                }
            }
            Command::PubRelReceived {
                client_id,
                packet_id,
            } => {
                let known = self
                    .sessions
                    .get_mut(&client_id)
                    .is_some_and(|s| s.incoming_qos2.remove(&packet_id));
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
                if let Some(old) = self.placement.open(&client_id, place) {
                    applied.displaced.push((client_id.clone(), old));
                }
                // A durable session connected elsewhere is taken over too (its end, which the
                // connecting node proposes with this, follows in the log).
                if let Some(session) = self.sessions.get(&client_id) {
                    if session.connected && session.place != place {
                        applied.displaced.push((client_id, session.place));
                    }
                }
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

    /// Everything a run of `node` before `incarnation` served ends: see [`Command::NodeDown`].
    fn node_down(&mut self, node: u64, incarnation: u64, now_ms: u64, applied: &mut Applied) {
        let stale = |place: Place| place.node == node && place.incarnation < incarnation;
        let closing: Vec<(ClientId, u32, Place)> = self
            .sessions
            .values()
            .filter(|s| s.connected && stale(s.place))
            .map(|s| (s.client_id.clone(), s.expiry_secs, s.place))
            .collect();
        for (client_id, expiry_secs, place) in closing {
            applied.displaced.push((client_id.clone(), place));
            self.close_session(&client_id, expiry_secs, true, now_ms, applied);
        }
        applied
            .displaced
            .extend(self.placement.clear_node(node, incarnation));
    }

    /// `OpenSession`: its flags `(clean_start, expiry_secs)` and when and where it happens.
    fn open_session(
        &mut self,
        client_id: ClientId,
        (clean_start, expiry_secs): (bool, u32),
        will: Option<Box<Will>>,
        (now_ms, place): (u64, Place),
        applied: &mut Applied,
    ) {
        if let Some(existing) = self.sessions.get_mut(&client_id) {
            let taken_over = existing.connected;
            applied.taken_over = taken_over;
            if taken_over && existing.place != place {
                applied.displaced.push((client_id.clone(), existing.place));
            }
            // §3.1.4: a session ends on takeover when the old connection had expiry 0.
            let ends = clean_start || (taken_over && existing.expiry_secs == 0);
            if ends {
                self.end_session(&client_id, now_ms, applied);
            } else {
                // The old connection closes. Its will goes out now if it has no delay;
                // otherwise the new connection cancels it ([MQTT-3.1.3-9]).
                let old_will = existing
                    .will
                    .take()
                    .filter(|w| taken_over && w.delay_secs == 0);
                applied.resumed_from = Some(existing.place);
                existing.place = place;
                existing.connected = true;
                existing.disconnected_at_ms = None;
                existing.will_due_ms = None;
                existing.expiry_secs = expiry_secs;
                existing.will = will;
                applied.session_present = true;
                if let Some(old_will) = old_will {
                    self.publish_will(old_will, now_ms, applied);
                }
                self.reindex(&client_id);
                return;
            }
        }
        let mut session = SessionState::new(client_id.clone(), expiry_secs, place);
        session.will = will;
        self.sessions.insert(client_id.clone(), session);
        self.reindex(&client_id);
    }

    fn close_session(
        &mut self,
        client_id: &ClientId,
        expiry_secs: u32,
        publish_will: bool,
        now_ms: u64,
        applied: &mut Applied,
    ) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        session.connected = false;
        session.disconnected_at_ms = Some(now_ms);
        session.expiry_secs = expiry_secs;
        if !publish_will {
            session.will = None;
        }
        // Armed again below while a will is pending: a second close (of a session already
        // disconnected) that discards the will must not leave its timer behind.
        session.will_due_ms = None;
        if expiry_secs == 0 {
            self.end_session(client_id, now_ms, applied);
            return;
        }
        match &session.will {
            Some(will) if will.delay_secs == 0 => {
                let will = session.will.take();
                if let Some(will) = will {
                    self.publish_will(will, now_ms, applied);
                }
            }
            Some(will) => {
                session.will_due_ms =
                    Some(now_ms.saturating_add(u64::from(will.delay_secs) * 1000));
            }
            None => {}
        }
        self.reindex(client_id);
    }

    /// Removes a session and its subscriptions, publishing a will still pending.
    fn end_session(&mut self, client_id: &ClientId, now_ms: u64, applied: &mut Applied) {
        let Some(session) = self.sessions.remove(client_id) else {
            return;
        };
        for filter in session.subscriptions.keys() {
            self.router.remove(filter, client_id);
        }
        self.reindex(client_id);
        applied.ended.push(client_id.clone());
        if let Some(will) = session.will {
            self.publish_will(will, now_ms, applied);
        }
    }

    fn publish_will(&mut self, will: Box<Will>, now_ms: u64, applied: &mut Applied) {
        let message = Arc::new(Message {
            received_at_ms: now_ms,
            ..will.message
        });
        if message.retain {
            let retained = (!message.payload.is_empty()).then(|| message.clone());
            let topic = message.topic.clone();
            match retained {
                Some(m) => self.retained.insert(topic, m),
                None => self.retained.remove(&topic),
            };
        }
        self.route(&message, &[], applied);
        applied.wills.push(message);
    }

    fn subscribe(
        &mut self,
        client_id: &ClientId,
        subscriptions: Vec<(crate::codec::TopicFilter, Subscription)>,
        now_ms: u64,
        applied: &mut Applied,
    ) {
        let retained = self.add_subscriptions(client_id, subscriptions, applied);
        self.send_retained(client_id, &retained, now_ms, applied);
    }

    /// Subscribes as `Command::Subscribe` does, but leaves the retained messages the
    /// subscriptions call for to [`State::send_retained`]: a node's local tier sends them
    /// once the subscription is committed, so they are the ones the cluster has then.
    /// Returns those subscriptions, with what applying did.
    pub fn subscribe_deferring_retained(
        &mut self,
        client_id: &ClientId,
        subscriptions: Vec<(crate::codec::TopicFilter, Subscription)>,
    ) -> (Vec<(crate::codec::TopicFilter, Subscription)>, Applied) {
        let mut applied = Applied::default();
        let retained = self.add_subscriptions(client_id, subscriptions, &mut applied);
        (retained, applied)
    }

    /// Adds subscriptions; returns those whose Retain Handling asks for retained messages.
    fn add_subscriptions(
        &mut self,
        client_id: &ClientId,
        subscriptions: Vec<(crate::codec::TopicFilter, Subscription)>,
        applied: &mut Applied,
    ) -> Vec<(crate::codec::TopicFilter, Subscription)> {
        let mut retained = Vec::new();
        if !self.sessions.contains_key(client_id) {
            return retained;
        }
        for (filter, subscription) in subscriptions {
            let existed = self
                .router
                .insert(&filter, client_id.clone(), subscription)
                .is_some();
            applied.existed.push(existed);
            let send_retained = filter.shared().is_none()
                && match subscription.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendAtNewSubscribe => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if let Some(s) = self.sessions.get_mut(client_id) {
                s.subscriptions.insert(filter.clone(), subscription);
            }
            if send_retained {
                retained.push((filter, subscription));
            }
        }
        retained
    }

    /// Sends `client_id` the retained messages matching `subscriptions` (with RETAIN set,
    /// [MQTT-3.3.1-9]), if it still has a session.
    pub fn send_retained(
        &mut self,
        client_id: &ClientId,
        subscriptions: &[(crate::codec::TopicFilter, Subscription)],
        now_ms: u64,
        applied: &mut Applied,
    ) {
        if !self.sessions.contains_key(client_id) {
            return;
        }
        for (filter, subscription) in subscriptions {
            let matching: Vec<Arc<Message>> = self
                .retained
                .iter()
                .filter(|(topic, m)| {
                    filter_matches(filter.matching_filter(), topic.as_str())
                        && !m.is_expired(now_ms)
                })
                .map(|(_, m)| m.clone())
                .collect();
            for message in matching {
                let target = Target {
                    client_id: client_id.clone(),
                    qos: delivery_qos(message.qos, subscription.options.qos),
                    retain: true,
                    subscription_ids: subscription.identifier.into_iter().collect(),
                    shared: None,
                };
                self.deliver(target, &message, applied);
            }
        }
    }

    /// Whether the shared group `key` has any member here.
    pub fn has_shared_group(&self, key: &SharedKey) -> bool {
        self.router
            .shared_group(&key.group, &key.filter)
            .is_some_and(|group| !group.members.is_empty())
    }

    /// The members of the shared group `key` here.
    pub fn shared_group_size(&self, key: &SharedKey) -> usize {
        self.router
            .shared_group(&key.group, &key.filter)
            .map_or(0, |group| group.members.len())
    }

    /// Where, besides node `me`, a message must go off the log (the fast path of a cluster):
    /// the nodes serving local sessions it matches, and for QoS 0 the nodes where matching
    /// durable sessions are connected; and for each matching shared group, its candidate
    /// members by node.
    pub fn spread_targets(&self, message: &Message, me: u64) -> SpreadTargets {
        let mut targets = SpreadTargets::default();
        let topic = message.topic.as_str();
        let placement = &self.placement;
        let node_of = |client_id: &ClientId| placement.local_place(client_id).map(|p| p.node);
        placement.routes().matches(topic, |m| match m {
            Match::Plain(client_id, _) => {
                if let Some(node) = node_of(client_id).filter(|n| *n != me) {
                    targets.plain_nodes.insert(node);
                }
            }
            Match::Shared(group) => {
                let entry = targets.groups.entry(shared_key(group)).or_default();
                entry.elsewhere.extend(
                    group
                        .members
                        .keys()
                        .filter_map(node_of)
                        .filter(|n| *n != me),
                );
            }
        });
        let qos0 = message.qos == QoS::AtMostOnce;
        let sessions = &self.sessions;
        let connected_at = |client_id: &ClientId| {
            sessions
                .get(client_id)
                .filter(|s| s.connected)
                .map(|s| s.place.node)
        };
        self.router.matches(topic, |m| match m {
            Match::Plain(client_id, _) => {
                if let Some(node) = connected_at(client_id).filter(|n| qos0 && *n != me) {
                    targets.plain_nodes.insert(node);
                }
            }
            Match::Shared(group) => {
                let entry = targets.groups.entry(shared_key(group)).or_default();
                entry.has_durable_members |= !group.members.is_empty();
                if !qos0 {
                    return;
                }
                for node in group.members.keys().filter_map(connected_at) {
                    if node == me {
                        entry.connected_here += 1;
                    } else {
                        entry.elsewhere.push(node);
                    }
                }
            }
        });
        targets
    }

    /// The shared groups with members here whose filter matches the topic.
    pub fn shared_groups_matching(&self, topic: &TopicName) -> Vec<SharedKey> {
        let mut keys = Vec::new();
        self.router.matches(topic.as_str(), |m| {
            if let Match::Shared(group) = m {
                if !group.members.is_empty() {
                    keys.push(SharedKey {
                        group: group.group.clone(),
                        filter: group.filter.clone(),
                    });
                }
            }
        });
        keys
    }

    /// Whether any subscription (plain or shared) matches the topic.
    pub fn matches_any(&self, topic: &TopicName) -> bool {
        let mut any = false;
        self.router.matches(topic.as_str(), |_| any = true);
        any
    }

    /// The QoS 0 deliveries a QoS 0 message gets here, without changing anything: the
    /// connected sessions it matches (one member per shared group, chosen by `cursor`).
    /// For messages that do not go through the log (docs/design.md §2, fast path).
    pub fn direct_deliveries(
        &self,
        message: &Arc<Message>,
        cursor: usize,
        skip_shared: &[SharedKey],
        node: u64,
    ) -> Vec<DirectDelivery> {
        debug_assert_eq!(message.qos, QoS::AtMostOnce);
        let here = |client_id: &ClientId| {
            self.sessions
                .get(client_id)
                .is_some_and(|s| s.connected && s.place.node == node)
        };
        self.targets_where(message, |_| cursor, skip_shared, here)
            .into_iter()
            .filter(|(t, _)| here(&t.client_id))
            .map(|(t, _)| DirectDelivery {
                client_id: t.client_id,
                message: message.clone(),
                retain: t.retain,
                subscription_ids: t.subscription_ids,
            })
            .collect()
    }

    /// Matches a message against every subscription and queues or sends it.
    fn route(&mut self, message: &Arc<Message>, skip_shared: &[SharedKey], applied: &mut Applied) {
        let cursors = &self.shared_cursors;
        let targets = self.targets(
            message,
            |key| cursors.get(key).copied().unwrap_or(0),
            skip_shared,
        );
        for (target, picked) in targets {
            if let Some(key) = &target.shared {
                self.shared_cursors.insert(key.clone(), picked + 1);
                applied.shared_served.push(key.clone());
            }
            self.deliver(target, message, applied);
        }
    }

    /// Who a message goes to: one target per matching session (overlapping subscriptions
    /// merged) and one member per shared group, the member picked from `cursor(group)` on
    /// (returned beside shared targets, for round robin).
    fn targets(
        &self,
        message: &Arc<Message>,
        cursor: impl FnMut(&SharedKey) -> usize,
        skip_shared: &[SharedKey],
    ) -> Vec<(Target, usize)> {
        self.targets_where(message, cursor, skip_shared, |_| true)
    }

    /// [`State::targets`] with shared-group members limited to those `eligible` (when any
    /// member is).
    fn targets_where(
        &self,
        message: &Arc<Message>,
        mut cursor: impl FnMut(&SharedKey) -> usize,
        skip_shared: &[SharedKey],
        eligible: impl Fn(&ClientId) -> bool,
    ) -> Vec<(Target, usize)> {
        let mut plain: BTreeMap<ClientId, Target> = BTreeMap::new();
        let mut shared: Vec<(Target, usize)> = Vec::new();
        let sessions = &self.sessions;
        let config = &self.config;
        self.router.matches(message.topic.as_str(), |m| match m {
            Match::Plain(client_id, subscription) => {
                let options = &subscription.options;
                if options.no_local && message.publisher.as_ref() == Some(client_id) {
                    return;
                }
                let target = plain.entry(client_id.clone()).or_insert_with(|| Target {
                    client_id: client_id.clone(),
                    qos: QoS::AtMostOnce,
                    retain: false,
                    subscription_ids: Vec::new(),
                    shared: None,
                });
                // Overlapping subscriptions: one copy at the highest QoS, with every
                // identifier (§3.3.4).
                target.qos = target.qos.max(delivery_qos(message.qos, options.qos));
                target.retain |= options.retain_as_published && message.retain;
                target.subscription_ids.extend(subscription.identifier);
            }
            Match::Shared(group) => {
                let key = SharedKey {
                    group: group.group.clone(),
                    filter: group.filter.clone(),
                };
                if skip_shared.contains(&key) {
                    return;
                }
                let mut members: Vec<(&ClientId, &Subscription)> =
                    group.members.iter().filter(|(c, _)| eligible(c)).collect();
                if members.is_empty() {
                    members = group.members.iter().collect();
                }
                let pick = pick_member(&members, cursor(&key), message, sessions, config);
                let (client_id, subscription) = members[pick];
                let target = Target {
                    client_id: client_id.clone(),
                    qos: delivery_qos(message.qos, subscription.options.qos),
                    retain: subscription.options.retain_as_published && message.retain,
                    subscription_ids: subscription.identifier.into_iter().collect(),
                    shared: Some(key),
                };
                shared.push((target, pick));
            }
        });
        plain.into_values().map(|t| (t, 0)).chain(shared).collect()
    }

    /// Queues a QoS 1/2 delivery, or reports a QoS 0 one to a connected session.
    fn deliver(&mut self, target: Target, message: &Arc<Message>, applied: &mut Applied) {
        let Some(session) = self.sessions.get_mut(&target.client_id) else {
            return;
        };
        if target.qos == QoS::AtMostOnce {
            // QoS 0 is not queued for a disconnected session (MQTT 5 §3.1.2.4 allows either).
            if session.connected {
                applied.matched += 1;
                applied.direct.push(DirectDelivery {
                    client_id: target.client_id,
                    message: message.clone(),
                    retain: target.retain,
                    subscription_ids: target.subscription_ids,
                });
            }
            return;
        }
        let room = make_room(session, message.size_bytes(), &self.config);
        applied.dropped_queue_full += room.dropped;
        applied.dropped_queue_bytes += room.dropped_for_bytes;
        if !room.fits {
            return;
        }
        let seq = session.next_seq;
        session.next_seq += 1;
        session.push_queued(QueuedMessage {
            seq,
            message: message.clone(),
            qos: target.qos,
            retain: target.retain,
            subscription_ids: target.subscription_ids,
            shared: target.shared,
            pubrec_received: false,
        });
        applied.matched += 1;
        if applied.queued_for.last() != Some(&target.client_id) {
            applied.queued_for.push(target.client_id);
        }
    }

    /// Moves shared-subscription messages of a session to other members of their groups.
    fn release_shared(&mut self, client_id: &ClientId, seqs: &[u64], applied: &mut Applied) {
        for &seq in seqs {
            let Some(session) = self.sessions.get(client_id) else {
                return;
            };
            let Some(queued) = session.queued(seq) else {
                continue;
            };
            // A QoS 2 message whose PUBREC is committed certainly reached this client: it is
            // completed with it, never given to another member ([MQTT-4.8.2-4]), whatever a
            // node with an older view of the queue asked.
            if queued.pubrec_received && !crate::planted::planted().release_sent_shared {
                continue;
            }
            let Some(key) = queued.shared.clone() else {
                continue;
            };
            let (message, retain) = (queued.message.clone(), queued.retain);
            if !self.deliver_to_group(&key, &message, retain, Some(client_id), applied) {
                applied.unplaced_shared.push((key, message, retain));
                continue;
            }
            if let Some(s) = self.sessions.get_mut(client_id) {
                if let Some(i) = s.index_of(seq) {
                    s.remove_queued(i);
                }
            }
        }
    }

    /// Gives `message` to one member of the shared group `key` other than `except`, in turn;
    /// false when the group has no such member here (or, for QoS 1 and 2, none subscribed at
    /// QoS 1 or 2).
    fn deliver_to_group(
        &mut self,
        key: &SharedKey,
        message: &Arc<Message>,
        retain: bool,
        except: Option<&ClientId>,
        applied: &mut Applied,
    ) -> bool {
        let Some(group) = self.router.shared_group(&key.group, &key.filter) else {
            return false;
        };
        let others: Vec<(&ClientId, &Subscription)> = group
            .members
            .iter()
            .filter(|(c, _)| Some(*c) != except)
            .collect();
        if others.is_empty() {
            return false;
        }
        let cursor = self.shared_cursors.get(key).copied().unwrap_or(0);
        let pick = pick_member(&others, cursor, message, &self.sessions, &self.config);
        let (other, subscription) = others[pick];
        if message.qos != QoS::AtMostOnce && subscription.options.qos == QoS::AtMostOnce {
            // Only members subscribed at QoS 0 are left: the message stays where it is
            // rather than go on at most once.
            return false;
        }
        let target = Target {
            client_id: other.clone(),
            qos: delivery_qos(message.qos, subscription.options.qos),
            retain,
            subscription_ids: subscription.identifier.into_iter().collect(),
            shared: Some(key.clone()),
        };
        self.shared_cursors.insert(key.clone(), cursor + 1);
        self.deliver(target, message, applied);
        true
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

/// Picks a shared-subscription member for `message`, round-robin from `cursor`. QoS 0 goes
/// to a connected member with room in its queue (under both of its bounds). QoS 1 and 2 go
/// to a member subscribed at QoS 1 or 2 when the group has one, connected if possible, else
/// one that keeps the message until it reconnects: a member subscribed at QoS 0 would get it
/// at most once (not at all while disconnected, or on a dead link), which is not what the
/// publisher asked for while another member can take it at least once. Failing all that, the
/// member at the cursor.
fn pick_member(
    members: &[(&ClientId, &Subscription)],
    cursor: usize,
    message: &Message,
    sessions: &BTreeMap<ClientId, SessionState>,
    config: &StateConfig,
) -> usize {
    let qos = message.qos;
    let size_bytes = message.size_bytes();
    let n = members.len();
    let first = |fit: &dyn Fn(&ClientId, &Subscription) -> bool| {
        (0..n)
            .map(|i| (cursor + i) % n)
            .find(|&i| fit(members[i].0, members[i].1))
    };
    let room = |c: &ClientId| {
        sessions.get(c).is_some_and(|s| {
            s.queue.len() < config.queue_max
                && s.queue_bytes() + size_bytes <= config.queue_bytes_max
        })
    };
    let connected = |c: &ClientId| sessions.get(c).is_some_and(|s| s.connected) && room(c);
    let at_least_once = |s: &Subscription| s.options.qos != QoS::AtMostOnce;
    let pick = if qos == QoS::AtMostOnce {
        first(&|c, _| connected(c))
    } else {
        first(&|c, s| at_least_once(s) && connected(c))
            .or_else(|| first(&|c, s| at_least_once(s) && room(c)))
            .or_else(|| first(&|c, _| connected(c)))
    };
    pick.unwrap_or(cursor % n)
}

/// What [`make_room`] did for one message.
#[derive(Debug, PartialEq, Eq)]
struct Room {
    /// Whether the message may now be queued under both bounds.
    fits: bool,
    /// Messages dropped: queued ones evicted, or the new one when it does not fit.
    dropped: usize,
    /// Of those, the ones only `queue_bytes_max` called for (the rest `queue_max` did).
    dropped_for_bytes: usize,
}

/// Makes room in `session`'s queue for a message of `size_bytes` under `queue_max` and
/// `queue_bytes_max`, as the overflow policy says. Costs nothing while both bounds have room;
/// `DropOldest` then looks at the oldest messages only until it has found enough to evict.
fn make_room(session: &mut SessionState, size_bytes: usize, config: &StateConfig) -> Room {
    let count_over = session.queue.len() >= config.queue_max;
    let bytes_over = (session.queue_bytes() + size_bytes).saturating_sub(config.queue_bytes_max);
    if !count_over && bytes_over == 0 {
        return Room {
            fits: true,
            dropped: 0,
            dropped_for_bytes: 0,
        };
    }
    // The new message goes for the count when that bound is full, unless no room could ever
    // be made for its bytes.
    let refused = Room {
        fits: false,
        dropped: 1,
        dropped_for_bytes: usize::from(!count_over || size_bytes > config.queue_bytes_max),
    };
    if config.overflow == OverflowPolicy::DropNew || size_bytes > config.queue_bytes_max {
        return refused;
    }
    // The oldest messages first, skipping QoS 2 messages whose PUBREC arrived: those were
    // delivered, and dropping them would break the flow the client is in.
    let mut victims = Vec::new();
    let mut freed = 0;
    for (i, queued) in session.queue.iter().enumerate() {
        if victims.len() >= usize::from(count_over) && freed >= bytes_over {
            break;
        }
        if !queued.pubrec_received {
            victims.push(i);
            freed += queued.message.size_bytes();
        }
    }
    if victims.len() < usize::from(count_over) || freed < bytes_over {
        return refused;
    }
    // Highest index first, so the indexes still to remove stay valid.
    for &i in victims.iter().rev() {
        session.remove_queued(i);
    }
    Room {
        fits: true,
        dropped: victims.len(),
        dropped_for_bytes: victims.len() - usize::from(count_over),
    }
}
