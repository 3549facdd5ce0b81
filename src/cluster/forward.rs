//! The fast path between nodes: publishes a node sends to another for the sessions that
//! node serves without the log (docs/design.md §2).

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
/// Deadline of one call carrying publishes to a peer.
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Pause after a failed call before the next.
const FORWARD_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// The forwarder of a cluster node: a bounded queue and a sending task per peer.
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

/// Sends the publishes queued for `node` to it, in order: whatever is queued when the
/// previous call returned goes in the next (one call at a time keeps the order; the queue
/// makes the batches). A call that fails or times out is not repeated: what it carried may
/// or may not have arrived, and the fast path delivers at most once.
async fn stream_to_peer<N: crate::net::Net>(
    peers: super::peers::Peers<N>,
    node: u64,
    mut queue: tokio::sync::mpsc::Receiver<super::rpc::Forwarded>,
) {
    use crate::grpc::proto::Blob;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < FORWARD_BATCH_MAX {
            match queue.try_recv() {
                Ok(publish) => batch.push(publish),
                Err(_) => break,
            }
        }
        let Some(mut client) = peers.client(node) else {
            tokio::time::sleep(FORWARD_RETRY).await;
            continue;
        };
        let blob = Blob {
            data: postcard::to_allocvec(&batch).unwrap_or_default().into(),
        };
        let mut request = tonic::Request::new(futures_util::stream::iter([blob]));
        request.set_timeout(FORWARD_TIMEOUT);
        match tokio::time::timeout(FORWARD_TIMEOUT, client.forward(request)).await {
            Ok(Ok(_)) => peers.record(node, true),
            _ => {
                peers.record(node, false);
                tracing::debug!(node, lost = batch.len(), "forwarding to a peer failed");
                tokio::time::sleep(FORWARD_RETRY).await;
            }
        }
    }
}
