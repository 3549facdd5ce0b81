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
    /// has a seeded random source. (The broker and the replicated state name a node with
    /// [`crate::state::NodeId`], the same number, converted where a Raft id enters a
    /// [`crate::state::Place`] or a command.)
    pub TypeConfig:
        D = Batch,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = KeelRuntime,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{ConnId, Origin, SessionFence, Ticket};
    use crate::codec::MqttString;
    use crate::state::tests::persist::{every_command, golden};
    use crate::state::{Command, Incarnation, NodeId, Place, Seq};

    /// A Raft log entry as the cluster writes it (to its store, in AppendEntries, and its
    /// batch when forwarded to the leader), with every command kind and a reply's origin and
    /// fence.
    fn raft_entry() -> openraft::Entry<TypeConfig> {
        let place = Place {
            node: NodeId(3),
            incarnation: Incarnation(1_000_000),
        };
        let batch = Batch {
            id: BatchId { place, seq: 42 },
            proposals: vec![
                Proposal {
                    commands: every_command(),
                    origin: Some(Origin {
                        place,
                        conn: ConnId(77),
                        ticket: Ticket(300),
                        local_matched: 2,
                    }),
                    from: Some(SessionFence {
                        client_id: MqttString::new("c").unwrap(),
                        place,
                    }),
                },
                Proposal {
                    commands: vec![Command::Acked {
                        client_id: MqttString::new("s").unwrap(),
                        seq: Seq(5),
                    }],
                    origin: None,
                    from: None,
                },
            ],
        };
        openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(7, 3), 1234),
            payload: openraft::EntryPayload::Normal(batch),
        }
    }

    /// The entry of `raft_entry()` as Keel wrote it before its ids and records had types
    /// (commit e9f1d2d). A rolling restart has old and new nodes in one cluster, each applying
    /// entries the other wrote, and entries carry no format version: a new node must read an
    /// old entry to the values it was written from, and an old node must get from a new one
    /// the very bytes it would have written itself (see `state::COMMANDS_VERSION`).
    #[test]
    fn a_raft_entry_written_before_the_ids_had_types_reads_back_the_same_and_is_written_the_same() {
        let old = golden(include_str!("golden/raft_entry_v2.hex"));
        let read: openraft::Entry<TypeConfig> = postcard::from_bytes(&old).unwrap();
        assert_eq!(read, raft_entry());
        assert_eq!(postcard::to_allocvec(&raft_entry()).unwrap(), old);
    }
}
