//! [`JwtAuth`]: the `jwt` method of the [`AuthChain`](super::AuthChain). A client presents a
//! JSON Web Token as its password (or user name); a token signed with the configured key
//! (HS256 shared secret or RS256 public key) and within its validity is accepted.
//!
//! Claims: `exp` is required (a token that never expires is refused) and `nbf` honoured, with
//! `leeway_secs` for clock skew; `iss` and `aud` must match when configured. A `client_id`
//! (or `clientid`) claim must equal the CONNECT's client id, and a `username` claim its user
//! name, so a token issued to one device cannot be used by another.
//!
//! A password that is not a JWT at all passes to the next method; a JWT that does not
//! verify is refused (0x86), as is one whose claims name another client (0x87).

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::chain::Decision;
use super::settings::{JwtConfig, JwtFrom};
use crate::codec::{Connect, ReasonCode};

/// The `jwt` method, its key loaded.
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
    from: JwtFrom,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.validation.algorithms)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Why `[auth.jwt]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("[auth.jwt] needs exactly one of `secret` (HS256) and `public_key_file` (RS256)")]
    Key,
    #[error("cannot read [auth.jwt] public_key_file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("[auth.jwt] public_key_file {path} is not an RSA public key in PEM: {error}")]
    Pem {
        path: String,
        error: jsonwebtoken::errors::Error,
    },
}

impl JwtAuth {
    /// Loads the key `config` names. Reads a file: call it while starting up or reloading.
    pub fn from_config(config: &JwtConfig) -> Result<JwtAuth, JwtError> {
        let (key, algorithm) = match (&config.secret, &config.public_key_file) {
            (Some(secret), None) if !secret.is_empty() => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            (None, Some(path)) => {
                let shown = path.display().to_string();
                let pem = std::fs::read(path).map_err(|error| JwtError::Read {
                    path: shown.clone(),
                    error,
                })?;
                let key = DecodingKey::from_rsa_pem(&pem)
                    .map_err(|error| JwtError::Pem { path: shown, error })?;
                (key, Algorithm::RS256)
            }
            _ => return Err(JwtError::Key),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(JwtAuth {
            key,
            validation,
            from: config.from,
        })
    }

    pub fn decide(&self, connect: &Connect) -> Decision {
        let token = match self.from {
            JwtFrom::Password => connect
                .password
                .as_ref()
                .and_then(|p| std::str::from_utf8(p).ok()),
            JwtFrom::Username => connect.username.as_ref().map(|u| u.as_str()),
        };
        // Not a JWT (three base64url parts with a JSON header): not ours to judge.
        let Some(token) = token.filter(|t| jsonwebtoken::decode_header(t).is_ok()) else {
            return Decision::Ignore;
        };
        let claims = match jsonwebtoken::decode::<Value>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            Err(error) => {
                tracing::debug!(%error, "refused: JWT does not verify");
                return Decision::Deny(ReasonCode::BadUserNameOrPassword);
            }
        };
        let claim = |names: &[&str]| names.iter().find_map(|name| claims.get(*name));
        let client_id_ok = claim(&["client_id", "clientid"])
            .is_none_or(|id| id.as_str() == Some(connect.client_id.as_str()));
        let username_ok = claim(&["username"]).is_none_or(|name| {
            name.as_str().is_some()
                && name.as_str() == connect.username.as_ref().map(|u| u.as_str())
        });
        if client_id_ok && username_ok {
            Decision::Allow
        } else {
            tracing::debug!("refused: JWT issued to another client id or user name");
            Decision::Deny(ReasonCode::NotAuthorized)
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::codec::{ConnectProperties, MqttString, Protocol};

    const SECRET: &str = "a shared secret of some length!!";

    fn config() -> JwtConfig {
        JwtConfig {
            secret: Some(SECRET.into()),
            public_key_file: None,
            from: JwtFrom::Password,
            leeway_secs: 0,
            issuer: Some("keel-tests".into()),
            audience: None,
        }
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn connect(client_id: &str, username: Option<&str>, password: &str) -> Connect {
        Connect {
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: 0,
            properties: ConnectProperties::default(),
            client_id: MqttString::new(client_id).unwrap(),
            will: None,
            username: username.map(|u| MqttString::new(u).unwrap()),
            password: Some(Bytes::copy_from_slice(password.as_bytes())),
        }
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn tokens_are_checked_for_signature_expiry_issuer_and_claims() {
        let jwt = JwtAuth::from_config(&config()).unwrap();
        let good =
            json!({"exp": now() + 60, "iss": "keel-tests", "client_id": "dev-1", "username": "u"});
        let decide =
            |client_id, username, token: &str| jwt.decide(&connect(client_id, username, token));
        assert_eq!(
            decide("dev-1", Some("u"), &token(good.clone(), SECRET)),
            Decision::Allow
        );
        let deny_bad = Decision::Deny(ReasonCode::BadUserNameOrPassword);
        let deny_other = Decision::Deny(ReasonCode::NotAuthorized);
        assert_eq!(
            decide("dev-1", Some("u"), &token(good.clone(), "another secret")),
            deny_bad
        );
        let expired = json!({"exp": now() - 60, "iss": "keel-tests"});
        assert_eq!(decide("dev-1", None, &token(expired, SECRET)), deny_bad);
        let no_exp = json!({"iss": "keel-tests"});
        assert_eq!(decide("dev-1", None, &token(no_exp, SECRET)), deny_bad);
        let other_issuer = json!({"exp": now() + 60, "iss": "elsewhere"});
        assert_eq!(
            decide("dev-1", None, &token(other_issuer, SECRET)),
            deny_bad
        );
        let not_yet = json!({"exp": now() + 600, "nbf": now() + 300, "iss": "keel-tests"});
        assert_eq!(decide("dev-1", None, &token(not_yet, SECRET)), deny_bad);
        assert_eq!(
            decide("dev-2", Some("u"), &token(good.clone(), SECRET)),
            deny_other
        );
        assert_eq!(
            decide("dev-1", Some("v"), &token(good.clone(), SECRET)),
            deny_other
        );
        assert_eq!(decide("dev-1", None, &token(good, SECRET)), deny_other);
        let unbound = json!({"exp": now() + 60, "iss": "keel-tests"});
        assert_eq!(
            decide("any", None, &token(unbound, SECRET)),
            Decision::Allow
        );
        // Not a JWT: somebody else's to judge.
        assert_eq!(decide("dev-1", Some("u"), "hunter2"), Decision::Ignore);
        assert_eq!(decide("dev-1", Some("u"), "a.b.c"), Decision::Ignore);
    }

    #[test]
    fn the_token_may_come_in_the_user_name() {
        let jwt = JwtAuth::from_config(&JwtConfig {
            from: JwtFrom::Username,
            issuer: None,
            ..config()
        })
        .unwrap();
        let token = token(json!({"exp": now() + 60}), SECRET);
        assert_eq!(jwt.decide(&connect("c", Some(&token), "")), Decision::Allow);
        assert_eq!(jwt.decide(&connect("c", None, &token)), Decision::Ignore);
    }

    #[test]
    fn a_key_is_required() {
        let none = JwtConfig {
            secret: None,
            ..config()
        };
        assert!(matches!(JwtAuth::from_config(&none), Err(JwtError::Key)));
        let missing = JwtConfig {
            secret: None,
            public_key_file: Some("/nonexistent/key.pem".into()),
            ..config()
        };
        let error = JwtAuth::from_config(&missing).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/key.pem"), "{error}");
    }
}
