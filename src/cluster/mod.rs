//! The replicated log under the durable state: openraft's type configuration, its log and
//! state-machine storage on a [`crate::storage::KvStore`], a seeded runtime, the network, and
//! the proposer that batches the broker's proposals into log entries (group commit).
//!
//! A single node is a Raft cluster of one: the same path commits its proposals, so what a
//! node acknowledged survives `kill -9` (docs/design.md §2).

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes); boxing it
// is not ours to choose.
#![allow(clippy::result_large_err)]

mod change;
mod forward;
mod handover;
mod log_store;
mod membership;
mod network;
mod node;
mod peers;
mod proposer;
mod rpc;
mod runtime;
mod state_machine;
mod types;
mod watch;

pub use change::{Added, ChangeError, ChangeLimits, MembershipChanger, PeerProbe, ProbeFuture};
pub use forward::{Forwarder, GrpcForwarder, NoForwarder, FORWARD_QUEUE_MAX};
pub use handover::{hand_over, ElectionRequest, ElectionStarter, Handover, HANDOVER_TIMEOUT};
pub use log_store::{LogStore, SyncPolicy};
pub use membership::{change_refused, final_voters, quorum_refusal};
pub use network::NoNetwork;
pub use node::{
    open_node, Durability, Membership, NodeError, RaftNode, ELECTION_TIMEOUT_MAX_MS,
    ELECTION_TIMEOUT_MIN_MS, HEARTBEAT_MS,
};
pub use peers::{Peers, UNKNOWN_NODE};
pub use proposer::{
    LeaderError, LeaderLink, NoLeaderLink, ProposalFailure, ProposalQueue, ProposerLimits,
    WriteHold,
};
pub use rpc::{ClusterService, Forwarded, ForwardedSink, GrpcLink, GrpcNetwork, JOIN_TIMEOUT};
pub use runtime::{seed_thread_rng, KeelRuntime};
pub use state_machine::{AppliedPosition, Applier, InstallError, RestoreError, StateMachine};
pub use types::{Batch, TypeConfig};
pub use watch::{run_reads, watch_role, ClusterView};
