//! The real `keel` binary as a child process on a data directory of its own: started on a
//! free loopback port with the WebSocket and admin listeners off, killed with SIGKILL and
//! started again on the same port and data directory. Its standard error goes to a file that
//! outlives every run, so a failing test can show what the broker said.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keel::codec::{Disconnect, Packet, Protocol, ReasonCode};
use tempfile::TempDir;

use super::link::Link;
use super::raw;

/// The longest a node may take from spawn to accepting an MQTT connection (it may have a data
/// directory to open and a log to replay first).
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a starting node is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// The configuration every node here runs with, besides its flags: no `$SYS` publishes (only
/// the tests' own clients publish), and a per-session queue large enough for the 1,000-odd
/// messages a durability test queues for one offline subscriber (the default is 1,000).
pub const CONFIG: &str = "\
[mqtt]
sys_interval_secs = 0
queue_max = 10000
";

/// How a start that is not expected to succeed ended.
#[derive(Debug)]
pub enum StartOutcome {
    Exited(ExitStatus),
    /// The node accepted an MQTT connection and did not exit.
    Serving,
    /// Neither within [`START_TIMEOUT`].
    Hung,
}

/// One node: its files, its port and, while it runs, its process.
pub struct KeelProcess {
    /// The MQTT/TCP listener, the same on every run.
    pub addr: SocketAddr,
    /// `--data-dir`; not created by the test, so the node creates it.
    pub data_dir: PathBuf,
    config_file: PathBuf,
    /// Standard error of every run, appended, each run under a header line.
    stderr_file: PathBuf,
    child: Option<Child>,
    runs: u32,
    /// Holds the files; `None` once kept for a failed test to look at.
    dir: Option<TempDir>,
    /// The admin HTTP listener, if on.
    pub http: Option<SocketAddr>,
    /// Flags added to every run (cluster membership, for one).
    extra: Vec<String>,
}

impl KeelProcess {
    /// A node that has not run yet: its directory, configuration file and port.
    pub fn new() -> KeelProcess {
        let dir = tempfile::Builder::new()
            .prefix("keel-durability-")
            .tempdir()
            .expect("temporary directory");
        let config_file = dir.path().join("keel.toml");
        fs::write(&config_file, CONFIG).expect("write the configuration");
        KeelProcess {
            addr: free_port(),
            data_dir: dir.path().join("data"),
            config_file,
            stderr_file: dir.path().join("keel.stderr"),
            child: None,
            runs: 0,
            dir: Some(dir),
            http: None,
            extra: Vec::new(),
        }
    }

    /// A node that has not run yet, with the admin API on and `extra` flags on every run.
    pub fn with(extra: Vec<String>) -> KeelProcess {
        let mut node = KeelProcess::new();
        node.http = Some(free_port());
        node.extra = extra;
        node
    }

    /// Replaces the flags added to every later run.
    pub fn set_extra(&mut self, extra: Vec<String>) {
        self.extra = extra;
    }

    /// The configuration file every run reads (a test may rewrite it, then reload).
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs (it has not exited and was not killed).
    pub fn is_running(&mut self) -> bool {
        self.try_wait();
        self.child.is_some()
    }

    /// A node started and accepting MQTT connections.
    pub async fn start() -> KeelProcess {
        let mut node = KeelProcess::new();
        node.spawn();
        node.wait_ready().await;
        node
    }

    /// The arguments `keel` runs with.
    pub fn args(&self) -> Vec<String> {
        vec![
            "serve".into(),
            "--config".into(),
            path_str(&self.config_file).into(),
            "--listen".into(),
            self.addr.to_string(),
            "--ws-listen".into(),
            String::new(),
            "--http-listen".into(),
            self.http.map(|a| a.to_string()).unwrap_or_default(),
            "--data-dir".into(),
            path_str(&self.data_dir).into(),
        ]
        .into_iter()
        .chain(self.extra.iter().cloned())
        .collect()
    }

    /// Spawns the binary; does not wait for it to listen.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the node is already running");
        self.runs += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_file)
            .expect("open the stderr file");
        writeln!(
            log,
            "--- run {}: keel {} ---",
            self.runs,
            self.args().join(" ")
        )
        .expect("write the stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(self.args())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the keel binary runs");
        self.child = Some(child);
    }

    /// Waits until the node accepts an MQTT connection; fails the test if it exits first or
    /// takes longer than [`START_TIMEOUT`].
    pub async fn wait_ready(&mut self) {
        match self.watch_start().await {
            StartOutcome::Serving => {}
            outcome => panic!("keel did not start: {outcome:?}\n{}", self.stderr_tail(40)),
        }
    }

    /// Watches a spawned node until it serves MQTT, exits or runs out of time.
    pub async fn watch_start(&mut self) -> StartOutcome {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                return StartOutcome::Exited(status);
            }
            if self.probe().await {
                // A node that serves and then gives up (it opened its storage in the
                // background) is not serving: give it a moment to do so.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return match self.try_wait() {
                    Some(status) => StartOutcome::Exited(status),
                    None => StartOutcome::Serving,
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return StartOutcome::Hung;
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Whether a clean MQTT 3.1.1 connection is accepted right now.
    async fn probe(&self) -> bool {
        let connect = raw::connect(Protocol::V3_1_1, "keel-start-probe");
        match Link::connect(self.addr, connect).await {
            Ok((mut link, connack)) => {
                let _ = link
                    .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
                    .await;
                connack.reason_code == ReasonCode::Success
            }
            Err(_) => false,
        }
    }

    /// The exit status if the process has ended (it is then no longer running).
    fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().expect("query the keel process")?;
        self.child = None;
        Some(status)
    }

    /// Kills the node with SIGKILL (`kill -9`) and reaps it. Fails the test if it had
    /// already exited: a test that means to crash the node must crash a running one.
    pub fn kill(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!(
                "keel exited by itself ({status}) before the kill\n{}",
                self.stderr_tail(40)
            );
        }
        let mut child = self.child.take().expect("the node is running");
        child.kill().expect("SIGKILL keel");
        child.wait().expect("reap keel");
    }

    /// Starts the node again on the same port and data directory and waits until it serves.
    pub async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// The last `lines` lines of the node's standard error over all its runs.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.stderr_file).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- keel stderr ({} lines, last {lines}) ---\n{tail}\n--- end of keel stderr ---",
            all.len()
        )
    }

    /// The whole standard error of every run so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Replaces every byte of every file under the data directory with junk, keeping names
    /// and sizes (and giving empty files some junk too); returns how many files there were.
    pub fn corrupt_data_files(&self) -> usize {
        let mut count = 0;
        let mut dirs = vec![self.data_dir.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("read the data directory").path();
                let meta = fs::symlink_metadata(&path).expect("stat a data file");
                if meta.is_dir() {
                    dirs.push(path);
                } else if meta.is_file() {
                    let len = (meta.len() as usize).max(64);
                    let junk: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8 ^ 0xA5).collect();
                    let mut file = File::create(&path).expect("overwrite a data file");
                    file.write_all(&junk).expect("write junk");
                    count += 1;
                }
            }
        }
        count
    }
}

impl Drop for KeelProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failed test keeps the data directory and the log for a look.
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("keel test files kept in {}", dir.keep().display());
            }
        }
    }
}

/// A loopback address with a port that was free a moment ago: the OS picks it, the test
/// releases it and hands it to the node.
///
/// Never the same port twice in one process: the tests of a program run as threads of one
/// process, and a port handed out here is free to the OS until its node binds it (and again
/// between a node's kill and its restart), so the OS could pick it again for another test's
/// node.
pub fn free_port() -> SocketAddr {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let addr = listener.local_addr().expect("local address");
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
