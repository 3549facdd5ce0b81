//! Publishes: from a client (routed through the log when a durable session may want them,
//! off it to this node's local sessions and, by forwarding, to other nodes'), forwarded from
//! another node, on behalf of the node (`$SYS`), and wills; QoS 0 straight to connected
//! durable sessions; the publisher's side of QoS 2 (PUBREL).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::codec::{PacketId, QoS, TopicName};
use crate::state::{ClientId, Command, Message, NodeId, Qos2Origin, SharedKey};

use super::core::Broker;
use super::freshness::FreshWait;
use super::proposal::{Completion, ConnId, Ticket};
use super::propose::Caller;
use super::types::{Delivery, Effect, PublishError, Tier};

/// The connection a publish came from, the request its acknowledgement answers, and the
/// publisher's session.
struct Publisher {
    conn: ConnId,
    ticket: Ticket,
    client_id: ClientId,
}

/// What [`Broker::route_fast`] did.
pub(super) struct FastRoute {
    pub(super) matched: usize,
    dropped_queue_full: usize,
    skip_shared: Vec<SharedKey>,
}

/// Where the fast path sends a publish: the other nodes, each with the shared groups it
/// serves, and the groups matching the topic that this node does not serve.
#[derive(Debug, Default)]
struct Spread {
    forward: BTreeMap<NodeId, Vec<SharedKey>>,
    not_here: Vec<SharedKey>,
}

impl Broker {
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
        let mut commands = Vec::new();
        let retained_update = retain_update && message.retain;
        if retained_update {
            // This node's local sessions see the new retained message from the moment it is
            // received, as they got it live: one subscribing before the update commits gets
            // it as retained rather than not at all. The commit sets it again (in log order).
            self.local.apply(set_retained(&message));
            commands.push(set_retained(&message));
        }
        let publisher = Publisher {
            conn,
            ticket,
            client_id,
        };
        match (qos2_packet_id, tier) {
            (Some(packet_id), Tier::Durable) => {
                self.publish_qos2_durable(publisher, packet_id, message, commands)
            }
            (packet_id, _) => {
                // Sessions of this node that end with their connection get it now. A QoS 2
                // publisher of this tier has its packet id remembered here too.
                let local_origin = packet_id.map(|packet_id| Qos2Origin {
                    client_id: publisher.client_id.clone(),
                    packet_id,
                    place: self.place,
                });
                self.publish_off_log(publisher, message, local_origin, commands, retained_update)
            }
        }
        Ok(())
    }

    /// A QoS 2 publish of a durable session: its packet id is remembered in the log, so the
    /// sessions off the log get it only once that commits. Sent to them before, it would come
    /// again if this node crashed first: the publisher resends it, and the broker no longer
    /// knows it had it.
    fn publish_qos2_durable(
        &mut self,
        publisher: Publisher,
        packet_id: PacketId,
        message: Arc<Message>,
        mut commands: Vec<Command>,
    ) {
        let Publisher {
            conn,
            ticket,
            client_id,
        } = publisher;
        self.proposed_qos2.insert((client_id.clone(), packet_id));
        commands.push(Command::Publish {
            message: message.clone(),
            origin: Some(Qos2Origin {
                client_id: client_id.clone(),
                packet_id,
                place: self.place,
            }),
            skip_shared: Vec::new(),
        });
        if crate::planted::planted().ack_before_commit {
            self.reply(conn, ticket, Completion::default());
            self.route_fast(&message, None);
            self.run(Tier::Durable, commands, Caller::NOBODY);
            return;
        }
        self.deferred.insert((conn, ticket), message);
        let caller = Caller::session(&client_id).replying(conn, ticket);
        self.run(Tier::Durable, commands, caller);
    }

    /// Any other publish: routed off the log to the sessions there at once, and through the
    /// log (`commands` first, the retained update if any) when a durable session may want it;
    /// else acknowledged once the replica is known fresh.
    fn publish_off_log(
        &mut self,
        publisher: Publisher,
        message: Arc<Message>,
        local_origin: Option<Qos2Origin>,
        mut commands: Vec<Command>,
        retained_update: bool,
    ) {
        let Publisher {
            conn,
            ticket,
            client_id,
        } = publisher;
        let fast = self.route_fast(&message, local_origin);
        let (matched, dropped_queue_full, skip_shared) =
            (fast.matched, fast.dropped_queue_full, fast.skip_shared);
        if message.qos == QoS::AtMostOnce {
            // QoS 0 is never queued: connected durable sessions get it straight from the
            // replica, with no log write, and so do those whose subscription is on its way
            // to the log.
            let reached = self.deliver_direct_durable(&message, &skip_shared, None);
            self.deliver_to_pending(&message, &reached);
            if !commands.is_empty() {
                self.run(Tier::Durable, commands, Caller::NOBODY);
            }
            return;
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
                self.run(Tier::Durable, commands, Caller::NOBODY);
                return;
            }
            let caller = Caller::session(&client_id).replying_after(conn, ticket, local_matched);
            self.run(Tier::Durable, commands, caller);
            return;
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
            self.judge_fresh(wait);
        } else {
            self.fresh.wait(wait);
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
        self.run(
            tier,
            vec![command],
            Caller::session(&client_id).replying(conn, ticket),
        );
    }

    /// Routes a publish to the sessions off the log: this node's local sessions and, through
    /// the forwarder, other nodes'. Returns what the local tier did and the shared groups the
    /// durable tier must skip (served here or by another node).
    pub(super) fn route_fast(
        &mut self,
        message: &Arc<Message>,
        local_origin: Option<Qos2Origin>,
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

    pub(super) fn forward(
        &mut self,
        message: &Arc<Message>,
        forward: BTreeMap<NodeId, Vec<SharedKey>>,
    ) {
        for (node, groups) in forward {
            self.effects.push(Effect::Forward {
                node,
                message: message.clone(),
                groups,
            });
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

    /// Sends a QoS 0 delivery to the connection of its session, if it is served here (and,
    /// with `connected_before`, connected by then).
    pub(super) fn deliver_direct(
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

    /// A will published in one tier reaches the sessions of the other.
    pub(super) fn route_will(&mut self, from: Tier, will: Arc<Message>) {
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
                    self.run(Tier::Durable, commands, Caller::NOBODY);
                }
            }
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
