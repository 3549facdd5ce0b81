//! The gRPC plumbing on real TCP: a trivial `Cluster` service served on a [`TokioNet`]
//! listener and called through a channel dialled with the same seam.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status, Streaming};

use super::proto::cluster_server::Cluster;
use super::proto::{Blob, JoinReply, JoinRequest};
use super::*;
use crate::net::{Listener, Net, TokioNet};

/// A `Cluster` that echoes proposals, counts forwarded blobs and answers nothing else. Shared
/// with the simulator tests, which run it on `SimNet`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct EchoCluster;

/// What a `Forward` stream's reply carries: how many blobs arrived and how many bytes they held.
pub(super) fn forward_tally(reply: &Blob) -> (u64, u64) {
    let (count, bytes) = reply.data.split_at(8);
    let count = u64::from_be_bytes(count.try_into().expect("8 bytes of count"));
    let bytes = u64::from_be_bytes(bytes.try_into().expect("8 bytes of byte count"));
    (count, bytes)
}

#[tonic::async_trait]
impl Cluster for EchoCluster {
    async fn append_entries(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Err(Status::unimplemented("append_entries"))
    }

    async fn vote(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Err(Status::unimplemented("vote"))
    }

    async fn install_snapshot(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Err(Status::unimplemented("install_snapshot"))
    }

    async fn propose(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn read_index(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Err(Status::unimplemented("read_index"))
    }

    async fn forward(&self, request: Request<Streaming<Blob>>) -> Result<Response<Blob>, Status> {
        let mut blobs = request.into_inner();
        let mut count = 0u64;
        let mut bytes = 0u64;
        while let Some(blob) = blobs.message().await? {
            count += 1;
            bytes += blob.data.len() as u64;
        }
        let mut tally = Vec::with_capacity(16);
        tally.extend_from_slice(&count.to_be_bytes());
        tally.extend_from_slice(&bytes.to_be_bytes());
        Ok(Response::new(Blob { data: tally.into() }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let join = request.into_inner();
        Ok(Response::new(JoinReply {
            ok: false,
            error: "not the leader".to_owned(),
            leader_id: join.node_id + 1,
            leader_addr: join.addr,
        }))
    }

    async fn identify(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Err(Status::unimplemented("identify"))
    }

    async fn start_election(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Err(Status::unimplemented("start_election"))
    }
}

/// A blob holding `n` as its bytes, so every forwarded message differs.
pub(super) fn numbered_blob(n: u32) -> Blob {
    Blob {
        data: Bytes::copy_from_slice(&n.to_be_bytes()),
    }
}

/// Serves [`EchoCluster`] on loopback port 0; returns its address, the shutdown trigger and
/// the server task.
async fn serve_echo() -> (
    String,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), GrpcError>>,
) {
    let listener = TokioNet.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        // A dropped sender stops the server too.
        let _ = stopped.await;
    };
    let server = tokio::spawn(async move {
        serve(listener, EchoCluster, &ServerConfig::default(), shutdown).await
    });
    (addr, stop, server)
}

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn propose_echoes_and_a_forward_stream_of_1000_blobs_is_counted() {
    let (addr, stop, server) = serve_echo().await;
    let config = ChannelConfig::default();
    let channel = connect(TokioNet, addr, &config).await.unwrap();
    let mut client = cluster_client(channel, &config);

    let proposal = Blob {
        data: Bytes::from_static(b"a batch of proposals"),
    };
    let echoed = with_deadline(DEADLINE, client.propose(proposal.clone()))
        .await
        .unwrap();
    assert_eq!(echoed, proposal);

    let blobs = stream::iter((0..1000).map(numbered_blob));
    let tally = with_deadline(DEADLINE, client.forward(blobs))
        .await
        .unwrap();
    assert_eq!(forward_tally(&tally), (1000, 4000));

    let reply = with_deadline(
        DEADLINE,
        client.join(JoinRequest {
            node_id: 4,
            addr: "node4:7000".to_owned(),
        }),
    )
    .await
    .unwrap();
    assert!(!reply.ok);
    assert_eq!(
        (reply.leader_id, reply.leader_addr.as_str()),
        (5, "node4:7000")
    );

    let unimplemented = with_deadline(DEADLINE, client.vote(Blob::default())).await;
    match unimplemented {
        Err(GrpcError::Rpc(status)) => assert_eq!(status.code(), tonic::Code::Unimplemented),
        other => panic!("vote should be unimplemented, got {other:?}"),
    }

    drop(client);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_lazy_channel_dials_on_its_first_call() {
    let (addr, stop, server) = serve_echo().await;
    let config = ChannelConfig::default();
    let channel = connect_lazy(TokioNet, addr, &config).unwrap();
    let mut client = cluster_client(channel, &config);
    let blob = numbered_blob(7);
    let echoed = with_deadline(DEADLINE, client.propose(blob.clone()))
        .await
        .unwrap();
    assert_eq!(echoed, blob);
    drop(client);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn connect_to_a_closed_port_fails_with_connect() {
    // Bind and drop to find a port nobody listens on.
    let listener = TokioNet.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let result = connect(TokioNet, addr, &ChannelConfig::default()).await;
    assert!(
        matches!(result, Err(GrpcError::Connect { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_address_that_makes_no_uri_is_rejected() {
    let result = connect_lazy(
        TokioNet,
        "not an address".to_owned(),
        &ChannelConfig::default(),
    );
    assert!(
        matches!(result, Err(GrpcError::InvalidAddress { .. })),
        "{result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_deadline_reports_a_call_that_never_finishes() {
    let never = std::future::pending::<Result<Response<Blob>, Status>>();
    let result = with_deadline(Duration::from_millis(1500), never).await;
    assert!(
        matches!(
            result,
            Err(GrpcError::DeadlineExceeded { deadline_ms: 1500 })
        ),
        "{result:?}"
    );
}
