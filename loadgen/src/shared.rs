//! What the tasks of one run share: the run's clock, its phase, the per-publisher delivery
//! counters that close the publisher-to-subscriber loop, and the latency histograms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Longest latency the histograms hold; longer ones are recorded as this.
const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// The run's monotonic clock: nanoseconds since its start, the unit of payload timestamps.
///
/// The load generator measures a real broker over real sockets and is never simulated, so it
/// reads tokio's clock directly instead of going through the `net::Clock` seam.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
}

impl RunClock {
    pub fn start() -> RunClock {
        RunClock {
            start: Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `ns` after the start, for timers.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.start + std::time::Duration::from_nanos(ns)
    }
}

/// Where the run is. Tasks watch it through a `tokio::sync::watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Publishers publish.
    Run,
    /// Publishers stop making messages, finish their in-flight flows and leave.
    Stop,
    /// Everyone disconnects and hands in their figures.
    Close,
}

/// The measured window, in run-clock nanoseconds: deliveries and latencies count when the
/// delivery falls in `[start_ns, end_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    pub fn contains(&self, ns: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&ns)
    }
}

/// Shared by one publisher and its subscribers. The subscribers count what they received from
/// it; the publisher reads that to keep its lead over them bounded (`--lead-max`).
#[derive(Debug, Default)]
pub struct PublisherLink {
    /// Distinct messages of this publisher delivered, summed over its subscribers.
    delivered: AtomicU64,
    /// Set by the publisher while it waits for deliveries; subscribers then wake it.
    waiting: AtomicBool,
    notify: Notify,
}

impl PublisherLink {
    /// Called by a subscriber for `count` new deliveries of this publisher's messages.
    pub fn add_delivered(&self, count: u64) {
        // SeqCst on both sides (here and in `delivered`/`set_waiting`) so that either the
        // subscriber sees `waiting` or the publisher sees the new count: no lost wake-up.
        self.delivered.fetch_add(count, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::SeqCst)
    }

    pub fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::SeqCst);
    }

    /// Completes after a delivery that happened while `waiting` was set (possibly already).
    pub async fn delivered_changed(&self) {
        self.notify.notified().await;
    }
}

/// Latency histograms in nanoseconds, a few shards so that subscribers on different threads
/// rarely meet on one lock. Subscribers record a whole read's latencies per lock.
#[derive(Debug)]
pub struct LatencyShards {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl LatencyShards {
    pub fn new(count: usize) -> LatencyShards {
        let shards = (0..count.max(1))
            .map(|_| {
                // Three significant digits from 1 ns to 60 s: bounds are constants known to
                // be valid for hdrhistogram.
                Mutex::new(Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).unwrap())
            })
            .collect();
        LatencyShards { shards }
    }

    /// Records `latencies_ns` into the shard of subscriber `index`.
    pub fn record(&self, index: usize, latencies_ns: &[u64]) {
        if latencies_ns.is_empty() {
            return;
        }
        let shard = &self.shards[index % self.shards.len()];
        // A poisoned lock means another subscriber panicked mid-record; the counts are
        // still usable for a report.
        let mut histogram = shard.lock().unwrap_or_else(|e| e.into_inner());
        for &ns in latencies_ns {
            histogram.saturating_record(ns.clamp(1, LATENCY_NS_MAX));
        }
    }

    /// All shards added together.
    pub fn merged(&self) -> Histogram<u64> {
        let mut total = Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).unwrap();
        for shard in self.shards.iter() {
            let histogram = shard.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds on both sides, so adding cannot fail.
            total.add(&*histogram).unwrap();
        }
        total
    }
}
