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
    let user = vec![(s("region"), s("eu-1")), (s("trace"), s("7f"))];
    let connack = ConnAck {
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
            user_properties: user.clone(),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(30),
            response_information: Some(s("reply/")),
            server_reference: None,
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(Bytes::from_static(b"v=server-signature")),
        },
    };
    let connect = Connect {
        protocol: v5,
        clean_start: false,
        keep_alive: 45,
        properties: ConnectProperties {
            session_expiry_interval: Some(86_400),
            receive_maximum: NonZeroU16::new(32),
            maximum_packet_size: NonZeroU32::new(262_144),
            topic_alias_maximum: Some(8),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: user.clone(),
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
                user_properties: user.clone(),
            },
        }),
        username: Some(s("sensor")),
        password: Some(Bytes::from_static(b"\x00\xffbinary")),
    };
    let auth = |reason_code, data: &'static [u8]| {
        Packet::Auth(Auth {
            reason_code,
            properties: AuthProperties {
                authentication_method: Some(s("SCRAM-SHA-256")),
                authentication_data: Some(Bytes::from_static(data)),
                reason_string: None,
                user_properties: Vec::new(),
            },
        })
    };
    let mut server_moved = Disconnect::new(ReasonCode::ServerMoved);
    server_moved.properties.server_reference = Some(s("broker-2.example:1883"));
    server_moved.properties.reason_string = Some(s("rebalancing"));
    let mut publish_to_subscriber = Publish {
        dup: true,
        qos_pid: QosPid::ExactlyOnce(pid(65_535)),
        retain: false,
        topic: TopicName::new("sensors/42/temp").expect("valid topic"),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"{\"c\":21.5}"),
    };
    publish_to_subscriber.properties.subscription_identifiers = vec![
        NonZeroU32::MIN,
        NonZeroU32::new(268_435_455).expect("not zero"),
    ];
    publish_to_subscriber.properties.topic_alias = NonZeroU16::new(1);
    let mut alias_only = publish_to_subscriber.clone();
    alias_only.topic = TopicName::default();
    alias_only.properties.subscription_identifiers.clear();
    let mut no_local = SubscriptionOptions::new(QoS::AtLeastOnce);
    no_local.no_local = true;
    no_local.retain_as_published = true;
    no_local.retain_handling = RetainHandling::DoNotSend;
    let mut new_only = SubscriptionOptions::new(QoS::ExactlyOnce);
    new_only.retain_handling = RetainHandling::SendAtNewSubscribe;
    let subscribe_v5 = Subscribe {
        packet_id: pid(7),
        properties: SubscribeProperties {
            subscription_identifier: NonZeroU32::new(300),
            user_properties: user.clone(),
        },
        filters: vec![
            (
                TopicFilter::new("$share/workers/jobs/+").expect("valid filter"),
                new_only,
            ),
            (
                TopicFilter::new("sensors/#").expect("valid filter"),
                no_local,
            ),
            (
                TopicFilter::new("+/+/status").expect("valid filter"),
                SubscriptionOptions::new(QoS::AtMostOnce),
            ),
        ],
    };
    let suback_v5 = SubAck {
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
    };
    let unsuback_v5 = UnsubAck {
        packet_id: pid(8),
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
    };
    let mut puback_no_subscribers = PubReply::new(pid(2));
    puback_no_subscribers.reason_code = ReasonCode::NoMatchingSubscribers;
    puback_no_subscribers.properties.reason_string = Some(s("nobody listens"));
    let mut pubrel_not_found = PubReply::new(pid(3));
    pubrel_not_found.reason_code = ReasonCode::PacketIdentifierNotFound;
    let subscribe_v3 = Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties::default(),
        filters: vec![
            (
                TopicFilter::new("a/+/c").expect("valid filter"),
                SubscriptionOptions::new(QoS::AtMostOnce),
            ),
            (
                TopicFilter::new("#").expect("valid filter"),
                SubscriptionOptions::new(QoS::ExactlyOnce),
            ),
            (
                TopicFilter::new("$SYS/broker/+").expect("valid filter"),
                SubscriptionOptions::new(QoS::AtLeastOnce),
            ),
        ],
    };
    let suback_v3 = SubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: vec![
            ReasonCode::Success,
            ReasonCode::UnspecifiedError,
            ReasonCode::GrantedQoS1,
        ],
    };
    let connack_v3_session = ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    };
    let mut seeds = vec![
        (
            "decode_v5",
            v5,
            "v5-connack-all-properties".to_string(),
            Packet::ConnAck(connack),
        ),
        (
            "decode_v5",
            v5,
            "v5-connect-all-properties".to_string(),
            Packet::Connect(Box::new(connect.clone())),
        ),
        (
            "decode_connect",
            v5,
            "v5-connect-all-properties".to_string(),
            Packet::Connect(Box::new(connect)),
        ),
        (
            "decode_v5",
            v5,
            "v5-auth-continue".to_string(),
            auth(ReasonCode::ContinueAuthentication, b"r=nonce,s=salt,i=4096"),
        ),
        (
            "decode_v5",
            v5,
            "v5-auth-reauthenticate".to_string(),
            auth(ReasonCode::ReAuthenticate, b"n,,n=user"),
        ),
        (
            "decode_v5",
            v5,
            "v5-disconnect-session-taken-over".to_string(),
            Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver)),
        ),
        (
            "decode_v5",
            v5,
            "v5-disconnect-server-moved".to_string(),
            Packet::Disconnect(server_moved),
        ),
        (
            "decode_v5",
            v5,
            "v5-publish-subscription-ids".to_string(),
            Packet::Publish(publish_to_subscriber),
        ),
        (
            "decode_v5",
            v5,
            "v5-publish-topic-alias-only".to_string(),
            Packet::Publish(alias_only),
        ),
        (
            "decode_v5",
            v5,
            "v5-subscribe-shared-options".to_string(),
            Packet::Subscribe(subscribe_v5),
        ),
        (
            "decode_v5",
            v5,
            "v5-suback-mixed".to_string(),
            Packet::SubAck(suback_v5),
        ),
        (
            "decode_v5",
            v5,
            "v5-unsuback-mixed".to_string(),
            Packet::UnsubAck(unsuback_v5),
        ),
        (
            "decode_v5",
            v5,
            "v5-puback-no-matching-subscribers".to_string(),
            Packet::PubAck(puback_no_subscribers),
        ),
        (
            "decode_v5",
            v5,
            "v5-pubrel-packet-id-not-found".to_string(),
            Packet::PubRel(pubrel_not_found),
        ),
    ];
    for (target, protocol, tag) in [
        ("decode_v3_1", Protocol::V3_1, "v31"),
        ("decode_v3_1_1", Protocol::V3_1_1, "v311"),
    ] {
        seeds.push((
            target,
            protocol,
            format!("{tag}-subscribe-three-filters"),
            Packet::Subscribe(subscribe_v3.clone()),
        ));
        seeds.push((
            target,
            protocol,
            format!("{tag}-suback-with-failure"),
            Packet::SubAck(suback_v3.clone()),
        ));
        seeds.push((
            target,
            protocol,
            format!("{tag}-connack-session-present"),
            Packet::ConnAck(connack_v3_session.clone()),
        ));
    }
    seeds
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
