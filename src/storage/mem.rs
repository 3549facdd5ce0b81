//! [`MemStore`]: the in-memory [`KvStore`], with a disk's crash semantics for the simulator.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{BatchOp, KeyValue, KvStore, StorageError, WriteBatch};

/// An in-memory store that keeps what is durable apart from what is only written, so that a
/// simulated machine crash loses exactly the unsynced writes.
///
/// Clones share one store: the simulator keeps a clone outside the simulated host, hands
/// another to the node, and after crashing the host calls [`crash`](MemStore::crash) and
/// gives the restarted node a clone again. A crash does not clear
/// [`set_fail_writes`](MemStore::set_fail_writes): a full disk stays full across a restart.
///
/// It uses no threads, clocks or randomness, and never blocks on I/O, so a run stays
/// deterministic.
#[derive(Clone, Default)]
pub struct MemStore {
    /// Shared by every clone. A std mutex: it is never held across an `.await` nor while
    /// calling out of this file.
    inner: Arc<Mutex<MemState>>,
}

#[derive(Default)]
struct MemState {
    /// What survives a crash: every batch written with `sync`, or followed by a `sync()`.
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// What reads see: `durable` with `unsynced` applied in order. Kept whole rather than
    /// rebuilt on each read so that reads cost what reads of a map cost.
    visible: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Batches written since the last sync, oldest first: the WAL tail a crash may lose.
    unsynced: Vec<WriteBatch>,
    /// When set, `write` and `sync` fail and change nothing (a full or failing disk).
    fail_writes: bool,
    /// How long a sync takes, as [`KvStore::sync_latency`] reports it.
    sync_latency: std::time::Duration,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes syncs take `latency` (see [`KvStore::sync_latency`]): the simulator's disks are
    /// not instant, so a crash can land between a write and its fsync, as on a real machine.
    pub fn set_sync_latency(&self, latency: std::time::Duration) {
        self.lock().sync_latency = latency;
    }

    /// Simulates a machine crash: every write not yet synced is lost, and reads show only the
    /// durable state.
    pub fn crash(&self) {
        self.crash_keeping(0);
    }

    /// Simulates a machine crash after the disk got the first `n` unsynced batches (a partial
    /// flush): those become durable, the rest are lost. `n` past the number of unsynced
    /// batches keeps them all.
    pub fn crash_keeping(&self, n: usize) {
        let mut state = self.lock();
        let state = &mut *state;
        let keep = n.min(state.unsynced.len());
        for batch in state.unsynced.drain(..keep) {
            apply(&mut state.durable, &batch);
        }
        state.unsynced.clear();
        state.visible = state.durable.clone();
    }

    /// Makes every later `write` and `sync` fail with [`StorageError::WriteFailed`], changing
    /// nothing, until called with `false` (a full or failing disk).
    pub fn set_fail_writes(&self, fail: bool) {
        self.lock().fail_writes = fail;
    }

    /// How many batches were written since the last sync (what a crash now would lose).
    pub fn unsynced_batches(&self) -> usize {
        self.lock().unsynced.len()
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // Poisoned only if a panic hit while the lock was held, mid-change: the state may be
        // torn, so the panic must spread rather than let anyone read it.
        self.inner
            .lock()
            .expect("MemStore lock poisoned by a panic during a change")
    }
}

impl MemState {
    fn check_writable(&self) -> Result<(), StorageError> {
        if self.fail_writes {
            return Err(StorageError::WriteFailed(
                "injected failure (MemStore::set_fail_writes)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Moves every unsynced batch into the durable state, as an fsync of the WAL does.
    fn sync_all(&mut self) {
        for batch in self.unsynced.drain(..) {
            apply(&mut self.durable, &batch);
        }
        // With nothing unsynced, the durable state is what reads see. Comparing whole maps
        // would make each sync cost the size of the store, so only the lengths are checked.
        debug_assert_eq!(self.durable.len(), self.visible.len());
    }
}

/// Applies `batch` to `map`, in order.
fn apply(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, batch: &WriteBatch) {
    for op in batch.ops() {
        match op {
            BatchOp::Put { key, value } => {
                map.insert(key.clone(), value.clone());
            }
            BatchOp::Delete { key } => {
                map.remove(key);
            }
            BatchOp::DeleteRange { start, end } => {
                let doomed: Vec<Vec<u8>> =
                    range(map, start, end).map(|(key, _)| key.clone()).collect();
                for key in doomed {
                    map.remove(&key);
                }
            }
        }
    }
}

/// The entries of `map` in `[start, end)`; none when `start >= end` (where
/// `BTreeMap::range` would panic).
fn range<'a>(
    map: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: &[u8],
) -> impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)> {
    let bounds = (Bound::Included(start), Bound::Excluded(end));
    (start < end)
        .then(|| map.range::<[u8], _>(bounds))
        .into_iter()
        .flatten()
}

impl KvStore for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().visible.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        let state = self.lock();
        Ok(range(&state.visible, start, end)
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let mut state = self.lock();
        state.check_writable()?;
        if !batch.is_empty() {
            apply(&mut state.visible, &batch);
            state.unsynced.push(batch);
        }
        if sync {
            state.sync_all();
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        let mut state = self.lock();
        state.check_writable()?;
        state.sync_all();
        Ok(())
    }

    fn blocks(&self) -> bool {
        false
    }

    fn sync_latency(&self) -> std::time::Duration {
        self.lock().sync_latency
    }
}

impl fmt::Debug for MemStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `try_lock`: formatting must neither deadlock (a caller holding the lock while it
        // logs) nor panic on a poisoned lock.
        let Ok(state) = self.inner.try_lock() else {
            return f.write_str("MemStore { <busy> }");
        };
        f.debug_struct("MemStore")
            .field("keys", &state.visible.len())
            .field("durable_keys", &state.durable.len())
            .field("unsynced_batches", &state.unsynced.len())
            .field("fail_writes", &state.fail_writes)
            .finish()
    }
}
