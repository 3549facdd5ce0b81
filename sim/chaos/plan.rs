//! Everything a run does, derived from its seed before it starts: topology, workload, fault
//! schedule, latencies, storage settings. A pure function of the seed, so printing the seed
//! is enough to replay a run.

use std::time::Duration;

use keel::cluster::SyncPolicy;
use keel::codec::{Protocol, QoS};
use keel::net::Rng;
pub use keel_oracle::workload::{PublisherSpec, ReaderSpec, SessionStyle, SubscriberSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The node's machine crashes (its unsynced writes are lost, but the first `keep` unsynced
    /// batches reach the disk), and restarts after `down_ms`.
    CrashNode {
        node: String,
        down_ms: u64,
        keep: usize,
        /// When set, the crash waits (up to [`CRASH_WAIT_MS`]) for the worst moment: the
        /// node's disk has held unsynced writes for this many ms, so the crash lands between
        /// writes and their fsync, where an acknowledgement sent too early shows up as a loss.
        during_sync_ms: Option<u64>,
    },
    /// No bytes between `a` and `b` (or only from `a` to `b` when `oneway`) for `ms`.
    Partition {
        a: String,
        b: String,
        oneway: bool,
        ms: u64,
    },
    /// Messages between `a` and `b` are held (clogged) for `ms`, then released in order.
    Clog { a: String, b: String, ms: u64 },
    /// The link between `a` and `b` gets `latency_ms` of latency for `ms`.
    Latency {
        a: String,
        b: String,
        latency_ms: u64,
        ms: u64,
    },
    /// No bytes between any node of `a` and any node of `b` for `ms` (clients unaffected).
    PartitionNodes {
        a: Vec<String>,
        b: Vec<String>,
        ms: u64,
    },
    /// The node that leads the cluster now crashes (losing its unsynced writes) and restarts
    /// after `down_ms`.
    CrashLeader { down_ms: u64 },
    /// The operator takes node `node` out of the membership and puts it back after `out_ms`
    /// (a membership change under load).
    Reconfigure { node: u64, out_ms: u64 },
    /// A client's machine crashes (its connections die without a FIN) and restarts after
    /// `down_ms`, keeping what its application wrote down.
    CrashClient { client: String, down_ms: u64 },
    /// The node stops, as a process does on SIGSTOP, for `ms`: nothing it sends or is sent
    /// moves (every link of it is held), then everything held arrives at once. Clients that
    /// gave up on it meanwhile have CONNECTs and closes queued there, which the node reads
    /// on waking with a replica that has fallen behind (jepsen's pause nemesis found QoS 2
    /// messages of a shared group handed out twice that way).
    PauseNode { node: String, ms: u64 },
    /// The operator asks the leader to add node `id`, which is not there, at `addr`: no
    /// host, a host where nothing listens, another node's address, or no address at all.
    /// The cluster must refuse, keep its membership and go on serving (a `POST` that made an
    /// unreachable node a voter once cost a cluster its quorum for good).
    BogusJoin { id: u64, addr: String },
}

/// Whether cluster seed `seed` asks for bogus joins (see [`Plan::with_bogus_joins`]).
pub fn has_bogus_joins(seed: u64) -> bool {
    seed % 4 == 3
}

/// The ids bogus joins use: never a node of the run.
pub const BOGUS_IDS: std::ops::RangeInclusive<u64> = 90..=99;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledFault {
    pub at_ms: u64,
    pub fault: Fault,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub nodes: Vec<String>,
    pub publishers: Vec<PublisherSpec>,
    pub subscribers: Vec<SubscriberSpec>,
    pub readers: Vec<ReaderSpec>,
    /// Faults happen in `[0, safety_ms)`; then everything is healed.
    pub safety_ms: u64,
    /// After the safety phase, the run lasts this long with no faults: every queued message
    /// must be delivered and every client connected within it (G6).
    pub liveness_ms: u64,
    pub faults: Vec<ScheduledFault>,
    pub sync: SyncPolicy,
    /// How long each node's disk takes to sync: a crash in that window loses the write.
    pub sync_latency: Duration,
    pub snapshot_every: u64,
    pub max_latency: Duration,
}

/// Longest a crash waiting for unsynced writes waits; then it happens anyway.
pub const CRASH_WAIT_MS: u64 = 2_000;

/// The liveness bound (G6): with faults healed, a client needs at most one keep-alive
/// timeout plus a reconnect backoff to be back, and a node restarts in well under a second.
pub const LIVENESS_MS: u64 = 20_000;

/// Chance that a publisher or a (non-shared) subscriber churns its sessions.
const CHURN_CHANCE: f64 = 0.35;

fn durable_or_clean(durable: bool) -> SessionStyle {
    if durable {
        SessionStyle::Durable
    } else {
        SessionStyle::Clean
    }
}

fn protocol(rng: &mut Rng) -> Protocol {
    if rng.chance(0.5) {
        Protocol::V5
    } else {
        Protocol::V3_1_1
    }
}

fn qos(rng: &mut Rng, zero: f64) -> QoS {
    if rng.chance(zero) {
        QoS::AtMostOnce
    } else if rng.chance(0.5) {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    }
}

impl Plan {
    /// How long the run lasts: its safety phase, then its liveness phase.
    pub fn total_ms(&self) -> u64 {
        self.safety_ms + self.liveness_ms
    }

    /// A run on one node.
    pub fn from_seed(seed: u64) -> Plan {
        Plan::generate(seed, 1)
    }

    /// A run on a cluster of 3 or 5 nodes: the workload and faults of a one-node run (with
    /// faults aimed at any node), plus faults between nodes: partitions that isolate a node or
    /// split the cluster, and crashes of the leader.
    pub fn cluster_from_seed(seed: u64) -> Plan {
        let size = if Rng::from_seed(seed ^ 0x005e_edc1_u64).chance(0.7) {
            3
        } else {
            5
        };
        Plan::generate(seed, size)
    }

    fn generate(seed: u64, size: usize) -> Plan {
        let mut rng = Rng::from_seed(seed);
        let nodes: Vec<String> = (1..=size).map(|i| format!("node{i}")).collect();
        let client_faults = *[0.0, 0.01, 0.03]
            .get(rng.range(0..3usize))
            .expect("in range");

        let (publishers, topics) = publishers(&mut rng, client_faults);
        let subscribers = subscribers(&mut rng, topics, client_faults);
        let readers = vec![ReaderSpec {
            name: "reader".into(),
            protocol: protocol(&mut rng),
            filter: "r/+".into(),
        }];

        let safety_ms = rng.range(15_000..30_000u64);
        let clients: Vec<String> = publishers
            .iter()
            .map(|p| p.name.clone())
            .chain(subscribers.iter().map(|s| s.name.clone()))
            .chain(readers.iter().map(|r| r.name.clone()))
            .collect();
        let faults = schedule_faults(&mut rng, &nodes, &clients, safety_ms);
        let sync = sync_policy(&mut rng);
        Plan {
            seed,
            nodes,
            publishers,
            subscribers,
            readers,
            safety_ms,
            liveness_ms: LIVENESS_MS,
            faults,
            sync,
            snapshot_every: rng.range(20..200u64),
            max_latency: Duration::from_millis(rng.range(1..20u64)),
            // Drawn last, so the rest of a seed's plan is what it was before disks had a
            // latency (the pinned seeds keep their workload and faults).
            sync_latency: sync_latency(&mut rng),
        }
        .with_crashes_during_sync(&mut rng)
        .with_cluster_faults(&mut rng)
        .with_session_churn(&mut rng)
        .with_pauses(&mut rng)
        .with_bogus_joins(&mut rng)
    }

    /// In every fourth cluster seed (those that leave 3 divided by 4), one to three requests
    /// to add a node that is not there (drawn after everything else, for the same reason as
    /// the sync latency). Only every fourth: the requests change the run's interleaving, and
    /// the seeds pinned before they existed (the regression seeds, and those that reach the
    /// planted shared-group bug) must keep theirs; none of them leaves 3.
    fn with_bogus_joins(mut self, rng: &mut Rng) -> Plan {
        if self.nodes.len() < 2 || !has_bogus_joins(self.seed) {
            return self;
        }
        for _ in 0..rng.range(1..=3u32) {
            let at_ms = rng.range(500..self.safety_ms.max(501));
            let id = rng.range(BOGUS_IDS);
            let node = &self.nodes[rng.range(0..self.nodes.len())];
            let addr = match rng.range(0..4u32) {
                0 => "nowhere:7000".to_owned(),
                1 => format!("{node}:1"),
                2 => format!("{node}:7000"),
                _ => "not an address".to_owned(),
            };
            let fault = Fault::BogusJoin { id, addr };
            self.faults.push(ScheduledFault { at_ms, fault });
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self
    }

    /// A node pause every four to ten seconds of the safety phase, of one to six seconds
    /// (drawn after everything else, for the same reason as the sync latency).
    fn with_pauses(mut self, rng: &mut Rng) -> Plan {
        let mut at_ms = rng.range(2_000..6_000u64);
        while at_ms + 1_000 < self.safety_ms {
            let room = self.safety_ms - at_ms;
            let node = self.nodes[rng.range(0..self.nodes.len())].clone();
            let ms = rng.range(1_000..6_000u64).min(room);
            self.faults.push(ScheduledFault {
                at_ms,
                fault: Fault::PauseNode { node, ms },
            });
            at_ms += rng.range(4_000..10_000u64);
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self
    }

    /// Some publishers and subscribers (not members of shared groups) churn their sessions:
    /// each connection draws its protocol, Clean Start and Session Expiry Interval, as real
    /// clients do across reconnects (see [`SessionStyle::Churn`]). Drawn after everything
    /// else, for the same reason as the sync latency.
    fn with_session_churn(mut self, rng: &mut Rng) -> Plan {
        for publisher in self.publishers.iter_mut().filter(|p| !p.retain) {
            if rng.chance(CHURN_CHANCE) {
                publisher.session = SessionStyle::Churn;
            }
        }
        for subscriber in &mut self.subscribers {
            if !subscriber.filter.starts_with("$share/") && rng.chance(CHURN_CHANCE) {
                subscriber.session = SessionStyle::Churn;
            }
        }
        self
    }

    /// Faults between the nodes of a cluster, every two to five seconds of the safety phase
    /// (drawn after everything else, for the same reason as the sync latency).
    fn with_cluster_faults(mut self, rng: &mut Rng) -> Plan {
        if self.nodes.len() < 2 {
            return self;
        }
        let mut at_ms = rng.range(1_000..4_000u64);
        while at_ms + 1_000 < self.safety_ms {
            let room = self.safety_ms - at_ms;
            let ms = rng.range(500..6_000u64).min(room);
            let fault = match rng.range(0..5u32) {
                0 => {
                    let node = self.nodes[rng.range(0..self.nodes.len())].clone();
                    let rest = self.nodes.iter().filter(|n| **n != node).cloned().collect();
                    Fault::PartitionNodes {
                        a: vec![node],
                        b: rest,
                        ms,
                    }
                }
                1 => {
                    let mut shuffled = self.nodes.clone();
                    for i in (1..shuffled.len()).rev() {
                        shuffled.swap(i, rng.range(0..=i));
                    }
                    let minority = shuffled.split_off(self.nodes.len().div_ceil(2));
                    Fault::PartitionNodes {
                        a: minority,
                        b: shuffled,
                        ms,
                    }
                }
                4 => Fault::Reconfigure {
                    node: rng.range(1..=self.nodes.len() as u64),
                    out_ms: ms,
                },
                _ => Fault::CrashLeader {
                    down_ms: rng.range(0..3_000u64).min(room),
                },
            };
            self.faults.push(ScheduledFault { at_ms, fault });
            at_ms += rng.range(2_000..5_000u64);
        }
        self.faults.sort_by_key(|f| f.at_ms);
        self
    }

    /// Half the node crashes wait for a moment when the disk has unsynced writes (drawn after
    /// everything else, for the same reason as the sync latency).
    fn with_crashes_during_sync(mut self, rng: &mut Rng) -> Plan {
        let latency_ms = self.sync_latency.as_millis() as u64;
        for scheduled in &mut self.faults {
            if let Fault::CrashNode {
                during_sync_ms,
                keep,
                ..
            } = &mut scheduled.fault
            {
                if latency_ms > 0 && rng.chance(0.5) {
                    // Late in the sync, so that replies sent with the write have had time to
                    // cross the network; and the whole unsynced tail is lost (partial flushes
                    // are the other crashes' part).
                    *during_sync_ms = Some(rng.range(latency_ms.div_ceil(2)..=latency_ms));
                    *keep = 0;
                }
            }
        }
        self
    }

    /// Every client host's name.
    pub fn clients(&self) -> impl Iterator<Item = &str> {
        self.publishers
            .iter()
            .map(|p| p.name.as_str())
            .chain(self.subscribers.iter().map(|s| s.name.as_str()))
            .chain(self.readers.iter().map(|r| r.name.as_str()))
    }
}

/// The publishers of a run: two to four on `t/…` topics (how many topics is drawn too, and
/// returned), then one or two writers of retained messages on `r/…`.
fn publishers(rng: &mut Rng, client_faults: f64) -> (Vec<PublisherSpec>, u32) {
    let publisher_count: u32 = rng.range(2..=4);
    let topics: u32 = rng.range(1..=publisher_count);
    let mut publishers = Vec::new();
    for id in 0..publisher_count {
        publishers.push(PublisherSpec {
            name: format!("p{id}"),
            id,
            protocol: protocol(rng),
            qos: qos(rng, 0.15),
            session: durable_or_clean(rng.chance(0.6)),
            topic: format!("t/{}", id % topics),
            retain: false,
            pause_ms: (20, rng.range(100..400)),
            client_faults,
        });
    }
    let writers: u32 = rng.range(1..=2);
    for k in 0..writers {
        let id = publisher_count + k;
        publishers.push(PublisherSpec {
            name: format!("w{k}"),
            id,
            protocol: protocol(rng),
            qos: QoS::AtLeastOnce,
            session: durable_or_clean(rng.chance(0.5)),
            topic: format!("r/{k}"),
            retain: true,
            pause_ms: (100, 800),
            client_faults,
        });
    }
    (publishers, topics)
}

/// Two to four subscribers, each on a filter matching the publishers' topics.
fn subscribers(rng: &mut Rng, topics: u32, client_faults: f64) -> Vec<SubscriberSpec> {
    let subscriber_count: u32 = rng.range(2..=4);
    let mut subscribers = Vec::new();
    for i in 0..subscriber_count {
        let filter = match rng.range(0..4u32) {
            0 => "t/#".to_string(),
            1 => "t/+".to_string(),
            2 => format!("t/{}", rng.range(0..topics)),
            _ => "$share/g/t/+".to_string(),
        };
        subscribers.push(SubscriberSpec {
            name: format!("s{i}"),
            protocol: protocol(rng),
            session: durable_or_clean(rng.chance(0.75)),
            filter,
            qos: qos(rng, 0.1),
            client_faults,
        });
    }
    subscribers
}

/// How the nodes sync their logs: always, in batches as they come, or in windows of 1-4 ms.
fn sync_policy(rng: &mut Rng) -> SyncPolicy {
    match rng.range(0..3u32) {
        0 => SyncPolicy::Always,
        1 => SyncPolicy::Batch {
            window: Duration::ZERO,
        },
        _ => SyncPolicy::Batch {
            window: Duration::from_millis(rng.range(1..5u64)),
        },
    }
}

/// Half the runs have disks that take 2 to 20 ms to fsync, the window in which a crash loses
/// what was written: an acknowledgement sent before its sync shows up there.
fn sync_latency(rng: &mut Rng) -> Duration {
    if rng.chance(0.5) {
        Duration::from_millis(rng.range(2..=20u64))
    } else {
        Duration::ZERO
    }
}

/// A fault every one to four seconds of the safety phase, each healed before it ends.
fn schedule_faults(
    rng: &mut Rng,
    nodes: &[String],
    clients: &[String],
    safety_ms: u64,
) -> Vec<ScheduledFault> {
    let mut faults = Vec::new();
    let mut at_ms = rng.range(500..3_000u64);
    while at_ms + 1_000 < safety_ms {
        let node = nodes[rng.range(0..nodes.len())].clone();
        let client = clients[rng.range(0..clients.len())].clone();
        let room = safety_ms - at_ms;
        let ms = rng.range(200..8_000u64).min(room);
        let fault = match rng.range(0..10u32) {
            0..=2 => Fault::CrashNode {
                node,
                down_ms: rng.range(0..3_000u64).min(room),
                keep: rng.range(0..3usize),
                during_sync_ms: None,
            },
            3 => Fault::Partition {
                a: node,
                b: client,
                oneway: false,
                ms,
            },
            4 => {
                // One way, in either direction.
                let (a, b) = if rng.chance(0.5) {
                    (node, client)
                } else {
                    (client, node)
                };
                Fault::Partition {
                    a,
                    b,
                    oneway: true,
                    ms,
                }
            }
            5 => Fault::Clog {
                a: node,
                b: client,
                ms: ms.min(3_000),
            },
            6 | 7 => Fault::Latency {
                a: node,
                b: client,
                latency_ms: rng.range(50..1_500u64),
                ms,
            },
            _ => Fault::CrashClient {
                client,
                down_ms: rng.range(0..4_000u64).min(room),
            },
        };
        faults.push(ScheduledFault { at_ms, fault });
        at_ms += rng.range(1_000..4_000u64);
    }
    faults
}
