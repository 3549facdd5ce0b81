//! openraft's async runtime: tokio, with a seeded random source.
//!
//! openraft draws election timeouts from `AsyncRuntime::thread_rng`. The stock tokio runtime
//! uses rand 0.8's OS-seeded `thread_rng`, which would make simulated runs differ from seed
//! to seed of nothing (docs/design.md §4); ours draws from a per-thread generator seeded from one
//! process-wide seed that the node (or the simulator) sets.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::async_runtime::AsyncOneshotSendExt;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant};
use rand08::rngs::StdRng;
use rand08::{RngCore, SeedableRng};

/// The seed the next thread's generator starts from; each thread takes the next value.
static NEXT_SEED: AtomicU64 = AtomicU64::new(0x6b65_656c);

thread_local! {
    static THREAD_RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Seeds the generators: the current thread's now, other threads' when they first draw.
pub fn seed_thread_rng(seed: u64) {
    NEXT_SEED.store(seed, Ordering::SeqCst);
    THREAD_RNG.with(|rng| *rng.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// A handle to the current thread's seeded generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededRng;

impl SeededRng {
    fn with<T>(f: impl FnOnce(&mut StdRng) -> T) -> T {
        THREAD_RNG.with(|rng| {
            let mut rng = rng.borrow_mut();
            let rng = rng.get_or_insert_with(|| {
                StdRng::seed_from_u64(NEXT_SEED.fetch_add(1, Ordering::SeqCst))
            });
            f(rng)
        })
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        SeededRng::with(|r| r.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        SeededRng::with(|r| r.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        SeededRng::with(|r| r.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand08::Error> {
        SeededRng::with(|r| r.try_fill_bytes(dest))
    }
}

/// tokio, as openraft's own runtime, but with [`SeededRng`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeelRuntime;

/// The sending half of a oneshot channel.
pub struct OneshotSender<T>(tokio::sync::oneshot::Sender<T>);

impl<T> std::fmt::Debug for OneshotSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneshotSender")
    }
}

impl<T: OptionalSend> AsyncOneshotSendExt<T> for OneshotSender<T> {
    fn send(self, t: T) -> Result<(), T> {
        self.0.send(t)
    }
}

impl AsyncRuntime for KeelRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = SeededRng;
    type OneshotSender<T: OptionalSend> = OneshotSender<T>;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::task::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SeededRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (OneshotSender(tx), rx)
    }
}

#[cfg(test)]
mod tests {
    use rand08::RngCore;

    use super::*;

    #[test]
    fn one_seed_gives_one_sequence() {
        seed_thread_rng(7);
        let a: Vec<u64> = (0..4).map(|_| SeededRng.next_u64()).collect();
        seed_thread_rng(7);
        let b: Vec<u64> = (0..4).map(|_| SeededRng.next_u64()).collect();
        assert_eq!(a, b);
        seed_thread_rng(8);
        let c: Vec<u64> = (0..4).map(|_| SeededRng.next_u64()).collect();
        assert_ne!(a, c);
    }
}
