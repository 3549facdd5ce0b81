//! The randomness seam: [`Rng`], a seeded random number generator.

use std::fmt;
use std::io;

use rand::distr::uniform::{SampleRange, SampleUniform};
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};

/// Length of [`Rng::client_id_suffix`]: with a short prefix such as `"keel-"` the assigned
/// client id stays within the 23 characters every server must accept [MQTT-3.1.3-5], and 16
/// alphanumeric characters (≈ 95 bits) make a collision between assigned ids negligible.
pub const CLIENT_ID_SUFFIX_LEN: usize = 16;

/// A deterministic random number generator: the same seed gives the same sequence.
///
/// Every random choice a node makes (assigned client ids, jitter, shared-subscription picks)
/// draws from an `Rng`, never from `rand::rng()` or `thread_rng()`, so a simulator run is a
/// function of its seed. Production seeds one `Rng` from OS entropy at start-up
/// ([`Rng::from_os_entropy`]); the simulator seeds it from the run seed ([`Rng::from_seed`]).
///
/// It is deliberately not `Clone`: a clone would repeat its parent's numbers. Give a task its
/// own generator with [`Rng::fork`].
pub struct Rng {
    /// ChaCha12 behind rand's `StdRng`: reproducible on every platform for one rand version.
    inner: StdRng,
}

impl Rng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn from_seed(seed: u64) -> Rng {
        Rng {
            inner: StdRng::seed_from_u64(seed),
        }
    }

    /// A generator seeded from the operating system's entropy source, for production.
    pub fn from_os_entropy() -> io::Result<Rng> {
        let inner = StdRng::try_from_os_rng().map_err(io::Error::other)?;
        Ok(Rng { inner })
    }

    /// A new, independent generator seeded from this one, to hand to another task. Deterministic:
    /// the same parent state gives the same child.
    pub fn fork(&mut self) -> Rng {
        Rng::from_seed(self.u64())
    }

    /// A uniformly random `u64`.
    pub fn u64(&mut self) -> u64 {
        self.inner.random()
    }

    /// A uniformly random value in `range` (`a..b` or `a..=b`).
    ///
    /// # Panics
    ///
    /// If the range is empty: asking for a value from nothing is a bug in the caller.
    pub fn range<T, R>(&mut self, range: R) -> T
    where
        T: SampleUniform,
        R: SampleRange<T>,
    {
        assert!(!range.is_empty(), "Rng::range called with an empty range");
        self.inner.random_range(range)
    }

    /// True with probability `p`, which is clamped to `0.0..=1.0` (NaN counts as 0).
    pub fn chance(&mut self, p: f64) -> bool {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.inner.random_bool(p)
    }

    /// [`CLIENT_ID_SUFFIX_LEN`] random characters from `[0-9A-Za-z]`, to build the client id
    /// the server assigns to a client that connects with an empty one.
    pub fn client_id_suffix(&mut self) -> String {
        (&mut self.inner)
            .sample_iter(Alphanumeric)
            .take(CLIENT_ID_SUFFIX_LEN)
            .map(char::from)
            .collect()
    }
}

impl fmt::Debug for Rng {
    /// Does not print the state: it would be a way to predict every later number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rng").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_sequence() {
        let mut a = Rng::from_seed(42);
        let mut b = Rng::from_seed(42);
        for _ in 0..100 {
            assert_eq!(a.u64(), b.u64());
        }
        assert_eq!(a.client_id_suffix(), b.client_id_suffix());
        assert_eq!(a.range(0..1000u32), b.range(0..1000u32));
    }

    #[test]
    fn different_seeds_give_different_sequences() {
        let mut a = Rng::from_seed(1);
        let mut b = Rng::from_seed(2);
        let a_values: Vec<u64> = (0..4).map(|_| a.u64()).collect();
        let b_values: Vec<u64> = (0..4).map(|_| b.u64()).collect();
        assert_ne!(a_values, b_values);
    }

    #[test]
    fn fork_is_deterministic_and_differs_from_the_parent() {
        let mut parent_a = Rng::from_seed(9);
        let mut parent_b = Rng::from_seed(9);
        let mut child_a = parent_a.fork();
        let mut child_b = parent_b.fork();
        assert_eq!(child_a.u64(), child_b.u64());
        assert_ne!(parent_a.u64(), child_a.u64());
    }

    #[test]
    fn range_stays_within_bounds() {
        let mut rng = Rng::from_seed(3);
        for _ in 0..1000 {
            let value = rng.range(10..20u64);
            assert!((10..20).contains(&value));
            let inclusive = rng.range(5..=5u8);
            assert_eq!(inclusive, 5);
        }
    }

    #[test]
    #[should_panic(expected = "empty range")]
    fn range_panics_on_an_empty_range() {
        Rng::from_seed(0).range(5..5u64);
    }

    #[test]
    fn chance_respects_its_extremes() {
        let mut rng = Rng::from_seed(4);
        for _ in 0..100 {
            assert!(!rng.chance(0.0));
            assert!(rng.chance(1.0));
            assert!(rng.chance(7.0));
            assert!(!rng.chance(f64::NAN));
        }
    }

    #[test]
    fn client_id_suffix_is_alphanumeric_of_fixed_length() {
        let mut rng = Rng::from_seed(5);
        let suffix = rng.client_id_suffix();
        assert_eq!(suffix.len(), CLIENT_ID_SUFFIX_LEN);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(suffix, rng.client_id_suffix());
    }

    #[test]
    fn os_entropy_seeds_a_generator() {
        let mut rng = Rng::from_os_entropy().unwrap();
        let _ = rng.u64();
    }
}
