//! The data representations of §1.5: integers, variable byte integers, strings and binary data,
//! read from a packet body and written to any `BufMut`.

use bytes::{Buf, BufMut, Bytes};

use super::error::{DecodeError, EncodeError};
use super::types::{check_mqtt_str, MqttString, FIELD_LEN_MAX};

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
///
/// The reader moves an offset through the body rather than splitting the `Bytes`: each split
/// clones the buffer's handle, an atomic reference count update that costs more than the
/// parse of a small field. Only the fields a packet keeps (strings, binary data, the payload)
/// take a handle; integers and fields that are only compared are read from the slice, and a
/// property block is read by narrowing `end` ([`Reader::within`]) instead of by a second
/// reader with a handle of its own.
pub struct Reader {
    /// The whole packet body; never advanced or split.
    body: Bytes,
    /// Offset of the next byte to read.
    pos: usize,
    /// Offset just past the last byte reads may use: the end of the body, or of the block
    /// being read by [`Reader::within`]. Always `pos <= end <= body.len()`.
    end: usize,
}

impl Reader {
    pub fn new(body: Bytes) -> Reader {
        let end = body.len();
        Reader { body, pos: 0, end }
    }

    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.slice(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let bytes = self.slice(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let bytes = self.slice(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn var_int(&mut self) -> Result<u32, DecodeError> {
        match decode_var_int(&self.body[self.pos..self.end])? {
            Some((value, used)) => {
                self.pos += used;
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

    /// Binary data borrowed from the body, for a field that is checked and not kept.
    pub fn binary_slice(&mut self) -> Result<&[u8], DecodeError> {
        let len = usize::from(self.u16()?);
        self.slice(len)
    }

    /// A UTF-8 encoded string (§1.5.4), validated, sharing the buffer.
    pub fn string(&mut self) -> Result<MqttString, DecodeError> {
        self.string_checked(|_| Ok(()))
    }

    /// A string that must also pass `check` (the rules of a topic name or filter).
    ///
    /// Everything is checked on the borrowed bytes, and only then does the string take its
    /// handle on the buffer, built in place as the result. Taking the handle first and
    /// passing the string on through the checks copied it each time, and those copies,
    /// reading the handle's fields just written, stalled on store forwarding.
    pub fn string_checked(
        &mut self,
        check: impl FnOnce(&[u8]) -> Result<(), DecodeError>,
    ) -> Result<MqttString, DecodeError> {
        let len = usize::from(self.u16()?);
        self.need(len)?;
        let range = self.pos..self.pos + len;
        check_mqtt_str(&self.body[range.clone()])?;
        check(&self.body[range.clone()])?;
        self.pos = range.end;
        Ok(MqttString::from_checked(self.body.slice(range)))
    }

    /// The next `len` bytes, sharing the buffer.
    pub fn bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        self.need(len)?;
        let start = self.pos;
        self.pos += len;
        Ok(self.body.slice(start..self.pos))
    }

    /// The next `len` bytes, borrowed.
    pub fn slice(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        self.need(len)?;
        let start = self.pos;
        self.pos += len;
        Ok(&self.body[start..self.pos])
    }

    /// Everything left, sharing the buffer (a PUBLISH payload). At the top level the reader
    /// hands over its own handle instead of cloning it, and is empty afterwards.
    #[inline]
    pub fn rest(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.end;
        if self.end < self.body.len() {
            // Inside `within`: the body goes on after the block.
            return self.body.slice(start..self.end);
        }
        let mut rest = std::mem::take(&mut self.body);
        rest.advance(start);
        self.pos = 0;
        self.end = 0;
        rest
    }

    /// Runs `read` over the next `len` bytes as if they were all that is left (a read past
    /// them is [`DecodeError::Truncated`]), then continues after them, read or not: what a
    /// reader of their own would do, without the handle it would take.
    ///
    /// After an error the reader is left narrowed; a failed decode does not read on.
    pub fn within<T>(
        &mut self,
        len: usize,
        read: impl FnOnce(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.need(len)?;
        let outer_end = std::mem::replace(&mut self.end, self.pos + len);
        let value = read(self)?;
        self.pos = self.end;
        self.end = outer_end;
        Ok(value)
    }

    /// Fails unless the body is fully consumed: extra bytes make the packet malformed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }

    fn need(&self, len: usize) -> Result<(), DecodeError> {
        if self.remaining() < len {
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

    #[test]
    fn within_reads_only_the_block_then_continues_after_it() {
        // A block of three bytes (a u16 and one unread byte), then a trailing u8.
        let mut r = Reader::new(Bytes::from_static(&[0x01, 0x02, 0x03, 0x04]));
        let value = r.within(3, |block| {
            assert_eq!(block.remaining(), 3);
            let value = block.u16()?;
            // The block ends here for the reader, even though the body goes on.
            assert_eq!(block.u16(), Err(DecodeError::Truncated));
            Ok(value)
        });
        assert_eq!(value, Ok(0x0102));
        assert_eq!(r.u8(), Ok(0x04));
        assert!(r.is_empty());
        // A block longer than what is left is truncated before `read` runs.
        let mut r = Reader::new(Bytes::from_static(&[0x01]));
        assert_eq!(
            r.within(2, |_| -> Result<(), DecodeError> { unreachable!() }),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn rest_takes_what_is_left_of_the_body_or_of_the_block() {
        let body = Bytes::from_static(b"abcdef");
        let mut r = Reader::new(body.clone());
        assert_eq!(r.u8(), Ok(b'a'));
        let inner = r.within(2, |block| Ok(block.rest()));
        assert_eq!(inner.as_deref(), Ok(&b"bc"[..]));
        assert_eq!(r.rest(), &b"def"[..]);
        assert!(r.is_empty());
        assert_eq!(r.rest(), &b""[..]);
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn checked_strings_fail_in_the_order_of_the_rules() {
        let reject_all = |_: &[u8]| Err(DecodeError::WildcardInTopicName);
        // Truncation first, then UTF-8, then U+0000, then the caller's rule.
        for (bytes, error) in [
            (&[0x00, 0x03, b'a'][..], DecodeError::Truncated),
            (&[0x00, 0x02, 0xC3, 0x00][..], DecodeError::InvalidUtf8),
            (&[0x00, 0x01, 0x00][..], DecodeError::NullCharacter),
            (&[0x00, 0x01, b'a'][..], DecodeError::WildcardInTopicName),
        ] {
            let mut r = Reader::new(Bytes::copy_from_slice(bytes));
            assert_eq!(r.string_checked(reject_all), Err(error), "{bytes:?}");
        }
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x02, 0xC3, 0xA9, b'!']));
        let s = r.string_checked(|text| {
            assert_eq!(text, "é".as_bytes());
            Ok(())
        });
        assert_eq!(s.unwrap().as_str(), "é");
        assert_eq!(r.u8(), Ok(b'!'));
    }
}
