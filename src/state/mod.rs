//! Durable state: sessions, subscriptions, queued and in-flight QoS 1/2 messages, QoS 2 receive
//! state and retained messages, changed only by [`Command`]s applied in order.
//!
//! Pure and deterministic: commands carry the time they happen at; nothing here reads a
//! clock, does I/O or draws random numbers. The broker applies commands as they arise; the
//! durable-state layer will put a replicated log (openraft) underneath without changing them.

mod command;
mod machine;
mod message;
mod named_number;
mod persist;
mod placement;
mod session;

pub use command::{delivery_qos, Applied, Command, DirectDelivery, Qos2Origin, UnplacedShared};
pub use machine::{GroupTargets, OverflowPolicy, SpreadTargets, State, StateConfig};
pub use message::{ClientId, Message};
pub(crate) use named_number::named_number;
pub use persist::{
    decode_commands, encode_commands, Format, PersistError, Versions, COMMANDS_VERSION,
    COMMANDS_VERSION_OLDEST, SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
};
pub use placement::{BatchId, Incarnation, LocalSession, NodeId, Place, Placement};
pub use session::{packet_id_for, QueuedMessage, Seq, SessionState, SharedKey, Subscription, Will};

#[cfg(test)]
pub(crate) mod tests;
