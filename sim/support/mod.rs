//! Shared pieces of the simulation tests.

pub mod client;

/// The seed of a run: `KEEL_SIM_SEED` when set, else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("KEEL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Prints how to replay a run when the test fails (on panic, while unwinding).
pub struct ReplayHint {
    pub seed: u64,
    pub test: &'static str,
}

impl Drop for ReplayHint {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\nsimulation failed with seed {seed}; replay with:\n  KEEL_SIM_SEED={seed} cargo test --features sim --test sim {test} -- --nocapture\n",
                seed = self.seed,
                test = self.test
            );
        }
    }
}
