//! Fixed-rate pacing: how a total rate splits over the publishers, and when each publisher's
//! n-th message is due. Pure arithmetic on nanoseconds since the run started.

/// Nanoseconds per second times 1000: rates are kept in milli-messages per second so that a
/// total rate split over many publishers stays exact (10 msgs/s over 100 publishers is
/// 100 milli-msgs/s each).
const NS_PER_SEC_MILLI: u128 = 1_000_000_000_000;

/// Splits `total_per_sec` over `publishers`, in milli-messages per second. The parts add up
/// to the total exactly: the remainder goes one milli-message each to the first publishers.
pub fn split_rate(total_per_sec: u64, publishers: usize) -> Vec<u64> {
    assert!(publishers > 0, "a rate needs at least one publisher");
    let total_milli = total_per_sec.saturating_mul(1000);
    let count = publishers as u64;
    let (base, remainder) = (total_milli / count, total_milli % count);
    (0..count)
        .map(|i| base + u64::from(i < remainder))
        .collect()
}

/// The schedule of one publisher: message `n` (from 0) is due at
/// `offset_ns + n / rate`. Publishers get evenly spread offsets within one interval so that
/// they do not all fire in the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    /// Milli-messages per second; 0 means this publisher sends nothing.
    rate_milli: u64,
    /// When message 0 is due, in nanoseconds since the start of publishing.
    offset_ns: u64,
}

impl Pacer {
    /// The schedule of publisher `index` of `publishers` at `rate_milli` milli-msgs/s.
    pub fn new(rate_milli: u64, index: usize, publishers: usize) -> Pacer {
        assert!(index < publishers, "publisher {index} of {publishers}");
        let offset_ns = if rate_milli == 0 {
            0
        } else {
            let interval_ns = NS_PER_SEC_MILLI / u128::from(rate_milli);
            (interval_ns * index as u128 / publishers as u128) as u64
        };
        Pacer {
            rate_milli,
            offset_ns,
        }
    }

    /// How many messages are due by `elapsed_ns` (message `n` counts once its time is reached).
    pub fn due(&self, elapsed_ns: u64) -> u64 {
        if self.rate_milli == 0 || elapsed_ns < self.offset_ns {
            return 0;
        }
        let since = u128::from(elapsed_ns - self.offset_ns);
        let due = since * u128::from(self.rate_milli) / NS_PER_SEC_MILLI + 1;
        u64::try_from(due).unwrap_or(u64::MAX)
    }

    /// When message `n` is due, in nanoseconds since the start; `u64::MAX` never.
    pub fn due_at_ns(&self, n: u64) -> u64 {
        if self.rate_milli == 0 {
            return u64::MAX;
        }
        let rate = u128::from(self.rate_milli);
        // Rounded up, so that `due(due_at_ns(n))` counts message `n`.
        let since = (u128::from(n) * NS_PER_SEC_MILLI).div_ceil(rate);
        u64::try_from(since + u128::from(self.offset_ns)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_adds_up_to_the_total() {
        for (total, publishers) in [(10_000, 100), (10, 100), (7, 3), (1, 1000), (0, 5)] {
            let parts = split_rate(total, publishers);
            assert_eq!(parts.len(), publishers);
            assert_eq!(
                parts.iter().sum::<u64>(),
                total * 1000,
                "{total} over {publishers}"
            );
            let (min, max) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            assert!(max - min <= 1, "parts differ by at most one milli-message");
        }
    }

    #[test]
    fn one_message_per_interval_from_the_offset() {
        // 100 msgs/s: one every 10 ms; publisher 1 of 4 starts a quarter interval in.
        let pacer = Pacer::new(100_000, 1, 4);
        assert_eq!(pacer.due_at_ns(0), 2_500_000);
        assert_eq!(pacer.due(2_499_999), 0);
        assert_eq!(pacer.due(2_500_000), 1);
        assert_eq!(pacer.due(12_499_999), 1);
        assert_eq!(pacer.due(12_500_000), 2);
        assert_eq!(pacer.due_at_ns(100), 1_002_500_000);
    }

    #[test]
    fn due_and_due_at_agree() {
        for rate_milli in [1, 333, 100_000, 10_000_000, 1_000_000_000] {
            let pacer = Pacer::new(rate_milli, 3, 7);
            for n in [0, 1, 2, 99, 1234, 1_000_000] {
                let at = pacer.due_at_ns(n);
                assert_eq!(pacer.due(at), n + 1, "rate {rate_milli} n {n}");
                assert_eq!(pacer.due(at - 1), n, "rate {rate_milli} n {n}");
            }
        }
    }

    #[test]
    fn a_second_at_the_split_rate_sends_the_total() {
        let publishers = 100;
        let parts = split_rate(10_000, publishers);
        let sent: u64 = parts
            .iter()
            .enumerate()
            .map(|(i, &rate)| Pacer::new(rate, i, publishers).due(1_000_000_000 - 1))
            .sum();
        assert_eq!(sent, 10_000);
    }

    #[test]
    fn a_zero_rate_never_sends() {
        let pacer = Pacer::new(0, 0, 1);
        assert_eq!(pacer.due(u64::MAX), 0);
        assert_eq!(pacer.due_at_ns(0), u64::MAX);
    }
}
