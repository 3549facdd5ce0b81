//! Streaming decoder: turns a growing byte buffer into packets, one whole packet at a time.

use bytes::{Buf, BytesMut};

use super::error::DecodeError;
use super::packet::{decode_body, Connect, FixedHeader, Packet, PacketType};
use super::types::Protocol;

/// Largest packet MQTT can frame: a 4-byte remaining length of 268,435,455 plus the header.
pub const PACKET_SIZE_LIMIT: usize = 268_435_460;

/// Decodes the packets of one connection.
///
/// Until a CONNECT has been seen the protocol is unknown and only CONNECT is accepted
/// ([MQTT-3.1.0-1]); the CONNECT's version then applies to every later packet.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Learned from the CONNECT, or fixed up front for a client-side or test decoder.
    protocol: Option<Protocol>,
    /// Packets larger than this (fixed header included) are refused from their fixed header,
    /// before the body is buffered.
    packet_size_max: usize,
}

impl Decoder {
    /// A server-side decoder that learns the protocol from the CONNECT.
    pub fn new(packet_size_max: usize) -> Decoder {
        Decoder {
            protocol: None,
            packet_size_max,
        }
    }

    /// A decoder for a connection whose protocol is already known.
    pub fn with_protocol(protocol: Protocol, packet_size_max: usize) -> Decoder {
        Decoder {
            protocol: Some(protocol),
            packet_size_max,
        }
    }

    /// The connection's protocol, once a CONNECT declared it (even a CONNECT that failed to
    /// decode later on, so the error can be answered in the client's version).
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    pub fn packet_size_max(&self) -> usize {
        self.packet_size_max
    }

    /// How many bytes the packet at the front of `buf` needs in all, once its fixed header
    /// is there; lets the caller reserve buffer space in one step.
    pub fn pending_packet_len(&self, buf: &[u8]) -> Option<usize> {
        FixedHeader::parse(buf, self.protocol)
            .ok()
            .flatten()
            .map(|h| h.packet_len())
    }

    /// Decodes and removes the packet at the front of `buf`.
    ///
    /// `Ok(None)` means the packet is not all there yet: read more bytes and call again. On
    /// `Err` the connection must be closed; `buf` is left in an unspecified state.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf, self.protocol)? else {
            return Ok(None);
        };
        let size = header.packet_len();
        if size > self.packet_size_max {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.packet_size_max,
            });
        }
        if buf.len() < size {
            return Ok(None);
        }
        let mut body = buf.split_to(size).freeze();
        // Advancing past the fixed header, unlike splitting it off, leaves the buffer's
        // reference count alone: two atomic updates fewer per packet.
        body.advance(header.header_len);
        let protocol = match (self.protocol, header.packet_type) {
            (Some(protocol), _) => protocol,
            (None, PacketType::Connect) => {
                let declared = Connect::peek_protocol(&body)?.ok_or(DecodeError::Truncated)?;
                self.protocol = Some(declared);
                declared
            }
            (None, other) => {
                return Err(DecodeError::FirstPacketNotConnect {
                    packet_type: other as u8,
                })
            }
        };
        decode_body(&header, protocol, body).map(Some)
    }
}
