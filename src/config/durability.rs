//! `[durability]`: how the durable state is stored and when it reaches the disk.

use serde::{Deserialize, Serialize};

use super::{ensure, Config, InvalidConfig};

/// `[durability]`: where the Raft log and snapshots live and when writes reach the disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurabilityConfig {
    /// When log writes are synced (fsync) before messages are acknowledged. Default `batch`.
    pub sync: SyncMode,
    /// Under `sync = "batch"`: how long the flusher waits after the first unsynced write to
    /// gather more into one fsync (0: sync at once; writes arriving during a sync share the
    /// next one anyway). Default 0, at most 100.
    pub batch_window_ms: u64,
    /// `rocksdb` (in `data_dir`) or `memory` (nothing survives a restart: for tests and
    /// benchmarks of the protocol alone). Default `rocksdb`.
    pub store: StoreKind,
    /// Log entries between snapshots; the log before a snapshot is deleted. Default 10000.
    pub snapshot_every: u64,
}

impl Default for DurabilityConfig {
    fn default() -> DurabilityConfig {
        DurabilityConfig {
            sync: SyncMode::Batch,
            batch_window_ms: 0,
            store: StoreKind::Rocksdb,
            snapshot_every: 10_000,
        }
    }
}

/// `durability.sync`: what a crash or power loss may cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// fsync before every acknowledgement: nothing acknowledged is lost even on power loss;
    /// the slowest.
    Always,
    /// fsync in groups shared by concurrent writes, still before any acknowledgement:
    /// nothing acknowledged is lost even on power loss; near `none` under load.
    #[default]
    Batch,
    /// Never fsync: a process crash loses nothing (the OS has the writes), a power loss or
    /// kernel crash can lose acknowledged messages.
    None,
}

/// `durability.store`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    #[default]
    Rocksdb,
    Memory,
}

impl Config {
    /// `[durability]`: the batch window and the snapshot interval in range.
    pub(super) fn validate_durability(&self) -> Result<(), InvalidConfig> {
        ensure(
            self.durability.batch_window_ms <= 100,
            "durability.batch_window_ms",
            || "must be at most 100 (milliseconds added to every acknowledgement)".to_owned(),
        )?;
        ensure(
            self.durability.snapshot_every > 0,
            "durability.snapshot_every",
            || "must be at least 1".to_owned(),
        )?;
        Ok(())
    }
}
