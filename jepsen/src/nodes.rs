//! The `keel` processes of a run: one per test host, started from the release binary inside
//! the host's namespace with a real RocksDB data directory, and the operations the nemesis
//! performs on them (SIGKILL and restart on the same data, SIGSTOP/SIGCONT).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use keel::net::TokioNet;
use keel_oracle::admin::request;
use tokio::process::{Child, Command};

use crate::hosts::Hosts;

/// Where each node's admin HTTP API listens, on its host's address.
pub const ADMIN_PORT: u16 = 18083;
/// Where each node listens to its peers.
pub const CLUSTER_PORT: u16 = 7000;
/// Deadline of one admin request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// The admin API's key on every node: its listener is on the node's network address, which
/// a node refuses to serve without credentials.
const ADMIN_API_KEY: &str = "keel-jepsen-admin-key";

/// What every node's configuration file says beyond the flags.
const NODE_CONFIG: &str = "\
# Written by keel-jepsen for every node of the run.
[durability]
sync = \"batch\"

[admin]
api_key = \"keel-jepsen-admin-key\"

[mqtt]
sys_interval_secs = 0
# A durable session's queue is bounded (default 1000 messages; beyond it messages are dropped,
# counted in keel_messages_dropped_queue_full_total, and G1 cannot hold). The workload's
# subscribers drop and take over their connections so often that they fall far behind; the
# bound is raised so the run tests delivery, not the overflow policy. Overflows are reported.
queue_max = 100000

[cluster]
# Shorter than the default 30 s, so that runs also see nodes declared gone.
node_down_secs = 10
# Plaintext between the nodes: the run's network namespaces hold nobody else.
insecure = true
";

struct Node {
    id: u64,
    child: Option<Child>,
    paused: bool,
}

/// The nodes of a run.
pub struct Cluster {
    keel: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    peers: String,
    hosts_ns: Vec<(String, String)>,
    /// `KEEL_PLANTED` for the nodes (a build with planted bugs; see `--planted`).
    planted: Option<String>,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Prepares the data directories and configuration under `dir`; starts nothing.
    pub fn new(keel: &Path, dir: &Path, hosts: &Hosts, planted: Option<String>) -> Result<Cluster> {
        if !keel.is_file() {
            bail!(
                "no keel binary at {} (cargo build --release --bin keel)",
                keel.display()
            );
        }
        fs::create_dir_all(dir)?;
        let config = dir.join("keel.toml");
        fs::write(&config, NODE_CONFIG)?;
        let peers = hosts
            .nodes
            .iter()
            .map(|h| format!("{}@{}:{CLUSTER_PORT}", h.id, h.ip))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Cluster {
            keel: keel.to_path_buf(),
            dir: dir.to_path_buf(),
            config,
            peers,
            hosts_ns: hosts
                .nodes
                .iter()
                .map(|h| (h.ns.clone(), h.ip.to_string()))
                .collect(),
            planted,
            nodes: hosts
                .nodes
                .iter()
                .map(|h| Node {
                    id: h.id,
                    child: None,
                    paused: false,
                })
                .collect(),
        })
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn ip(&self, id: u64) -> &str {
        &self.hosts_ns[(id - 1) as usize].1
    }

    /// Starts node `id` (again) on its data directory; its output goes to `n<id>.log`.
    pub fn start(&mut self, id: u64) -> Result<()> {
        let (ns, ip) = self.hosts_ns[(id - 1) as usize].clone();
        let data = self.dir.join(format!("n{id}"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{id}.log")))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns])
            .arg(&self.keel)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(["--node-id", &id.to_string()])
            .args(["--listen", &format!("{ip}:1883")])
            .args(["--ws-listen", ""])
            .args(["--http-listen", &format!("{ip}:{ADMIN_PORT}")])
            .args(["--cluster-listen", &format!("{ip}:{CLUSTER_PORT}")])
            .args(["--peers", &self.peers])
            .arg("--data-dir")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // `ip netns exec` execs keel, so the child is the node itself.
            .kill_on_drop(true);
        if let Some(planted) = &self.planted {
            command.env("KEEL_PLANTED", planted);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        let node = self.node(id);
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// SIGKILL: the process dies at once, its data directory as the disk has it.
    pub async fn kill(&mut self, id: u64) -> Result<()> {
        let node = self.node(id);
        if let Some(mut child) = node.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        node.paused = false;
        Ok(())
    }

    /// SIGSTOP (`stop`) or SIGCONT.
    pub fn pause(&mut self, id: u64, stop: bool) -> Result<()> {
        let node = self.node(id);
        let Some(pid) = node.child.as_ref().and_then(Child::id) else {
            return Ok(());
        };
        let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: `kill` has no memory effects; the pid is our own child, not yet reaped.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            bail!("signal to node {id}: {}", std::io::Error::last_os_error());
        }
        node.paused = stop;
        Ok(())
    }

    /// Resumes a paused node and restarts a dead one: every node runs afterwards.
    pub fn revive_all(&mut self) -> Result<()> {
        for id in self.ids() {
            if self.node(id).paused {
                self.pause(id, false)?;
            }
            let exited = match self.node(id).child.as_mut() {
                Some(child) => child.try_wait()?.is_some(),
                None => true,
            };
            if exited {
                self.start(id)?;
            }
        }
        Ok(())
    }

    /// Asks every node to stop (SIGTERM), then kills what is left after `grace`.
    pub async fn stop_all(&mut self, grace: Duration) {
        let _ = self.revive_all_paused();
        for node in &mut self.nodes {
            if let Some(pid) = node.child.as_ref().and_then(Child::id) {
                // SAFETY: as in `pause`.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                if tokio::time::timeout(grace, child.wait()).await.is_err() {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
            }
        }
    }

    fn revive_all_paused(&mut self) -> Result<()> {
        for id in self.ids() {
            if self.node(id).paused {
                self.pause(id, false)?;
            }
        }
        Ok(())
    }

    /// The cluster as node `id` sees it (`GET /api/v1/cluster`), if it answers.
    pub async fn view(&self, id: u64) -> Option<serde_json::Value> {
        let (status, body) = http_get(self.ip(id), "/api/v1/cluster").await?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    }

    /// Node `id`'s metrics (`GET /metrics`, Prometheus text), if it answers.
    pub async fn metrics(&self, id: u64) -> Option<String> {
        let (status, body) = http_get(self.ip(id), "/metrics").await?;
        (status == 200).then_some(body)
    }

    /// The leader some node reports, if any.
    pub async fn leader(&self) -> Option<u64> {
        for id in self.ids() {
            if let Some(leader) = self.view(id).await.and_then(|v| v["leader"].as_u64()) {
                return Some(leader);
            }
        }
        None
    }

    /// Waits until every node knows a leader and serves clients.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut ready = true;
            for id in self.ids() {
                let view = self.view(id).await;
                let serving = view.as_ref().is_some_and(|v| {
                    v["leader"].as_u64().is_some() && v["serving"].as_bool() == Some(true)
                });
                ready &= serving;
            }
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the cluster was not ready within {within:?}; see the node logs in {}",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// One GET to a node's admin API: the status and body, or `None`.
async fn http_get(ip: &str, path: &str) -> Option<(u16, String)> {
    let addr = format!("{ip}:{ADMIN_PORT}");
    let key = [("x-api-key", ADMIN_API_KEY)];
    request(&TokioNet, &addr, "GET", path, &key, "", HTTP_TIMEOUT).await
}

/// The metrics of the node whose admin API is at `addr` (`IP:PORT`, no credentials: an
/// external cluster's API on loopback), if it answers.
pub async fn metrics_at(addr: &str) -> Option<String> {
    let (status, body) = request(&TokioNet, addr, "GET", "/metrics", &[], "", HTTP_TIMEOUT).await?;
    (status == 200).then_some(body)
}
