//! Client authentication and authorisation: password files of argon2id hashes and SCRAM
//! verifiers ([`PasswordFile`], written by `keel passwd`), the methods that judge a CONNECT
//! (the password file [`PasswordAuth`], [`JwtAuth`], the shell's HTTP hook through
//! [`RemoteMethod`]) asked in order by an
//! [`AuthChain`], SCRAM-SHA-256 enhanced authentication ([`scram`]), ACL files ([`Acl`]), and
//! the node's [`Authenticator`](crate::session::Authenticator) made of them ([`NodeAuth`]),
//! from the settings of `[auth]` ([`AuthConfig`], which the configuration file holds).

mod acl;
mod chain;
mod jwt;
mod node_auth;
mod password_auth;
mod password_file;
pub mod scram;
mod settings;

pub use acl::{Acl, AclError, AclPermissions, Identity, LiveAcl, Permission};
pub use chain::{AuthChain, Decision, DecisionFuture, Method, Offload, RemoteMethod};
pub use jwt::{JwtAuth, JwtError};
pub use node_auth::{NodeAuth, NodeAuthError, PreparedAuth, RemoteFactory};
pub use password_auth::PasswordAuth;
pub use password_file::{
    check_username, hash_password, remove_entry, set_entry, AuthError, EditError, EntryError,
    HashError, LineError, PasswordFile, HASH_M_COST_KIB, HASH_M_COST_MAX_KIB, HASH_P_COST,
    HASH_T_COST, HASH_T_COST_MAX, USERNAME_LEN_MAX,
};
pub use settings::{AuthConfig, AuthMethodName, HttpAuthConfig, JwtConfig, JwtFrom};
