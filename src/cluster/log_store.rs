//! The Raft log on a [`KvStore`], with group commit.
//!
//! Entries are written as they come (visible at once, not yet durable); when they become
//! durable depends on the [`SyncPolicy`]. Under `Batch`, one flusher task syncs the store for
//! every append that arrived since its last sync, so concurrent proposals share one fsync,
//! and only then tells openraft the entries are durable, which is what lets them commit.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use tokio::sync::Notify;

use crate::storage::{KvStore, WriteBatch};

use super::types::TypeConfig;

/// When log writes become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every append is synced before openraft hears it is done. Safest, slowest: one fsync
    /// per append call (openraft still passes several entries per call under load).
    Always,
    /// Appends are synced in groups by one flusher, which waits up to `window` after the
    /// first unsynced append to gather more. Nothing is acknowledged before its sync, so
    /// this loses nothing acknowledged; it trades up to `window` of latency for fewer fsyncs.
    Batch { window: Duration },
    /// Never synced: entries are acknowledged once written to the operating system. A
    /// power loss (not a process crash) can lose acknowledged messages.
    None,
}

const LOG_PREFIX: &[u8] = b"log/";
const VOTE_KEY: &[u8] = b"raft/vote";
const COMMITTED_KEY: &[u8] = b"raft/committed";
const PURGED_KEY: &[u8] = b"raft/purged";

fn log_key(index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(LOG_PREFIX.len() + 8);
    key.extend_from_slice(LOG_PREFIX);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn log_index(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.strip_prefix(LOG_PREFIX)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

pub(crate) fn storage_error(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    error: impl std::fmt::Display,
) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, AnyError::error(error.to_string())),
    }
}

/// Runs a store call, off the async runtime when the store blocks on disk.
pub(crate) async fn blocking<T: Send + 'static>(
    kv: &Arc<dyn KvStore>,
    f: impl FnOnce(&dyn KvStore) -> T + Send + 'static,
) -> T {
    if !kv.blocks() {
        return f(&**kv);
    }
    let kv = kv.clone();
    match tokio::task::spawn_blocking(move || f(&*kv)).await {
        Ok(value) => value,
        // A blocking task is cancelled only when the runtime shuts down before it ran; the
        // runtime drops this future too, so it only needs to not return (nor panic).
        Err(error) if error.is_cancelled() => std::future::pending().await,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Appends waiting for the flusher's next sync.
#[derive(Default)]
struct Flusher {
    waiting: Mutex<Vec<LogFlushed<TypeConfig>>>,
    wake: Notify,
}

/// Entries appended recently, kept decoded: openraft reads every entry back to apply it
/// right after appending it, and decoding it again from the store would cost more than
/// the write. The read that applies them takes them out (see `LogStore::takes_cached`), so
/// what stays is what is not applied yet: one run of indexes. Bounded; older entries are
/// read from the store.
#[derive(Default)]
struct RecentEntries {
    entries: BTreeMap<u64, openraft::Entry<TypeConfig>>,
}

/// Most entries kept in [`RecentEntries`].
const RECENT_MAX: usize = 1024;

/// The log storage handed to openraft (and its readers: the same store).
#[derive(Clone)]
pub struct LogStore {
    kv: Arc<dyn KvStore>,
    policy: SyncPolicy,
    flusher: Arc<Flusher>,
    recent: Arc<Mutex<RecentEntries>>,
    /// The commit point openraft reported last, not yet written: it goes into the next
    /// append's write rather than a write of its own (see `save_committed`).
    committed: Arc<Mutex<Option<Vec<u8>>>>,
    /// Size of the last entry encoded, to size the next one's buffer.
    encoded_hint: Arc<AtomicUsize>,
    /// True for the storage itself, false for the readers it hands out. openraft reads
    /// through the storage to apply committed entries (and at start-up, when nothing is
    /// cached); its other readers (replication) may read the same entries again. An entry
    /// read to be applied is not read again, so the storage moves it out of the cache
    /// instead of copying it; readers copy. Either way only where an entry comes from
    /// changes: a second read of a taken entry decodes it from the store.
    takes_cached: bool,
}

impl LogStore {
    /// A log on `kv`. Under [`SyncPolicy::Batch`] this spawns the flusher task, which must
    /// run on the same runtime as the node.
    pub fn new(kv: Arc<dyn KvStore>, policy: SyncPolicy) -> LogStore {
        let flusher = Arc::new(Flusher::default());
        if let SyncPolicy::Batch { window } = policy {
            tokio::spawn(flush_loop(kv.clone(), flusher.clone(), window));
        }
        LogStore {
            kv,
            policy,
            flusher,
            recent: Arc::default(),
            committed: Arc::default(),
            encoded_hint: Arc::default(),
            takes_cached: true,
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentEntries> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries `start..end` if all of them are in the recent cache: moved out of it
    /// when `takes_cached`, else copied.
    fn cached(&self, start: u64, end: u64) -> Option<Vec<openraft::Entry<TypeConfig>>> {
        let mut recent = self.recent();
        let first = *recent.entries.keys().next()?;
        let last = *recent.entries.keys().next_back()?;
        if start < first || end > last.saturating_add(1) || start >= end {
            return None;
        }
        if !self.takes_cached {
            return Some(
                recent
                    .entries
                    .range(start..end)
                    .map(|(_, e)| e.clone())
                    .collect(),
            );
        }
        // Entries are applied in order, so everything before `end` is applied once these
        // are: the cache keeps what comes after (still one run of indexes).
        let after = recent.entries.split_off(&end);
        let mut applied = std::mem::replace(&mut recent.entries, after);
        let taken = applied.split_off(&start);
        debug_assert_eq!(taken.len() as u64, end - start, "the cache has a gap");
        Some(taken.into_values().collect())
    }

    async fn read<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: &'static [u8],
        subject: ErrorSubject<u64>,
    ) -> Result<Option<T>, StorageError<u64>> {
        let bytes = blocking(&self.kv, move |kv| kv.get(key))
            .await
            .map_err(|e| storage_error(subject.clone(), ErrorVerb::Read, e))?;
        bytes
            .map(|b| postcard::from_bytes(&b))
            .transpose()
            .map_err(|e| storage_error(subject, ErrorVerb::Read, e))
    }

    async fn write(
        &self,
        batch: WriteBatch,
        sync: bool,
        subject: ErrorSubject<u64>,
    ) -> Result<(), StorageError<u64>> {
        let latency = self.kv.sync_latency();
        let written = if sync && !latency.is_zero() {
            // A modelled disk: the write is there at once, durable only after the fsync.
            match self.kv.write(batch, false) {
                Ok(()) => {
                    tokio::time::sleep(latency).await;
                    self.kv.sync()
                }
                Err(error) => Err(error),
            }
        } else if sync {
            blocking(&self.kv, move |kv| kv.write(batch, true)).await
        } else {
            // Without a sync a write is a memtable insert and a buffered append to the
            // write-ahead log: cheaper than handing it to another thread.
            self.kv.write(batch, false)
        };
        written.map_err(|e| storage_error(subject, ErrorVerb::Write, e))
    }
}

async fn flush_loop(kv: Arc<dyn KvStore>, flusher: Arc<Flusher>, window: Duration) {
    loop {
        flusher.wake.notified().await;
        if !window.is_zero() {
            tokio::time::sleep(window).await;
        }
        let waiting =
            std::mem::take(&mut *flusher.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        if waiting.is_empty() {
            continue;
        }
        let latency = kv.sync_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let result = blocking(&kv, |kv| kv.sync()).await;
        if let Err(error) = &result {
            tracing::error!(%error, "syncing the Raft log failed; this node stops acknowledging");
        }
        for callback in waiting {
            callback.log_io_completed(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<openraft::Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end_index = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(entries) = self.cached(start, end_index) {
            return Ok(entries);
        }
        let end = log_key(end_index);
        let from = log_key(start);
        let rows = blocking(&self.kv, move |kv| kv.scan(&from, &end, usize::MAX))
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        rows.into_iter()
            .map(|(_, value)| {
                postcard::from_bytes(&value)
                    .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let purged: Option<LogId<u64>> = self.read(PURGED_KEY, ErrorSubject::Logs).await?;
        let (from, to) = (log_key(0), log_key(u64::MAX));
        // The last entry: the store scans forward only, so walk the log (compaction keeps it
        // short; this runs once, at start-up).
        let rows = blocking(&self.kv, move |kv| kv.scan(&from, &to, usize::MAX))
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let last = match rows.last() {
            Some((key, value)) => {
                debug_assert!(log_index(key).is_some());
                let entry: openraft::Entry<TypeConfig> = postcard::from_bytes(value)
                    .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                Some(entry.log_id)
            }
            None => purged,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogStore {
            takes_cached: false,
            ..self.clone()
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let mut batch = WriteBatch::default();
        let bytes = postcard::to_allocvec(vote)
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        batch.put(VOTE_KEY, bytes);
        // A vote must be durable before it is sent (Raft's election safety).
        self.write(batch, true, ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.read(VOTE_KEY, ErrorSubject::Vote).await
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = postcard::to_allocvec(&committed)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        // Written with the next append rather than on its own: under load the commit point
        // moves with nearly every append, and each store write has a fixed cost. A stored
        // commit point is only a hint: an older one than the real one, or none, means
        // re-learning it after a restart; and it never gets ahead of the entries written
        // before it, since it only names entries that earlier appends wrote.
        *self.committed.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self
            .read::<Option<LogId<u64>>>(COMMITTED_KEY, ErrorSubject::Store)
            .await?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut appended = Vec::new();
        if let Some(committed) = self
            .committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            batch.put(COMMITTED_KEY, committed);
        }
        for entry in entries {
            // Sized from the last entry: growing the buffer copies it several times.
            let hint = self.encoded_hint.load(Ordering::Relaxed);
            let bytes = postcard::to_extend(&entry, Vec::with_capacity(hint + hint / 4))
                .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            self.encoded_hint.store(bytes.len(), Ordering::Relaxed);
            batch.put(log_key(entry.log_id.index), bytes);
            appended.push(entry);
        }
        {
            let mut recent = self.recent();
            for entry in appended {
                recent.entries.insert(entry.log_id.index, entry);
            }
            while recent.entries.len() > RECENT_MAX {
                recent.entries.pop_first();
            }
        }
        match self.policy {
            SyncPolicy::Always => {
                self.write(batch, true, ErrorSubject::Logs).await?;
                callback.log_io_completed(Ok(()));
            }
            SyncPolicy::None => {
                self.write(batch, false, ErrorSubject::Logs).await?;
                callback.log_io_completed(Ok(()));
            }
            SyncPolicy::Batch { .. } => {
                self.write(batch, false, ErrorSubject::Logs).await?;
                self.flusher
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(callback);
                self.flusher.wake.notify_one();
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        drop(self.recent().entries.split_off(&log_id.index));
        let mut batch = WriteBatch::default();
        batch.delete_range(log_key(log_id.index), log_key(u64::MAX));
        self.write(batch, true, ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        {
            let mut recent = self.recent();
            let kept = recent.entries.split_off(&log_id.index.saturating_add(1));
            recent.entries = kept;
        }
        let mut batch = WriteBatch::default();
        let bytes = postcard::to_allocvec(&log_id)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        // The purge point first in the batch's effect: both land together.
        batch.put(PURGED_KEY, bytes);
        batch.delete_range(log_key(0), log_key(log_id.index.saturating_add(1)));
        self.write(batch, false, ErrorSubject::Logs).await
    }
}
