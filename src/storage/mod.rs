//! Durable key-value storage under the Raft log and the snapshot store: the [`KvStore`]
//! contract and its two implementations.
//!
//! [`RocksStore`] (feature `rocksdb`, on by default) is the real one: one RocksDB database in
//! the node's data directory. [`MemStore`] keeps everything in memory and models a disk that
//! loses unsynced writes when the machine crashes; the simulator uses it, owned outside the
//! simulated host so that it outlives a crash (the node's disk survives its process). Both run
//! the same conformance suite (`tests.rs`).
//!
//! Keys and values are opaque bytes, ordered byte-wise (as unsigned bytes, shorter first on a
//! common prefix: the order of `[u8]`). What they mean belongs to the callers.

mod batch;
mod error;
mod mem;
#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(test)]
mod tests;

pub use batch::{BatchOp, WriteBatch};
pub use error::StorageError;
pub use mem::MemStore;
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksStore, FORMAT_NUMBER, FORMAT_VERSION};

/// One entry as [`KvStore::scan`] returns it: `(key, value)`.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An ordered key-value store with atomic batches and an explicit durability point.
///
/// The contract every implementation keeps (the conformance suite in `tests.rs` checks what a
/// test can observe; machine crashes only on [`MemStore`], which models them):
///
/// - **Reads see every write that returned `Ok`**, synced or not, from any handle to the
///   store. A read sees the state between two whole batches, never part of one.
/// - **A batch is atomic**: after a crash it is there wholly or not at all.
/// - **Durability is explicit.** A write is durable (it survives a machine crash) once it was
///   made with `sync = true` or a later [`sync`](KvStore::sync) returned `Ok`. Before that a
///   crash may lose it.
/// - **Durability is in order**: if a crash keeps a batch, it keeps every batch written before
///   it. A synced write therefore also makes every earlier write durable, as a WAL does.
/// - **An error is fatal to the caller's view of the store**: after a failed `write` or `sync`
///   the caller cannot know what a restart will find, so the node must stop (and recover from
///   what is durable) rather than carry on.
///
/// Calls may come from several threads at once; each takes `&self`.
pub trait KvStore: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Entries with start <= key < end in key order, at most `limit` of them.
    ///
    /// Empty when `start >= end` or `limit == 0`. To page through a range, scan again from
    /// the last key returned with a `0x00` byte appended.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError>;

    /// Applies the batch atomically; visible to reads at once; durable only once synced
    /// (`sync = true` here, or a later `sync()`).
    ///
    /// An empty batch changes nothing; with `sync = true` it still makes earlier writes
    /// durable, like [`sync`](KvStore::sync).
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError>;

    /// Makes every earlier write durable (fsync of the WAL).
    fn sync(&self) -> Result<(), StorageError>;

    /// Whether calls block on disk I/O (async callers then use spawn_blocking; the in-memory
    /// store returns false, which keeps the simulator single-threaded and deterministic).
    fn blocks(&self) -> bool;

    /// How long a sync should be taken to last, for a store that models a disk rather than
    /// using one: callers that make a write durable wait this long (on their runtime's clock)
    /// between the write and the sync. Zero (the default) for real stores, whose syncs take
    /// the time they take.
    fn sync_latency(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

// `KvStore` must stay usable as `dyn KvStore` (the node picks the store at start-up).
const _: Option<&dyn KvStore> = None;
