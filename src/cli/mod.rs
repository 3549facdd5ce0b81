//! What the `keel` binary does: its arguments ([`Cli`]), the configuration `keel serve` runs
//! with (file, then flags), `keel passwd` and `keel check-config`.
//!
//! The binary only parses arguments, sets up logging and calls into here, so all of this is
//! tested as a library.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};

use crate::auth::{self, AuthError, EditError, EntryError, HashError};
use crate::config::{self, Config, ConfigError, HostPort, InvalidConfig, Peer, REDACTED};
use crate::transport::{tls, TlsConfigError};

mod cert;

pub use cert::{cert, CertCliError, CertCommand};

/// The `keel` command line.
#[derive(Debug, Parser)]
#[command(
    name = "keel",
    version = crate::VERSION,
    about = "An MQTT 3.1.1/5.0 broker, alone or as a Raft cluster"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a broker node.
    Serve(ServeArgs),
    /// Set or delete a user's password in a password file ([auth] password_file).
    Passwd(PasswdArgs),
    /// Validate a configuration file and print the effective configuration.
    CheckConfig(CheckConfigArgs),
    /// Make the certificates of the cluster's mutual TLS ([cluster.tls]).
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `keel serve`: a configuration file and flags that override it.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see keel.example.toml); without it, the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// MQTT over TCP listener address (listeners.tcp); "" turns it off.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<Listen>,
    /// MQTT over WebSocket listener address (listeners.ws); "" turns it off.
    #[arg(long, value_name = "ADDR")]
    pub ws_listen: Option<Listen>,
    /// Admin HTTP listener address (listeners.http); "" turns it off.
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<Listen>,
    /// Directory of the node's durable state (data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This node's id in the cluster (node_id).
    #[arg(long, value_name = "N")]
    pub node_id: Option<u64>,
    /// Address to listen on for cluster peers (cluster.listen).
    #[arg(long, value_name = "ADDR")]
    pub cluster_listen: Option<SocketAddr>,
    /// Initial voters, this node included (cluster.peers); replaces the file's list.
    #[arg(long, value_name = "ID@HOST:PORT,...", value_delimiter = ',')]
    pub peers: Option<Vec<Peer>>,
    /// A node of a running cluster to join (cluster.join).
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<HostPort>,
    /// Where the other nodes reach this one (cluster.advertise).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<HostPort>,
    /// Serve the cluster listener without TLS (cluster.insecure): any host that reaches it
    /// can join the cluster.
    #[arg(long)]
    pub cluster_insecure: bool,
}

/// A listener address on the command line: `IP:PORT`, or `""` for off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl FromStr for Listen {
    type Err = String;
    fn from_str(text: &str) -> Result<Listen, String> {
        config::parse_listen_addr(text).map(Listen)
    }
}

impl ServeArgs {
    /// The configuration to serve with: the file (or the defaults), the flags applied on top,
    /// validated.
    pub fn config(&self) -> Result<Config, CliError> {
        let mut config = match &self.config {
            Some(path) => Config::read(path)?,
            None => Config::default(),
        };
        self.apply_overrides(&mut config);
        config.validate().map_err(|error| CliError::Invalid {
            file: self.config.clone(),
            error,
        })?;
        Ok(config)
    }

    /// Sets every option given as a flag; the others keep the file's values.
    pub fn apply_overrides(&self, config: &mut Config) {
        if let Some(Listen(addr)) = self.listen {
            config.listeners.tcp = addr;
        }
        if let Some(Listen(addr)) = self.ws_listen {
            config.listeners.ws = addr;
        }
        if let Some(Listen(addr)) = self.http_listen {
            config.listeners.http = addr;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        if let Some(id) = self.node_id {
            config.node_id = id;
        }
        if let Some(addr) = self.cluster_listen {
            config.cluster.listen = Some(addr);
        }
        if let Some(peers) = &self.peers {
            config.cluster.peers.clone_from(peers);
        }
        if let Some(join) = &self.join {
            config.cluster.join = Some(join.clone());
        }
        if let Some(addr) = &self.advertise {
            config.cluster.advertise = Some(addr.clone());
        }
        if self.cluster_insecure {
            config.cluster.insecure = true;
        }
    }
}

/// `keel passwd`: like `mosquitto_passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Delete USERNAME from FILE instead of setting its password.
    #[arg(long, short = 'D', conflicts_with = "password")]
    pub delete: bool,
    /// The password. Without it, it is asked for twice without echo on a terminal, or read
    /// as one line from standard input.
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// Store a SCRAM-SHA-256 verifier instead of an argon2id hash: the user can then also
    /// use MQTT 5 enhanced authentication (method SCRAM-SHA-256), and plain passwords still
    /// work.
    #[arg(long, conflicts_with = "delete")]
    pub scram: bool,
    /// The password file; created (mode 0600) if it does not exist.
    pub file: PathBuf,
    /// The user to set or delete.
    pub username: String,
}

/// `keel check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML configuration file to check.
    pub file: PathBuf,
}

/// Why a command failed. Messages name the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration, flags applied, does not validate.
    #[error("invalid configuration{}: {error}", from_file(file.as_deref()))]
    Invalid {
        file: Option<PathBuf>,
        error: InvalidConfig,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    NodeAuth(#[from] auth::NodeAuthError),
    #[error("[tls]: {0}")]
    Tls(#[from] TlsConfigError),
    #[error("invalid user name: {0}")]
    Username(EntryError),
    #[error("password file {}: {error}", path.display())]
    Edit { path: PathBuf, error: EditError },
    #[error("cannot read password file {}: {error}", path.display())]
    ReadFile { path: PathBuf, error: io::Error },
    #[error("cannot write password file {}: {error}", path.display())]
    WriteFile { path: PathBuf, error: io::Error },
    #[error("user {username:?} is not in password file {}", path.display())]
    NoSuchUser { path: PathBuf, username: String },
    #[error("cannot read the password: {0}")]
    ReadPassword(io::Error),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("the password is longer than {PASSWORD_LEN_MAX} bytes")]
    PasswordTooLong,
    #[error("the passwords do not match")]
    PasswordsDiffer,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("cannot print the configuration: {0}")]
    Print(#[from] toml::ser::Error),
    #[error(transparent)]
    PeerTls(#[from] crate::grpc::PeerTlsError),
}

fn from_file(file: Option<&Path>) -> String {
    match file {
        Some(path) => format!(" (file {} and flags)", path.display()),
        None => " (defaults and flags)".to_owned(),
    }
}

/// Longest password: an MQTT binary field holds at most 65,535 bytes.
pub const PASSWORD_LEN_MAX: usize = u16::MAX as usize;

/// What `keel passwd` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswdOutcome {
    Added,
    Updated,
    Deleted,
}

/// `keel passwd` without `--delete`: sets `username`'s password in the file at `path`,
/// creating the file if needed. The file is replaced atomically.
pub fn set_password(
    path: &Path,
    username: &str,
    password: &[u8],
) -> Result<PasswdOutcome, CliError> {
    set_credential(path, username, password, false)
}

/// [`set_password`], storing a SCRAM-SHA-256 verifier (`keel passwd --scram`) when `scram`.
pub fn set_credential(
    path: &Path,
    username: &str,
    password: &[u8],
    scram: bool,
) -> Result<PasswdOutcome, CliError> {
    auth::check_username(username).map_err(CliError::Username)?;
    check_password(password)?;
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(CliError::ReadFile {
                path: path.to_owned(),
                error,
            })
        }
    };
    let existed = auth::PasswordFile::parse(&text)
        .map_err(|error| CliError::Edit {
            path: path.to_owned(),
            error: error.into(),
        })?
        .contains(username);
    let hash = if scram {
        auth::scram::ScramVerifier::new(password).to_string()
    } else {
        auth::hash_password(password)?
    };
    let edited = auth::set_entry(&text, username, &hash).map_err(|error| CliError::Edit {
        path: path.to_owned(),
        error,
    })?;
    write_atomically(path, edited.as_bytes()).map_err(|error| CliError::WriteFile {
        path: path.to_owned(),
        error,
    })?;
    Ok(if existed {
        PasswdOutcome::Updated
    } else {
        PasswdOutcome::Added
    })
}

/// `keel passwd --delete`: removes `username` from the file at `path`, atomically.
pub fn delete_user(path: &Path, username: &str) -> Result<PasswdOutcome, CliError> {
    let text = fs::read_to_string(path).map_err(|error| CliError::ReadFile {
        path: path.to_owned(),
        error,
    })?;
    let edited = auth::remove_entry(&text, username).map_err(|error| CliError::Edit {
        path: path.to_owned(),
        error,
    })?;
    let Some(edited) = edited else {
        return Err(CliError::NoSuchUser {
            path: path.to_owned(),
            username: username.to_owned(),
        });
    };
    write_atomically(path, edited.as_bytes()).map_err(|error| CliError::WriteFile {
        path: path.to_owned(),
        error,
    })?;
    Ok(PasswdOutcome::Deleted)
}

/// Runs `keel passwd`, asking for the password when it was not given.
pub fn passwd(args: &PasswdArgs) -> Result<PasswdOutcome, CliError> {
    if args.delete {
        return delete_user(&args.file, &args.username);
    }
    // Check the name before asking for a password that would then be refused.
    auth::check_username(&args.username).map_err(CliError::Username)?;
    let password = match &args.password {
        Some(password) => password.clone(),
        None => read_password()?,
    };
    set_credential(&args.file, &args.username, password.as_bytes(), args.scram)
}

fn check_password(password: &[u8]) -> Result<(), CliError> {
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    if password.len() > PASSWORD_LEN_MAX {
        return Err(CliError::PasswordTooLong);
    }
    Ok(())
}

/// Asks twice without echo on a terminal; otherwise reads one line from standard input.
fn read_password() -> Result<String, CliError> {
    if io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(CliError::ReadPassword)?;
        let again =
            rpassword::prompt_password("Reenter password: ").map_err(CliError::ReadPassword)?;
        if first != again {
            return Err(CliError::PasswordsDiffer);
        }
        return Ok(first);
    }
    read_password_line(io::stdin().lock())
}

/// The first line of `input`, without its line ending.
fn read_password_line(input: impl BufRead) -> Result<String, CliError> {
    let mut line = String::new();
    // Two bytes more than the limit leave room for "\r\n", so a longer password is seen.
    let limit = u64::try_from(PASSWORD_LEN_MAX + 2).expect("fits");
    input
        .take(limit + 1)
        .read_line(&mut line)
        .map_err(CliError::ReadPassword)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    check_password(password.as_bytes())?;
    Ok(password.to_owned())
}

/// Replaces the file at `path` with `contents` so that a reader sees the old file or the new
/// one, never a part: write a temporary file beside it, sync it, rename it over, sync the
/// directory. A new file gets mode 0600; an existing one keeps its permissions.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A temporary file left by a crashed run is ours to replace.
    match fs::remove_file(&tmp) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let result = write_new(&tmp, path, contents).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // The rename is durable once the directory is synced (a no-op where unsupported).
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes `contents` to the new file `tmp`, with the permissions of `like` when it exists.
fn write_new(tmp: &Path, like: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(tmp)?;
    file.write_all(contents)?;
    if let Ok(metadata) = fs::metadata(like) {
        file.set_permissions(metadata.permissions())?;
    }
    file.sync_all()
}

/// `keel check-config`: loads and validates the file, loads the password file and the TLS
/// certificate and key it names, and returns the effective configuration as TOML (defaults
/// included), for printing.
pub fn check_config(path: &Path) -> Result<String, CliError> {
    let config = Config::load(path)?;
    auth::NodeAuth::from_config(&config.auth, &crate::server::http_auth_method)?;
    if let Some(settings) = config.tls_settings() {
        tls::acceptor(&settings)?;
    }
    if let Some(files) = &config.cluster.tls {
        let files = crate::grpc::PeerTlsFiles {
            ca: files.ca.clone(),
            cert: files.cert.clone(),
            key: files.key.clone(),
        };
        crate::grpc::PeerTls::load(&files, config.node_id, Default::default())?;
    }
    Ok(format!(
        "# {}: valid. The effective configuration, defaults included (secrets shown as \
         {REDACTED:?}):\n\n{}",
        path.display(),
        config.redacted().to_toml()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["keel", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{e}"))
            .command
        {
            Command::Serve(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_flags_and_no_file_give_the_defaults() {
        assert_eq!(serve(&[]).config().unwrap(), Config::default());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keel.toml");
        fs::write(
            &file,
            "node_id = 7\ndata_dir = \"/file\"\n[listeners]\nws = \"127.0.0.1:9000\"\n\
             [mqtt]\nqueue_max = 5\n[cluster]\npeers = [\"7@a:1\"]\nlisten = \"0.0.0.0:7000\"\n\
             insecure = true\n",
        )
        .unwrap();
        let file_arg = file.to_str().unwrap();

        let config = serve(&["--config", file_arg]).config().unwrap();
        assert_eq!((config.node_id, config.mqtt.queue_max), (7, 5));

        let config = serve(&[
            "--config",
            file_arg,
            "--listen",
            "127.0.0.1:1884",
            "--http-listen",
            "",
            "--data-dir",
            "/flag",
            "--node-id",
            "2",
            "--cluster-listen",
            "0.0.0.0:7000",
            "--peers",
            "1@a:7000,2@b:7000",
        ])
        .config()
        .unwrap();
        assert_eq!(
            config.listeners.tcp,
            Some("127.0.0.1:1884".parse().unwrap())
        );
        assert_eq!(
            config.listeners.ws,
            Some("127.0.0.1:9000".parse().unwrap()),
            "from the file"
        );
        assert_eq!(config.listeners.http, None);
        assert_eq!(config.data_dir, Path::new("/flag"));
        assert_eq!(config.node_id, 2);
        assert_eq!(config.mqtt.queue_max, 5, "from the file");
        assert_eq!(config.cluster.listen, Some("0.0.0.0:7000".parse().unwrap()));
        let peers: Vec<String> = config.cluster.peers.iter().map(Peer::to_string).collect();
        assert_eq!(peers, ["1@a:7000", "2@b:7000"]);
    }

    #[test]
    fn the_result_is_validated_after_the_flags() {
        // The file's peers list node 7 only; moving this node to id 2 leaves it out.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keel.toml");
        fs::write(&file, "node_id = 7\n[cluster]\npeers = [\"7@a:1\"]\n").unwrap();
        let error = serve(&["--config", file.to_str().unwrap(), "--node-id", "2"])
            .config()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("keel.toml and flags") && error.contains("cluster.peers"),
            "{error}"
        );
        let error = serve(&["--peers", "1@a:1", "--join", "b:1"])
            .config()
            .unwrap_err();
        assert!(error.to_string().contains("cluster.join"), "{error}");
        let error = serve(&["--listen", "", "--ws-listen", ""])
            .config()
            .unwrap_err();
        assert!(error.to_string().contains("no MQTT listener"), "{error}");
    }

    #[test]
    fn malformed_flags_are_refused_by_the_parser() {
        for args in [
            ["--listen", "localhost"],
            ["--peers", "1@a:1,b:2"],
            ["--join", "nohost"],
            ["--node-id", "-1"],
            ["--cluster-listen", "x"],
        ] {
            let mut argv = vec!["keel", "serve"];
            argv.extend_from_slice(&args);
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }

    #[test]
    fn passwd_scram_stores_a_verifier_that_serves_both_kinds_of_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let args = |extra: &[&str]| {
            let mut argv = vec!["keel", "passwd", "--password", "pencil"];
            argv.extend_from_slice(extra);
            argv.push(path.to_str().unwrap());
            argv.push("sally");
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Passwd(args) => args,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(passwd(&args(&["--scram"])).unwrap(), PasswdOutcome::Added);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("sally:SCRAM-SHA-256$4096:"), "{text}");
        let file = auth::PasswordFile::load(&path).unwrap();
        assert!(file.verify("sally", b"pencil") && !file.verify("sally", b"pen"));
        assert!(file.scram_verifier("sally").is_some());
        // Without --scram the entry becomes an argon2 hash again.
        assert_eq!(passwd(&args(&[])).unwrap(), PasswdOutcome::Updated);
        let file = auth::PasswordFile::load(&path).unwrap();
        assert!(file.verify("sally", b"pencil") && file.scram_verifier("sally").is_none());
    }

    #[test]
    fn set_password_adds_updates_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        assert_eq!(
            set_password(&path, "alice", b"one").unwrap(),
            PasswdOutcome::Added
        );
        assert_eq!(
            set_password(&path, "bob", b"two").unwrap(),
            PasswdOutcome::Added
        );
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("# our users\n{text}")).unwrap();
        assert_eq!(
            set_password(&path, "alice", b"three").unwrap(),
            PasswdOutcome::Updated
        );

        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# our users\nalice:$argon2id$"), "{text}");
        let file = auth::PasswordFile::load(&path).unwrap();
        assert!(file.verify("alice", b"three") && !file.verify("alice", b"one"));
        assert!(file.verify("bob", b"two"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["passwd"], "no temporary file is left behind");
    }

    #[test]
    fn set_password_refuses_bad_input_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        assert!(matches!(
            set_password(&path, "a:b", b"pw"),
            Err(CliError::Username(_))
        ));
        assert!(matches!(
            set_password(&path, "a", b""),
            Err(CliError::EmptyPassword)
        ));
        assert!(!path.exists());
        fs::write(&path, "not a password file\n").unwrap();
        let error = set_password(&path, "a", b"pw").unwrap_err().to_string();
        assert!(error.contains("passwd: line 1"), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "not a password file\n");
    }

    #[test]
    fn delete_user_removes_only_that_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        assert!(matches!(
            delete_user(&path, "a"),
            Err(CliError::ReadFile { .. })
        ));
        set_password(&path, "alice", b"one").unwrap();
        set_password(&path, "bob", b"two").unwrap();
        assert_eq!(delete_user(&path, "alice").unwrap(), PasswdOutcome::Deleted);
        let file = auth::PasswordFile::load(&path).unwrap();
        assert_eq!(file.usernames().collect::<Vec<_>>(), ["bob"]);
        let error = delete_user(&path, "alice").unwrap_err();
        assert!(matches!(error, CliError::NoSuchUser { .. }), "{error}");
    }

    #[test]
    fn a_piped_password_is_one_line() {
        assert_eq!(read_password_line(&b"s3cret\n"[..]).unwrap(), "s3cret");
        assert_eq!(
            read_password_line(&b"s3cret\r\nmore\n"[..]).unwrap(),
            "s3cret"
        );
        assert_eq!(
            read_password_line(&b"no newline"[..]).unwrap(),
            "no newline"
        );
        assert!(matches!(
            read_password_line(&b"\n"[..]),
            Err(CliError::EmptyPassword)
        ));
        assert!(matches!(
            read_password_line(&b""[..]),
            Err(CliError::EmptyPassword)
        ));
        let long = vec![b'x'; PASSWORD_LEN_MAX + 1];
        assert!(matches!(
            read_password_line(&long[..]),
            Err(CliError::PasswordTooLong)
        ));
        let longest = [vec![b'x'; PASSWORD_LEN_MAX], b"\r\n".to_vec()].concat();
        assert_eq!(
            read_password_line(&longest[..]).unwrap().len(),
            PASSWORD_LEN_MAX
        );
    }

    #[test]
    fn check_config_loads_the_files_the_configuration_names() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keel.toml");
        let passwd = dir.path().join("passwd");
        fs::write(
            &config,
            format!("[auth]\npassword_file = {:?}\n", passwd.to_str().unwrap()),
        )
        .unwrap();
        let error = check_config(&config).unwrap_err().to_string();
        assert!(error.contains("cannot read password file"), "{error}");
        set_password(&passwd, "alice", b"pw").unwrap();
        let printed = check_config(&config).unwrap();
        assert!(printed.contains("password_file"), "{printed}");
        let body = printed.split_once("\n\n").unwrap().1;
        assert_eq!(
            Config::from_toml(body).unwrap(),
            Config::load(&config).unwrap()
        );

        // Secrets are not printed.
        let secrets = "[admin]\napi_key = \"0123456789abcdef-very-secret\"\n\
                       [auth.jwt]\nsecret = \"jwt-very-secret\"\n\
                       [auth.http]\nurl = \"http://h/\"\n\
                       [auth.http.headers]\nauthorization = \"Bearer header-very-secret\"\n";
        fs::write(&config, secrets).unwrap();
        let printed = check_config(&config).unwrap();
        assert!(!printed.contains("very-secret"), "{printed}");
        let body = printed.split_once("\n\n").unwrap().1;
        assert_eq!(body.matches(REDACTED).count(), 3, "{printed}");

        fs::write(
            &config,
            "[cluster]\nlisten = \"127.0.0.1:7000\"\n[cluster.tls]\nca = \"ca.pem\"\n\
             cert = \"n.pem\"\nkey = \"n.key\"\n",
        )
        .unwrap();
        let error = check_config(&config).unwrap_err().to_string();
        assert!(error.contains("n.pem"), "{error}");

        fs::write(
            &config,
            "[tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n",
        )
        .unwrap();
        let error = check_config(&config).unwrap_err().to_string();
        assert!(error.contains("missing.pem"), "{error}");
    }
}
