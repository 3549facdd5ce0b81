//! Client authentication and authorisation: password files of argon2id hashes
//! ([`PasswordFile`], written by `keel passwd`), the CONNECT rules around them
//! ([`PasswordAuth`]), ACL files ([`Acl`]) and the node's
//! [`Authenticator`](crate::session::Authenticator) made of both ([`NodeAuth`]).

mod acl;
mod node_auth;
mod password_auth;
mod password_file;

pub use acl::{Acl, AclError, AclPermissions, Identity, LiveAcl, Permission};
pub use node_auth::{NodeAuth, NodeAuthError, PreparedAuth};
pub use password_auth::PasswordAuth;
pub use password_file::{
    check_username, hash_password, remove_entry, set_entry, AuthError, EditError, EntryError,
    HashError, LineError, PasswordFile, HASH_M_COST_KIB, HASH_M_COST_MAX_KIB, HASH_P_COST,
    HASH_T_COST, HASH_T_COST_MAX, USERNAME_LEN_MAX,
};
