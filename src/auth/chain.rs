//! [`AuthChain`]: the authentication methods of `[auth]` asked in a configured order, each
//! allowing, denying or passing a CONNECT on to the next, as EMQX chains its authenticators
//! and Mosquitto its plugins.
//!
//! Before the chain: a client whose verified TLS certificate names it (`[tls]
//! use_identity_as_username`) is authenticated by that certificate. After the chain, when
//! every method passed:
//!
//! - a client that named a user (or a method to check it) is refused with 0x86 *bad user
//!   name or password*: nobody vouched for the name it claims;
//! - a client that named nobody is *anonymous*: accepted when `allow_anonymous` is set,
//!   refused with 0x87 *not authorized* otherwise;
//! - with no method configured at all nothing can check a user name, and every client counts
//!   as anonymous.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::codec::{Connect, ReasonCode};
use crate::session::{AuthExchange, AuthFuture, PeerInfo};

use super::jwt::JwtAuth;
use super::password_auth::PasswordAuth;
use super::scram::{ScramUsers, SCRAM_SHA_256};

/// What one method says of a CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refuse, with this CONNACK reason.
    Deny(ReasonCode),
    /// Not this method's to decide: ask the next.
    Ignore,
}

/// What a [`RemoteMethod`] returns.
pub type DecisionFuture<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// A method that asks somebody else and waits for the answer (the HTTP hook): I/O, so its
/// implementation lives in the shell (`crate::server::HttpHook`).
pub trait RemoteMethod: Send + Sync + fmt::Debug {
    fn decide<'a>(&'a self, connect: &'a Connect, peer: &'a PeerInfo) -> DecisionFuture<'a>;
}

impl Decision {
    /// The chain's verdict if this decision ends it; `None` to ask the next method.
    fn verdict(self) -> Option<Result<(), ReasonCode>> {
        match self {
            Decision::Allow => Some(Ok(())),
            Decision::Deny(reason) => Some(Err(reason)),
            Decision::Ignore => None,
        }
    }
}

/// Runs a slow, CPU-bound decision (a password hash) where it holds up no other client: the
/// shell gives a pool of blocking threads (`crate::server`); without one it runs in place.
pub trait Offload: Send + Sync + fmt::Debug {
    fn run(&self, job: Box<dyn FnOnce() -> Decision + Send>) -> DecisionFuture<'_>;
}

/// One authentication method of the chain.
#[derive(Debug)]
pub enum Method {
    PasswordFile(PasswordAuth),
    Jwt(Box<JwtAuth>),
    Http(Box<dyn RemoteMethod>),
}

impl Method {
    /// The method's name in `[auth] chain`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::PasswordFile(_) => "password_file",
            Method::Jwt(_) => "jwt",
            Method::Http(_) => "http",
        }
    }

    /// The decision of a method that needs no waiting; `None` for one that does.
    fn decide_now(&self, connect: &Connect) -> Option<Decision> {
        match self {
            Method::PasswordFile(password) => Some(password.decide(connect)),
            Method::Jwt(jwt) => Some(jwt.decide(connect)),
            Method::Http(_) => None,
        }
    }
}

/// The configured methods in order, and what happens when they all pass.
pub struct AuthChain {
    pub methods: Vec<Method>,
    pub allow_anonymous: bool,
    /// The users of SCRAM-SHA-256 enhanced authentication (the password file's); `None`
    /// when there is no password file.
    pub scram: Option<Arc<ScramUsers>>,
    /// Where password verifications of the waiting path run; `None`: in place.
    pub offload: Option<Arc<dyn Offload>>,
}

impl fmt::Debug for AuthChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.methods.iter().map(Method::name).collect();
        f.debug_struct("AuthChain")
            .field("methods", &names)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("scram", &self.scram.is_some())
            .finish()
    }
}

impl AuthChain {
    /// What becomes of a CONNECT every method passed on.
    fn unclaimed(&self, connect: &Connect) -> Result<(), ReasonCode> {
        if !self.methods.is_empty() && connect.username.is_some() {
            tracing::debug!(
                username = connect.username.as_ref().map(|u| u.as_str()),
                "refused: no authentication method accepted the user"
            );
            return Err(ReasonCode::BadUserNameOrPassword);
        }
        if self.allow_anonymous {
            Ok(())
        } else {
            Err(ReasonCode::NotAuthorized)
        }
    }

    /// The chain's verdict, asking only the methods that need no waiting (the HTTP hook
    /// passes): for callers without a runtime.
    pub fn authenticate_now(&self, connect: &Connect) -> Result<(), ReasonCode> {
        self.methods
            .iter()
            .find_map(|method| method.decide_now(connect)?.verdict())
            .unwrap_or_else(|| self.unclaimed(connect))
    }

    /// The chain's verdict, every method asked in turn.
    pub fn authenticate_with<'a>(
        &'a self,
        connect: &'a Connect,
        peer: &'a PeerInfo,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            if peer.cert_identity.is_some() {
                return Ok(());
            }
            for method in &self.methods {
                let decision = match (method, &self.offload) {
                    (Method::Http(remote), _) => remote.decide(connect, peer).await,
                    (Method::PasswordFile(password), Some(offload)) => {
                        let (password, connect) = (password.clone(), connect.clone());
                        offload
                            .run(Box::new(move || password.decide(&connect)))
                            .await
                    }
                    (other, _) => other.decide_now(connect).unwrap_or(Decision::Ignore),
                };
                if let Some(verdict) = decision.verdict() {
                    return verdict;
                }
            }
            self.unclaimed(connect)
        })
    }

    /// An enhanced authentication exchange by `method`, if offered.
    pub fn start_exchange(&self, method: &str) -> Option<Box<dyn AuthExchange>> {
        match (&self.scram, method) {
            (Some(users), SCRAM_SHA_256) => Some(Box::new(users.exchange())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::auth::{hash_password, PasswordFile};
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

    fn file() -> Arc<PasswordFile> {
        let hash = hash_password(b"right").unwrap();
        Arc::new(PasswordFile::parse(&format!("alice:{hash}\n")).unwrap())
    }

    fn chain(methods: Vec<Method>, allow_anonymous: bool) -> AuthChain {
        AuthChain {
            methods,
            allow_anonymous,
            scram: None,
            offload: None,
        }
    }

    fn password_file() -> Method {
        Method::PasswordFile(PasswordAuth { file: file() })
    }

    /// The outcome for each kind of CONNECT, in the order of the password method's table.
    fn outcomes(auth: &AuthChain) -> [Result<(), ReasonCode>; 6] {
        [
            auth.authenticate_now(&connect(None, None)),
            auth.authenticate_now(&connect(None, Some("right"))),
            auth.authenticate_now(&connect(Some("alice"), None)),
            auth.authenticate_now(&connect(Some("alice"), Some("right"))),
            auth.authenticate_now(&connect(Some("alice"), Some("wrong"))),
            auth.authenticate_now(&connect(Some("mallory"), Some("right"))),
        ]
    }

    const BAD: Result<(), ReasonCode> = Err(ReasonCode::BadUserNameOrPassword);
    const NOT_AUTHORIZED: Result<(), ReasonCode> = Err(ReasonCode::NotAuthorized);

    #[test]
    fn with_a_password_file_named_users_must_prove_it() {
        let open = chain(vec![password_file()], true);
        assert_eq!(outcomes(&open), [Ok(()), Ok(()), BAD, Ok(()), BAD, BAD]);
        let closed = chain(vec![password_file()], false);
        let expected = [NOT_AUTHORIZED, NOT_AUTHORIZED, BAD, Ok(()), BAD, BAD];
        assert_eq!(outcomes(&closed), expected);
    }

    #[test]
    fn without_methods_every_client_is_anonymous() {
        assert_eq!(outcomes(&chain(vec![], true)), [Ok(()); 6]);
        assert_eq!(outcomes(&chain(vec![], false)), [NOT_AUTHORIZED; 6]);
    }

    #[test]
    fn passwords_are_compared_as_bytes() {
        let hash = hash_password(&[0xff, 0x00, 0x80]).unwrap();
        let file = Arc::new(PasswordFile::parse(&format!("bin:{hash}")).unwrap());
        let auth = chain(vec![Method::PasswordFile(PasswordAuth { file })], false);
        let mut binary = connect(Some("bin"), None);
        binary.password = Some(Bytes::from_static(&[0xff, 0x00, 0x80]));
        assert_eq!(auth.authenticate_now(&binary), Ok(()));
        binary.password = Some(Bytes::from_static(&[0xff, 0x00]));
        assert_eq!(auth.authenticate_now(&binary), BAD);
    }

    #[test]
    fn an_unlisted_user_passes_to_the_next_method() {
        let jwt = crate::auth::JwtConfig {
            secret: Some("k".repeat(32)),
            public_key_file: None,
            from: crate::auth::JwtFrom::Password,
            leeway_secs: 0,
            issuer: None,
            audience: None,
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"exp": u32::MAX, "username": "mallory"}),
            &jsonwebtoken::EncodingKey::from_secret("k".repeat(32).as_bytes()),
        )
        .unwrap();
        let jwt = Method::Jwt(Box::new(JwtAuth::from_config(&jwt).unwrap()));
        let auth = chain(vec![password_file(), jwt], false);
        assert_eq!(
            auth.authenticate_now(&connect(Some("mallory"), Some(&token))),
            Ok(())
        );
        assert_eq!(
            auth.authenticate_now(&connect(Some("mallory"), Some("x"))),
            BAD
        );
        // A listed user is decided by the file; the JWT method is never asked.
        assert_eq!(
            auth.authenticate_now(&connect(Some("alice"), Some(&token))),
            BAD
        );
    }

    #[tokio::test]
    async fn a_verified_certificate_is_an_identity() {
        let auth = chain(vec![password_file()], false);
        let peer = PeerInfo {
            addr: None,
            cert_identity: Some(MqttString::new("device-7").unwrap()),
        };
        let named = connect(Some("device-7"), None);
        assert_eq!(auth.authenticate_with(&named, &peer).await, Ok(()));
        let no_cert = PeerInfo::default();
        assert_eq!(auth.authenticate_with(&named, &no_cert).await, BAD);
    }
}
