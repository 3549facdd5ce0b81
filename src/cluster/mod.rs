//! The replicated log under the durable state: openraft's type configuration, its log and
//! state-machine storage on a [`crate::storage::KvStore`], a seeded runtime, the network, and
//! the proposer that batches the broker's proposals into log entries (group commit).
//!
//! A single node is a Raft cluster of one: the same path commits its proposals, so what a
//! node acknowledged survives `kill -9` (DESIGN §2).

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes); boxing it
// is not ours to choose.
#![allow(clippy::result_large_err)]

mod log_store;
mod network;
mod node;
mod proposer;
mod runtime;
mod state_machine;
mod types;

pub use log_store::{LogStore, SyncPolicy};
pub use network::NoNetwork;
pub use node::{open_node, Durability, NodeError, RaftNode};
pub use proposer::{ProposalFailure, ProposalQueue, ProposerLimits};
pub use runtime::{seed_thread_rng, KeelRuntime};
pub use state_machine::{AppliedPosition, Applier, StateMachine};
pub use types::{Batch, TypeConfig};
