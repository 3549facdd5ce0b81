//! The nemesis: faults on a schedule derived from the run's seed, one at a time, each healed
//! before the next; everything healed at the end of the safety phase.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use keel::net::Rng;

use crate::hosts::Hosts;
use crate::nodes::Cluster;

/// The kinds of fault a run may use (`--nemesis partition,kill,pause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Network partitions: one node isolated, a majority/minority split, a bridge, one way.
    Partition,
    /// SIGKILL of a node (sometimes the leader), restarted on its data when healed.
    Kill,
    /// SIGSTOP of a node, SIGCONT when healed.
    Pause,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "partition" => Ok(Kind::Partition),
            "kill" => Ok(Kind::Kill),
            "pause" => Ok(Kind::Pause),
            other => Err(format!(
                "unknown nemesis {other:?} (partition, kill, pause)"
            )),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The node hears no other node, and no other node hears it.
    Isolate(u64),
    /// The nodes split into two groups that cannot reach each other.
    Split(Vec<u64>, Vec<u64>),
    /// Two halves that see only `bridge`, which sees both.
    Bridge {
        left: Vec<u64>,
        bridge: u64,
        right: Vec<u64>,
    },
    /// `to` no longer hears `from`; the other way still works.
    OneWay {
        from: u64,
        to: u64,
    },
    Kill(u64),
    /// Kill whichever node leads when the fault starts.
    KillLeader,
    Pause(u64),
    /// A shell command run once against a cluster keel-jepsen did not start (`--external`,
    /// `--during`), e.g. a rolling restart; it holds while the command runs.
    Command(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Isolate(n) => write!(f, "isolate n{n}"),
            Fault::Split(a, b) => write!(f, "split {a:?} | {b:?}"),
            Fault::Bridge {
                left,
                bridge,
                right,
            } => write!(f, "bridge {left:?} - n{bridge} - {right:?}"),
            Fault::OneWay { from, to } => write!(f, "one way: n{to} deaf to n{from}"),
            Fault::Kill(n) => write!(f, "kill -9 n{n}"),
            Fault::KillLeader => write!(f, "kill -9 the leader"),
            Fault::Pause(n) => write!(f, "pause n{n}"),
            Fault::Command(command) => write!(f, "run `{command}`"),
        }
    }
}

/// A fault and when it holds, in ms since the run started.
#[derive(Debug, Clone)]
pub struct Window {
    pub start_ms: u64,
    pub end_ms: u64,
    pub fault: Fault,
}

/// The schedule of a safety phase of `safety_ms`: after `warmup_ms`, faults of 2–8 s with
/// gaps of 1–3 s, each of a kind from `kinds`, all derived from `seed`.
pub fn schedule(
    seed: u64,
    kinds: &[Kind],
    nodes: &[u64],
    warmup_ms: u64,
    safety_ms: u64,
) -> Vec<Window> {
    let mut rng = Rng::from_seed(seed ^ 0x6E65_6D65_7369_7321);
    let mut windows = Vec::new();
    if kinds.is_empty() || nodes.is_empty() {
        return windows;
    }
    let mut at_ms = warmup_ms;
    while at_ms + 2_000 < safety_ms {
        let length_ms = rng.range(2_000..8_000u64).min(safety_ms - at_ms);
        let kind = kinds[rng.range(0..kinds.len())];
        let fault = pick(&mut rng, kind, nodes);
        windows.push(Window {
            start_ms: at_ms,
            end_ms: at_ms + length_ms,
            fault,
        });
        at_ms += length_ms + rng.range(1_000..3_000u64);
    }
    windows
}

fn pick(rng: &mut Rng, kind: Kind, nodes: &[u64]) -> Fault {
    let any = |rng: &mut Rng| nodes[rng.range(0..nodes.len())];
    match kind {
        Kind::Kill if rng.chance(0.3) => Fault::KillLeader,
        Kind::Kill => Fault::Kill(any(rng)),
        Kind::Pause => Fault::Pause(any(rng)),
        Kind::Partition => {
            let mut shuffled = nodes.to_vec();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.range(0..=i));
            }
            match rng.range(0..4u32) {
                0 => Fault::Isolate(shuffled[0]),
                1 if nodes.len() >= 3 => {
                    let minority = (nodes.len() - 1) / 2;
                    let (small, large) = shuffled.split_at(minority.max(1));
                    Fault::Split(small.to_vec(), large.to_vec())
                }
                2 if nodes.len() >= 3 => {
                    let bridge = shuffled[0];
                    let rest = &shuffled[1..];
                    let (left, right) = rest.split_at(rest.len() / 2);
                    Fault::Bridge {
                        left: left.to_vec(),
                        bridge,
                        right: right.to_vec(),
                    }
                }
                _ if nodes.len() >= 2 => Fault::OneWay {
                    from: shuffled[0],
                    to: shuffled[1],
                },
                _ => Fault::Isolate(shuffled[0]),
            }
        }
    }
}

/// Starts `fault`; returns what it did (the leader a `KillLeader` found, if any).
pub async fn start(fault: &Fault, hosts: &Hosts, cluster: &mut Cluster) -> Result<String> {
    match fault {
        Fault::Isolate(n) => {
            let others: Vec<u64> = cluster.ids().into_iter().filter(|m| m != n).collect();
            hosts.split(&[*n], &others)?;
        }
        Fault::Split(a, b) => hosts.split(a, b)?,
        Fault::Bridge {
            left,
            bridge: _,
            right,
        } => hosts.split(left, right)?,
        Fault::OneWay { from, to } => hosts.block(*from, *to)?,
        Fault::Kill(n) => cluster.kill(*n).await?,
        Fault::KillLeader => {
            return Ok(match cluster.leader().await {
                Some(leader) => {
                    cluster.kill(leader).await?;
                    format!("{fault}: n{leader}")
                }
                None => format!("{fault}: no leader known, nothing killed"),
            })
        }
        Fault::Pause(n) => cluster.pause(*n, true)?,
        Fault::Command(_) => anyhow::bail!("a command is a fault of external runs only"),
    }
    Ok(fault.to_string())
}

/// Heals every fault: partitions removed, paused nodes resumed, dead nodes restarted.
pub fn heal_all(hosts: &Hosts, cluster: &mut Cluster) -> Result<()> {
    hosts.heal()?;
    cluster.revive_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_inside_the_safety_phase() {
        let kinds = [Kind::Partition, Kind::Kill, Kind::Pause];
        let a = schedule(7, &kinds, &[1, 2, 3], 3_000, 60_000);
        let b = schedule(7, &kinds, &[1, 2, 3], 3_000, 60_000);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(a.len() >= 4, "a minute holds several faults: {a:?}");
        for pair in a.windows(2) {
            assert!(pair[0].end_ms < pair[1].start_ms, "one fault at a time");
        }
        assert!(a.iter().all(|w| w.start_ms >= 3_000 && w.end_ms <= 60_000));
    }

    #[test]
    fn only_the_chosen_kinds_are_scheduled() {
        let windows = schedule(3, &[Kind::Pause], &[1, 2, 3], 0, 120_000);
        assert!(windows.iter().all(|w| matches!(w.fault, Fault::Pause(_))));
    }

    #[test]
    fn a_split_leaves_a_majority() {
        for seed in 0..50 {
            for w in schedule(seed, &[Kind::Partition], &[1, 2, 3, 4, 5], 0, 60_000) {
                if let Fault::Split(small, large) = w.fault {
                    assert!(small.len() < large.len(), "{small:?} | {large:?}");
                    assert_eq!(small.len() + large.len(), 5);
                }
            }
        }
    }
}
