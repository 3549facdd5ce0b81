//! The chaos simulator: seeded workloads and faults against real Keel nodes, judged by one
//! checker per guarantee of docs/design.md §1.
//!
//! - [`plan`]: everything a run does, derived from its seed;
//! - the clients, the history they record and the checkers that judge it are
//!   `keel-oracle`'s, shared with `jepsen/`;
//! - [`nemesis`]: the faults, and `operator`: the membership changes it orders;
//! - [`run`]: one run; `tests`: the seeds of `cargo test --features sim`.

pub mod nemesis;
mod operator;
pub mod plan;
pub mod run;
#[cfg(test)]
mod tests;

/// Simulated milliseconds since the start of the run: the times of the history.
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}
