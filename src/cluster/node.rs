//! Starting the Raft node of a broker: restore the last snapshot, open the log, become a
//! cluster of one (or rejoin it), replay, then take proposals.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft, RaftNetworkFactory, ServerState, SnapshotPolicy};

use crate::storage::KvStore;

use super::log_store::{LogStore, SyncPolicy};
use super::network::NoNetwork;
use super::proposer::{
    run_proposer, LeaderLink, NoLeaderLink, ProposalFailure, ProposalQueue, ProposerLimits,
    WriteHold,
};
use super::state_machine::{Applier, RestoreError, StateMachine};
use super::types::TypeConfig;
use crate::state::{Incarnation, NodeId, Place};

/// How a node keeps its state.
#[derive(Clone)]
pub struct Durability {
    pub node_id: u64,
    /// This run of the node (grows with every start).
    pub incarnation: Incarnation,
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
    Snapshot(#[from] RestoreError),
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    #[error("Raft failed to start: {0}")]
    Raft(String),
}

/// A running Raft node.
pub struct RaftNode {
    pub raft: Raft<TypeConfig>,
    pub queue: Arc<ProposalQueue>,
    /// Stops this node appending while it hands its leadership over.
    pub hold: Arc<WriteHold>,
}

impl RaftNode {
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "Raft did not shut down cleanly");
        }
    }
}

/// How a node finds the rest of its cluster.
pub struct Membership<N: RaftNetworkFactory<TypeConfig>> {
    /// The initial voters (this node among them) and their cluster addresses, for a node
    /// that forms a new cluster. Empty for a node that is to join a running one.
    pub voters: BTreeMap<u64, BasicNode>,
    pub network: N,
    pub link: Arc<dyn LeaderLink>,
}

impl Membership<NoNetwork> {
    /// A cluster of one.
    pub fn alone(node_id: u64) -> Membership<NoNetwork> {
        Membership {
            voters: BTreeMap::from([(node_id, BasicNode::default())]),
            network: NoNetwork,
            link: Arc::new(NoLeaderLink),
        }
    }
}

/// The Raft timing of every node: heartbeats, and the election timeout after which a
/// follower that heard nothing stands for election.
pub const HEARTBEAT_MS: u64 = 250;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1000;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2000;

/// Starts the node: restores the snapshot into `applier` and replays the log. A cluster of
/// one waits until it leads with everything applied; a node of a larger cluster forms it (the
/// initial voters) or waits to be added, and serves meanwhile (its requests wait for a leader).
/// The proposals that repair what a crash left behind go first in the queue; then the
/// proposer starts.
pub async fn open_node<N: RaftNetworkFactory<TypeConfig>>(
    durability: Durability,
    applier: Arc<dyn Applier>,
    failure: Arc<dyn ProposalFailure>,
    queue: Arc<ProposalQueue>,
    membership: Membership<N>,
) -> Result<RaftNode, NodeError> {
    let state_machine = StateMachine::new(durability.store.clone(), applier.clone());
    if let Some(position) = state_machine.restore().await? {
        tracing::info!(last_applied = ?position.last_applied, "restored the snapshot");
    }
    let log = LogStore::new(durability.store.clone(), durability.sync);
    let config = Config {
        cluster_name: "keel".to_string(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(durability.snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    }
    .validate()
    .map_err(|e| NodeError::Config(e.to_string()))?;
    let node_id = durability.node_id;
    let raft = Raft::new(
        node_id,
        Arc::new(config),
        membership.network,
        log,
        state_machine,
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if !initialized && !membership.voters.is_empty() {
        // Every initial voter may do this with the same members: the first to win an
        // election commits them, and the others' attempts are refused as already done.
        if let Err(error) = raft.initialize(membership.voters.clone()).await {
            tracing::debug!(%error, "initialize");
        }
    }
    let alone = membership.voters.len() == 1 && membership.voters.contains_key(&node_id);
    if alone {
        let voters: Vec<u64> = raft
            .with_raft_state(|state| state.membership_state.effective().voter_ids().collect())
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if voters != [node_id] {
            return Err(NodeError::Raft(format!(
                "the log names the voters {voters:?}, but the node was started alone, \
                 without a cluster listener, and cannot reach them: start it with its \
                 cluster listener and peers"
            )));
        }
        raft.wait(Some(Duration::from_secs(30)))
            .state(ServerState::Leader, "become the leader of a cluster of one")
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        // Everything committed before the restart is applied before clients are served.
        raft.ensure_linearizable()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
    }
    // Before any client's: the repairs are applied before anything this run asks.
    queue.push(applier.recover());
    let place = Place {
        node: NodeId::from(node_id),
        incarnation: durability.incarnation,
    };
    let hold = Arc::new(WriteHold::default());
    tokio::spawn(run_proposer(
        raft.clone(),
        queue.clone(),
        failure,
        durability.proposer,
        place,
        membership.link,
        hold.clone(),
    ));
    Ok(RaftNode { raft, queue, hold })
}
