//! Compiles `proto/cluster.proto` into the gRPC client, server and messages of `keel::grpc`.
//!
//! protox parses the file in pure Rust, so building Keel needs no `protoc` (nor does the
//! fuzz workspace, which builds the library too).

use std::io;

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    let descriptors =
        protox::compile(["proto/cluster.proto"], ["proto"]).map_err(io::Error::other)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The generated `ClusterClient::connect` would dial with tonic's own TCP connector,
        // past the `Net` seam; callers build channels with `keel::grpc::connect` instead.
        .build_transport(false)
        // Payloads as `bytes::Bytes`: a received blob is sliced out of the HTTP/2 frame
        // without a copy.
        .bytes(".keel.cluster")
        .compile_fds(descriptors)
}
