//! One run of the chaos simulator: builds the simulation from a [`Plan`], drives it step by
//! step (faults between steps, node invariants after every step), then judges the history.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::Hasher;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel::broker::BrokerConfig;
use keel::cluster::{Applier, TypeConfig};
use keel::net::{Rng, SimClock, SimNet};
use keel::planted::Bugs;
use keel::server::{ClusterSettings, Hub, ListenerSpec, Server, ServerSettings};
use keel::storage::MemStore;
use keel::transport::TransportAcceptor;
use openraft::Raft;

use super::nemesis::Nemesis;
use super::operator::{operator, Orders, ADMIN_PORT};
use super::plan::Plan;
use keel_oracle::checkers;
use keel_oracle::client::RunClock;
use keel_oracle::history::{Entry, Event, History, Violation};
use keel_oracle::workload::{self, ClientCtx, Phase, SharedDisk};

/// The wall clock of every node starts here (plus the simulated time of its start), so every
/// run of a seed reads the same times.
const EPOCH_MS: u64 = 1_750_000_000_000;

/// What a run found.
pub struct Outcome {
    pub violations: Vec<Violation>,
    /// A hash of the whole history: equal for two runs of one seed (determinism).
    pub trace_hash: u64,
    pub events: usize,
    pub acknowledged: usize,
    pub delivered: usize,
    pub faults: usize,
    /// The whole record, for reports.
    pub history: Vec<Entry>,
}

type HostFuture = Pin<Box<dyn Future<Output = turmoil::Result>>>;

/// A node of a cluster that has not answered its leader for this long is declared gone:
/// shorter than in production, so that runs exercise it.
const NODE_DOWN_AFTER: Duration = Duration::from_secs(5);

/// The hub and Raft handle of a node's current run, so the harness can check its invariants
/// between steps.
type HubSlot = Arc<Mutex<Option<(Arc<Hub>, Raft<TypeConfig>)>>>;

fn node_host(
    plan: &Plan,
    node_id: u64,
    store: MemStore,
    slot: HubSlot,
) -> impl Fn() -> HostFuture + 'static {
    let sync = plan.sync;
    let snapshot_every = plan.snapshot_every;
    let cluster = (plan.nodes.len() > 1).then(|| ClusterSettings {
        listen: "0.0.0.0:7000".into(),
        advertise: format!("{}:7000", plan.nodes[node_id as usize - 1]),
        peers: plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, name)| (i as u64 + 1, format!("{name}:7000")))
            .collect(),
        join: None,
        node_down_after: NODE_DOWN_AFTER,
        // Plaintext: the simulated network is the only one, and rustls draws its randomness
        // from the OS, outside the seed.
        tls: None,
    });
    let seed = plan.seed ^ node_id;
    let starts = Arc::new(Mutex::new(0u64));
    move || {
        let store = store.clone();
        let slot = slot.clone();
        let cluster = cluster.clone();
        let run = {
            let mut starts = starts.lock().unwrap_or_else(|e| e.into_inner());
            *starts += 1;
            *starts
        };
        Box::pin(async move {
            let settings = ServerSettings {
                listeners: vec![ListenerSpec {
                    addr: "0.0.0.0:1883".into(),
                    acceptor: TransportAcceptor::tcp(),
                    connections_max: None,
                }],
                broker: BrokerConfig::default(),
                sys_interval: Duration::ZERO,
                node_id,
                store: Arc::new(store),
                sync,
                snapshot_every,
                http_listen: cluster.is_some().then(|| format!("0.0.0.0:{ADMIN_PORT}")),
                cluster,
                ..ServerSettings::default()
            };
            let started_ms = super::now_ms();
            let clock = Arc::new(SimClock::new(EPOCH_MS + started_ms));
            let server = Server::bind(&SimNet, settings, clock)
                .await?
                .with_admin_api(keel::admin::start);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((server.hub(), server.raft()));
            server
                .run(
                    Rng::from_seed(seed.wrapping_add(run)),
                    std::future::pending(),
                )
                .await?;
            Ok(())
        })
    }
}

/// Runs the simulation of `plan`, with `bugs` planted.
pub fn run_with(plan: Plan, bugs: Bugs) -> Outcome {
    keel::planted::plant(bugs);
    let outcome = run_plan(plan);
    keel::planted::plant(Bugs::default());
    outcome
}

fn run_plan(plan: Plan) -> Outcome {
    keel::cluster::seed_thread_rng(plan.seed);
    let history = History::default();
    let phase = Phase::default();
    let mut sim = turmoil::Builder::new()
        .rng_seed(plan.seed)
        .simulation_duration(Duration::from_millis(plan.total_ms() + 10_000))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(plan.max_latency)
        .build();
    // The order of the hosts is part of the seed: nodes, then clients, then the operator.
    let (stores, slots) = host_nodes(&mut sim, &plan);
    host_clients(&mut sim, &plan, &history, &phase);
    let orders = Orders::default();
    let clustered = plan.nodes.len() > 1;
    if clustered {
        let (orders, nodes, history) = (orders.clone(), plan.nodes.clone(), history.clone());
        sim.host("operator", move || {
            Box::pin(operator(orders.clone(), nodes.clone(), history.clone())) as HostFuture
        });
    }
    let hosts = plan
        .nodes
        .iter()
        .map(String::as_str)
        .chain(plan.clients())
        .chain(clustered.then_some("operator"))
        .map(String::from)
        .collect();
    let nemesis = Nemesis::new(plan.faults.clone(), stores, plan.max_latency, hosts, orders);
    let mut violations = drive(&mut sim, &plan, nemesis, &slots, &history, &phase);
    violations.extend(replicas_differ(&slots, &mut sim));
    if std::env::var_os("KEEL_SIM_TRACE").is_some() {
        for (node, slot) in &slots {
            if let Some((_, raft)) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                eprintln!("{node}: {}", *raft.metrics().borrow());
            }
        }
    }
    judge(&plan, &history, violations)
}

/// Adds a host per node of the plan, each with its own in-memory disk (kept across its
/// restarts) and the slot through which the harness reads its hub.
fn host_nodes(
    sim: &mut turmoil::Sim<'_>,
    plan: &Plan,
) -> (BTreeMap<String, MemStore>, Vec<(String, HubSlot)>) {
    let mut stores = BTreeMap::new();
    let mut slots = Vec::new();
    for (i, node) in plan.nodes.iter().enumerate() {
        let store = MemStore::new();
        store.set_sync_latency(plan.sync_latency);
        let slot = HubSlot::default();
        sim.host(
            node.as_str(),
            node_host(plan, i as u64 + 1, store.clone(), slot.clone()),
        );
        stores.insert(node.clone(), store);
        slots.push((node.clone(), slot));
    }
    (stores, slots)
}

/// Adds a host per client of the plan: publishers, then subscribers, then readers, each
/// numbered in that order for its seed.
fn host_clients(sim: &mut turmoil::Sim<'_>, plan: &Plan, history: &History, phase: &Phase) {
    let nudge = workload::Nudge::default();
    let mut n = 0;
    let mut ctx = || {
        n += 1;
        ClientCtx {
            net: SimNet,
            clock: RunClock::new(super::now_ms),
            history: history.clone(),
            phase: phase.clone(),
            nodes: plan.nodes.clone(),
            seed: plan.seed.wrapping_mul(31).wrapping_add(n),
            nudge: nudge.clone(),
        }
    };
    for spec in &plan.publishers {
        host_client(sim, &spec.name, ctx(), spec.clone(), workload::publisher);
    }
    for spec in &plan.subscribers {
        host_client(sim, &spec.name, ctx(), spec.clone(), workload::subscriber);
    }
    for spec in &plan.readers {
        host_client(sim, &spec.name, ctx(), spec.clone(), workload::reader);
    }
}

/// Adds one client host running `body`; its disk outlives its restarts.
fn host_client<S, F, Fut>(
    sim: &mut turmoil::Sim<'_>,
    name: &str,
    ctx: ClientCtx<SimNet>,
    spec: S,
    body: F,
) where
    S: Clone + 'static,
    F: Fn(S, ClientCtx<SimNet>, SharedDisk) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let disk = SharedDisk::default();
    sim.host(name, move || {
        let run = body(spec.clone(), ctx.clone(), disk.clone());
        Box::pin(async move {
            run.await;
            Ok(())
        }) as HostFuture
    });
}

/// Steps the simulation to its end: faults before each step, the nodes' invariants after
/// it. Returns what the nodes broke.
fn drive(
    sim: &mut turmoil::Sim<'_>,
    plan: &Plan,
    mut nemesis: Nemesis,
    slots: &[(String, HubSlot)],
    history: &History,
    phase: &Phase,
) -> Vec<Violation> {
    let mut checks = NodeChecks::new(plan.nodes.len() as u64);
    let mut liveness = false;
    loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        if !liveness && now_ms >= plan.safety_ms {
            nemesis.heal_all(sim, now_ms, history);
            history.record(now_ms, Event::LivenessStarted);
            phase.start_liveness();
            liveness = true;
        }
        if now_ms >= plan.total_ms() {
            history.record(now_ms, Event::Finished);
            phase.finish();
            break;
        }
        let leader = || {
            slots.iter().find_map(|(node, slot)| {
                let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                let leads = slot
                    .as_ref()
                    .is_some_and(|(hub, _)| hub.lock().broker.leads());
                leads.then(|| node.clone())
            })
        };
        nemesis.tick(sim, now_ms, history, &leader);
        if let Err(e) = sim.step() {
            checks.violations.push(Violation {
                guarantee: "host failed",
                detail: format!("at {now_ms} ms: {e}"),
            });
            break;
        }
        for (node, slot) in slots {
            if !sim.is_host_running(node.as_str()) {
                continue;
            }
            if let Some((hub, raft)) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                // Panics (a broken invariant) with the seed printed by the caller.
                hub.lock().broker.validate();
                checks.check(&raft.metrics().borrow(), now_ms);
            }
        }
    }
    checks.violations
}

/// The checks of the nodes' Raft state after every step; each reports its first breach only.
struct NodeChecks {
    node_count: u64,
    /// The entry applied at each index, by log id, as the nodes reported it.
    applied_at: BTreeMap<u64, openraft::LogId<u64>>,
    diverged: bool,
    admitted_stranger: bool,
    violations: Vec<Violation>,
}

impl NodeChecks {
    fn new(node_count: u64) -> Self {
        NodeChecks {
            node_count,
            applied_at: BTreeMap::new(),
            diverged: false,
            admitted_stranger: false,
            violations: Vec::new(),
        }
    }

    fn check(&mut self, metrics: &openraft::RaftMetrics<u64, openraft::BasicNode>, now_ms: u64) {
        // Only the run's nodes are ever members: a bogus join must be refused.
        let strangers: Vec<u64> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !(1..=self.node_count).contains(id))
            .collect();
        if !strangers.is_empty() && !self.admitted_stranger {
            self.admitted_stranger = true;
            self.violations.push(Violation {
                guarantee: "membership",
                detail: format!(
                    "node {} has nodes {strangers:?} in its membership, which are not \
                     nodes of the run (at {now_ms} ms)",
                    metrics.id
                ),
            });
        }
        // Log matching of what is applied: the entry a node applied at an index is the entry
        // every node applies there. (Election safety is openraft's own: by default it orders
        // leaders by term and node id, so two nodes may lead one term, the higher id
        // superseding the lower.)
        if let Some(applied) = metrics.last_applied {
            let first = *self.applied_at.entry(applied.index).or_insert(applied);
            if first != applied && !self.diverged {
                self.diverged = true;
                self.violations.push(Violation {
                    guarantee: "Raft log matching",
                    detail: format!(
                        "node {} applied {applied} at index {}, another node {first} \
                         (at {now_ms} ms)",
                        metrics.id, applied.index
                    ),
                });
            }
        }
    }
}

/// Runs the checkers over the history and hashes it.
fn judge(plan: &Plan, history: &History, mut violations: Vec<Violation>) -> Outcome {
    let entries = history.entries();
    if std::env::var_os("KEEL_SIM_TRACE").is_some() {
        eprintln!("{plan:#?}");
        for (i, entry) in entries.iter().enumerate() {
            eprintln!("{i:6} {:7} {:?}", entry.at_ms, entry.event);
        }
    }
    violations.extend(checkers::check_all(&entries));
    let mut hasher = Fnv::default();
    for entry in &entries {
        hasher.write(format!("{entry:?}").as_bytes());
    }
    let count = |f: fn(&Event) -> bool| entries.iter().filter(|e| f(&e.event)).count();
    Outcome {
        violations,
        trace_hash: hasher.finish(),
        events: entries.len(),
        acknowledged: count(|e| matches!(e, Event::PublishAcked { .. })),
        delivered: count(|e| matches!(e, Event::Delivered { .. })),
        faults: count(|e| matches!(e, Event::Fault { .. })),
        history: entries,
    }
}

/// Replica equality after the liveness phase: nodes that applied the log to the same point
/// hold the same replicated state, byte for byte.
fn replicas_differ(slots: &[(String, HubSlot)], sim: &mut turmoil::Sim<'_>) -> Vec<Violation> {
    let mut by_position: BTreeMap<Option<u64>, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (node, slot) in slots {
        if !sim.is_host_running(node.as_str()) {
            continue;
        }
        if let Some((hub, _)) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let (snapshot, position) = hub.snapshot();
            let applied = position.last_applied.map(|id| id.index);
            by_position
                .entry(applied)
                .or_default()
                .push((node.clone(), snapshot));
        }
    }
    let mut violations = Vec::new();
    for (applied, replicas) in by_position {
        let (first, bytes) = &replicas[0];
        for (other, other_bytes) in &replicas[1..] {
            if other_bytes != bytes {
                violations.push(Violation {
                    guarantee: "replica equality",
                    detail: format!(
                        "{first} and {other} applied the log through {applied:?} but hold \
                         different states ({} and {} snapshot bytes)",
                        bytes.len(),
                        other_bytes.len()
                    ),
                });
            }
        }
    }
    violations
}

/// FNV-1a: a hash that is the same in every process (std's `DefaultHasher` is not promised
/// to be).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
