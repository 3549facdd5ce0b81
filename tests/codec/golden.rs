//! Golden bytes of every packet type in MQTT 3.1, 3.1.1 and 5.0: each byte string decodes to
//! exactly the expected packet, consumes the whole buffer, and the packet encodes back to
//! exactly those bytes. Where the encoder always writes a shorter form of a packet (a v5
//! PUBACK with reason Success and no properties, say), the test says so and checks both forms.
//!
//! Byte strings come from the examples of the specs where they give one (MQTT 3.1.1 §2.2.3,
//! §3.1.2.10, §3.3.2.3, §3.8.3, §3.9.3, §3.10.3; MQTT 5.0 §1.5.5, §3.1.2.11) and are derived
//! field by field from the spec text otherwise, with a comment per field. Properties are
//! written in identifier order, which is the order the encoder uses.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use keel::codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Decoder, Disconnect, DisconnectProperties, FixedHeader, LastWill, MqttString, Packet, PacketId,
    Protocol, PubReply, Publish, PublishProperties, QoS, QosPid, ReasonCode, RetainHandling,
    SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, TopicFilter, TopicName, UnsubAck,
    Unsubscribe, UnsubscribeProperties, UserProperty, WillProperties, PACKET_SIZE_LIMIT,
};

/// MQTT 3.1 and 3.1.1 lay out every packet but CONNECT the same way.
const V3: [Protocol; 2] = [Protocol::V3_1, Protocol::V3_1_1];

// --- Helpers -------------------------------------------------------------------------------

/// Decodes `bytes` as one whole packet of `protocol` and checks that nothing is left over.
fn decode(protocol: Protocol, bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT)
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("{protocol:?} refused {bytes:02x?}: {e}"))
        .unwrap_or_else(|| panic!("{protocol:?} found {bytes:02x?} incomplete"));
    assert!(
        buf.is_empty(),
        "{protocol:?}: {} bytes left over",
        buf.len()
    );
    packet
}

/// Encodes `packet` with both encoders and checks that they agree with `encoded_len`.
fn encode(protocol: Protocol, packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let written = packet.encode(protocol, &mut buf).expect("packet encodes");
    assert_eq!(written, buf.len(), "encode reports the bytes it wrote");
    assert_eq!(packet.encoded_len(protocol), Ok(buf.len()), "encoded_len");
    let mut exact = vec![0; buf.len()];
    assert_eq!(packet.encode_to_slice(protocol, &mut exact), Ok(buf.len()));
    assert_eq!(exact, buf, "encode_to_slice writes what encode writes");
    buf.to_vec()
}

/// `bytes` decode to exactly `expected`, and `expected` encodes to exactly `bytes`.
fn assert_golden(protocol: Protocol, bytes: &[u8], expected: Packet) {
    assert_eq!(decode(protocol, bytes), expected, "{protocol:?} decoding");
    assert_eq!(encode(protocol, &expected), bytes, "{protocol:?} encoding");
}

/// `bytes` decode to `expected`, which the encoder writes in the shorter form `canonical`.
fn assert_decodes_and_shortens(
    protocol: Protocol,
    bytes: &[u8],
    expected: Packet,
    canonical: &[u8],
) {
    assert_eq!(decode(protocol, bytes), expected, "{protocol:?} decoding");
    assert_eq!(
        encode(protocol, &expected),
        canonical,
        "{protocol:?} encoding"
    );
    assert_eq!(
        decode(protocol, canonical),
        expected,
        "{protocol:?} decoding the short form"
    );
}

/// A CONNECT is golden for a server-side decoder, which learns the protocol from it, and
/// encodes the same whatever protocol the caller passes: its own `protocol` decides.
fn assert_connect_golden(bytes: &[u8], expected: Connect) {
    let mut decoder = Decoder::new(PACKET_SIZE_LIMIT);
    let mut buf = BytesMut::from(bytes);
    let packet = Packet::Connect(Box::new(expected));
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(packet.clone())),
        "decoding"
    );
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    let Packet::Connect(connect) = &packet else {
        unreachable!("built as a CONNECT above")
    };
    assert_eq!(
        decoder.protocol(),
        Some(connect.protocol),
        "protocol learned"
    );
    for protocol in Protocol::ALL {
        assert_eq!(
            encode(protocol, &packet),
            bytes,
            "encoding with {protocol:?}"
        );
    }
}

fn string(s: &str) -> MqttString {
    MqttString::new(s).expect("valid MQTT string")
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).expect("valid topic name")
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).expect("valid topic filter")
}

fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("packet id is not zero")
}

fn user(name: &str, value: &str) -> UserProperty {
    (string(name), string(value))
}

fn reply(packet_id: u16, reason_code: ReasonCode, properties: AckProperties) -> PubReply {
    PubReply {
        packet_id: pid(packet_id),
        reason_code,
        properties,
    }
}

/// A v3 CONNECT value with the fields every test sets; the rest default to absent.
fn connect(protocol: Protocol, clean_start: bool, keep_alive: u16, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start,
        keep_alive,
        properties: ConnectProperties::default(),
        client_id: string(client_id),
        will: None,
        username: None,
        password: None,
    }
}

fn publish(qos_pid: QosPid, topic_name: &str, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos_pid,
        retain: false,
        topic: topic(topic_name),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(payload),
    }
}

// --- Remaining length (MQTT 3.1.1 §2.2.3, MQTT 5.0 §1.5.5) ---------------------------------

/// The table of §2.2.3 / §1.5.5: the smallest and largest value of each encoded length.
const REMAINING_LENGTH_TABLE: [(usize, &[u8]); 8] = [
    (0, &[0x00]),
    (127, &[0x7F]),
    (128, &[0x80, 0x01]),
    (16_383, &[0xFF, 0x7F]),
    (16_384, &[0x80, 0x80, 0x01]),
    (2_097_151, &[0xFF, 0xFF, 0x7F]),
    (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
    (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
];

#[test]
fn remaining_length_table_of_the_spec_parses_in_a_fixed_header() {
    for (remaining_len, encoded) in REMAINING_LENGTH_TABLE {
        let mut header = vec![0x30];
        header.extend_from_slice(encoded);
        let parsed = FixedHeader::parse(&header, Some(Protocol::V5))
            .expect("valid fixed header")
            .expect("complete fixed header");
        assert_eq!(parsed.remaining_len, remaining_len, "{encoded:02x?}");
        assert_eq!(parsed.header_len, 1 + encoded.len(), "{encoded:02x?}");
        let decoder = Decoder::with_protocol(Protocol::V5, PACKET_SIZE_LIMIT);
        assert_eq!(
            decoder.pending_packet_len(&header),
            Some(1 + encoded.len() + remaining_len)
        );
    }
}

#[test]
fn publish_at_each_remaining_length_boundary_round_trips() {
    // Every row but 0 (no PUBLISH is that short) and the 256 MB maximum: a QoS 0 PUBLISH to
    // topic "a" (3 bytes) whose payload fills the rest.
    for (remaining_len, encoded) in &REMAINING_LENGTH_TABLE[1..7] {
        let payload = vec![0xA5; remaining_len - 3];
        let mut bytes = vec![0x30]; // PUBLISH, QoS 0
        bytes.extend_from_slice(encoded); // remaining length
        bytes.extend_from_slice(&[0x00, 0x01, b'a']); // topic name "a"
        bytes.extend_from_slice(&payload); // payload
        let expected = Publish {
            payload: Bytes::from(payload),
            ..publish(QosPid::AtMostOnce, "a", b"")
        };
        assert_golden(Protocol::V3_1_1, &bytes, Packet::Publish(expected));
    }
}

// --- CONNECT (§3.1) ------------------------------------------------------------------------

#[test]
fn v311_connect_spec_example_with_will_user_name_and_password() {
    // The variable header is the non-normative example of MQTT 3.1.1 §3.1.2.10.
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x22,                         // CONNECT, remaining length 34
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0xCE,                               // user name, password, will QoS 1, will, clean session
        0x00, 0x0A,                         // keep alive 10 s
        0x00, 0x02, b'c', b'1',             // client id "c1"
        0x00, 0x03, b'w', b'/', b't',       // will topic "w/t"
        0x00, 0x03, b'b', b'y', b'e',       // will message "bye"
        0x00, 0x04, b'u', b's', b'e', b'r', // user name "user"
        0x00, 0x02, 0x01, 0x02,             // password, binary
    ];
    let expected = Connect {
        will: Some(LastWill {
            topic: topic("w/t"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: Some(string("user")),
        password: Some(Bytes::from_static(&[0x01, 0x02])),
        ..connect(Protocol::V3_1_1, true, 10, "c1")
    };
    assert_connect_golden(&bytes, expected);
}

#[test]
fn v311_connect_without_will_or_credentials() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x10,                         // CONNECT, remaining length 16
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x02,                               // clean session
        0x00, 0x3C,                         // keep alive 60 s
        0x00, 0x04, b'k', b'e', b'e', b'l', // client id "keel"
    ];
    assert_connect_golden(&bytes, connect(Protocol::V3_1_1, true, 60, "keel"));
}

#[test]
fn v311_connect_with_empty_client_id_and_no_keep_alive() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x0C,                         // CONNECT, remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x02,                               // clean session
        0x00, 0x00,                         // keep alive off
        0x00, 0x00,                         // client id "" (the server assigns one)
    ];
    assert_connect_golden(&bytes, connect(Protocol::V3_1_1, true, 0, ""));
}

#[test]
fn v311_connect_with_retained_qos2_will_and_persistent_session() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x12,                         // CONNECT, remaining length 18
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x04,                               // protocol level 4
        0x34,                               // will retain, will QoS 2, will; clean session 0
        0x00, 0x1E,                         // keep alive 30 s
        0x00, 0x01, b'k',                   // client id "k"
        0x00, 0x01, b't',                   // will topic "t"
        0x00, 0x00,                         // will message, empty
    ];
    let expected = Connect {
        will: Some(LastWill {
            topic: topic("t"),
            payload: Bytes::new(),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        ..connect(Protocol::V3_1_1, false, 30, "k")
    };
    assert_connect_golden(&bytes, expected);
}

#[test]
fn v31_connect_names_the_protocol_mqisdp_level_3() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x18,                                     // CONNECT, remaining length 24
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp"
        0x03,                                           // protocol level 3
        0xC2,                                           // user name, password, clean session
        0x00, 0x3C,                                     // keep alive 60 s
        0x00, 0x04, b'k', b'e', b'e', b'l',             // client id "keel"
        0x00, 0x01, b'u',                               // user name "u"
        0x00, 0x01, b'p',                               // password "p"
    ];
    let expected = Connect {
        username: Some(string("u")),
        password: Some(Bytes::from_static(b"p")),
        ..connect(Protocol::V3_1, true, 60, "keel")
    };
    assert_connect_golden(&bytes, expected);
}

#[test]
fn v5_connect_spec_example_with_will_properties_user_name_and_password() {
    // The variable header is the non-normative example of MQTT 5.0 §3.1.2.11.
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x4A,                         // CONNECT, remaining length 74
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol version 5
        0xCE,                               // user name, password, will QoS 1, will, clean start
        0x00, 0x0A,                         // keep alive 10 s
        0x05,                               // property length 5
        0x11, 0x00, 0x00, 0x00, 0x0A,       //   session expiry interval 10 s
        0x00, 0x02, b'c', b'1',             // client id "c1"
        0x21,                               // will property length 33
        0x01, 0x01,                         //   payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x3C,       //   message expiry interval 60 s
        0x03, 0x00, 0x03, b't', b'x', b't', //   content type "txt"
        0x08, 0x00, 0x01, b'r',             //   response topic "r"
        0x09, 0x00, 0x01, 0xAB,             //   correlation data
        0x18, 0x00, 0x00, 0x00, 0x05,       //   will delay interval 5 s
        0x26, 0x00, 0x01, b'k',             //   user property name "k"
              0x00, 0x01, b'v',             //     and value "v"
        0x00, 0x03, b'w', b'/', b't',       // will topic "w/t"
        0x00, 0x03, b'b', b'y', b'e',       // will payload "bye"
        0x00, 0x04, b'u', b's', b'e', b'r', // user name "user"
        0x00, 0x02, 0x01, 0x02,             // password, binary
    ];
    let expected = Connect {
        properties: ConnectProperties {
            session_expiry_interval: Some(10),
            ..ConnectProperties::default()
        },
        will: Some(LastWill {
            topic: topic("w/t"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(true),
                message_expiry_interval: Some(60),
                content_type: Some(string("txt")),
                response_topic: Some(topic("r")),
                correlation_data: Some(Bytes::from_static(&[0xAB])),
                user_properties: vec![user("k", "v")],
            },
        }),
        username: Some(string("user")),
        password: Some(Bytes::from_static(&[0x01, 0x02])),
        ..connect(Protocol::V5, true, 10, "c1")
    };
    assert_connect_golden(&bytes, expected);
}

#[test]
fn v5_connect_without_properties_will_or_credentials() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x11,                         // CONNECT, remaining length 17
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol version 5
        0x02,                               // clean start
        0x00, 0x3C,                         // keep alive 60 s
        0x00,                               // property length 0
        0x00, 0x04, b'k', b'e', b'e', b'l', // client id "keel"
    ];
    assert_connect_golden(&bytes, connect(Protocol::V5, true, 60, "keel"));
}

#[test]
fn v5_connect_with_every_connect_property() {
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x3B,                         // CONNECT, remaining length 59
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol version 5
        0x00,                               // no flags: keep the session
        0x00, 0x00,                         // keep alive off
        0x2D,                               // property length 45
        0x11, 0x00, 0x00, 0x0E, 0x10,       //   session expiry interval 3600 s
        0x15, 0x00, 0x02, b'm', b'1',       //   authentication method "m1"
        0x16, 0x00, 0x03, 0x01, 0x02, 0x03, //   authentication data
        0x17, 0x00,                         //   request problem information: no
        0x19, 0x01,                         //   request response information: yes
        0x21, 0x00, 0x14,                   //   receive maximum 20
        0x22, 0x00, 0x0A,                   //   topic alias maximum 10
        0x26, 0x00, 0x01, b'a',             //   user property "a"
              0x00, 0x01, b'1',             //     = "1"
        0x26, 0x00, 0x01, b'a',             //   user property "a" again, kept in order
              0x00, 0x01, b'2',             //     = "2"
        0x27, 0x00, 0x00, 0x04, 0x00,       //   maximum packet size 1024
        0x00, 0x01, b'c',                   // client id "c"
    ];
    let expected = Connect {
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(20),
            maximum_packet_size: NonZeroU32::new(1024),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: vec![user("a", "1"), user("a", "2")],
            authentication_method: Some(string("m1")),
            authentication_data: Some(Bytes::from_static(&[0x01, 0x02, 0x03])),
        },
        ..connect(Protocol::V5, false, 0, "c")
    };
    assert_connect_golden(&bytes, expected);
}

#[test]
fn v5_connect_with_password_but_no_user_name() {
    // MQTT 5.0 §3.1.2.9 allows a password without a user name; MQTT 3.1.1 does not.
    #[rustfmt::skip]
    let bytes = [
        0x10, 0x12,                         // CONNECT, remaining length 18
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name "MQTT"
        0x05,                               // protocol version 5
        0x42,                               // password, clean start
        0x00, 0x00,                         // keep alive off
        0x00,                               // property length 0
        0x00, 0x01, b'c',                   // client id "c"
        0x00, 0x02, b'p', b'w',             // password "pw"
    ];
    let expected = Connect {
        password: Some(Bytes::from_static(b"pw")),
        ..connect(Protocol::V5, true, 0, "c")
    };
    assert_connect_golden(&bytes, expected);
}

// --- CONNACK (§3.2) ------------------------------------------------------------------------

#[test]
fn v311_connack_accepts_with_and_without_session() {
    for protocol in V3 {
        for (flags, session_present) in [(0x00, false), (0x01, true)] {
            #[rustfmt::skip]
            let bytes = [
                0x20, 0x02, // CONNACK, remaining length 2
                flags,      // session present
                0x00,       // return code 0: accepted
            ];
            let expected = ConnAck {
                session_present,
                reason_code: ReasonCode::Success,
                properties: ConnAckProperties::default(),
            };
            assert_golden(protocol, &bytes, Packet::ConnAck(expected));
        }
    }
}

#[test]
fn v311_connack_return_codes_map_to_reason_codes() {
    // MQTT 3.1.1 §3.2.2.3, return codes 1 to 5.
    let refusals = [
        (0x01, ReasonCode::UnsupportedProtocolVersion),
        (0x02, ReasonCode::ClientIdentifierNotValid),
        (0x03, ReasonCode::ServerUnavailable),
        (0x04, ReasonCode::BadUserNameOrPassword),
        (0x05, ReasonCode::NotAuthorized),
    ];
    for protocol in V3 {
        for (code, reason_code) in refusals {
            #[rustfmt::skip]
            let bytes = [
                0x20, 0x02, // CONNACK, remaining length 2
                0x00,       // no session
                code,       // return code
            ];
            let expected = ConnAck {
                session_present: false,
                reason_code,
                properties: ConnAckProperties::default(),
            };
            assert_golden(protocol, &bytes, Packet::ConnAck(expected));
        }
    }
}

#[test]
fn v311_connack_writes_a_v5_only_refusal_as_the_nearest_return_code() {
    let cases = [
        (ReasonCode::Banned, 0x05),
        (ReasonCode::BadAuthenticationMethod, 0x04),
        (ReasonCode::QuotaExceeded, 0x03),
    ];
    for (reason_code, return_code) in cases {
        let connack = Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code,
            properties: ConnAckProperties {
                reason_string: Some(string("not sent in MQTT 3")),
                ..ConnAckProperties::default()
            },
        });
        assert_eq!(
            encode(Protocol::V3_1_1, &connack),
            [0x20, 0x02, 0x00, return_code],
            "{reason_code:?}"
        );
    }
}

#[test]
fn v5_connack_success_without_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x20, 0x03, // CONNACK, remaining length 3
        0x00,       // no session
        0x00,       // reason code Success
        0x00,       // property length 0
    ];
    let expected = ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    };
    assert_golden(Protocol::V5, &bytes, Packet::ConnAck(expected));
}

#[test]
fn v5_connack_refusal_carries_its_reason_code() {
    for reason_code in [
        ReasonCode::NotAuthorized,
        ReasonCode::UnsupportedProtocolVersion,
        ReasonCode::Banned,
    ] {
        #[rustfmt::skip]
        let bytes = [
            0x20, 0x03,          // CONNACK, remaining length 3
            0x00,                // no session
            reason_code.as_u8(), // reason code
            0x00,                // property length 0
        ];
        let expected = ConnAck {
            session_present: false,
            reason_code,
            properties: ConnAckProperties::default(),
        };
        assert_golden(Protocol::V5, &bytes, Packet::ConnAck(expected));
    }
}

#[test]
fn v5_connack_with_every_connack_property() {
    #[rustfmt::skip]
    let bytes = [
        0x20, 0x47,                         // CONNACK, remaining length 71
        0x01,                               // session present
        0x00,                               // reason code Success
        0x44,                               // property length 68
        0x11, 0x00, 0x00, 0x00, 0x78,       //   session expiry interval 120 s
        0x12, 0x00, 0x06, b'a', b'u', b't', //   assigned client id "auto-1"
              b'o', b'-', b'1',
        0x13, 0x00, 0x1E,                   //   server keep alive 30 s
        0x15, 0x00, 0x01, b'm',             //   authentication method "m"
        0x16, 0x00, 0x01, 0xFF,             //   authentication data
        0x1A, 0x00, 0x02, b'r', b'i',       //   response information "ri"
        0x1C, 0x00, 0x02, b's', b'2',       //   server reference "s2"
        0x1F, 0x00, 0x02, b'o', b'k',       //   reason string "ok"
        0x21, 0x00, 0x64,                   //   receive maximum 100
        0x22, 0x00, 0x10,                   //   topic alias maximum 16
        0x24, 0x01,                         //   maximum QoS 1
        0x25, 0x00,                         //   retain available: no
        0x26, 0x00, 0x01, b'k',             //   user property "k"
              0x00, 0x01, b'v',             //     = "v"
        0x27, 0x00, 0x01, 0x00, 0x00,       //   maximum packet size 65536
        0x28, 0x00,                         //   wildcard subscriptions available: no
        0x29, 0x00,                         //   subscription identifiers available: no
        0x2A, 0x01,                         //   shared subscriptions available: yes
    ];
    let expected = ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            session_expiry_interval: Some(120),
            receive_maximum: NonZeroU16::new(100),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: NonZeroU32::new(65_536),
            assigned_client_identifier: Some(string("auto-1")),
            topic_alias_maximum: Some(16),
            reason_string: Some(string("ok")),
            user_properties: vec![user("k", "v")],
            wildcard_subscription_available: Some(false),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(30),
            response_information: Some(string("ri")),
            server_reference: Some(string("s2")),
            authentication_method: Some(string("m")),
            authentication_data: Some(Bytes::from_static(&[0xFF])),
        },
    };
    assert_golden(Protocol::V5, &bytes, Packet::ConnAck(expected));
}

#[test]
fn v5_connack_maximum_qos_0() {
    #[rustfmt::skip]
    let bytes = [
        0x20, 0x05, // CONNACK, remaining length 5
        0x00,       // no session
        0x00,       // reason code Success
        0x02,       // property length 2
        0x24, 0x00, //   maximum QoS 0
    ];
    let expected = ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::AtMostOnce),
            ..ConnAckProperties::default()
        },
    };
    assert_golden(Protocol::V5, &bytes, Packet::ConnAck(expected));
}

#[test]
fn v5_connack_leaves_out_maximum_qos_2() {
    // §3.2.2.3.4: Maximum QoS may only be 0 or 1 ("It is a Protocol Error to include Maximum
    // QoS more than once, or to have a value other than 0 or 1"); an absent property is what
    // says QoS 2 is supported.
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::ExactlyOnce),
            ..ConnAckProperties::default()
        },
    });
    #[rustfmt::skip]
    let bytes = [
        0x20, 0x03, // CONNACK, remaining length 3
        0x00,       // no session
        0x00,       // reason code Success
        0x00,       // property length 0: maximum QoS 2
    ];
    assert_eq!(encode(Protocol::V5, &connack), bytes);
    let Packet::ConnAck(decoded) = decode(Protocol::V5, &bytes) else {
        panic!("decoded a CONNACK as another packet type");
    };
    assert_eq!(decoded.properties.maximum_qos, None);
}

// --- PUBLISH (§3.3) ------------------------------------------------------------------------

#[test]
fn v311_publish_spec_example_qos1_with_packet_id_10() {
    // The variable header is the non-normative example of MQTT 3.1.1 §3.3.2.3.
    for protocol in V3 {
        #[rustfmt::skip]
        let bytes = [
            0x32, 0x09,                   // PUBLISH, QoS 1, remaining length 9
            0x00, 0x03, b'a', b'/', b'b', // topic name "a/b"
            0x00, 0x0A,                   // packet id 10
            b'h', b'i',                   // payload "hi"
        ];
        let expected = publish(QosPid::AtLeastOnce(pid(10)), "a/b", b"hi");
        assert_golden(protocol, &bytes, Packet::Publish(expected));
    }
}

#[test]
fn v311_publish_qos0_has_no_packet_id() {
    for protocol in V3 {
        #[rustfmt::skip]
        let bytes = [
            0x31, 0x08,                   // PUBLISH, QoS 0, retain, remaining length 8
            0x00, 0x03, b'a', b'/', b'b', // topic name "a/b"
            0x01, 0x02, 0x03,             // payload
        ];
        let expected = Publish {
            retain: true,
            ..publish(QosPid::AtMostOnce, "a/b", &[0x01, 0x02, 0x03])
        };
        assert_golden(protocol, &bytes, Packet::Publish(expected));
    }
}

#[test]
fn v311_publish_qos2_redelivery_with_dup_retain_and_empty_payload() {
    for protocol in V3 {
        #[rustfmt::skip]
        let bytes = [
            0x3D, 0x05,       // PUBLISH, DUP, QoS 2, retain, remaining length 5
            0x00, 0x01, b't', // topic name "t"
            0xFF, 0xFF,       // packet id 65535
                              // payload, empty
        ];
        let expected = Publish {
            dup: true,
            retain: true,
            ..publish(QosPid::ExactlyOnce(pid(65_535)), "t", b"")
        };
        assert_golden(protocol, &bytes, Packet::Publish(expected));
    }
}

#[test]
fn v311_publish_leaves_out_v5_properties_when_encoded() {
    let packet = Packet::Publish(Publish {
        properties: PublishProperties {
            topic_alias: NonZeroU16::new(5),
            ..PublishProperties::default()
        },
        ..publish(QosPid::AtMostOnce, "t", b"x")
    });
    assert_eq!(
        encode(Protocol::V3_1_1, &packet),
        [0x30, 0x04, 0x00, 0x01, b't', b'x']
    );
}

#[test]
fn v5_publish_qos0_without_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x30, 0x08,                   // PUBLISH, QoS 0, remaining length 8
        0x00, 0x03, b'a', b'/', b'b', // topic name "a/b"
        0x00,                         // property length 0
        b'h', b'i',                   // payload "hi"
    ];
    let expected = publish(QosPid::AtMostOnce, "a/b", b"hi");
    assert_golden(Protocol::V5, &bytes, Packet::Publish(expected));
}

#[test]
fn v5_publish_qos1_with_every_client_publish_property() {
    #[rustfmt::skip]
    let bytes = [
        0x32, 0x36,                         // PUBLISH, QoS 1, remaining length 54
        0x00, 0x03, b'a', b'/', b'b',       // topic name "a/b"
        0x00, 0x0A,                         // packet id 10
        0x2C,                               // property length 44
        0x01, 0x01,                         //   payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x3C,       //   message expiry interval 60 s
        0x03, 0x00, 0x04, b'j', b's', b'o', //   content type "json"
              b'n',
        0x08, 0x00, 0x05, b'r', b'e', b'p', //   response topic "reply"
              b'l', b'y',
        0x09, 0x00, 0x02, 0x01, 0x02,       //   correlation data
        0x23, 0x00, 0x05,                   //   topic alias 5
        0x26, 0x00, 0x01, b'k',             //   user property "k"
              0x00, 0x01, b'v',             //     = "v"
        0x26, 0x00, 0x01, b'k',             //   user property "k" again, kept in order
              0x00, 0x01, b'w',             //     = "w"
        b'{', b'}',                         // payload "{}"
    ];
    let expected = Publish {
        properties: PublishProperties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(60),
            topic_alias: NonZeroU16::new(5),
            response_topic: Some(topic("reply")),
            correlation_data: Some(Bytes::from_static(&[0x01, 0x02])),
            user_properties: vec![user("k", "v"), user("k", "w")],
            subscription_identifiers: vec![],
            content_type: Some(string("json")),
        },
        ..publish(QosPid::AtLeastOnce(pid(10)), "a/b", b"{}")
    };
    assert_golden(Protocol::V5, &bytes, Packet::Publish(expected));
}

#[test]
fn v5_publish_with_empty_topic_names_it_by_topic_alias() {
    #[rustfmt::skip]
    let bytes = [
        0x30, 0x07,       // PUBLISH, QoS 0, remaining length 7
        0x00, 0x00,       // topic name "": the alias stands for it
        0x03,             // property length 3
        0x23, 0x00, 0x05, //   topic alias 5
        b'x',             // payload "x"
    ];
    let expected = Publish {
        properties: PublishProperties {
            topic_alias: NonZeroU16::new(5),
            ..PublishProperties::default()
        },
        ..publish(QosPid::AtMostOnce, "", b"x")
    };
    assert_golden(Protocol::V5, &bytes, Packet::Publish(expected));
}

#[test]
fn v5_publish_carries_several_subscription_identifiers() {
    // A server forwarding a message that matched three subscriptions with identifiers.
    #[rustfmt::skip]
    let bytes = [
        0x34, 0x12,                   // PUBLISH, QoS 2, remaining length 18
        0x00, 0x03, b's', b'/', b'1', // topic name "s/1"
        0x01, 0x00,                   // packet id 256
        0x0A,                         // property length 10
        0x0B, 0x01,                   //   subscription identifier 1
        0x0B, 0x80, 0x01,             //   subscription identifier 128
        0x0B, 0xFF, 0xFF, 0xFF, 0x7F, //   subscription identifier 268,435,455
                                      // payload, empty
    ];
    let expected = Publish {
        properties: PublishProperties {
            subscription_identifiers: [1, 128, 268_435_455]
                .into_iter()
                .map(|id| NonZeroU32::new(id).expect("not zero"))
                .collect(),
            ..PublishProperties::default()
        },
        ..publish(QosPid::ExactlyOnce(pid(256)), "s/1", b"")
    };
    assert_golden(Protocol::V5, &bytes, Packet::Publish(expected));
}

#[test]
fn v5_publish_qos2_redelivery_with_dup_and_retain() {
    #[rustfmt::skip]
    let bytes = [
        0x3D, 0x06,       // PUBLISH, DUP, QoS 2, retain, remaining length 6
        0x00, 0x01, b't', // topic name "t"
        0x00, 0x07,       // packet id 7
        0x00,             // property length 0
                          // payload, empty
    ];
    let expected = Publish {
        dup: true,
        retain: true,
        ..publish(QosPid::ExactlyOnce(pid(7)), "t", b"")
    };
    assert_golden(Protocol::V5, &bytes, Packet::Publish(expected));
}

// --- PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4 to §3.7) ---------------------------------------

/// Wraps a reply body in the `Packet` variant of one of the four reply types.
type ReplyPacket = fn(PubReply) -> Packet;

/// The four replies of the QoS flows: their first byte and their `Packet` variant.
const PUB_REPLIES: [(u8, ReplyPacket); 4] = [
    (0x40, Packet::PubAck),
    (0x50, Packet::PubRec),
    (0x62, Packet::PubRel), // PUBREL's fixed header flags are 0b0010 (§2.1.3)
    (0x70, Packet::PubComp),
];

#[test]
fn v311_pub_replies_are_just_a_packet_id() {
    for protocol in V3 {
        for (first_byte, packet) in PUB_REPLIES {
            #[rustfmt::skip]
            let bytes = [
                first_byte, 0x02, // packet type, remaining length 2
                0x00, 0x0A,       // packet id 10
            ];
            assert_golden(
                protocol,
                &bytes,
                packet(reply(10, ReasonCode::Success, AckProperties::default())),
            );
        }
    }
}

#[test]
fn v311_pub_replies_leave_out_v5_reason_code_and_properties_when_encoded() {
    let properties = AckProperties {
        reason_string: Some(string("not sent in MQTT 3")),
        user_properties: vec![],
    };
    for (first_byte, packet) in PUB_REPLIES {
        let reply = reply(10, ReasonCode::PacketIdentifierNotFound, properties.clone());
        assert_eq!(
            encode(Protocol::V3_1_1, &packet(reply)),
            [first_byte, 0x02, 0x00, 0x0A]
        );
    }
}

#[test]
fn v5_pub_replies_with_success_and_no_properties_use_the_two_byte_form() {
    // §3.4.2.1 and its siblings: reason code and property length are left out.
    for (first_byte, packet) in PUB_REPLIES {
        #[rustfmt::skip]
        let bytes = [
            first_byte, 0x02, // packet type, remaining length 2
            0x00, 0x0A,       // packet id 10
        ];
        assert_golden(Protocol::V5, &bytes, packet(PubReply::new(pid(10))));
    }
}

#[test]
fn v5_pub_reply_with_explicit_success_decodes_and_is_reencoded_in_the_two_byte_form() {
    for (first_byte, packet) in PUB_REPLIES {
        #[rustfmt::skip]
        let with_reason = [
            first_byte, 0x03, // packet type, remaining length 3
            0x00, 0x0A,       // packet id 10
            0x00,             // reason code Success
        ];
        #[rustfmt::skip]
        let with_empty_properties = [
            first_byte, 0x04, // packet type, remaining length 4
            0x00, 0x0A,       // packet id 10
            0x00,             // reason code Success
            0x00,             // property length 0
        ];
        let short_form = [first_byte, 0x02, 0x00, 0x0A];
        let expected = packet(PubReply::new(pid(10)));
        assert_decodes_and_shortens(Protocol::V5, &with_reason, expected.clone(), &short_form);
        assert_decodes_and_shortens(Protocol::V5, &with_empty_properties, expected, &short_form);
    }
}

#[test]
fn v5_pub_reply_with_reason_and_empty_properties_is_reencoded_without_property_length() {
    #[rustfmt::skip]
    let bytes = [
        0x40, 0x04, // PUBACK, remaining length 4
        0x00, 0x0A, // packet id 10
        0x10,       // reason code No matching subscribers
        0x00,       // property length 0
    ];
    let expected = Packet::PubAck(reply(
        10,
        ReasonCode::NoMatchingSubscribers,
        AckProperties::default(),
    ));
    assert_decodes_and_shortens(
        Protocol::V5,
        &bytes,
        expected,
        &[0x40, 0x03, 0x00, 0x0A, 0x10],
    );
}

#[test]
fn v5_puback_with_only_reason_code_decodes() {
    #[rustfmt::skip]
    let bytes = [
        0x40, 0x03, // PUBACK, remaining length 3
        0x00, 0x0A, // packet id 10
        0x10,       // reason code No matching subscribers; no property length
    ];
    let expected = reply(
        10,
        ReasonCode::NoMatchingSubscribers,
        AckProperties::default(),
    );
    assert_golden(Protocol::V5, &bytes, Packet::PubAck(expected));
}

#[test]
fn v5_pubrec_with_only_reason_code_decodes() {
    #[rustfmt::skip]
    let bytes = [
        0x50, 0x03, // PUBREC, remaining length 3
        0x00, 0x0A, // packet id 10
        0x91,       // reason code Packet Identifier in use; no property length
    ];
    let expected = reply(
        10,
        ReasonCode::PacketIdentifierInUse,
        AckProperties::default(),
    );
    assert_golden(Protocol::V5, &bytes, Packet::PubRec(expected));
}

#[test]
fn v5_pubrel_with_only_reason_code_decodes() {
    #[rustfmt::skip]
    let bytes = [
        0x62, 0x03, // PUBREL, remaining length 3
        0x00, 0x0A, // packet id 10
        0x92,       // reason code Packet Identifier not found; no property length
    ];
    let expected = reply(
        10,
        ReasonCode::PacketIdentifierNotFound,
        AckProperties::default(),
    );
    assert_golden(Protocol::V5, &bytes, Packet::PubRel(expected));
}

#[test]
fn v5_pubcomp_with_only_reason_code_decodes() {
    #[rustfmt::skip]
    let bytes = [
        0x70, 0x03, // PUBCOMP, remaining length 3
        0x00, 0x0A, // packet id 10
        0x92,       // reason code Packet Identifier not found; no property length
    ];
    let expected = reply(
        10,
        ReasonCode::PacketIdentifierNotFound,
        AckProperties::default(),
    );
    assert_golden(Protocol::V5, &bytes, Packet::PubComp(expected));
}

#[test]
fn v5_puback_with_reason_string_and_user_property() {
    #[rustfmt::skip]
    let bytes = [
        0x40, 0x12,                   // PUBACK, remaining length 18
        0x00, 0x0A,                   // packet id 10
        0x97,                         // reason code Quota exceeded
        0x0E,                         // property length 14
        0x1F, 0x00, 0x04, b'f', b'u', //   reason string "full"
              b'l', b'l',
        0x26, 0x00, 0x01, b'k',       //   user property "k"
              0x00, 0x01, b'v',       //     = "v"
    ];
    let expected = reply(
        10,
        ReasonCode::QuotaExceeded,
        AckProperties {
            reason_string: Some(string("full")),
            user_properties: vec![user("k", "v")],
        },
    );
    assert_golden(Protocol::V5, &bytes, Packet::PubAck(expected));
}

#[test]
fn v5_pub_replies_with_success_and_a_reason_string_use_the_full_form() {
    for (first_byte, packet) in PUB_REPLIES {
        #[rustfmt::skip]
        let bytes = [
            first_byte, 0x08,       // packet type, remaining length 8
            0x00, 0x0A,             // packet id 10
            0x00,                   // reason code Success
            0x04,                   // property length 4
            0x1F, 0x00, 0x01, b'x', //   reason string "x"
        ];
        let properties = AckProperties {
            reason_string: Some(string("x")),
            user_properties: vec![],
        };
        assert_golden(
            Protocol::V5,
            &bytes,
            packet(reply(10, ReasonCode::Success, properties)),
        );
    }
}

// --- SUBSCRIBE (§3.8) ----------------------------------------------------------------------

#[test]
fn v311_subscribe_spec_example_two_filters() {
    // The payload is the non-normative example of MQTT 3.1.1 §3.8.3, the packet id the one
    // of §3.8.2.
    for protocol in V3 {
        #[rustfmt::skip]
        let bytes = [
            0x82, 0x0E,                   // SUBSCRIBE, flags 0b0010, remaining length 14
            0x00, 0x0A,                   // packet id 10
            0x00, 0x03, b'a', b'/', b'b', // topic filter "a/b"
            0x01,                         //   requested QoS 1
            0x00, 0x03, b'c', b'/', b'd', // topic filter "c/d"
            0x02,                         //   requested QoS 2
        ];
        let expected = Subscribe {
            packet_id: pid(10),
            properties: SubscribeProperties::default(),
            filters: vec![
                (filter("a/b"), SubscriptionOptions::new(QoS::AtLeastOnce)),
                (filter("c/d"), SubscriptionOptions::new(QoS::ExactlyOnce)),
            ],
        };
        assert_golden(protocol, &bytes, Packet::Subscribe(expected));
    }
}

#[test]
fn v311_subscribe_writes_only_the_qos_of_subscription_options() {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        properties: SubscribeProperties::default(),
        filters: vec![(filter("t"), options)],
    });
    assert_eq!(
        encode(Protocol::V3_1_1, &packet),
        [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b't', 0x01]
    );
}

#[test]
fn v5_subscribe_options_carry_no_local_retain_as_published_and_retain_handling() {
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x31,                   // SUBSCRIBE, flags 0b0010, remaining length 49
        0x00, 0x0A,                   // packet id 10
        0x09,                         // property length 9
        0x0B, 0x05,                   //   subscription identifier 5
        0x26, 0x00, 0x01, b'k',       //   user property "k"
              0x00, 0x01, b'v',       //     = "v"
        0x00, 0x03, b'a', b'/', b'+', // topic filter "a/+"
        0x01,                         //   QoS 1
        0x00, 0x03, b'b', b'/', b'#', // topic filter "b/#"
        0x06,                         //   QoS 2, no local
        0x00, 0x01, b'c',             // topic filter "c"
        0x08,                         //   QoS 0, retain as published
        0x00, 0x01, b'd',             // topic filter "d"
        0x10,                         //   QoS 0, retain handling 1: only for new subscriptions
        0x00, 0x0A, b'$', b's', b'h', // topic filter "$share/g/e"
              b'a', b'r', b'e', b'/',
              b'g', b'/', b'e',
        0x21,                         //   QoS 1, retain handling 2: never
        0x00, 0x01, b'f',             // topic filter "f"
        0x2E,                         //   QoS 2, no local, retain as published, retain handling 2
    ];
    let options = |qos, no_local, retain_as_published, retain_handling| SubscriptionOptions {
        qos,
        no_local,
        retain_as_published,
        retain_handling,
    };
    let expected = Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties {
            subscription_identifier: NonZeroU32::new(5),
            user_properties: vec![user("k", "v")],
        },
        filters: vec![
            (filter("a/+"), SubscriptionOptions::new(QoS::AtLeastOnce)),
            (
                filter("b/#"),
                options(
                    QoS::ExactlyOnce,
                    true,
                    false,
                    RetainHandling::SendAtSubscribe,
                ),
            ),
            (
                filter("c"),
                options(
                    QoS::AtMostOnce,
                    false,
                    true,
                    RetainHandling::SendAtSubscribe,
                ),
            ),
            (
                filter("d"),
                options(
                    QoS::AtMostOnce,
                    false,
                    false,
                    RetainHandling::SendAtNewSubscribe,
                ),
            ),
            (
                filter("$share/g/e"),
                options(QoS::AtLeastOnce, false, false, RetainHandling::DoNotSend),
            ),
            (
                filter("f"),
                options(QoS::ExactlyOnce, true, true, RetainHandling::DoNotSend),
            ),
        ],
    };
    assert_golden(Protocol::V5, &bytes, Packet::Subscribe(expected));
}

// --- SUBACK (§3.9) -------------------------------------------------------------------------

#[test]
fn v311_suback_spec_example_return_codes() {
    // The return codes of the non-normative example of MQTT 3.1.1 §3.9.3, plus QoS 1.
    for protocol in V3 {
        #[rustfmt::skip]
        let bytes = [
            0x90, 0x06, // SUBACK, remaining length 6
            0x00, 0x0A, // packet id 10
            0x00,       // success, maximum QoS 0
            0x01,       // success, maximum QoS 1
            0x02,       // success, maximum QoS 2
            0x80,       // failure
        ];
        let expected = SubAck {
            packet_id: pid(10),
            properties: AckProperties::default(),
            reason_codes: vec![
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS2,
                ReasonCode::UnspecifiedError,
            ],
        };
        assert_golden(protocol, &bytes, Packet::SubAck(expected));
    }
}

#[test]
fn v311_suback_writes_every_failure_as_0x80() {
    let packet = Packet::SubAck(SubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: vec![
            ReasonCode::NotAuthorized,
            ReasonCode::GrantedQoS1,
            ReasonCode::SharedSubscriptionsNotSupported,
        ],
    });
    assert_eq!(
        encode(Protocol::V3_1_1, &packet),
        [0x90, 0x05, 0x00, 0x0A, 0x80, 0x01, 0x80]
    );
}

#[test]
fn v5_suback_with_reason_string_and_reason_codes() {
    #[rustfmt::skip]
    let bytes = [
        0x90, 0x10,             // SUBACK, remaining length 16
        0x00, 0x0A,             // packet id 10
        0x05,                   // property length 5
        0x1F, 0x00, 0x02, b'n', //   reason string "no"
              b'o',
        0x00,                   // granted QoS 0
        0x01,                   // granted QoS 1
        0x02,                   // granted QoS 2
        0x87,                   // not authorized
        0x8F,                   // topic filter invalid
        0x9E,                   // shared subscriptions not supported
        0xA1,                   // subscription identifiers not supported
        0xA2,                   // wildcard subscriptions not supported
    ];
    let expected = SubAck {
        packet_id: pid(10),
        properties: AckProperties {
            reason_string: Some(string("no")),
            user_properties: vec![],
        },
        reason_codes: vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::SharedSubscriptionsNotSupported,
            ReasonCode::SubscriptionIdentifiersNotSupported,
            ReasonCode::WildcardSubscriptionsNotSupported,
        ],
    };
    assert_golden(Protocol::V5, &bytes, Packet::SubAck(expected));
}

// --- UNSUBSCRIBE (§3.10) -------------------------------------------------------------------

#[test]
fn v311_unsubscribe_spec_example_two_filters() {
    // The payload is the non-normative example of MQTT 3.1.1 §3.10.3.
    for protocol in V3 {
        #[rustfmt::skip]
        let bytes = [
            0xA2, 0x0C,                   // UNSUBSCRIBE, flags 0b0010, remaining length 12
            0x00, 0x0A,                   // packet id 10
            0x00, 0x03, b'a', b'/', b'b', // topic filter "a/b"
            0x00, 0x03, b'c', b'/', b'd', // topic filter "c/d"
        ];
        let expected = Unsubscribe {
            packet_id: pid(10),
            properties: UnsubscribeProperties::default(),
            filters: vec![filter("a/b"), filter("c/d")],
        };
        assert_golden(protocol, &bytes, Packet::Unsubscribe(expected));
    }
}

#[test]
fn v5_unsubscribe_with_user_property_and_shared_filter() {
    #[rustfmt::skip]
    let bytes = [
        0xA2, 0x1D,                   // UNSUBSCRIBE, flags 0b0010, remaining length 29
        0x00, 0x0B,                   // packet id 11
        0x07,                         // property length 7
        0x26, 0x00, 0x01, b'k',       //   user property "k"
              0x00, 0x01, b'v',       //     = "v"
        0x00, 0x0C, b'$', b's', b'h', // topic filter "$share/g/a/#"
              b'a', b'r', b'e', b'/',
              b'g', b'/', b'a', b'/',
              b'#',
        0x00, 0x03, b'+', b'/', b'x', // topic filter "+/x"
    ];
    let expected = Unsubscribe {
        packet_id: pid(11),
        properties: UnsubscribeProperties {
            user_properties: vec![user("k", "v")],
        },
        filters: vec![filter("$share/g/a/#"), filter("+/x")],
    };
    assert_golden(Protocol::V5, &bytes, Packet::Unsubscribe(expected));
}

// --- UNSUBACK (§3.11) ----------------------------------------------------------------------

#[test]
fn v311_unsuback_is_just_a_packet_id() {
    for protocol in V3 {
        #[rustfmt::skip]
        let bytes = [
            0xB0, 0x02, // UNSUBACK, remaining length 2
            0x00, 0x0A, // packet id 10
        ];
        let expected = UnsubAck {
            packet_id: pid(10),
            properties: AckProperties::default(),
            reason_codes: vec![],
        };
        assert_golden(protocol, &bytes, Packet::UnsubAck(expected));
    }
}

#[test]
fn v311_unsuback_leaves_out_v5_reason_codes_when_encoded() {
    let packet = Packet::UnsubAck(UnsubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
    });
    assert_eq!(encode(Protocol::V3_1_1, &packet), [0xB0, 0x02, 0x00, 0x0A]);
}

#[test]
fn v5_unsuback_with_reason_string_and_reason_codes() {
    #[rustfmt::skip]
    let bytes = [
        0xB0, 0x0D,             // UNSUBACK, remaining length 13
        0x00, 0x0A,             // packet id 10
        0x04,                   // property length 4
        0x1F, 0x00, 0x01, b'x', //   reason string "x"
        0x00,                   // success
        0x11,                   // no subscription existed
        0x80,                   // unspecified error
        0x87,                   // not authorized
        0x8F,                   // topic filter invalid
        0x91,                   // packet identifier in use
    ];
    let expected = UnsubAck {
        packet_id: pid(10),
        properties: AckProperties {
            reason_string: Some(string("x")),
            user_properties: vec![],
        },
        reason_codes: vec![
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::UnspecifiedError,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::PacketIdentifierInUse,
        ],
    };
    assert_golden(Protocol::V5, &bytes, Packet::UnsubAck(expected));
}

#[test]
fn v5_unsuback_without_properties() {
    #[rustfmt::skip]
    let bytes = [
        0xB0, 0x04, // UNSUBACK, remaining length 4
        0x00, 0x0A, // packet id 10
        0x00,       // property length 0
        0x00,       // success
    ];
    let expected = UnsubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode::Success],
    };
    assert_golden(Protocol::V5, &bytes, Packet::UnsubAck(expected));
}

// --- PINGREQ, PINGRESP (§3.12, §3.13) ------------------------------------------------------

#[test]
fn pingreq_is_two_fixed_bytes_in_every_protocol() {
    for protocol in Protocol::ALL {
        assert_golden(protocol, &[0xC0, 0x00], Packet::PingReq);
    }
}

#[test]
fn pingresp_is_two_fixed_bytes_in_every_protocol() {
    for protocol in Protocol::ALL {
        assert_golden(protocol, &[0xD0, 0x00], Packet::PingResp);
    }
}

// --- DISCONNECT (§3.14) --------------------------------------------------------------------

#[test]
fn v311_disconnect_is_two_fixed_bytes() {
    for protocol in V3 {
        assert_golden(
            protocol,
            &[0xE0, 0x00],
            Packet::Disconnect(Disconnect::default()),
        );
    }
}

#[test]
fn v311_disconnect_leaves_out_v5_reason_code_when_encoded() {
    let packet = Packet::Disconnect(Disconnect::new(ReasonCode::ServerShuttingDown));
    assert_eq!(encode(Protocol::V3_1_1, &packet), [0xE0, 0x00]);
}

#[test]
fn v5_disconnect_normal_uses_the_empty_form() {
    // §3.14.2.1: no reason code means Normal disconnection.
    assert_golden(
        Protocol::V5,
        &[0xE0, 0x00],
        Packet::Disconnect(Disconnect::default()),
    );
}

#[test]
fn v5_disconnect_with_only_reason_code_decodes() {
    for reason_code in [
        ReasonCode::DisconnectWithWillMessage,
        ReasonCode::SessionTakenOver,
        ReasonCode::ServerShuttingDown,
    ] {
        #[rustfmt::skip]
        let bytes = [
            0xE0, 0x01,          // DISCONNECT, remaining length 1
            reason_code.as_u8(), // reason code; no property length
        ];
        assert_golden(
            Protocol::V5,
            &bytes,
            Packet::Disconnect(Disconnect::new(reason_code)),
        );
    }
}

#[test]
fn v5_disconnect_with_explicit_normal_reason_is_reencoded_empty() {
    let expected = Packet::Disconnect(Disconnect::default());
    #[rustfmt::skip]
    let with_reason = [
        0xE0, 0x01, // DISCONNECT, remaining length 1
        0x00,       // reason code Normal disconnection
    ];
    #[rustfmt::skip]
    let with_empty_properties = [
        0xE0, 0x02, // DISCONNECT, remaining length 2
        0x00,       // reason code Normal disconnection
        0x00,       // property length 0
    ];
    assert_decodes_and_shortens(Protocol::V5, &with_reason, expected.clone(), &[0xE0, 0x00]);
    assert_decodes_and_shortens(
        Protocol::V5,
        &with_empty_properties,
        expected,
        &[0xE0, 0x00],
    );
}

#[test]
fn v5_disconnect_with_every_disconnect_property() {
    #[rustfmt::skip]
    let bytes = [
        0xE0, 0x1B,                   // DISCONNECT, remaining length 27
        0x9C,                         // reason code Use another server
        0x19,                         // property length 25
        0x11, 0x00, 0x00, 0x00, 0x00, //   session expiry interval 0
        0x1C, 0x00, 0x04, b'h', b'o', //   server reference "host"
              b's', b't',
        0x1F, 0x00, 0x03, b'b', b'y', //   reason string "bye"
              b'e',
        0x26, 0x00, 0x01, b'k',       //   user property "k"
              0x00, 0x01, b'v',       //     = "v"
    ];
    let expected = Disconnect {
        reason_code: ReasonCode::UseAnotherServer,
        properties: DisconnectProperties {
            session_expiry_interval: Some(0),
            reason_string: Some(string("bye")),
            user_properties: vec![user("k", "v")],
            server_reference: Some(string("host")),
        },
    };
    assert_golden(Protocol::V5, &bytes, Packet::Disconnect(expected));
}

// --- AUTH (§3.15, MQTT 5 only) -------------------------------------------------------------

#[test]
fn v5_auth_success_uses_the_empty_form() {
    // §3.15.2.1: reason code and property length may be left out for Success.
    assert_golden(Protocol::V5, &[0xF0, 0x00], Packet::Auth(Auth::default()));
}

#[test]
fn v5_auth_continue_with_method_and_data() {
    #[rustfmt::skip]
    let bytes = [
        0xF0, 0x0F,                   // AUTH, remaining length 15
        0x18,                         // reason code Continue authentication
        0x0D,                         // property length 13
        0x15, 0x00, 0x05, b'S', b'C', //   authentication method "SCRAM"
              b'R', b'A', b'M',
        0x16, 0x00, 0x02, 0x0A, 0x0B, //   authentication data
    ];
    let expected = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties {
            authentication_method: Some(string("SCRAM")),
            authentication_data: Some(Bytes::from_static(&[0x0A, 0x0B])),
            ..AuthProperties::default()
        },
    };
    assert_golden(Protocol::V5, &bytes, Packet::Auth(expected));
}

#[test]
fn v5_auth_reauthenticate_with_reason_string_and_user_property() {
    #[rustfmt::skip]
    let bytes = [
        0xF0, 0x12,                   // AUTH, remaining length 18
        0x19,                         // reason code Re-authenticate
        0x10,                         // property length 16
        0x15, 0x00, 0x01, b'm',       //   authentication method "m"
        0x1F, 0x00, 0x02, b'r', b's', //   reason string "rs"
        0x26, 0x00, 0x01, b'k',       //   user property "k"
              0x00, 0x01, b'v',       //     = "v"
    ];
    let expected = Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: AuthProperties {
            authentication_method: Some(string("m")),
            authentication_data: None,
            reason_string: Some(string("rs")),
            user_properties: vec![user("k", "v")],
        },
    };
    assert_golden(Protocol::V5, &bytes, Packet::Auth(expected));
}

#[test]
fn v5_auth_with_reason_but_no_properties_writes_a_zero_property_length() {
    // Only Success may leave the property length out (§3.15.2.1); the encoder writes it for
    // any other reason code.
    #[rustfmt::skip]
    let bytes = [
        0xF0, 0x02, // AUTH, remaining length 2
        0x18,       // reason code Continue authentication
        0x00,       // property length 0
    ];
    let expected = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: AuthProperties::default(),
    };
    assert_golden(Protocol::V5, &bytes, Packet::Auth(expected));
}
