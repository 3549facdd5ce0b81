//! [`NodeAuth`]: the [`Authenticator`] a node runs with: the credential rules of `[auth]`
//! ([`PasswordAuth`]) and, when an ACL file is configured, each client's [`Permissions`]
//! under it.

use std::sync::Arc;

use crate::codec::{Connect, ReasonCode};
use crate::config::AuthConfig;
use crate::session::{Authenticator, Permissions};

use super::acl::{Acl, AclError, AclPermissions};
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
    /// `None`: no ACL, every client may do anything.
    pub acl: Option<Arc<Acl>>,
}

impl NodeAuth {
    /// Loads the password file and the ACL file `[auth]` names. Reads files: call it while
    /// starting up (or reloading), not from a connection task.
    pub fn from_config(config: &AuthConfig) -> Result<NodeAuth, NodeAuthError> {
        let password = PasswordAuth::from_config(config)?;
        let acl = config
            .acl_file
            .as_deref()
            .map(|path| Acl::load(path, config.acl_no_match))
            .transpose()?
            .map(Arc::new);
        Ok(NodeAuth { password, acl })
    }
}

impl Authenticator for NodeAuth {
    fn authenticate(&self, connect: &Connect) -> Result<(), ReasonCode> {
        self.password.authenticate(connect)
    }

    fn permissions(&self, connect: &Connect, client_id: &str) -> Option<Arc<dyn Permissions>> {
        let acl = self.acl.as_ref()?;
        let username = connect.username.as_ref().map(|u| u.as_str().to_owned());
        Some(Arc::new(AclPermissions::new(
            acl.clone(),
            username,
            client_id.to_owned(),
        )))
    }
}
