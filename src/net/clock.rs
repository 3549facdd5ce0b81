//! The wall clock seam: [`Clock`] and the real [`SystemClock`].

/// Reads the wall clock, for timestamps that outlive the process or cross nodes: session and
/// message expiry deadlines kept in durable state.
///
/// Timers (keep-alive, retransmission, deadlines) do not use this: they use `tokio::time`,
/// which the simulator virtualises. A `Clock` only answers "what time is it".
///
/// # Contract
///
/// `unix_ms` returns milliseconds since the Unix epoch. It is not guaranteed to be monotonic
/// (the system clock may be stepped), so code that compares two readings must tolerate a
/// later reading being smaller.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn unix_ms(&self) -> u64;
}

/// So that an `Arc<dyn Clock>` can be handed to code generic over `C: Clock`.
impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn unix_ms(&self) -> u64 {
        (**self).unix_ms()
    }
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // This is the one place allowed to read the system clock: everything else goes through
    // `Clock`, so the simulator can substitute its own time.
    #[allow(clippy::disallowed_methods)]
    fn unix_ms(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            // A clock set before 1970 is a broken machine; saturate rather than panic.
            .unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_reads_a_time_after_2020() {
        const JAN_1_2020_MS: u64 = 1_577_836_800_000;
        assert!(SystemClock.unix_ms() > JAN_1_2020_MS);
    }
}
