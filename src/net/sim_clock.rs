//! [`SimClock`]: a wall clock that follows the simulator's virtual time.

use tokio::time::Instant;

use super::Clock;

/// A fixed epoch plus the `tokio::time` elapsed since the clock was created.
///
/// Inside a turmoil host `tokio::time` is virtual, so this clock advances with simulated time
/// and every run of a seed reads the same values. Create it inside the host it serves (the
/// elapsed time is measured on the runtime that is current at creation).
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    /// What `unix_ms` returns at creation. Fixed (not read from the system) so runs replay.
    epoch_ms: u64,
    /// When the clock was created, on the virtual timeline.
    start: Instant,
}

impl SimClock {
    /// A clock that reads `epoch_ms` now and advances with `tokio::time`.
    pub fn new(epoch_ms: u64) -> SimClock {
        SimClock {
            epoch_ms,
            start: Instant::now(),
        }
    }
}

impl Clock for SimClock {
    fn unix_ms(&self) -> u64 {
        let elapsed_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.epoch_ms.saturating_add(elapsed_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sim_clock_advances_with_tokio_time() {
        let clock = SimClock::new(1_000_000);
        assert_eq!(clock.unix_ms(), 1_000_000);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.unix_ms(), 1_001_500);
    }
}
