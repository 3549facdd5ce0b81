//! The settings of `[auth]` and its tables `[auth.jwt]` and `[auth.http]`, as the
//! configuration file gives them: plain data that `crate::config` reads, gives defaults and
//! validates, and that this module puts to work ([`PreparedAuth::load`](super::PreparedAuth::load)).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Permission;

/// `[auth]`: who may connect. The rules are those of [`crate::auth::PasswordAuth`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accept clients that send no user name. Default `true`.
    pub allow_anonymous: bool,
    /// Password file (`username:argon2 hash` lines, written by `keel passwd`); when set, a
    /// client that sends a user name must be in it and give the right password. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// ACL file (TOML rules, see `crate::auth::Acl`): who may publish and subscribe to which
    /// topics. Default: none (every client may use every topic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_file: Option<PathBuf>,
    /// What an ACL decides when no rule applies: `"deny"` (the default: what is not granted
    /// is refused) or `"allow"`.
    pub acl_no_match: Permission,
    /// The order in which the configured methods are asked, each allowing, denying or
    /// passing to the next: names among `"password_file"`, `"jwt"`, `"http"`, each configured.
    /// Default (empty): every configured method, in that order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<AuthMethodName>,
    /// JSON Web Tokens as passwords. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// An HTTP service that decides. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAuthConfig>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            acl_no_match: Permission::Deny,
            chain: Vec::new(),
            jwt: None,
            http: None,
        }
    }
}

impl AuthConfig {
    /// The methods to ask, in order: `chain`, or every configured one.
    pub fn chain(&self) -> Vec<AuthMethodName> {
        if !self.chain.is_empty() {
            return self.chain.clone();
        }
        let configured = [
            (AuthMethodName::PasswordFile, self.password_file.is_some()),
            (AuthMethodName::Jwt, self.jwt.is_some()),
            (AuthMethodName::Http, self.http.is_some()),
        ];
        configured
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect()
    }

    /// Whether the table of method `name` is there.
    pub(crate) fn is_configured(&self, name: AuthMethodName) -> bool {
        match name {
            AuthMethodName::PasswordFile => self.password_file.is_some(),
            AuthMethodName::Jwt => self.jwt.is_some(),
            AuthMethodName::Http => self.http.is_some(),
        }
    }
}

/// A method of `[auth] chain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethodName {
    PasswordFile,
    Jwt,
    Http,
}

/// `[auth.jwt]`: clients present a JWT signed by the operator's issuer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Shared secret of HS256 tokens. Exactly one of `secret` and `public_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// PEM file with the RSA public key of RS256 tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// Where the token is: `"password"` (default) or `"username"`.
    #[serde(default)]
    pub from: JwtFrom,
    /// Seconds of clock skew allowed on `exp` and `nbf`. Default 30.
    #[serde(default = "JwtConfig::default_leeway")]
    pub leeway_secs: u64,
    /// The `iss` claim tokens must carry. Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The `aud` claim tokens must carry. Default: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl JwtConfig {
    fn default_leeway() -> u64 {
        30
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("public_key_file", &self.public_key_file)
            .field("from", &self.from)
            .field("leeway_secs", &self.leeway_secs)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// `[auth.jwt] from`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwtFrom {
    #[default]
    Password,
    Username,
}

/// `[auth.http]`: an HTTP service decides (see `crate::server::HttpHook` for the request and
/// the answers).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuthConfig {
    /// `http://HOST[:PORT]/PATH` to POST to. Required.
    pub url: String,
    /// Milliseconds to wait for an answer; none in time counts as `ignore`. Default 5000.
    #[serde(default = "HttpAuthConfig::default_timeout")]
    pub timeout_ms: u64,
    /// Seconds an allow or deny answer is reused; 0 asks every time. Default 60.
    #[serde(default = "HttpAuthConfig::default_cache_ttl")]
    pub cache_ttl_secs: u64,
    /// Most answers cached. Default 10000.
    #[serde(default = "HttpAuthConfig::default_cache_max")]
    pub cache_max: usize,
    /// Extra request headers (e.g. `Authorization`). Default: none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
}

impl HttpAuthConfig {
    fn default_timeout() -> u64 {
        5000
    }
    fn default_cache_ttl() -> u64 {
        60
    }
    fn default_cache_max() -> usize {
        10_000
    }
}

/// Header values may be secrets.
impl fmt::Debug for HttpAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuthConfig")
            .field("url", &self.url)
            .field("timeout_ms", &self.timeout_ms)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("cache_max", &self.cache_max)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}
