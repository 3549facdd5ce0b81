//! Small value types shared by every packet: protocol version, QoS, packet id, strings.

use std::num::NonZeroU16;

use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use super::error::DecodeError;

/// The protocol a connection speaks, fixed by its CONNECT packet.
///
/// Packets are version-agnostic values; the protocol only decides how they are laid out on the
/// wire. That lets one session state machine serve every version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl Protocol {
    /// Every protocol, oldest first.
    pub const ALL: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];

    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V3_1 => 3,
            Protocol::V3_1_1 => 4,
            Protocol::V5 => 5,
        }
    }

    /// The protocol name string of CONNECT.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V3_1 => "MQIsdp",
            Protocol::V3_1_1 | Protocol::V5 => "MQTT",
        }
    }

    /// True for MQTT 5, the only version with properties and reason codes everywhere.
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }
}

/// Quality of service of a publish or subscription.
///
/// Serde writes the variant index, so a value other than 0, 1 or 2 does not read back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[repr(u8)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is malformed in every place a QoS appears.
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A packet identifier. Never zero ([MQTT-2.2.1-3]), so the type makes zero unrepresentable.
///
/// Serde reads it as a `NonZeroU16`, which refuses zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// Returns `None` for zero.
    pub fn new(value: u16) -> Option<PacketId> {
        NonZeroU16::new(value).map(PacketId)
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }

    /// The next id after this one, wrapping from 65535 to 1 (never 0).
    pub fn next(self) -> PacketId {
        PacketId::new(self.get().wrapping_add(1)).unwrap_or(PacketId::MIN)
    }

    pub const MIN: PacketId = PacketId(NonZeroU16::MIN);
}

/// The QoS of a publish together with its packet id: a QoS 0 publish has no packet id
/// ([MQTT-2.2.1-2]) and a QoS 1/2 publish always has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosPid {
    AtMostOnce,
    AtLeastOnce(PacketId),
    ExactlyOnce(PacketId),
}

impl QosPid {
    pub fn qos(self) -> QoS {
        match self {
            QosPid::AtMostOnce => QoS::AtMostOnce,
            QosPid::AtLeastOnce(_) => QoS::AtLeastOnce,
            QosPid::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    pub fn packet_id(self) -> Option<PacketId> {
        match self {
            QosPid::AtMostOnce => None,
            QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) => Some(id),
        }
    }

    /// Builds the pair; `None` when QoS > 0 and no id is given.
    pub fn new(qos: QoS, packet_id: Option<PacketId>) -> Option<QosPid> {
        match (qos, packet_id) {
            (QoS::AtMostOnce, _) => Some(QosPid::AtMostOnce),
            (QoS::AtLeastOnce, Some(id)) => Some(QosPid::AtLeastOnce(id)),
            (QoS::ExactlyOnce, Some(id)) => Some(QosPid::ExactlyOnce(id)),
            (_, None) => None,
        }
    }
}

/// Longest string or binary field: its length is a two-byte integer (§1.5.4, §1.5.6).
pub const FIELD_LEN_MAX: usize = u16::MAX as usize;

/// True when any byte of `bytes` is one of `needles`.
///
/// Looks at eight bytes at a time in a `u64`. Topic names and filters are mostly a few dozen
/// bytes: too short for `memchr` to pay off its setup, and what the compiler made of a plain
/// loop over strings of that length was a byte-at-a-time loop.
#[inline]
pub(crate) fn contains_any<const N: usize>(bytes: &[u8], needles: [u8; N]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // `(x - ONES) & !x & HIGHS` is non-zero exactly when some byte of `x` is zero (a borrow
    // can only mark bytes above a zero byte), and `word ^ (ONES * needle)` zeroes the bytes
    // equal to `needle`.
    let matches = |word: u64| {
        needles.iter().fold(false, |hit, &needle| {
            let x = word ^ (ONES * u64::from(needle));
            hit | (x.wrapping_sub(ONES) & !x & HIGHS != 0)
        })
    };
    let word_at = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if bytes.len() < 8 {
        return bytes.iter().any(|byte| needles.contains(byte));
    }
    let mut found = false;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        found |= matches(word_at(at));
        at += 8;
    }
    // The last, partial word is read as the last eight bytes, overlapping ones already seen.
    found | matches(word_at(bytes.len() - 8))
}

/// Checks `bytes` against the rules of an MQTT string (see [`MqttString`]) before anything
/// takes a handle on them.
pub(crate) fn check_mqtt_str(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > FIELD_LEN_MAX {
        return Err(DecodeError::StringTooLong { len: bytes.len() });
    }
    // Nearly every MQTT string is ASCII, which `is_ascii` confirms a word at a time; the
    // full UTF-8 validation takes its word-at-a-time path only from an aligned address, so
    // it walks much of a short string byte by byte.
    if !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    if contains_any(bytes, [0]) {
        return Err(DecodeError::NullCharacter);
    }
    Ok(())
}

/// A UTF-8 encoded string as MQTT defines it (§1.5.4): well-formed UTF-8 ([MQTT-1.5.4-1]),
/// no U+0000 ([MQTT-1.5.4-2]), at most 65,535 bytes. Shares the packet buffer (zero-copy).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MqttString(ByteString);

impl MqttString {
    /// Validates `bytes` as an MQTT string without copying them.
    pub fn from_bytes(bytes: Bytes) -> Result<MqttString, DecodeError> {
        check_mqtt_str(&bytes)?;
        Ok(MqttString::from_checked(bytes))
    }

    /// Wraps bytes that [`check_mqtt_str`] accepted.
    pub(crate) fn from_checked(bytes: Bytes) -> MqttString {
        // `ByteString` checks the UTF-8 again, without unsafe code; for ASCII, which nearly
        // all MQTT strings are, that is one quick `is_ascii` pass over bytes in cache.
        let s = ByteString::try_from(bytes).expect("check_mqtt_str accepted the bytes as UTF-8");
        MqttString(s)
    }

    /// Copies `s` into a new string; fails on U+0000 or more than 65,535 bytes.
    pub fn new(s: &str) -> Result<MqttString, DecodeError> {
        MqttString::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Like [`MqttString::new`] for a `'static` string, without copying.
    pub fn from_static(s: &'static str) -> Result<MqttString, DecodeError> {
        MqttString::from_bytes(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying bytes, sharing the buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

impl std::ops::Deref for MqttString {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `MqttString` be looked up by `&str`; order and equality are those of
/// the UTF-8 bytes, as for `str`.
impl std::borrow::Borrow<str> for MqttString {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for MqttString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for MqttString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for MqttString {
    type Error = DecodeError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        MqttString::new(s)
    }
}

/// A user property (§3.3.2.3.7): a name/value pair that may repeat and keeps its order.
pub type UserProperty = (MqttString, MqttString);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_any_finds_a_needle_at_every_position_of_every_length() {
        for len in 0..=40 {
            let clean = vec![b'a'; len];
            assert!(!contains_any(&clean, [0, b'+', b'#']), "len {len}");
            for at in 0..len {
                for needle in [0, b'+', b'#'] {
                    let mut bytes = clean.clone();
                    bytes[at] = needle;
                    assert!(
                        contains_any(&bytes, [0, b'+', b'#']),
                        "{needle} at {at} of {len}"
                    );
                    assert!(contains_any(&bytes, [needle]));
                    // Bytes next to a needle's value, and high bytes, are not mistaken for it.
                    bytes[at] = needle ^ 1;
                    assert!(
                        !contains_any(&bytes, [needle]),
                        "{needle} ^ 1 at {at} of {len}"
                    );
                    bytes[at] = needle | 0x80;
                    assert!(
                        !contains_any(&bytes, [needle]),
                        "{needle} | 0x80 at {at} of {len}"
                    );
                }
            }
        }
    }
}
