//! The chaos simulator: seeded workloads and faults against real Keel nodes, judged by one
//! checker per guarantee of DESIGN.md §1.
//!
//! - [`plan`]: everything a run does, derived from its seed;
//! - [`workload`] and [`mqtt`]: the clients, recording what their application sees;
//! - [`nemesis`]: the faults, and `operator`: the membership changes it orders;
//! - [`history`]: the record; [`checkers`]: the judges;
//! - [`run`]: one run; `tests`: the seeds of `cargo test --features sim`.

pub mod checkers;
pub mod history;
pub mod mqtt;
pub mod nemesis;
mod operator;
pub mod plan;
pub mod run;
#[cfg(test)]
mod tests;
pub mod workload;
