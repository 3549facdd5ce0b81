//! The cluster side of a node's shell: its gRPC listener and service, the forwarder, and the
//! tasks that keep the broker's view of the cluster current (role and quorum, read rounds,
//! peer addresses, nodes declared gone) and join a running cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Raft, ServerState};
use tokio::sync::watch;

use crate::broker::Proposal;
use crate::cluster::{
    run_reads, ClusterService, ClusterView, Forwarded, ForwardedSink, GrpcForwarder, GrpcLink,
    GrpcNetwork, Membership, MembershipChanger, Peers, ProposalQueue, RaftNode, TypeConfig,
    JOIN_TIMEOUT,
};
use crate::grpc::proto::JoinRequest;
use crate::grpc::{serve, PeerRefusals, PeerTls, PeerTlsFiles, ServerConfig};
use crate::net::{Clock, Net};
use crate::state::{Command, Incarnation, NodeId};

use super::hub::Hub;

/// How a node takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Where the cluster listener binds (`HOST:PORT`).
    pub listen: String,
    /// Where the other nodes reach this one (what goes into the membership).
    pub advertise: String,
    /// The initial voters, this node included, by id: set to form a new cluster.
    pub peers: BTreeMap<u64, String>,
    /// A member of a running cluster to ask to add this node, instead of `peers`.
    pub join: Option<String>,
    /// A node that has not answered the leader for this long is declared gone.
    pub node_down_after: Duration,
    /// Mutual TLS with the peers; `None` runs plaintext (`[cluster] insecure`).
    pub tls: Option<PeerTlsFiles>,
}

/// The pieces of a node's cluster shell made before its Raft node starts.
pub(super) struct ClusterShell<N: Net> {
    pub peers: Peers<N>,
    pub settings: ClusterSettings,
    pub listener: N::Listener,
    pub tls: Option<Arc<PeerTls>>,
    pub refusals: Arc<PeerRefusals>,
}

impl<N: Net> ClusterShell<N> {
    /// Binds the cluster listener and makes the address book.
    pub async fn bind(
        net: &N,
        node_id: u64,
        settings: ClusterSettings,
        refusals: Arc<PeerRefusals>,
    ) -> Result<ClusterShell<N>, super::ServeError> {
        let tls = match &settings.tls {
            Some(files) => Some(Arc::new(PeerTls::load(files, node_id, refusals.clone())?)),
            None => {
                tracing::warn!(
                    "the cluster listener runs without TLS (cluster.insecure): any host that \
                     reaches it can join the cluster and call its RPCs"
                );
                None
            }
        };
        let listener = net.bind(&settings.listen).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen for peers on {}: {e}", settings.listen),
            )
        })?;
        let mut addrs = settings.peers.clone();
        addrs.insert(node_id, settings.advertise.clone());
        Ok(ClusterShell {
            peers: Peers::new(net.clone(), node_id, addrs, tls.clone()),
            settings,
            listener,
            tls,
            refusals,
        })
    }

    /// How the Raft node finds its cluster.
    pub fn membership(&self) -> Membership<GrpcNetwork<N>> {
        let voters = self
            .settings
            .peers
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        Membership {
            voters,
            network: GrpcNetwork::new(self.peers.clone()),
            link: Arc::new(GrpcLink::new(self.peers.clone())),
        }
    }

    /// Starts serving peers and the tasks of the cluster shell around `node`, until `stop`.
    pub fn start(
        self,
        node: &RaftNode,
        changer: Arc<MembershipChanger>,
        hub: Arc<Hub>,
        clock: Arc<dyn Clock>,
        stop: watch::Receiver<bool>,
    ) {
        let raft = node.raft.clone();
        let queue = node.queue.clone();
        let hold = node.hold.clone();
        let ClusterShell {
            peers,
            settings,
            listener,
            tls,
            refusals,
        } = self;
        hub.set_forwarder(Arc::new(GrpcForwarder::new(peers.clone())));
        let service = ClusterService::new(raft.clone(), hub.clone(), changer, refusals, hold);
        let mut serve_stop = stop.clone();
        let config = ServerConfig {
            tls,
            ..ServerConfig::default()
        };
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = serve_stop.wait_for(|stopped| *stopped).await;
            };
            if let Err(error) = serve(listener, service, &config, shutdown).await {
                tracing::error!(%error, "the cluster listener failed");
            }
        });
        let view: Arc<dyn ClusterView> = hub.clone();
        let link = Arc::new(GrpcLink::new(peers.clone()));
        tokio::spawn(run_reads(
            raft.clone(),
            view,
            link,
            hub.read_wake.clone(),
            stop.clone(),
        ));
        tokio::spawn(follow_membership(raft.clone(), peers.clone(), stop.clone()));
        tokio::spawn(declare_gone(
            raft.clone(),
            peers.clone(),
            queue,
            clock,
            settings.node_down_after,
            stop.clone(),
        ));
        if let Some(target) = settings.join.clone() {
            tokio::spawn(join_cluster(raft, peers, target, settings.advertise, stop));
        }
    }
}

impl ForwardedSink for Hub {
    fn forwarded(&self, publish: Forwarded) {
        let mut core = self.lock();
        core.broker.forwarded(publish.message, &publish.groups);
        let now_ms = self.clock().unix_ms();
        core.dispatch(None, now_ms, &self.qos0_dropped);
    }
}

/// Keeps the address book in step with the membership.
async fn follow_membership<N: Net>(
    raft: Raft<TypeConfig>,
    peers: Peers<N>,
    mut stop: watch::Receiver<bool>,
) {
    let mut metrics = raft.metrics();
    loop {
        let nodes: Vec<(u64, String)> = metrics
            .borrow()
            .membership_config
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        for (id, addr) in nodes {
            peers.set_addr(id, &addr);
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// How often the leader looks for nodes that stopped answering.
const GONE_PERIOD: Duration = Duration::from_secs(1);

/// On the leader: declares a member gone once it has not answered for `after`, so that the
/// sessions it served close in the cluster's state (wills published, expiry started) and can
/// resume elsewhere. Declared once per silence: a node that answers again may be declared
/// again later.
async fn declare_gone<N: Net>(
    raft: Raft<TypeConfig>,
    peers: Peers<N>,
    queue: Arc<ProposalQueue>,
    clock: Arc<dyn Clock>,
    after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut declared: BTreeSet<u64> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(GONE_PERIOD) => {}
            _ = stop.changed() => return,
        }
        let metrics = raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            declared.clear();
            continue;
        }
        let members: Vec<u64> = metrics
            .membership_config
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != metrics.id)
            .collect();
        for node in members {
            let silent = peers.silent_for(node).is_some_and(|s| s >= after);
            if !silent {
                declared.remove(&node);
                continue;
            }
            if declared.insert(node) {
                tracing::warn!(node, "node silent for {after:?}: declaring it gone");
                queue.push(vec![Proposal {
                    commands: vec![Command::NodeDown {
                        node: NodeId::from(node),
                        incarnation: Incarnation::MAX,
                        now_ms: clock.unix_ms(),
                    }],
                    origin: None,
                    from: None,
                }]);
            }
        }
    }
}

/// Pause between attempts to join.
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// Asks `target` (and then the leader it names) to add this node, until it is a member.
async fn join_cluster<N: Net>(
    raft: Raft<TypeConfig>,
    peers: Peers<N>,
    target: String,
    advertise: String,
    mut stop: watch::Receiver<bool>,
) {
    const TARGET: u64 = crate::cluster::UNKNOWN_NODE;
    let me = peers.me();
    let mut ask = target.clone();
    loop {
        let member = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == me);
        if member || *stop.borrow() {
            return;
        }
        // The node to ask is not in the address book under an id yet: a placeholder id.
        peers.set_addr(TARGET, &ask);
        let outcome = match peers.client(TARGET) {
            Some(mut client) => {
                let mut request = tonic::Request::new(JoinRequest {
                    node_id: me,
                    addr: advertise.clone(),
                });
                request.set_timeout(JOIN_TIMEOUT);
                tokio::time::timeout(JOIN_TIMEOUT, client.join(request)).await
            }
            None => return,
        };
        match outcome {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                if reply.ok {
                    tracing::info!(leader = reply.leader_id, "joined the cluster");
                    return;
                }
                tracing::info!(error = %reply.error, "join refused");
                ask = if reply.leader_addr.is_empty() {
                    target.clone()
                } else {
                    reply.leader_addr
                };
            }
            Ok(Err(status)) => tracing::info!(%status, %ask, "join failed"),
            Err(_) => tracing::info!(%ask, "join timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(JOIN_RETRY) => {}
            _ = stop.changed() => return,
        }
    }
}
