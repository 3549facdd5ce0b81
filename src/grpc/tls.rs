//! Mutual TLS between the nodes of a cluster (rustls, on `ring`).
//!
//! Every node holds a certificate of the cluster CA that names its node id (see
//! [`crate::cert`]). A connection is accepted only from a peer that presents such a
//! certificate, and a node dials only peers whose certificate chains to the same CA and, when
//! it knows whom it dials, names that node. Host names are not checked: a node's address
//! lives in the membership and may change; its id may not.
//!
//! Every refusal is counted by reason in [`PeerRefusals`] (`keel_cluster_peer_refusals_total`)
//! and logged with the peer's address and the reason.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::net::BoxStream;
use crate::transport::tls::{self as mqtt_tls, ClientAuth, TlsConfigError, TlsSettings};

/// Where a node's cluster TLS files are (`[cluster.tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTlsFiles {
    /// PEM file with the cluster CA's certificate.
    pub ca: PathBuf,
    /// PEM file with this node's certificate (then any intermediates).
    pub cert: PathBuf,
    /// PEM file with that certificate's private key.
    pub key: PathBuf,
}

/// Why a peer's connection was refused, counted per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It did not speak TLS (a plaintext client).
    NotTls,
    /// It presented no certificate.
    NoCertificate,
    /// Its certificate does not chain to the cluster CA.
    UnknownCa,
    /// Its certificate is otherwise invalid (expired, wrong usage, bad signature).
    BadCertificate,
    /// Its certificate names no node id.
    NoNodeId,
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// Another TLS failure.
    Handshake,
    /// A call claimed to come from another node than its certificate names, or came from a
    /// node outside the membership where only members may call.
    WrongNode,
    /// A peer this node dialled presented a certificate of another CA or of another node.
    ServerCertificate,
}

impl Refusal {
    const ALL: [Refusal; 9] = [
        Refusal::NotTls,
        Refusal::NoCertificate,
        Refusal::UnknownCa,
        Refusal::BadCertificate,
        Refusal::NoNodeId,
        Refusal::HandshakeTimeout,
        Refusal::Handshake,
        Refusal::WrongNode,
        Refusal::ServerCertificate,
    ];

    /// The `reason` label of the metric.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotTls => "not_tls",
            Refusal::NoCertificate => "no_certificate",
            Refusal::UnknownCa => "unknown_ca",
            Refusal::BadCertificate => "bad_certificate",
            Refusal::NoNodeId => "no_node_id",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::Handshake => "handshake",
            Refusal::WrongNode => "wrong_node",
            Refusal::ServerCertificate => "server_certificate",
        }
    }

    /// The refusal a failed server handshake stands for.
    fn of_handshake(error: &io::Error) -> Refusal {
        if error.kind() == io::ErrorKind::TimedOut {
            return Refusal::HandshakeTimeout;
        }
        let Some(tls) = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        else {
            return Refusal::Handshake;
        };
        match tls {
            rustls::Error::InvalidMessage(_) => Refusal::NotTls,
            rustls::Error::NoCertificatesPresented => Refusal::NoCertificate,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            | rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
                Refusal::UnknownCa
            }
            rustls::Error::InvalidCertificate(_) => Refusal::BadCertificate,
            _ => Refusal::Handshake,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Peers refused, by reason, for `/metrics`.
#[derive(Debug, Default)]
pub struct PeerRefusals {
    counts: [AtomicU64; Refusal::ALL.len()],
}

impl PeerRefusals {
    /// Counts and logs one refusal of the peer at `peer`.
    pub fn refuse(&self, refusal: Refusal, peer: Option<SocketAddr>, detail: &str) {
        self.counts[refusal as usize].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(reason = %refusal, ?peer, detail, "cluster peer refused");
    }

    /// Every reason with its count, in a fixed order.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (r.label(), self.counts[*r as usize].load(Ordering::Relaxed)))
            .collect()
    }
}

/// A node's side of the cluster's mutual TLS: its certificate, the cluster CA, and the
/// refusals it counts.
pub struct PeerTls {
    me: u64,
    acceptor: TlsAcceptor,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    handshake_timeout: Duration,
    refusals: Arc<PeerRefusals>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTls").field("me", &self.me).finish()
    }
}

/// How long a peer's TLS handshake may take.
pub const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl PeerTls {
    /// Loads `files` for node `me`; fails when a file is missing or malformed, or when the
    /// certificate does not name node `me`.
    pub fn load(
        files: &PeerTlsFiles,
        me: u64,
        refusals: Arc<PeerRefusals>,
    ) -> Result<PeerTls, PeerTlsError> {
        let settings = TlsSettings {
            cert_chain_path: files.cert.clone(),
            key_path: files.key.clone(),
            client_auth: ClientAuth::Required {
                ca_path: files.ca.clone(),
            },
        };
        let server = mqtt_tls::server_config(&settings)?;
        let client_chain = mqtt_tls::read_cert_chain(&files.cert, mqtt_tls::TlsFile::CertChain)?;
        let client_key = mqtt_tls::read_private_key(&files.key)?;
        let named = crate::cert::node_id_of(client_chain[0].as_ref());
        if named != Some(me) {
            return Err(PeerTlsError::NotThisNode {
                cert: files.cert.clone(),
                named,
                me,
            });
        }
        let mut roots = RootCertStore::empty();
        for ca in mqtt_tls::read_cert_chain(&files.ca, mqtt_tls::TlsFile::ClientCa)? {
            roots.add(ca).map_err(|e| PeerTlsError::Ca(e.to_string()))?;
        }
        Ok(PeerTls {
            me,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            client_chain,
            client_key,
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            handshake_timeout: PEER_HANDSHAKE_TIMEOUT,
            refusals,
        })
    }

    /// The id this node's certificate names.
    pub fn me(&self) -> u64 {
        self.me
    }

    pub fn refusals(&self) -> &Arc<PeerRefusals> {
        &self.refusals
    }

    /// The server side of a peer's handshake: the stream and the node id the peer's
    /// certificate names, or the refusal (counted and logged).
    pub async fn accept(
        &self,
        stream: BoxStream,
        peer: SocketAddr,
    ) -> Result<(BoxStream, u64), Refusal> {
        let handshake =
            mqtt_tls::accept_with_client_cert(&self.acceptor, stream, self.handshake_timeout);
        let (stream, cert) = match handshake.await {
            Ok(done) => done,
            Err(error) => {
                let refusal = Refusal::of_handshake(&error);
                self.refusals
                    .refuse(refusal, Some(peer), &error.to_string());
                return Err(refusal);
            }
        };
        let node = cert.and_then(|cert| crate::cert::node_id_of(cert.as_ref()));
        match node {
            Some(node) => Ok((stream, node)),
            None => {
                let detail = "its certificate names no node id";
                self.refusals.refuse(Refusal::NoNodeId, Some(peer), detail);
                Err(Refusal::NoNodeId)
            }
        }
    }

    /// The client side of a handshake with the peer at `addr`, which must be node `expect`
    /// when given (any node of the cluster CA otherwise).
    pub async fn connect(
        &self,
        stream: BoxStream,
        addr: &str,
        expect: Option<u64>,
    ) -> io::Result<BoxStream> {
        let verifier = Arc::new(PeerVerifier {
            roots: self.roots.clone(),
            provider: self.provider.clone(),
            expect,
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.client_chain.clone(), self.client_key.clone_key())
            .map_err(io::Error::other)?;
        // The name is not checked (the verifier checks the node id); SNI needs one.
        let name = ServerName::try_from("keel-peer").expect("a valid DNS name");
        let handshake = TlsConnector::from(Arc::new(config)).connect(name, stream);
        match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(error)) => {
                let certificate = error
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
                if certificate {
                    self.refusals.refuse(
                        Refusal::ServerCertificate,
                        None,
                        &format!("{addr}: {error}"),
                    );
                }
                Err(error)
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS handshake with {addr} not finished in time"),
            )),
        }
    }
}

/// Why the cluster TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    #[error("cluster TLS: {0}")]
    Files(#[from] TlsConfigError),
    #[error("cluster TLS: the CA cannot be used: {0}")]
    Ca(String),
    #[error(
        "cluster TLS: {} names {}, but this is node {me}: make one for it with \
         `keel cert create-node --node-id {me}`",
        cert.display(),
        named.map_or("no node id".to_owned(), |n| format!("node {n}"))
    )]
    NotThisNode {
        cert: PathBuf,
        named: Option<u64>,
        me: u64,
    },
}

/// Checks a dialled peer's certificate: it chains to the cluster CA and names the node
/// expected (when one is).
#[derive(Debug)]
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    expect: Option<u64>,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let named = crate::cert::node_id_of(end_entity.as_ref());
        match (named, self.expect) {
            (None, _) => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            (Some(named), Some(expect)) if named != expect => Err(
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
            ),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
