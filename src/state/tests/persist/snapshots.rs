//! Snapshots: a rich state restores to the same state and bytes, shared messages are written once, headers and invariants are checked, queues over lowered bounds.

use super::*;

/// A state with something in every part: sessions connected and not, subscriptions plain,
/// wildcard and shared, queued QoS 1 and 2 messages (one past PUBREC, shared ones), QoS 2
/// receive state, a pending will with a delay, retained messages and shared cursors.
fn rich_state() -> State {
    let mut state = State::new(StateConfig::default());
    for member in ["m1", "m2"] {
        open(&mut state, member, 600);
        subscribe(&mut state, member, "$share/g/jobs/#", QoS::ExactlyOnce);
    }
    open(&mut state, "s", u32::MAX);
    subscribe(&mut state, "s", "a/+", QoS::ExactlyOnce);
    subscribe(&mut state, "s", "#", QoS::AtLeastOnce);
    let retained = Arc::new(Message {
        retain: true,
        ..full_message("a/r")
    });
    apply(
        &mut state,
        Command::SetRetained {
            topic: retained.topic.clone(),
            message: Some(retained.clone()),
        },
    );
    apply(
        &mut state,
        Command::Publish {
            message: retained,
            origin: Some(Qos2Origin {
                client_id: id("m1"),
                packet_id: PacketId::new(3).unwrap(),
                place: HERE,
            }),
            skip_shared: Vec::new(),
        },
    );
    publish(&mut state, message("jobs/1", QoS::ExactlyOnce, b"j1"));
    publish(&mut state, message("jobs/2", QoS::AtLeastOnce, b"j2"));
    let seq = state.session("s").unwrap().queue[0].seq;
    apply(
        &mut state,
        Command::PubRecReceived {
            client_id: id("s"),
            seq,
        },
    );
    apply(
        &mut state,
        Command::OpenSession {
            client_id: id("w"),
            clean_start: true,
            expiry_secs: 100,
            will: Some(Box::new(Will {
                message: full_message("will/w"),
                delay_secs: 30,
            })),
            now_ms: 1_000,
            place: HERE,
        },
    );
    apply(
        &mut state,
        Command::CloseSession {
            client_id: id("w"),
            expiry_secs: 100,
            publish_will: true,
            now_ms: 2_000,
            place: HERE,
        },
    );
    state
}

/// [`rich_state`] with the cluster's part: the batches applied from three runs of two
/// nodes, and a local session of another node with a subscription.
pub(super) fn cluster_state() -> State {
    let mut state = rich_state();
    for (place, seq) in [(PLACES[0], 3), (PLACES[1], 1), (PLACES[2], 7)] {
        assert!(state.accept_batch(BatchId { place, seq }));
    }
    apply(
        &mut state,
        Command::OpenLocal {
            client_id: id("l"),
            place: PLACES[1],
        },
    );
    apply(
        &mut state,
        Command::SubscribeLocal {
            client_id: id("l"),
            place: PLACES[1],
            subscriptions: vec![(filter("$share/g/t/+"), subscription(QoS::AtLeastOnce))],
        },
    );
    state
}

#[test]
fn the_batches_applied_from_each_node_survive_a_snapshot() {
    let mut state = rich_state();
    for (place, seq) in [(PLACES[0], 3), (PLACES[1], 1), (PLACES[2], 7)] {
        assert!(state.accept_batch(crate::state::BatchId { place, seq }));
    }
    let mut restored = restore(&state);
    assert_eq!(restored.placement().batches(), state.placement().batches());
    // Node 1 is at its second run: a late batch of the first is refused after restore too.
    assert!(!restored.accept_batch(crate::state::BatchId {
        place: PLACES[0],
        seq: 9
    }));
    assert_eq!(restored.to_snapshot(), state.to_snapshot());
}

#[test]
fn rich_state_restores_to_the_same_state_and_bytes() {
    let state = rich_state();
    assert_eq!(state.sessions().count(), 4);
    assert!(state.next_deadline_ms().is_some());
    let bytes = state.to_snapshot();
    assert_eq!(bytes[..8], SNAPSHOT_MAGIC);
    assert_eq!(
        state.to_snapshot(),
        bytes,
        "the same state gives the same bytes"
    );
    let restored = restore(&state);
    assert_eq!(restored.to_snapshot(), bytes);
    assert_same_state(&state, &restored, 2_000);
}

#[test]
fn restore_keeps_the_round_robin_position_of_shared_subscriptions() {
    let mut state = State::new(StateConfig::default());
    for member in ["m1", "m2", "m3"] {
        open(&mut state, member, 600);
        subscribe(&mut state, member, "$share/g/t", QoS::AtLeastOnce);
    }
    publish(&mut state, message("t", QoS::AtLeastOnce, b"1"));
    assert_eq!(state.session("m1").unwrap().queue.len(), 1);
    let mut restored = restore(&state);
    publish(&mut restored, message("t", QoS::AtLeastOnce, b"2"));
    assert_eq!(
        restored.session("m2").unwrap().queue.len(),
        1,
        "the next message goes to the next member, as it would have without the restore"
    );
}

#[test]
fn message_shared_by_many_queues_is_written_once() {
    const SESSIONS: usize = 100;
    const PAYLOAD_LEN: usize = 10_000;
    let mut state = State::new(StateConfig::default());
    for i in 0..SESSIONS {
        let client = format!("s{i}");
        open(&mut state, &client, 600);
        subscribe(&mut state, &client, "t", QoS::AtLeastOnce);
    }
    let before = state.to_snapshot().len();
    let shared = Arc::new(Message {
        retain: true,
        ..message("t", QoS::AtLeastOnce, &[7; PAYLOAD_LEN])
    });
    // As the broker does for a retained publish: one `Arc` for the retained slot and routing.
    apply(
        &mut state,
        Command::SetRetained {
            topic: topic("t"),
            message: Some(shared.clone()),
        },
    );
    apply(
        &mut state,
        Command::Publish {
            message: shared,
            origin: None,
            skip_shared: Vec::new(),
        },
    );
    let growth = state.to_snapshot().len() - before;
    assert!(
        (PAYLOAD_LEN..PAYLOAD_LEN + 16 * SESSIONS).contains(&growth),
        "grew by {growth} bytes for one {PAYLOAD_LEN}-byte message in {SESSIONS} queues"
    );

    let restored = restore(&state);
    let first = restored.retained().next().unwrap();
    for session in restored.sessions() {
        assert_eq!(session.queue.len(), 1);
        assert!(
            Arc::ptr_eq(&session.queue[0].message, first),
            "restored queues share one message"
        );
    }
}

#[test]
fn snapshot_header_is_checked() {
    let bytes = rich_state().to_snapshot();
    let config = StateConfig::default();
    assert!(matches!(
        State::from_snapshot(config, &[]),
        Err(PersistError::TruncatedHeader { len: 0, .. })
    ));
    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    let error = State::from_snapshot(config, &bad_magic).unwrap_err();
    assert!(matches!(error, PersistError::BadMagic));
    assert!(error.to_string().contains("not a keel snapshot"));
    let mut future = bytes.clone();
    future[8..10].copy_from_slice(&3u16.to_le_bytes());
    let error = State::from_snapshot(config, &future).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unsupported snapshot format version 3: this build reads version 2"
    );
    let mut trailing = bytes;
    trailing.push(0);
    assert!(matches!(
        State::from_snapshot(config, &trailing),
        Err(PersistError::TrailingBytes {
            format: Format::Snapshot,
            len: 1
        })
    ));
}

#[test]
fn every_truncation_of_a_snapshot_is_an_error() {
    let bytes = rich_state().to_snapshot();
    for len in 0..bytes.len() {
        assert!(
            State::from_snapshot(StateConfig::default(), &bytes[..len]).is_err(),
            "{len} of {} bytes",
            bytes.len()
        );
    }
}

#[test]
fn a_queue_over_a_lowered_limit_is_kept_and_takes_nothing_new_until_it_drains() {
    let mut state = State::new(StateConfig::default());
    open(&mut state, "s", 600);
    subscribe(&mut state, "s", "t", QoS::AtLeastOnce);
    for _ in 0..3 {
        publish(&mut state, message("t", QoS::AtLeastOnce, b"x"));
    }
    let small = StateConfig {
        queue_max: 2,
        ..StateConfig::default()
    };
    let mut restored = State::from_snapshot(small, &state.to_snapshot()).unwrap();
    restored.validate();
    assert!(restored.queues_over_bound());
    assert_eq!(
        restored.session("s").unwrap().queue.len(),
        3,
        "nothing acknowledged is lost"
    );
    publish(&mut restored, message("t", QoS::AtLeastOnce, b"y"));
    restored.validate();
    assert_eq!(
        restored.session("s").unwrap().queue.len(),
        3,
        "no room for more"
    );
    // Within the bounds, the bound is an invariant again.
    let within = State::from_snapshot(StateConfig::default(), &state.to_snapshot()).unwrap();
    assert!(!within.queues_over_bound());
}

#[test]
fn queue_bytes_are_counted_again_on_restore_and_checked_against_the_bound() {
    let mut state = State::new(StateConfig::default());
    open(&mut state, "s", 600);
    subscribe(&mut state, "s", "t", QoS::AtLeastOnce);
    for payload in [&b"12345"[..], b"1234567890"] {
        publish(&mut state, message("t", QoS::AtLeastOnce, payload));
    }
    assert_eq!(state.session("s").unwrap().queue_bytes(), 17);
    let bytes = state.to_snapshot();
    let restored = State::from_snapshot(StateConfig::default(), &bytes).unwrap();
    restored.validate();
    assert_eq!(restored.session("s").unwrap().queue_bytes(), 17);
    let small = StateConfig {
        queue_bytes_max: 16,
        ..StateConfig::default()
    };
    let restored = State::from_snapshot(small, &bytes).unwrap();
    restored.validate();
    assert!(restored.queues_over_bound());
    assert_eq!(restored.session("s").unwrap().queue_bytes(), 17);
}

/// `bytes` (a snapshot) with its body decoded, edited and encoded again.
fn edited(bytes: &[u8], edit: &dyn Fn(&mut SnapshotBody)) -> Vec<u8> {
    let header_len = SNAPSHOT_MAGIC.len() + 2;
    let mut body: SnapshotBody = postcard::from_bytes(&bytes[header_len..]).unwrap();
    edit(&mut body);
    postcard::to_extend(&body, bytes[..header_len].to_vec()).unwrap()
}

fn record<'b, 'a>(body: &'b mut SnapshotBody<'a>, client: &str) -> &'b mut SessionRecord<'a> {
    body.sessions
        .iter_mut()
        .find(|s| s.client_id.as_str() == client)
        .unwrap()
}

/// A snapshot that decodes but would break an invariant of the state is refused, naming the
/// invariant: each case edits one thing in the snapshot of [`rich_state`].
#[test]
fn snapshot_breaking_an_invariant_is_refused() {
    type Edit = fn(&mut SnapshotBody);
    let cases: [(&str, Edit); 15] = [
        ("disconnected session w without a disconnection time", |b| {
            record(b, "w").disconnected_at_ms = None
        }),
        ("will of w due without a pending will", |b| {
            record(b, "w").will = None
        }),
        ("will of s due without a pending will", |b| {
            record(b, "s").will_due_ms = Some(1)
        }),
        ("queue of s out of order at seq 1", |b| {
            record(b, "s").queue.swap(0, 1)
        }),
        ("seq 3 of s not yet issued", |b| {
            record(b, "s").next_seq = Seq(3)
        }),
        ("QoS 0 message queued for s at seq 2", |b| {
            record(b, "s").queue[1].qos = QoS::AtMostOnce
        }),
        ("PUBREC recorded for a QoS 1 message of s at seq 2", |b| {
            record(b, "s").queue[1].pubrec_received = true
        }),
        ("message 99 referred to, but the table holds", |b| {
            record(b, "s").queue[0].message = 99
        }),
        ("message 3 referred to by nothing", |b| {
            let extra = b.messages[0].clone();
            b.messages.push(extra);
        }),
        ("sessions out of order or repeated at \"m1\"", |b| {
            b.sessions.swap(0, 1)
        }),
        ("sessions out of order or repeated at \"m1\"", |b| {
            record(b, "m2").client_id = id("m1")
        }),
        ("subscriptions of s out of order or repeated", |b| {
            record(b, "s").subscriptions.reverse()
        }),
        (
            "incoming QoS 2 packet ids of m1 out of order or repeated",
            |b| {
                let ids = &mut record(b, "m1").incoming_qos2;
                ids.push(ids[0]);
            },
        ),
        ("retained messages out of order or repeated", |b| {
            let again = b.retained[0].clone();
            b.retained.push(again);
        }),
        ("shared cursors out of order or repeated", |b| {
            let again = b.shared_cursors[0].clone();
            b.shared_cursors.push(again);
        }),
    ];
    let bytes = rich_state().to_snapshot();
    assert_eq!(
        edited(&bytes, &|_| {}),
        bytes,
        "decoding and encoding the body again changes nothing"
    );
    for (expected, edit) in cases {
        match State::from_snapshot(StateConfig::default(), &edited(&bytes, &edit)) {
            Err(PersistError::InvariantBroken { what }) => {
                assert!(what.contains(expected), "{what:?} should name {expected:?}")
            }
            Err(other) => panic!("{expected}: {other}"),
            Ok(_) => panic!("{expected}: restored"),
        }
    }
}

#[test]
fn empty_state_snapshot_format_is_pinned() {
    let bytes = State::new(StateConfig::default()).to_snapshot();
    // Header, then empty message table, sessions, retained, cursors, local sessions, batches.
    assert_eq!(bytes, b"KEELSNAP\x02\x00\x00\x00\x00\x00\x00\x00");
}

// The generated workload: a few clients, topics and filters, so that commands meet.
