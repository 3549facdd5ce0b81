//! `[auth]` and its tables `[auth.jwt]` and `[auth.http]`: who may connect. Their types are
//! the `auth` module's own settings; what can be checked without loading any file is checked
//! here.

use super::{ensure, Config, InvalidConfig};

pub use crate::auth::{AuthConfig, AuthMethodName, HttpAuthConfig, JwtConfig, JwtFrom};

impl Config {
    /// `[auth]`: some way in for clients, a chain of configured methods, and complete
    /// `[auth.jwt]` and `[auth.http]` tables.
    pub(super) fn validate_auth(&self) -> Result<(), InvalidConfig> {
        let auth = &self.auth;
        let certificates = self
            .tls
            .as_ref()
            .is_some_and(|tls| tls.use_identity_as_username);
        ensure(
            auth.allow_anonymous || !auth.chain().is_empty() || certificates,
            "auth.allow_anonymous",
            || {
                "is false but no authentication method (password_file, jwt, http) is set, so \
                 no client could connect"
                    .to_owned()
            },
        )?;
        for (i, name) in auth.chain.iter().enumerate() {
            ensure(auth.is_configured(*name), "auth.chain", || {
                format!("names {name:?}, which is not configured")
            })?;
            ensure(!auth.chain[..i].contains(name), "auth.chain", || {
                format!("names {name:?} twice")
            })?;
        }
        if let Some(jwt) = &auth.jwt {
            ensure(
                jwt.secret.as_ref().is_some_and(|s| !s.is_empty()) != jwt.public_key_file.is_some(),
                "auth.jwt",
                || "needs exactly one of secret (HS256) and public_key_file (RS256)".to_owned(),
            )?;
        }
        if let Some(http) = &auth.http {
            ensure(http.url.starts_with("http://"), "auth.http.url", || {
                "must be an http:// URL (for https, a TLS proxy on the same host)".to_owned()
            })?;
            ensure(http.timeout_ms > 0, "auth.http.timeout_ms", || {
                "must be at least 1".to_owned()
            })?;
        }
        Ok(())
    }
}
