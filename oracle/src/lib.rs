//! The test oracle: workload clients that speak MQTT to a cluster and record what their
//! application sees, and the checkers that judge that record against the guarantees of
//! docs/design.md §1. The simulator (`sim/`) and the black-box tests of real clusters (`jepsen/`)
//! both use this one implementation, so a guarantee means the same thing in both.
//!
//! - [`history`]: the record (every send, acknowledgement, delivery, fault and phase marker);
//! - [`client`]: one recording MQTT connection over Keel's codec, with deadlines everywhere;
//! - [`workload`]: the client programs (publishers, subscribers, retained readers) that
//!   misbehave on purpose during the safety phase;
//! - [`checkers`]: one pure function per guarantee over a history;
//! - [`admin`]: requests to a node's admin HTTP API (the operator's side).
//!
//! Test machinery, not part of the broker: a crate of its own (`keel-oracle`) that the root
//! package's `sim` test and `keel-jepsen` depend on.
//!
//! It judges the broker from outside, as a client: of Keel it may use only the packet codec
//! (`keel::codec`), the seam to the world (`keel::net`: sockets, clock, seeded randomness) and
//! topic matching (`keel::router`), never a broker-side module (`broker`, `state`, `session`,
//! `server`, `cluster`, ...), nor the `sim` or `planted` features.

pub mod admin;
pub mod checkers;
pub mod client;
pub mod history;
pub mod workload;
