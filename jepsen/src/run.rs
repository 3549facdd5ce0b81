//! One run: the test hosts and nodes come up, the workload runs through a safety phase with
//! the nemesis on, then a liveness phase with every fault healed; the history is judged by
//! the simulator's checkers and the report written.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use keel::net::TokioNet;
use keel_oracle::checkers::check_all;
use keel_oracle::client::RunClock;
use keel_oracle::history::{Entry, Event, History};
use keel_oracle::workload::{self, ClientCtx, Disk, Phase};

use crate::hosts::Hosts;
use crate::nemesis::{self, Fault, Kind, Window};
use crate::nodes::Cluster;
use crate::report::{self, Report};
use crate::workload::Workload;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: u64,
    pub seed: u64,
    pub nemeses: Vec<Kind>,
    /// The safety phase (faults on).
    pub time_limit: Duration,
    /// The liveness phase: the bound within which everything must drain.
    pub liveness: Duration,
    pub keel: PathBuf,
    /// This run's directory (`jepsen/store/<run>`).
    pub dir: PathBuf,
    pub planted: Option<String>,
}

/// Faults start this long after the workload, so that every client has connected once.
const WARMUP: Duration = Duration::from_secs(3);
/// How long a node gets to stop on SIGTERM at the end.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the cluster gets to elect a leader at the start.
const READY_WITHIN: Duration = Duration::from_secs(60);

pub async fn run(options: &Options) -> Result<Report> {
    let hosts = Hosts::setup(options.nodes)?;
    let outcome = run_on(options, &hosts).await;
    Hosts::teardown();
    outcome
}

async fn run_on(options: &Options, hosts: &Hosts) -> Result<Report> {
    let mut cluster = Cluster::new(&options.keel, &options.dir, hosts, options.planted.clone())?;
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    let ready = cluster.wait_ready(READY_WITHIN).await;
    if let Err(error) = ready {
        cluster.stop_all(STOP_GRACE).await;
        return Err(error);
    }
    progress(&format!(
        "{} nodes up (leader n{})",
        options.nodes,
        cluster.leader().await.unwrap_or(0)
    ));

    let nodes: Vec<String> = hosts.nodes.iter().map(|h| h.ip.to_string()).collect();
    let workload = Running::start(options, nodes);
    let safety_ms = options.time_limit.as_millis() as u64;
    let windows = nemesis::schedule(
        options.seed,
        &options.nemeses,
        &cluster.ids(),
        WARMUP.as_millis() as u64,
        safety_ms,
    );
    let (history, clock) = (&workload.history, &workload.clock);
    let done = run_nemesis(&windows, hosts, &mut cluster, history, clock, safety_ms).await;
    // Whatever happened, every fault is healed before the liveness phase.
    let healed = nemesis::heal_all(hosts, &mut cluster);
    progress("safety phase over: every fault healed, liveness phase");
    let entries = workload.finish(options.liveness).await;
    let queue_full_drops = save_metrics(&cluster, &options.dir).await;
    cluster.stop_all(STOP_GRACE).await;
    done?;
    healed?;
    judge(options, &entries, &windows, queue_full_drops)
}

/// The workload of a run, under way: its clients, the history they record and the clock.
struct Running {
    clock: RunClock,
    history: History,
    phase: Phase,
    clients: Vec<tokio::task::JoinHandle<()>>,
    reporter: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts the clock and every client, each connecting to the `nodes`.
    fn start(options: &Options, nodes: Vec<String>) -> Running {
        let started = tokio::time::Instant::now();
        let clock = RunClock::new(move || started.elapsed().as_millis() as u64);
        let history = History::default();
        let phase = Phase::default();
        let clients = spawn_clients(options, nodes, &clock, &history, &phase);
        let reporter = tokio::spawn(report_progress(history.clone(), clock.clone()));
        Running {
            clock,
            history,
            phase,
            clients,
            reporter,
        }
    }

    /// Runs the liveness phase (nothing new published; everything must drain within
    /// `liveness`), stops the clients and returns the history.
    async fn finish(self, liveness: Duration) -> Vec<Entry> {
        self.history
            .record(self.clock.now_ms(), Event::LivenessStarted);
        self.phase.start_liveness();
        tokio::time::sleep(liveness).await;
        self.history.record(self.clock.now_ms(), Event::Finished);
        self.phase.finish();
        let entries = self.history.entries();
        self.reporter.abort();
        for client in self.clients {
            client.abort();
        }
        entries
    }
}

/// Judges the history with the simulator's checkers and writes the report.
fn judge(
    options: &Options,
    entries: &[Entry],
    windows: &[Window],
    queue_full_drops: u64,
) -> Result<Report> {
    progress(&format!("judging {} events", entries.len()));
    let violations = check_all(entries);
    let mut report = Report::new(options, entries, windows, violations);
    report.stats.queue_full_drops = queue_full_drops;
    report::write(&options.dir, &report, entries)?;
    Ok(report)
}

/// A cluster that runs already (`--external`): keel-jepsen starts no node and needs no root;
/// the only fault is one command, run once after the warm-up.
#[derive(Debug, Clone)]
pub struct External {
    /// The nodes' MQTT addresses, `IP:PORT`.
    pub mqtt: Vec<String>,
    /// The nodes' admin API addresses, `IP:PORT`, for their metrics at the end.
    pub admin: Vec<String>,
    /// The command (`sh -c`), e.g. `scripts/cluster.sh roll`.
    pub during: Option<String>,
}

/// Runs the workload against an external cluster: the safety phase with `external.during`
/// as its one fault (the run is an error if the command fails), then the liveness phase.
pub async fn run_external(options: &Options, external: &External) -> Result<Report> {
    let workload = Running::start(options, external.mqtt.clone());
    let mut windows = Vec::new();
    let mut failed = None;
    if let Some(command) = &external.during {
        sleep_until_ms(&workload.clock, WARMUP.as_millis() as u64).await;
        let (window, outcome) = run_command(command, &workload).await;
        windows.push(window);
        failed = outcome.err();
    }
    sleep_until_ms(&workload.clock, options.time_limit.as_millis() as u64).await;
    progress("safety phase over: liveness phase");
    let entries = workload.finish(options.liveness).await;
    let mut queue_full_drops = 0;
    for (i, addr) in external.admin.iter().enumerate() {
        let Some(text) = crate::nodes::metrics_at(addr).await else {
            progress(&format!("{addr} did not answer GET /metrics"));
            continue;
        };
        let _ = std::fs::write(options.dir.join(format!("n{}.metrics", i + 1)), &text);
        queue_full_drops =
            queue_full_drops.max(counter(&text, "keel_messages_dropped_queue_full_total"));
    }
    if let Some(why) = failed {
        anyhow::bail!(why);
    }
    judge(options, &entries, &windows, queue_full_drops)
}

/// Runs `command` (`sh -c`) to its end as a fault, recorded in the history when it starts
/// and ends; `Err` says why it failed.
async fn run_command(command: &str, workload: &Running) -> (Window, Result<(), String>) {
    let (history, clock) = (&workload.history, &workload.clock);
    let fault = Fault::Command(command.to_string());
    let start_ms = clock.now_ms();
    let what = format!("start: {fault}");
    history.record(start_ms, Event::Fault { what });
    progress(&format!("fault: {fault}"));
    let status = tokio::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .await;
    let end_ms = clock.now_ms();
    let what = format!("healed: {fault}");
    history.record(end_ms, Event::Fault { what });
    let secs = (end_ms - start_ms) as f64 / 1000.0;
    progress(&format!("{fault}: {status:?} after {secs:.1} s"));
    let outcome = match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`{command}` failed: {status}")),
        Err(error) => Err(format!("`{command}` did not run: {error}")),
    };
    let window = Window {
        start_ms,
        end_ms,
        fault,
    };
    (window, outcome)
}

/// Saves every node's metrics in the run directory (`n<id>.metrics`); returns the most QoS 1/2
/// messages any node dropped for a full session queue.
async fn save_metrics(cluster: &Cluster, dir: &std::path::Path) -> u64 {
    let mut drops = 0;
    for id in cluster.ids() {
        let Some(text) = cluster.metrics(id).await else {
            progress(&format!("n{id} did not answer GET /metrics"));
            continue;
        };
        if let Err(error) = std::fs::write(dir.join(format!("n{id}.metrics")), &text) {
            progress(&format!("cannot save the metrics of n{id}: {error}"));
        }
        drops = drops.max(counter(&text, "keel_messages_dropped_queue_full_total"));
    }
    drops
}

/// The value of a counter in Prometheus text (0 when absent).
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .next()
        .unwrap_or(0)
}

/// Starts every workload client as a task, each connecting to the `nodes` (IP, or IP:PORT);
/// they run until aborted.
fn spawn_clients(
    options: &Options,
    nodes: Vec<String>,
    clock: &RunClock,
    history: &History,
    phase: &Phase,
) -> Vec<tokio::task::JoinHandle<()>> {
    let workload = Workload::new();
    let nudge = workload::Nudge::default();
    let mut n = 0u64;
    let mut ctx = || {
        n += 1;
        (
            ClientCtx {
                net: TokioNet,
                clock: clock.clone(),
                history: history.clone(),
                phase: phase.clone(),
                nodes: nodes.clone(),
                seed: options.seed.wrapping_mul(31).wrapping_add(n),
                nudge: nudge.clone(),
            },
            Arc::new(Mutex::new(Disk::default())),
        )
    };
    let mut tasks = Vec::new();
    for spec in workload.publishers {
        let (ctx, disk) = ctx();
        tasks.push(tokio::spawn(workload::publisher(spec, ctx, disk)));
    }
    for spec in workload.subscribers {
        let (ctx, disk) = ctx();
        tasks.push(tokio::spawn(workload::subscriber(spec, ctx, disk)));
    }
    for spec in workload.readers {
        let (ctx, disk) = ctx();
        tasks.push(tokio::spawn(workload::reader(spec, ctx, disk)));
    }
    tasks
}

/// Carries out the schedule; every fault is recorded in the history when it starts and ends.
async fn run_nemesis(
    windows: &[Window],
    hosts: &Hosts,
    cluster: &mut Cluster,
    history: &History,
    clock: &RunClock,
    safety_ms: u64,
) -> Result<()> {
    for window in windows {
        sleep_until_ms(clock, window.start_ms).await;
        let what = nemesis::start(&window.fault, hosts, cluster).await?;
        history.record(
            clock.now_ms(),
            Event::Fault {
                what: format!("start: {what}"),
            },
        );
        progress(&format!("fault: {what}"));
        sleep_until_ms(clock, window.end_ms).await;
        nemesis::heal_all(hosts, cluster)?;
        history.record(
            clock.now_ms(),
            Event::Fault {
                what: format!("healed: {}", window.fault),
            },
        );
    }
    sleep_until_ms(clock, safety_ms).await;
    Ok(())
}

async fn sleep_until_ms(clock: &RunClock, at_ms: u64) {
    let now = clock.now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

/// A progress line every five seconds: time, acknowledged publishes, deliveries, faults.
async fn report_progress(history: History, clock: RunClock) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let entries = history.entries();
        let count = |f: fn(&Event) -> bool| entries.iter().filter(|e| f(&e.event)).count();
        progress(&format!(
            "{:>5.1}s: {} published, {} acknowledged, {} delivered, {} connections lost",
            clock.now_ms() as f64 / 1000.0,
            count(|e| matches!(e, Event::PublishSent { dup: false, .. })),
            count(|e| matches!(e, Event::PublishAcked { .. })),
            count(|e| matches!(e, Event::Delivered { .. })),
            count(|e| matches!(e, Event::ConnectionLost { .. })),
        ));
    }
}

pub fn progress(line: &str) {
    eprintln!("[keel-jepsen] {line}");
}

#[cfg(test)]
mod tests {
    use super::counter;

    #[test]
    fn a_counter_is_read_from_prometheus_text() {
        let text = "# HELP keel_x_total X.\n# TYPE keel_x_total counter\nkeel_x_total 42\n\
                    keel_x_total_other 7\n";
        assert_eq!(counter(text, "keel_x_total"), 42);
        assert_eq!(counter(text, "keel_missing_total"), 0);
    }
}
