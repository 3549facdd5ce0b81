//! Property tests of the codec: every packet type of every protocol version round-trips.
//!
//! For each (version, packet type) a generated valid packet must: encode to exactly
//! `encoded_len` bytes; decode back equal with the buffer fully consumed; decode as
//! incomplete from every strict prefix; fail cleanly (writing nothing) when encoded into a
//! buffer one byte too small; and decode the same when another packet follows it.

use arbitrary::Unstructured;
use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::arbitrary::packet_of;
use super::{DecodeError, Decoder, EncodeError, Packet, PacketType, Protocol, PACKET_SIZE_LIMIT};

/// Valid packets of one type, drawn from random bytes so that proptest can shrink them.
fn packets(protocol: Protocol, kind: PacketType) -> impl Strategy<Value = Packet> {
    proptest::collection::vec(any::<u8>(), 0..768)
        .prop_filter_map("generator needs more bytes", move |bytes| {
            packet_of(&mut Unstructured::new(&bytes), protocol, kind).ok()
        })
}

fn decode_all(protocol: Protocol, bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT).decode(&mut buf);
    if matches!(packet, Ok(Some(_))) {
        assert!(buf.is_empty(), "{} bytes left after decoding", buf.len());
    }
    packet
}

fn check_round_trip(protocol: Protocol, packet: &Packet) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    let written = packet
        .encode(protocol, &mut buf)
        .map_err(|e| TestCaseError::fail(format!("encode failed: {e}")))?;
    let bytes = buf.freeze();
    prop_assert_eq!(written, bytes.len());
    prop_assert_eq!(packet.encoded_len(protocol), Ok(bytes.len()));

    // Decodes back to the same value, consuming the whole buffer.
    prop_assert_eq!(decode_all(protocol, &bytes), Ok(Some(packet.clone())));

    // Every strict prefix is incomplete, never an error or a different packet.
    for cut in 0..bytes.len() {
        prop_assert_eq!(
            decode_all(protocol, &bytes[..cut]),
            Ok(None),
            "prefix {}",
            cut
        );
    }

    // A buffer one byte short fails cleanly and is left untouched.
    let mut small = vec![0xA5; bytes.len() - 1];
    prop_assert_eq!(
        packet.encode_to_slice(protocol, &mut small),
        Err(EncodeError::BufferTooSmall {
            needed: bytes.len(),
            available: bytes.len() - 1
        })
    );
    prop_assert!(small.iter().all(|&b| b == 0xA5));

    // An exact-size buffer gets the same bytes as the growable one.
    let mut exact = vec![0; bytes.len()];
    prop_assert_eq!(
        packet.encode_to_slice(protocol, &mut exact),
        Ok(bytes.len())
    );
    prop_assert_eq!(&exact[..], &bytes[..]);

    // Packets are framed by their own length: one that follows is left for the next call.
    let mut two = BytesMut::from(&bytes[..]);
    Packet::PingReq.encode(protocol, &mut two).unwrap();
    let mut decoder = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT);
    prop_assert_eq!(decoder.decode(&mut two), Ok(Some(packet.clone())));
    prop_assert_eq!(decoder.decode(&mut two), Ok(Some(Packet::PingReq)));
    prop_assert!(two.is_empty());

    // A server-side decoder learns the protocol from a CONNECT.
    if let Packet::Connect(connect) = packet {
        let mut server = Decoder::new(PACKET_SIZE_LIMIT);
        let mut buf = BytesMut::from(&bytes[..]);
        prop_assert_eq!(server.decode(&mut buf), Ok(Some(packet.clone())));
        prop_assert_eq!(server.protocol(), Some(connect.protocol));
    }
    Ok(())
}

/// One proptest per (protocol, packet type), so a failure names exactly what broke.
macro_rules! round_trips {
    ($($name:ident: $protocol:ident, $kind:ident;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            $(
                #[test]
                fn $name(packet in packets(Protocol::$protocol, PacketType::$kind)) {
                    check_round_trip(Protocol::$protocol, &packet)?;
                }
            )*
        }
    };
}

round_trips! {
    v3_1_connect: V3_1, Connect;
    v3_1_connack: V3_1, ConnAck;
    v3_1_publish: V3_1, Publish;
    v3_1_puback: V3_1, PubAck;
    v3_1_pubrec: V3_1, PubRec;
    v3_1_pubrel: V3_1, PubRel;
    v3_1_pubcomp: V3_1, PubComp;
    v3_1_subscribe: V3_1, Subscribe;
    v3_1_suback: V3_1, SubAck;
    v3_1_unsubscribe: V3_1, Unsubscribe;
    v3_1_unsuback: V3_1, UnsubAck;
    v3_1_pingreq: V3_1, PingReq;
    v3_1_pingresp: V3_1, PingResp;
    v3_1_disconnect: V3_1, Disconnect;

    v3_1_1_connect: V3_1_1, Connect;
    v3_1_1_connack: V3_1_1, ConnAck;
    v3_1_1_publish: V3_1_1, Publish;
    v3_1_1_puback: V3_1_1, PubAck;
    v3_1_1_pubrec: V3_1_1, PubRec;
    v3_1_1_pubrel: V3_1_1, PubRel;
    v3_1_1_pubcomp: V3_1_1, PubComp;
    v3_1_1_subscribe: V3_1_1, Subscribe;
    v3_1_1_suback: V3_1_1, SubAck;
    v3_1_1_unsubscribe: V3_1_1, Unsubscribe;
    v3_1_1_unsuback: V3_1_1, UnsubAck;
    v3_1_1_pingreq: V3_1_1, PingReq;
    v3_1_1_pingresp: V3_1_1, PingResp;
    v3_1_1_disconnect: V3_1_1, Disconnect;

    v5_connect: V5, Connect;
    v5_connack: V5, ConnAck;
    v5_publish: V5, Publish;
    v5_puback: V5, PubAck;
    v5_pubrec: V5, PubRec;
    v5_pubrel: V5, PubRel;
    v5_pubcomp: V5, PubComp;
    v5_subscribe: V5, Subscribe;
    v5_suback: V5, SubAck;
    v5_unsubscribe: V5, Unsubscribe;
    v5_unsuback: V5, UnsubAck;
    v5_pingreq: V5, PingReq;
    v5_pingresp: V5, PingResp;
    v5_disconnect: V5, Disconnect;
    v5_auth: V5, Auth;
}

proptest! {
    /// Arbitrary bytes never panic the decoder, for any protocol or a fresh server decoder,
    /// and whatever decodes re-encodes to bytes that decode to the same packet.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let decoders = [
            Decoder::new(1024),
            Decoder::with_protocol(Protocol::V3_1, 1024),
            Decoder::with_protocol(Protocol::V3_1_1, 1024),
            Decoder::with_protocol(Protocol::V5, 1024),
        ];
        for mut decoder in decoders {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(packet)) = decoder.decode(&mut buf) {
                let protocol = decoder.protocol().expect("a decoded packet fixes the protocol");
                let protocol = match &packet {
                    Packet::Connect(c) => c.protocol,
                    _ => protocol,
                };
                check_round_trip(protocol, &packet)?;
            }
        }
    }

    /// A packet announced larger than the maximum is refused from its fixed header alone.
    #[test]
    fn oversized_packet_is_refused_before_its_body(len in 1025u32..268_435_455) {
        let mut header = BytesMut::new();
        header.extend_from_slice(&[0x30]);
        let mut len_bytes = Vec::new();
        super::wire::put_var_int(&mut len_bytes, len);
        header.extend_from_slice(&len_bytes);
        let result = Decoder::with_protocol(Protocol::V5, 1024).decode(&mut header);
        prop_assert_eq!(
            result,
            Err(DecodeError::PacketTooLarge { size: 1 + len_bytes.len() + len as usize, max: 1024 })
        );
    }
}

#[test]
fn subscription_identifier_beyond_the_variable_byte_integer_range_is_an_encode_error() {
    use super::{Publish, PublishProperties, QosPid, TopicName};
    let publish = Packet::Publish(Publish {
        dup: false,
        qos_pid: QosPid::AtMostOnce,
        retain: false,
        topic: TopicName::new("t").unwrap(),
        properties: PublishProperties {
            subscription_identifiers: vec![
                std::num::NonZeroU32::new(super::VAR_INT_MAX + 1).unwrap()
            ],
            ..Default::default()
        },
        payload: bytes::Bytes::new(),
    });
    let mut buf = BytesMut::new();
    assert!(matches!(
        publish.encode(Protocol::V5, &mut buf),
        Err(EncodeError::ValueTooLarge { .. })
    ));
    assert!(buf.is_empty(), "nothing written");
}
