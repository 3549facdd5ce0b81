//! The data representations of §1.5: integers, variable byte integers, strings and binary data,
//! read from a packet body and written to any `BufMut`.

use bytes::{Buf, BufMut, Bytes};

use super::error::{DecodeError, EncodeError};
use super::types::{MqttString, FIELD_LEN_MAX};

/// Largest value a variable byte integer can hold (§1.5.5).
pub const VAR_INT_MAX: u32 = 268_435_455;

/// Decodes a variable byte integer from the front of `bytes`.
///
/// Returns `Ok(None)` when `bytes` ends before the last byte of the integer, and the value with
/// the number of bytes it used otherwise. A fifth byte, or an encoding longer than the minimum,
/// is malformed ([MQTT-1.5.5-1]).
pub fn decode_var_int(bytes: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A final zero byte after a continuation byte encodes nothing: not minimal.
            if i > 0 && byte == 0 {
                return Err(DecodeError::MalformedVarInt);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(DecodeError::MalformedVarInt);
    }
    Ok(None)
}

/// Bytes a variable byte integer of this value takes.
pub fn var_int_len(value: u32) -> usize {
    debug_assert!(
        value <= VAR_INT_MAX,
        "variable byte integer {value} too large"
    );
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub fn put_var_int(buf: &mut impl BufMut, mut value: u32) {
    debug_assert!(
        value <= VAR_INT_MAX,
        "variable byte integer {value} too large"
    );
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

/// Bytes a string or binary field of `len` bytes takes, or an error when its length does not
/// fit the two-byte prefix.
pub fn field_len(field: &'static str, len: usize) -> Result<usize, EncodeError> {
    if len > FIELD_LEN_MAX {
        return Err(EncodeError::FieldTooLong { field, len });
    }
    Ok(2 + len)
}

/// Writes a two-byte length and the bytes. The caller has checked the length with
/// [`field_len`] while sizing the packet.
pub fn put_field(buf: &mut impl BufMut, bytes: &[u8]) {
    debug_assert!(bytes.len() <= FIELD_LEN_MAX);
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}

/// Reads the fields of one packet body. Every read checks that the body holds the field, so a
/// short remaining length becomes [`DecodeError::Truncated`], never a panic or an over-read.
pub struct Reader {
    body: Bytes,
}

impl Reader {
    pub fn new(body: Bytes) -> Reader {
        Reader { body }
    }

    pub fn remaining(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.body.get_u8())
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.body.get_u16())
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.body.get_u32())
    }

    pub fn var_int(&mut self) -> Result<u32, DecodeError> {
        match decode_var_int(&self.body)? {
            Some((value, used)) => {
                self.body.advance(used);
                Ok(value)
            }
            None => Err(DecodeError::Truncated),
        }
    }

    /// Binary data (§1.5.6): a two-byte length and that many bytes, sharing the buffer.
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        self.bytes(len)
    }

    /// A UTF-8 encoded string (§1.5.4), validated, sharing the buffer.
    pub fn string(&mut self) -> Result<MqttString, DecodeError> {
        MqttString::from_bytes(self.binary()?)
    }

    /// The next `len` bytes, sharing the buffer.
    pub fn bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        self.need(len)?;
        Ok(self.body.split_to(len))
    }

    /// Everything left, sharing the buffer (a PUBLISH payload).
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.body)
    }

    /// Fails unless the body is fully consumed: extra bytes make the packet malformed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.body.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }

    fn need(&self, len: usize) -> Result<(), DecodeError> {
        if self.body.len() < len {
            return Err(DecodeError::Truncated);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_int_boundaries_round_trip() {
        for value in [
            0,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            VAR_INT_MAX,
        ] {
            let mut buf = Vec::new();
            put_var_int(&mut buf, value);
            assert_eq!(buf.len(), var_int_len(value));
            assert_eq!(decode_var_int(&buf), Ok(Some((value, buf.len()))));
            // Every strict prefix is incomplete.
            for cut in 0..buf.len() {
                assert_eq!(decode_var_int(&buf[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn var_int_spec_examples() {
        // §1.5.5 table: 0x80 0x01 = 128, 0xFF 0xFF 0xFF 0x7F = 268,435,455.
        assert_eq!(decode_var_int(&[0x80, 0x01]), Ok(Some((128, 2))));
        assert_eq!(
            decode_var_int(&[0xFF, 0xFF, 0xFF, 0x7F]),
            Ok(Some((VAR_INT_MAX, 4)))
        );
    }

    #[test]
    fn var_int_rejects_fifth_byte_and_non_minimal() {
        assert_eq!(
            decode_var_int(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            decode_var_int(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            decode_var_int(&[0x80, 0x00]),
            Err(DecodeError::MalformedVarInt)
        );
        assert_eq!(
            decode_var_int(&[0x81, 0x80, 0x00]),
            Err(DecodeError::MalformedVarInt)
        );
    }

    #[test]
    fn reader_reports_truncation_not_panic() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x05, b'a', b'b']));
        assert_eq!(r.string(), Err(DecodeError::Truncated));
        let mut r = Reader::new(Bytes::from_static(&[0x01]));
        assert_eq!(r.u16(), Err(DecodeError::Truncated));
    }

    #[test]
    fn reader_validates_strings() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x02, 0xC3, 0x28]));
        assert_eq!(r.string(), Err(DecodeError::InvalidUtf8));
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x02, b'a', 0x00]));
        assert_eq!(r.string(), Err(DecodeError::NullCharacter));
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x01, b'a', 0x09]));
        assert_eq!(r.string().unwrap().as_str(), "a");
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { extra: 1 }));
    }
}
