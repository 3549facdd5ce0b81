//! [`StorageError`]: what can go wrong opening, reading or writing a store.

use std::path::PathBuf;

/// A storage failure. None of them is for the caller to work around: a node that cannot read
/// or write its store must stop, and one whose data directory is wrong must not start.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store could not be opened: the directory cannot be read or created, the database
    /// is corrupt, or another process (or another handle in this one) holds its lock.
    /// `reason` is the underlying message (RocksDB's, or the OS's).
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// The path holds something other than a Keel store (files that are not a RocksDB
    /// database, or a RocksDB database that Keel did not create). Keel refuses to start on it
    /// rather than start empty beside, or on top of, someone else's data.
    #[error("{path} does not hold Keel data: {reason}")]
    NotKeelData { path: PathBuf, reason: String },
    /// The store was written by a newer Keel, in a format this build does not know: it refuses
    /// to start rather than misread it. `written_by` is the version that last opened it.
    #[error(
        "the data directory {path} was written by a newer Keel ({written_by}) in store format \
         {found}; this keel ({}) reads store format {expected} and will not guess at a newer \
         one: run a keel that knows format {found}",
        crate::VERSION
    )]
    Newer {
        path: PathBuf,
        found: u32,
        expected: u32,
        written_by: String,
    },
    /// The store's format marker is one no Keel wrote that this build knows of (an older
    /// format, or a damaged marker).
    #[error("the store at {path} has format {found:?}, this keel reads {expected:?}")]
    Incompatible {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// A read failed (an I/O error or corruption found while reading).
    #[error("storage read failed: {0}")]
    ReadFailed(String),
    /// A write or sync failed (a full or failing disk, or an injected failure). Whether the
    /// batch survives a restart is unknown: it may, wholly, or not at all, never in part.
    #[error("storage write failed: {0}")]
    WriteFailed(String),
}
