//! [`PasswordAuth`]: the `password_file` method of the [`AuthChain`](super::AuthChain).

use std::sync::Arc;

use crate::codec::{Connect, ReasonCode};

use super::chain::Decision;
use super::password_file::PasswordFile;

/// Checks CONNECT credentials against the password file, the way Mosquitto does with
/// `password_file`:
///
/// | CONNECT carries                      | decision |
/// |--------------------------------------|----------|
/// | no user name                         | pass (the chain's anonymous rule decides) |
/// | a listed user, no password           | deny: bad user name or password |
/// | a listed user and a password         | allow iff it is the user's password, else deny: bad user name or password |
/// | an unlisted user                     | pass (after a dummy verification) |
///
/// - A listed user must prove it: a wrong or missing password is refused, never downgraded
///   to anonymous or to the next method. An unlisted user is left to the next method, and
///   when none claims it the chain refuses it too (0x86), so without other methods anyone
///   who names a user must be in the file.
/// - Passing an unlisted user costs the same argon2 verification as refusing a wrong
///   password ([`PasswordFile::verify`]), so timing does not reveal user names.
/// - An MQTT 5 client may send a password without a user name; with no name to look up, it
///   passes and the password is ignored.
#[derive(Debug, Clone)]
pub struct PasswordAuth {
    pub file: Arc<PasswordFile>,
}

impl PasswordAuth {
    /// Runs one argon2 (or PBKDF2, for a SCRAM entry) verification when a user name and
    /// password are given; otherwise decides at once.
    pub fn decide(&self, connect: &Connect) -> Decision {
        let Some(username) = &connect.username else {
            return Decision::Ignore;
        };
        let listed = self.file.contains(username);
        let Some(password) = &connect.password else {
            if !listed {
                return Decision::Ignore;
            }
            tracing::debug!(
                username = username.as_str(),
                "refused: user name without password"
            );
            return Decision::Deny(ReasonCode::BadUserNameOrPassword);
        };
        match (self.file.verify(username, password), listed) {
            (true, _) => Decision::Allow,
            (false, true) => {
                tracing::debug!(username = username.as_str(), "refused: wrong password");
                Decision::Deny(ReasonCode::BadUserNameOrPassword)
            }
            (false, false) => Decision::Ignore,
        }
    }
}
