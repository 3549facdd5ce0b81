//! [`GrpcError`]: what can go wrong between two nodes, and [`with_deadline`].

use std::future::Future;
use std::time::Duration;

/// An error of the gRPC layer.
///
/// None of these is fatal to the node: a peer that cannot be reached or that fails a call is
/// the normal weather of a cluster, and the caller (Raft, forwarding, join) retries or treats
/// the outcome as unknown.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// `addr` does not make an endpoint URI (`http://{addr}`).
    #[error("invalid peer address {addr:?}: {source}")]
    InvalidAddress {
        addr: String,
        source: tonic::transport::Error,
    },

    /// The first connection to `addr` failed or did not complete within the connect timeout.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },

    /// The call failed: the peer answered with an error status, or the transport failed
    /// (the status code is then `Unavailable`, `Cancelled` or `DeadlineExceeded`).
    // Boxed: a `Status` is over 150 bytes, and every `Result` of this layer would pay for it.
    #[error("call failed: {0}")]
    Rpc(Box<tonic::Status>),

    /// The call did not finish within the caller's deadline. Its outcome is unknown: the
    /// peer may have received and applied it.
    #[error("call did not finish within {deadline_ms} ms")]
    DeadlineExceeded { deadline_ms: u64 },

    /// The server stopped with an error (its HTTP/2 machinery failed, not one connection).
    #[error("gRPC server failed: {0}")]
    Serve(tonic::transport::Error),
}

impl From<tonic::Status> for GrpcError {
    fn from(status: tonic::Status) -> Self {
        GrpcError::Rpc(Box::new(status))
    }
}

/// Runs one call (`client.propose(request)` and the like) with a deadline that covers
/// everything, including the wait for the channel to dial a connection, and returns the
/// response's message.
///
/// A call that misses its deadline is dropped, which cancels it (an HTTP/2 `RST_STREAM`
/// if it was sent); its outcome is unknown, as [`GrpcError::DeadlineExceeded`] says.
pub async fn with_deadline<T, F>(deadline: Duration, call: F) -> Result<T, GrpcError>
where
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status.into()),
        Err(_elapsed) => Err(GrpcError::DeadlineExceeded {
            deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}
