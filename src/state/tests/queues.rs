//! Queue bounds: by count and by bytes, drop-new and drop-oldest, bytes given back.

use super::*;

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
