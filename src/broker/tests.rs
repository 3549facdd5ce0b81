//! Behaviour of the broker core: windows, acknowledgements, takeover, resume, shared release.

use bytes::Bytes;

use super::*;
use crate::broker::{Completion, SessionFence, Ticket};
use crate::codec::{
    MqttString, PacketId, PublishProperties, QoS, ReasonCode, SubscriptionOptions, TopicFilter,
    TopicName,
};
use crate::state::{Command, Incarnation, Message, NodeId, Place, Subscription};

fn request(
    client: &str,
    clean_start: bool,
    expiry_secs: u32,
    receive_maximum: u16,
) -> ConnectRequest {
    ConnectRequest {
        client_id: MqttString::new(client).unwrap(),
        clean_start,
        expiry_secs,
        will: None,
        receive_maximum,
    }
}

fn message(topic: &str, qos: QoS, publisher: &str) -> Message {
    Message {
        topic: TopicName::new(topic).unwrap(),
        payload: Bytes::from_static(b"x"),
        qos,
        retain: false,
        properties: PublishProperties::default(),
        publisher: Some(MqttString::new(publisher).unwrap()),
        received_at_ms: 0,
    }
}

/// A broker whose proposals commit at once, with the effects it produced kept aside.
struct Harness {
    b: Broker,
    effects: Vec<Effect>,
    ticket: Ticket,
}

impl Harness {
    fn new(config: BrokerConfig) -> Harness {
        Harness {
            b: Broker::new(config),
            effects: Vec::new(),
            ticket: Ticket(0),
        }
    }

    /// Commits what the broker proposed and collects its effects.
    fn settle(&mut self) {
        self.b.commit_pending();
        self.effects.extend(self.b.take_effects());
        self.b.validate();
    }

    fn next_ticket(&mut self) -> Ticket {
        self.ticket = self.ticket.next();
        self.ticket
    }

    /// The completion of `ticket`, which must have been given.
    fn completion(&mut self, ticket: Ticket) -> Completion {
        self.settle();
        let i = self
            .effects
            .iter()
            .position(|e| matches!(e, Effect::Reply { ticket: t, .. } if *t == ticket))
            .unwrap_or_else(|| panic!("no reply to ticket {ticket}: {:?}", self.effects));
        match self.effects.remove(i) {
            Effect::Reply { completion, .. } => completion,
            _ => unreachable!(),
        }
    }

    /// Connects; returns Session Present.
    fn connect(&mut self, conn: ConnId, request: ConnectRequest, now_ms: u64) -> bool {
        let ticket = self.next_ticket();
        self.b.connect(conn, ticket, request, now_ms);
        self.completion(ticket).session_present
    }

    fn publish(
        &mut self,
        conn: ConnId,
        message: Message,
        qos2_packet_id: Option<PacketId>,
    ) -> Result<Completion, PublishError> {
        let ticket = self.next_ticket();
        let qos = message.qos;
        self.b
            .publish(conn, ticket, message, qos2_packet_id, false)?;
        Ok(if qos == QoS::AtMostOnce {
            self.settle();
            Completion::default()
        } else {
            self.completion(ticket)
        })
    }

    fn pubrel(&mut self, conn: ConnId, packet_id: PacketId) -> bool {
        let ticket = self.next_ticket();
        self.b.pubrel(conn, ticket, packet_id);
        self.completion(ticket).existed == [true]
    }

    fn puback(&mut self, conn: ConnId, packet_id: PacketId) -> bool {
        let known = self.b.puback(conn, packet_id, 0);
        self.settle();
        known
    }

    fn pubcomp(&mut self, conn: ConnId, packet_id: PacketId, now_ms: u64) -> bool {
        let known = self.b.pubcomp(conn, packet_id, now_ms);
        self.settle();
        known
    }

    fn pubrec(&mut self, conn: ConnId, packet_id: PacketId) -> PubRecOutcome {
        let outcome = self.b.pubrec(conn, packet_id);
        self.settle();
        outcome
    }

    fn disconnect(&mut self, conn: ConnId, expiry_secs: u32, now_ms: u64) {
        self.b.disconnect(conn, expiry_secs, false, now_ms);
        self.settle();
    }

    fn subscribe(&mut self, conn: ConnId, filter: &str, qos: QoS) {
        let ticket = self.next_ticket();
        self.b.subscribe(
            conn,
            ticket,
            vec![(
                TopicFilter::new(filter).unwrap(),
                Subscription {
                    options: SubscriptionOptions::new(qos),
                    identifier: None,
                },
            )],
            0,
        );
        self.completion(ticket);
    }

    /// (conn, packet id or 0, dup) of each PUBLISH effect; PUBREL deliveries as packet id +
    /// 100000. Takes every effect gathered so far.
    fn deliveries(&mut self) -> Vec<(ConnId, u32, bool)> {
        self.settle();
        std::mem::take(&mut self.effects)
            .into_iter()
            .filter_map(|effect| match effect {
                Effect::Deliver {
                    conn,
                    delivery: Delivery::Publish { packet_id, dup, .. },
                } => Some((conn, packet_id.map_or(0, |p| u32::from(p.get())), dup)),
                Effect::Deliver {
                    conn,
                    delivery: Delivery::Release(packet_id),
                } => Some((conn, 100_000 + u32::from(packet_id.get()), false)),
                _ => None,
            })
            .collect()
    }
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

#[test]
fn window_limits_messages_in_flight_until_acknowledged() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", true, 0, 2), 0);
    b.subscribe(ConnId(2), "t", QoS::AtLeastOnce);
    for _ in 0..3 {
        let outcome = b
            .publish(ConnId(1), message("t", QoS::AtLeastOnce, "pub"), None)
            .unwrap();
        assert_eq!(outcome.matched, 1);
    }
    let sent = b.deliveries();
    assert_eq!(sent.len(), 2, "window of 2: {sent:?}");
    let first = PacketId::new(sent[0].1 as u16).unwrap();
    assert!(b.puback(ConnId(2), first));
    assert!(
        !b.puback(ConnId(2), first),
        "a second PUBACK for the same id is unknown"
    );
    assert_eq!(b.deliveries().len(), 1, "the ack opened the window");
}

#[test]
fn qos0_is_delivered_without_a_packet_id() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", true, 0, 10), 0);
    b.subscribe(ConnId(2), "t", QoS::ExactlyOnce);
    b.publish(ConnId(1), message("t", QoS::AtMostOnce, "pub"), None)
        .unwrap();
    assert_eq!(b.deliveries(), [(ConnId(2), 0, false)]);
}

#[test]
fn takeover_disconnects_the_old_connection_and_resumes_with_dup() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", false, 600, 10), 0);
    b.subscribe(ConnId(2), "t", QoS::AtLeastOnce);
    b.publish(ConnId(1), message("t", QoS::AtLeastOnce, "pub"), None)
        .unwrap();
    let first = b.deliveries();
    assert_eq!(first.len(), 1);
    assert!(!first[0].2);

    assert!(
        b.connect(ConnId(3), request("sub", false, 600, 10), 0),
        "session present"
    );
    b.settle();
    let effects = std::mem::take(&mut b.effects);
    assert!(effects.contains(&Effect::Disconnect {
        conn: ConnId(2),
        reason: ReasonCode::SessionTakenOver
    }));
    let resent: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver {
                conn,
                delivery: Delivery::Publish { packet_id, dup, .. },
            } => Some((*conn, packet_id.unwrap().get(), *dup)),
            _ => None,
        })
        .collect();
    assert_eq!(
        resent,
        [(ConnId(3), first[0].1 as u16, true)],
        "same packet id, DUP set"
    );
    // The old connection's late end changes nothing.
    b.disconnect(ConnId(2), 0, 5);
    assert!(b.b.session("sub").unwrap().connected);
}

#[test]
fn qos2_after_pubrec_resumes_with_pubrel_not_publish() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", false, 600, 10), 0);
    b.subscribe(ConnId(2), "t", QoS::ExactlyOnce);
    b.publish(
        ConnId(1),
        message("t", QoS::ExactlyOnce, "pub"),
        Some(pid(9)),
    )
    .unwrap();
    let sent = b.deliveries();
    let id = pid(sent[0].1 as u16);
    assert!(
        !b.pubcomp(ConnId(2), id, 0),
        "PUBCOMP before PUBREC is ignored"
    );
    assert_eq!(b.pubrec(ConnId(2), id), PubRecOutcome::Committing);
    assert_eq!(
        b.deliveries(),
        [(ConnId(2), 100_000 + u32::from(id.get()), false)],
        "PUBREL once the PUBREC is committed"
    );
    b.disconnect(ConnId(2), 600, 1);
    b.connect(ConnId(3), request("sub", false, 600, 10), 2);
    assert_eq!(
        b.deliveries(),
        [(ConnId(3), 100_000 + u32::from(id.get()), false)]
    );
    assert!(b.pubcomp(ConnId(3), id, 3));
    assert!(b.b.session("sub").unwrap().queue.is_empty());
}

#[test]
fn qos2_publisher_is_held_to_the_receive_maximum() {
    let mut b = Harness::new(BrokerConfig {
        receive_maximum: 2,
        ..BrokerConfig::default()
    });
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    for n in 1..=2 {
        b.publish(
            ConnId(1),
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(n)),
        )
        .unwrap();
    }
    // A resend of a known id is fine; a third id is not.
    assert!(b
        .publish(
            ConnId(1),
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(1))
        )
        .is_ok());
    assert_eq!(
        b.publish(
            ConnId(1),
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(3))
        ),
        Err(PublishError::ReceiveMaximumExceeded)
    );
    assert!(b.pubrel(ConnId(1), pid(1)));
    assert!(!b.pubrel(ConnId(1), pid(1)));
    assert!(b
        .publish(
            ConnId(1),
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(3))
        )
        .is_ok());
}

#[test]
fn unacknowledged_shared_message_goes_to_another_member_when_its_member_leaves() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("m1", false, 600, 10), 0);
    b.connect(ConnId(3), request("m2", false, 600, 10), 0);
    b.subscribe(ConnId(2), "$share/g/t", QoS::AtLeastOnce);
    b.subscribe(ConnId(3), "$share/g/t", QoS::AtLeastOnce);
    b.publish(ConnId(1), message("t", QoS::AtLeastOnce, "pub"), None)
        .unwrap();
    let sent = b.deliveries();
    assert_eq!(sent.len(), 1);
    let (first_member, other) = if sent[0].0 == ConnId(2) {
        (ConnId(2), ConnId(3))
    } else {
        (ConnId(3), ConnId(2))
    };
    b.disconnect(first_member, 600, 1);
    let resent = b.deliveries();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].0, other);
}

#[test]
fn expired_messages_are_dropped_not_sent() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", false, 600, 10), 0);
    b.subscribe(ConnId(2), "t", QoS::AtLeastOnce);
    b.disconnect(ConnId(2), 600, 0);
    let mut m = message("t", QoS::AtLeastOnce, "pub");
    m.properties.message_expiry_interval = Some(1);
    b.publish(ConnId(1), m, None).unwrap();
    b.connect(ConnId(3), request("sub", false, 600, 10), 5_000);
    assert!(b.deliveries().is_empty());
    assert!(b.b.session("sub").unwrap().queue.is_empty());
}

#[test]
fn messages_dropped_for_a_full_queue_are_counted() {
    let mut config = BrokerConfig::default();
    config.state.queue_max = 2;
    let mut b = Harness::new(config);
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", false, 60, 10), 0);
    b.subscribe(ConnId(2), "t", QoS::AtLeastOnce);
    b.disconnect(ConnId(2), 60, 0);
    for _ in 0..5 {
        b.publish(ConnId(1), message("t", QoS::AtLeastOnce, "pub"), None)
            .unwrap();
    }
    assert_eq!(b.b.session("sub").unwrap().queue.len(), 2);
    assert_eq!(b.b.stats().dropped_queue_full, 3);
}

/// A QoS 1 RETAIN publish, received but not yet committed.
fn publish_retained_uncommitted(b: &mut Harness, conn: ConnId) -> Ticket {
    let mut m = message("r", QoS::AtLeastOnce, "pub");
    m.retain = true;
    let ticket = b.next_ticket();
    b.b.publish(conn, ticket, m, None, true).unwrap();
    ticket
}

#[test]
fn local_subscriber_between_receipt_and_commit_gets_the_retained_copy() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", true, 0, 10), 0);
    let ticket = publish_retained_uncommitted(&mut b, ConnId(1));
    // The subscription takes effect at once (a local session): nothing is committed yet.
    b.b.subscribe(
        ConnId(2),
        Ticket(99),
        vec![(
            TopicFilter::new("r").unwrap(),
            Subscription {
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
                identifier: None,
            },
        )],
        0,
    );
    b.completion(ticket);
    let sent: Vec<_> = b
        .deliveries()
        .into_iter()
        .filter(|d| d.0 == ConnId(2))
        .collect();
    assert_eq!(sent.len(), 1, "exactly one copy, as retained: {sent:?}");
}

#[test]
fn durable_subscription_committed_before_a_retained_publish_gets_it_live() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("sub", false, 600, 10), 0);
    // The subscription is proposed first, the publish received before it commits.
    b.b.subscribe(
        ConnId(2),
        Ticket(99),
        vec![(
            TopicFilter::new("r").unwrap(),
            Subscription {
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
                identifier: None,
            },
        )],
        0,
    );
    let ticket = publish_retained_uncommitted(&mut b, ConnId(1));
    b.completion(ticket);
    let sent: Vec<_> = b
        .deliveries()
        .into_iter()
        .filter(|d| d.0 == ConnId(2))
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "the publish is ordered after the subscription: {sent:?}"
    );
}

#[test]
fn a_local_shared_member_leaving_hands_its_messages_to_a_durable_member() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("clean", true, 0, 10), 0);
    b.connect(ConnId(3), request("durable", false, 600, 10), 0);
    b.subscribe(ConnId(2), "$share/g/t", QoS::AtLeastOnce);
    b.publish(ConnId(1), message("t", QoS::AtLeastOnce, "pub"), None)
        .unwrap();
    // The group has only a local member: it takes the message.
    assert_eq!(
        b.deliveries().iter().map(|d| d.0).collect::<Vec<_>>(),
        [ConnId(2)]
    );
    b.subscribe(ConnId(3), "$share/g/t", QoS::AtLeastOnce);
    b.disconnect(ConnId(2), 0, 1);
    let resent = b.deliveries();
    assert_eq!(
        resent.iter().map(|d| d.0).collect::<Vec<_>>(),
        [ConnId(3)],
        "{resent:?}"
    );
}

#[test]
fn a_shared_group_with_a_durable_member_keeps_qos1_and_qos2_in_the_log() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("clean", true, 0, 10), 0);
    b.connect(ConnId(3), request("durable", false, 600, 10), 0);
    b.subscribe(ConnId(2), "$share/g/t", QoS::ExactlyOnce);
    b.subscribe(ConnId(3), "$share/g/t", QoS::ExactlyOnce);
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce] {
        b.publish(ConnId(1), message("t", qos, "pub"), None)
            .unwrap();
        // A local member's copy would die with this node: the durable member gets it.
        assert_eq!(
            b.deliveries().iter().map(|d| d.0).collect::<Vec<_>>(),
            [ConnId(3)],
            "{qos:?}"
        );
    }
    // QoS 0 is at most once anyway: one member, whichever tier.
    b.publish(ConnId(1), message("t", QoS::AtMostOnce, "pub"), None)
        .unwrap();
    assert_eq!(b.deliveries().len(), 1);
}

fn elsewhere() -> Place {
    Place {
        node: NodeId(2),
        incarnation: Incarnation(1),
    }
}

fn effects_of(b: &mut Harness) -> Vec<Effect> {
    b.settle();
    std::mem::take(&mut b.effects)
}

#[test]
fn a_durable_qos2_publish_reaches_clean_subscribers_once_committed_and_once_only() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", false, 600, 10), 0);
    b.connect(ConnId(2), request("clean", true, 0, 10), 0);
    b.subscribe(ConnId(2), "t", QoS::ExactlyOnce);
    b.b.publish(
        ConnId(1),
        Ticket(90),
        message("t", QoS::ExactlyOnce, "pub"),
        Some(pid(7)),
        false,
    )
    .unwrap();
    // Not committed yet: a crash now must not leave a copy with a clean subscriber that the
    // publisher's resend would duplicate.
    assert!(b.b.take_effects().is_empty());
    assert_eq!(
        b.deliveries().iter().map(|d| d.0).collect::<Vec<_>>(),
        [ConnId(2)]
    );
    // The resend is known: acknowledged, not routed again.
    let again = b
        .publish(
            ConnId(1),
            message("t", QoS::ExactlyOnce, "pub"),
            Some(pid(7)),
        )
        .unwrap();
    assert!(again.duplicate);
    assert!(b.deliveries().is_empty());
}

#[test]
fn a_shared_message_goes_to_a_member_that_takes_it_at_least_once() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    b.connect(ConnId(2), request("q0", false, 600, 10), 0);
    b.connect(ConnId(3), request("q1", false, 600, 10), 0);
    b.subscribe(ConnId(2), "$share/g/t", QoS::AtMostOnce);
    b.subscribe(ConnId(3), "$share/g/t", QoS::AtLeastOnce);
    for _ in 0..3 {
        b.publish(ConnId(1), message("t", QoS::AtLeastOnce, "pub"), None)
            .unwrap();
    }
    // Connected, the QoS 1 member gets every QoS 1 message.
    assert_eq!(
        b.deliveries().iter().map(|d| d.0).collect::<Vec<_>>(),
        [ConnId(3), ConnId(3), ConnId(3)]
    );
    // Disconnected, it keeps them rather than the QoS 0 member getting them at most once.
    b.disconnect(ConnId(3), 600, 0);
    b.publish(ConnId(1), message("t", QoS::AtLeastOnce, "pub"), None)
        .unwrap();
    assert!(b.deliveries().is_empty());
    assert_eq!(b.b.state().session("q1").unwrap().queue.len(), 4);
    // QoS 0 still goes to a connected member.
    b.publish(ConnId(1), message("t", QoS::AtMostOnce, "pub"), None)
        .unwrap();
    assert_eq!(
        b.deliveries().iter().map(|d| d.0).collect::<Vec<_>>(),
        [ConnId(2)]
    );
}

#[test]
fn a_session_opened_on_another_node_closes_the_connection_here() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("d", false, 600, 10), 0);
    b.connect(ConnId(2), request("c", true, 0, 10), 0);
    b.settle();
    b.effects.clear();
    let open_durable = Command::OpenSession {
        client_id: MqttString::new("d").unwrap(),
        clean_start: false,
        expiry_secs: 600,
        will: None,
        now_ms: 0,
        place: elsewhere(),
    };
    let open_local = Command::OpenLocal {
        client_id: MqttString::new("c").unwrap(),
        place: elsewhere(),
    };
    b.b.apply_committed(Proposal {
        commands: vec![open_durable, open_local],
        origin: None,
        from: None,
    });
    let kicked: Vec<(ConnId, ReasonCode)> = effects_of(&mut b)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Disconnect { conn, reason } => Some((conn, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kicked,
        [
            (ConnId(1), ReasonCode::SessionTakenOver),
            (ConnId(2), ReasonCode::SessionTakenOver)
        ]
    );
    assert_eq!(b.b.connection_count(), 0);
    assert!(
        b.b.local_state().session("c").is_none(),
        "the local session ended"
    );
    // The old connection's late close does not end the session now served elsewhere.
    b.b.disconnect(ConnId(1), 600, true, 0);
    b.settle();
    assert!(b.b.state().session("d").unwrap().connected);
}

#[test]
fn a_node_declared_down_sends_its_clients_away() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("d", false, 600, 10), 0);
    b.settle();
    b.effects.clear();
    b.b.apply_committed(Proposal {
        commands: vec![Command::NodeDown {
            node: NodeId(1),
            incarnation: Incarnation::MAX,
            now_ms: 5,
        }],
        origin: None,
        from: None,
    });
    let effects = effects_of(&mut b);
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Disconnect {
                conn: ConnId(1),
                reason: ReasonCode::ServerUnavailable
            }
        )),
        "{effects:?}"
    );
    let session = b.b.state().session("d").unwrap();
    assert!(!session.connected, "closed, its expiry running");
}

#[test]
fn a_publish_goes_to_the_nodes_whose_clean_sessions_match() {
    let mut b = Harness::new(BrokerConfig::default());
    b.b.set_cluster_role(false, true);
    b.connect(ConnId(1), request("pub", true, 0, 10), 0);
    let remote = MqttString::new("remote").unwrap();
    b.b.apply_committed(Proposal {
        commands: vec![
            Command::OpenLocal {
                client_id: remote.clone(),
                place: elsewhere(),
            },
            Command::SubscribeLocal {
                client_id: remote,
                place: elsewhere(),
                subscriptions: vec![(
                    TopicFilter::new("t/#").unwrap(),
                    Subscription {
                        options: SubscriptionOptions::new(QoS::AtLeastOnce),
                        identifier: None,
                    },
                )],
            },
        ],
        origin: None,
        from: None,
    });
    b.settle();
    b.effects.clear();
    let ticket = b.next_ticket();
    b.b.publish(
        ConnId(1),
        ticket,
        message("t/1", QoS::AtLeastOnce, "pub"),
        None,
        false,
    )
    .unwrap();
    let effects = effects_of(&mut b);
    let forwarded: Vec<NodeId> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Forward { node, .. } => Some(*node),
            _ => None,
        })
        .collect();
    assert_eq!(forwarded, [NodeId(2)]);
    // No durable subscription matches, but the replica might be behind the cluster: the
    // PUBACK waits for a read of the commit index.
    assert!(!effects.iter().any(|e| matches!(e, Effect::Reply { .. })));
    assert!(b.b.wants_read());
    let round = b.b.start_read();
    assert!(!b.b.wants_read());
    b.b.read_done(round);
    assert_eq!(b.completion(ticket).matched, 0);
}

#[test]
fn a_late_publish_from_a_connection_that_lost_its_session_is_void() {
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("sub", false, 600, 10), 0);
    b.subscribe(ConnId(1), "t", QoS::AtLeastOnce);
    b.connect(ConnId(2), request("pub", false, 600, 10), 0);
    b.settle();
    b.effects.clear();
    // The publisher's session moves to another node; then a publish it made here before
    // the move, resent late after a timeout, is committed.
    let publisher = MqttString::new("pub").unwrap();
    b.b.apply_committed(Proposal {
        commands: vec![Command::OpenSession {
            client_id: publisher.clone(),
            clean_start: false,
            expiry_secs: 600,
            will: None,
            now_ms: 0,
            place: elsewhere(),
        }],
        origin: None,
        from: None,
    });
    let late = Command::Publish {
        message: std::sync::Arc::new(message("t", QoS::AtLeastOnce, "pub")),
        origin: None,
        skip_shared: Vec::new(),
    };
    b.b.apply_committed(Proposal {
        commands: vec![late.clone()],
        origin: None,
        from: Some(SessionFence {
            client_id: publisher.clone(),
            place: b.b.place(),
        }),
    });
    assert!(b.deliveries().iter().all(|d| d.0 != ConnId(1)), "void");
    // From the place that holds the session now, it goes through.
    b.b.apply_committed(Proposal {
        commands: vec![late],
        origin: None,
        from: Some(SessionFence {
            client_id: publisher,
            place: elsewhere(),
        }),
    });
    assert_eq!(
        b.deliveries().iter().map(|d| d.0).collect::<Vec<_>>(),
        [ConnId(1)]
    );
}

#[test]
fn a_late_qos0_forward_skips_connections_made_after_the_publish() {
    // A forward held up (its peer was down) reaches this node after a durable subscriber
    // reconnected here; at publish time that subscriber was served elsewhere and may have
    // had the message there already.
    let mut b = Harness::new(BrokerConfig::default());
    b.connect(ConnId(1), request("sub", false, 3600, 10), 5_000);
    b.subscribe(ConnId(1), "t", QoS::AtLeastOnce);
    b.deliveries();
    let mut late = message("t", QoS::AtMostOnce, "pub");
    late.received_at_ms = 4_000;
    b.b.forwarded(std::sync::Arc::new(late), &[]);
    assert_eq!(
        b.deliveries(),
        [],
        "received before the connection was made"
    );
    let mut current = message("t", QoS::AtMostOnce, "pub");
    current.received_at_ms = 6_000;
    b.b.forwarded(std::sync::Arc::new(current), &[]);
    assert_eq!(
        b.deliveries(),
        [(ConnId(1), 0, false)],
        "received while it was connected"
    );
}
