//! [`ServeError`]: why a node could not start, or stopped with an error.

use std::io;

use crate::auth::{AuthError, NodeAuthError};
use crate::transport::TlsConfigError;

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    NodeAuth(#[from] NodeAuthError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The count of the node's runs in its store is not a number: the store is damaged.
    #[error("the node's run counter is corrupt")]
    CorruptRunCounter,
    /// The configuration asks for RocksDB and this build has none.
    #[error("this build has no RocksDB (feature `rocksdb`): set durability.store = \"memory\"")]
    NoRocksDb,
    /// Starting on the data directory failed.
    #[error("data directory {dir}: {error}")]
    DataDir {
        dir: String,
        #[source]
        error: Box<ServeError>,
    },
    #[error(transparent)]
    Node(#[from] crate::cluster::NodeError),
    #[error(transparent)]
    PeerTls(#[from] crate::grpc::PeerTlsError),
    #[error("{0}")]
    Planted(String),
}
