//! Routing: queueing and direct delivery, QoS, overlapping and shared subscriptions, retained messages, QoS 2 resends, acknowledgements.

use super::*;

#[test]
fn qos1_publish_is_queued_and_qos0_is_sent_directly() {
    let mut h = Harness::new();
    h.open("sub", true, 0);
    h.subscribe("sub", "a/+", sub(QoS::ExactlyOnce));
    let applied = h.publish(message("a/b", QoS::AtLeastOnce, false, None));
    assert_eq!(applied.queued_for, vec![id("sub")]);
    assert_eq!(applied.matched, 1);
    assert_eq!(h.queue("sub"), [("a/b".into(), QoS::AtLeastOnce, false)]);
    let applied = h.publish(message("a/c", QoS::AtMostOnce, false, None));
    assert_eq!(applied.direct.len(), 1);
    assert_eq!(h.queue("sub").len(), 1, "QoS 0 is never queued");
    assert_eq!(
        h.publish(message("b", QoS::AtLeastOnce, false, None))
            .matched,
        0
    );
}

#[test]
fn delivery_qos_is_the_lower_of_publish_and_subscription() {
    let mut h = Harness::new();
    h.open("sub", true, 0);
    h.subscribe("sub", "t", sub(QoS::AtLeastOnce));
    h.publish(message("t", QoS::ExactlyOnce, false, None));
    assert_eq!(h.queue("sub")[0].1, QoS::AtLeastOnce);
    // A QoS 2 publish to a QoS 0 subscription is a QoS 0 delivery: sent, not queued.
    h.subscribe("sub", "t", sub(QoS::AtMostOnce));
    assert_eq!(
        h.publish(message("t", QoS::ExactlyOnce, false, None))
            .direct
            .len(),
        1
    );
}

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos_with_every_identifier() {
    let mut h = Harness::new();
    h.open("sub", true, 0);
    let with_id = |qos, n| Subscription {
        options: SubscriptionOptions::new(qos),
        identifier: NonZeroU32::new(n),
    };
    h.subscribe("sub", "a/#", with_id(QoS::AtLeastOnce, 1));
    h.subscribe("sub", "a/+", with_id(QoS::ExactlyOnce, 2));
    h.subscribe("sub", "a/b", with_id(QoS::AtMostOnce, 3));
    h.publish(message("a/b", QoS::ExactlyOnce, false, None));
    let session = h.state.session("sub").unwrap();
    assert_eq!(session.queue.len(), 1);
    assert_eq!(session.queue[0].qos, QoS::ExactlyOnce);
    let mut ids: Vec<u32> = session.queue[0]
        .subscription_ids
        .iter()
        .map(|i| i.get())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
}

#[test]
fn no_local_skips_the_publishers_own_messages() {
    let mut h = Harness::new();
    h.open("me", true, 0);
    let mut subscription = sub(QoS::AtLeastOnce);
    subscription.options.no_local = true;
    h.subscribe("me", "t", subscription);
    assert_eq!(
        h.publish(message("t", QoS::AtLeastOnce, false, Some("me")))
            .matched,
        0
    );
    assert_eq!(
        h.publish(message("t", QoS::AtLeastOnce, false, Some("other")))
            .matched,
        1
    );
}

#[test]
fn retain_as_published_keeps_the_flag_otherwise_it_is_cleared() {
    let mut h = Harness::new();
    h.open("keep", true, 0);
    h.open("clear", true, 0);
    let mut keep = sub(QoS::AtLeastOnce);
    keep.options.retain_as_published = true;
    h.subscribe("keep", "t", keep);
    h.subscribe("clear", "t", sub(QoS::AtLeastOnce));
    h.publish(message("t", QoS::AtLeastOnce, true, None));
    assert!(h.queue("keep")[0].2);
    assert!(!h.queue("clear")[0].2);
}

#[test]
fn shared_subscription_spreads_round_robin_and_prefers_connected_members() {
    let mut h = Harness::new();
    for member in ["m1", "m2", "m3"] {
        h.open(member, false, 600);
        h.subscribe(member, "$share/g/jobs/#", sub(QoS::AtLeastOnce));
    }
    for _ in 0..6 {
        assert_eq!(
            h.publish(message("jobs/x", QoS::AtLeastOnce, false, None))
                .matched,
            1
        );
    }
    assert_eq!(
        [
            h.queue("m1").len(),
            h.queue("m2").len(),
            h.queue("m3").len()
        ],
        [2, 2, 2]
    );
    h.close("m2", 600, false, 10);
    for _ in 0..4 {
        h.publish(message("jobs/x", QoS::AtLeastOnce, false, None));
    }
    assert_eq!(
        h.queue("m2").len(),
        2,
        "a disconnected member gets nothing while others can"
    );
    assert_eq!(h.queue("m1").len() + h.queue("m3").len(), 8);
}

#[test]
fn released_shared_messages_go_to_another_member() {
    let mut h = Harness::new();
    h.open("m1", false, 600);
    h.open("m2", false, 600);
    h.subscribe("m1", "$share/g/t", sub(QoS::AtLeastOnce));
    h.publish(message("t", QoS::AtLeastOnce, false, None));
    h.subscribe("m2", "$share/g/t", sub(QoS::AtLeastOnce));
    let seq = h.state.session("m1").unwrap().queue[0].seq;
    let applied = h.apply(Command::ReleaseShared {
        client_id: id("m1"),
        seqs: vec![seq],
    });
    assert_eq!(applied.queued_for, vec![id("m2")]);
    assert!(h.queue("m1").is_empty());
    assert_eq!(h.queue("m2").len(), 1);
}

#[test]
fn retained_message_is_sent_on_subscribe_with_retain_set_per_retain_handling() {
    let mut h = Harness::new();
    let retained = Arc::new(message("r/1", QoS::AtLeastOnce, true, None));
    h.apply(Command::SetRetained {
        topic: retained.topic.clone(),
        message: Some(retained),
    });
    h.open("s", true, 0);
    h.subscribe("s", "r/+", sub(QoS::ExactlyOnce));
    assert_eq!(h.queue("s"), [("r/1".into(), QoS::AtLeastOnce, true)]);

    let mut new_only = sub(QoS::AtLeastOnce);
    new_only.options.retain_handling = RetainHandling::SendAtNewSubscribe;
    h.subscribe("s", "r/+", new_only);
    assert_eq!(
        h.queue("s").len(),
        1,
        "an existing subscription gets no retained copy"
    );

    let mut never = sub(QoS::AtLeastOnce);
    never.options.retain_handling = RetainHandling::DoNotSend;
    h.subscribe("s", "r/#", never);
    assert_eq!(h.queue("s").len(), 1);

    h.subscribe("s", "$share/g/r/#", sub(QoS::AtLeastOnce));
    assert_eq!(
        h.queue("s").len(),
        1,
        "shared subscriptions get no retained messages"
    );

    h.apply(Command::SetRetained {
        topic: TopicName::new("r/1").unwrap(),
        message: None,
    });
    h.subscribe("s", "r/1", sub(QoS::AtLeastOnce));
    assert_eq!(
        h.queue("s").len(),
        1,
        "a cleared retained message is not sent"
    );
}

#[test]
fn qos2_resend_is_not_routed_again_until_pubrel() {
    let mut h = Harness::new();
    h.open("pub", false, 60);
    h.open("sub", true, 0);
    h.subscribe("sub", "t", sub(QoS::ExactlyOnce));
    let pid = PacketId::new(7).unwrap();
    let publish = |h: &mut Harness| {
        h.apply(Command::Publish {
            message: Arc::new(message("t", QoS::ExactlyOnce, false, Some("pub"))),
            origin: Some(Qos2Origin {
                client_id: id("pub"),
                packet_id: pid,
                place: Place::default(),
            }),
            skip_shared: Vec::new(),
        })
    };
    assert!(!publish(&mut h).duplicate);
    assert!(publish(&mut h).duplicate);
    assert_eq!(h.queue("sub").len(), 1);
    let released = h.apply(Command::PubRelReceived {
        client_id: id("pub"),
        packet_id: pid,
    });
    assert_eq!(released.existed, [true]);
    let again = h.apply(Command::PubRelReceived {
        client_id: id("pub"),
        packet_id: pid,
    });
    assert_eq!(again.existed, [false], "an unknown id gets PUBCOMP 0x92");
    assert!(
        !publish(&mut h).duplicate,
        "after PUBREL the id may be reused"
    );
}

#[test]
fn acknowledgements_remove_and_pubrec_marks() {
    let mut h = Harness::new();
    h.open("sub", true, 0);
    h.subscribe("sub", "t", sub(QoS::ExactlyOnce));
    h.publish(message("t", QoS::ExactlyOnce, false, None));
    h.publish(message("t", QoS::ExactlyOnce, false, None));
    let seqs: Vec<Seq> = h
        .state
        .session("sub")
        .unwrap()
        .queue
        .iter()
        .map(|q| q.seq)
        .collect();
    h.apply(Command::PubRecReceived {
        client_id: id("sub"),
        seq: seqs[1],
    });
    assert!(
        h.state
            .session("sub")
            .unwrap()
            .queued(seqs[1])
            .unwrap()
            .pubrec_received
    );
    h.apply(Command::Acked {
        client_id: id("sub"),
        seq: seqs[0],
    });
    let queue = &h.state.session("sub").unwrap().queue;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].seq, seqs[1]);
    assert_eq!(
        packet_id_for(seqs[1]),
        packet_id_for(seqs[1]),
        "ids are a function of seq"
    );
}
