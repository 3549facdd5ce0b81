//! [`PasswordFile`]: user names and argon2id password hashes, in the file `keel passwd` writes.
//!
//! The format follows `mosquitto_passwd`: one `username:hash` per line, `#` starts a comment
//! line, blank lines are ignored. The hash is a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so its parameters travel with it and a
//! file hashed with other parameters keeps working; or a SCRAM-SHA-256 verifier
//! (`SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`, `keel passwd --scram`), which serves
//! both plain passwords and MQTT 5 enhanced authentication ([`super::scram`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use super::scram::{ScramVerifier, VERIFIER_PREFIX};

/// Memory cost of new hashes, in KiB: OWASP's floor for argon2id (19 MiB, 2 passes, 1 lane).
///
/// One verify took 15 ms on this project's 2-core development machine (up to 37 ms under
/// load), so the node runs CONNECT verifications off its I/O threads, one at a time
/// (`crate::auth::Offload`): a burst of CONNECTs with passwords costs one core and holds
/// up nobody else. (It ran inline at 4 MiB before, 2.6 ms, which left a password file
/// weaker than OWASP asks.) Hashes made with other parameters keep working: each PHC string
/// carries its own.
pub const HASH_M_COST_KIB: u32 = 19 * 1024;

/// Passes (time cost) of new hashes; see [`HASH_M_COST_KIB`].
pub const HASH_T_COST: u32 = 2;

/// Lanes of new hashes. The `parallel` feature of argon2 is off, so more lanes would only
/// cost more time.
pub const HASH_P_COST: u32 = 1;

/// Largest memory cost accepted from a password file, in KiB (64 MiB): a typo in a hand-edited
/// hash must not make every CONNECT allocate gigabytes.
pub const HASH_M_COST_MAX_KIB: u32 = 64 * 1024;

/// Largest time cost accepted from a password file, for the same reason.
pub const HASH_T_COST_MAX: u32 = 16;

/// The hash that unknown users are verified against, so that refusing them takes as long as
/// refusing a wrong password. Made with the parameters of new hashes from 32 random bytes that
/// were then thrown away; a test checks that its parameters follow the constants above.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$tvLbpJdpYK+HMOQ7+0zTng$\
                          P/izdzIMX/bwj3CVbWQfXUOhfIEpAc6VeGkgOPxVbBA";

/// Longest user name: an MQTT string holds at most 65,535 bytes.
pub const USERNAME_LEN_MAX: usize = u16::MAX as usize;

/// The argon2 parameters of new hashes.
fn params() -> Params {
    Params::new(HASH_M_COST_KIB, HASH_T_COST, HASH_P_COST, None)
        .expect("the hashing constants are valid argon2 parameters")
}

/// Hashes `password` into a PHC string for a password file, with a fresh random salt.
///
/// The salt comes from the operating system's entropy source (`getrandom`, inside argon2),
/// not from the seeded [`Rng`](crate::net::Rng) seam: hashing happens only in `keel passwd`
/// and in tests, never inside a simulated node, and a salt must be unpredictable.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
    let hash = hasher
        .hash_password(password)
        .map_err(|error| HashError(error.to_string()))?;
    Ok(hash.to_string())
}

/// Hashing failed: the OS entropy source or argon2 refused. Not expected in practice.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// User names and their password hashes, loaded from a password file.
pub struct PasswordFile {
    /// User name → parsed credential. Parsed once at load, so every entry is known to be a
    /// valid argon2 hash or SCRAM verifier within the cost limits.
    entries: BTreeMap<String, Credential>,
    /// Verified against when the user is unknown, so that costs what a wrong password costs.
    dummy: PasswordHash,
    /// The same for SCRAM: every verify runs one argon2 and one PBKDF2, whatever the entry.
    dummy_scram: ScramVerifier,
}

/// Hashes are not secrets, but there is no reason to print them either.
impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// What a password file keeps of one user's password.
enum Credential {
    Argon2(PasswordHash),
    Scram(ScramVerifier),
}

/// Why a password file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read password file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("password file {}: {error}", path.display())]
    Invalid { path: PathBuf, error: LineError },
}

/// A bad line of a password file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub problem: EntryError,
}

/// What is wrong with a password file entry, or with a user name given to `keel passwd`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("expected username:hash, found no ':'")]
    MissingColon,
    #[error("the user name is empty")]
    EmptyUsername,
    #[error("the user name {0:?} contains ':' or a control character, or starts with '#'")]
    UsernameCharacters(String),
    #[error("the user name {0:?} starts or ends with white space")]
    UsernameSpace(String),
    #[error("the user name is longer than {USERNAME_LEN_MAX} bytes")]
    UsernameTooLong,
    #[error("user {username:?} is also on line {first_line}")]
    Duplicate { username: String, first_line: usize },
    #[error("the SCRAM verifier of {username:?} is not valid: {reason}")]
    BadVerifier { username: String, reason: String },
    #[error("the hash of {username:?} is not a PHC string: {reason}")]
    BadHash { username: String, reason: String },
    #[error(
        "the hash of {username:?} uses {algorithm}; expected argon2id (as `keel passwd` writes)"
    )]
    NotArgon2 { username: String, algorithm: String },
    #[error(
        "the hash of {username:?} costs more than m={HASH_M_COST_MAX_KIB},t={HASH_T_COST_MAX} \
         (it would slow every CONNECT)"
    )]
    TooCostly { username: String },
}

/// Why a password file could not be edited.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The file as it is has a bad line.
    #[error(transparent)]
    File(#[from] LineError),
    /// The new entry is not valid.
    #[error(transparent)]
    Entry(#[from] EntryError),
}

/// Checks a user name for a password file: not empty, within the MQTT string limit, no `:`
/// (the separator) or control characters (line breaks), no leading `#` (a comment) and no
/// white space at either end (it could not be told apart on the line).
pub fn check_username(username: &str) -> Result<(), EntryError> {
    if username.is_empty() {
        return Err(EntryError::EmptyUsername);
    }
    if username.len() > USERNAME_LEN_MAX {
        return Err(EntryError::UsernameTooLong);
    }
    if username.starts_with('#') || username.contains(|c: char| c == ':' || c.is_control()) {
        return Err(EntryError::UsernameCharacters(username.to_owned()));
    }
    if username.trim() != username {
        return Err(EntryError::UsernameSpace(username.to_owned()));
    }
    Ok(())
}

/// One line of a password file.
enum Line<'a> {
    /// Blank or a comment: kept as it is when the file is edited.
    Other,
    Entry {
        username: &'a str,
        hash: &'a str,
    },
}

fn parse_line(raw: &str) -> Result<Line<'_>, EntryError> {
    let line = raw.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Line::Other);
    }
    let (username, hash) = line.split_once(':').ok_or(EntryError::MissingColon)?;
    check_username(username)?;
    Ok(Line::Entry {
        username,
        hash: hash.trim(),
    })
}

/// Parses and bounds one credential: a SCRAM verifier or an argon2 hash.
fn parse_credential(username: &str, text: &str) -> Result<Credential, EntryError> {
    if text.starts_with(VERIFIER_PREFIX) {
        return ScramVerifier::parse(text)
            .map(Credential::Scram)
            .map_err(|error| EntryError::BadVerifier {
                username: username.to_owned(),
                reason: error.to_string(),
            });
    }
    parse_hash(username, text).map(Credential::Argon2)
}

/// Parses and bounds one hash.
fn parse_hash(username: &str, hash: &str) -> Result<PasswordHash, EntryError> {
    let bad = |reason: String| EntryError::BadHash {
        username: username.to_owned(),
        reason,
    };
    let parsed = PasswordHash::new(hash).map_err(|e| bad(e.to_string()))?;
    if Algorithm::try_from(parsed.algorithm.as_str()).is_err() {
        return Err(EntryError::NotArgon2 {
            username: username.to_owned(),
            algorithm: parsed.algorithm.to_string(),
        });
    }
    let params = Params::try_from(&parsed).map_err(|e| bad(e.to_string()))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(bad("it has no salt or no hash".to_owned()));
    }
    if params.m_cost() > HASH_M_COST_MAX_KIB || params.t_cost() > HASH_T_COST_MAX {
        return Err(EntryError::TooCostly {
            username: username.to_owned(),
        });
    }
    Ok(parsed)
}

impl PasswordFile {
    /// Reads and parses the password file at `path`.
    pub fn load(path: &Path) -> Result<PasswordFile, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|error| AuthError::Read {
            path: path.to_owned(),
            error,
        })?;
        PasswordFile::parse(&text).map_err(|error| AuthError::Invalid {
            path: path.to_owned(),
            error,
        })
    }

    /// Parses the text of a password file. Every line must be blank, a comment, or a valid
    /// entry; a user may appear once.
    pub fn parse(text: &str) -> Result<PasswordFile, LineError> {
        let mut entries = BTreeMap::new();
        let mut first_lines = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let at = |problem| LineError { line, problem };
            let Line::Entry { username, hash } = parse_line(raw).map_err(at)? else {
                continue;
            };
            if let Some(&first_line) = first_lines.get(username) {
                return Err(at(EntryError::Duplicate {
                    username: username.to_owned(),
                    first_line,
                }));
            }
            first_lines.insert(username, line);
            let credential = parse_credential(username, hash).map_err(at)?;
            entries.insert(username.to_owned(), credential);
        }
        let dummy = PasswordHash::new(DUMMY_HASH).expect("DUMMY_HASH is a PHC string");
        Ok(PasswordFile {
            entries,
            dummy,
            dummy_scram: ScramVerifier::dummy(),
        })
    }

    /// Whether `password` is the password of `username`.
    ///
    /// Runs one argon2 and one PBKDF2 verification whatever the user (an unknown user is
    /// checked against dummies with the parameters of new entries, an argon2 user against a
    /// dummy SCRAM verifier too, a SCRAM user against the dummy hash too), so the time taken
    /// does not tell an attacker which user names exist, nor which kind of entry they have.
    /// Both compare their outputs in constant time.
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        let entry = self.entries.get(username);
        let (hash, scram) = match entry {
            Some(Credential::Argon2(hash)) => (hash, &self.dummy_scram),
            Some(Credential::Scram(verifier)) => (&self.dummy, verifier),
            None => (&self.dummy, &self.dummy_scram),
        };
        // `verify_password` takes the algorithm, version and costs from the hash itself.
        let argon2_matches = Argon2::default().verify_password(password, hash).is_ok();
        let scram_matches = scram.verify_password(password);
        #[cfg(test)]
        tests::WORK.with(|work| work.set((work.get().0 + 1, work.get().1 + 1)));
        match entry {
            Some(Credential::Argon2(_)) => argon2_matches,
            Some(Credential::Scram(_)) => scram_matches,
            None => false,
        }
    }

    /// The SCRAM verifier of `username`, if its entry is one.
    pub fn scram_verifier(&self, username: &str) -> Option<&ScramVerifier> {
        match self.entries.get(username) {
            Some(Credential::Scram(verifier)) => Some(verifier),
            _ => None,
        }
    }

    /// Whether `username` has an entry.
    pub fn contains(&self, username: &str) -> bool {
        self.entries.contains_key(username)
    }

    /// The user names, in order.
    pub fn usernames(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The password file `text` with `username`'s hash set to `hash`: its line replaced in place,
/// or a new line appended. Comments, blank lines and the order of the other entries are kept.
/// Fails if `text` is not a valid password file (it is not rewritten half-understood) or the
/// user name or hash is not valid.
pub fn set_entry(text: &str, username: &str, hash: &str) -> Result<String, EditError> {
    PasswordFile::parse(text)?;
    check_username(username)?;
    parse_credential(username, hash)?;
    let entry = format!("{username}:{hash}");
    let mut out = String::with_capacity(text.len() + entry.len() + 1);
    let mut replaced = false;
    for raw in text.lines() {
        match parse_line(raw) {
            Ok(Line::Entry { username: user, .. }) if user == username => {
                out.push_str(&entry);
                replaced = true;
            }
            _ => out.push_str(raw),
        }
        out.push('\n');
    }
    if !replaced {
        out.push_str(&entry);
        out.push('\n');
    }
    Ok(out)
}

/// The password file `text` without `username`'s entry; `Ok(None)` when it has none.
pub fn remove_entry(text: &str, username: &str) -> Result<Option<String>, EditError> {
    let file = PasswordFile::parse(text)?;
    if !file.contains(username) {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    for raw in text.lines() {
        if matches!(parse_line(raw), Ok(Line::Entry { username: user, .. }) if user == username) {
            continue;
        }
        out.push_str(raw);
        out.push('\n');
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Argon2 and PBKDF2 verifications `verify` ran on this thread.
        pub(super) static WORK: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
    }

    /// What one `verify` runs, whatever it is asked: a refusal's cost tells nothing of the
    /// user (issue 16 measured 0.23 ms for an unknown user, 0.84 ms for a SCRAM user and
    /// 2.6 ms for an argon2 user with a wrong password).
    #[test]
    fn every_verification_runs_one_argon2_and_one_pbkdf2() {
        let argon2 = hashed("pw");
        let scram = ScramVerifier::new(b"pw").to_string();
        let file = PasswordFile::parse(&format!("alice:{argon2}\nbob:{scram}\n")).unwrap();
        for (user, password) in [
            ("alice", "no"),
            ("bob", "no"),
            ("carol", "no"),
            ("alice", "pw"),
        ] {
            WORK.with(|work| work.set((0, 0)));
            file.verify(user, password.as_bytes());
            assert_eq!(WORK.with(std::cell::Cell::get), (1, 1), "{user}");
        }
        assert!(file.verify("bob", b"pw") && file.verify("alice", b"pw"));
        assert!(!file.verify("carol", b"pw"));
    }

    /// Hashing is the slow part of these tests: hash each password once.
    fn hashed(password: &str) -> String {
        hash_password(password.as_bytes()).unwrap()
    }

    #[test]
    fn a_hashed_password_verifies_and_others_do_not() {
        let hash = hashed("s3cret");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let file = PasswordFile::parse(&format!("alice:{hash}\n")).unwrap();
        assert!(file.verify("alice", b"s3cret"));
        assert!(!file.verify("alice", b"s3cret "));
        assert!(!file.verify("alice", b""));
        assert!(
            !file.verify("bob", b"s3cret"),
            "an unknown user never verifies"
        );
        assert!(
            !file.verify("Alice", b"s3cret"),
            "user names are case-sensitive"
        );
    }

    #[test]
    fn every_hash_gets_its_own_salt() {
        assert_ne!(hashed("same"), hashed("same"));
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_of_new_hashes() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let new = PasswordHash::new(&hashed("x")).unwrap();
        assert_eq!(dummy.algorithm, new.algorithm);
        assert_eq!(dummy.version, new.version);
        assert_eq!(dummy.params, new.params);
        assert_eq!(dummy.salt.unwrap().len(), new.salt.unwrap().len());
        assert_eq!(dummy.hash.unwrap().len(), new.hash.unwrap().len());
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_accepted() {
        let hash = hashed("pw");
        let text = format!("# users\n\n   \nalice:{hash}\r\n  # indented comment\nbob: {hash} \n");
        let file = PasswordFile::parse(&text).unwrap();
        assert_eq!(file.usernames().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(file.verify("alice", b"pw") && file.verify("bob", b"pw"));
        assert!(PasswordFile::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let hash = hashed("pw");
        let cases = [
            (format!("# c\nalice {hash}\n"), 2, "no ':'"),
            (format!(":{hash}"), 1, "empty"),
            (format!("a:{hash}\n\na:{hash}"), 3, "also on line 1"),
            ("a:nothash".to_owned(), 1, "not a PHC string"),
            ("a:$6$salt$hash".to_owned(), 1, "not a PHC string"),
            (
                "a:$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
                1,
                "pbkdf2",
            ),
            (format!(" a:{hash}"), 1, "white space"),
            (
                "a:$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
                1,
                "costs more",
            ),
            ("a:$argon2id$v=19$m=4096,t=2,p=1".to_owned(), 1, "no salt"),
            (
                "a:SCRAM-SHA-256$4096:c2FsdA==".to_owned(),
                1,
                "SCRAM verifier",
            ),
            (
                "a:SCRAM-SHA-256$100:c2FsdA==$AAAA:AAAA".to_owned(),
                1,
                "iterations must be",
            ),
        ];
        for (text, line, words) in cases {
            let error = PasswordFile::parse(&text).expect_err(&text);
            assert_eq!(error.line, line, "{text}: {error}");
            assert!(error.to_string().contains(words), "{text}: {error}");
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let error = PasswordFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("cannot read password file") && error.contains("passwd"));
        std::fs::write(&path, "x\n").unwrap();
        let error = PasswordFile::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("passwd: line 1: expected username:hash"),
            "{error}"
        );
    }

    #[test]
    fn user_names_are_checked() {
        for good in ["alice", "a b", "ünïcødé", "x#y"] {
            check_username(good).unwrap();
        }
        for bad in ["", "a:b", "#a", "a\nb", " a", "a ", "a\tb"] {
            check_username(bad).expect_err(bad);
        }
        check_username(&"x".repeat(USERNAME_LEN_MAX + 1)).unwrap_err();
    }

    #[test]
    fn set_entry_replaces_in_place_and_appends_new_users() {
        let (one, two) = (hashed("one"), hashed("two"));
        let text = format!("# keep me\nalice:{one}\n\nbob:{one}\n");
        let updated = set_entry(&text, "alice", &two).unwrap();
        assert_eq!(updated, format!("# keep me\nalice:{two}\n\nbob:{one}\n"));
        let added = set_entry(&updated, "carol", &one).unwrap();
        assert_eq!(added, format!("{updated}carol:{one}\n"));
        let file = PasswordFile::parse(&added).unwrap();
        assert!(file.verify("alice", b"two") && file.verify("carol", b"one"));
        assert_eq!(
            set_entry("", "dave", &one).unwrap(),
            format!("dave:{one}\n")
        );
        // A file without a final newline still gets its new entry on a line of its own.
        assert_eq!(
            set_entry(&format!("bob:{one}"), "eve", &two).unwrap(),
            format!("bob:{one}\neve:{two}\n")
        );
    }

    #[test]
    fn set_entry_refuses_bad_files_names_and_hashes() {
        let hash = hashed("pw");
        let error = set_entry("garbage\n", "a", &hash).unwrap_err();
        assert!(
            matches!(error, EditError::File(LineError { line: 1, .. })),
            "{error}"
        );
        let error = set_entry("", "a:b", &hash).unwrap_err();
        assert!(matches!(
            error,
            EditError::Entry(EntryError::UsernameCharacters(_))
        ));
        let error = set_entry("", "a", "plain").unwrap_err();
        assert!(matches!(
            error,
            EditError::Entry(EntryError::BadHash { .. })
        ));
    }

    #[test]
    fn remove_entry_keeps_everything_else() {
        let hash = hashed("pw");
        let text = format!("# c\nalice:{hash}\nbob:{hash}\n");
        assert_eq!(
            remove_entry(&text, "alice").unwrap(),
            Some(format!("# c\nbob:{hash}\n"))
        );
        assert_eq!(remove_entry(&text, "carol").unwrap(), None);
        assert!(remove_entry("bad", "alice").is_err());
    }
}
