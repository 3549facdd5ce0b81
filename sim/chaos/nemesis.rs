//! The nemesis: applies the plan's faults at their times, heals each one when it is over, and
//! heals everything at once when the liveness phase starts.

use std::collections::BTreeMap;

use keel::storage::MemStore;

use super::operator::{Order, Orders};
use super::plan::{Fault, ScheduledFault, CRASH_WAIT_MS};
use keel_oracle::history::{Event, History};

/// Something to undo at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Heal {
    Restart(String),
    Repair(String, String),
    RepairOneway(String, String),
    Release(String, String),
    Latency(String, String),
    /// Repair every link between the two sets of nodes.
    RepairSets(Vec<String>, Vec<String>),
    /// Have the operator put the node back into the membership.
    Readd(u64),
    /// Release every link of a paused node.
    Unpause(String),
}

pub struct Nemesis {
    /// Faults not started yet, in time order.
    pending: Vec<ScheduledFault>,
    /// What to heal, by time.
    heals: BTreeMap<u64, Vec<Heal>>,
    /// The store of each node, kept outside the node's host so it survives a crash.
    stores: BTreeMap<String, MemStore>,
    /// The default message latency, restored when a latency spike ends.
    base_latency: std::time::Duration,
    /// Every host of the simulation.
    hosts: Vec<String>,
    /// Node crashes waiting for unsynced writes: (give up and crash at, fault).
    armed: Vec<(u64, Fault)>,
    /// Since when each node's disk has held unsynced writes without a break.
    unsynced_since: BTreeMap<String, u64>,
    /// The operator's orders (membership changes).
    orders: Orders,
}

impl Nemesis {
    pub fn new(
        mut faults: Vec<ScheduledFault>,
        stores: BTreeMap<String, MemStore>,
        base_latency: std::time::Duration,
        hosts: Vec<String>,
        orders: Orders,
    ) -> Nemesis {
        faults.sort_by_key(|f| std::cmp::Reverse(f.at_ms));
        Nemesis {
            pending: faults,
            heals: BTreeMap::new(),
            stores,
            base_latency,
            hosts,
            armed: Vec::new(),
            unsynced_since: BTreeMap::new(),
            orders,
        }
    }

    /// Starts the faults due at `now_ms` and heals the ones that are over.
    pub fn tick(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        now_ms: u64,
        history: &History,
        leader: &dyn Fn() -> Option<String>,
    ) {
        for (node, store) in &self.stores {
            if store.unsynced_batches() == 0 {
                self.unsynced_since.remove(node);
            } else {
                self.unsynced_since.entry(node.clone()).or_insert(now_ms);
            }
        }
        while self.pending.last().is_some_and(|f| f.at_ms <= now_ms) {
            let fault = self.pending.pop().expect("checked").fault;
            match fault {
                Fault::CrashNode {
                    during_sync_ms: Some(_),
                    ..
                } => self.armed.push((now_ms + CRASH_WAIT_MS, fault)),
                Fault::CrashLeader { down_ms } => {
                    // No leader (an election is on): no crash this time.
                    if let Some(node) = leader() {
                        let crash = Fault::CrashNode {
                            node,
                            down_ms,
                            keep: 0,
                            during_sync_ms: None,
                        };
                        self.start(sim, now_ms, crash, history);
                    }
                }
                fault => self.start(sim, now_ms, fault, history),
            }
        }
        for (give_up_ms, fault) in std::mem::take(&mut self.armed) {
            let Fault::CrashNode {
                node,
                during_sync_ms: Some(wait_ms),
                ..
            } = &fault
            else {
                continue;
            };
            let worst = self
                .unsynced_since
                .get(node)
                .is_some_and(|since| now_ms >= since + wait_ms);
            if worst || now_ms >= give_up_ms {
                self.start(sim, now_ms, fault, history);
            } else {
                self.armed.push((give_up_ms, fault));
            }
        }
        while let Some(entry) = self.heals.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            for heal in entry.remove() {
                self.heal(sim, heal, now_ms, history);
            }
        }
    }

    /// Ends every fault now and starts no more.
    pub fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64, history: &History) {
        self.pending.clear();
        self.armed.clear();
        let heals: Vec<Heal> = std::mem::take(&mut self.heals)
            .into_values()
            .flatten()
            .collect();
        for heal in heals {
            self.heal(sim, heal, now_ms, history);
        }
    }

    fn later(&mut self, at_ms: u64, heal: Heal) {
        self.heals.entry(at_ms).or_default().push(heal);
    }

    fn start(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64, fault: Fault, history: &History) {
        // A host already down (a crash not yet healed) takes no second crash.
        let down = |sim: &mut turmoil::Sim<'_>, host: &str| !sim.is_host_running(host);
        match fault.clone() {
            Fault::CrashNode {
                node,
                down_ms,
                keep,
                ..
            } => {
                if down(sim, &node) {
                    return;
                }
                self.crash(sim, &node);
                if let Some(store) = self.stores.get(&node) {
                    store.crash_keeping(keep);
                }
                self.later(now_ms + down_ms, Heal::Restart(node));
            }
            Fault::CrashClient { client, down_ms } => {
                if down(sim, &client) {
                    return;
                }
                self.crash(sim, &client);
                self.later(now_ms + down_ms, Heal::Restart(client));
            }
            Fault::Partition { a, b, oneway, ms } => {
                if oneway {
                    sim.partition_oneway(a.as_str(), b.as_str());
                    self.later(now_ms + ms, Heal::RepairOneway(a, b));
                } else {
                    sim.partition(a.as_str(), b.as_str());
                    self.later(now_ms + ms, Heal::Repair(a, b));
                }
            }
            Fault::PartitionNodes { a, b, ms } => {
                for x in &a {
                    for y in &b {
                        sim.partition(x.as_str(), y.as_str());
                    }
                }
                self.later(now_ms + ms, Heal::RepairSets(a, b));
            }
            Fault::CrashLeader { .. } => {}
            Fault::BogusJoin { id, addr } => self.orders.push(Order::AddBogus { id, addr }),
            Fault::Reconfigure { node, out_ms } => {
                self.orders.push(Order::Remove { node });
                self.later(now_ms + out_ms, Heal::Readd(node));
            }
            Fault::Clog { a, b, ms } => {
                sim.hold(a.as_str(), b.as_str());
                self.later(now_ms + ms, Heal::Release(a, b));
            }
            Fault::PauseNode { node, ms } => {
                if down(sim, &node) {
                    return;
                }
                for other in self.hosts.iter().filter(|h| **h != node) {
                    sim.hold(node.as_str(), other.as_str());
                }
                self.later(now_ms + ms, Heal::Unpause(node));
            }
            Fault::Latency {
                a,
                b,
                latency_ms,
                ms,
            } => {
                sim.set_link_latency(
                    a.as_str(),
                    b.as_str(),
                    std::time::Duration::from_millis(latency_ms),
                );
                self.later(now_ms + ms, Heal::Latency(a, b));
            }
        }
        history.record(
            now_ms,
            Event::Fault {
                what: format!("{fault:?}"),
            },
        );
    }

    /// Crashes `host` the way a machine dies: nothing it had in flight, and none of the FINs
    /// of its dropped sockets, reaches anyone. (Isolating it first also keeps the run
    /// deterministic: tokio drops a runtime's tasks in an order that depends on task ids,
    /// which are global to the process, so the FINs would leave in an order that changes
    /// with whatever else the process ran.) The faults in force on its links are put back.
    fn crash(&self, sim: &mut turmoil::Sim<'_>, host: &str) {
        let others: Vec<&str> = self
            .hosts
            .iter()
            .map(String::as_str)
            .filter(|h| *h != host)
            .collect();
        for other in &others {
            sim.partition(host, *other);
        }
        sim.crash(host);
        for other in &others {
            sim.repair(host, *other);
        }
        for heal in self.heals.values().flatten() {
            match heal {
                Heal::Repair(a, b) if a == host || b == host => {
                    sim.partition(a.as_str(), b.as_str())
                }
                Heal::RepairOneway(a, b) if a == host || b == host => {
                    sim.partition_oneway(a.as_str(), b.as_str())
                }
                Heal::Release(a, b) if a == host || b == host => sim.hold(a.as_str(), b.as_str()),
                Heal::Unpause(node) => {
                    for other in self.hosts.iter().filter(|h| *h != node) {
                        if node == host || other == host {
                            sim.hold(node.as_str(), other.as_str());
                        }
                    }
                }
                Heal::RepairSets(a, b) => {
                    for x in a {
                        for y in b {
                            if x == host || y == host {
                                sim.partition(x.as_str(), y.as_str());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn heal(&mut self, sim: &mut turmoil::Sim<'_>, heal: Heal, now_ms: u64, history: &History) {
        match &heal {
            Heal::Restart(host) => {
                if !sim.is_host_running(host.as_str()) {
                    sim.bounce(host.as_str());
                }
            }
            Heal::Repair(a, b) => sim.repair(a.as_str(), b.as_str()),
            Heal::RepairOneway(a, b) => sim.repair_oneway(a.as_str(), b.as_str()),
            Heal::Release(a, b) => sim.release(a.as_str(), b.as_str()),
            Heal::Latency(a, b) => sim.set_link_latency(a.as_str(), b.as_str(), self.base_latency),
            Heal::RepairSets(a, b) => {
                for x in a {
                    for y in b {
                        sim.repair(x.as_str(), y.as_str());
                    }
                }
            }
            Heal::Readd(node) => self.orders.push(Order::Add { node: *node }),
            Heal::Unpause(node) => {
                for other in self.hosts.iter().filter(|h| *h != node) {
                    sim.release(node.as_str(), other.as_str());
                }
            }
        }
        history.record(
            now_ms,
            Event::Fault {
                what: format!("healed {heal:?}"),
            },
        );
    }
}
