//! The test hosts: one network namespace per node, joined by veth pairs to a bridge in the
//! root namespace, where the workload clients run. Partitions are `iptables` rules in the
//! nodes' namespaces, dropping what one node receives from another: the clients keep their
//! links, as in Jepsen, so a node cut off from its peers still hears its clients and must
//! send them away itself (G5).

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The bridge in the root namespace.
const BRIDGE: &str = "keelj0";
/// The first three octets of the test network; the bridge is `.1`, node N is `.10 + N`.
const SUBNET: [u8; 3] = [10, 88, 0];
/// At most this many nodes (and namespaces to clean up).
pub const NODES_MAX: u64 = 9;

/// One node's machine.
#[derive(Debug, Clone)]
pub struct Host {
    pub id: u64,
    /// Its network namespace.
    pub ns: String,
    pub ip: Ipv4Addr,
}

impl Host {
    fn new(id: u64) -> Host {
        Host {
            id,
            ns: format!("keelj-n{id}"),
            ip: Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 10 + id as u8),
        }
    }

    /// Runs `args` inside this host's namespace.
    fn exec(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["netns", "exec", self.ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }
}

/// Runs a command to completion; its stderr is the error when it fails.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The test network of a run. Dropping it does not tear it down: call [`Hosts::teardown`].
pub struct Hosts {
    pub nodes: Vec<Host>,
}

impl Hosts {
    /// Creates the bridge and `count` namespaces, removing what an earlier run left behind.
    pub fn setup(count: u64) -> Result<Hosts> {
        if !(1..=NODES_MAX).contains(&count) {
            bail!("between 1 and {NODES_MAX} nodes, not {count}");
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("--version").output().is_err() {
                bail!("{tool} not found (apt-get install iproute2 iptables)");
            }
        }
        Hosts::teardown();
        let bridge_ip = format!("{}.{}.{}.1/24", SUBNET[0], SUBNET[1], SUBNET[2]);
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])
            .context("creating the bridge (the test hosts need root)")?;
        run("ip", &["addr", "add", &bridge_ip, "dev", BRIDGE])?;
        run("ip", &["link", "set", BRIDGE, "up"])?;
        let nodes: Vec<Host> = (1..=count).map(Host::new).collect();
        for host in &nodes {
            let (outside, inside) = (format!("kjv{}", host.id), format!("kjp{}", host.id));
            run("ip", &["netns", "add", &host.ns])?;
            run(
                "ip",
                &[
                    "link", "add", &outside, "type", "veth", "peer", "name", &inside,
                ],
            )?;
            run("ip", &["link", "set", &inside, "netns", &host.ns])?;
            run("ip", &["link", "set", &outside, "master", BRIDGE])?;
            run("ip", &["link", "set", &outside, "up"])?;
            host.exec(&["ip", "link", "set", "lo", "up"])?;
            host.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", host.ip),
                "dev",
                &inside,
            ])?;
            host.exec(&["ip", "link", "set", &inside, "up"])?;
        }
        Ok(Hosts { nodes })
    }

    /// Removes every namespace and the bridge of any run (the veth pairs go with them).
    pub fn teardown() {
        for id in 1..=NODES_MAX {
            let _ = run("ip", &["netns", "del", &Host::new(id).ns]);
        }
        let _ = run("ip", &["link", "del", BRIDGE]);
    }

    pub fn host(&self, id: u64) -> &Host {
        &self.nodes[(id - 1) as usize]
    }

    /// `to` stops receiving anything from `from` (one way).
    pub fn block(&self, from: u64, to: u64) -> Result<()> {
        let from_ip = self.host(from).ip.to_string();
        self.host(to)
            .exec(&["iptables", "-A", "INPUT", "-s", &from_ip, "-j", "DROP"])
    }

    /// Cuts every link between the two groups, both ways.
    pub fn split(&self, a: &[u64], b: &[u64]) -> Result<()> {
        for &x in a {
            for &y in b {
                self.block(x, y)?;
                self.block(y, x)?;
            }
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&self) -> Result<()> {
        for host in &self.nodes {
            host.exec(&["iptables", "-F", "INPUT"])?;
        }
        Ok(())
    }
}
