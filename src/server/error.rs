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
    #[error("{0}")]
    Storage(String),
    #[error(transparent)]
    Node(#[from] crate::cluster::NodeError),
    #[error(transparent)]
    PeerTls(#[from] crate::grpc::PeerTlsError),
    #[error("{0}")]
    Planted(String),
}
