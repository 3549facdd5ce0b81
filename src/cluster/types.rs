//! openraft's type configuration for Keel.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::broker::Proposal;
use crate::state::BatchId;

use super::runtime::KeelRuntime;

/// The application data of one log entry: proposals from one or more connections of one
/// node, committed together (group commit). `id` lets a retried copy be skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub id: BatchId,
    pub proposals: Vec<Proposal>,
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch {} of node {} (run {}): {} proposals",
            self.id.seq,
            self.id.place.node,
            self.id.place.incarnation,
            self.proposals.len()
        )
    }
}

openraft::declare_raft_types!(
    /// Keel's Raft types: node ids are `u64`, entries carry [`Batch`]es, and the runtime
    /// has a seeded random source.
    pub TypeConfig:
        D = Batch,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = KeelRuntime,
);
