//! Mutual TLS between the nodes: a cluster of three forms and serves over it, and a fourth
//! party is refused whatever it presents.

use super::*;

/// Writes `pair` as `name.pem` and `name.key` in `dir`; their paths.
fn write_pair(dir: &Path, name: &str, pair: &keel::cert::Pair) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    (cert, key)
}

/// A cluster CA and the certificates of nodes 1 to 3, on loopback, in `dir`.
struct ClusterCerts {
    ca: PathBuf,
    nodes: Vec<(PathBuf, PathBuf)>,
}

fn cluster_certs(dir: &Path) -> ClusterCerts {
    let ca = keel::cert::create_ca().unwrap();
    let (ca_pem, _) = write_pair(dir, "ca", &ca);
    let nodes = (1..=3)
        .map(|id| {
            let node = keel::cert::create_node(&ca, id, &["127.0.0.1".into()]).unwrap();
            write_pair(dir, &format!("node-{id}"), &node)
        })
        .collect();
    ClusterCerts { ca: ca_pem, nodes }
}

/// The configuration file of a node with cluster TLS.
fn tls_config(ca: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "{}[cluster.tls]\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\n",
        common::process::CONFIG
    )
}

/// Three nodes over mutual TLS, started and agreeing on a leader.
async fn tls_cluster(certs: &ClusterCerts) -> (Vec<KeelProcess>, Vec<SocketAddr>) {
    let cluster: Vec<SocketAddr> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = cluster
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("{}@{addr}", i + 1))
        .collect();
    let mut nodes: Vec<KeelProcess> = (0..3)
        .map(|i| {
            let node = KeelProcess::with(vec![
                "--node-id".into(),
                (i + 1).to_string(),
                "--cluster-listen".into(),
                cluster[i].to_string(),
                "--peers".into(),
                peers.join(","),
            ]);
            let (cert, key) = &certs.nodes[i];
            std::fs::write(node.config_file(), tls_config(&certs.ca, cert, key)).unwrap();
            node
        })
        .collect();
    for node in &mut nodes {
        node.spawn();
    }
    for node in &mut nodes {
        node.wait_ready().await;
    }
    for node in &nodes {
        let admin = node.http.unwrap();
        assert!(health_becomes(admin, 200).await, "{}", node.stderr_tail(30));
    }
    (nodes, cluster)
}

/// `keel_cluster_peer_refusals_total` of one reason on a node.
async fn refusals(admin: SocketAddr, reason: &str) -> u64 {
    let name = format!("keel_cluster_peer_refusals_total{{reason=\"{reason}\"}}");
    sample(admin, &name).await
}

/// A `Join` for node 4 at `addr` over `channel`; `Ok` with the reply, `Err` with why the call
/// failed.
async fn join_as_4(channel: tonic::transport::Channel) -> Result<JoinReply, String> {
    let mut client = cluster_client(channel, &ChannelConfig::default());
    let join = JoinRequest {
        node_id: 4,
        addr: "127.0.0.1:1".into(),
    };
    match tokio::time::timeout(REFUSAL_TIMEOUT, client.join(join)).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(status.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

/// A client channel to `addr` with the certificate `cert`/`key` (trusting `ca` for the server),
/// or why it could not connect.
async fn tls_channel(
    addr: SocketAddr,
    ca: &Path,
    cert: &Path,
    key: &Path,
    as_node: u64,
) -> Result<tonic::transport::Channel, String> {
    let files = PeerTlsFiles {
        ca: ca.to_path_buf(),
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    };
    let tls = PeerTls::load(&files, as_node, Default::default()).expect("usable files");
    let config = ChannelConfig {
        tls: Some(PeerTarget {
            tls: Arc::new(tls),
            node: None,
        }),
        ..ChannelConfig::default()
    };
    connect(TokioNet, addr.to_string(), &config)
        .await
        .map_err(|e| e.to_string())
}

/// A TLS handshake with `addr` that presents no certificate, then a read: the server must
/// close the connection (TLS 1.3 clients finish their side before the server checks).
async fn handshake_without_certificate(addr: SocketAddr, ca: &Path) -> bool {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return true;
    };
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(REFUSAL_TIMEOUT, tls.read(&mut buf)).await;
    matches!(read, Ok(Ok(0)) | Ok(Err(_)))
}

/// A cluster with mutual TLS forms and serves; a fourth party with a certificate of another
/// CA, with node 2's certificate claiming id 4, with no certificate, or in plaintext can
/// neither join nor call any RPC, and node 1 counts each refusal.
#[tokio::test]
async fn a_tls_cluster_serves_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let certs = cluster_certs(dir.path());
    let (mut nodes, cluster) = tls_cluster(&certs).await;
    let admin = nodes[0].http.unwrap();
    let target = cluster[0];

    // It serves: a message published on node 1 reaches a subscriber on node 3.
    let mut sub = RawClient::connected(nodes[2].addr, Protocol::V5, "sub").await;
    sub.subscribe(1, "tls/t", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connected(nodes[0].addr, Protocol::V5, "pub").await;
    publisher
        .send(Packet::Publish(raw::publish(
            "tls/t",
            QoS::AtLeastOnce,
            1,
            b"over tls",
        )))
        .await;
    let delivered = loop {
        match sub.expect_packet().await {
            Packet::Publish(publish) => break publish,
            _ => continue,
        }
    };
    assert_eq!(&delivered.payload[..], b"over tls");

    // Another CA: refused in the handshake.
    let rogue_ca = keel::cert::create_ca().unwrap();
    let rogue = keel::cert::create_node(&rogue_ca, 4, &["127.0.0.1".into()]).unwrap();
    let (rogue_cert, rogue_key) = write_pair(dir.path(), "rogue-4", &rogue);
    let before = refusals(admin, "unknown_ca").await;
    let channel = tls_channel(target, &certs.ca, &rogue_cert, &rogue_key, 4).await;
    let joined = match channel {
        Ok(channel) => join_as_4(channel).await,
        Err(why) => Err(why),
    };
    assert!(joined.is_err(), "{joined:?}");
    assert!(refusals(admin, "unknown_ca").await > before);

    // Node 2's certificate, claiming to be node 4: the connection is node 2's, the join and
    // a vote as node 4 are refused.
    let before = refusals(admin, "wrong_node").await;
    let (cert2, key2) = &certs.nodes[1];
    let channel = tls_channel(target, &certs.ca, cert2, key2, 2)
        .await
        .unwrap();
    let joined = join_as_4(channel.clone()).await;
    assert!(
        joined.as_ref().is_err_and(|e| e.contains("node 2")),
        "{joined:?}"
    );
    let vote = openraft::raft::VoteRequest::new(openraft::Vote::new(99, 4), None);
    let blob = Blob {
        data: postcard::to_allocvec(&vote).unwrap().into(),
    };
    let mut client = cluster_client(channel, &ChannelConfig::default());
    let voted = client.vote(blob).await;
    assert!(voted.is_err_and(|s| s.code() == tonic::Code::PermissionDenied));
    assert!(refusals(admin, "wrong_node").await >= before + 2);

    // No certificate.
    let before = refusals(admin, "no_certificate").await;
    assert!(handshake_without_certificate(target, &certs.ca).await);
    assert!(refusals(admin, "no_certificate").await > before);

    // Plaintext.
    let before = refusals(admin, "not_tls").await;
    let plain = connect(TokioNet, target.to_string(), &ChannelConfig::default()).await;
    let joined = match plain {
        Ok(channel) => join_as_4(channel).await,
        Err(e) => Err(e.to_string()),
    };
    assert!(joined.is_err(), "{joined:?}");
    assert!(refusals(admin, "not_tls").await > before);

    // Nothing of it reached the membership.
    assert_eq!(member_ids(admin).await, [1, 2, 3]);
    for node in &mut nodes {
        node.kill();
    }
}

/// A node given another node's certificate refuses to start and says which node it names.
#[tokio::test]
async fn a_node_with_another_nodes_certificate_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs = cluster_certs(dir.path());
    let cluster = free_port();
    let mut node = KeelProcess::with(vec![
        "--node-id".into(),
        "4".into(),
        "--cluster-listen".into(),
        cluster.to_string(),
        "--join".into(),
        "127.0.0.1:1".into(),
    ]);
    let (cert2, key2) = &certs.nodes[1];
    std::fs::write(node.config_file(), tls_config(&certs.ca, cert2, key2)).unwrap();
    node.spawn();
    match node.watch_start().await {
        StartOutcome::Exited(status) => assert!(!status.success()),
        outcome => panic!("{outcome:?}"),
    }
    let said = node.stderr();
    assert!(said.contains("names node 2, but this is node 4"), "{said}");
}
