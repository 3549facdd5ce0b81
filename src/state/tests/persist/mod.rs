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

mod snapshots;
use snapshots::cluster_state;
mod model;

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

/// One command of each variant, with the optional parts filled in: the sessions' and
/// subscriptions' commands, then the messages' and the local sessions' (the order the golden
/// bytes were written in).
pub(crate) fn every_command() -> Vec<Command> {
    let mut commands = session_commands();
    commands.extend(message_commands());
    commands
}

/// A subscription with every option away from its default.
fn full_subscription() -> Subscription {
    Subscription {
        options: SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        },
        identifier: NonZeroU32::new(42),
    }
}

/// The commands of [`every_command`] that open, close and end sessions and subscribe.
fn session_commands() -> Vec<Command> {
    let will = Will {
        message: full_message("will/t"),
        delay_secs: 5,
    };
    let subscribed = full_subscription();
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
    ]
}

/// The commands of [`every_command`] about messages, shared groups, local sessions and nodes.
fn message_commands() -> Vec<Command> {
    let subscribed = full_subscription();
    vec![
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
    let old = golden(include_str!("../golden/commands_v2.hex"));
    assert_eq!(old[0], 2, "written in version 2");
    assert_eq!(decode_commands(&old).unwrap(), every_command());
    // The same commands written now: only the version differs.
    let new = encode_commands(&every_command());
    assert_eq!(new[0], COMMANDS_VERSION);
    assert_eq!(new[1..], old[1..]);
}

#[test]
fn a_snapshot_written_before_the_ids_had_types_restores_the_same_state() {
    let old = golden(include_str!("../golden/snapshot_v2.hex"));
    let state = cluster_state();
    let restored = State::from_snapshot(*state.config(), &old).unwrap();
    restored.validate();
    assert_same_state(&restored, &state, 0);
    assert_eq!(restored.to_snapshot(), old);
    assert_eq!(state.to_snapshot(), old);
}
