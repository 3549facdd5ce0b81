//! Durable state and the cluster, one test program: the real `keel` binary killed with
//! SIGKILL and restarted on its data directory ([`durability`]), snapshots and a failing
//! store in process ([`durable_state`]), and a three-node cluster losing a node and then its
//! leader ([`failover`]).

#[path = "../common/mod.rs"]
mod common;

mod durability;
mod durable_state;
mod failover;
