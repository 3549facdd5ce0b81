//! Writes the seeds that no captured client or broker sent, encoded by Keel itself, and the
//! `roundtrip` seeds: one generator input per (protocol, packet type).
//!
//! Run from `fuzz/`: `cargo run --example encode_seeds`. It replaces `seeds/*/keel-*` and
//! `seeds/roundtrip/gen-*`, and prints what it wrote.

use std::fs;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::Path;

use arbitrary::Unstructured;
use bytes::{Bytes, BytesMut};
use keel::codec::arbitrary::packet;
use keel::codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, LastWill, MqttString, Packet, PacketId, PacketType, Protocol, PubReply, Publish,
    PublishProperties, QoS, QosPid, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeProperties, SubscriptionOptions, TopicFilter, TopicName, UnsubAck, WillProperties,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for target in [
        "decode_v3_1",
        "decode_v3_1_1",
        "decode_v5",
        "decode_connect",
        "roundtrip",
    ] {
        let dir = seeds.join(target);
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("keel-") || name.starts_with("gen-") {
                fs::remove_file(&path)?;
            }
        }
    }
    for (target, protocol, name, packet) in encoded_seeds() {
        let mut buf = BytesMut::new();
        packet
            .encode(protocol, &mut buf)
            .expect("seed packets are valid");
        fs::write(seeds.join(target).join(format!("keel-{name}")), &buf)?;
        println!("{target}/keel-{name}: {} bytes", buf.len());
    }
    for (protocol, kind, input) in generator_inputs() {
        let name = format!(
            "gen-{}-{}",
            protocol_tag(protocol),
            kind.name().to_lowercase()
        );
        fs::write(seeds.join("roundtrip").join(&name), &input)?;
        println!("roundtrip/{name}: {} bytes", input.len());
    }
    Ok(())
}

fn protocol_tag(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::V3_1 => "v31",
        Protocol::V3_1_1 => "v311",
        Protocol::V5 => "v5",
    }
}

fn s(text: &str) -> MqttString {
    MqttString::new(text).expect("seed strings are valid")
}

fn pid(value: u16) -> PacketId {
    PacketId::new(value).expect("seed packet ids are not zero")
}

/// Packets mosquitto's clients and broker did not send in the capture: AUTH, DISCONNECT from
/// the server, a CONNACK with every property, refusals and failures in SUBACK, acks with
/// reason codes, shared subscriptions with every option, subscription identifiers.
fn encoded_seeds() -> Vec<(&'static str, Protocol, String, Packet)> {
    let v5 = Protocol::V5;
    let connect = connect_all_properties();
    let subscriber_publish = publish_to_subscriber();
    let mut alias_only = subscriber_publish.clone();
    alias_only.topic = TopicName::default();
    alias_only.properties.subscription_identifiers.clear();
    let mut puback_no_subscribers = PubReply::new(pid(2));
    puback_no_subscribers.reason_code = ReasonCode::NoMatchingSubscribers;
    puback_no_subscribers.properties.reason_string = Some(s("nobody listens"));
    let mut pubrel_not_found = PubReply::new(pid(3));
    pubrel_not_found.reason_code = ReasonCode::PacketIdentifierNotFound;
    let unsuback_v5 = UnsubAck {
        packet_id: pid(8),
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
    };
    let v5_packets = [
        (
            "connack-all-properties",
            Packet::ConnAck(connack_all_properties()),
        ),
        (
            "connect-all-properties",
            Packet::Connect(Box::new(connect.clone())),
        ),
        (
            "auth-continue",
            auth(ReasonCode::ContinueAuthentication, b"r=nonce,s=salt,i=4096"),
        ),
        (
            "auth-reauthenticate",
            auth(ReasonCode::ReAuthenticate, b"n,,n=user"),
        ),
        (
            "disconnect-session-taken-over",
            Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver)),
        ),
        (
            "disconnect-server-moved",
            Packet::Disconnect(server_moved()),
        ),
        (
            "publish-subscription-ids",
            Packet::Publish(subscriber_publish),
        ),
        ("publish-topic-alias-only", Packet::Publish(alias_only)),
        (
            "subscribe-shared-options",
            Packet::Subscribe(subscribe_v5()),
        ),
        ("suback-mixed", Packet::SubAck(suback_v5())),
        ("unsuback-mixed", Packet::UnsubAck(unsuback_v5)),
        (
            "puback-no-matching-subscribers",
            Packet::PubAck(puback_no_subscribers),
        ),
        (
            "pubrel-packet-id-not-found",
            Packet::PubRel(pubrel_not_found),
        ),
    ];
    let mut seeds: Vec<_> = v5_packets
        .into_iter()
        .map(|(name, packet)| ("decode_v5", v5, format!("v5-{name}"), packet))
        .collect();
    seeds.push((
        "decode_connect",
        v5,
        "v5-connect-all-properties".to_string(),
        Packet::Connect(Box::new(connect)),
    ));
    let connack_v3_session = ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    };
    for (target, protocol, tag) in [
        ("decode_v3_1", Protocol::V3_1, "v31"),
        ("decode_v3_1_1", Protocol::V3_1_1, "v311"),
    ] {
        let v3_packets = [
            ("subscribe-three-filters", Packet::Subscribe(subscribe_v3())),
            ("suback-with-failure", Packet::SubAck(suback_v3())),
            (
                "connack-session-present",
                Packet::ConnAck(connack_v3_session.clone()),
            ),
        ];
        for (name, packet) in v3_packets {
            seeds.push((target, protocol, format!("{tag}-{name}"), packet));
        }
    }
    seeds
}

fn user_properties() -> Vec<(MqttString, MqttString)> {
    vec![(s("region"), s("eu-1")), (s("trace"), s("7f"))]
}

fn connack_all_properties() -> ConnAck {
    ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: NonZeroU32::new(1 << 20),
            assigned_client_identifier: Some(s("keel-auto-1")),
            topic_alias_maximum: Some(16),
            reason_string: Some(s("welcome")),
            user_properties: user_properties(),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(30),
            response_information: Some(s("reply/")),
            server_reference: None,
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(Bytes::from_static(b"v=server-signature")),
        },
    }
}

fn connect_all_properties() -> Connect {
    Connect {
        protocol: Protocol::V5,
        clean_start: false,
        keep_alive: 45,
        properties: ConnectProperties {
            session_expiry_interval: Some(86_400),
            receive_maximum: NonZeroU16::new(32),
            maximum_packet_size: NonZeroU32::new(262_144),
            topic_alias_maximum: Some(8),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: user_properties(),
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(Bytes::from_static(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")),
        },
        client_id: s("sensor-42"),
        will: Some(LastWill {
            topic: TopicName::new("status/sensor-42").expect("valid topic"),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(10),
                payload_format_indicator: Some(true),
                message_expiry_interval: Some(600),
                content_type: Some(s("text/plain")),
                response_topic: Some(TopicName::new("status/ack").expect("valid topic")),
                correlation_data: Some(Bytes::from_static(&[0xde, 0xad])),
                user_properties: user_properties(),
            },
        }),
        username: Some(s("sensor")),
        password: Some(Bytes::from_static(b"\x00\xffbinary")),
    }
}

fn auth(reason_code: ReasonCode, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth {
        reason_code,
        properties: AuthProperties {
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(Bytes::from_static(data)),
            reason_string: None,
            user_properties: Vec::new(),
        },
    })
}

fn server_moved() -> Disconnect {
    let mut server_moved = Disconnect::new(ReasonCode::ServerMoved);
    server_moved.properties.server_reference = Some(s("broker-2.example:1883"));
    server_moved.properties.reason_string = Some(s("rebalancing"));
    server_moved
}

fn publish_to_subscriber() -> Publish {
    let mut publish = Publish {
        dup: true,
        qos_pid: QosPid::ExactlyOnce(pid(65_535)),
        retain: false,
        topic: TopicName::new("sensors/42/temp").expect("valid topic"),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"{\"c\":21.5}"),
    };
    publish.properties.subscription_identifiers = vec![
        NonZeroU32::MIN,
        NonZeroU32::new(268_435_455).expect("not zero"),
    ];
    publish.properties.topic_alias = NonZeroU16::new(1);
    publish
}

fn filter(text: &str) -> TopicFilter {
    TopicFilter::new(text).expect("valid filter")
}

fn subscribe_v5() -> Subscribe {
    let mut no_local = SubscriptionOptions::new(QoS::AtLeastOnce);
    no_local.no_local = true;
    no_local.retain_as_published = true;
    no_local.retain_handling = RetainHandling::DoNotSend;
    let mut new_only = SubscriptionOptions::new(QoS::ExactlyOnce);
    new_only.retain_handling = RetainHandling::SendAtNewSubscribe;
    Subscribe {
        packet_id: pid(7),
        properties: SubscribeProperties {
            subscription_identifier: NonZeroU32::new(300),
            user_properties: user_properties(),
        },
        filters: vec![
            (filter("$share/workers/jobs/+"), new_only),
            (filter("sensors/#"), no_local),
            (
                filter("+/+/status"),
                SubscriptionOptions::new(QoS::AtMostOnce),
            ),
        ],
    }
}

fn suback_v5() -> SubAck {
    SubAck {
        packet_id: pid(7),
        properties: AckProperties {
            reason_string: Some(s("partly refused")),
            user_properties: Vec::new(),
        },
        reason_codes: vec![
            ReasonCode::GrantedQoS2,
            ReasonCode::GrantedQoS1,
            ReasonCode::Success,
            ReasonCode::SharedSubscriptionsNotSupported,
            ReasonCode::NotAuthorized,
        ],
    }
}

fn subscribe_v3() -> Subscribe {
    Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties::default(),
        filters: vec![
            (filter("a/+/c"), SubscriptionOptions::new(QoS::AtMostOnce)),
            (filter("#"), SubscriptionOptions::new(QoS::ExactlyOnce)),
            (
                filter("$SYS/broker/+"),
                SubscriptionOptions::new(QoS::AtLeastOnce),
            ),
        ],
    }
}

fn suback_v3() -> SubAck {
    SubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: vec![
            ReasonCode::Success,
            ReasonCode::UnspecifiedError,
            ReasonCode::GrantedQoS1,
        ],
    }
}

/// For each protocol and packet type, an input that makes `keel::codec::arbitrary::packet`
/// pick that protocol and type: a two-byte prefix found by search, then a fixed pseudo-random
/// tail for the fields.
fn generator_inputs() -> Vec<(Protocol, PacketType, Vec<u8>)> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let tail: Vec<u8> = (0..192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut found = Vec::new();
    for protocol in Protocol::ALL {
        for kind in PacketType::ALL
            .into_iter()
            .filter(|k| k.exists_in(protocol))
        {
            let input = (0..=u16::MAX).find_map(|prefix| {
                let mut input = prefix.to_be_bytes().to_vec();
                input.extend_from_slice(&tail);
                let mut u = Unstructured::new(&input);
                let chosen = *u.choose(&Protocol::ALL).ok()?;
                let generated = packet(&mut u, chosen).ok()?;
                (chosen == protocol && generated.packet_type() == kind).then_some(input)
            });
            found.push((
                protocol,
                kind,
                input.expect("every protocol and type is reachable"),
            ));
        }
    }
    found
}
