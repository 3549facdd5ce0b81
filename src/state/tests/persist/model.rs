//! The model test: random operations through the log encoding, snapshots taken and restored along the way, and corrupt bytes that must give an error.

use super::*;

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
        } => vec![open_command(
            *client,
            *clean_start,
            *expiry,
            will.as_ref(),
            now,
        )],
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
        Op::Publish(spec) => publish_commands(spec, now),
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

/// The OpenSession of an [`Op::Open`].
fn open_command(
    client: usize,
    clean_start: bool,
    expiry: usize,
    will: Option<&(PublishSpec, u32)>,
    now: u64,
) -> Command {
    Command::OpenSession {
        client_id: id(CLIENTS[client]),
        clean_start,
        expiry_secs: EXPIRIES_SECS[expiry],
        will: will.map(|(spec, delay_secs)| {
            Box::new(Will {
                message: spec_message(spec, now),
                delay_secs: *delay_secs,
            })
        }),
        now_ms: now,
        place: HERE,
    }
}

/// The commands of an [`Op::Publish`]: the retained update first, as the broker logs it.
fn publish_commands(spec: &PublishSpec, now: u64) -> Vec<Command> {
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
