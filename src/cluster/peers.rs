//! The address book of a node's peers, and the gRPC channel to each.
//!
//! Addresses come from the Raft membership (each member's `BasicNode::addr`, its
//! `--cluster-listen` address as it gave it when joining or in `--peers`), so the book follows
//! membership changes. Channels are made once per address and reused; tonic reconnects them
//! after a broken connection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;

use crate::grpc::proto::cluster_client::ClusterClient;
use crate::grpc::{cluster_client, connect, connect_lazy, ChannelConfig, PeerTarget, PeerTls};
use crate::net::Net;

/// Health of the link to one peer, as this node's calls found it.
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    /// When a call to the peer last succeeded (tokio time).
    last_ok: Option<tokio::time::Instant>,
    /// When this node first wanted to reach the peer.
    first_tried: Option<tokio::time::Instant>,
}

struct Book {
    addrs: BTreeMap<u64, String>,
    /// One channel per address and the node it must reach there (with cluster TLS, a
    /// channel checks that its peer is that node).
    channels: BTreeMap<(String, u64), Channel>,
    health: BTreeMap<u64, Health>,
}

/// The id under which a peer whose id is not known yet is put in the book (the member a
/// joining node was told of): its channel accepts any node of the cluster CA.
pub const UNKNOWN_NODE: u64 = u64::MAX;

/// The peers of one node. Cheap to clone.
#[derive(Clone)]
pub struct Peers<N: Net> {
    net: N,
    me: u64,
    config: Arc<ChannelConfig>,
    tls: Option<Arc<PeerTls>>,
    book: Arc<Mutex<Book>>,
}

impl<N: Net> Peers<N> {
    /// The book of node `me`, which reaches its peers over `tls` (plaintext without).
    pub fn new(
        net: N,
        me: u64,
        addrs: BTreeMap<u64, String>,
        tls: Option<Arc<PeerTls>>,
    ) -> Peers<N> {
        Peers {
            net,
            me,
            config: Arc::new(ChannelConfig::default()),
            tls,
            book: Arc::new(Mutex::new(Book {
                addrs,
                channels: BTreeMap::new(),
                health: BTreeMap::new(),
            })),
        }
    }

    pub fn me(&self) -> u64 {
        self.me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the address of `node` (from the membership).
    pub fn set_addr(&self, node: u64, addr: &str) {
        if addr.is_empty() {
            return;
        }
        let mut book = self.lock();
        if book.addrs.get(&node).map(String::as_str) != Some(addr) {
            book.addrs.insert(node, addr.to_string());
        }
    }

    pub fn addr(&self, node: u64) -> Option<String> {
        self.lock().addrs.get(&node).cloned()
    }

    /// Every known peer but this node.
    pub fn others(&self) -> Vec<u64> {
        let me = self.me;
        self.lock()
            .addrs
            .keys()
            .copied()
            .filter(|n| *n != me)
            .collect()
    }

    /// A client of `node`'s cluster service, if its address is known. The channel under it
    /// connects lazily, on first use, and is shared by every client of the peer.
    pub fn client(&self, node: u64) -> Option<ClusterClient<Channel>> {
        let mut book = self.lock();
        let addr = book.addrs.get(&node)?.clone();
        let key = (addr.clone(), node);
        let channel = match book.channels.get(&key) {
            Some(channel) => channel.clone(),
            None => match connect_lazy(self.net.clone(), addr, &self.config_for(node)) {
                Ok(channel) => {
                    book.channels.insert(key, channel.clone());
                    channel
                }
                Err(error) => {
                    tracing::warn!(node, %error, "bad address for a peer");
                    return None;
                }
            },
        };
        Some(cluster_client(channel, &self.config))
    }

    /// A client on a new connection to `addr`, made within the connect timeout: for a
    /// one-off call to a node that is not (yet) in the book.
    pub async fn fresh_client(
        &self,
        addr: &str,
        node: u64,
    ) -> Result<ClusterClient<Channel>, String> {
        let config = self.config_for(node);
        let channel = connect(self.net.clone(), addr.to_string(), &config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(cluster_client(channel, &config))
    }

    /// The channel settings for reaching `node` ([`UNKNOWN_NODE`]: any node of the cluster).
    fn config_for(&self, node: u64) -> ChannelConfig {
        let tls = self.tls.as_ref().map(|tls| PeerTarget {
            tls: tls.clone(),
            node: (node != UNKNOWN_NODE).then_some(node),
        });
        ChannelConfig {
            tls,
            ..(*self.config).clone()
        }
    }

    /// A call to `node` succeeded (or failed): for [`Peers::silent_for`].
    pub fn record(&self, node: u64, ok: bool) {
        let now = tokio::time::Instant::now();
        let mut book = self.lock();
        let health = book.health.entry(node).or_default();
        health.first_tried.get_or_insert(now);
        if ok {
            health.last_ok = Some(now);
        }
    }

    /// How long `node` has not answered this node's calls: since its last answer, or since
    /// this node first tried it. `None` before any call to it.
    pub fn silent_for(&self, node: u64) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        let book = self.lock();
        let health = book.health.get(&node)?;
        let since = health.last_ok.or(health.first_tried)?;
        Some(now.duration_since(since))
    }
}
