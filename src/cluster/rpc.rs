//! The node-to-node RPCs over gRPC (`proto/cluster.proto`): the client side of Raft's
//! network, of forwarding batches to the leader and of reads of its commit index, and the
//! service every node serves. Payloads are postcard encodings of openraft's and Keel's own
//! types, carried as opaque bytes.
//!
//! Every call has a deadline: a partition drops bytes for good in the simulator (and for
//! minutes on real networks), and a call that never returns would stall its caller.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use crate::grpc::proto::cluster_client::ClusterClient;
use crate::grpc::proto::cluster_server::Cluster;
use crate::grpc::proto::{Blob, JoinReply, JoinRequest};
use crate::grpc::{PeerInfo, PeerRefusals, Refusal};
use crate::net::Net;
use crate::state::{Message, SharedKey};

use super::change::{ChangeError, MembershipChanger, PeerProbe, ProbeFuture};
use super::handover::{self, ElectionRequest, ElectionStarter};
use super::peers::Peers;
use super::proposer::{LeaderError, LeaderLink, WriteHold};
use super::types::{Batch, TypeConfig};

/// Deadline of a forwarded batch: the leader answers once it is committed.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of a read of the leader's commit index.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of a join request (the leader catches the new node up before it answers).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of the leader's check of who answers at a joining node's address (connecting
/// included).
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline of a stopping leader's request that a peer stand for election.
const START_ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

fn encode<T: Serialize>(value: &T) -> Blob {
    Blob {
        data: postcard::to_allocvec(value).unwrap_or_default().into(),
    }
}

fn decode<T: DeserializeOwned>(blob: &Blob) -> Result<T, Status> {
    postcard::from_bytes(&blob.data)
        .map_err(|e| Status::invalid_argument(format!("undecodable payload: {e}")))
}

/// One publish sent to another node on the fast path.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Forwarded {
    pub message: Arc<Message>,
    /// The shared groups of its topic that the receiving node serves.
    pub groups: Vec<SharedKey>,
}

/// What a forwarded batch's call answers: committed, or this node does not lead.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
enum ProposeReply {
    Committed,
    NotLeader,
}

// ---------------------------------------------------------------------------------------------
// Client side

/// openraft's network: one [`PeerClient`] per target, over the node's [`Peers`].
#[derive(Clone)]
pub struct GrpcNetwork<N: Net> {
    peers: Peers<N>,
}

impl<N: Net> GrpcNetwork<N> {
    pub fn new(peers: Peers<N>) -> GrpcNetwork<N> {
        GrpcNetwork { peers }
    }
}

impl<N: Net> RaftNetworkFactory<TypeConfig> for GrpcNetwork<N> {
    type Network = PeerClient<N>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient<N> {
        self.peers.set_addr(target, &node.addr);
        PeerClient {
            peers: self.peers.clone(),
            target,
        }
    }
}

/// The Raft RPCs to one peer.
pub struct PeerClient<N: Net> {
    peers: Peers<N>,
    target: u64,
}

fn unreachable<E: std::error::Error>(why: String) -> RPCError<u64, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why)))
}

impl<N: Net> PeerClient<N> {
    /// Calls `target` with `request`, within `timeout`; a failure is `Unreachable` (openraft
    /// backs off and retries), an undecodable answer a network error.
    async fn call<Req, Resp, E>(
        &self,
        method: Method,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error,
    {
        let target = self.target;
        let Some(mut client) = self.peers.client(target) else {
            return Err(unreachable(format!("no address for node {target}")));
        };
        let mut req = Request::new(encode(request));
        req.set_timeout(timeout);
        let call = async {
            match method {
                Method::AppendEntries => client.append_entries(req).await,
                Method::Vote => client.vote(req).await,
                Method::InstallSnapshot => client.install_snapshot(req).await,
            }
        };
        let answer = tokio::time::timeout(timeout, call).await;
        let blob = match answer {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                self.peers.record(target, false);
                return Err(unreachable(format!("node {target}: {status}")));
            }
            Err(_) => {
                self.peers.record(target, false);
                return Err(unreachable(format!("node {target}: timed out")));
            }
        };
        self.peers.record(target, true);
        postcard::from_bytes(&blob.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))
    }
}

#[derive(Clone, Copy)]
enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl<N: Net> RaftNetwork<TypeConfig> for PeerClient<N> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let reply: Result<AppendEntriesResponse<u64>, RaftError<u64>> = self
            .call(Method::AppendEntries, &rpc, option.hard_ttl())
            .await?;
        reply.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let reply: Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> =
            self.call(Method::InstallSnapshot, &rpc, option.hard_ttl())
                .await?;
        reply.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let reply: Result<VoteResponse<u64>, RaftError<u64>> =
            self.call(Method::Vote, &rpc, option.hard_ttl()).await?;
        reply.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e)))
    }
}

/// Forwards batches and reads to the leader over gRPC.
pub struct GrpcLink<N: Net> {
    peers: Peers<N>,
}

impl<N: Net> GrpcLink<N> {
    pub fn new(peers: Peers<N>) -> GrpcLink<N> {
        GrpcLink { peers }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<N: Net> LeaderLink for GrpcLink<N> {
    fn propose(&self, leader: u64, batch: Batch) -> BoxFuture<Result<(), LeaderError>> {
        let peers = self.peers.clone();
        Box::pin(async move {
            let blob = call_leader(
                &peers,
                leader,
                PROPOSE_TIMEOUT,
                |mut client, req| async move { client.propose(req).await },
                encode(&batch),
            )
            .await?;
            match decode::<ProposeReply>(&blob) {
                Ok(ProposeReply::Committed) => Ok(()),
                Ok(ProposeReply::NotLeader) => Err(LeaderError::NotLeader(leader)),
                Err(status) => Err(LeaderError::Unreachable(leader, status.to_string())),
            }
        })
    }

    fn read_index(&self, leader: u64) -> BoxFuture<Result<u64, LeaderError>> {
        let peers = self.peers.clone();
        Box::pin(async move {
            let blob = call_leader(
                &peers,
                leader,
                READ_INDEX_TIMEOUT,
                |mut client, req| async move { client.read_index(req).await },
                Blob::default(),
            )
            .await?;
            match decode::<Option<u64>>(&blob) {
                Ok(Some(index)) => Ok(index),
                Ok(None) => Err(LeaderError::NotLeader(leader)),
                Err(status) => Err(LeaderError::Unreachable(leader, status.to_string())),
            }
        })
    }
}

/// Calls `leader` with `body` through `call`, within `timeout`.
async fn call_leader<N, F, Fut>(
    peers: &Peers<N>,
    leader: u64,
    timeout: Duration,
    call: F,
    body: Blob,
) -> Result<Blob, LeaderError>
where
    N: Net,
    F: FnOnce(ClusterClient<tonic::transport::Channel>, Request<Blob>) -> Fut,
    Fut: Future<Output = Result<Response<Blob>, Status>>,
{
    let Some(client) = peers.client(leader) else {
        return Err(LeaderError::Unreachable(leader, "no address".into()));
    };
    let mut req = Request::new(body);
    req.set_timeout(timeout);
    match tokio::time::timeout(timeout, call(client, req)).await {
        Ok(Ok(response)) => {
            peers.record(leader, true);
            Ok(response.into_inner())
        }
        Ok(Err(status)) => {
            peers.record(leader, false);
            Err(LeaderError::Unreachable(leader, status.to_string()))
        }
        Err(_) => {
            peers.record(leader, false);
            Err(LeaderError::Unreachable(leader, "timed out".into()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server side

/// Where forwarded publishes go on the receiving node (the broker behind its lock).
pub trait ForwardedSink: Send + Sync + 'static {
    fn forwarded(&self, publish: Forwarded);
}

/// The service every node serves to its peers.
///
/// With cluster TLS every connection carries the node id its peer's certificate names
/// ([`PeerInfo`]), and calls are checked against it: a Raft RPC or a join must claim that
/// node, and proposals, reads and forwarded publishes must come from a member. Without TLS
/// (`insecure`) nothing can be checked.
pub struct ClusterService {
    me: u64,
    raft: Raft<TypeConfig>,
    sink: Arc<dyn ForwardedSink>,
    changer: Arc<MembershipChanger>,
    refusals: Arc<PeerRefusals>,
    /// Held while this node hands its leadership over: forwarded batches are then refused
    /// as if it did not lead, and their senders try again with the next leader.
    hold: Arc<WriteHold>,
}

impl ClusterService {
    pub fn new(
        raft: Raft<TypeConfig>,
        sink: Arc<dyn ForwardedSink>,
        changer: Arc<MembershipChanger>,
        refusals: Arc<PeerRefusals>,
        hold: Arc<WriteHold>,
    ) -> ClusterService {
        let me = raft.metrics().borrow().id;
        ClusterService {
            me,
            raft,
            sink,
            changer,
            refusals,
            hold,
        }
    }

    /// Refuses a call that claims to come from node `claimed` over a connection whose
    /// certificate names another.
    fn check_claim<T>(&self, request: &Request<T>, claimed: Option<u64>) -> Result<(), Status> {
        let Some(info) = request.extensions().get::<PeerInfo>() else {
            return Ok(());
        };
        match (info.node, claimed) {
            (Some(node), Some(claimed)) if node == claimed => Ok(()),
            (Some(node), claimed) => {
                let detail = format!("a call as node {claimed:?} over node {node}'s certificate");
                Err(self.refuse(info, &detail))
            }
            (None, _) => Ok(()),
        }
    }

    /// Refuses a call from a node outside the membership.
    fn check_member<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(info) = request.extensions().get::<PeerInfo>() else {
            return Ok(());
        };
        let Some(node) = info.node else {
            return Ok(());
        };
        let metrics = self.raft.metrics();
        let member = metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&node)
            .is_some();
        if member {
            return Ok(());
        }
        Err(self.refuse(info, &format!("node {node} is not a member")))
    }

    fn refuse(&self, info: &PeerInfo, detail: &str) -> Status {
        self.refusals
            .refuse(Refusal::WrongNode, Some(info.remote_addr), detail);
        Status::permission_denied(detail.to_owned())
    }
}

fn reply<T: Serialize>(value: &T) -> Result<Response<Blob>, Status> {
    Ok(Response::new(encode(value)))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn append_entries(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(request.get_ref())?;
        self.check_claim(&request, rpc.vote.leader_id().voted_for())?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc: VoteRequest<u64> = decode(request.get_ref())?;
        self.check_claim(&request, rpc.vote.leader_id().voted_for())?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref())?;
        self.check_claim(&request, rpc.vote.leader_id().voted_for())?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn propose(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.check_member(&request)?;
        let batch: Batch = decode(request.get_ref())?;
        if self.hold.is_held() {
            return reply(&ProposeReply::NotLeader);
        }
        match self.raft.client_write(batch).await {
            Ok(_) => reply(&ProposeReply::Committed),
            Err(RaftError::APIError(_)) => reply(&ProposeReply::NotLeader),
            Err(RaftError::Fatal(fatal)) => Err(Status::unavailable(fatal.to_string())),
        }
    }

    async fn read_index(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.check_member(&request)?;
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => reply(&Some(read.map_or(0, |id| id.index))),
            Err(RaftError::APIError(_)) => reply(&None::<u64>),
            Err(RaftError::Fatal(fatal)) => Err(Status::unavailable(fatal.to_string())),
        }
    }

    async fn forward(&self, request: Request<Streaming<Blob>>) -> Result<Response<Blob>, Status> {
        self.check_member(&request)?;
        let mut stream = request.into_inner();
        while let Some(blob) = stream.message().await? {
            let publishes: Vec<Forwarded> = decode(&blob)?;
            for publish in publishes {
                self.sink.forwarded(publish);
            }
        }
        Ok(Response::new(Blob::default()))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        self.check_claim(&request, Some(request.get_ref().node_id))?;
        let JoinRequest { node_id, addr } = request.into_inner();
        let reply = match self.changer.add(node_id, &addr).await {
            Ok(_) => JoinReply {
                ok: true,
                leader_id: self.me,
                ..JoinReply::default()
            },
            Err(ChangeError::NotLeader {
                leader_id,
                leader_addr,
            }) => JoinReply {
                ok: false,
                error: "not the leader".into(),
                leader_id: leader_id.unwrap_or(0),
                leader_addr: leader_addr.unwrap_or_default(),
            },
            Err(error) => JoinReply {
                ok: false,
                error: error.to_string(),
                ..JoinReply::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn identify(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        reply(&self.me)
    }

    async fn start_election(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        let election: ElectionRequest = decode(request.get_ref())?;
        self.check_claim(&request, Some(election.leader))?;
        let obeys = handover::obeys(&self.raft.metrics().borrow(), &election);
        if !obeys {
            return reply(&false);
        }
        tracing::info!(
            leader = election.leader,
            "standing for election: the leader stops"
        );
        match self.raft.trigger().elect().await {
            Ok(()) => reply(&true),
            Err(fatal) => Err(Status::unavailable(fatal.to_string())),
        }
    }
}

impl<N: Net> ElectionStarter for Peers<N> {
    fn start_election(
        &self,
        node: u64,
        election: ElectionRequest,
    ) -> ProbeFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            let mut client = self
                .client(node)
                .ok_or_else(|| format!("no address for node {node}"))?;
            let mut request = Request::new(encode(&election));
            request.set_timeout(START_ELECTION_TIMEOUT);
            let call = async {
                let answer = (client.start_election(request).await).map_err(|s| s.to_string())?;
                decode::<bool>(answer.get_ref()).map_err(|s| s.to_string())
            };
            within(START_ELECTION_TIMEOUT, call).await
        })
    }
}

impl<N: Net> PeerProbe for Peers<N> {
    fn identify<'a>(&'a self, addr: &'a str, node: u64) -> ProbeFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let call = async {
                let mut client = self.fresh_client(addr, node).await?;
                let mut request = Request::new(Blob::default());
                request.set_timeout(IDENTIFY_TIMEOUT);
                let answer = client.identify(request).await.map_err(|s| s.to_string())?;
                decode::<u64>(answer.get_ref()).map_err(|s| s.to_string())
            };
            within(IDENTIFY_TIMEOUT, call).await
        })
    }

    fn silent_for(&self, node: u64) -> Option<Duration> {
        Peers::silent_for(self, node)
    }
}

/// `call` given up after `limit`: the gRPC deadline travels with the request, and this also
/// bounds connecting and a peer that never answers.
async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}
