//! `[tls]`: the certificate of the TLS and WSS listeners, and client certificates.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ensure, Config, InvalidConfig};

/// `[tls]`: the server's certificate for the TLS and WSS listeners, and client certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates. Required.
    pub cert: PathBuf,
    /// PEM file with the private key of that certificate (PKCS#8, PKCS#1 or SEC1). Required.
    pub key: PathBuf,
    /// PEM file with the CAs that client certificates must chain to. When set, clients may
    /// present a certificate and it is verified. Default: none (clients are not asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Refuse TLS clients that present no certificate; needs `client_ca`. Default `false`.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Take the name in a verified client certificate (subject CN, else the first DNS or
    /// e-mail SAN) as the client's user name, for the ACL's `%u` and `user` rules; such a
    /// client is authenticated by its certificate and no password is checked (Mosquitto's
    /// `use_identity_as_username`). Needs `client_ca`. Default `false`.
    #[serde(default)]
    pub use_identity_as_username: bool,
}

impl Config {
    /// `[tls]`: both files named; client-certificate options only with the CAs to verify them.
    pub(super) fn validate_tls(&self) -> Result<(), InvalidConfig> {
        if let Some(tls) = &self.tls {
            ensure(!tls.cert.as_os_str().is_empty(), "tls.cert", || {
                "must not be empty".to_owned()
            })?;
            ensure(!tls.key.as_os_str().is_empty(), "tls.key", || {
                "must not be empty".to_owned()
            })?;
            ensure(
                tls.client_ca.is_some() || !tls.require_client_cert,
                "tls.require_client_cert",
                || "needs tls.client_ca, the CAs to verify client certificates with".to_owned(),
            )?;
            ensure(
                tls.client_ca.is_some() || !tls.use_identity_as_username,
                "tls.use_identity_as_username",
                || "needs tls.client_ca, the CAs to verify client certificates with".to_owned(),
            )?;
        }
        Ok(())
    }
}
