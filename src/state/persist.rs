//! The durable encodings of the state machine: log entries (batches of [`Command`]s) and
//! snapshots of a whole [`State`], both written with postcard (serde).
//!
//! A command batch is one version byte, then the postcard encoding of the commands.
//!
//! A snapshot is a header (the magic bytes `KEELSNAP`, then the format version as a
//! little-endian `u16`), then the postcard encoding of a snapshot body: a table of messages,
//! the sessions, the retained messages and the shared-subscription cursors. A message behind
//! an `Arc` (queued in any number of sessions, retained) is written once in the table and
//! referred to by its index, and restoring shares one `Arc` again among all that refer to it.
//! The indexes derived from the sessions (the router, the timers, each queue's byte count)
//! are not written; restoring rebuilds them. The same state (values and which queue entries share a message) always gives
//! the same bytes: everything is written in the order of the `BTreeMap`s that hold it.
//!
//! Reading either back checks every rule the types and the state hold (a topic name has no
//! wildcard, a packet id is not 0, a queue is in order, ...), so corrupt bytes give a
//! [`PersistError`], never a state that breaks its invariants, and never a panic. Bit rot
//! that still decodes to a valid state is for the store's own checksums to catch.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::{PacketId, QoS, TopicFilter, TopicName};

use super::command::Command;
use super::machine::{State, StateConfig};
use super::message::{ClientId, Message};
use super::placement::{BatchId, LocalSession, Place, Placement};
use super::session::{QueuedMessage, Seq, SessionState, SharedKey, Subscription, Will};

/// The format version a command batch starts with: [`encode_commands`] writes it,
/// [`decode_commands`] reads it and every version back to [`COMMANDS_VERSION_OLDEST`]. Any
/// change to the serde encoding of [`Command`] or anything in it (fields, variants, their
/// order, the type of one) needs a new one.
///
/// - 2: commands as they were first written to the log.
/// - 3: the ids and records in commands have types of their own: queue seqs are [`Seq`]s,
///   node ids and runs in a [`Place`] and in `NodeDown` are `NodeId`s and `Incarnation`s,
///   and a QoS 2 publish's origin is a `Qos2Origin` instead of the tuple
///   `(ClientId, PacketId, Place)`. The bytes do not change: a newtype is serialized as the
///   number it holds (`transparent`), and serde writes a struct as its fields in order, as
///   it wrote the tuple. So a version 2 batch is read as it is, to the same values it was
///   written from (`state::tests::persist` checks that on bytes written before the change).
///
/// Only what a build can read right is read: a version it does not know, older or newer, is
/// refused ([`PersistError::UnsupportedVersion`], naming the version found and the ones
/// read), never decoded as if it were its own.
///
/// The Raft log does not go through this encoding: a log entry is openraft's `Entry` with
/// a `cluster::Batch` of `broker::Proposal`s in it, written with postcard as it is, without
/// a version (in the store, in AppendEntries, and in batches forwarded to the leader). In a
/// rolling restart old and new nodes replicate and apply each other's entries, so that
/// encoding must stay what old nodes read: a new node must apply what an old leader wrote,
/// and an old node must not misread what a new leader writes. Version 3 keeps it byte for
/// byte (pinned by a test in `cluster::types` on an entry written before the change, both
/// ways: the old bytes decode to the same values, and those values encode to the same
/// bytes). A change that
/// would alter it cannot just be flagged by adding a version to it now (an old node would
/// read a leading version byte as the batch's node id, and might go on decoding); it needs
/// a new store format ([`crate::storage::FORMAT_VERSION`]) and a cluster-wide upgrade
/// step.
pub const COMMANDS_VERSION: u8 = 3;

/// The oldest command batch version [`decode_commands`] reads: every version from it to
/// [`COMMANDS_VERSION`] has the same layout (see there).
pub const COMMANDS_VERSION_OLDEST: u8 = 2;

/// The bytes a snapshot starts with.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"KEELSNAP";

/// The snapshot format version, after the magic bytes. Any change to the snapshot body or to
/// the serde encoding of what it holds needs a new one.
///
/// Still 2 since the ids got types ([`COMMANDS_VERSION`] 3): the seqs, places and batch ids
/// a snapshot holds are written as the same numbers as before, so the body did not change
/// (`state::tests::persist` restores a snapshot written before the change and writes it
/// back to the same bytes). A node catching up from an old node's snapshot, or an old node
/// from a new one's, reads it right.
pub const SNAPSHOT_VERSION: u16 = 2;

const SNAPSHOT_HEADER_LEN: usize = SNAPSHOT_MAGIC.len() + 2;

/// Which of the two encodings an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Commands,
    Snapshot,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Commands => "command batch",
            Format::Snapshot => "snapshot",
        })
    }
}

/// The format versions a build reads, from `oldest` to `newest` (the one it writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub oldest: u16,
    pub newest: u16,
}

impl fmt::Display for Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.oldest == self.newest {
            write!(f, "version {}", self.newest)
        } else {
            write!(f, "versions {} to {}", self.oldest, self.newest)
        }
    }
}

/// Why stored bytes could not be read back. Every one means the bytes are not what this
/// build wrote (or could read): the node must not go on with a state it could not restore.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("not a keel snapshot: it does not start with the magic bytes \"KEELSNAP\"")]
    BadMagic,
    #[error("{format} of {len} bytes is shorter than its {header_len}-byte header")]
    TruncatedHeader {
        format: Format,
        len: usize,
        header_len: usize,
    },
    #[error("unsupported {format} format version {found}: this build reads {readable}")]
    UnsupportedVersion {
        format: Format,
        found: u16,
        readable: Versions,
    },
    /// Postcard could not decode the bytes. Its message names what it met (end of input, a
    /// bad varint, ...); a value that broke its type's rule (a topic name with a wildcard,
    /// a packet id of 0) shows only as "Serde Deserialization Error": postcard drops the
    /// message of a custom serde error.
    #[error("corrupt {format}: {error}")]
    Corrupt {
        format: Format,
        error: postcard::Error,
    },
    #[error("corrupt {format}: {len} bytes left over after the data")]
    TrailingBytes { format: Format, len: usize },
    #[error("snapshot breaks an invariant: {what}")]
    InvariantBroken { what: String },
}

fn invariant(what: String) -> PersistError {
    PersistError::InvariantBroken { what }
}

/// Encodes a batch of commands as one log entry.
pub fn encode_commands(cmds: &[Command]) -> Vec<u8> {
    let out = vec![COMMANDS_VERSION];
    postcard::to_extend(cmds, out)
        .expect("postcard writes any command to a Vec: every sequence has a known length")
}

/// Decodes a log entry written by [`encode_commands`].
pub fn decode_commands(bytes: &[u8]) -> Result<Vec<Command>, PersistError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(PersistError::TruncatedHeader {
            format: Format::Commands,
            len: 0,
            header_len: 1,
        });
    };
    if !(COMMANDS_VERSION_OLDEST..=COMMANDS_VERSION).contains(&version) {
        return Err(PersistError::UnsupportedVersion {
            format: Format::Commands,
            found: u16::from(version),
            readable: Versions {
                oldest: u16::from(COMMANDS_VERSION_OLDEST),
                newest: u16::from(COMMANDS_VERSION),
            },
        });
    }
    decode_whole(Format::Commands, body)
}

/// Decodes a `T` that must take up all of `bytes`.
fn decode_whole<'a, T: Deserialize<'a>>(
    format: Format,
    bytes: &'a [u8],
) -> Result<T, PersistError> {
    let (value, rest) = postcard::take_from_bytes(bytes)
        .map_err(|error| PersistError::Corrupt { format, error })?;
    if !rest.is_empty() {
        return Err(PersistError::TrailingBytes {
            format,
            len: rest.len(),
        });
    }
    Ok(value)
}

/// The snapshot after its header. The records are `pub(super)` for the tests, which break
/// invariants in them on purpose.
#[derive(Serialize, Deserialize)]
pub(super) struct SnapshotBody<'a> {
    /// Every distinct queued or retained message (distinct `Arc`) once, in the order first
    /// referred to: sessions by client id, each queue by seq, then retained messages by topic.
    pub(super) messages: Vec<Cow<'a, Message>>,
    /// By client id, ascending.
    pub(super) sessions: Vec<SessionRecord<'a>>,
    /// Topic and index in `messages`, by topic ascending.
    pub(super) retained: Vec<(TopicName, u64)>,
    /// Round-robin position of each shared subscription, by key ascending. Kept because it
    /// decides which member gets the next message; the group membership is derived.
    pub(super) shared_cursors: Vec<(SharedKey, u64)>,
    /// The cluster's local sessions, by client id ascending, each with its subscriptions by
    /// filter ascending.
    pub(super) local_sessions: Vec<LocalRecord>,
    /// The last batch applied from each node, by node ascending.
    pub(super) batches: Vec<BatchId>,
}

/// A [`LocalSession`] as written.
#[derive(Serialize, Deserialize)]
pub(super) struct LocalRecord {
    pub(super) client_id: ClientId,
    pub(super) place: Place,
    pub(super) subscriptions: Vec<(TopicFilter, Subscription)>,
}

/// A [`SessionState`] with its queued messages as indexes into the message table.
#[derive(Serialize, Deserialize)]
pub(super) struct SessionRecord<'a> {
    pub(super) client_id: ClientId,
    pub(super) expiry_secs: u32,
    pub(super) connected: bool,
    pub(super) disconnected_at_ms: Option<u64>,
    /// By filter, ascending.
    pub(super) subscriptions: Vec<(TopicFilter, Subscription)>,
    /// By seq, ascending.
    pub(super) queue: Vec<QueuedRecord>,
    pub(super) next_seq: Seq,
    /// Ascending.
    pub(super) incoming_qos2: Vec<PacketId>,
    /// Held by value in the session, not shared, so written in place.
    pub(super) will: Option<Cow<'a, Will>>,
    pub(super) will_due_ms: Option<u64>,
    pub(super) place: Place,
}

/// A [`QueuedMessage`] with its message as an index into the message table.
#[derive(Serialize, Deserialize)]
pub(super) struct QueuedRecord {
    pub(super) seq: Seq,
    pub(super) message: u64,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) subscription_ids: Vec<NonZeroU32>,
    pub(super) shared: Option<SharedKey>,
    pub(super) pubrec_received: bool,
}

/// The message table being written: each distinct `Arc` once.
#[derive(Default)]
struct MessageTable<'a> {
    messages: Vec<Cow<'a, Message>>,
    /// The index in `messages` of each `Arc`, by the address it points to. Every `Arc` is
    /// borrowed from the state for as long as the table lives, so no address is reused.
    index_by_address: BTreeMap<*const Message, u64>,
}

impl<'a> MessageTable<'a> {
    fn index_of(&mut self, message: &'a Arc<Message>) -> u64 {
        let messages = &mut self.messages;
        *self
            .index_by_address
            .entry(Arc::as_ptr(message))
            .or_insert_with(|| {
                messages.push(Cow::Borrowed(&**message));
                // A usize always fits in a u64 on the platforms Rust supports.
                (messages.len() - 1) as u64
            })
    }
}

/// The message table being read: one `Arc` per entry, shared by all that refer to it.
struct RestoredMessages {
    messages: Vec<Arc<Message>>,
    referenced: Vec<bool>,
}

impl RestoredMessages {
    fn new(messages: Vec<Cow<'_, Message>>) -> RestoredMessages {
        let messages: Vec<Arc<Message>> = messages
            .into_iter()
            .map(|m| Arc::new(m.into_owned()))
            .collect();
        let referenced = vec![false; messages.len()];
        RestoredMessages {
            messages,
            referenced,
        }
    }

    fn get(&mut self, index: u64) -> Result<Arc<Message>, PersistError> {
        let found = usize::try_from(index)
            .ok()
            .and_then(|i| Some((i, self.messages.get(i)?)));
        let Some((i, message)) = found else {
            return Err(invariant(format!(
                "message {index} referred to, but the table holds {}",
                self.messages.len()
            )));
        };
        self.referenced[i] = true;
        Ok(message.clone())
    }

    /// Fails unless every message was referred to: `to_snapshot` writes no others.
    fn all_referenced(&self) -> Result<(), PersistError> {
        match self.referenced.iter().position(|r| !r) {
            Some(i) => Err(invariant(format!("message {i} referred to by nothing"))),
            None => Ok(()),
        }
    }
}

impl<'a> SessionRecord<'a> {
    fn new(session: &'a SessionState, table: &mut MessageTable<'a>) -> SessionRecord<'a> {
        // Destructured without `..`, so that a field added to the session cannot be missed.
        let SessionState {
            client_id,
            expiry_secs,
            connected,
            disconnected_at_ms,
            subscriptions,
            queue,
            // Derived from the queue: restoring counts it again.
            queue_bytes: _,
            next_seq,
            incoming_qos2,
            will,
            will_due_ms,
            place,
        } = session;
        SessionRecord {
            client_id: client_id.clone(),
            expiry_secs: *expiry_secs,
            connected: *connected,
            disconnected_at_ms: *disconnected_at_ms,
            subscriptions: subscriptions
                .iter()
                .map(|(filter, subscription)| (filter.clone(), *subscription))
                .collect(),
            queue: queue.iter().map(|q| QueuedRecord::new(q, table)).collect(),
            next_seq: *next_seq,
            incoming_qos2: incoming_qos2.iter().copied().collect(),
            will: will.as_deref().map(Cow::Borrowed),
            will_due_ms: *will_due_ms,
            place: *place,
        }
    }

    /// The session this record holds, checked against the invariants of a session.
    fn into_session(self, messages: &mut RestoredMessages) -> Result<SessionState, PersistError> {
        let SessionRecord {
            client_id,
            expiry_secs,
            connected,
            disconnected_at_ms,
            subscriptions,
            queue,
            next_seq,
            incoming_qos2,
            will,
            will_due_ms,
            place,
        } = self;
        let subscriptions =
            ascending_map(subscriptions, || format!("subscriptions of {client_id}"))?;
        let incoming_qos2: BTreeSet<PacketId> =
            ascending_map(incoming_qos2.into_iter().map(|id| (id, ())), || {
                format!("incoming QoS 2 packet ids of {client_id}")
            })?
            .into_keys()
            .collect();
        let queue: std::collections::VecDeque<QueuedMessage> = queue
            .into_iter()
            .map(|q| q.into_queued(messages))
            .collect::<Result<_, _>>()?;
        let queue_bytes = queue.iter().map(|q| q.message.size_bytes()).sum();
        let session = SessionState {
            client_id,
            expiry_secs,
            connected,
            disconnected_at_ms,
            subscriptions,
            queue,
            queue_bytes,
            next_seq,
            incoming_qos2,
            will: will.map(|w| Box::new(w.into_owned())),
            will_due_ms,
            place,
        };
        session.check().map_err(invariant)?;
        Ok(session)
    }
}

impl QueuedRecord {
    fn new<'a>(queued: &'a QueuedMessage, table: &mut MessageTable<'a>) -> QueuedRecord {
        let QueuedMessage {
            seq,
            message,
            qos,
            retain,
            subscription_ids,
            shared,
            pubrec_received,
        } = queued;
        QueuedRecord {
            seq: *seq,
            message: table.index_of(message),
            qos: *qos,
            retain: *retain,
            subscription_ids: subscription_ids.clone(),
            shared: shared.clone(),
            pubrec_received: *pubrec_received,
        }
    }

    fn into_queued(self, messages: &mut RestoredMessages) -> Result<QueuedMessage, PersistError> {
        let QueuedRecord {
            seq,
            message,
            qos,
            retain,
            subscription_ids,
            shared,
            pubrec_received,
        } = self;
        Ok(QueuedMessage {
            seq,
            message: messages.get(message)?,
            qos,
            retain,
            subscription_ids,
            shared,
            pubrec_received,
        })
    }
}

impl State {
    /// Encodes the whole state as a snapshot (see the module docs for the layout). The same
    /// state always gives the same bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut table = MessageTable::default();
        let sessions: Vec<SessionRecord> = self
            .sessions()
            .map(|session| SessionRecord::new(session, &mut table))
            .collect();
        let retained = self
            .retained_by_topic()
            .iter()
            .map(|(topic, message)| (topic.clone(), table.index_of(message)))
            .collect();
        let shared_cursors = self
            .shared_cursors()
            .iter()
            // A usize always fits in a u64 on the platforms Rust supports.
            .map(|(key, &cursor)| (key.clone(), cursor as u64))
            .collect();
        let placement = self.placement();
        let local_sessions = placement
            .local_sessions()
            .iter()
            .map(|(client_id, local)| LocalRecord {
                client_id: client_id.clone(),
                place: local.place,
                subscriptions: local
                    .subscriptions
                    .iter()
                    .map(|(filter, subscription)| (filter.clone(), *subscription))
                    .collect(),
            })
            .collect();
        let body = SnapshotBody {
            messages: table.messages,
            sessions,
            retained,
            shared_cursors,
            local_sessions,
            batches: placement.batches().values().copied().collect(),
        };
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN);
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        postcard::to_extend(&body, out)
            .expect("postcard writes any snapshot to a Vec: every sequence has a known length")
    }

    /// Restores a state from a snapshot written by [`State::to_snapshot`], under `config`.
    /// Fails on bytes that are not a snapshot of this format version, that do not decode, or
    /// that decode to a state breaking an invariant. A queue over `config.queue_max` or
    /// `config.queue_bytes_max` (lowered since the snapshot was taken) is kept, not refused:
    /// refusing would stop the node from starting, and trimming would lose acknowledged
    /// messages; the queue takes nothing new until it drains below them.
    pub fn from_snapshot(config: StateConfig, bytes: &[u8]) -> Result<State, PersistError> {
        let body = snapshot_body(bytes)?;
        let SnapshotBody {
            messages,
            sessions: session_records,
            retained,
            shared_cursors,
            local_sessions,
            batches,
        } = decode_whole(Format::Snapshot, body)?;
        let mut messages = RestoredMessages::new(messages);
        let mut sessions = Vec::with_capacity(session_records.len());
        for record in session_records {
            let session = record.into_session(&mut messages)?;
            if session.queue.len() > config.queue_max
                || session.queue_bytes() > config.queue_bytes_max
            {
                tracing::warn!(
                    client_id = session.client_id.as_str(),
                    messages = session.queue.len(),
                    bytes = session.queue_bytes(),
                    queue_max = config.queue_max,
                    queue_bytes_max = config.queue_bytes_max,
                    "a restored queue is over the configured bounds (lowered?): it keeps its \
                     messages and takes no new ones until it drains"
                );
            }
            sessions.push((session.client_id.clone(), session));
        }
        let sessions = ascending_map(sessions, || "sessions".to_string())?;
        let retained = retained
            .into_iter()
            .map(|(topic, index)| Ok((topic, messages.get(index)?)))
            .collect::<Result<Vec<_>, PersistError>>()?;
        let retained = ascending_map(retained, || "retained messages".to_string())?;
        messages.all_referenced()?;
        let shared_cursors = shared_cursors
            .into_iter()
            .map(|(key, cursor)| match usize::try_from(cursor) {
                Ok(cursor) => Ok((key, cursor)),
                Err(_) => Err(invariant(format!("shared cursor {cursor} out of range"))),
            })
            .collect::<Result<Vec<_>, PersistError>>()?;
        let shared_cursors = ascending_map(shared_cursors, || "shared cursors".to_string())?;
        let local = local_sessions
            .into_iter()
            .map(|record| {
                let subscriptions = ascending_map(record.subscriptions, || {
                    format!("local subscriptions of {}", record.client_id)
                })?;
                let session = LocalSession {
                    place: record.place,
                    subscriptions,
                };
                Ok((record.client_id, session))
            })
            .collect::<Result<Vec<_>, PersistError>>()?;
        let local = ascending_map(local, || "local sessions".to_string())?;
        let batches = ascending_map(batches.into_iter().map(|b| (b.place.node, b)), || {
            "batches".to_string()
        })?;
        Ok(State::from_parts(
            config,
            sessions,
            retained,
            shared_cursors,
            Placement::from_parts(local, batches),
        ))
    }
}

/// Checks the header of a snapshot; returns the body after it.
fn snapshot_body(bytes: &[u8]) -> Result<&[u8], PersistError> {
    let Some((header, body)) = bytes.split_at_checked(SNAPSHOT_HEADER_LEN) else {
        return Err(PersistError::TruncatedHeader {
            format: Format::Snapshot,
            len: bytes.len(),
            header_len: SNAPSHOT_HEADER_LEN,
        });
    };
    let (magic, version) = header.split_at(SNAPSHOT_MAGIC.len());
    if magic != SNAPSHOT_MAGIC {
        return Err(PersistError::BadMagic);
    }
    let version = u16::from_le_bytes([version[0], version[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(PersistError::UnsupportedVersion {
            format: Format::Snapshot,
            found: version,
            readable: Versions {
                oldest: SNAPSHOT_VERSION,
                newest: SNAPSHOT_VERSION,
            },
        });
    }
    Ok(body)
}

/// Collects pairs that must come in strictly ascending key order, as they are written from a
/// `BTreeMap`. Anything else is corrupt, and would not write back to the same bytes.
fn ascending_map<K: Ord + fmt::Debug, V>(
    pairs: impl IntoIterator<Item = (K, V)>,
    what: impl Fn() -> String,
) -> Result<BTreeMap<K, V>, PersistError> {
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        if map.last_key_value().is_some_and(|(last, _)| *last >= key) {
            return Err(invariant(format!(
                "{} out of order or repeated at {key:?}",
                what()
            )));
        }
        map.insert(key, value);
    }
    Ok(map)
}
