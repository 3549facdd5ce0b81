//! Starting the Raft node of a broker: restore the last snapshot, open the log, become a
//! cluster of one (or rejoin it), replay, then take proposals.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};

use crate::storage::KvStore;

use super::log_store::{LogStore, SyncPolicy};
use super::network::NoNetwork;
use super::proposer::{run_proposer, ProposalFailure, ProposalQueue, ProposerLimits};
use super::state_machine::{Applier, StateMachine};
use super::types::{Batch, TypeConfig};

/// How a node keeps its state.
#[derive(Clone)]
pub struct Durability {
    pub node_id: u64,
    pub store: Arc<dyn KvStore>,
    pub sync: SyncPolicy,
    /// A snapshot is taken after this many log entries, and the log before it is purged.
    pub snapshot_every: u64,
    pub proposer: ProposerLimits,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("the stored snapshot cannot be restored: {0}")]
    Snapshot(String),
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    #[error("Raft failed to start: {0}")]
    Raft(String),
}

/// A running Raft node.
pub struct RaftNode {
    pub raft: Raft<TypeConfig>,
    pub queue: Arc<ProposalQueue>,
}

impl RaftNode {
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "Raft did not shut down cleanly");
        }
    }
}

/// Starts the node: restores the snapshot into `applier`, replays the log, waits until it
/// leads its cluster of one with everything applied, then starts the proposer.
pub async fn open_node(
    durability: Durability,
    applier: Arc<dyn Applier>,
    failure: Arc<dyn ProposalFailure>,
    queue: Arc<ProposalQueue>,
) -> Result<RaftNode, NodeError> {
    let state_machine = StateMachine::new(durability.store.clone(), applier.clone());
    if let Some(position) = state_machine.restore().await.map_err(NodeError::Snapshot)? {
        tracing::info!(last_applied = ?position.last_applied, "restored the snapshot");
    }
    let log = LogStore::new(durability.store.clone(), durability.sync);
    let config = Config {
        cluster_name: "keel".to_string(),
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(durability.snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    }
    .validate()
    .map_err(|e| NodeError::Config(e.to_string()))?;
    let raft = Raft::new(
        durability.node_id,
        Arc::new(config),
        NoNetwork,
        log,
        state_machine,
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if !initialized {
        let members = BTreeMap::from([(durability.node_id, BasicNode::default())]);
        raft.initialize(members)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
    }
    raft.wait(Some(Duration::from_secs(30)))
        .state(ServerState::Leader, "become the leader of a cluster of one")
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    // Everything committed before the restart is applied before clients are served.
    raft.ensure_linearizable()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    let repairs = applier.recover();
    if !repairs.is_empty() {
        raft.client_write(Batch(repairs))
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
    }
    tokio::spawn(run_proposer(
        raft.clone(),
        queue.clone(),
        failure,
        durability.proposer,
    ));
    Ok(RaftNode { raft, queue })
}
