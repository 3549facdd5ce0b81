//! The properties every valid packet must have, checked for generated packets (the `roundtrip`
//! target) and for every packet the `decode_*` targets manage to decode.

use arbitrary::Unstructured;
use bytes::BytesMut;
use keel::codec::{Decoder, EncodeError, Packet, Protocol, PACKET_SIZE_LIMIT};

/// What `encode_to_slice` output buffers are pre-filled with, to see that a failed encode
/// wrote nothing and a successful one wrote nothing past its length.
const SENTINEL: u8 = 0xA5;

/// Generates a valid packet from `data` (the protocol is chosen by the first bytes) and checks
/// it with [`check_packet`]. Inputs the generator cannot use are skipped.
pub fn check_generated(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(&protocol) = u.choose(&Protocol::ALL) else {
        return;
    };
    let Ok(packet) = keel::codec::arbitrary::packet(&mut u, protocol) else {
        return;
    };
    check_packet(&packet, protocol);
}

/// Checks one packet that is valid in `protocol`:
/// - it encodes, and `encoded_len` is what `encode` wrote;
/// - decoding the bytes gives the packet back and consumes all of them (a CONNECT also through
///   a server-side decoder, which must learn the CONNECT's protocol from it);
/// - strict prefixes (empty, 1 byte, half, all but one) decode as `Ok(None)`, consuming nothing;
/// - `encode_to_slice` writes the same bytes into a buffer that fits, and into one a byte too
///   small fails with `BufferTooSmall` and writes nothing.
pub fn check_packet(packet: &Packet, protocol: Protocol) {
    let mut encoded = BytesMut::new();
    let written = packet
        .encode(protocol, &mut encoded)
        .unwrap_or_else(|error| {
            panic!("valid packet failed to encode ({protocol:?}): {error}: {packet:?}")
        });
    let bytes = encoded.to_vec();
    let len = bytes.len();
    assert_eq!(
        written, len,
        "encode reported {written} bytes but wrote {len}"
    );
    assert_eq!(
        packet.encoded_len(protocol),
        Ok(len),
        "encoded_len disagrees with encode"
    );

    let decoder = Decoder::with_protocol(protocol, PACKET_SIZE_LIMIT);
    assert_eq!(decoder.pending_packet_len(&bytes), Some(len));
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        decoder.clone().decode(&mut buf),
        Ok(Some(packet.clone())),
        "decode(encode(p)) != p ({protocol:?}), bytes {bytes:02x?}"
    );
    assert!(
        buf.is_empty(),
        "{} bytes left after decoding {packet:?}",
        buf.len()
    );

    if let Packet::Connect(connect) = packet {
        let mut server = Decoder::new(PACKET_SIZE_LIMIT);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(server.decode(&mut buf), Ok(Some(packet.clone())));
        assert!(buf.is_empty());
        assert_eq!(server.protocol(), Some(connect.protocol));
    }

    for cut in [0, 1, len / 2, len - 1] {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(
            decoder.clone().decode(&mut buf),
            Ok(None),
            "a {cut}-byte prefix of a {len}-byte packet did not decode as incomplete: {bytes:02x?}"
        );
        assert_eq!(
            buf.len(),
            cut,
            "decoding an incomplete packet consumed bytes"
        );
    }

    let mut out = vec![SENTINEL; len + 1];
    assert_eq!(packet.encode_to_slice(protocol, &mut out), Ok(len));
    assert_eq!(
        out[..len],
        bytes[..],
        "encode_to_slice and encode wrote different bytes"
    );
    assert_eq!(out[len], SENTINEL, "encode_to_slice wrote past the packet");

    let mut out = vec![SENTINEL; len - 1];
    assert_eq!(
        packet.encode_to_slice(protocol, &mut out),
        Err(EncodeError::BufferTooSmall {
            needed: len,
            available: len - 1
        })
    );
    assert!(
        out.iter().all(|&byte| byte == SENTINEL),
        "a failed encode_to_slice wrote into the buffer"
    );
}
