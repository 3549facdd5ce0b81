//! Arbitrary bytes through a [`Decoder`]: the checks of the `decode_*` targets.
//!
//! The input is a plain byte stream, fed as a connection would: the decoder is called until it
//! answers `Ok(None)` (needs more bytes) or `Err` (close the connection). The stream is decoded
//! twice, once whole and once cut into three chunks, and both runs must agree exactly. The cut
//! points and the packet size limit are derived from a hash of the input rather than read from
//! it, so seeds are raw packets and a crashing input is the exact byte stream to keep in a
//! regression test. Every `decode` call runs inside an [`AllocWindow`], and every packet decoded
//! goes through the [`roundtrip`] checks.

use bytes::BytesMut;
use keel::codec::{DecodeError, Decoder, Packet, Protocol, PACKET_SIZE_LIMIT};

use crate::alloc_count::AllocWindow;
use crate::roundtrip;

/// Heap bytes one `decode` call may allocate per byte of the whole input. A decoded packet is
/// a few small values (strings and payloads share the input buffer) plus one `Vec` slot per
/// property, filter or reason code, each of which costs at least one input byte.
pub const ALLOC_PER_INPUT_BYTE_MAX: usize = 64;
/// Heap bytes any `decode` call may allocate regardless of input: a boxed CONNECT, the
/// shared header `bytes` adds when a buffer is first split.
pub const ALLOC_SLACK_BYTES: usize = 4096;

/// The most heap one `decode` call may take for an input of `input_len` bytes.
pub fn alloc_bound_bytes(input_len: usize) -> usize {
    ALLOC_PER_INPUT_BYTE_MAX * input_len + ALLOC_SLACK_BYTES
}

/// Decodes `data` with a decoder for `protocol`, or a server-side decoder that learns the
/// protocol from the CONNECT when `protocol` is `None`, and checks everything listed in the
/// module doc. Panics on any violation.
pub fn check_bytes(protocol: Option<Protocol>, data: &[u8]) {
    let plan = Plan::from_input(data);
    let whole = decode_stream(protocol, plan.packet_size_max, data, &[]);
    let chunked = decode_stream(protocol, plan.packet_size_max, data, &plan.cuts);
    assert_eq!(
        whole, chunked,
        "decoding in chunks cut at {:?} differs from decoding at once (packet_size_max {})",
        plan.cuts, plan.packet_size_max
    );
    for (packet_protocol, packet) in &whole.packets {
        roundtrip::check_packet(packet, *packet_protocol);
    }
}

/// How one input is fed: where it is cut and which packet size limit the decoder enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Offsets, ascending, at which the stream is cut into chunks.
    pub cuts: [usize; 2],
    pub packet_size_max: usize,
}

impl Plan {
    /// Derives the plan from a hash of the whole input, so every mutation of the input also
    /// moves the cuts, and one input in eight gets a limit small enough to refuse packets.
    pub fn from_input(data: &[u8]) -> Plan {
        let hash = fnv1a(data);
        let positions = data.len() as u64 + 1;
        let mut cuts = [
            (hash % positions) as usize,
            ((hash >> 21) % positions) as usize,
        ];
        cuts.sort_unstable();
        let packet_size_max = if (hash >> 42) & 7 == 0 {
            ((hash >> 45) % 512) as usize
        } else {
            PACKET_SIZE_LIMIT
        };
        Plan {
            cuts,
            packet_size_max,
        }
    }
}

/// What decoding a byte stream produced.
#[derive(Debug, PartialEq)]
struct Decoded {
    /// The packets in order, each with the protocol the decoder had when it returned it.
    packets: Vec<(Protocol, Packet)>,
    end: End,
    /// The decoder's protocol after the last call.
    protocol: Option<Protocol>,
}

/// How a decoded stream ended.
#[derive(Debug, PartialEq)]
enum End {
    /// `Ok(None)` with these bytes still buffered: an incomplete packet.
    Incomplete(Vec<u8>),
    /// `Err`: the connection would be closed here (the buffer is then unspecified).
    Error(DecodeError),
}

/// Feeds `data` to a fresh decoder chunk by chunk, decoding all it can after each chunk.
fn decode_stream(
    protocol: Option<Protocol>,
    packet_size_max: usize,
    data: &[u8],
    cuts: &[usize],
) -> Decoded {
    let mut decoder = match protocol {
        Some(protocol) => Decoder::with_protocol(protocol, packet_size_max),
        None => Decoder::new(packet_size_max),
    };
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        buf.extend_from_slice(&data[fed..cut]);
        fed = cut;
        loop {
            match decode_one(&mut decoder, &mut buf, data.len()) {
                Ok(Some(packet)) => {
                    let packet_protocol = decoder
                        .protocol()
                        .expect("a decoder that returned a packet knows its protocol");
                    packets.push((packet_protocol, packet));
                }
                Ok(None) => break,
                Err(error) => {
                    return Decoded {
                        packets,
                        end: End::Error(error),
                        protocol: decoder.protocol(),
                    }
                }
            }
        }
    }
    Decoded {
        packets,
        end: End::Incomplete(buf.to_vec()),
        protocol: decoder.protocol(),
    }
}

/// One `decode` call, checked: it allocates within the bound, `Ok(None)` consumes nothing
/// (no byte is taken before the whole packet is there), and `Ok(Some)` consumes
/// at least a fixed header, so the caller's loop always ends.
fn decode_one(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    input_len: usize,
) -> Result<Option<Packet>, DecodeError> {
    let before_len = buf.len();
    let window = AllocWindow::open();
    let result = decoder.decode(buf);
    let peak_bytes = window.peak_bytes();
    assert!(
        peak_bytes <= alloc_bound_bytes(input_len),
        "decode allocated {peak_bytes} bytes for a {input_len}-byte input (bound {}): {result:?}",
        alloc_bound_bytes(input_len)
    );
    match &result {
        Ok(None) => assert_eq!(buf.len(), before_len, "Ok(None) consumed bytes"),
        Ok(Some(packet)) => assert!(
            buf.len() + 2 <= before_len,
            "{packet:?} consumed {} bytes, less than a fixed header",
            before_len - buf.len()
        ),
        Err(_) => {}
    }
    result
}

/// 64-bit FNV-1a: a fixed, dependency-free hash, so a plan never changes between runs.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
