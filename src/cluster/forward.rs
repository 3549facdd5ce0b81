//! The fast path between nodes: publishes a node sends to another for the sessions that
//! node serves without the log (DESIGN §2).

use std::sync::Arc;

use crate::state::{Message, SharedKey};

/// Takes publishes for other nodes. Must not block: it runs under the broker's lock.
/// Delivery is best effort, as the fast path's is (QoS 0, and sessions that end with their
/// connection): a bounded queue per peer drops what does not fit, and counts it.
pub trait Forwarder: Send + Sync + 'static {
    /// Queues `message` for `node`, which serves the shared groups `groups` of its topic.
    fn forward(&self, node: u64, message: Arc<Message>, groups: Vec<SharedKey>);
}

/// The forwarder of a node with no peers.
#[derive(Debug, Default)]
pub struct NoForwarder;

impl Forwarder for NoForwarder {
    fn forward(&self, node: u64, _message: Arc<Message>, _groups: Vec<SharedKey>) {
        tracing::debug!(node, "no route to another node: publish not forwarded");
    }
}

/// Publishes queued for one peer beyond which new ones are dropped (and counted).
pub const FORWARD_QUEUE_MAX: usize = 10_000;
/// Most publishes in one message of the stream to a peer.
const FORWARD_BATCH_MAX: usize = 256;
/// A peer that has not taken a message of the stream for this long is reconnected.
const FORWARD_STALL: std::time::Duration = std::time::Duration::from_secs(5);
/// Pause before reconnecting the stream to a peer.
const FORWARD_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// The forwarder of a cluster node: a bounded queue and a streaming call per peer.
pub struct GrpcForwarder<N: crate::net::Net> {
    peers: super::peers::Peers<N>,
    queues: std::sync::Mutex<
        std::collections::BTreeMap<u64, tokio::sync::mpsc::Sender<super::rpc::Forwarded>>,
    >,
    /// Publishes dropped because a peer's queue was full.
    pub dropped: std::sync::atomic::AtomicU64,
}

impl<N: crate::net::Net> GrpcForwarder<N> {
    pub fn new(peers: super::peers::Peers<N>) -> GrpcForwarder<N> {
        GrpcForwarder {
            peers,
            queues: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<N: crate::net::Net> Forwarder for GrpcForwarder<N> {
    fn forward(&self, node: u64, message: Arc<Message>, groups: Vec<SharedKey>) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let queue = queues.entry(node).or_insert_with(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(FORWARD_QUEUE_MAX);
            tokio::spawn(stream_to_peer(self.peers.clone(), node, rx));
            tx
        });
        let publish = super::rpc::Forwarded { message, groups };
        if queue.try_send(publish).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Streams the publishes queued for `node` to it, reconnecting after a failure. What was in
/// flight when a stream broke is lost (best effort, as the fast path is).
async fn stream_to_peer<N: crate::net::Net>(
    peers: super::peers::Peers<N>,
    node: u64,
    mut queue: tokio::sync::mpsc::Receiver<super::rpc::Forwarded>,
) {
    use crate::grpc::proto::Blob;
    loop {
        let Some(mut client) = peers.client(node) else {
            tokio::time::sleep(FORWARD_RETRY).await;
            if queue.is_closed() {
                return;
            }
            continue;
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Blob>(64);
        let outgoing = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|blob| (blob, rx))
        });
        let mut call = tokio::spawn(async move { client.forward(outgoing).await });
        loop {
            let first = tokio::select! {
                first = queue.recv() => first,
                _ = &mut call => break,
            };
            let Some(first) = first else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < FORWARD_BATCH_MAX {
                match queue.try_recv() {
                    Ok(publish) => batch.push(publish),
                    Err(_) => break,
                }
            }
            let blob = Blob {
                data: postcard::to_allocvec(&batch).unwrap_or_default().into(),
            };
            match tokio::time::timeout(FORWARD_STALL, tx.send(blob)).await {
                Ok(Ok(())) => peers.record(node, true),
                _ => {
                    peers.record(node, false);
                    break;
                }
            }
        }
        call.abort();
        tokio::time::sleep(FORWARD_RETRY).await;
    }
}
