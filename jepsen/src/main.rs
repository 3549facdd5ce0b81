//! `keel-jepsen`: Jepsen-style black-box tests of a real Keel cluster (docs/design.md §5).
//!
//! Each node is the release `keel` binary in its own network namespace, with a RocksDB data
//! directory. The workload clients are the simulator's (`keel-oracle`), on real sockets; a
//! nemesis kills (SIGKILL) and restarts nodes, pauses them (SIGSTOP/SIGCONT) and partitions
//! the network with `iptables`, on a schedule derived from the seed, and heals everything for
//! a liveness phase at the end. The simulator's checkers judge the history, and the report
//! (verdict, summary, history, plots) goes to `jepsen/store/<run>/`. Needs root.
//!
//! ```sh
//! jepsen/run                                   # the short run CI does (about 2 minutes)
//! jepsen/run --nemesis partition,kill,pause --time-limit 600   # a long run
//! ```
//!
//! With `--external`, it starts no node and needs no root: the workload runs against a cluster
//! that already runs (`scripts/cluster.sh up`) and the one fault is a command (`--during`),
//! e.g. a rolling restart (`scripts/roll-test.sh`).

mod hosts;
mod nemesis;
mod nodes;
mod report;
mod run;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::nemesis::Kind;
use crate::run::{progress, Options};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Jepsen-style tests of a real Keel cluster (needs root)"
)]
struct Cli {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Length of the safety phase (faults on), in seconds.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Length of the liveness phase (faults healed; everything must drain), in seconds.
    #[arg(long, default_value_t = 30)]
    liveness: u64,
    /// Faults to inject: any of partition, kill, pause (comma-separated); empty for none.
    #[arg(long, default_value = "partition,kill,pause", value_delimiter = ',')]
    nemesis: Vec<String>,
    /// Seed of the fault schedule and of the clients' choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// The keel binary (default: `keel` beside this program, as cargo builds it).
    #[arg(long)]
    keel: Option<PathBuf>,
    /// Where runs are stored; each run gets a directory of its own.
    #[arg(long, default_value = "jepsen/store")]
    store: PathBuf,
    /// Test a cluster that already runs instead of starting one (no root needed): its nodes'
    /// MQTT addresses, IP:PORT, comma-separated. The nemesis is then `--during`.
    #[arg(long, value_delimiter = ',')]
    external: Vec<String>,
    /// With --external: the nodes' admin API addresses (IP:PORT), for their metrics.
    #[arg(long, value_delimiter = ',', requires = "external")]
    external_admin: Vec<String>,
    /// With --external: a shell command run once after the warm-up, as the run's fault, e.g.
    /// "scripts/cluster.sh roll"; the run is an error if it fails.
    #[arg(long, requires = "external")]
    during: Option<String>,
    /// Bugs to plant in the nodes (`KEEL_PLANTED`; needs a keel built with `--features
    /// planted`), to show that the checkers catch them: e.g. ack_before_commit.
    #[arg(long)]
    planted: Option<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match main_inner(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("keel-jepsen: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the test; `Ok(valid)`.
fn main_inner(cli: Cli) -> anyhow::Result<bool> {
    let external = (!cli.external.is_empty()).then(|| run::External {
        mqtt: cli.external.clone(),
        admin: cli.external_admin.clone(),
        during: cli.during.clone(),
    });
    // SAFETY: `geteuid` has no preconditions.
    if external.is_none() && unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("network namespaces and iptables need root");
    }
    let nemeses = cli
        .nemesis
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| n.parse::<Kind>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let seed = cli.seed.unwrap_or_else(seed_from_clock);
    let keel = match cli.keel {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("keel"))
            .unwrap_or_else(|| PathBuf::from("keel")),
    };
    let keel = std::fs::canonicalize(&keel).unwrap_or(keel);
    let dir = cli.store.join(format!("{}-seed{seed}", run_stamp()));
    std::fs::create_dir_all(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let options = Options {
        nodes: external.as_ref().map_or(cli.nodes, |e| e.mqtt.len() as u64),
        seed,
        nemeses: if external.is_some() {
            Vec::new()
        } else {
            nemeses
        },
        time_limit: Duration::from_secs(cli.time_limit),
        liveness: Duration::from_secs(cli.liveness),
        keel,
        dir: dir.clone(),
        planted: cli.planted,
    };
    progress(&format!(
        "seed {seed}: {} nodes, nemesis {:?}, {} s + {} s liveness; run directory {}",
        options.nodes,
        options.nemeses,
        cli.time_limit,
        cli.liveness,
        dir.display()
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let run = async {
            match &external {
                Some(external) => run::run_external(&options, external).await,
                None => run::run(&options).await,
            }
        };
        tokio::select! {
            report = run => report,
            _ = tokio::signal::ctrl_c() => {
                if external.is_none() {
                    hosts::Hosts::teardown();
                }
                anyhow::bail!("interrupted")
            }
        }
    })?;
    print!("{}", report.summary());
    println!("report: {}", dir.display());
    Ok(report.valid)
}

/// Seconds since the Unix epoch: the default seed and the run directory's name.
#[allow(clippy::disallowed_methods)] // the harness runs outside any simulation
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn seed_from_clock() -> u64 {
    now_secs()
}

fn run_stamp() -> String {
    format!("run-{}", now_secs())
}
