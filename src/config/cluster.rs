//! `[cluster]` and `[cluster.tls]`: Raft membership and the node's cluster listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ensure, Config, HostPort, InvalidConfig, Peer};

/// `[cluster]`: Raft membership and the node's cluster listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Address the node listens on for its peers (Raft and forwarding RPCs). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The initial voters, this node included, as `"ID@HOST:PORT"`. Empty (the default)
    /// runs a cluster of one. Excludes `join`.
    pub peers: Vec<Peer>,
    /// `"HOST:PORT"` of a node of a running cluster to join, instead of starting one with
    /// `peers`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<HostPort>,
    /// Where the other nodes reach this one. Default: this node's entry in `peers`, else
    /// `listen` (which must then not be an unspecified address such as 0.0.0.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<HostPort>,
    /// A node that has not answered the leader for this long is declared gone: the clients
    /// it served are disconnected in the cluster's state (their wills published, their
    /// expiry started) so that they can resume elsewhere. Default 30.
    pub node_down_secs: u32,
    /// Serve the cluster listener without TLS (any host that reaches it can join and call
    /// its RPCs). Needed for a cluster listener without `tls`. Default `false`.
    pub insecure: bool,
    /// Mutual TLS between the nodes; needed with a cluster listener unless `insecure`.
    /// Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTlsConfig>,
}

/// `[cluster.tls]`: the cluster CA and this node's certificate (`keel cert`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsConfig {
    /// PEM file with the cluster CA's certificate. Required.
    pub ca: PathBuf,
    /// PEM file with this node's certificate, which names its node id. Required.
    pub cert: PathBuf,
    /// PEM file with that certificate's private key. Required.
    pub key: PathBuf,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            listen: None,
            peers: Vec::new(),
            join: None,
            advertise: None,
            node_down_secs: 30,
            insecure: false,
            tls: None,
        }
    }
}

impl ClusterConfig {
    /// Whether the node runs in a cluster (has a cluster listener).
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    /// Where the other nodes reach `node_id`, if it can be told.
    pub fn advertised(&self, node_id: u64) -> Option<String> {
        if let Some(addr) = &self.advertise {
            return Some(addr.to_string());
        }
        if let Some(peer) = self.peers.iter().find(|p| p.id == node_id) {
            return Some(peer.addr.to_string());
        }
        self.listen
            .filter(|a| !a.ip().is_unspecified())
            .map(|a| a.to_string())
    }
}

impl Config {
    /// `[cluster]`: a consistent membership, a listener and an address peers can reach, and
    /// mutual TLS unless explicitly insecure.
    pub(super) fn validate_cluster(&self) -> Result<(), InvalidConfig> {
        let cluster = &self.cluster;
        ensure(
            cluster.peers.is_empty() || cluster.join.is_none(),
            "cluster.join",
            || "excludes cluster.peers: either start a cluster or join one".to_owned(),
        )?;
        for (i, peer) in cluster.peers.iter().enumerate() {
            let earlier = &cluster.peers[..i];
            ensure(
                !earlier.iter().any(|p| p.id == peer.id),
                "cluster.peers",
                || format!("node id {} is listed twice", peer.id),
            )?;
            ensure(
                !earlier.iter().any(|p| p.addr == peer.addr),
                "cluster.peers",
                || format!("address {} is listed twice", peer.addr),
            )?;
        }
        ensure(
            cluster.peers.is_empty() || cluster.peers.iter().any(|p| p.id == self.node_id),
            "cluster.peers",
            || format!("does not list this node (node_id = {})", self.node_id),
        )?;
        let needs_listener = !cluster.peers.is_empty() || cluster.join.is_some();
        ensure(
            !needs_listener || cluster.listen.is_some(),
            "cluster.listen",
            || "is needed with cluster.peers or cluster.join".to_owned(),
        )?;
        ensure(
            !cluster.enabled() || cluster.advertised(self.node_id).is_some(),
            "cluster.advertise",
            || {
                "is needed: cluster.listen is an unspecified address and cluster.peers does \
                 not list this node"
                    .to_owned()
            },
        )?;
        ensure(
            !cluster.enabled() || cluster.tls.is_some() || cluster.insecure,
            "cluster.tls",
            || {
                "is needed with a cluster listener: peers are authenticated by certificates \
                 of the cluster CA (make them with `keel cert`); set cluster.insecure = true \
                 to run without, letting any host that reaches the listener join"
                    .to_owned()
            },
        )?;
        ensure(
            cluster.tls.is_none() || !cluster.insecure,
            "cluster.insecure",
            || "contradicts [cluster.tls]: keep one".to_owned(),
        )?;
        if let Some(tls) = &cluster.tls {
            for (field, path) in [
                ("cluster.tls.ca", &tls.ca),
                ("cluster.tls.cert", &tls.cert),
                ("cluster.tls.key", &tls.key),
            ] {
                ensure(!path.as_os_str().is_empty(), field, || {
                    "must not be empty".to_owned()
                })?;
            }
        }
        ensure(cluster.node_down_secs > 0, "cluster.node_down_secs", || {
            "must be at least 1".to_owned()
        })
    }
}
