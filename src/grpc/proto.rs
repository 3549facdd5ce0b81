//! The code generated from `proto/cluster.proto` by `build.rs`: the messages ([`Blob`],
//! [`JoinRequest`], [`JoinReply`]), the client ([`cluster_client::ClusterClient`]) and the
//! server trait and adapter ([`cluster_server::Cluster`], [`cluster_server::ClusterServer`]).
//!
//! The client's transport-dialling constructor is not generated: build channels with
//! [`connect`](super::connect) so they go through the `Net` seam.

// Generated code follows prost's and tonic's style, not ours. Clippy 1.95 finds nothing in
// it, but a newer clippy (or generator) must not fail the build over code we do not write.
#![allow(clippy::all)]

tonic::include_proto!("keel.cluster");
