//! The differential check of Keel against a reference broker, Mosquitto: seeded scenarios
//! (one to three clients connecting with MQTT 3.1.1 or 5, subscribing, publishing,
//! disconnecting, dropping, taking over) run on both brokers at once, and whatever the spec
//! fixes must agree: CONNACK Session Present and codes, SUBACK and UNSUBACK codes, and the
//! application messages each connection receives in each step (topic, payload, QoS, RETAIN).
//! A difference fails the test unless a named rule of the allow-list ([`allow::Rule`]), each
//! with its spec clause, explains it.
//!
//! `KEEL_DIFF_SEEDS=N` runs seeds 0..N (40 when unset); `KEEL_DIFF_SEED=S` replays seed S
//! alone and prints every step and both brokers' observations; `KEEL_DIFF_SHOW_ALLOWED=1`
//! prints every allowed difference with its rule. Needs Debian's `mosquitto` (or the binary
//! named by `KEEL_DIFF_MOSQUITTO`).

mod common;

/// The parts of the check, in `tests/differential/`.
mod differential {
    pub mod allow;
    pub mod compare;
    pub mod driver;
    pub mod link;
    pub mod mosquitto;
    pub mod observation;
    pub mod packets;
    pub mod scenario;
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::TestBroker;
use differential::allow::{self, Verdict};
use differential::mosquitto::Mosquitto;
use differential::observation::Observation;
use differential::scenario::{self, Scenario};
use differential::{compare, driver};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Seeds run when `KEEL_DIFF_SEEDS` is unset: enough to catch a regression, small enough for
/// every `cargo test`.
const DEFAULT_SEEDS: u64 = 40;

/// Scenarios in flight at once (each on both brokers). Most of a scenario's time is settling,
/// so many overlap well on 2 cores.
const CONCURRENT_SEEDS: usize = 16;

/// Failing seeds reported in full; the others are listed by number.
const REPORTED_IN_FULL: usize = 3;

/// What to run.
enum Knobs {
    /// Seeds 0..n.
    Seeds(u64),
    /// One seed, told step by step.
    Replay(u64),
}

impl Knobs {
    fn from_env() -> Knobs {
        if let Some(seed) = env_number("KEEL_DIFF_SEED") {
            return Knobs::Replay(seed);
        }
        Knobs::Seeds(env_number("KEEL_DIFF_SEEDS").unwrap_or(DEFAULT_SEEDS))
    }

    fn seeds(&self) -> Vec<u64> {
        match self {
            Knobs::Seeds(n) => (0..*n).collect(),
            Knobs::Replay(seed) => vec![*seed],
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// One seed's run on both brokers and the verdict on each difference.
struct SeedRun {
    scenario: Scenario,
    keel: Observation,
    mosquitto: Observation,
    verdicts: Vec<Verdict>,
}

impl SeedRun {
    fn unexplained(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| v.rule.is_none())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_agrees_with_mosquitto_on_seeded_scenarios() {
    let knobs = Knobs::from_env();
    let mosquitto = Mosquitto::start()
        .await
        .unwrap_or_else(|why| panic!("{why}"));
    let keel = TestBroker::start_quiet().await;
    let started = Instant::now();
    let runs = run_seeds(knobs.seeds(), keel.addr, mosquitto.addr).await;
    let elapsed = started.elapsed();
    if let Knobs::Replay(_) = knobs {
        for run in &runs {
            print_replay(run);
        }
    }
    if std::env::var_os("KEEL_DIFF_SHOW_ALLOWED").is_some() {
        print_allowed(&runs);
    }
    let summary = summarize(&runs, elapsed);
    println!("{summary}");
    let mut failing: Vec<&SeedRun> = runs
        .iter()
        .filter(|run| run.unexplained().next().is_some())
        .collect();
    if !failing.is_empty() {
        // The shortest scenarios are the easiest to read: they come first.
        failing.sort_by_key(|run| (run.scenario.steps.len(), run.scenario.seed));
        let log = mosquitto.keep_log();
        panic!(
            "{}\n{summary}\nMosquitto's log: {}",
            failure_report(&failing),
            log.display()
        );
    }
}

/// Runs every seed, [`CONCURRENT_SEEDS`] at a time; results in seed order.
async fn run_seeds(seeds: Vec<u64>, keel: SocketAddr, mosquitto: SocketAddr) -> Vec<SeedRun> {
    let slots = Arc::new(Semaphore::new(CONCURRENT_SEEDS));
    let mut tasks = JoinSet::new();
    for seed in seeds {
        let slots = slots.clone();
        tasks.spawn(async move {
            // The semaphore is never closed.
            let _slot = slots.acquire_owned().await;
            run_seed(seed, keel, mosquitto).await
        });
    }
    let mut runs = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        runs.push(joined.unwrap_or_else(|e| panic!("a scenario task failed: {e}")));
    }
    runs.sort_by_key(|run| run.scenario.seed);
    runs
}

/// The same scenario on both brokers at once.
async fn run_seed(seed: u64, keel: SocketAddr, mosquitto: SocketAddr) -> SeedRun {
    let scenario = scenario::generate(seed);
    let (keel, mosquitto) = tokio::join!(
        driver::run(keel, &scenario),
        driver::run(mosquitto, &scenario)
    );
    let found = compare::differences(&keel, &mosquitto);
    let run = allow::Run {
        scenario: &scenario,
        keel: &keel,
        mosquitto: &mosquitto,
    };
    let verdicts = allow::judge(&run, found);
    SeedRun {
        scenario,
        keel,
        mosquitto,
        verdicts,
    }
}

fn summarize(runs: &[SeedRun], elapsed: Duration) -> String {
    let failing = runs
        .iter()
        .filter(|run| run.unexplained().next().is_some())
        .count();
    let mut allowed: BTreeMap<&str, usize> = BTreeMap::new();
    for verdict in runs.iter().flat_map(|run| &run.verdicts) {
        if let Some(rule) = verdict.rule {
            *allowed.entry(rule.name()).or_default() += 1;
        }
    }
    let allowed: Vec<String> = allowed
        .iter()
        .map(|(name, count)| format!("{name} x{count}"))
        .collect();
    format!(
        "differential: {} seeds in {:.1} s, {failing} with differences outside the allow-list; \
         allowed differences: {}",
        runs.len(),
        elapsed.as_secs_f64(),
        if allowed.is_empty() {
            "none".into()
        } else {
            allowed.join(", ")
        }
    )
}

/// The seed, its differences, its steps and how to replay it, for the first failing seeds;
/// then every failing seed.
fn failure_report(failing: &[&SeedRun]) -> String {
    let mut out = String::new();
    for run in failing.iter().take(REPORTED_IN_FULL) {
        let seed = run.scenario.seed;
        out.push_str(&format!("\nseed {seed}: Keel and Mosquitto differ\n"));
        for verdict in run.unexplained() {
            out.push_str(&format!("  - {}\n", verdict.difference));
        }
        out.push_str("steps:\n");
        for (n, step) in run.scenario.steps.iter().enumerate() {
            out.push_str(&format!("  [{n:2}] {step}\n"));
        }
        out.push_str(&format!("replay: {}\n", replay_command(seed)));
    }
    let seeds: Vec<String> = failing
        .iter()
        .map(|run| run.scenario.seed.to_string())
        .collect();
    out.push_str(&format!("\nfailing seeds: {}\n", seeds.join(" ")));
    out
}

fn replay_command(seed: u64) -> String {
    format!("KEEL_DIFF_SEED={seed} cargo test --test differential -- --nocapture")
}

/// Every allowed difference with its rule (`KEEL_DIFF_SHOW_ALLOWED=1`), to review the rules.
fn print_allowed(runs: &[SeedRun]) {
    for run in runs {
        for verdict in &run.verdicts {
            println!("seed {}: {verdict}", run.scenario.seed);
        }
    }
    print_rules(runs);
}

/// The rules that allowed a difference in `runs`, each with its clause.
fn print_rules(runs: &[SeedRun]) {
    for rule in allow::Rule::ALL {
        let used = runs
            .iter()
            .flat_map(|run| &run.verdicts)
            .any(|verdict| verdict.rule == Some(*rule));
        if used {
            println!("rule {}: {}", rule.name(), rule.clause());
        }
    }
}

fn print_replay(run: &SeedRun) {
    let scenario = &run.scenario;
    println!("seed {}: clients {:?}", scenario.seed, scenario.client_ids);
    println!("Keel:\n{}", run.keel.timeline(scenario));
    println!("Mosquitto:\n{}", run.mosquitto.timeline(scenario));
    if run.verdicts.is_empty() {
        println!("no differences");
    }
    for verdict in &run.verdicts {
        println!("{verdict}");
    }
    print_rules(std::slice::from_ref(run));
}
