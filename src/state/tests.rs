//! Behaviour of the state machine, driven command by command with `validate()` after each.

pub(crate) mod persist;

use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::codec::{
    MqttString, PacketId, PublishProperties, QoS, RetainHandling, SubscriptionOptions, TopicFilter,
    TopicName,
};

struct Harness {
    state: State,
}

fn id(s: &str) -> ClientId {
    MqttString::new(s).unwrap()
}

fn message(topic: &str, qos: QoS, retain: bool, publisher: Option<&str>) -> Message {
    Message {
        topic: TopicName::new(topic).unwrap(),
        payload: Bytes::from(format!("to {topic}")),
        qos,
        retain,
        properties: PublishProperties::default(),
        publisher: publisher.map(id),
        received_at_ms: 0,
    }
}

fn sub(qos: QoS) -> Subscription {
    Subscription {
        options: SubscriptionOptions::new(qos),
        identifier: None,
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(StateConfig::default())
    }

    fn with_config(config: StateConfig) -> Harness {
        Harness {
            state: State::new(config),
        }
    }

    fn apply(&mut self, command: Command) -> Applied {
        let applied = self.state.apply(command);
        self.state.validate();
        applied
    }

    fn open(&mut self, client: &str, clean_start: bool, expiry_secs: u32) -> Applied {
        self.open_with_will(client, clean_start, expiry_secs, None)
    }

    fn open_with_will(
        &mut self,
        client: &str,
        clean_start: bool,
        expiry_secs: u32,
        will: Option<Will>,
    ) -> Applied {
        self.apply(Command::OpenSession {
            client_id: id(client),
            clean_start,
            expiry_secs,
            will: will.map(Box::new),
            now_ms: 0,
            place: Place::default(),
        })
    }

    fn close(
        &mut self,
        client: &str,
        expiry_secs: u32,
        publish_will: bool,
        now_ms: u64,
    ) -> Applied {
        self.apply(Command::CloseSession {
            client_id: id(client),
            expiry_secs,
            publish_will,
            now_ms,
            place: Place::default(),
        })
    }

    fn subscribe(&mut self, client: &str, filter: &str, subscription: Subscription) -> Applied {
        self.apply(Command::Subscribe {
            client_id: id(client),
            subscriptions: vec![(TopicFilter::new(filter).unwrap(), subscription)],
            now_ms: 0,
        })
    }

    fn publish(&mut self, message: Message) -> Applied {
        self.apply(Command::Publish {
            message: Arc::new(message),
            origin: None,
            skip_shared: Vec::new(),
        })
    }

    fn queue(&self, client: &str) -> Vec<(String, QoS, bool)> {
        self.state
            .session(client)
            .map(|s| {
                s.queue
                    .iter()
                    .map(|q| (q.message.topic.to_string(), q.qos, q.retain))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The leader proposes an expiry from its replica, which may be behind the log: by the time
/// the command applies, the session may have been resumed and closed again with another
/// expiry. It ends only if it is expired at the command's time (found by the simulator: a
/// session of expiry "never" ended by an expiry due under its earlier expiry of 1 s).
#[test]
fn a_stale_expiry_does_not_end_a_session_resumed_since() {
    let mut h = Harness::new();
    h.open("c", false, 1);
    h.close("c", 1, true, 1_000);
    let stale = Command::EndSession {
        client_id: id("c"),
        now_ms: 2_500,
    };
    h.open("c", false, 3_600);
    h.close("c", 3_600, true, 2_000);
    h.apply(stale);
    assert!(
        h.state.session("c").is_some(),
        "kept: it expires at 3_602_000"
    );
    h.apply(Command::EndSession {
        client_id: id("c"),
        now_ms: 3_602_000,
    });
    assert!(h.state.session("c").is_none());
}

/// Likewise a will: published only once its delay has passed at the command's time.
#[test]
fn a_stale_will_is_not_published_early() {
    let mut h = Harness::new();
    let will = |delay_secs| Will {
        delay_secs,
        message: message("will/t", QoS::AtLeastOnce, false, Some("c")),
    };
    h.open("w", false, 3_600);
    h.subscribe("w", "will/t", sub(QoS::AtLeastOnce));
    h.open_with_will("c", false, 3_600, Some(will(1)));
    h.close("c", 3_600, true, 1_000);
    let stale = Command::PublishWill {
        client_id: id("c"),
        now_ms: 2_000,
    };
    h.open_with_will("c", false, 3_600, Some(will(60)));
    h.close("c", 3_600, true, 1_500);
    h.apply(stale);
    assert!(h.queue("w").is_empty(), "its delay now runs to 61_500");
    h.apply(Command::PublishWill {
        client_id: id("c"),
        now_ms: 61_500,
    });
    assert_eq!(h.queue("w").len(), 1);
}

#[test]
fn resumed_session_is_present_and_clean_start_is_not() {
    let mut h = Harness::new();
    assert!(!h.open("c", false, 60).session_present);
    h.close("c", 60, false, 1_000);
    assert!(h.open("c", false, 60).session_present);
    h.close("c", 60, false, 2_000);
    assert!(!h.open("c", true, 60).session_present);
}

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

#[test]
fn full_queue_drops_new_or_oldest_per_policy() {
    for (overflow, first_kept) in [
        (OverflowPolicy::DropNew, "0"),
        (OverflowPolicy::DropOldest, "2"),
    ] {
        let mut h = Harness::with_config(StateConfig {
            queue_max: 3,
            overflow,
            ..StateConfig::default()
        });
        h.open("s", true, 0);
        h.subscribe("s", "#", sub(QoS::AtLeastOnce));
        let mut dropped = 0;
        for i in 0..5 {
            dropped += h
                .publish(message(&i.to_string(), QoS::AtLeastOnce, false, None))
                .dropped_queue_full;
        }
        assert_eq!(dropped, 2, "{overflow:?}");
        assert_eq!(h.queue("s").len(), 3);
        assert_eq!(h.queue("s")[0].0, first_kept, "{overflow:?}");
    }
}

/// A QoS 1 message on `topic` whose payload makes it `size_bytes` in all (topic included).
fn sized(topic: &str, size_bytes: usize) -> Message {
    Message {
        payload: Bytes::from(vec![b'x'; size_bytes - topic.len()]),
        ..message(topic, QoS::AtLeastOnce, false, None)
    }
}

/// A harness whose sessions hold at most `queue_bytes_max` bytes (and 100 messages).
fn byte_bound(queue_bytes_max: usize, overflow: OverflowPolicy) -> Harness {
    Harness::with_config(StateConfig {
        queue_max: 100,
        queue_bytes_max,
        overflow,
        ..StateConfig::default()
    })
}

/// Opens `client` subscribed to every topic at QoS 1.
fn subscribed(h: &mut Harness, client: &str) {
    h.open(client, false, 600);
    h.subscribe(client, "#", sub(QoS::AtLeastOnce));
}

fn queue_bytes(h: &Harness, client: &str) -> usize {
    h.state.session(client).map_or(0, |s| s.queue_bytes())
}

#[test]
fn byte_bound_drops_the_message_that_would_overflow_it_and_counts_it_as_bytes() {
    let mut h = byte_bound(30, OverflowPolicy::DropNew);
    subscribed(&mut h, "s");
    for topic in ["a", "b"] {
        let applied = h.publish(sized(topic, 11));
        assert_eq!((applied.matched, applied.dropped_queue_full), (1, 0));
    }
    let applied = h.publish(sized("c", 11));
    assert_eq!(applied.matched, 0);
    assert_eq!(
        (applied.dropped_queue_full, applied.dropped_queue_bytes),
        (1, 1)
    );
    assert_eq!(queue_bytes(&h, "s"), 22);
    // A smaller message still fits in what is left.
    assert_eq!(h.publish(sized("d", 8)).matched, 1);
    assert_eq!(queue_bytes(&h, "s"), 30);
    let topics: Vec<String> = h.queue("s").into_iter().map(|(t, ..)| t).collect();
    assert_eq!(topics, ["a", "b", "d"]);
}

#[test]
fn drop_oldest_evicts_as_many_old_messages_as_the_new_one_needs() {
    let mut h = byte_bound(30, OverflowPolicy::DropOldest);
    subscribed(&mut h, "s");
    for topic in ["a", "b", "c"] {
        h.publish(sized(topic, 6));
    }
    assert_eq!(queue_bytes(&h, "s"), 18);
    // 18 + 25 is 13 over: two messages of 6 free 12, not enough; three free 18.
    let applied = h.publish(sized("big", 25));
    assert_eq!(
        (applied.dropped_queue_full, applied.dropped_queue_bytes),
        (3, 3)
    );
    assert_eq!(h.queue("s").len(), 1);
    assert_eq!(h.queue("s")[0].0, "big");
    assert_eq!(queue_bytes(&h, "s"), 25);
}

#[test]
fn a_message_larger_than_the_byte_bound_is_never_queued_whatever_the_policy() {
    for overflow in [OverflowPolicy::DropNew, OverflowPolicy::DropOldest] {
        let mut h = byte_bound(30, overflow);
        subscribed(&mut h, "s");
        h.publish(sized("a", 10));
        let applied = h.publish(sized("huge", 31));
        assert_eq!(
            (applied.dropped_queue_full, applied.dropped_queue_bytes),
            (1, 1),
            "{overflow:?}"
        );
        assert_eq!(
            h.queue("s").len(),
            1,
            "{overflow:?}: nothing evicted for it"
        );
        assert_eq!(queue_bytes(&h, "s"), 10);
    }
}

#[test]
fn drop_oldest_keeps_qos2_messages_past_pubrec_and_then_drops_the_new_one() {
    let mut h = byte_bound(30, OverflowPolicy::DropOldest);
    h.open("s", false, 600);
    h.subscribe("s", "#", sub(QoS::ExactlyOnce));
    let qos2 = |h: &mut Harness, topic: &str| {
        h.publish(Message {
            qos: QoS::ExactlyOnce,
            ..sized(topic, 14)
        })
    };
    qos2(&mut h, "a");
    qos2(&mut h, "b");
    let seqs: Vec<Seq> = h
        .state
        .session("s")
        .unwrap()
        .queue
        .iter()
        .map(|q| q.seq)
        .collect();
    for seq in seqs {
        h.apply(Command::PubRecReceived {
            client_id: id("s"),
            seq,
        });
    }
    let applied = qos2(&mut h, "c");
    assert_eq!((applied.matched, applied.dropped_queue_full), (0, 1));
    assert_eq!(queue_bytes(&h, "s"), 28, "both QoS 2 flows kept");
}

#[test]
fn count_and_byte_bounds_are_told_apart() {
    let mut h = Harness::with_config(StateConfig {
        queue_max: 2,
        queue_bytes_max: 30,
        overflow: OverflowPolicy::DropOldest,
        ..StateConfig::default()
    });
    subscribed(&mut h, "s");
    h.publish(sized("a", 5));
    h.publish(sized("b", 5));
    // Full by count: one eviction, for queue_max.
    let applied = h.publish(sized("c", 5));
    assert_eq!(
        (applied.dropped_queue_full, applied.dropped_queue_bytes),
        (1, 0)
    );
    // Full by count, and 10 + 26 is over by bytes too: the first eviction is for the
    // count, the second for the bytes.
    let applied = h.publish(sized("d", 26));
    assert_eq!(
        (applied.dropped_queue_full, applied.dropped_queue_bytes),
        (2, 1)
    );
    assert_eq!(h.queue("s").len(), 1);
}

#[test]
fn acknowledged_and_released_messages_give_their_bytes_back() {
    let mut h = byte_bound(1000, OverflowPolicy::DropNew);
    h.open("m1", false, 600);
    h.open("m2", false, 600);
    h.subscribe("m1", "$share/g/t", sub(QoS::AtLeastOnce));
    subscribed(&mut h, "s");
    h.publish(sized("t", 100));
    h.publish(sized("t", 50));
    assert_eq!(queue_bytes(&h, "s"), 150);
    assert_eq!(queue_bytes(&h, "m1"), 150);
    let seqs = |h: &Harness, c: &str| -> Vec<Seq> {
        h.state
            .session(c)
            .unwrap()
            .queue
            .iter()
            .map(|q| q.seq)
            .collect()
    };
    let first = seqs(&h, "s")[0];
    h.apply(Command::Acked {
        client_id: id("s"),
        seq: first,
    });
    assert_eq!(queue_bytes(&h, "s"), 50);
    h.subscribe("m2", "$share/g/t", sub(QoS::AtLeastOnce));
    let released = seqs(&h, "m1");
    h.apply(Command::ReleaseShared {
        client_id: id("m1"),
        seqs: released,
    });
    assert_eq!((queue_bytes(&h, "m1"), queue_bytes(&h, "m2")), (0, 150));
}

#[test]
fn a_shared_group_passes_over_a_member_without_room_for_the_bytes() {
    let mut h = byte_bound(100, OverflowPolicy::DropNew);
    for member in ["m1", "m2"] {
        h.open(member, false, 600);
        h.subscribe(member, "$share/g/t", sub(QoS::AtLeastOnce));
    }
    h.publish(sized("t", 90));
    h.publish(sized("t", 50));
    // m1 holds 90 and has no room for 50 more; m2 holds 50 and has.
    assert_eq!(h.publish(sized("t", 50)).dropped_queue_full, 0);
    assert_eq!((queue_bytes(&h, "m1"), queue_bytes(&h, "m2")), (90, 100));
}

fn will(topic: &str, delay_secs: u32) -> Option<Will> {
    Some(Will {
        message: message(topic, QoS::AtLeastOnce, false, Some("dying")),
        delay_secs,
    })
}

fn watcher(h: &mut Harness) {
    h.open("watcher", true, 0);
    h.subscribe("watcher", "will/#", sub(QoS::AtLeastOnce));
}

#[test]
fn will_without_delay_is_published_when_the_connection_drops() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 60, will("will/now", 0));
    h.close("dying", 60, true, 5);
    assert_eq!(h.queue("watcher").len(), 1);
}

#[test]
fn normal_disconnect_discards_the_will() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 60, will("will/x", 0));
    h.close("dying", 60, false, 5);
    assert!(h.queue("watcher").is_empty());
    // Not even when the session later expires.
    for command in h.state.due(u64::MAX) {
        h.apply(command);
    }
    assert!(h.state.session("dying").is_none());
    assert!(h.queue("watcher").is_empty());
}

#[test]
fn delayed_will_is_published_when_due_unless_the_client_returns() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 600, will("will/late", 10));
    h.close("dying", 600, true, 1_000);
    assert_eq!(h.state.next_deadline_ms(), Some(11_000));
    assert!(h.state.due(10_999).is_empty());
    for command in h.state.due(11_000) {
        h.apply(command);
    }
    assert_eq!(h.queue("watcher").len(), 1);

    // A reconnect within the delay cancels the will ([MQTT-3.1.3-9]).
    h.open_with_will("dying", false, 600, will("will/late", 10));
    h.close("dying", 600, true, 20_000);
    h.open("dying", false, 600);
    assert!(h.state.due(u64::MAX - 1).is_empty());
    assert_eq!(h.queue("watcher").len(), 1);
}

#[test]
fn session_expiry_ends_the_session_and_publishes_a_pending_will_first() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 5, will("will/at-end", 3600));
    h.subscribe("dying", "x", sub(QoS::AtLeastOnce));
    h.close("dying", 5, true, 0);
    // The will is due at the earlier of its delay and the session's end.
    assert_eq!(h.state.next_deadline_ms(), Some(5_000));
    let due = h.state.due(5_000);
    assert_eq!(due.len(), 1);
    let applied = h.apply(due.into_iter().next().unwrap());
    assert_eq!(applied.ended, vec![id("dying")]);
    assert!(h.state.session("dying").is_none());
    assert_eq!(
        h.state.subscription_count(),
        1,
        "only the watcher's subscription is left"
    );
    assert_eq!(h.queue("watcher").len(), 1);
}

#[test]
fn second_close_discarding_the_will_also_cancels_its_timer() {
    let mut h = Harness::new();
    h.open_with_will("c", false, 60, will("will/c", 1));
    h.close("c", 60, true, 1_000);
    assert_eq!(h.state.session("c").unwrap().will_due_ms, Some(2_000));
    // Found by the snapshot property test: `validate()` failed with "will due without a
    // pending will".
    h.close("c", 60, false, 1_500);
    let session = h.state.session("c").unwrap();
    assert_eq!((session.will.is_some(), session.will_due_ms), (false, None));
    assert_eq!(h.state.next_deadline_ms(), Some(61_500));
}

#[test]
fn expiry_zero_ends_the_session_at_close() {
    let mut h = Harness::new();
    h.open("c", true, 0);
    h.subscribe("c", "t", sub(QoS::AtLeastOnce));
    assert_eq!(h.close("c", 0, true, 1).ended, vec![id("c")]);
    assert!(h.state.session("c").is_none());
    assert_eq!(h.state.subscription_count(), 0);
}

#[test]
fn takeover_keeps_the_session_and_publishes_an_undelayed_will() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("c", false, 60, will("will/takeover", 0));
    h.subscribe("c", "t", sub(QoS::AtLeastOnce));
    let applied = h.open("c", false, 60);
    assert!(applied.taken_over);
    assert!(applied.session_present);
    assert_eq!(h.queue("watcher").len(), 1);
    assert_eq!(h.state.session("c").unwrap().subscriptions.len(), 1);

    // With Clean Start the old session ends on takeover.
    let applied = h.open("c", true, 60);
    assert!(applied.taken_over && !applied.session_present);
    assert!(h.state.session("c").unwrap().subscriptions.is_empty());
}

/// [MQTT-3.1.3-9] at takeover: a delayed will is cancelled when the session goes on with
/// the new connection; it goes out at once when the takeover ends the session (a clean
/// start, or an old connection with expiry 0).
#[test]
fn a_takeover_cancels_a_delayed_will_unless_it_ends_the_session() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("c", false, 60, will("will/delayed", 10));
    let applied = h.open("c", false, 60);
    assert!(applied.taken_over && applied.session_present);
    assert!(h.state.session("c").unwrap().will.is_none());
    assert!(h.state.due(u64::MAX - 1).is_empty());
    assert!(h.queue("watcher").is_empty());

    for (clean_start, old_expiry_secs) in [(true, 60), (false, 0)] {
        let mut h = Harness::new();
        watcher(&mut h);
        h.open_with_will("c", false, old_expiry_secs, will("will/delayed", 10));
        h.open("c", clean_start, 60);
        assert_eq!(h.queue("watcher").len(), 1, "clean start {clean_start}");
    }
}

/// [MQTT-3.1.2-10]: a will is published once, then gone: not again when its session expires.
#[test]
fn a_will_is_published_only_once() {
    let mut h = Harness::new();
    watcher(&mut h);
    h.open_with_will("dying", false, 5, will("will/once", 0));
    h.close("dying", 5, true, 0);
    assert_eq!(h.queue("watcher").len(), 1);
    for command in h.state.due(u64::MAX) {
        h.apply(command);
    }
    assert!(h.state.session("dying").is_none());
    assert_eq!(h.queue("watcher").len(), 1);
}

/// A Session Expiry Interval of 0xFFFFFFFF never runs out (§3.1.2.11.2).
#[test]
fn a_session_of_expiry_0xffffffff_never_expires() {
    let mut h = Harness::new();
    h.open("c", false, u32::MAX);
    h.close("c", u32::MAX, false, 0);
    assert_eq!(h.state.next_deadline_ms(), None);
    assert!(h.state.due(u64::MAX).is_empty());
    h.apply(Command::EndSession {
        client_id: id("c"),
        now_ms: u64::MAX,
    });
    assert!(h.state.session("c").is_some());
}

/// [MQTT-4.1.0-1]: a session connected again is not discarded by an expiry proposed while
/// it was disconnected.
#[test]
fn an_expiry_never_ends_a_connected_session() {
    let mut h = Harness::new();
    h.open("c", false, 1);
    h.close("c", 1, true, 0);
    h.open("c", false, 1);
    h.apply(Command::EndSession {
        client_id: id("c"),
        now_ms: 10_000,
    });
    let session = h.state.session("c").expect("kept");
    assert!(session.connected);
}

#[test]
fn queued_messages_survive_a_disconnect_of_a_persistent_session() {
    let mut h = Harness::new();
    h.open("p", false, 3600);
    h.subscribe("p", "t", sub(QoS::AtLeastOnce));
    h.close("p", 3600, false, 0);
    assert_eq!(
        h.publish(message("t", QoS::AtLeastOnce, false, None))
            .matched,
        1
    );
    assert_eq!(
        h.publish(message("t", QoS::AtMostOnce, false, None))
            .matched,
        0,
        "QoS 0 is not queued offline"
    );
    assert!(h.open("p", false, 3600).session_present);
    assert_eq!(h.queue("p").len(), 1);
}
