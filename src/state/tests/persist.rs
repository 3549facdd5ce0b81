//! The durable encodings: command batches round trip, a restored snapshot is the same state
//! (same bytes, same values, same behaviour under further commands), a message shared by many
//! queues is written once, and corrupt bytes give an error, never a panic.

use std::collections::BTreeSet;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use crate::codec::{
    MqttString, PacketId, PublishProperties, QoS, RetainHandling, SubscriptionOptions, TopicFilter,
    TopicName,
};
use crate::state::persist::{SessionRecord, SnapshotBody};
use crate::state::{
    decode_commands, encode_commands, BatchId, ClientId, Command, Format, Incarnation, Message,
    NodeId, OverflowPolicy, PersistError, Place, Qos2Origin, Seq, SharedKey, State, StateConfig,
    Subscription, Will, COMMANDS_VERSION, COMMANDS_VERSION_OLDEST, SNAPSHOT_MAGIC,
};

/// Where the sessions of a test that is not about places are served.
const HERE: Place = Place {
    node: NodeId(1),
    incarnation: Incarnation(1),
};

/// Places the property tests draw from: two nodes, one of them in two runs.
const PLACES: [Place; 3] = [
    Place {
        node: NodeId(1),
        incarnation: Incarnation(1),
    },
    Place {
        node: NodeId(2),
        incarnation: Incarnation(1),
    },
    Place {
        node: NodeId(1),
        incarnation: Incarnation(2),
    },
];

fn id(s: &str) -> ClientId {
    MqttString::new(s).unwrap()
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).unwrap()
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).unwrap()
}

fn message(topic_name: &str, qos: QoS, payload: &[u8]) -> Message {
    Message {
        topic: topic(topic_name),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain: false,
        properties: PublishProperties::default(),
        publisher: None,
        received_at_ms: 0,
    }
}

/// A message with every field and property set, so that a round trip covers each one.
fn full_message(topic_name: &str) -> Message {
    Message {
        topic: topic(topic_name),
        payload: Bytes::from_static(b"payload \x00\xff"),
        qos: QoS::ExactlyOnce,
        retain: true,
        properties: PublishProperties {
            payload_format_indicator: Some(false),
            message_expiry_interval: Some(30),
            topic_alias: NonZeroU16::new(7),
            response_topic: Some(topic("reply/to")),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            user_properties: vec![(id("k"), id("v")), (id("k"), id("v2"))],
            subscription_identifiers: vec![
                NonZeroU32::new(1).unwrap(),
                NonZeroU32::new(268_435_455).unwrap(),
            ],
            content_type: Some(id("text/plain")),
        },
        publisher: Some(id("pub")),
        received_at_ms: 1_700_000_000_123,
    }
}

fn subscription(qos: QoS) -> Subscription {
    Subscription {
        options: SubscriptionOptions::new(qos),
        identifier: None,
    }
}

fn apply(state: &mut State, command: Command) {
    state.apply(command);
    state.validate();
}

fn open(state: &mut State, client: &str, expiry_secs: u32) {
    apply(
        state,
        Command::OpenSession {
            client_id: id(client),
            clean_start: false,
            expiry_secs,
            will: None,
            now_ms: 0,
            place: HERE,
        },
    );
}

fn subscribe(state: &mut State, client: &str, filter_str: &str, qos: QoS) {
    apply(
        state,
        Command::Subscribe {
            client_id: id(client),
            subscriptions: vec![(filter(filter_str), subscription(qos))],
            now_ms: 0,
        },
    );
}

fn publish(state: &mut State, message: Message) {
    apply(
        state,
        Command::Publish {
            message: Arc::new(message),
            origin: None,
            skip_shared: Vec::new(),
        },
    );
}

fn restore(state: &State) -> State {
    let restored = State::from_snapshot(*state.config(), &state.to_snapshot())
        .expect("a snapshot just written restores");
    restored.validate();
    restored
}

/// The state as far as it can be seen from outside, for comparing an original with a restored
/// copy field by field (the snapshot bytes alone could hide a field both sides left out).
fn assert_same_state(a: &State, b: &State, now_ms: u64) {
    assert_eq!(a.config(), b.config());
    assert_eq!(
        a.sessions().collect::<Vec<_>>(),
        b.sessions().collect::<Vec<_>>()
    );
    assert_eq!(
        a.retained().collect::<Vec<_>>(),
        b.retained().collect::<Vec<_>>()
    );
    assert_eq!(a.subscription_count(), b.subscription_count());
    assert_eq!(
        a.placement().local_sessions(),
        b.placement().local_sessions()
    );
    assert_eq!(a.placement().batches(), b.placement().batches());
    assert_eq!(a.placement().routes().len(), b.placement().routes().len());
    assert_eq!(a.next_deadline_ms(), b.next_deadline_ms());
    assert_eq!(a.due(now_ms), b.due(now_ms));
    assert_eq!(a.due(u64::MAX), b.due(u64::MAX));
}

/// One command of each variant, with the optional parts filled in.
pub(crate) fn every_command() -> Vec<Command> {
    let will = Will {
        message: full_message("will/t"),
        delay_secs: 5,
    };
    let subscribed = Subscription {
        options: SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        },
        identifier: NonZeroU32::new(42),
    };
    vec![
        Command::OpenSession {
            client_id: id("c"),
            clean_start: true,
            expiry_secs: u32::MAX,
            will: Some(Box::new(will)),
            now_ms: 1,
            place: HERE,
        },
        Command::CloseSession {
            client_id: id("c"),
            expiry_secs: 60,
            publish_will: true,
            now_ms: 2,
            place: HERE,
        },
        Command::EndSession {
            client_id: id("c"),
            now_ms: 3,
        },
        Command::PublishWill {
            client_id: id("c"),
            now_ms: 4,
        },
        Command::Subscribe {
            client_id: id("c"),
            subscriptions: vec![
                (filter("a/+"), subscribed),
                (filter("$share/g/#"), subscription(QoS::AtMostOnce)),
            ],
            now_ms: 5,
        },
        Command::Unsubscribe {
            client_id: id("c"),
            filters: vec![filter("a/+"), filter("$share/g/#")],
        },
        Command::Publish {
            message: Arc::new(full_message("a/b")),
            origin: Some(Qos2Origin {
                client_id: id("pub"),
                packet_id: PacketId::new(65_535).unwrap(),
                place: HERE,
            }),
            skip_shared: vec![SharedKey {
                group: "g".into(),
                filter: "a/+".into(),
            }],
        },
        Command::SetRetained {
            topic: topic("a/b"),
            message: Some(Arc::new(full_message("a/b"))),
        },
        Command::SetRetained {
            topic: topic("a/b"),
            message: None,
        },
        Command::Acked {
            client_id: id("c"),
            seq: Seq(u64::MAX),
        },
        Command::PubRecReceived {
            client_id: id("c"),
            seq: Seq(7),
        },
        Command::PubRelReceived {
            client_id: id("c"),
            packet_id: PacketId::new(1).unwrap(),
        },
        Command::ReleaseShared {
            client_id: id("c"),
            seqs: vec![Seq(1), Seq(2), Seq(300)],
        },
        Command::PublishShared {
            key: SharedKey {
                group: "g".into(),
                filter: "t/+".into(),
            },
            message: Arc::new(message("t/1", QoS::AtLeastOnce, b"s")),
            retain: false,
        },
        Command::OpenLocal {
            client_id: id("l"),
            place: PLACES[1],
        },
        Command::SubscribeLocal {
            client_id: id("l"),
            place: PLACES[1],
            subscriptions: vec![(filter("$share/g/t/+"), subscribed)],
        },
        Command::UnsubscribeLocal {
            client_id: id("l"),
            place: PLACES[1],
            filters: vec![filter("$share/g/t/+")],
        },
        Command::CloseLocal {
            client_id: id("l"),
            place: PLACES[1],
        },
        Command::NodeDown {
            node: NodeId(2),
            incarnation: Incarnation::MAX,
            now_ms: 6,
        },
    ]
}

/// The variant of a command, by a match without a wildcard: a new variant does not compile
/// here until it has a name, and [`every_command`] must then show one of it.
fn variant(command: &Command) -> &'static str {
    match command {
        Command::OpenSession { .. } => "OpenSession",
        Command::CloseSession { .. } => "CloseSession",
        Command::EndSession { .. } => "EndSession",
        Command::PublishWill { .. } => "PublishWill",
        Command::Subscribe { .. } => "Subscribe",
        Command::Unsubscribe { .. } => "Unsubscribe",
        Command::Publish { .. } => "Publish",
        Command::SetRetained { .. } => "SetRetained",
        Command::Acked { .. } => "Acked",
        Command::PubRecReceived { .. } => "PubRecReceived",
        Command::PubRelReceived { .. } => "PubRelReceived",
        Command::ReleaseShared { .. } => "ReleaseShared",
        Command::PublishShared { .. } => "PublishShared",
        Command::OpenLocal { .. } => "OpenLocal",
        Command::CloseLocal { .. } => "CloseLocal",
        Command::SubscribeLocal { .. } => "SubscribeLocal",
        Command::UnsubscribeLocal { .. } => "UnsubscribeLocal",
        Command::NodeDown { .. } => "NodeDown",
    }
}

#[test]
fn every_command_variant_round_trips() {
    let commands = every_command();
    let variants: BTreeSet<&str> = commands.iter().map(variant).collect();
    assert_eq!(variants.len(), 18, "every variant is covered");
    for command in &commands {
        let one = std::slice::from_ref(command);
        assert_eq!(decode_commands(&encode_commands(one)).unwrap(), one);
    }
    assert_eq!(
        decode_commands(&encode_commands(&commands)).unwrap(),
        commands
    );
    assert_eq!(decode_commands(&encode_commands(&[])).unwrap(), []);
}

/// The log format is what replicas and restarts read back: a change to it must be deliberate
/// (with a new `COMMANDS_VERSION`), never a side effect of editing a type.
#[test]
fn command_batch_format_is_pinned() {
    let commands = [
        Command::PubRelReceived {
            client_id: id("c"),
            packet_id: PacketId::new(258).unwrap(),
        },
        Command::Publish {
            message: Arc::new(message("t", QoS::AtLeastOnce, b"hi")),
            origin: None,
            skip_shared: Vec::new(),
        },
    ];
    let bytes = encode_commands(&commands);
    assert_eq!(
        bytes,
        [
            3, // version
            2, // two commands
            10, 1, b'c', 0x82, 0x02, // PubRelReceived "c" 258
            6, 1, b't', 2, b'h', b'i', 1, 0, // Publish "t" "hi" QoS 1, retain false
            0, 0, 0, 0, 0, 0, 0, 0, // no properties
            0, 0, // no publisher, received at 0
            0, // no origin
            0, // no shared groups to skip
        ]
    );
}

/// Rewrites the first occurrence of `from` in `bytes` as `to`.
fn patched(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the bytes to patch are there");
    bytes[at..at + from.len()].copy_from_slice(to);
    bytes
}

#[test]
fn values_breaking_their_type_rules_do_not_decode() {
    let pubrel = encode_commands(&[Command::PubRelReceived {
        client_id: id("cx"),
        packet_id: PacketId::new(9).unwrap(),
    }]);
    assert!(decode_commands(&pubrel).is_ok());
    let zero_packet_id = patched(pubrel.clone(), b"cx\x09", b"cx\x00");
    assert!(matches!(
        decode_commands(&zero_packet_id),
        Err(PersistError::Corrupt {
            format: Format::Commands,
            ..
        })
    ));
    let null_in_client_id = patched(pubrel, b"cx", b"c\0");
    assert!(decode_commands(&null_in_client_id).is_err());

    let retained = encode_commands(&[Command::SetRetained {
        topic: topic("a/b"),
        message: None,
    }]);
    assert!(decode_commands(&patched(retained, b"a/b", b"a/+")).is_err());

    let unsubscribe = encode_commands(&[Command::Unsubscribe {
        client_id: id("c"),
        filters: vec![filter("a/b/c")],
    }]);
    assert!(decode_commands(&patched(unsubscribe.clone(), b"a/b/c", b"a/#/c")).is_err());
    assert!(decode_commands(&patched(unsubscribe, b"a/b/c", b"a/b+c")).is_err());

    // QoS 3 and a retain handling of 3 do not exist; a subscription identifier is never 0.
    assert!(postcard::from_bytes::<QoS>(&[3]).is_err());
    assert!(postcard::from_bytes::<RetainHandling>(&[3]).is_err());
    assert!(postcard::from_bytes::<Subscription>(&[1, 0, 0, 0, 1, 0]).is_err());
    assert!(postcard::from_bytes::<Subscription>(&[1, 0, 0, 0, 1, 5]).is_ok());

    let key = |group: &str, filter: &str| {
        let bytes = postcard::to_stdvec(&(group, filter)).unwrap();
        postcard::from_bytes::<SharedKey>(&bytes)
    };
    assert!(key("g", "a/#").is_ok());
    for (group, filter) in [
        ("", "a"),
        ("g+", "a"),
        ("g", ""),
        ("g/x", "a"),
        ("g", "a/#/b"),
    ] {
        assert!(key(group, filter).is_err(), "{group:?} {filter:?}");
    }
}

#[test]
fn command_batch_header_is_checked() {
    assert!(matches!(
        decode_commands(&[]),
        Err(PersistError::TruncatedHeader { .. })
    ));
    // Versions this build does not know, newer or older, are refused, never decoded as one
    // of its own.
    for version in [
        COMMANDS_VERSION + 1,
        COMMANDS_VERSION_OLDEST - 1,
        0,
        u8::MAX,
    ] {
        let mut bytes = encode_commands(&every_command());
        bytes[0] = version;
        let error = decode_commands(&bytes).unwrap_err();
        assert!(matches!(
            error,
            PersistError::UnsupportedVersion { found, .. } if found == u16::from(version)
        ));
    }
    let mut bytes = encode_commands(&every_command());
    bytes[0] = 4;
    assert_eq!(
        decode_commands(&bytes).unwrap_err().to_string(),
        "unsupported command batch format version 4: this build reads versions 2 to 3"
    );
    // Every version it knows reads the same batch.
    for version in COMMANDS_VERSION_OLDEST..=COMMANDS_VERSION {
        let mut bytes = encode_commands(&every_command());
        bytes[0] = version;
        assert_eq!(decode_commands(&bytes).unwrap(), every_command());
    }
    let mut bytes = encode_commands(&every_command());
    bytes.push(0);
    assert!(matches!(
        decode_commands(&bytes),
        Err(PersistError::TrailingBytes { len: 1, .. })
    ));
}

// Bytes written by Keel before its ids and records had types (commit e9f1d2d, command batch
// version 2), each a hex dump in `golden/`: a command batch of `every_command()` and a
// snapshot of `cluster_state()` (and, in `cluster::types`, a Raft log entry holding the
// batch). Whatever the types become, these must read back to the same values, or be
// refused: never misread.

/// The bytes of a hex dump (whitespace between the digits ignored).
pub(crate) fn golden(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn a_command_batch_written_before_the_ids_had_types_reads_back_the_same() {
    let old = golden(include_str!("golden/commands_v2.hex"));
    assert_eq!(old[0], 2, "written in version 2");
    assert_eq!(decode_commands(&old).unwrap(), every_command());
    // The same commands written now: only the version differs.
    let new = encode_commands(&every_command());
    assert_eq!(new[0], COMMANDS_VERSION);
    assert_eq!(new[1..], old[1..]);
}

#[test]
fn a_snapshot_written_before_the_ids_had_types_restores_the_same_state() {
    let old = golden(include_str!("golden/snapshot_v2.hex"));
    let state = cluster_state();
    let restored = State::from_snapshot(*state.config(), &old).unwrap();
    restored.validate();
    assert_same_state(&restored, &state, 0);
    assert_eq!(restored.to_snapshot(), old);
    assert_eq!(state.to_snapshot(), old);
}

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
fn cluster_state() -> State {
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

const CLIENTS: [&str; 4] = ["c0", "c1", "c2", "c3"];
const TOPICS: [&str; 5] = ["a", "a/b", "a/c", "b/c", "$SYS/up"];
const FILTERS: [&str; 9] = [
    "a",
    "a/+",
    "a/#",
    "#",
    "+/c",
    "$share/g/a/#",
    "$share/g/+/c",
    "$share/h/#",
    "$SYS/#",
];
const EXPIRIES_SECS: [u32; 5] = [0, 5, 60, 3_600, u32::MAX];

#[derive(Debug, Clone)]
struct PublishSpec {
    topic: usize,
    qos: QoS,
    retain: bool,
    payload: Vec<u8>,
    expiry_secs: Option<u32>,
    publisher: Option<usize>,
    packet_id: u16,
}

#[derive(Debug, Clone)]
struct SubscribeSpec {
    filter: usize,
    qos: QoS,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandling,
    identifier: Option<u32>,
}

/// One step of the workload; picks of queued messages are resolved against the state.
#[derive(Debug, Clone)]
enum Op {
    Open {
        client: usize,
        clean_start: bool,
        expiry: usize,
        will: Option<(PublishSpec, u32)>,
    },
    Close {
        client: usize,
        expiry: usize,
        publish_will: bool,
    },
    Subscribe {
        client: usize,
        subscriptions: Vec<SubscribeSpec>,
    },
    Unsubscribe {
        client: usize,
        filters: Vec<usize>,
    },
    Publish(PublishSpec),
    Ack {
        client: usize,
        pick: usize,
    },
    PubRec {
        client: usize,
        pick: usize,
    },
    PubRel {
        client: usize,
        packet_id: u16,
    },
    ReleaseShared {
        client: usize,
        picks: Vec<usize>,
    },
    Tick {
        advance_ms: u64,
    },
    OpenLocal {
        client: usize,
        place: usize,
    },
    CloseLocal {
        client: usize,
        place: usize,
    },
    SubscribeLocal {
        client: usize,
        place: usize,
        subscriptions: Vec<SubscribeSpec>,
    },
    NodeDown {
        place: usize,
    },
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn publish_spec() -> impl Strategy<Value = PublishSpec> {
    (
        0..TOPICS.len(),
        qos(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..3),
        prop_oneof![Just(None), Just(Some(1)), Just(Some(10))],
        prop::option::of(0..CLIENTS.len()),
        1..4u16,
    )
        .prop_map(
            |(topic, qos, retain, payload, expiry_secs, publisher, packet_id)| PublishSpec {
                topic,
                qos,
                retain,
                payload,
                expiry_secs,
                publisher,
                packet_id,
            },
        )
}

fn subscribe_spec() -> impl Strategy<Value = SubscribeSpec> {
    (
        0..FILTERS.len(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(RetainHandling::SendAtSubscribe),
            Just(RetainHandling::SendAtNewSubscribe),
            Just(RetainHandling::DoNotSend)
        ],
        prop::option::of(1..3u32),
    )
        .prop_map(
            |(filter, qos, no_local, retain_as_published, retain_handling, identifier)| {
                SubscribeSpec {
                    filter,
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                    identifier,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS.len();
    let expiry = 0..EXPIRIES_SECS.len();
    // Weighted so that a run keeps sessions long enough to build queues, QoS 2 flows and
    // pending wills: clean starts, expiry 0 and long ticks end them.
    let will = prop::option::of((publish_spec(), prop_oneof![Just(0u32), Just(1), Just(30)]));
    prop_oneof![
        3 => (client.clone(), prop::bool::weighted(0.2), expiry.clone(), will)
            .prop_map(|(client, clean_start, expiry, will)| Op::Open { client, clean_start, expiry, will }),
        2 => (client.clone(), expiry, any::<bool>())
            .prop_map(|(client, expiry, publish_will)| Op::Close { client, expiry, publish_will }),
        4 => (client.clone(), prop::collection::vec(subscribe_spec(), 1..3))
            .prop_map(|(client, subscriptions)| Op::Subscribe { client, subscriptions }),
        1 => (client.clone(), prop::collection::vec(0..FILTERS.len(), 1..3))
            .prop_map(|(client, filters)| Op::Unsubscribe { client, filters }),
        8 => publish_spec().prop_map(Op::Publish),
        2 => (client.clone(), 0..4usize).prop_map(|(client, pick)| Op::Ack { client, pick }),
        3 => (client.clone(), 0..4usize).prop_map(|(client, pick)| Op::PubRec { client, pick }),
        1 => (client.clone(), 1..4u16).prop_map(|(client, packet_id)| Op::PubRel { client, packet_id }),
        1 => (client.clone(), prop::collection::vec(0..4usize, 1..3))
            .prop_map(|(client, picks)| Op::ReleaseShared { client, picks }),
        2 => prop_oneof![4 => 0..3_000u64, 1 => Just(60_000), 1 => Just(10_000_000)]
            .prop_map(|advance_ms| Op::Tick { advance_ms }),
        2 => (client.clone(), 0..PLACES.len())
            .prop_map(|(client, place)| Op::OpenLocal { client, place }),
        1 => (client.clone(), 0..PLACES.len())
            .prop_map(|(client, place)| Op::CloseLocal { client, place }),
        2 => (client, 0..PLACES.len(), prop::collection::vec(subscribe_spec(), 1..3))
            .prop_map(|(client, place, subscriptions)| Op::SubscribeLocal { client, place, subscriptions }),
        1 => (0..PLACES.len()).prop_map(|place| Op::NodeDown { place }),
    ]
}

fn config() -> impl Strategy<Value = StateConfig> {
    (
        prop_oneof![Just(3usize), Just(1000)],
        // Small enough that a few queued messages hit it (payloads are a few bytes).
        prop_oneof![Just(24usize), Just(64 * 1024 * 1024)],
        prop_oneof![
            Just(OverflowPolicy::DropNew),
            Just(OverflowPolicy::DropOldest)
        ],
    )
        .prop_map(|(queue_max, queue_bytes_max, overflow)| StateConfig {
            queue_max,
            queue_bytes_max,
            overflow,
            ..StateConfig::default()
        })
}

fn spec_message(spec: &PublishSpec, now_ms: u64) -> Message {
    Message {
        topic: topic(TOPICS[spec.topic]),
        payload: Bytes::from(spec.payload.clone()),
        qos: spec.qos,
        retain: spec.retain,
        properties: PublishProperties {
            message_expiry_interval: spec.expiry_secs,
            ..PublishProperties::default()
        },
        publisher: spec.publisher.map(|c| id(CLIENTS[c])),
        received_at_ms: now_ms,
    }
}

/// The seq of the `pick`th queued message of `client` at `qos` or above, or one that is not
/// queued.
fn picked_seq(state: &State, client: &ClientId, pick: usize, qos: QoS) -> Seq {
    let Some(session) = state.session(client) else {
        return Seq(pick as u64);
    };
    session
        .queue
        .iter()
        .filter(|q| q.qos >= qos)
        .nth(pick)
        .map_or(Seq(session.next_seq.0 + pick as u64), |q| q.seq)
}

fn subscription_of(s: &SubscribeSpec) -> (TopicFilter, Subscription) {
    let options = SubscriptionOptions {
        qos: s.qos,
        no_local: s.no_local,
        retain_as_published: s.retain_as_published,
        retain_handling: s.retain_handling,
    };
    let identifier = s.identifier.and_then(NonZeroU32::new);
    (
        filter(FILTERS[s.filter]),
        Subscription {
            options,
            identifier,
        },
    )
}

/// The commands one step calls for, as the broker would issue them at `now_ms`.
fn commands_for(op: &Op, state: &State, now_ms: &mut u64) -> Vec<Command> {
    let now = *now_ms;
    match op {
        Op::Open {
            client,
            clean_start,
            expiry,
            will,
        } => vec![Command::OpenSession {
            client_id: id(CLIENTS[*client]),
            clean_start: *clean_start,
            expiry_secs: EXPIRIES_SECS[*expiry],
            will: will.as_ref().map(|(spec, delay_secs)| {
                Box::new(Will {
                    message: spec_message(spec, now),
                    delay_secs: *delay_secs,
                })
            }),
            now_ms: now,
            place: HERE,
        }],
        Op::Close {
            client,
            expiry,
            publish_will,
        } => vec![Command::CloseSession {
            client_id: id(CLIENTS[*client]),
            expiry_secs: EXPIRIES_SECS[*expiry],
            publish_will: *publish_will,
            now_ms: now,
            place: HERE,
        }],
        Op::Subscribe {
            client,
            subscriptions,
        } => vec![Command::Subscribe {
            client_id: id(CLIENTS[*client]),
            subscriptions: subscriptions.iter().map(subscription_of).collect(),
            now_ms: now,
        }],
        Op::Unsubscribe { client, filters } => vec![Command::Unsubscribe {
            client_id: id(CLIENTS[*client]),
            filters: filters.iter().map(|&f| filter(FILTERS[f])).collect(),
        }],
        Op::Publish(spec) => {
            let message = Arc::new(spec_message(spec, now));
            let mut commands = Vec::new();
            if message.retain {
                commands.push(Command::SetRetained {
                    topic: message.topic.clone(),
                    message: (!message.payload.is_empty()).then(|| message.clone()),
                });
            }
            let origin = match (spec.qos, spec.publisher) {
                (QoS::ExactlyOnce, Some(c)) => Some(Qos2Origin {
                    client_id: id(CLIENTS[c]),
                    packet_id: PacketId::new(spec.packet_id).unwrap(),
                    place: HERE,
                }),
                _ => None,
            };
            commands.push(Command::Publish {
                message,
                origin,
                skip_shared: Vec::new(),
            });
            commands
        }
        Op::Ack { client, pick } => {
            let client_id = id(CLIENTS[*client]);
            let seq = picked_seq(state, &client_id, *pick, QoS::AtLeastOnce);
            vec![Command::Acked { client_id, seq }]
        }
        Op::PubRec { client, pick } => {
            let client_id = id(CLIENTS[*client]);
            // Mostly QoS 2 messages, the ones PUBREC is for.
            let seq = picked_seq(state, &client_id, *pick, QoS::ExactlyOnce);
            vec![Command::PubRecReceived { client_id, seq }]
        }
        Op::PubRel { client, packet_id } => vec![Command::PubRelReceived {
            client_id: id(CLIENTS[*client]),
            packet_id: PacketId::new(*packet_id).unwrap(),
        }],
        Op::ReleaseShared { client, picks } => {
            let client_id = id(CLIENTS[*client]);
            let seqs = picks
                .iter()
                .map(|&pick| picked_seq(state, &client_id, pick, QoS::AtLeastOnce))
                .collect();
            vec![Command::ReleaseShared { client_id, seqs }]
        }
        Op::Tick { advance_ms } => {
            *now_ms += advance_ms;
            state.due(*now_ms)
        }
        Op::OpenLocal { client, place } => vec![Command::OpenLocal {
            client_id: id(CLIENTS[*client]),
            place: PLACES[*place],
        }],
        Op::CloseLocal { client, place } => vec![Command::CloseLocal {
            client_id: id(CLIENTS[*client]),
            place: PLACES[*place],
        }],
        Op::SubscribeLocal {
            client,
            place,
            subscriptions,
        } => vec![Command::SubscribeLocal {
            client_id: id(CLIENTS[*client]),
            place: PLACES[*place],
            subscriptions: subscriptions.iter().map(subscription_of).collect(),
        }],
        Op::NodeDown { place } => vec![Command::NodeDown {
            node: PLACES[*place].node,
            incarnation: Incarnation(PLACES[*place].incarnation.0 + 1),
            now_ms: now,
        }],
    }
}

/// Applies `ops` to `state`, checking after each command that it survives the log encoding
/// and that the state holds its invariants.
fn run(state: &mut State, ops: &[Op], now_ms: &mut u64) {
    for op in ops {
        for command in commands_for(op, state, now_ms) {
            let one = std::slice::from_ref(&command);
            assert_eq!(decode_commands(&encode_commands(one)).unwrap(), one);
            state.apply(command);
            state.validate();
        }
    }
}

/// A change to snapshot bytes, at a position taken modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match *mutation {
        Mutation::Flip { at, mask } => bytes[at % len] ^= mask,
        Mutation::Set { at, byte } => bytes[at % len] = byte,
        Mutation::Insert { at, byte } => bytes.insert(at % (len + 1), byte),
        Mutation::Remove { at } => {
            bytes.remove(at % len);
        }
        Mutation::Truncate { at } => bytes.truncate(at % len),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A snapshot restores to a state with the same bytes, the same values and the same
    /// behaviour: the same further commands give the same reports and the same snapshots.
    #[test]
    fn restored_snapshot_is_the_same_state(
        config in config(),
        prefix in prop::collection::vec(op(), 0..80),
        suffix in prop::collection::vec(op(), 0..30),
    ) {
        let mut original = State::new(config);
        let mut now_ms = 0;
        run(&mut original, &prefix, &mut now_ms);
        let bytes = original.to_snapshot();
        let mut restored = State::from_snapshot(config, &bytes).expect("a snapshot restores");
        restored.validate();
        prop_assert_eq!(restored.to_snapshot(), bytes);
        assert_same_state(&original, &restored, now_ms);

        for op in &suffix {
            let commands = commands_for(op, &original, &mut now_ms);
            prop_assert_eq!(original.due(now_ms), restored.due(now_ms));
            for command in commands {
                let from_original = original.apply(command.clone());
                let from_restored = restored.apply(command);
                original.validate();
                restored.validate();
                prop_assert_eq!(from_original, from_restored);
            }
        }
        prop_assert_eq!(original.to_snapshot(), restored.to_snapshot());
        assert_same_state(&original, &restored, now_ms);
    }

    /// Corrupt snapshot bytes give an error or, where they still decode, a state that holds
    /// every invariant; never a panic.
    #[test]
    fn corrupt_snapshot_gives_an_error_never_a_panic(
        ops in prop::collection::vec(op(), 0..40),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let config = StateConfig::default();
        let mut state = State::new(config);
        run(&mut state, &ops, &mut 0);
        let mut bytes = state.to_snapshot();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        if let Ok(restored) = State::from_snapshot(config, &bytes) {
            restored.validate();
            let again = restored.to_snapshot();
            prop_assert!(State::from_snapshot(config, &again).is_ok());
        }
    }

    /// Random bytes after a valid header, and random command batches, never panic.
    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut snapshot = State::new(StateConfig::default()).to_snapshot();
        snapshot.truncate(10);
        snapshot.extend_from_slice(&body);
        let _ = State::from_snapshot(StateConfig::default(), &snapshot);
        let mut batch = vec![1];
        batch.extend_from_slice(&body);
        let _ = decode_commands(&batch);
    }
}
