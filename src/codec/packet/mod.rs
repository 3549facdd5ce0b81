//! The control packets (§3), one file per packet, and the `Packet` enum that frames them.
//!
//! A packet value is the same for every protocol version; [`Protocol`] only decides the wire
//! layout. Encoding is size-first: the exact length is computed, checked against the output,
//! and only then written, so a failed encode writes nothing.

mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod pubreply;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use publish::Publish;
pub use pubreply::PubReply;
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, SubscriptionOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::reason::ReasonContext;
use super::types::{PacketId, Protocol};
use super::wire::{self, Reader, VAR_INT_MAX};

/// The fifteen control packet types (§2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    pub const ALL: [PacketType; 15] = [
        PacketType::Connect,
        PacketType::ConnAck,
        PacketType::Publish,
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
        PacketType::Subscribe,
        PacketType::SubAck,
        PacketType::Unsubscribe,
        PacketType::UnsubAck,
        PacketType::PingReq,
        PacketType::PingResp,
        PacketType::Disconnect,
        PacketType::Auth,
    ];

    /// The packet type of the high nibble of the first byte; `None` for the reserved 0.
    pub fn from_u8(value: u8) -> Option<PacketType> {
        PacketType::ALL
            .get(usize::from(value).checked_sub(1)?)
            .copied()
    }

    /// True when the packet type exists in the protocol (AUTH is MQTT 5 only).
    pub fn exists_in(self, protocol: Protocol) -> bool {
        self != PacketType::Auth || protocol.is_v5()
    }

    /// The fixed header flags every packet but PUBLISH must carry (§2.1.3).
    fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }
}

/// An MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubReply),
    PubRec(PubReply),
    PubRel(PubReply),
    PubComp(PubReply),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// Bytes the packet takes on the wire, fixed header included. This is the size that
    /// Maximum Packet Size limits (§3.1.2.11.4).
    pub fn encoded_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        let remaining = self.remaining_len(protocol)?;
        Ok(1 + wire::var_int_len(remaining as u32) + remaining)
    }

    /// Appends the packet to `buf`, returning the bytes written.
    ///
    /// A CONNECT is always written in its own `protocol` field's version.
    pub fn encode(&self, protocol: Protocol, buf: &mut BytesMut) -> Result<usize, EncodeError> {
        let remaining = self.remaining_len(protocol)?;
        let total = 1 + wire::var_int_len(remaining as u32) + remaining;
        let payload = self.publish_payload();
        let before = buf.len();
        buf.reserve(total);
        // Writing field by field into the `BytesMut` costs a capacity check and an
        // out-of-line copy per field, even for a single byte. Instead the packet's room is
        // zero-filled and written as a plain slice, where each field is a bounds check and an
        // inlined copy. A PUBLISH payload, the one field that is commonly large, is appended
        // afterwards so that it is copied once and never zero-filled.
        buf.resize(before + total - payload.len(), 0);
        let mut head = &mut buf[before..];
        self.write_head(protocol, remaining, &mut head);
        debug_assert!(head.is_empty(), "sized and written lengths differ");
        buf.extend_from_slice(payload);
        Ok(total)
    }

    /// Writes the packet to the front of `out`; fails without writing when it does not fit.
    pub fn encode_to_slice(
        &self,
        protocol: Protocol,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let remaining = self.remaining_len(protocol)?;
        let total = 1 + wire::var_int_len(remaining as u32) + remaining;
        if out.len() < total {
            return Err(EncodeError::BufferTooSmall {
                needed: total,
                available: out.len(),
            });
        }
        let mut cursor = &mut out[..total];
        self.write_head(protocol, remaining, &mut cursor);
        cursor.put_slice(self.publish_payload());
        debug_assert!(cursor.is_empty(), "sized and written lengths differ");
        Ok(total)
    }

    /// The payload of a PUBLISH, which [`Packet::write_head`] leaves for the caller to append;
    /// empty for every other packet.
    fn publish_payload(&self) -> &[u8] {
        match self {
            Packet::Publish(p) => &p.payload,
            _ => &[],
        }
    }

    fn remaining_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        let remaining = match self {
            Packet::Connect(p) => p.body_len()?,
            Packet::ConnAck(p) => p.body_len(protocol)?,
            Packet::Publish(p) => p.body_len(protocol)?,
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.body_len(protocol)?
            }
            Packet::Subscribe(p) => p.body_len(protocol)?,
            Packet::SubAck(p) => p.body_len(protocol)?,
            Packet::Unsubscribe(p) => p.body_len(protocol)?,
            Packet::UnsubAck(p) => p.body_len(protocol)?,
            Packet::PingReq | Packet::PingResp => 0,
            Packet::Disconnect(p) => p.body_len(protocol)?,
            Packet::Auth(p) => {
                if !protocol.is_v5() {
                    return Err(EncodeError::NotInProtocol { packet: "AUTH" });
                }
                p.body_len()?
            }
        };
        if remaining > VAR_INT_MAX as usize {
            return Err(EncodeError::PacketTooLarge {
                size: remaining,
                max: VAR_INT_MAX as usize,
            });
        }
        Ok(remaining)
    }

    /// Writes the whole packet but a PUBLISH payload (see [`Packet::publish_payload`]).
    fn write_head(&self, protocol: Protocol, remaining: usize, buf: &mut impl BufMut) {
        let packet_type = self.packet_type();
        let flags = match self {
            Packet::Publish(p) => p.header_flags(),
            _ => packet_type.required_flags().unwrap_or(0),
        };
        buf.put_u8(((packet_type as u8) << 4) | flags);
        wire::put_var_int(buf, remaining as u32);
        match self {
            Packet::Connect(p) => p.write_body(buf),
            Packet::ConnAck(p) => p.write_body(protocol, buf),
            Packet::Publish(p) => p.write_head(protocol, buf),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.write_body(protocol, buf)
            }
            Packet::Subscribe(p) => p.write_body(protocol, buf),
            Packet::SubAck(p) => p.write_body(protocol, buf),
            Packet::Unsubscribe(p) => p.write_body(protocol, buf),
            Packet::UnsubAck(p) => p.write_body(protocol, buf),
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(p) => p.write_body(protocol, buf),
            Packet::Auth(p) => p.write_body(buf),
        }
    }
}

/// What the first bytes of a buffer say about the packet at its front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    pub packet_type: PacketType,
    pub flags: u8,
    /// Bytes of the fixed header itself (1 to 5).
    pub header_len: usize,
    /// Bytes after the fixed header.
    pub remaining_len: usize,
}

impl FixedHeader {
    /// Total bytes of the packet.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len
    }

    /// Parses the fixed header at the front of `bytes`; `Ok(None)` until all of it is there.
    ///
    /// Checks the packet type and its reserved flag bits as soon as the first byte is known,
    /// so garbage is rejected without waiting for a body.
    pub fn parse(
        bytes: &[u8],
        protocol: Option<Protocol>,
    ) -> Result<Option<FixedHeader>, DecodeError> {
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let raw_type = first >> 4;
        let flags = first & 0x0F;
        let packet_type = PacketType::from_u8(raw_type)
            .filter(|t| protocol.is_none_or(|p| t.exists_in(p)))
            .ok_or(DecodeError::InvalidPacketType {
                packet_type: raw_type,
            })?;
        if let Some(required) = packet_type.required_flags() {
            if flags != required {
                return Err(DecodeError::InvalidHeaderFlags {
                    packet_type: raw_type,
                    flags,
                });
            }
        }
        let Some((remaining_len, used)) = wire::decode_var_int(&bytes[1..])? else {
            return Ok(None);
        };
        Ok(Some(FixedHeader {
            packet_type,
            flags,
            header_len: 1 + used,
            remaining_len: remaining_len as usize,
        }))
    }
}

/// Decodes the body of a packet whose fixed header has been parsed.
///
/// `protocol` is the connection's protocol; a CONNECT is decoded by the version it declares.
#[inline]
pub fn decode_body(
    header: &FixedHeader,
    protocol: Protocol,
    body: Bytes,
) -> Result<Packet, DecodeError> {
    debug_assert_eq!(body.len(), header.remaining_len);
    let mut r = Reader::new(body);
    // These packets end with a field that runs to the end of the body (a PUBLISH payload, a
    // list of filters or of reason codes), so nothing can trail them. They return straight
    // away, which lets the packet be built where the caller wants it: passing it on past the
    // trailing-bytes check below costs a copy of the whole packet, and that copy, reading
    // fields just written, stalls on store forwarding (a fifth of the time of a small PUBLISH).
    let whole_body = match header.packet_type {
        PacketType::Publish => {
            Some(Publish::decode(protocol, header.flags, &mut r).map(Packet::Publish))
        }
        PacketType::Subscribe => Some(Subscribe::decode(protocol, &mut r).map(Packet::Subscribe)),
        PacketType::SubAck => Some(SubAck::decode(protocol, &mut r).map(Packet::SubAck)),
        PacketType::Unsubscribe => {
            Some(Unsubscribe::decode(protocol, &mut r).map(Packet::Unsubscribe))
        }
        _ => None,
    };
    if let Some(packet) = whole_body {
        debug_assert!(
            packet.is_err() || r.is_empty(),
            "a body-long field left bytes"
        );
        return packet;
    }
    let packet = match header.packet_type {
        PacketType::Connect => Packet::Connect(Box::new(Connect::decode(&mut r)?)),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(protocol, &mut r)?),
        PacketType::PubAck => {
            Packet::PubAck(PubReply::decode(protocol, ReasonContext::PubAck, &mut r)?)
        }
        PacketType::PubRec => {
            Packet::PubRec(PubReply::decode(protocol, ReasonContext::PubRec, &mut r)?)
        }
        PacketType::PubRel => {
            Packet::PubRel(PubReply::decode(protocol, ReasonContext::PubRel, &mut r)?)
        }
        PacketType::PubComp => {
            Packet::PubComp(PubReply::decode(protocol, ReasonContext::PubComp, &mut r)?)
        }
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(protocol, &mut r)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(protocol, &mut r)?),
        PacketType::Auth => Packet::Auth(Auth::decode(&mut r)?),
        PacketType::Publish
        | PacketType::Subscribe
        | PacketType::SubAck
        | PacketType::Unsubscribe => {
            unreachable!("decoded above")
        }
    };
    r.finish()?;
    Ok(packet)
}

/// Reads a packet identifier, which is never 0 ([MQTT-2.2.1-3]).
fn read_packet_id(r: &mut Reader) -> Result<PacketId, DecodeError> {
    PacketId::new(r.u16()?).ok_or(DecodeError::ZeroPacketId)
}
