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
//! Built only with the `oracle` feature (the `sim` feature turns it on): it is test
//! machinery, not part of the broker.

pub mod admin;
pub mod checkers;
pub mod client;
pub mod history;
pub mod workload;
