//! TLS for the MQTT-over-TLS and WSS listeners: a rustls acceptor built from PEM files, and
//! the server handshake with a deadline.
//!
//! rustls runs on the `ring` crypto provider, passed explicitly to every builder, so nothing
//! depends on a process-wide default provider being installed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use tokio_rustls::TlsAcceptor;

use crate::net::BoxStream;

/// Where the server's certificate and key are, and whether clients must present certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert_chain_path: PathBuf,
    /// PEM file with the private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// Whether and how client certificates are checked.
    pub client_auth: ClientAuth,
}

/// Client-certificate verification. A verified client certificate can later serve as the
/// client's identity (see [`accept_with_client_cert`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients are not asked for a certificate.
    #[default]
    Off,
    /// Clients may present a certificate; if they do, it must chain to a CA in `ca_path`.
    Optional {
        /// PEM file with the trusted CA certificates.
        ca_path: PathBuf,
    },
    /// Clients must present a certificate that chains to a CA in `ca_path`.
    Required {
        /// PEM file with the trusted CA certificates.
        ca_path: PathBuf,
    },
}

/// Which file of the TLS settings an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    /// [`TlsSettings::cert_chain_path`].
    CertChain,
    /// [`TlsSettings::key_path`].
    PrivateKey,
    /// The `ca_path` of [`ClientAuth`].
    ClientCa,
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFile::CertChain => "certificate chain",
            TlsFile::PrivateKey => "private key",
            TlsFile::ClientCa => "client CA",
        })
    }
}

/// Why a TLS acceptor could not be built. Every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file could not be read (missing, unreadable).
    #[error("cannot read {file} file {}: {error}", path.display())]
    Read {
        file: TlsFile,
        path: PathBuf,
        error: io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{file} file {} is not valid PEM: {reason}", path.display())]
    Pem {
        file: TlsFile,
        path: PathBuf,
        reason: String,
    },
    /// The file is PEM but holds nothing of the kind expected (e.g. a key given as the chain).
    #[error("{file} file {} contains no {expected}", path.display())]
    Missing {
        file: TlsFile,
        path: PathBuf,
        expected: &'static str,
    },
    /// rustls rejected the chain and key (a malformed certificate or key, or a key that does
    /// not belong to the first certificate).
    #[error("certificate chain {} and private key {} cannot be used together: {error}",
        cert_chain_path.display(), key_path.display())]
    CertKey {
        cert_chain_path: PathBuf,
        key_path: PathBuf,
        error: rustls::Error,
    },
    /// A CA certificate could not be used to verify clients.
    #[error("client CA file {} cannot be used: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
}

/// Builds an acceptor from PEM files.
///
/// Reads the files synchronously: call it while starting up (or reloading configuration), not
/// from a connection task.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, TlsConfigError> {
    let config = server_config(settings)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The rustls server configuration behind [`acceptor`].
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsConfigError> {
    let cert_chain = read_cert_chain(&settings.cert_chain_path, TlsFile::CertChain)?;
    let key = read_private_key(&settings.key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring's default provider has cipher suites for TLS 1.2 and 1.3");
    let builder = match &settings.client_auth {
        ClientAuth::Off => builder.with_no_client_auth(),
        ClientAuth::Optional { ca_path } => {
            builder.with_client_cert_verifier(client_verifier(ca_path, &provider, true)?)
        }
        ClientAuth::Required { ca_path } => {
            builder.with_client_cert_verifier(client_verifier(ca_path, &provider, false)?)
        }
    };
    builder
        .with_single_cert(cert_chain, key)
        .map_err(|error| TlsConfigError::CertKey {
            cert_chain_path: settings.cert_chain_path.clone(),
            key_path: settings.key_path.clone(),
            error,
        })
}

/// Runs the server side of the TLS handshake on `stream`, giving up after `timeout`.
///
/// The deadline stops a client that opens a socket and never finishes the handshake from
/// holding a connection slot. Errors: `TimedOut` when the deadline passes, otherwise the
/// handshake's own error (`InvalidData` for a TLS alert or protocol error).
pub async fn accept(
    acceptor: &TlsAcceptor,
    stream: BoxStream,
    timeout: Duration,
) -> io::Result<BoxStream> {
    let (stream, _client_cert) = accept_with_client_cert(acceptor, stream, timeout).await?;
    Ok(stream)
}

/// [`accept`], also returning the client's end-entity certificate when it presented one
/// (which the verifier configured by [`ClientAuth`] has then checked).
pub async fn accept_with_client_cert(
    acceptor: &TlsAcceptor,
    stream: BoxStream,
    timeout: Duration,
) -> io::Result<(BoxStream, Option<CertificateDer<'static>>)> {
    let handshake = acceptor.accept(stream);
    let tls_stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(result) => result?,
        Err(_elapsed) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "tls handshake not finished within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
    };
    let client_cert = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.clone().into_owned());
    Ok((Box::new(tls_stream), client_cert))
}

/// The name a client certificate gives its holder, for use as a user name: the subject's
/// Common Name, else its first DNS name or e-mail address among the Subject Alternative Names
/// (what Mosquitto's `use_identity_as_username` and EMQX's `peer_cert_as_username = cn` read).
/// `None` when the certificate names nobody or does not parse (it was verified by then, so
/// that is not expected). Control characters are refused, as in user names.
pub fn cert_identity(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let common_name = parsed
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_owned));
    let alt_name = || {
        let san = parsed.subject_alternative_name().ok().flatten()?;
        san.value.general_names.iter().find_map(|name| match name {
            GeneralName::DNSName(name) | GeneralName::RFC822Name(name) => Some((*name).to_owned()),
            _ => None,
        })
    };
    common_name
        .or_else(alt_name)
        .filter(|name| !name.is_empty() && !name.chars().any(char::is_control))
}

fn read_file(path: &Path, file: TlsFile) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|error| TlsConfigError::Read {
        file,
        path: path.to_path_buf(),
        error,
    })
}

pub(crate) fn read_cert_chain(
    path: &Path,
    file: TlsFile,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_file(path, file)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsConfigError::Pem {
            file,
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Missing {
            file,
            path: path.to_path_buf(),
            expected: "certificate (a \"BEGIN CERTIFICATE\" section)",
        });
    }
    Ok(certs)
}

pub(crate) fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let file = TlsFile::PrivateKey;
    let pem = read_file(path, file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => TlsConfigError::Missing {
            file,
            path: path.to_path_buf(),
            expected: "private key (a PKCS#8, PKCS#1 or SEC1 \"PRIVATE KEY\" section)",
        },
        other => TlsConfigError::Pem {
            file,
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

fn client_verifier(
    ca_path: &Path,
    provider: &Arc<CryptoProvider>,
    allow_anonymous: bool,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsConfigError> {
    let ca_error = |reason: String| TlsConfigError::ClientCa {
        path: ca_path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in read_cert_chain(ca_path, TlsFile::ClientCa)? {
        roots
            .add(cert)
            .map_err(|error| ca_error(error.to_string()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if allow_anonymous {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder.build().map_err(|error| ca_error(error.to_string()))
}
