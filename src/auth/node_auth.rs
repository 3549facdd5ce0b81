//! [`NodeAuth`]: the [`Authenticator`] a node runs with: the authentication methods of
//! `[auth]` ([`AuthChain`], SCRAM enhanced authentication included) and each client's
//! [`Permissions`] under the ACL in force.

use std::sync::{Arc, RwLock};

use crate::codec::{Connect, ReasonCode};
use crate::session::{AuthExchange, AuthFuture, Authenticator, PeerInfo, Permissions};

use super::acl::{Acl, AclError, AclPermissions, LiveAcl};
use super::chain::{AuthChain, Method, RemoteMethod};
use super::jwt::{JwtAuth, JwtError};
use super::password_auth::PasswordAuth;
use super::password_file::{AuthError, PasswordFile};
use super::scram::ScramUsers;
use super::settings::{AuthConfig, AuthMethodName, HttpAuthConfig};

/// Why `[auth]` cannot be put to work.
#[derive(Debug, thiserror::Error)]
pub enum NodeAuthError {
    #[error(transparent)]
    Password(#[from] AuthError),
    #[error(transparent)]
    Acl(#[from] AclError),
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("{0}")]
    Http(String),
}

/// Builds the `http` method from `[auth.http]`: the shell's HTTP client
/// (`crate::server::http_auth_method`), or a stand-in in tests.
pub type RemoteFactory<'a> = &'a dyn Fn(&HttpAuthConfig) -> Result<Box<dyn RemoteMethod>, String>;

/// Who may connect, and what each client may do.
#[derive(Debug)]
pub struct NodeAuth {
    pub chain: AuthChain,
    /// The ACL in force, shared with every client's permissions.
    pub acl: Arc<LiveAcl>,
}

/// `[auth]` read and checked, not yet in force: what a start-up or a reload builds before
/// it commits to anything.
#[derive(Debug)]
pub struct PreparedAuth {
    chain: AuthChain,
    acl: Option<Arc<Acl>>,
}

impl PreparedAuth {
    /// Loads the password file, the JWT key and the ACL file `[auth]` names. Reads files:
    /// call it while starting up or reloading, not from a connection task.
    pub fn load(
        config: &AuthConfig,
        remote: RemoteFactory<'_>,
    ) -> Result<PreparedAuth, NodeAuthError> {
        let file = config
            .password_file
            .as_deref()
            .map(PasswordFile::load)
            .transpose()?
            .map(Arc::new);
        let mut methods = Vec::new();
        for name in config.chain() {
            methods.push(match (name, &file, &config.jwt, &config.http) {
                (AuthMethodName::PasswordFile, Some(file), _, _) => {
                    Method::PasswordFile(PasswordAuth { file: file.clone() })
                }
                (AuthMethodName::Jwt, _, Some(jwt), _) => {
                    Method::Jwt(Box::new(JwtAuth::from_config(jwt)?))
                }
                (AuthMethodName::Http, _, _, Some(http)) => {
                    Method::Http(remote(http).map_err(NodeAuthError::Http)?)
                }
                // `Config::validate` refuses a chain naming what is not configured.
                _ => continue,
            });
        }
        let chain = AuthChain {
            methods,
            allow_anonymous: config.allow_anonymous,
            scram: file.map(|file| Arc::new(ScramUsers::new(file))),
            offload: None,
        };
        let acl = config
            .acl_file
            .as_deref()
            .map(|path| Acl::load(path, config.acl_no_match))
            .transpose()?
            .map(Arc::new);
        Ok(PreparedAuth { chain, acl })
    }

    /// Runs the password verifications of CONNECTs on `offload` instead of in place.
    pub fn offloaded(mut self, offload: Arc<dyn super::chain::Offload>) -> PreparedAuth {
        self.chain.offload = Some(offload);
        self
    }

    /// Puts it in force in `live` (the ACL every connected client is judged by) and returns
    /// the authenticator for new connections.
    pub fn commit(self, live: &Arc<LiveAcl>) -> NodeAuth {
        *live.write().unwrap_or_else(|e| e.into_inner()) = self.acl;
        NodeAuth {
            chain: self.chain,
            acl: live.clone(),
        }
    }
}

impl NodeAuth {
    /// Loads `[auth]` and puts it in force in an ACL cell of its own.
    pub fn from_config(
        config: &AuthConfig,
        remote: RemoteFactory<'_>,
    ) -> Result<NodeAuth, NodeAuthError> {
        Ok(PreparedAuth::load(config, remote)?.commit(&Arc::new(RwLock::new(None))))
    }
}

impl Authenticator for NodeAuth {
    fn authenticate(&self, connect: &Connect) -> Result<(), ReasonCode> {
        self.chain.authenticate_now(connect)
    }

    fn authenticate_async<'a>(
        &'a self,
        connect: &'a Connect,
        peer: &'a PeerInfo,
    ) -> AuthFuture<'a> {
        self.chain.authenticate_with(connect, peer)
    }

    fn start_exchange(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        self.chain.start_exchange(method)
    }

    /// Every client is judged by the ACL in force, even one that connected while there was
    /// none: a reload may add one.
    fn permissions(&self, connect: &Connect, client_id: &str) -> Option<Arc<dyn Permissions>> {
        let username = connect.username.as_ref().map(|u| u.as_str().to_owned());
        Some(Arc::new(AclPermissions::new(
            self.acl.clone(),
            username,
            client_id.to_owned(),
        )))
    }
}
