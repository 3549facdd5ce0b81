//! [`WriteBatch`]: the changes one [`KvStore::write`](super::KvStore::write) applies at once.

/// One change in a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Sets `key` to `value`, replacing any earlier value.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// Removes `key` if it is present.
    Delete { key: Vec<u8> },
    /// Removes every key with `start <= key < end`; nothing when `start >= end`.
    DeleteRange { start: Vec<u8>, end: Vec<u8> },
}

/// Changes that a store applies atomically and in the order they were added: a put after a
/// delete of the same key leaves the key set, a delete range after a put removes it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    /// The changes, oldest first. Order matters when two of them touch the same key.
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds "set `key` to `value`".
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put {
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds "remove `key`".
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete { key: key.into() });
    }

    /// Adds "remove every key in `[start, end)`". An empty or inverted range (`start >= end`)
    /// removes nothing, as in [`KvStore::scan`](super::KvStore::scan).
    pub fn delete_range(&mut self, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::DeleteRange {
            start: start.into(),
            end: end.into(),
        });
    }

    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many changes the batch holds (puts, deletes and range deletes alike).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The changes, in the order they are applied.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}
