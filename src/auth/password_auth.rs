//! [`PasswordAuth`]: the [`Authenticator`] of `[auth]`, a password file and whether anonymous
//! clients are welcome.

use crate::codec::{Connect, ReasonCode};
use crate::config::AuthConfig;
use crate::session::Authenticator;

use super::password_file::{AuthError, PasswordFile};

/// Checks CONNECT credentials against an optional password file, the way Mosquitto does with
/// `allow_anonymous` and `password_file`:
///
/// | CONNECT carries                 | no password file         | a password file |
/// |---------------------------------|--------------------------|-----------------|
/// | no user name                    | anonymous                | anonymous |
/// | a user name, no password        | anonymous                | refused: bad user name or password |
/// | a user name and a password      | anonymous                | accepted iff the user is in the file with that password, else refused: bad user name or password |
///
/// *Anonymous* is accepted when `allow_anonymous` is set and refused with *not authorized*
/// otherwise. So:
///
/// - Without a password file nothing can check a user name, and every client counts as
///   anonymous (the configuration refuses `allow_anonymous = false` without a file).
/// - With a password file, a client that names a user must prove it, even when anonymous
///   clients are allowed: an unknown user or a wrong or missing password is refused, never
///   downgraded to anonymous. Downgrading would let anyone tell listed users from unlisted
///   ones (only unlisted names would get in without a password), and a client that sent a
///   user name expects to act as that user.
/// - An MQTT 5 client may send a password without a user name; with no name to look up, it
///   counts as anonymous and the password is ignored.
/// - Refusing a user who is not in the file costs the same argon2 verification as refusing a
///   wrong password ([`PasswordFile::verify`]), so timing does not reveal user names. A user
///   name without a password is refused without any verification, whether or not the user
///   exists, which reveals nothing either.
///
/// The reason codes are 0x86 *bad user name or password* and 0x87 *not authorized* (MQTT 3:
/// return codes 4 and 5).
#[derive(Debug)]
pub struct PasswordAuth {
    /// The users who may connect by name; `None` when no `password_file` is configured.
    pub file: Option<PasswordFile>,
    /// Whether clients that name no user are accepted.
    pub allow_anonymous: bool,
}

impl PasswordAuth {
    /// The authenticator `[auth]` describes, its password file loaded. Reads the file: call it
    /// while starting up, not from a connection task.
    pub fn from_config(config: &AuthConfig) -> Result<PasswordAuth, AuthError> {
        let file = config
            .password_file
            .as_deref()
            .map(PasswordFile::load)
            .transpose()?;
        Ok(PasswordAuth {
            file,
            allow_anonymous: config.allow_anonymous,
        })
    }

    fn anonymous(&self) -> Result<(), ReasonCode> {
        if self.allow_anonymous {
            Ok(())
        } else {
            Err(ReasonCode::NotAuthorized)
        }
    }
}

impl Authenticator for PasswordAuth {
    /// Runs one argon2 verification (a few milliseconds) when a user name and password are
    /// checked against the file; otherwise returns at once.
    fn authenticate(&self, connect: &Connect) -> Result<(), ReasonCode> {
        let (Some(file), Some(username)) = (&self.file, &connect.username) else {
            return self.anonymous();
        };
        let Some(password) = &connect.password else {
            tracing::debug!(
                username = username.as_str(),
                "refused: user name without password"
            );
            return Err(ReasonCode::BadUserNameOrPassword);
        };
        if file.verify(username, password) {
            Ok(())
        } else {
            tracing::debug!(
                username = username.as_str(),
                "refused: bad user name or password"
            );
            Err(ReasonCode::BadUserNameOrPassword)
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::auth::hash_password;
    use crate::codec::{ConnectProperties, MqttString, Protocol};

    fn connect(username: Option<&str>, password: Option<&str>) -> Connect {
        Connect {
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: 0,
            properties: ConnectProperties::default(),
            client_id: MqttString::new("c").unwrap(),
            will: None,
            username: username.map(|u| MqttString::new(u).unwrap()),
            password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        }
    }

    fn file() -> PasswordFile {
        let hash = hash_password(b"right").unwrap();
        PasswordFile::parse(&format!("alice:{hash}\n")).unwrap()
    }

    /// The outcome for each kind of CONNECT, in the order of the rules table.
    fn outcomes(auth: &PasswordAuth) -> [Result<(), ReasonCode>; 6] {
        [
            auth.authenticate(&connect(None, None)),
            auth.authenticate(&connect(None, Some("right"))),
            auth.authenticate(&connect(Some("alice"), None)),
            auth.authenticate(&connect(Some("alice"), Some("right"))),
            auth.authenticate(&connect(Some("alice"), Some("wrong"))),
            auth.authenticate(&connect(Some("mallory"), Some("right"))),
        ]
    }

    const BAD: Result<(), ReasonCode> = Err(ReasonCode::BadUserNameOrPassword);
    const NOT_AUTHORIZED: Result<(), ReasonCode> = Err(ReasonCode::NotAuthorized);

    #[test]
    fn with_a_password_file_named_users_must_prove_it() {
        let open = PasswordAuth {
            file: Some(file()),
            allow_anonymous: true,
        };
        assert_eq!(outcomes(&open), [Ok(()), Ok(()), BAD, Ok(()), BAD, BAD]);
        let closed = PasswordAuth {
            file: Some(file()),
            allow_anonymous: false,
        };
        let expected = [NOT_AUTHORIZED, NOT_AUTHORIZED, BAD, Ok(()), BAD, BAD];
        assert_eq!(outcomes(&closed), expected);
    }

    #[test]
    fn without_a_password_file_every_client_is_anonymous() {
        let open = PasswordAuth {
            file: None,
            allow_anonymous: true,
        };
        assert_eq!(outcomes(&open), [Ok(()); 6]);
        let closed = PasswordAuth {
            file: None,
            allow_anonymous: false,
        };
        assert_eq!(outcomes(&closed), [NOT_AUTHORIZED; 6]);
    }

    #[test]
    fn passwords_are_compared_as_bytes() {
        let hash = hash_password(&[0xff, 0x00, 0x80]).unwrap();
        let auth = PasswordAuth {
            file: Some(PasswordFile::parse(&format!("bin:{hash}")).unwrap()),
            allow_anonymous: false,
        };
        let mut binary = connect(Some("bin"), None);
        binary.password = Some(Bytes::from_static(&[0xff, 0x00, 0x80]));
        assert_eq!(auth.authenticate(&binary), Ok(()));
        binary.password = Some(Bytes::from_static(&[0xff, 0x00]));
        assert_eq!(auth.authenticate(&binary), BAD);
    }

    #[test]
    fn from_config_loads_the_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let hash = hash_password(b"pw").unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        let config = AuthConfig {
            allow_anonymous: false,
            password_file: Some(path.clone()),
            ..AuthConfig::default()
        };
        let auth = PasswordAuth::from_config(&config).unwrap();
        assert_eq!(
            auth.authenticate(&connect(Some("alice"), Some("pw"))),
            Ok(())
        );
        assert_eq!(auth.authenticate(&connect(None, None)), NOT_AUTHORIZED);

        std::fs::remove_file(&path).unwrap();
        let error = PasswordAuth::from_config(&config).unwrap_err();
        assert!(
            error.to_string().contains("cannot read password file"),
            "{error}"
        );
        let auth = PasswordAuth::from_config(&AuthConfig::default()).unwrap();
        assert!(auth.file.is_none() && auth.allow_anonymous);
    }
}
