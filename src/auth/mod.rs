//! Client authentication: password files of argon2id hashes ([`PasswordFile`], written by
//! `keel passwd`) and the CONNECT rules around them ([`PasswordAuth`], an
//! [`Authenticator`](crate::session::Authenticator)).

mod password_auth;
mod password_file;

pub use password_auth::PasswordAuth;
pub use password_file::{
    check_username, hash_password, remove_entry, set_entry, AuthError, EditError, EntryError,
    HashError, LineError, PasswordFile, HASH_M_COST_KIB, HASH_M_COST_MAX_KIB, HASH_P_COST,
    HASH_T_COST, HASH_T_COST_MAX, USERNAME_LEN_MAX,
};
