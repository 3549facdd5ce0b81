//! The Raft state machine: committed entries go to the broker (through [`Applier`]);
//! snapshots are the encoded replicated state, kept in the [`KvStore`].

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::broker::Proposal;
use crate::state::PersistError;
use crate::storage::{KvStore, WriteBatch};

use super::log_store::{blocking, storage_error};
use super::types::{Batch, TypeConfig};

const SNAPSHOT_KEY: &[u8] = b"sm/snapshot";

/// How far the state has applied the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPosition {
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
}

/// Why an encoded replicated state could not be installed ([`Applier::install`]): it is not
/// a state this build reads (another format version, corrupt, or breaking an invariant).
/// The node must not go on with the state it had, nor with an empty one.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InstallError(#[from] pub PersistError);

/// Why the stored snapshot could not be restored at start-up ([`StateMachine::restore`]).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The store could not be read, or what it holds is not a stored snapshot. Boxed:
    /// openraft's error is large, and this one travels up through every start-up error.
    #[error(transparent)]
    Read(Box<StorageError<u64>>),
    /// The snapshot was read, but its state could not be installed.
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// Where committed proposals go: the node's broker, which owns the replicated state.
pub trait Applier: Send + Sync + 'static {
    /// Applies committed batches in log order; `position` is where the log stands after
    /// them.
    fn apply(&self, batches: Vec<Batch>, position: AppliedPosition);
    /// The encoded replicated state and the position it reflects, read together.
    fn snapshot(&self) -> (Vec<u8>, AppliedPosition);
    /// Replaces the replicated state with an encoded one.
    fn install(&self, state: &[u8], position: AppliedPosition) -> Result<(), InstallError>;
    fn position(&self) -> AppliedPosition;
    /// Called once the log is replayed after a start: proposals that repair what a crash
    /// left behind, committed before the node serves anyone.
    fn recover(&self) -> Vec<Proposal>;
}

/// A snapshot as stored: its metadata and the encoded state.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// The state machine handed to openraft.
#[derive(Clone)]
pub struct StateMachine {
    kv: Arc<dyn KvStore>,
    applier: Arc<dyn Applier>,
}

impl StateMachine {
    pub fn new(kv: Arc<dyn KvStore>, applier: Arc<dyn Applier>) -> StateMachine {
        StateMachine { kv, applier }
    }

    /// Restores the last stored snapshot into the applier, if there is one; returns its
    /// position. A snapshot that does not decode is an error, never an empty start.
    pub async fn restore(&self) -> Result<Option<AppliedPosition>, RestoreError> {
        let Some(stored) = self
            .stored()
            .await
            .map_err(|e| RestoreError::Read(Box::new(e)))?
        else {
            return Ok(None);
        };
        let position = AppliedPosition {
            last_applied: stored.meta.last_log_id,
            membership: stored.meta.last_membership.clone(),
        };
        self.applier.install(&stored.data, position.clone())?;
        Ok(Some(position))
    }

    async fn stored(&self) -> Result<Option<StoredSnapshot>, StorageError<u64>> {
        let bytes = blocking(&self.kv, |kv| kv.get(SNAPSHOT_KEY))
            .await
            .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        bytes
            .map(|b| postcard::from_bytes::<StoredSnapshot>(&b))
            .transpose()
            .map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))
    }

    async fn store(&self, stored: &StoredSnapshot) -> Result<(), StorageError<u64>> {
        let subject = ErrorSubject::Snapshot(Some(stored.meta.signature()));
        let bytes = postcard::to_allocvec(stored)
            .map_err(|e| storage_error(subject.clone(), ErrorVerb::Write, e))?;
        let mut batch = WriteBatch::default();
        batch.put(SNAPSHOT_KEY, bytes);
        blocking(&self.kv, move |kv| kv.write(batch, true))
            .await
            .map_err(|e| storage_error(subject, ErrorVerb::Write, e))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (data, position) = self.applier.snapshot();
        let snapshot_id = match &position.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id: position.last_applied,
            last_membership: position.membership,
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, data };
        self.store(&stored).await?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let position = self.applier.position();
        Ok((position.last_applied, position.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut position = self.applier.position();
        let mut batches = Vec::new();
        let mut count = 0;
        for entry in entries {
            count += 1;
            position.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => batches.push(batch),
                EntryPayload::Membership(membership) => {
                    position.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
        }
        self.applier.apply(batches, position);
        Ok(vec![(); count])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let position = AppliedPosition {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.applier.install(&stored.data, position).map_err(|e| {
            storage_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        })?;
        self.store(&stored).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.stored().await?.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::state::{State, StateConfig, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
    use crate::storage::MemStore;

    /// An applier that only holds a state: what restoring needs of the broker.
    #[derive(Default)]
    struct Holder(Mutex<Option<State>>);

    impl Applier for Holder {
        fn apply(&self, _batches: Vec<Batch>, _position: AppliedPosition) {
            unreachable!("restoring applies no entries")
        }

        fn snapshot(&self) -> (Vec<u8>, AppliedPosition) {
            unreachable!("restoring takes no snapshot")
        }

        fn install(&self, state: &[u8], _position: AppliedPosition) -> Result<(), InstallError> {
            let state = State::from_snapshot(StateConfig::default(), state)?;
            *self.0.lock().unwrap() = Some(state);
            Ok(())
        }

        fn position(&self) -> AppliedPosition {
            AppliedPosition::default()
        }

        fn recover(&self) -> Vec<Proposal> {
            Vec::new()
        }
    }

    fn stored(data: Vec<u8>) -> StoredSnapshot {
        StoredSnapshot {
            meta: SnapshotMeta::default(),
            data,
        }
    }

    /// What restoring found wrong is told apart by type: a state of another format (named
    /// with its version), or a stored record that does not decode at all.
    #[tokio::test]
    async fn restoring_names_why_a_stored_snapshot_cannot_be_read() {
        let kv: Arc<dyn KvStore> = Arc::new(MemStore::new());
        let holder = Arc::new(Holder::default());
        let machine = StateMachine::new(kv.clone(), holder.clone());
        assert!(machine.restore().await.unwrap().is_none(), "nothing stored");

        let state = State::new(StateConfig::default()).to_snapshot();
        machine.store(&stored(state.clone())).await.unwrap();
        assert!(machine.restore().await.unwrap().is_some());
        assert!(holder.0.lock().unwrap().is_some());

        let mut newer = state;
        let version = SNAPSHOT_MAGIC.len();
        newer[version..version + 2].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
        machine.store(&stored(newer)).await.unwrap();
        let error = machine.restore().await.unwrap_err();
        assert!(
            matches!(
                &error,
                RestoreError::Install(InstallError(PersistError::UnsupportedVersion {
                    found,
                    ..
                })) if *found == SNAPSHOT_VERSION + 1
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "unsupported snapshot format version {}: this build reads version {}",
                SNAPSHOT_VERSION + 1,
                SNAPSHOT_VERSION
            )
        );

        let mut batch = WriteBatch::default();
        batch.put(SNAPSHOT_KEY, vec![0xff]);
        kv.write(batch, true).unwrap();
        let error = machine.restore().await.unwrap_err();
        assert!(matches!(error, RestoreError::Read(_)), "{error:?}");
    }
}
