//! Delivery accounting for one (publisher, subscriber) pair: which sequence numbers arrived,
//! how many twice, how many after a later one, and at the end how many never came.

/// Largest sequence number a tally accepts. Its bitmap grows with the highest number seen, so
/// the limit bounds its memory (2^32 bits = 512 MiB, far more than any run sends).
pub const SEQ_MAX: u64 = (1 << 32) - 1;

/// What one delivery was, as far as the tally can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before, and no later number had arrived before it.
    InOrder,
    /// Not seen before, but a later number had already arrived.
    OutOfOrder,
    /// Seen before.
    Duplicate,
    /// Larger than [`SEQ_MAX`]: not a number this load generator writes.
    OutOfRange,
}

/// The record of one (publisher, subscriber) pair.
#[derive(Debug, Clone, Default)]
pub struct SeqTally {
    /// Bit `seq` is set once `seq` arrived. Dense because publishers count from 0 without
    /// gaps, so a bitmap costs one bit per message sent.
    seen: Vec<u64>,
    /// Number of set bits in `seen`: distinct messages delivered.
    distinct: u64,
    /// Arrivals of a number already seen.
    duplicated: u64,
    /// First arrivals of a number smaller than one that arrived before it.
    out_of_order: u64,
    /// Arrivals above [`SEQ_MAX`]; not counted anywhere else.
    out_of_range: u64,
    /// The highest number seen so far, `None` before the first arrival.
    highest: Option<u64>,
}

impl SeqTally {
    pub fn new() -> SeqTally {
        SeqTally::default()
    }

    /// Records the arrival of `seq` and says what it was.
    pub fn record(&mut self, seq: u64) -> Arrival {
        if seq > SEQ_MAX {
            self.out_of_range += 1;
            return Arrival::OutOfRange;
        }
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if word >= self.seen.len() {
            // Grow geometrically so a steady stream costs amortised O(1) per message.
            let len = (word + 1).max(self.seen.len() * 2);
            self.seen.resize(len, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= bit;
        self.distinct += 1;
        let arrival = match self.highest {
            Some(highest) if seq < highest => {
                self.out_of_order += 1;
                Arrival::OutOfOrder
            }
            _ => {
                self.highest = Some(seq);
                Arrival::InOrder
            }
        };
        debug_assert!(self.distinct <= self.highest.map_or(0, |h| h + 1));
        arrival
    }

    /// True once `seq` has arrived.
    pub fn has(&self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        self.seen
            .get(word)
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// Distinct messages delivered.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }

    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }

    /// Messages among `0..sent` that never arrived.
    pub fn missing(&self, sent: u64) -> u64 {
        let full_words = (sent / 64) as usize;
        let mut arrived: u64 = self
            .seen
            .iter()
            .take(full_words)
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let tail_bits = sent % 64;
        if tail_bits > 0 {
            let mask = (1u64 << tail_bits) - 1;
            let tail = self.seen.get(full_words).copied().unwrap_or(0);
            arrived += u64::from((tail & mask).count_ones());
        }
        sent - arrived
    }

    /// Messages lost: among `0..sent`, those that never arrived although the broker took
    /// responsibility for them. `unacknowledged` lists the numbers the broker never
    /// acknowledged (QoS 1/2 publishes still in flight when the run ended): their fate is
    /// unknown, so they do not count as lost whether or not they arrived.
    pub fn lost(&self, sent: u64, unacknowledged: &[u64]) -> u64 {
        let unknown = unacknowledged
            .iter()
            .filter(|&&seq| seq < sent && !self.has(seq))
            .count() as u64;
        self.missing(sent) - unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally_of(seqs: &[u64]) -> SeqTally {
        let mut tally = SeqTally::new();
        for &seq in seqs {
            tally.record(seq);
        }
        tally
    }

    #[test]
    fn an_ordered_stream_has_nothing_to_report() {
        let tally = tally_of(&(0..1000).collect::<Vec<_>>());
        assert_eq!(tally.distinct(), 1000);
        assert_eq!(tally.duplicated(), 0);
        assert_eq!(tally.out_of_order(), 0);
        assert_eq!(tally.missing(1000), 0);
        assert_eq!(tally.lost(1000, &[]), 0);
    }

    #[test]
    fn a_repeated_number_is_a_duplicate_and_counted_once() {
        let mut tally = tally_of(&[0, 1, 2]);
        assert_eq!(tally.record(1), Arrival::Duplicate);
        assert_eq!(tally.record(2), Arrival::Duplicate);
        assert_eq!(tally.record(2), Arrival::Duplicate);
        assert_eq!(tally.duplicated(), 3);
        assert_eq!(tally.distinct(), 3);
        assert_eq!(tally.out_of_order(), 0);
        assert_eq!(tally.missing(3), 0);
    }

    #[test]
    fn a_number_after_a_larger_one_is_out_of_order_not_lost() {
        let mut tally = SeqTally::new();
        assert_eq!(tally.record(0), Arrival::InOrder);
        assert_eq!(tally.record(2), Arrival::InOrder);
        assert_eq!(tally.record(1), Arrival::OutOfOrder);
        assert_eq!(tally.record(3), Arrival::InOrder);
        assert_eq!(tally.out_of_order(), 1);
        assert_eq!(tally.duplicated(), 0);
        assert_eq!(tally.missing(4), 0);
    }

    #[test]
    fn gaps_are_missing_including_the_tail() {
        // 70 sent, 3, 64 and 69 never came: the gaps cross a bitmap word boundary.
        let seqs: Vec<u64> = (0..70).filter(|s| ![3, 64, 69].contains(s)).collect();
        let tally = tally_of(&seqs);
        assert_eq!(tally.missing(70), 3);
        assert_eq!(tally.lost(70, &[]), 3);
        // Only what was sent can be missing.
        assert_eq!(tally.missing(64), 1);
        assert_eq!(tally.missing(0), 0);
    }

    #[test]
    fn nothing_delivered_means_everything_is_missing() {
        assert_eq!(SeqTally::new().missing(130), 130);
    }

    #[test]
    fn unacknowledged_messages_are_not_lost() {
        // 10 sent; 8 and 9 were still in flight at the end; 9 arrived anyway, 8 did not, and
        // 5 is a real loss.
        let tally = tally_of(&[0, 1, 2, 3, 4, 6, 7, 9]);
        assert_eq!(tally.missing(10), 2);
        assert_eq!(tally.lost(10, &[8, 9]), 1);
    }

    #[test]
    fn numbers_beyond_the_limit_are_set_aside() {
        let mut tally = SeqTally::new();
        assert_eq!(tally.record(SEQ_MAX + 1), Arrival::OutOfRange);
        assert_eq!(tally.out_of_range(), 1);
        assert_eq!(tally.distinct(), 0);
        assert!(!tally.has(SEQ_MAX + 1));
    }
}
