//! The conformance suite every [`KvStore`] runs, then each store's own tests: crash semantics
//! and injected failures for [`MemStore`], reopening and start-up checks for `RocksStore`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{BatchOp, KvStore, MemStore, StorageError, WriteBatch};

mod mem_store;
mod model;
use model::{check_against_model, step, ModelCases};
#[cfg(feature = "rocksdb")]
mod rocks_store;

/// A store under test, with whatever must live as long as it (a temporary directory).
trait Fixture: Sized {
    type Store: KvStore + Clone;

    /// A new, empty store.
    fn open() -> Self;

    fn store(&self) -> &Self::Store;

    /// Closes and reopens the store, as a clean restart of the node does (no machine crash,
    /// so every write survives).
    fn restart(&mut self);
}

struct MemFixture(MemStore);

impl Fixture for MemFixture {
    type Store = MemStore;

    fn open() -> Self {
        MemFixture(MemStore::new())
    }

    fn store(&self) -> &MemStore {
        &self.0
    }

    fn restart(&mut self) {
        // The simulator keeps the store across a restart; only a crash loses anything.
        self.0 = self.0.clone();
    }
}

#[cfg(feature = "rocksdb")]
struct RocksFixture {
    /// `None` only inside `restart`, between closing and reopening.
    store: Option<super::RocksStore>,
    dir: tempfile::TempDir,
}

#[cfg(feature = "rocksdb")]
impl RocksFixture {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("store")
    }
}

#[cfg(feature = "rocksdb")]
impl Fixture for RocksFixture {
    type Store = super::RocksStore;

    fn open() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = super::RocksStore::open(&dir.path().join("store")).expect("open a new store");
        RocksFixture {
            store: Some(store),
            dir,
        }
    }

    fn store(&self) -> &super::RocksStore {
        self.store.as_ref().expect("open outside restart")
    }

    fn restart(&mut self) {
        // Close first: RocksDB's lock would refuse a second open of the same directory.
        drop(self.store.take());
        let store = super::RocksStore::open(&self.path()).expect("reopen the store");
        self.store = Some(store);
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn batch_of(ops: &[BatchOp]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for op in ops {
        match op.clone() {
            BatchOp::Put { key, value } => batch.put(key, value),
            BatchOp::Delete { key } => batch.delete(key),
            BatchOp::DeleteRange { start, end } => batch.delete_range(start, end),
        }
    }
    batch
}

fn put(store: &impl KvStore, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(key, value);
    store.write(batch, false).expect("write");
}

fn get(store: &impl KvStore, key: &[u8]) -> Option<Vec<u8>> {
    store.get(key).expect("get")
}

/// Every key in the store, in order (keys here never start with more than eight 0xFF bytes).
fn all(store: &impl KvStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    store.scan(&[], &[0xff; 8], usize::MAX).expect("scan")
}

fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    entries.iter().map(|(key, _)| key.clone()).collect()
}

fn put_all(store: &impl KvStore, keys: &[&[u8]]) {
    let mut batch = WriteBatch::new();
    for key in keys {
        batch.put(*key, *key);
    }
    store.write(batch, true).expect("write");
}

// ---------------------------------------------------------------------------------------
// The conformance suite: generic over the store, instantiated for each by `conformance!`.

fn new_store_is_empty(store: &impl KvStore) {
    assert_eq!(all(store), vec![]);
    assert_eq!(get(store, b""), None);
}

fn get_returns_what_put_wrote(store: &impl KvStore) {
    put(store, b"a", b"1");
    assert_eq!(get(store, b"a"), Some(b"1".to_vec()));
    assert_eq!(get(store, b"b"), None);
}

fn put_overwrites(store: &impl KvStore) {
    put(store, b"a", b"1");
    put(store, b"a", b"22");
    assert_eq!(get(store, b"a"), Some(b"22".to_vec()));
    assert_eq!(all(store).len(), 1);
}

fn empty_value_is_a_value(store: &impl KvStore) {
    put(store, b"a", b"");
    assert_eq!(get(store, b"a"), Some(vec![]));
}

fn delete_removes_the_key_and_only_it(store: &impl KvStore) {
    put_all(store, &[b"a", b"b"]);
    let mut batch = WriteBatch::new();
    batch.delete(&b"a"[..]);
    batch.delete(&b"missing"[..]);
    store.write(batch, true).expect("write");
    assert_eq!(get(store, b"a"), None);
    assert_eq!(get(store, b"b"), Some(b"b".to_vec()));
}

fn delete_range_removes_start_and_keeps_end(store: &impl KvStore) {
    put_all(store, &[b"a", b"b", b"b\x00", b"ba", b"c", b"c\x00", b"d"]);
    let mut batch = WriteBatch::new();
    batch.delete_range(&b"b"[..], &b"c"[..]);
    store.write(batch, true).expect("write");
    assert_eq!(
        keys(&all(store)),
        vec![
            b"a".to_vec(),
            b"c".to_vec(),
            b"c\x00".to_vec(),
            b"d".to_vec()
        ]
    );
}

fn delete_range_empty_or_inverted_removes_nothing(store: &impl KvStore) {
    put_all(store, &[b"a", b"b", b"c"]);
    let mut batch = WriteBatch::new();
    batch.delete_range(&b"b"[..], &b"b"[..]);
    batch.delete_range(&b"c"[..], &b"a"[..]);
    assert_eq!(batch.len(), 2);
    store.write(batch, true).expect("write");
    assert_eq!(all(store).len(), 3);
}

fn delete_range_with_empty_start_removes_from_the_first_key(store: &impl KvStore) {
    put_all(store, &[b"", b"\x00", b"a", b"b"]);
    let mut batch = WriteBatch::new();
    batch.delete_range(&b""[..], &b"b"[..]);
    store.write(batch, true).expect("write");
    assert_eq!(keys(&all(store)), vec![b"b".to_vec()]);
}

fn scan_returns_the_range_in_key_order(store: &impl KvStore) {
    // Written out of order, in two batches.
    put_all(store, &[b"d", b"b", b"a"]);
    put_all(store, &[b"c", b"bb", b"e"]);
    let found = store.scan(b"b", b"d", 100).expect("scan");
    assert_eq!(
        found,
        vec![
            (b"b".to_vec(), b"b".to_vec()),
            (b"bb".to_vec(), b"bb".to_vec()),
            (b"c".to_vec(), b"c".to_vec()),
        ]
    );
}

fn scan_stops_at_the_limit(store: &impl KvStore) {
    put_all(store, &[b"a", b"b", b"c", b"d"]);
    assert_eq!(
        keys(&store.scan(b"a", b"z", 2).expect("scan")),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(store.scan(b"a", b"z", 0).expect("scan"), vec![]);
    assert_eq!(store.scan(b"a", b"z", usize::MAX).expect("scan").len(), 4);
}

fn scan_of_an_empty_or_inverted_range_is_empty(store: &impl KvStore) {
    put_all(store, &[b"a", b"b", b"c"]);
    assert_eq!(store.scan(b"b", b"b", 10).expect("scan"), vec![]);
    assert_eq!(store.scan(b"c", b"a", 10).expect("scan"), vec![]);
    assert_eq!(store.scan(b"x", b"z", 10).expect("scan"), vec![]);
}

fn scan_pages_by_appending_a_zero_byte(store: &impl KvStore) {
    let written: Vec<Vec<u8>> = (0u8..10).map(|i| vec![b'k', i]).collect();
    let mut batch = WriteBatch::new();
    for key in &written {
        batch.put(key.clone(), key.clone());
    }
    store.write(batch, true).expect("write");
    let mut seen = Vec::new();
    let mut start = b"k".to_vec();
    loop {
        let page = store.scan(&start, b"l", 3).expect("scan");
        let Some((last, _)) = page.last() else { break };
        start = last.clone();
        start.push(0);
        seen.extend(keys(&page));
    }
    assert_eq!(seen, written);
}

fn batch_applies_in_order(store: &impl KvStore) {
    put_all(store, &[b"deleted-after-put", b"in-range"]);
    let mut batch = WriteBatch::new();
    batch.put(&b"put-after-delete"[..], &b"old"[..]);
    batch.delete(&b"put-after-delete"[..]);
    batch.put(&b"put-after-delete"[..], &b"new"[..]);
    batch.put(&b"deleted-after-put"[..], &b"x"[..]);
    batch.delete(&b"deleted-after-put"[..]);
    batch.put(&b"in-range-2"[..], &b"x"[..]);
    batch.delete_range(&b"in-range"[..], &b"in-rangf"[..]);
    batch.put(&b"in-range-3"[..], &b"after"[..]);
    store.write(batch, true).expect("write");
    assert_eq!(
        all(store),
        vec![
            (b"in-range-3".to_vec(), b"after".to_vec()),
            (b"put-after-delete".to_vec(), b"new".to_vec()),
        ]
    );
}

fn empty_batch_changes_nothing(store: &impl KvStore) {
    put_all(store, &[b"a"]);
    store.write(WriteBatch::new(), false).expect("write");
    store.write(WriteBatch::new(), true).expect("write");
    assert!(WriteBatch::new().is_empty());
    assert_eq!(keys(&all(store)), vec![b"a".to_vec()]);
}

fn unsynced_writes_are_visible_and_sync_succeeds(store: &impl KvStore) {
    put(store, b"a", b"1");
    assert_eq!(get(store, b"a"), Some(b"1".to_vec()));
    store.sync().expect("sync");
    store.sync().expect("a second sync with nothing new");
    assert_eq!(get(store, b"a"), Some(b"1".to_vec()));
}

fn large_values_round_trip(store: &impl KvStore) {
    let one_mib = 1 << 20;
    let values: Vec<Vec<u8>> = (0..3u8)
        .map(|i| (0..one_mib).map(|j| (j % 251) as u8 ^ i).collect())
        .collect();
    let mut batch = WriteBatch::new();
    for (i, value) in values.iter().enumerate() {
        batch.put(vec![i as u8], value.clone());
    }
    store.write(batch, true).expect("write");
    for (i, value) in values.iter().enumerate() {
        assert_eq!(get(store, &[i as u8]).as_ref(), Some(value));
    }
    let found = all(store);
    assert_eq!(found.len(), 3);
    assert!(found
        .iter()
        .zip(&values)
        .all(|((_, got), want)| got == want));
}

fn binary_keys_order_as_unsigned_bytes(store: &impl KvStore) {
    let expected: [&[u8]; 10] = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x00\xff",
        b"\x01",
        b"\x7f",
        b"\x80",
        b"\xff",
        b"\xff\x00",
        b"\xff\xff",
    ];
    // Written in reverse so that the order comes from the store.
    let mut reversed = expected;
    reversed.reverse();
    put_all(store, &reversed);
    assert_eq!(
        keys(&all(store)),
        expected.iter().map(|key| key.to_vec()).collect::<Vec<_>>()
    );
    for key in &expected {
        assert_eq!(get(store, key).as_deref(), Some(*key));
    }
    assert_eq!(
        keys(&store.scan(b"\x00", b"\x01", 10).expect("scan")),
        vec![b"\x00".to_vec(), b"\x00\x00".to_vec(), b"\x00\xff".to_vec()]
    );
    let mut batch = WriteBatch::new();
    batch.delete_range(&b"\x00\x00"[..], &b"\xff"[..]);
    store.write(batch, true).expect("write");
    assert_eq!(
        keys(&all(store)),
        vec![
            b"".to_vec(),
            b"\x00".to_vec(),
            b"\xff".to_vec(),
            b"\xff\x00".to_vec(),
            b"\xff\xff".to_vec()
        ]
    );
}

fn clones_share_one_store(store: &(impl KvStore + Clone)) {
    let other = store.clone();
    put(&other, b"a", b"1");
    assert_eq!(get(store, b"a"), Some(b"1".to_vec()));
}

/// Instantiates every conformance test for one fixture, in a module of its own.
macro_rules! conformance {
    ($module:ident, $fixture:ty) => {
        mod $module {
            use super::*;

            conformance!(@tests $fixture;
                new_store_is_empty,
                get_returns_what_put_wrote,
                put_overwrites,
                empty_value_is_a_value,
                delete_removes_the_key_and_only_it,
                delete_range_removes_start_and_keeps_end,
                delete_range_empty_or_inverted_removes_nothing,
                delete_range_with_empty_start_removes_from_the_first_key,
                scan_returns_the_range_in_key_order,
                scan_stops_at_the_limit,
                scan_of_an_empty_or_inverted_range_is_empty,
                scan_pages_by_appending_a_zero_byte,
                batch_applies_in_order,
                empty_batch_changes_nothing,
                unsynced_writes_are_visible_and_sync_succeeds,
                large_values_round_trip,
                binary_keys_order_as_unsigned_bytes,
                clones_share_one_store,
            );

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(
                    <$fixture as ModelCases>::CASES
                ))]
                #[test]
                fn behaves_like_an_ordered_map(steps in prop::collection::vec(step(), 1..40)) {
                    check_against_model::<$fixture>(&steps)?;
                }
            }
        }
    };
    (@tests $fixture:ty; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let fixture = <$fixture as Fixture>::open();
                super::$test(fixture.store());
            }
        )*
    };
}

conformance!(mem, MemFixture);
#[cfg(feature = "rocksdb")]
conformance!(rocks, RocksFixture);
