//! Malformed and forbidden packets: each is refused with the `DecodeError` naming the rule it
//! breaks and the MQTT 5 reason code the broker must answer with (MQTT 5.0 §4.13: Malformed
//! Packet 0x81 when the bytes cannot be parsed, Protocol Error 0x82 when they parse but break a
//! rule). Incomplete input is never an error: every strict prefix of a valid packet is
//! `Ok(None)`, and a packet over the size limit is refused from its fixed header alone.

use bytes::BytesMut;
use keel::codec::{DecodeError, Decoder, Packet, Protocol, ReasonCode, PACKET_SIZE_LIMIT};

const MALFORMED: ReasonCode = ReasonCode::MalformedPacket;
const PROTOCOL_ERROR: ReasonCode = ReasonCode::ProtocolError;

/// MQTT 3.1 and 3.1.1 lay out every packet but CONNECT the same way.
const V3: [Protocol; 2] = [Protocol::V3_1, Protocol::V3_1_1];

// --- Helpers -------------------------------------------------------------------------------

/// Decodes `bytes` with a decoder for `protocol`; the decode must fail.
fn decode_err(protocol: Protocol, bytes: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT).decode(&mut buf) {
        Err(e) => e,
        Ok(packet) => panic!("{protocol:?} accepted {bytes:02x?} as {packet:?}"),
    }
}

/// `bytes` are refused with exactly `expected`, which maps to the reason code `reason`.
fn assert_rejected(protocol: Protocol, bytes: &[u8], expected: DecodeError, reason: ReasonCode) {
    let error = decode_err(protocol, bytes);
    assert_eq!(error, expected, "{protocol:?} {bytes:02x?}");
    assert_eq!(error.reason_code(), reason, "{protocol:?} {error}");
}

/// Decodes `bytes` as one whole packet of `protocol` that must be accepted.
fn decode_ok(protocol: Protocol, bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT)
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("{protocol:?} refused {bytes:02x?}: {e}"))
        .unwrap_or_else(|| panic!("{protocol:?} found {bytes:02x?} incomplete"));
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    packet
}

/// Decodes `bytes` as the first packet of a connection, as a server does: the decode must
/// fail with `expected` (mapping to `reason`). Returns the protocol the decoder then reports.
fn assert_first_packet_rejected(
    bytes: &[u8],
    expected: DecodeError,
    reason: ReasonCode,
) -> Option<Protocol> {
    let mut decoder = Decoder::new(PACKET_SIZE_LIMIT);
    let error = match decoder.decode(&mut BytesMut::from(bytes)) {
        Err(e) => e,
        Ok(packet) => panic!("server accepted {bytes:02x?} as {packet:?}"),
    };
    assert_eq!(error, expected, "{bytes:02x?}");
    assert_eq!(error.reason_code(), reason, "{error}");
    decoder.protocol()
}

/// `assert_rejected` for MQTT 5, except that a CONNECT goes through a server-side decoder,
/// as the first packet of a connection does.
fn assert_v5_rejected(bytes: &[u8], expected: DecodeError, reason: ReasonCode) {
    if bytes[0] >> 4 == 1 {
        assert_first_packet_rejected(bytes, expected, reason);
    } else {
        assert_rejected(Protocol::V5, bytes, expected, reason);
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A packet: the first byte, a one-byte remaining length, the body.
fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let remaining_len = u8::try_from(body.len())
        .ok()
        .filter(|&len| len < 0x80)
        .expect("test bodies fit a one-byte remaining length");
    cat(&[&[first_byte, remaining_len], body])
}

/// A string or binary field: two-byte length, then the bytes.
fn field(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("field fits its length");
    cat(&[&len.to_be_bytes(), bytes])
}

/// MQTT 5 properties: a one-byte property length, then the properties.
fn properties(props: &[u8]) -> Vec<u8> {
    let len = u8::try_from(props.len())
        .ok()
        .filter(|&len| len < 0x80)
        .expect("test properties fit a one-byte property length");
    cat(&[&[len], props])
}

/// A CONNECT with this protocol name, level and flags, keep alive 0, then `rest`.
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    frame(
        0x10,
        &cat(&[&field(name), &[level, flags, 0x00, 0x00], rest]),
    )
}

fn connect_v311(flags: u8, payload: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 4, flags, payload)
}

fn connect_v5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 5, flags, &cat(&[&properties(props), payload]))
}

/// The payload of a CONNECT with client id "c", a will to `will_topic` with payload "x"
/// (and, for MQTT 5, `will_props`).
fn will_payload(protocol: Protocol, will_props: &[u8], will_topic: &[u8]) -> Vec<u8> {
    let will_props = if protocol.is_v5() {
        properties(will_props)
    } else {
        vec![]
    };
    cat(&[&field(b"c"), &will_props, &field(will_topic), &field(b"x")])
}

/// A CONNECT of `protocol` with these flags, the given will properties and will topic.
fn connect_with_will(
    protocol: Protocol,
    flags: u8,
    will_props: &[u8],
    will_topic: &[u8],
) -> Vec<u8> {
    let payload = will_payload(protocol, will_props, will_topic);
    match protocol {
        Protocol::V5 => connect_v5(flags, &[], &payload),
        Protocol::V3_1_1 => connect_v311(flags, &payload),
        Protocol::V3_1 => connect(b"MQIsdp", 3, flags, &payload),
    }
}

/// A QoS 0 PUBLISH to `topic` with payload "x" (and, for MQTT 5, no properties).
fn publish(protocol: Protocol, topic: &[u8]) -> Vec<u8> {
    let props: &[u8] = if protocol.is_v5() { &[0x00] } else { &[] };
    frame(0x30, &cat(&[&field(topic), props, b"x"]))
}

/// A v5 QoS 0 PUBLISH to "t" with these properties and an empty payload.
fn publish_v5(props: &[u8]) -> Vec<u8> {
    frame(0x30, &cat(&[&field(b"t"), &properties(props)]))
}

/// A SUBSCRIBE with packet id 1, one filter and its options byte (v5: no properties).
fn subscribe(protocol: Protocol, filter: &[u8], options: u8) -> Vec<u8> {
    let props: &[u8] = if protocol.is_v5() { &[0x00] } else { &[] };
    frame(
        0x82,
        &cat(&[&[0x00, 0x01], props, &field(filter), &[options]]),
    )
}

/// An UNSUBSCRIBE with packet id 1 and one filter (v5: no properties).
fn unsubscribe(protocol: Protocol, filter: &[u8]) -> Vec<u8> {
    let props: &[u8] = if protocol.is_v5() { &[0x00] } else { &[] };
    frame(0xA2, &cat(&[&[0x00, 0x01], props, &field(filter)]))
}

// --- Fixed header (§2.1, §2.2.3 / §1.5.5) --------------------------------------------------

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    for protocol in Protocol::ALL {
        // The fifth byte is never needed: four bytes that all continue are already an error.
        for bytes in [
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..],
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x30, 0x80, 0x80, 0x80, 0x80],
        ] {
            assert_rejected(protocol, bytes, DecodeError::MalformedVarInt, MALFORMED);
        }
    }
}

#[test]
fn remaining_length_in_more_bytes_than_needed_is_malformed() {
    // [MQTT-1.5.5-1]: the encoding must use the minimum number of bytes.
    for protocol in Protocol::ALL {
        for bytes in [
            &[0xC0, 0x80, 0x00][..],         // 0 in two bytes
            &[0x30, 0x83, 0x80, 0x00],       // 3 in three bytes
            &[0x30, 0xFF, 0x80, 0x80, 0x00], // 127 in four bytes
        ] {
            assert_rejected(protocol, bytes, DecodeError::MalformedVarInt, MALFORMED);
        }
    }
}

#[test]
fn reserved_fixed_header_flags_are_refused_from_the_first_byte() {
    // §2.1.3: PUBREL, SUBSCRIBE and UNSUBSCRIBE need 0b0010, the others but PUBLISH 0.
    for protocol in Protocol::ALL {
        for packet_type in (1..=15u8).filter(|&t| t != 3) {
            if packet_type == 15 && !protocol.is_v5() {
                continue; // AUTH does not exist in MQTT 3.
            }
            let required = if matches!(packet_type, 6 | 8 | 10) {
                0b0010
            } else {
                0
            };
            let mut decoder = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT);
            let first_byte = (packet_type << 4) | required;
            assert_eq!(
                decoder.decode(&mut BytesMut::from(&[first_byte][..])),
                Ok(None),
                "{protocol:?} type {packet_type} with its required flags"
            );
            for flags in (0..16).filter(|&f| f != required) {
                let expected = DecodeError::InvalidHeaderFlags { packet_type, flags };
                assert_rejected(protocol, &[(packet_type << 4) | flags], expected, MALFORMED);
            }
        }
    }
}

#[test]
fn packet_type_0_is_malformed() {
    let expected = DecodeError::InvalidPacketType { packet_type: 0 };
    for protocol in Protocol::ALL {
        assert_rejected(protocol, &[0x00, 0x00], expected.clone(), MALFORMED);
        assert_rejected(protocol, &[0x0F], expected.clone(), MALFORMED);
    }
    assert_eq!(
        assert_first_packet_rejected(&[0x00, 0x00], expected, MALFORMED),
        None
    );
}

#[test]
fn auth_packet_is_malformed_in_mqtt_3() {
    for protocol in V3 {
        let expected = DecodeError::InvalidPacketType { packet_type: 15 };
        assert_rejected(protocol, &[0xF0, 0x00], expected, MALFORMED);
    }
}

// --- Strings (§1.5.4) ----------------------------------------------------------------------

/// Byte strings that are not UTF-8 as MQTT defines it ([MQTT-1.5.4-1]).
const INVALID_UTF8: [&[u8]; 5] = [
    &[0xC3, 0x28],       // a lead byte followed by a non-continuation byte
    &[0xFF],             // a byte that never appears in UTF-8
    &[0xC0, 0xAF],       // an overlong encoding of '/'
    &[0xC0, 0x80],       // an overlong encoding of U+0000
    &[0xED, 0xA0, 0x80], // the surrogate U+D800
];

#[test]
fn invalid_utf8_in_a_topic_name_is_malformed() {
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        for topic in INVALID_UTF8 {
            let bytes = publish(protocol, topic);
            assert_rejected(protocol, &bytes, DecodeError::InvalidUtf8, MALFORMED);
        }
    }
}

#[test]
fn invalid_utf8_in_a_client_id_is_malformed() {
    for client_id in INVALID_UTF8 {
        let v311 = connect_v311(0x02, &field(client_id));
        assert_first_packet_rejected(&v311, DecodeError::InvalidUtf8, MALFORMED);
        let v5 = connect_v5(0x02, &[], &field(client_id));
        assert_first_packet_rejected(&v5, DecodeError::InvalidUtf8, MALFORMED);
    }
}

#[test]
fn null_character_in_a_string_is_malformed() {
    // [MQTT-1.5.4-2]: U+0000 in any UTF-8 string.
    let expected = DecodeError::NullCharacter;
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        assert_rejected(
            protocol,
            &publish(protocol, b"a\0"),
            expected.clone(),
            MALFORMED,
        );
        let filter = b"a/\0";
        assert_rejected(
            protocol,
            &subscribe(protocol, filter, 0x00),
            expected.clone(),
            MALFORMED,
        );
        assert_rejected(
            protocol,
            &unsubscribe(protocol, filter),
            expected.clone(),
            MALFORMED,
        );
    }
    let client_id = connect_v311(0x02, &field(b"\0"));
    assert_first_packet_rejected(&client_id, expected.clone(), MALFORMED);
    let user_name = connect_v311(0x82, &cat(&[&field(b"c"), &field(b"u\0")]));
    assert_first_packet_rejected(&user_name, expected.clone(), MALFORMED);
    #[rustfmt::skip]
    let user_property = publish_v5(&[
        0x26, 0x00, 0x01, b'k', // user property "k"
              0x00, 0x01, 0x00, //   = "\0"
    ]);
    assert_rejected(Protocol::V5, &user_property, expected.clone(), MALFORMED);
    #[rustfmt::skip]
    let reason_string = frame(0x40, &[
        0x00, 0x01,             // packet id 1
        0x80,                   // reason code Unspecified error
        0x04,                   // property length 4
        0x1F, 0x00, 0x01, 0x00, //   reason string "\0"
    ]);
    assert_rejected(Protocol::V5, &reason_string, expected, MALFORMED);
}

// --- Topic names (§3.3.2.1, §4.7) ----------------------------------------------------------

#[test]
fn wildcard_in_a_publish_topic_name_is_malformed() {
    // [MQTT-3.3.2-2]
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        for topic in [&b"a/+"[..], b"#", b"a/#", b"a/b+"] {
            let bytes = publish(protocol, topic);
            assert_rejected(
                protocol,
                &bytes,
                DecodeError::WildcardInTopicName,
                MALFORMED,
            );
        }
    }
}

#[test]
fn wildcard_in_a_will_topic_is_malformed() {
    for protocol in Protocol::ALL {
        for topic in [&b"w/#"[..], b"+"] {
            // Will flag and clean start.
            let bytes = connect_with_will(protocol, 0x06, &[], topic);
            assert_first_packet_rejected(&bytes, DecodeError::WildcardInTopicName, MALFORMED);
        }
    }
}

#[test]
fn wildcard_in_a_response_topic_is_malformed() {
    #[rustfmt::skip]
    let bytes = publish_v5(&[
        0x08, 0x00, 0x03, b'r', b'/', b'#', // response topic "r/#"
    ]);
    assert_rejected(
        Protocol::V5,
        &bytes,
        DecodeError::WildcardInTopicName,
        MALFORMED,
    );
}

#[test]
fn empty_publish_topic_is_malformed_in_mqtt_3() {
    // [MQTT-4.7.3-1]: topic names are at least one character long.
    for protocol in V3 {
        let bytes = publish(protocol, b"");
        assert_rejected(protocol, &bytes, DecodeError::EmptyTopicName, MALFORMED);
    }
}

#[test]
fn empty_publish_topic_without_topic_alias_is_a_protocol_error_in_mqtt_5() {
    // §3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and there is no
    // Topic Alias."
    let expected = DecodeError::EmptyTopicWithoutAlias;
    assert_rejected(
        Protocol::V5,
        &publish(Protocol::V5, b""),
        expected.clone(),
        PROTOCOL_ERROR,
    );
    #[rustfmt::skip]
    let other_properties = frame(0x30, &[
        0x00, 0x00, // topic name ""
        0x02,       // property length 2
        0x01, 0x01, //   payload format indicator, but no topic alias
    ]);
    assert_rejected(Protocol::V5, &other_properties, expected, PROTOCOL_ERROR);
}

#[test]
fn empty_will_topic_is_malformed() {
    for protocol in Protocol::ALL {
        let bytes = connect_with_will(protocol, 0x06, &[], b"");
        assert_first_packet_rejected(&bytes, DecodeError::EmptyTopicName, MALFORMED);
    }
}

// --- Properties (§2.2.2) -------------------------------------------------------------------

#[test]
fn duplicate_property_is_a_protocol_error() {
    #[rustfmt::skip]
    let cases = [
        // Two Payload Format Indicators in PUBLISH.
        (publish_v5(&[0x01, 0x01, 0x01, 0x00]), 0x01),
        // Two Topic Aliases in PUBLISH.
        (publish_v5(&[0x23, 0x00, 0x01, 0x23, 0x00, 0x02]), 0x23),
        // Two Session Expiry Intervals in CONNECT.
        (
            connect_v5(0x02, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], &field(b"c")),
            0x11,
        ),
        // Two Will Delay Intervals in the will properties.
        (
            connect_with_will(Protocol::V5, 0x06, &[0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 2], b"w"),
            0x18,
        ),
        // Two Maximum QoS in CONNACK.
        (frame(0x20, &[0x00, 0x00, 0x04, 0x24, 0x00, 0x24, 0x01]), 0x24),
        // Two Subscription Identifiers in SUBSCRIBE (unlike PUBLISH, §3.8.2.1.2).
        (
            frame(0x82, &[0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b'a', 0x00]),
            0x0B,
        ),
        // Two Reason Strings in PUBACK.
        (
            frame(0x40, &[0x00, 0x01, 0x80, 0x08, 0x1F, 0x00, 0x01, b'a', 0x1F, 0x00, 0x01, b'b']),
            0x1F,
        ),
    ];
    for (bytes, id) in cases {
        let expected = DecodeError::DuplicateProperty { id };
        assert_v5_rejected(&bytes, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn repeated_user_properties_and_subscription_identifiers_in_publish_are_allowed() {
    #[rustfmt::skip]
    let bytes = publish_v5(&[
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'1', // user property "k" = "1"
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'2', // user property "k" = "2"
        0x0B, 0x01,                               // subscription identifier 1
        0x0B, 0x02,                               // subscription identifier 2
    ]);
    let Packet::Publish(publish) = decode_ok(Protocol::V5, &bytes) else {
        panic!("decoded a PUBLISH as another packet type");
    };
    let user: Vec<(&str, &str)> = publish
        .properties
        .user_properties
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(user, [("k", "1"), ("k", "2")]);
    let ids: Vec<u32> = publish
        .properties
        .subscription_identifiers
        .iter()
        .map(|id| id.get())
        .collect();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn property_not_allowed_in_the_packet_is_malformed() {
    // §2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its
    // packet type ... is a Malformed Packet."
    #[rustfmt::skip]
    let cases = [
        // Topic Alias, Will Delay Interval and Maximum QoS in CONNECT.
        (connect_v5(0x02, &[0x23, 0x00, 0x01], &field(b"c")), 0x23, "CONNECT"),
        (connect_v5(0x02, &[0x18, 0, 0, 0, 1], &field(b"c")), 0x18, "CONNECT"),
        (connect_v5(0x02, &[0x24, 0x01], &field(b"c")), 0x24, "CONNECT"),
        // Session Expiry Interval in the will properties and in PUBLISH.
        (connect_with_will(Protocol::V5, 0x06, &[0x11, 0, 0, 0, 1], b"w"), 0x11, "will properties"),
        (publish_v5(&[0x11, 0, 0, 0, 1]), 0x11, "PUBLISH"),
        // Authentication Method in PUBACK.
        (frame(0x40, &[0x00, 0x01, 0x00, 0x02, 0x15, 0x00]), 0x15, "PUBACK"),
        // Subscription Identifier in UNSUBSCRIBE.
        (frame(0xA2, &[0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, b'a']), 0x0B, "UNSUBSCRIBE"),
        // Assigned Client Identifier in DISCONNECT.
        (frame(0xE0, &[0x00, 0x03, 0x12, 0x00, 0x00]), 0x12, "DISCONNECT"),
    ];
    for (bytes, id, packet) in cases {
        let expected = DecodeError::PropertyNotAllowed { id, packet };
        assert_v5_rejected(&bytes, expected, MALFORMED);
    }
}

#[test]
fn unknown_property_identifier_is_malformed() {
    for (props, id) in [
        (&[0x00, 0x00][..], 0),     // 0 is not a property
        (&[0x04, 0x00], 4),         // a gap between defined identifiers
        (&[0x2B, 0x00], 0x2B),      // one past the last defined identifier
        (&[0x80, 0x01, 0x00], 128), // a two-byte variable byte integer identifier
    ] {
        let expected = DecodeError::UnknownProperty { id };
        assert_rejected(Protocol::V5, &publish_v5(props), expected, MALFORMED);
    }
}

#[test]
fn property_value_out_of_range_is_a_protocol_error() {
    let connect_with = |props: &[u8]| connect_v5(0x02, props, &field(b"c"));
    let connack_with = |props: &[u8]| frame(0x20, &cat(&[&[0x00, 0x00], &properties(props)]));
    #[rustfmt::skip]
    let cases = [
        (connect_with(&[0x21, 0x00, 0x00]), 0x21, 0),    // Receive Maximum 0
        (connect_with(&[0x27, 0, 0, 0, 0]), 0x27, 0),    // Maximum Packet Size 0
        (connect_with(&[0x17, 0x02]), 0x17, 2),          // Request Problem Information 2
        (connect_with(&[0x19, 0x02]), 0x19, 2),          // Request Response Information 2
        (connack_with(&[0x21, 0x00, 0x00]), 0x21, 0),    // Receive Maximum 0
        (connack_with(&[0x27, 0, 0, 0, 0]), 0x27, 0),    // Maximum Packet Size 0
        (connack_with(&[0x24, 0x02]), 0x24, 2),          // Maximum QoS 2 (§3.2.2.3.4)
        (connack_with(&[0x25, 0x02]), 0x25, 2),          // Retain Available 2
        (connack_with(&[0x2A, 0xFF]), 0x2A, 0xFF),       // Shared Subscription Available 255
        (publish_v5(&[0x23, 0x00, 0x00]), 0x23, 0),      // Topic Alias 0
        (publish_v5(&[0x0B, 0x00]), 0x0B, 0),            // Subscription Identifier 0
        (publish_v5(&[0x01, 0x02]), 0x01, 2),            // Payload Format Indicator 2
        (
            frame(0x82, &[0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, b'a', 0x00]),
            0x0B,                                        // Subscription Identifier 0
            0,
        ),
    ];
    for (bytes, id, value) in cases {
        let expected = DecodeError::InvalidPropertyValue { id, value };
        assert_v5_rejected(&bytes, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn authentication_data_without_method_is_a_protocol_error() {
    // §3.1.2.11.10: "It is a Protocol Error to include Authentication Data if there is no
    // Authentication Method."
    let data = [0x16, 0x00, 0x01, 0xAA];
    let expected = DecodeError::AuthDataWithoutMethod;
    let connect = connect_v5(0x02, &data, &field(b"c"));
    assert_first_packet_rejected(&connect, expected.clone(), PROTOCOL_ERROR);
    let connack = frame(0x20, &cat(&[&[0x00, 0x00], &properties(&data)]));
    assert_rejected(Protocol::V5, &connack, expected.clone(), PROTOCOL_ERROR);
    let auth = frame(0xF0, &cat(&[&[0x18], &properties(&data)]));
    assert_rejected(Protocol::V5, &auth, expected, PROTOCOL_ERROR);
}

// --- PUBLISH (§3.3) ------------------------------------------------------------------------

#[test]
fn publish_with_qos_3_is_malformed() {
    // [MQTT-3.3.1-4]: both QoS bits set is a Malformed Packet.
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let mut bytes = publish(protocol, b"t");
        for first_byte in [0x36, 0x37, 0x3E] {
            bytes[0] = first_byte;
            assert_rejected(protocol, &bytes, DecodeError::InvalidQoS, MALFORMED);
        }
    }
}

#[test]
fn dup_on_a_qos_0_publish_is_malformed() {
    // [MQTT-3.3.1-2]
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let mut bytes = publish(protocol, b"t");
        for first_byte in [0x38, 0x39] {
            bytes[0] = first_byte;
            assert_rejected(protocol, &bytes, DecodeError::DupWithQoS0, MALFORMED);
        }
    }
}

#[test]
fn packet_id_0_is_malformed() {
    // [MQTT-2.2.1-3]
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let props: &[u8] = if protocol.is_v5() { &[0x00] } else { &[] };
        let packets = [
            frame(0x32, &cat(&[&field(b"t"), &[0x00, 0x00], props])), // PUBLISH QoS 1
            frame(0x34, &cat(&[&field(b"t"), &[0x00, 0x00], props])), // PUBLISH QoS 2
            frame(0x40, &[0x00, 0x00]),                               // PUBACK
            frame(0x50, &[0x00, 0x00]),                               // PUBREC
            frame(0x62, &[0x00, 0x00]),                               // PUBREL
            frame(0x70, &[0x00, 0x00]),                               // PUBCOMP
            frame(0x82, &cat(&[&[0x00, 0x00], props, &field(b"a"), &[0x00]])), // SUBSCRIBE
            frame(0x90, &cat(&[&[0x00, 0x00], props, &[0x00]])),      // SUBACK
            frame(0xA2, &cat(&[&[0x00, 0x00], props, &field(b"a")])), // UNSUBSCRIBE
            frame(0xB0, &cat(&[&[0x00, 0x00], props])),               // UNSUBACK
        ];
        for bytes in packets {
            assert_rejected(protocol, &bytes, DecodeError::ZeroPacketId, MALFORMED);
        }
    }
}

// --- CONNECT (§3.1) ------------------------------------------------------------------------

#[test]
fn connect_reserved_flag_is_malformed() {
    // [MQTT-3.1.2-3]
    for bytes in [
        connect(b"MQIsdp", 3, 0x03, &field(b"c")),
        connect_v311(0x03, &field(b"c")),
        connect_v5(0x03, &[], &field(b"c")),
    ] {
        assert_first_packet_rejected(&bytes, DecodeError::ConnectReservedFlag, MALFORMED);
    }
}

#[test]
fn will_qos_without_will_flag_is_malformed() {
    // [MQTT-3.1.2-11]
    for flags in [0x0A, 0x12, 0x1A] {
        let v311 = connect_v311(flags, &field(b"c"));
        assert_first_packet_rejected(&v311, DecodeError::WillQoSWithoutWill, MALFORMED);
        let v5 = connect_v5(flags, &[], &field(b"c"));
        assert_first_packet_rejected(&v5, DecodeError::WillQoSWithoutWill, MALFORMED);
    }
}

#[test]
fn will_retain_without_will_flag_is_malformed() {
    // [MQTT-3.1.2-13]
    let v311 = connect_v311(0x22, &field(b"c"));
    assert_first_packet_rejected(&v311, DecodeError::WillRetainWithoutWill, MALFORMED);
    let v5 = connect_v5(0x22, &[], &field(b"c"));
    assert_first_packet_rejected(&v5, DecodeError::WillRetainWithoutWill, MALFORMED);
}

#[test]
fn will_qos_3_is_malformed() {
    // [MQTT-3.1.2-12]; MQTT 5.0 §3.1.2.6: "A value of 3 (0x03) is a Malformed Packet."
    for protocol in Protocol::ALL {
        let bytes = connect_with_will(protocol, 0x1E, &[], b"w");
        assert_first_packet_rejected(&bytes, DecodeError::InvalidWillQoS, MALFORMED);
    }
}

#[test]
fn password_without_user_name_is_malformed_in_mqtt_3() {
    // MQTT 3.1.1 [MQTT-3.1.2-22]
    let payload = cat(&[&field(b"c"), &field(b"pw")]);
    for bytes in [
        connect(b"MQIsdp", 3, 0x42, &payload),
        connect_v311(0x42, &payload),
    ] {
        assert_first_packet_rejected(&bytes, DecodeError::PasswordWithoutUsername, MALFORMED);
    }
}

#[test]
fn password_without_user_name_is_allowed_in_mqtt_5() {
    // MQTT 5.0 §3.1.2.9 dropped the 3.1.1 rule.
    let bytes = connect_v5(0x42, &[], &cat(&[&field(b"c"), &field(b"pw")]));
    let Packet::Connect(connect) = decode_ok(Protocol::V5, &bytes) else {
        panic!("decoded a CONNECT as another packet type");
    };
    assert_eq!(connect.username, None);
    assert_eq!(connect.password.as_deref(), Some(&b"pw"[..]));
}

#[test]
fn wrong_protocol_name_is_an_unsupported_protocol_version() {
    for name in [&b"MQTX"[..], b"mqtt", b"MQIsdP", b"MQTT\0", b""] {
        for level in [3, 4, 5] {
            let bytes = connect(name, level, 0x02, &field(b"c"));
            let protocol = assert_first_packet_rejected(
                &bytes,
                DecodeError::InvalidProtocolName,
                ReasonCode::UnsupportedProtocolVersion,
            );
            assert_eq!(protocol, None, "{name:?} level {level}");
        }
    }
}

#[test]
fn unsupported_protocol_level_is_an_unsupported_protocol_version() {
    // [MQTT-3.1.2-2]: the server answers with CONNACK 0x84 and closes.
    let cases = [
        (&b"MQTT"[..], 3),
        (b"MQTT", 6),
        (b"MQTT", 0),
        (b"MQIsdp", 4),
        (b"MQIsdp", 5),
    ];
    for (name, level) in cases {
        let bytes = connect(name, level, 0x02, &field(b"c"));
        let protocol = assert_first_packet_rejected(
            &bytes,
            DecodeError::UnsupportedProtocolLevel { level },
            ReasonCode::UnsupportedProtocolVersion,
        );
        assert_eq!(protocol, None, "{name:?} level {level}");
    }
}

#[test]
fn connect_failing_after_its_level_still_reports_the_declared_protocol() {
    // The broker answers a bad CONNECT in the client's own version (a v5 CONNACK with a
    // reason code), so the decoder must know the version even when the decode fails.
    let reserved_flag = connect_v5(0x03, &[], &field(b"c"));
    let protocol =
        assert_first_packet_rejected(&reserved_flag, DecodeError::ConnectReservedFlag, MALFORMED);
    assert_eq!(protocol, Some(Protocol::V5));

    let bad_property = connect_v5(0x02, &[0x23, 0x00, 0x01], &field(b"c"));
    let expected = DecodeError::PropertyNotAllowed {
        id: 0x23,
        packet: "CONNECT",
    };
    let protocol = assert_first_packet_rejected(&bad_property, expected, MALFORMED);
    assert_eq!(protocol, Some(Protocol::V5));

    let truncated = frame(0x10, &cat(&[&field(b"MQTT"), &[0x05, 0x02]]));
    let protocol = assert_first_packet_rejected(&truncated, DecodeError::Truncated, MALFORMED);
    assert_eq!(protocol, Some(Protocol::V5));

    let v311 = connect_v311(0x42, &cat(&[&field(b"c"), &field(b"pw")]));
    let protocol =
        assert_first_packet_rejected(&v311, DecodeError::PasswordWithoutUsername, MALFORMED);
    assert_eq!(protocol, Some(Protocol::V3_1_1));
}

#[test]
fn connect_too_short_to_hold_its_protocol_level_is_truncated() {
    for bytes in [
        frame(0x10, &[0x00]),
        frame(0x10, &[0x00, 0x04, b'M', b'Q']),
        frame(0x10, &field(b"MQTT")),
    ] {
        let protocol = assert_first_packet_rejected(&bytes, DecodeError::Truncated, MALFORMED);
        assert_eq!(protocol, None, "{bytes:02x?}");
    }
}

#[test]
fn first_packet_of_a_connection_must_be_connect() {
    // [MQTT-3.1.0-1]
    let cases = [
        (vec![0xC0, 0x00], 12),               // PINGREQ
        (publish(Protocol::V3_1_1, b"t"), 3), // PUBLISH
        (vec![0x20, 0x02, 0x00, 0x00], 2),    // CONNACK
        (vec![0xE0, 0x00], 14),               // DISCONNECT
        (vec![0xF0, 0x00], 15),               // AUTH
    ];
    for (bytes, packet_type) in cases {
        let expected = DecodeError::FirstPacketNotConnect { packet_type };
        let protocol = assert_first_packet_rejected(&bytes, expected, PROTOCOL_ERROR);
        assert_eq!(protocol, None);
    }
}

// --- CONNACK (§3.2) ------------------------------------------------------------------------

#[test]
fn v3_connack_return_code_above_5_is_malformed() {
    // MQTT 3.1.1 §3.2.2.3: 6 to 255 are reserved.
    for protocol in V3 {
        for code in [6, 0x80, 0xFF] {
            let expected = DecodeError::InvalidConnectReturnCode { code };
            assert_rejected(protocol, &[0x20, 0x02, 0x00, code], expected, MALFORMED);
        }
    }
}

#[test]
fn connack_reserved_flag_bits_are_malformed() {
    // [MQTT-3.2.2-1]: bits 7 to 1 of the acknowledge flags are reserved.
    for flags in [0x02, 0x80, 0xFE, 0xFF] {
        let expected = DecodeError::InvalidConnAckFlags { flags };
        for protocol in V3 {
            assert_rejected(
                protocol,
                &[0x20, 0x02, flags, 0x00],
                expected.clone(),
                MALFORMED,
            );
        }
        let v5 = [0x20, 0x03, flags, 0x00, 0x00];
        assert_rejected(Protocol::V5, &v5, expected, MALFORMED);
    }
}

#[test]
fn session_present_on_a_refused_connack_is_malformed() {
    // [MQTT-3.2.2-6] (3.1.1 [MQTT-3.2.2-4])
    let expected = DecodeError::SessionPresentOnRefusal;
    for protocol in V3 {
        assert_rejected(
            protocol,
            &[0x20, 0x02, 0x01, 0x05],
            expected.clone(),
            MALFORMED,
        );
    }
    let v5 = [0x20, 0x03, 0x01, 0x87, 0x00];
    assert_rejected(Protocol::V5, &v5, expected, MALFORMED);
}

// --- SUBSCRIBE, UNSUBSCRIBE (§3.8, §3.10) --------------------------------------------------

#[test]
fn subscribe_without_topic_filters_is_a_protocol_error() {
    // MQTT 5.0 §3.8.3: "A SUBSCRIBE packet with no Payload is a Protocol Error."
    for protocol in V3 {
        let bytes = [0x82, 0x02, 0x00, 0x01];
        assert_rejected(
            protocol,
            &bytes,
            DecodeError::NoSubscribeFilters,
            PROTOCOL_ERROR,
        );
    }
    let v5 = [0x82, 0x03, 0x00, 0x01, 0x00];
    assert_rejected(
        Protocol::V5,
        &v5,
        DecodeError::NoSubscribeFilters,
        PROTOCOL_ERROR,
    );
}

#[test]
fn unsubscribe_without_topic_filters_is_a_protocol_error() {
    // MQTT 5.0 §3.10.3: "An UNSUBSCRIBE packet with no Payload is a Protocol Error."
    for protocol in V3 {
        let bytes = [0xA2, 0x02, 0x00, 0x01];
        assert_rejected(
            protocol,
            &bytes,
            DecodeError::NoUnsubscribeFilters,
            PROTOCOL_ERROR,
        );
    }
    let v5 = [0xA2, 0x03, 0x00, 0x01, 0x00];
    assert_rejected(
        Protocol::V5,
        &v5,
        DecodeError::NoUnsubscribeFilters,
        PROTOCOL_ERROR,
    );
}

#[test]
fn malformed_topic_filters_are_refused_in_subscribe_and_unsubscribe() {
    let cases = [
        (&b"a/#/b"[..], DecodeError::InvalidMultiLevelWildcard), // [MQTT-4.7.1-1]
        (b"a#", DecodeError::InvalidMultiLevelWildcard),
        (b"a+", DecodeError::InvalidSingleLevelWildcard), // [MQTT-4.7.1-2]
        (b"a/+b", DecodeError::InvalidSingleLevelWildcard),
        (b"", DecodeError::EmptyTopicFilter), // [MQTT-4.7.3-1]
    ];
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        for (filter, expected) in cases.clone() {
            let sub = subscribe(protocol, filter, 0x00);
            assert_rejected(protocol, &sub, expected.clone(), MALFORMED);
            assert_rejected(
                protocol,
                &unsubscribe(protocol, filter),
                expected,
                MALFORMED,
            );
        }
    }
}

#[test]
fn malformed_shared_subscription_filters_are_refused() {
    // [MQTT-4.8.2-1], [MQTT-4.8.2-2]: $share/{non-empty group without / + #}/{filter}.
    let protocol = Protocol::V5;
    for filter in [
        &b"$share/g"[..],
        b"$share//a",
        b"$share/g/",
        b"$share/",
        b"$share/g+/a",
    ] {
        let expected = DecodeError::InvalidSharedSubscription;
        let sub = subscribe(protocol, filter, 0x00);
        assert_rejected(protocol, &sub, expected.clone(), MALFORMED);
        assert_rejected(
            protocol,
            &unsubscribe(protocol, filter),
            expected,
            MALFORMED,
        );
    }
}

#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    // [MQTT-3.8.3-4]
    let bytes = subscribe(Protocol::V5, b"$share/g/a", 0x04);
    let expected = DecodeError::NoLocalOnSharedSubscription;
    assert_rejected(Protocol::V5, &bytes, expected, PROTOCOL_ERROR);
}

#[test]
fn subscription_option_reserved_bits_are_malformed() {
    // MQTT 3.1.1 [MQTT-3.8.3-4]: bits 7 to 2 are reserved. MQTT 5.0 [MQTT-3.8.3-5]: bits 7
    // and 6 are.
    for protocol in V3 {
        for options in [0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFD] {
            let bytes = subscribe(protocol, b"a", options);
            let expected = DecodeError::SubscriptionOptionsReserved { options };
            assert_rejected(protocol, &bytes, expected, MALFORMED);
        }
    }
    for options in [0x40, 0x80, 0xC1] {
        let bytes = subscribe(Protocol::V5, b"a", options);
        let expected = DecodeError::SubscriptionOptionsReserved { options };
        assert_rejected(Protocol::V5, &bytes, expected, MALFORMED);
    }
}

#[test]
fn subscription_qos_3_is_a_protocol_error() {
    // MQTT 5.0 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3".
    // (MQTT 3.1.1 [MQTT-3.8.3-4] calls it malformed; MQTT 3 has no reason code to send.)
    for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
        let bytes = subscribe(protocol, b"a", 0x03);
        assert_rejected(
            protocol,
            &bytes,
            DecodeError::InvalidSubscriptionQoS,
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn retain_handling_3_is_a_protocol_error() {
    // MQTT 5.0 §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
    let bytes = subscribe(Protocol::V5, b"a", 0x30);
    assert_rejected(
        Protocol::V5,
        &bytes,
        DecodeError::InvalidRetainHandling,
        PROTOCOL_ERROR,
    );
}

// --- Reason codes (§2.4) -------------------------------------------------------------------

#[test]
fn reason_code_not_allowed_in_the_packet_is_a_protocol_error() {
    #[rustfmt::skip]
    let cases = [
        (vec![0x62, 0x03, 0x00, 0x01, 0x10], "PUBREL", 0x10),
        (vec![0x70, 0x03, 0x00, 0x01, 0x10], "PUBCOMP", 0x10),
        (vec![0x40, 0x03, 0x00, 0x01, 0x92], "PUBACK", 0x92),
        (vec![0x50, 0x03, 0x00, 0x01, 0x92], "PUBREC", 0x92),
        (vec![0x40, 0x03, 0x00, 0x01, 0x03], "PUBACK", 0x03), // defined nowhere
        (vec![0x20, 0x03, 0x00, 0x04, 0x00], "CONNACK", 0x04),
        (vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x11], "SUBACK", 0x11),
        (vec![0xB0, 0x04, 0x00, 0x01, 0x00, 0x02], "UNSUBACK", 0x02),
        (vec![0xE0, 0x01, 0x18], "DISCONNECT", 0x18),
        (vec![0xF0, 0x02, 0x04, 0x00], "AUTH", 0x04),
    ];
    for (bytes, packet, code) in cases {
        let expected = DecodeError::InvalidReasonCode { packet, code };
        assert_rejected(Protocol::V5, &bytes, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn v3_suback_return_code_not_defined_is_malformed() {
    // MQTT 3.1.1 §3.9.3: only 0x00, 0x01, 0x02 and 0x80.
    for protocol in V3 {
        for code in [0x03, 0x81, 0x87] {
            let bytes = [0x90, 0x03, 0x00, 0x01, code];
            let expected = DecodeError::InvalidSubAckReturnCode { code };
            assert_rejected(protocol, &bytes, expected, MALFORMED);
        }
    }
}

// --- Lengths (§2.1.4) ----------------------------------------------------------------------

#[test]
fn bytes_after_the_last_field_are_malformed() {
    let extra = |extra| DecodeError::TrailingBytes { extra };
    for protocol in Protocol::ALL {
        assert_rejected(protocol, &[0xC0, 0x01, 0x00], extra(1), MALFORMED); // PINGREQ
        assert_rejected(protocol, &[0xD0, 0x02, 0x00, 0x00], extra(2), MALFORMED);
        // PINGRESP
    }
    for protocol in V3 {
        #[rustfmt::skip]
        let cases = [
            (vec![0x40, 0x03, 0x00, 0x01, 0x00], 1),       // PUBACK
            (vec![0x50, 0x03, 0x00, 0x01, 0x00], 1),       // PUBREC
            (vec![0x62, 0x04, 0x00, 0x01, 0x00, 0x00], 2), // PUBREL
            (vec![0x70, 0x03, 0x00, 0x01, 0x00], 1),       // PUBCOMP
            (vec![0x20, 0x03, 0x00, 0x00, 0x00], 1),       // CONNACK
            (vec![0xB0, 0x03, 0x00, 0x01, 0x00], 1),       // UNSUBACK
            (vec![0xE0, 0x01, 0x00], 1),                   // DISCONNECT
        ];
        for (bytes, count) in cases {
            assert_rejected(protocol, &bytes, extra(count), MALFORMED);
        }
    }
    #[rustfmt::skip]
    let v5_cases = [
        (vec![0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0xAA], 1), // PUBACK after its properties
        (vec![0x20, 0x04, 0x00, 0x00, 0x00, 0xAA], 1),       // CONNACK after its properties
        (vec![0xE0, 0x03, 0x00, 0x00, 0xAA], 1),             // DISCONNECT after its properties
        (vec![0xF0, 0x03, 0x00, 0x00, 0xAA], 1),             // AUTH after its properties
    ];
    for (bytes, count) in v5_cases {
        assert_rejected(Protocol::V5, &bytes, extra(count), MALFORMED);
    }
    let connect = connect_v311(0x02, &cat(&[&field(b"c"), &[0xAA]]));
    assert_first_packet_rejected(&connect, extra(1), MALFORMED);
}

#[test]
fn remaining_length_shorter_than_the_fields_is_truncated() {
    #[rustfmt::skip]
    let v3_cases = [
        vec![0x40, 0x01, 0x00],                         // PUBACK: half a packet id
        vec![0x20, 0x01, 0x00],                         // CONNACK: no return code
        vec![0x32, 0x04, 0x00, 0x01, b't', 0x00],       // PUBLISH QoS 1: half a packet id
        vec![0x30, 0x03, 0x00, 0x05, b'a'],             // PUBLISH: topic longer than the packet
        vec![0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'], // SUBSCRIBE: no options byte
        vec![0xA2, 0x03, 0x00, 0x01, 0x00],             // UNSUBSCRIBE: half a filter length
    ];
    for protocol in V3 {
        for bytes in &v3_cases {
            assert_rejected(protocol, bytes, DecodeError::Truncated, MALFORMED);
        }
    }
    #[rustfmt::skip]
    let v5_cases = [
        vec![0x20, 0x02, 0x00, 0x00],                         // CONNACK: no property length
        vec![0x30, 0x03, 0x00, 0x01, b't'],                   // PUBLISH: no property length
        vec![0x30, 0x06, 0x00, 0x01, b't', 0x05, 0x01, 0x01], // PUBLISH: properties cut short
        vec![0x30, 0x06, 0x00, 0x01, b't', 0x02, 0x02, 0x00], // PUBLISH: expiry interval cut short
        vec![0x30, 0x05, 0x00, 0x01, b't', 0x01, 0x0B],       // PUBLISH: subscription id missing
        vec![0x30, 0x05, 0x00, 0x01, b't', 0x01, 0x80],       // PUBLISH: property id cut short
        vec![0x90, 0x03, 0x00, 0x01, 0x80],                   // SUBACK: property length cut short
    ];
    for bytes in &v5_cases {
        assert_rejected(Protocol::V5, bytes, DecodeError::Truncated, MALFORMED);
    }
    let connect_cases = [
        frame(0x10, &cat(&[&field(b"MQTT"), &[0x04]])), // no connect flags
        frame(0x10, &cat(&[&field(b"MQTT"), &[0x04, 0x02, 0x00]])), // half a keep alive
        connect_v311(0x02, &[]),                        // no client id
        connect_v311(0x06, &field(b"c")),               // will flag but no will topic
        connect_v311(0x82, &field(b"c")),               // user name flag but no user name
        connect_v5(0x02, &[0x11, 0x00], &field(b"c")),  // session expiry cut short
    ];
    for bytes in connect_cases {
        assert_first_packet_rejected(&bytes, DecodeError::Truncated, MALFORMED);
    }
}

// --- Size limit and incomplete input -------------------------------------------------------

#[test]
fn packet_larger_than_the_maximum_is_refused_from_its_fixed_header() {
    // Only the fixed header has arrived: the body is never waited for.
    let mut decoder = Decoder::with_protocol(Protocol::V5, 64);
    let expected = DecodeError::PacketTooLarge { size: 131, max: 64 };
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&[0x30, 0x80, 0x01][..])),
        Err(expected.clone())
    );
    assert_eq!(expected.reason_code(), ReasonCode::PacketTooLarge);

    let mut server = Decoder::new(64);
    assert_eq!(
        server.decode(&mut BytesMut::from(&[0x10, 0x80, 0x01][..])),
        Err(expected)
    );
    assert_eq!(server.protocol(), None);

    // The largest packet MQTT can frame, against a 1 MiB limit and against no limit.
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    let mut decoder = Decoder::with_protocol(Protocol::V5, 1 << 20);
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&header[..])),
        Err(DecodeError::PacketTooLarge {
            size: PACKET_SIZE_LIMIT,
            max: 1 << 20
        })
    );
    let mut decoder = Decoder::with_protocol(Protocol::V5, PACKET_SIZE_LIMIT);
    assert_eq!(decoder.decode(&mut BytesMut::from(&header[..])), Ok(None));
}

#[test]
fn packet_of_exactly_the_maximum_size_is_accepted() {
    let puback = [0x40, 0x02, 0x00, 0x01];
    let mut decoder = Decoder::with_protocol(Protocol::V3_1_1, puback.len());
    assert!(matches!(
        decoder.decode(&mut BytesMut::from(&puback[..])),
        Ok(Some(Packet::PubAck(_)))
    ));
    let mut decoder = Decoder::with_protocol(Protocol::V3_1_1, puback.len() - 1);
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&puback[..])),
        Err(DecodeError::PacketTooLarge { size: 4, max: 3 })
    );
}

#[test]
fn every_strict_prefix_of_a_valid_packet_is_incomplete() {
    // PUBLISHes with a two-byte remaining length: 203 (v3) and 204 (v5) bytes.
    let long_payload = vec![0x5A; 200];
    let long_v3_publish = cat(&[&[0x30, 0xCB, 0x01], &field(b"t"), &long_payload]);
    let long_v5_publish = cat(&[&[0x30, 0xCC, 0x01], &field(b"t"), &[0x00], &long_payload]);
    #[rustfmt::skip]
    let v5_packets = [
        connect_with_will(Protocol::V5, 0x06, &[0x18, 0, 0, 0, 5], b"w"),
        frame(0x20, &[0x00, 0x00, 0x03, 0x21, 0x00, 0x0A]),
        frame(0x32, &cat(&[&field(b"a/b"), &[0x00, 0x01, 0x03, 0x23, 0x00, 0x01], b"hi"])),
        vec![0x40, 0x04, 0x00, 0x01, 0x10, 0x00],
        subscribe(Protocol::V5, b"a/+", 0x2E),
        frame(0x90, &[0x00, 0x01, 0x00, 0x01]),
        unsubscribe(Protocol::V5, b"a"),
        frame(0xB0, &[0x00, 0x01, 0x00, 0x00]),
        vec![0xC0, 0x00],
        vec![0xE0, 0x01, 0x04],
        frame(0xF0, &[0x18, 0x04, 0x15, 0x00, 0x01, b'm']),
        long_v5_publish,
    ];
    let v311_packets = [
        connect_with_will(Protocol::V3_1_1, 0x06, &[], b"w"),
        connect_with_will(Protocol::V3_1, 0x06, &[], b"w"),
        vec![0x20, 0x02, 0x01, 0x00],
        publish(Protocol::V3_1_1, b"a/b"),
        vec![0x62, 0x02, 0x00, 0x01],
        subscribe(Protocol::V3_1_1, b"a/#", 0x02),
        vec![0xD0, 0x00],
        vec![0xE0, 0x00],
        long_v3_publish,
    ];
    let cases = v5_packets
        .iter()
        .map(|bytes| (Protocol::V5, bytes))
        .chain(v311_packets.iter().map(|bytes| (Protocol::V3_1_1, bytes)));
    for (protocol, bytes) in cases {
        decode_ok(protocol, bytes);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            let mut decoder = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT);
            assert_eq!(
                decoder.decode(&mut buf),
                Ok(None),
                "{protocol:?} {cut} of {bytes:02x?}"
            );
            assert_eq!(buf.len(), cut, "an incomplete packet is left in the buffer");
            if bytes[0] == 0x10 {
                let mut server = Decoder::new(PACKET_SIZE_LIMIT);
                assert_eq!(
                    server.decode(&mut buf),
                    Ok(None),
                    "server, {cut} of {bytes:02x?}"
                );
                assert_eq!(
                    server.protocol(),
                    None,
                    "no protocol before the CONNECT is whole"
                );
            }
        }
    }
}
