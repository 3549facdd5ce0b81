//! SCRAM-SHA-256 (RFC 5802, RFC 7677) for MQTT 5 enhanced authentication: the credentials a
//! password file keeps for it ([`ScramVerifier`]) and the server's side of the exchange
//! ([`ScramExchange`]).
//!
//! The messages ride in the Authentication Data of CONNECT, AUTH and CONNACK (method
//! `SCRAM-SHA-256`, as EMQX and HiveMQ name it):
//!
//! ```text
//! CONNECT  data = client-first   "n,,n=alice,r=<client nonce>"
//! AUTH 18  data = server-first   "r=<client nonce><server nonce>,s=<salt>,i=4096"
//! AUTH 18  data = client-final   "c=biws,r=<nonce>,p=<proof>"
//! CONNACK  data = server-final   "v=<server signature>"     (or CONNACK 0x86)
//! ```
//!
//! and re-authentication is the same with AUTH 0x19 first and AUTH 0x00 last. The primitives
//! (PBKDF2, HMAC, SHA-256, randomness) are ring's; only the message handling is ours, as no
//! maintained crate offers the server side. Passwords are taken as bytes, without SASLprep:
//! non-ASCII passwords must be sent in the same normalisation they were set in.
//!
//! The server keeps no password, only `StoredKey = H(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`, so a stolen password file does not let
//! anyone authenticate without first cracking PBKDF2. An unknown user gets a server-first
//! message with a made-up but stable salt, and fails only at the end, so the exchange does not
//! reveal which users exist.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use subtle::ConstantTimeEq;

use crate::codec::ReasonCode;
use crate::session::{AuthExchange, AuthStep};

use super::password_file::PasswordFile;

/// The MQTT Authentication Method name.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Iterations of new verifiers: RFC 7677's minimum. Verifying a plain CONNECT password
/// against a verifier costs one PBKDF2 of this many rounds (about 2 ms here, like argon2).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// Most iterations accepted from a password file: a hand-edited typo must not make every plain
/// password check take seconds.
pub const SCRAM_ITERATIONS_MAX: u32 = 100_000;

/// Bytes of salt in new verifiers, and of the server's nonce.
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 18;

/// Longest SCRAM message accepted: the client's are a few hundred bytes.
const MESSAGE_LEN_MAX: usize = 4096;

/// The prefix of a SCRAM verifier in a password file (PostgreSQL's format).
pub const VERIFIER_PREFIX: &str = "SCRAM-SHA-256$";

type Key = [u8; 32];

/// What the server keeps of a SCRAM password:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64), the format of
/// PostgreSQL's `pg_authid`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    stored_key: Key,
    server_key: Key,
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a verifier string is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    #[error("expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")]
    Shape,
    #[error("iterations must be {SCRAM_ITERATIONS} to {SCRAM_ITERATIONS_MAX}")]
    Iterations,
    #[error("the salt or a key is not base64 of the right length")]
    Encoding,
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Key {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    tag.as_ref().try_into().expect("HMAC-SHA-256 is 32 bytes")
}

fn sha256(data: &[u8]) -> Key {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    // The OS entropy source, not the seeded `Rng` seam: salts and nonces must be
    // unpredictable, and no simulated node runs SCRAM.
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS entropy source works");
    bytes
}

impl ScramVerifier {
    /// The verifier of `password` with `salt` and `iterations` (RFC 5802 §3).
    pub fn derive(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> ScramVerifier {
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            password,
            &mut salted,
        );
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&hmac_sha256(&salted, b"Client Key")),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// A verifier nothing matches, that costs what a real one costs to check: verified
    /// against when a user has none, so the time taken does not tell which users do.
    pub(super) fn dummy() -> ScramVerifier {
        ScramVerifier {
            iterations: NonZeroU32::new(SCRAM_ITERATIONS).expect("not zero"),
            salt: vec![0; SALT_LEN],
            stored_key: random_bytes(),
            server_key: random_bytes(),
        }
    }

    /// A new verifier of `password`, with a fresh random salt and [`SCRAM_ITERATIONS`].
    pub fn new(password: &[u8]) -> ScramVerifier {
        let iterations = NonZeroU32::new(SCRAM_ITERATIONS).expect("not zero");
        ScramVerifier::derive(password, &random_bytes::<SALT_LEN>(), iterations)
    }

    /// Whether `password` is the one this verifier was made from (for a plain CONNECT).
    pub fn verify_password(&self, password: &[u8]) -> bool {
        let candidate = ScramVerifier::derive(password, &self.salt, self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }

    /// Parses the password-file form.
    pub fn parse(text: &str) -> Result<ScramVerifier, VerifierError> {
        let rest = text
            .strip_prefix(VERIFIER_PREFIX)
            .ok_or(VerifierError::Shape)?;
        let (params, keys) = rest.split_once('$').ok_or(VerifierError::Shape)?;
        let (iterations, salt) = params.split_once(':').ok_or(VerifierError::Shape)?;
        let (stored_key, server_key) = keys.split_once(':').ok_or(VerifierError::Shape)?;
        let iterations = iterations
            .parse::<u32>()
            .ok()
            .filter(|i| (SCRAM_ITERATIONS..=SCRAM_ITERATIONS_MAX).contains(i))
            .and_then(NonZeroU32::new)
            .ok_or(VerifierError::Iterations)?;
        let key = |b64: &str| -> Result<Key, VerifierError> {
            let bytes = B64.decode(b64).map_err(|_| VerifierError::Encoding)?;
            bytes.try_into().map_err(|_| VerifierError::Encoding)
        };
        let salt = B64.decode(salt).map_err(|_| VerifierError::Encoding)?;
        if salt.is_empty() {
            return Err(VerifierError::Encoding);
        }
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key: key(stored_key)?,
            server_key: key(server_key)?,
        })
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERIFIER_PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// Where exchanges find users: a password file, and the key that makes up stable salts for
/// users it does not have.
#[derive(Debug)]
pub struct ScramUsers {
    file: Arc<PasswordFile>,
    mock_key: Key,
}

impl ScramUsers {
    pub fn new(file: Arc<PasswordFile>) -> ScramUsers {
        ScramUsers {
            file,
            mock_key: random_bytes(),
        }
    }

    /// A new exchange against these users.
    pub fn exchange(self: &Arc<Self>) -> ScramExchange {
        ScramExchange {
            users: self.clone(),
            state: State::Start,
        }
    }

    /// The verifier of `username`, and whether the user really has one: an unknown user (or
    /// one with only an argon2 hash) gets a made-up verifier that nothing matches, with a salt
    /// that is the same every time it is asked.
    fn lookup(&self, username: &str) -> (ScramVerifier, bool) {
        if let Some(verifier) = self.file.scram_verifier(username) {
            return (verifier.clone(), true);
        }
        let salt = hmac_sha256(&self.mock_key, username.as_bytes());
        let mock = ScramVerifier {
            iterations: NonZeroU32::new(SCRAM_ITERATIONS).expect("not zero"),
            salt: salt[..SALT_LEN].to_vec(),
            stored_key: random_bytes(),
            server_key: random_bytes(),
        };
        (mock, false)
    }
}

/// One SCRAM-SHA-256 authentication, server side.
#[derive(Debug)]
pub struct ScramExchange {
    users: Arc<ScramUsers>,
    state: State,
}

enum State {
    /// Waiting for client-first.
    Start,
    /// server-first sent; waiting for client-final.
    SentFirst(Box<SentFirst>),
    Done,
}

/// What the last step needs of the first.
struct SentFirst {
    username: String,
    verifier: ScramVerifier,
    known: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Start => "Start",
            State::SentFirst(_) => "SentFirst",
            State::Done => "Done",
        })
    }
}

/// A malformed message: not a refusal of the user, but of the conversation.
const MALFORMED: AuthStep = AuthStep::Failure(ReasonCode::NotAuthorized);
/// Wrong password or unknown user.
const REFUSED: AuthStep = AuthStep::Failure(ReasonCode::BadUserNameOrPassword);

impl AuthExchange for ScramExchange {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        let state = std::mem::replace(&mut self.state, State::Done);
        let Some(message) = std::str::from_utf8(data)
            .ok()
            .filter(|m| m.len() <= MESSAGE_LEN_MAX)
        else {
            return MALFORMED;
        };
        match state {
            State::Start => self.client_first(message),
            State::SentFirst(first) => {
                let SentFirst {
                    username,
                    verifier,
                    known,
                    gs2_header,
                    client_first_bare,
                    server_first,
                    nonce,
                } = *first;
                let Some((channel_binding, client_nonce, without_proof, proof)) =
                    parse_client_final(message)
                else {
                    return MALFORMED;
                };
                if channel_binding != B64.encode(&gs2_header) || client_nonce != nonce {
                    return MALFORMED;
                }
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let signature = hmac_sha256(&verifier.stored_key, auth_message.as_bytes());
                let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
                let matches = proof.len() == 32
                    && bool::from(sha256(&client_key).ct_eq(&verifier.stored_key));
                if !(matches && known) {
                    return REFUSED;
                }
                let server_signature = hmac_sha256(&verifier.server_key, auth_message.as_bytes());
                AuthStep::Success {
                    username,
                    data: Some(Bytes::from(format!("v={}", B64.encode(server_signature)))),
                }
            }
            State::Done => MALFORMED,
        }
    }
}

impl ScramExchange {
    fn client_first(&mut self, message: &str) -> AuthStep {
        let Some((gs2_header, bare, username, client_nonce)) = parse_client_first(message) else {
            return MALFORMED;
        };
        let (verifier, known) = self.users.lookup(&username);
        let nonce = format!("{client_nonce}{}", B64.encode(random_bytes::<NONCE_LEN>()));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let reply = Bytes::from(server_first.clone());
        self.state = State::SentFirst(Box::new(SentFirst {
            username,
            verifier,
            known,
            gs2_header: gs2_header.to_owned(),
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
        }));
        AuthStep::Continue(reply)
    }
}

/// `gs2-header client-first-message-bare` → (gs2 header, bare message, user name, nonce).
/// Channel binding is not offered: `p=` is refused; `n` and `y` (the client could bind but
/// thinks the server cannot) are fine. An authorization identity other than the user is
/// refused.
fn parse_client_first(message: &str) -> Option<(&str, &str, String, &str)> {
    let (flag, rest) = message.split_once(',')?;
    if flag != "n" && flag != "y" {
        return None;
    }
    let (authzid, bare) = rest.split_once(',')?;
    let gs2_header = &message[..flag.len() + 1 + authzid.len() + 1];
    let mut attributes = bare.split(',');
    let username = sasl_name(attributes.next()?.strip_prefix("n=")?)?;
    let nonce = attributes.next()?.strip_prefix("r=")?;
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return None;
    }
    // Extensions: a mandatory one ("m=") cannot be honoured.
    if attributes.any(|a| a.starts_with("m=")) {
        return None;
    }
    if !authzid.is_empty() && sasl_name(authzid.strip_prefix("a=")?)? != username {
        return None;
    }
    Some((gs2_header, bare, username, nonce))
}

/// `c=...,r=...[,ext],p=...` → (channel binding, nonce, message without proof, proof).
fn parse_client_final(message: &str) -> Option<(&str, &str, &str, Vec<u8>)> {
    let (without_proof, proof) = message.rsplit_once(",p=")?;
    let mut attributes = without_proof.split(',');
    let channel_binding = attributes.next()?.strip_prefix("c=")?;
    let nonce = attributes.next()?.strip_prefix("r=")?;
    let proof = B64.decode(proof).ok()?;
    Some((channel_binding, nonce, without_proof, proof))
}

/// A `saslname`: `=2C` is `,`, `=3D` is `=`, and no other `=` may appear.
fn sasl_name(raw: &str) -> Option<String> {
    let mut name = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('=') {
        name.push_str(&rest[..at]);
        match rest.get(at..at + 3)? {
            "=2C" => name.push(','),
            "=3D" => name.push('='),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    name.push_str(rest);
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example: user "user", password "pencil".
    const SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_verifier() -> ScramVerifier {
        let salt = B64.decode(SALT_B64).unwrap();
        ScramVerifier::derive(b"pencil", &salt, NonZeroU32::new(4096).unwrap())
    }

    fn users_with(entries: &[(&str, &ScramVerifier)]) -> Arc<ScramUsers> {
        let text: String = entries
            .iter()
            .map(|(user, verifier)| format!("{user}:{verifier}\n"))
            .collect();
        Arc::new(ScramUsers::new(Arc::new(
            PasswordFile::parse(&text).unwrap(),
        )))
    }

    /// Runs the RFC's conversation, with the server nonce the RFC's server chose.
    #[test]
    fn the_rfc_7677_example_authenticates() {
        let users = users_with(&[("user", &rfc_verifier())]);
        let mut exchange = users.exchange();
        let AuthStep::Continue(first) = exchange.step(CLIENT_FIRST.as_bytes()) else {
            panic!("client-first refused");
        };
        let first = std::str::from_utf8(&first).unwrap().to_owned();
        assert!(first.starts_with("r=rOprNGfwEbeRWgbNEkqO"), "{first}");
        assert!(first.ends_with(&format!(",s={SALT_B64},i=4096")), "{first}");
        // Put the RFC's server nonce in, so that the RFC's proof applies.
        let rfc_server_first =
            format!("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s={SALT_B64},i=4096");
        let State::SentFirst(first) = &mut exchange.state else {
            panic!("no server-first state");
        };
        first.server_first = rfc_server_first;
        first.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_owned();
        let step = exchange.step(CLIENT_FINAL.as_bytes());
        assert_eq!(
            step,
            AuthStep::Success {
                username: "user".to_owned(),
                data: Some(Bytes::from_static(SERVER_FINAL.as_bytes())),
            }
        );
        assert_eq!(exchange.step(b"again"), MALFORMED, "an exchange runs once");
    }

    #[test]
    fn a_wrong_proof_and_an_unknown_user_are_refused_alike() {
        let users = users_with(&[("user", &rfc_verifier())]);
        for (first, user) in [(CLIENT_FIRST, "user"), ("n,,n=nobody,r=abc", "nobody")] {
            let mut exchange = users.exchange();
            let AuthStep::Continue(server_first) = exchange.step(first.as_bytes()) else {
                panic!("{user}: client-first refused");
            };
            let server_first = std::str::from_utf8(&server_first).unwrap();
            let nonce = server_first[2..].split(',').next().unwrap();
            let bad_proof = B64.encode([7u8; 32]);
            let last = format!("c=biws,r={nonce},p={bad_proof}");
            assert_eq!(exchange.step(last.as_bytes()), REFUSED, "{user}");
        }
        // An unknown user's salt is stable, so asking twice tells nothing.
        let salt_of = |users: &Arc<ScramUsers>| {
            let AuthStep::Continue(reply) = users.exchange().step(b"n,,n=ghost,r=x") else {
                panic!()
            };
            let reply = String::from_utf8(reply.to_vec()).unwrap();
            reply.split(',').nth(1).unwrap().to_owned()
        };
        assert_eq!(salt_of(&users), salt_of(&users));
    }

    #[test]
    fn malformed_messages_are_refused() {
        let users = users_with(&[("user", &rfc_verifier())]);
        for first in [
            "",
            "p=tls-unique,,n=user,r=abc",
            "n,,n=user",
            "n,,r=abc,n=user",
            "n,,n=us=er,r=abc",
            "n,a=other,n=user,r=abc",
            "n,,n=user,r=abc,m=mandatory",
            "n,,n=user,r=a b",
        ] {
            assert_eq!(
                users.exchange().step(first.as_bytes()),
                MALFORMED,
                "{first:?}"
            );
        }
        assert!(matches!(
            users.exchange().step(b"n,a=user,n=user,r=abc"),
            AuthStep::Continue(_)
        ));
        let mut exchange = users.exchange();
        let AuthStep::Continue(server_first) = exchange.step(CLIENT_FIRST.as_bytes()) else {
            panic!()
        };
        let nonce = std::str::from_utf8(&server_first).unwrap()[2..]
            .split(',')
            .next()
            .unwrap()
            .to_owned();
        // Another nonce than the server's.
        let last = format!("c=biws,r={nonce}x,p={}", B64.encode([0u8; 32]));
        assert_eq!(exchange.step(last.as_bytes()), MALFORMED);
    }

    #[test]
    fn sasl_names_unescape() {
        assert_eq!(sasl_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(sasl_name("a=2"), None);
        assert_eq!(sasl_name("a=41"), None);
        assert_eq!(sasl_name(""), None);
    }

    #[test]
    fn verifiers_round_trip_and_check_plain_passwords() {
        let verifier = ScramVerifier::new(b"s3cret");
        let text = verifier.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"), "{text}");
        let parsed = ScramVerifier::parse(&text).unwrap();
        assert_eq!(parsed, verifier);
        assert!(parsed.verify_password(b"s3cret"));
        assert!(!parsed.verify_password(b"s3cret!"));
        assert_ne!(ScramVerifier::new(b"s3cret"), verifier, "fresh salt");
        let rfc = rfc_verifier().to_string();
        for bad in [
            "SCRAM-SHA-256$4096:c2FsdA==",
            &rfc.replace("$4096:", "$1:"),
            &rfc.replace("$4096:", "$999999999:"),
            &rfc.replace("$4096:", "$4096:!!"),
            "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
        ] {
            assert!(ScramVerifier::parse(bad).is_err(), "{bad}");
        }
    }
}
