//! [`NodeAuth`]: the [`Authenticator`] a node runs with: the credential rules of `[auth]`
//! ([`PasswordAuth`]) and each client's [`Permissions`] under the ACL in force.

use std::sync::{Arc, RwLock};

use crate::codec::{Connect, ReasonCode};
use crate::config::AuthConfig;
use crate::session::{Authenticator, Permissions};

use super::acl::{Acl, AclError, AclPermissions, LiveAcl};
use super::password_auth::PasswordAuth;
use super::password_file::AuthError;

/// Why `[auth]` cannot be put to work.
#[derive(Debug, thiserror::Error)]
pub enum NodeAuthError {
    #[error(transparent)]
    Password(#[from] AuthError),
    #[error(transparent)]
    Acl(#[from] AclError),
}

/// Who may connect, and what each client may do.
#[derive(Debug)]
pub struct NodeAuth {
    pub password: PasswordAuth,
    /// The ACL in force, shared with every client's permissions.
    pub acl: Arc<LiveAcl>,
}

/// `[auth]` read and checked, not yet in force: what a start-up or a reload builds before
/// it commits to anything.
#[derive(Debug)]
pub struct PreparedAuth {
    password: PasswordAuth,
    acl: Option<Arc<Acl>>,
}

impl PreparedAuth {
    /// Loads the password file and the ACL file `[auth]` names. Reads files: call it while
    /// starting up or reloading, not from a connection task.
    pub fn load(config: &AuthConfig) -> Result<PreparedAuth, NodeAuthError> {
        let password = PasswordAuth::from_config(config)?;
        let acl = config
            .acl_file
            .as_deref()
            .map(|path| Acl::load(path, config.acl_no_match))
            .transpose()?
            .map(Arc::new);
        Ok(PreparedAuth { password, acl })
    }

    /// Puts it in force in `live` (the ACL every connected client is judged by) and returns
    /// the authenticator for new connections.
    pub fn commit(self, live: &Arc<LiveAcl>) -> NodeAuth {
        *live.write().unwrap_or_else(|e| e.into_inner()) = self.acl;
        NodeAuth {
            password: self.password,
            acl: live.clone(),
        }
    }
}

impl NodeAuth {
    /// Loads `[auth]` and puts it in force in an ACL cell of its own.
    pub fn from_config(config: &AuthConfig) -> Result<NodeAuth, NodeAuthError> {
        Ok(PreparedAuth::load(config)?.commit(&Arc::new(RwLock::new(None))))
    }
}

impl Authenticator for NodeAuth {
    fn authenticate(&self, connect: &Connect) -> Result<(), ReasonCode> {
        self.password.authenticate(connect)
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
