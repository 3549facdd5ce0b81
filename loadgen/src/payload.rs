//! The header at the front of every benchmark payload: who sent it, its sequence number and
//! when, so a subscriber can account for every message and measure its latency on its own.

use thiserror::Error;

/// Bytes the header takes; `--payload` may not be smaller.
pub const HEADER_LEN: usize = 24;

/// Marks a payload as written by this load generator ("KB"), so that stray messages from
/// other clients of the broker are counted as foreign instead of corrupting the tally.
const MAGIC: u16 = 0x4b42;

/// What a publisher writes at the front of each payload. Layout, big-endian:
/// magic u16 · run id u16 · publisher u32 · seq u64 · sent ns u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHeader {
    /// Tells this run's messages from those of an earlier run on the same broker.
    pub run_id: u16,
    /// Index of the publisher in the scenario (0-based).
    pub publisher: u32,
    /// The publisher's own count, from 0, one per message: gaps are losses, repeats are
    /// duplicates, a smaller number after a larger one is out of order.
    pub seq: u64,
    /// Monotonic nanoseconds since the run's start when the message was encoded.
    pub sent_ns: u64,
}

/// Why a payload is not one of this run's benchmark messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("payload of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("payload does not start with the load generator's magic number")]
    BadMagic,
}

impl PayloadHeader {
    /// Writes the header over the first [`HEADER_LEN`] bytes of `out`.
    ///
    /// Panics when `out` is shorter: payload sizes are checked against [`HEADER_LEN`] when the
    /// options are validated, so a short buffer here is a bug.
    pub fn write(&self, out: &mut [u8]) {
        assert!(
            out.len() >= HEADER_LEN,
            "payload buffer of {} bytes cannot hold the header",
            out.len()
        );
        out[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        out[2..4].copy_from_slice(&self.run_id.to_be_bytes());
        out[4..8].copy_from_slice(&self.publisher.to_be_bytes());
        out[8..16].copy_from_slice(&self.seq.to_be_bytes());
        out[16..24].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads the header from the front of a payload.
    pub fn read(payload: &[u8]) -> Result<PayloadHeader, PayloadError> {
        let Some(header) = payload.get(..HEADER_LEN) else {
            return Err(PayloadError::TooShort { len: payload.len() });
        };
        if header[0..2] != MAGIC.to_be_bytes() {
            return Err(PayloadError::BadMagic);
        }
        // The slices below have the exact lengths of their integers, so `try_into` cannot fail.
        let u16_at = |at: usize| u16::from_be_bytes(header[at..at + 2].try_into().unwrap());
        let u32_at = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().unwrap());
        Ok(PayloadHeader {
            run_id: u16_at(2),
            publisher: u32_at(4),
            seq: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PayloadHeader {
        PayloadHeader {
            run_id: 0xbeef,
            publisher: 123_456,
            seq: u64::MAX - 7,
            sent_ns: 9_876_543_210,
        }
    }

    #[test]
    fn header_round_trips_and_leaves_padding_alone() {
        let mut payload = vec![0xAA; 64];
        sample().write(&mut payload);
        assert_eq!(PayloadHeader::read(&payload), Ok(sample()));
        assert!(payload[HEADER_LEN..].iter().all(|&b| b == 0xAA));
    }

    #[test]
    fn header_fits_a_payload_of_exactly_its_length() {
        let mut payload = [0u8; HEADER_LEN];
        sample().write(&mut payload);
        assert_eq!(PayloadHeader::read(&payload), Ok(sample()));
    }

    #[test]
    fn short_payload_is_refused() {
        let mut payload = [0u8; HEADER_LEN];
        sample().write(&mut payload);
        assert_eq!(
            PayloadHeader::read(&payload[..HEADER_LEN - 1]),
            Err(PayloadError::TooShort {
                len: HEADER_LEN - 1
            })
        );
    }

    #[test]
    fn foreign_payload_is_refused() {
        let payload = [0u8; 64];
        assert_eq!(PayloadHeader::read(&payload), Err(PayloadError::BadMagic));
    }

    #[test]
    #[should_panic(expected = "cannot hold the header")]
    fn writing_into_a_short_buffer_panics() {
        sample().write(&mut [0u8; HEADER_LEN - 1]);
    }
}
