//! Routing: which sessions a message reaches (plain and shared subscriptions, across nodes for
//! the fast path), queueing it within the bounds, and shared messages moving between members.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::codec::{QoS, TopicName};
use crate::router::Match;

use crate::state::command::{delivery_qos, Applied, DirectDelivery, Qos2Origin, UnplacedShared};
use crate::state::message::{ClientId, Message};
use crate::state::placement::NodeId;
use crate::state::session::{QueuedMessage, Seq, SessionState, SharedKey, Subscription};

use super::{OverflowPolicy, State, StateConfig};

/// What [`State::spread_targets`] finds.
#[derive(Debug, Default)]
pub struct SpreadTargets {
    pub plain_nodes: BTreeSet<NodeId>,
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
    pub elsewhere: Vec<NodeId>,
}

fn shared_key<K: Ord, V>(group: &crate::router::SharedGroup<K, V>) -> SharedKey {
    SharedKey {
        group: group.group.clone(),
        filter: group.filter.clone(),
    }
}

/// One delivery decided by routing, before it is queued or sent.
pub(super) struct Target {
    pub(super) client_id: ClientId,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) subscription_ids: Vec<NonZeroU32>,
    pub(super) shared: Option<SharedKey>,
}

impl State {
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
    pub fn spread_targets(&self, message: &Message, me: NodeId) -> SpreadTargets {
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
        node: NodeId,
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

    /// A publish committed to the log. A QoS 2 publish (with its `origin`) is routed once: a
    /// second copy of its packet id, or one from a connection that no longer holds the
    /// session, is a duplicate.
    pub(super) fn publish(
        &mut self,
        message: &Arc<Message>,
        origin: Option<Qos2Origin>,
        skip_shared: &[SharedKey],
        applied: &mut Applied,
    ) {
        let first = origin.is_none_or(|origin| {
            self.sessions
                .get_mut(&origin.client_id)
                .is_none_or(|s| s.place == origin.place && s.incoming_qos2.insert(origin.packet_id))
        });
        if first {
            self.route(message, skip_shared, applied);
        } else {
            applied.duplicate = true;
        }
    }

    /// Matches a message against every subscription and queues or sends it.
    pub(super) fn route(
        &mut self,
        message: &Arc<Message>,
        skip_shared: &[SharedKey],
        applied: &mut Applied,
    ) {
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
    pub(super) fn deliver(
        &mut self,
        target: Target,
        message: &Arc<Message>,
        applied: &mut Applied,
    ) {
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
        session.next_seq = seq.next();
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
    pub(super) fn release_shared(
        &mut self,
        client_id: &ClientId,
        seqs: &[Seq],
        applied: &mut Applied,
    ) {
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
                applied.unplaced_shared.push(UnplacedShared {
                    key,
                    message,
                    retain,
                });
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
    pub(super) fn deliver_to_group(
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
