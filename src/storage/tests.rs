//! The conformance suite every [`KvStore`] runs, then each store's own tests: crash semantics
//! and injected failures for [`MemStore`], reopening and start-up checks for `RocksStore`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{BatchOp, KvStore, MemStore, StorageError, WriteBatch};

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

// ---------------------------------------------------------------------------------------
// The model test: random steps on a store and on a `BTreeMap`, compared at every read.

/// How many random sequences each store runs. Each RocksDB case creates a database on disk,
/// so it runs fewer.
trait ModelCases {
    const CASES: u32;
}

impl ModelCases for MemFixture {
    const CASES: u32 = 256;
}

#[cfg(feature = "rocksdb")]
impl ModelCases for RocksFixture {
    const CASES: u32 = 48;
}

#[derive(Debug, Clone)]
enum Step {
    Write {
        ops: Vec<BatchOp>,
        sync: bool,
    },
    Get(Vec<u8>),
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    },
    Sync,
    Restart,
}

/// Short keys over a few bytes, so that steps collide, including the extremes 0x00 and 0xFF
/// and both sides of the signed/unsigned boundary.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![0x00u8, 0x01, 0x7f, 0x80, 0xff]),
        0..3,
    )
}

fn op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        4 => (key(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(key, value)| BatchOp::Put { key, value }),
        2 => key().prop_map(|key| BatchOp::Delete { key }),
        1 => (key(), key()).prop_map(|(start, end)| BatchOp::DeleteRange { start, end }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (prop::collection::vec(op(), 0..6), any::<bool>())
            .prop_map(|(ops, sync)| Step::Write { ops, sync }),
        3 => key().prop_map(Step::Get),
        3 => (key(), key(), 0usize..8).prop_map(|(start, end, limit)| Step::Scan { start, end, limit }),
        1 => Just(Step::Sync),
        1 => Just(Step::Restart),
    ]
}

/// The model's own reading of a batch, written apart from the stores' code.
fn model_apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, ops: &[BatchOp]) {
    for op in ops {
        match op {
            BatchOp::Put { key, value } => {
                model.insert(key.clone(), value.clone());
            }
            BatchOp::Delete { key } => {
                model.remove(key);
            }
            BatchOp::DeleteRange { start, end } => {
                model.retain(|key, _| !(start <= key && key < end));
            }
        }
    }
}

fn model_scan(
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(key, _)| start <= key.as_slice() && key.as_slice() < end)
        .take(limit)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn check_against_model<F: Fixture>(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut fixture = F::open();
    let mut model = BTreeMap::new();
    for step in steps {
        let store = fixture.store();
        match step {
            Step::Write { ops, sync } => {
                store.write(batch_of(ops), *sync).expect("write");
                model_apply(&mut model, ops);
            }
            Step::Get(key) => {
                prop_assert_eq!(store.get(key).expect("get"), model.get(key).cloned())
            }
            Step::Scan { start, end, limit } => prop_assert_eq!(
                store.scan(start, end, *limit).expect("scan"),
                model_scan(&model, start, end, *limit)
            ),
            Step::Sync => store.sync().expect("sync"),
            Step::Restart => fixture.restart(),
        }
    }
    prop_assert_eq!(
        all(fixture.store()),
        model_scan(&model, &[], &[0xff; 8], usize::MAX)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// MemStore: crash semantics and injected failures.

#[test]
fn mem_store_does_not_block() {
    assert!(!MemStore::new().blocks());
}

#[test]
fn mem_crash_keeps_synced_writes_and_loses_unsynced_ones() {
    let store = MemStore::new();
    put_all(&store, &[b"synced"]);
    put(&store, b"unsynced-1", b"x");
    put(&store, b"unsynced-2", b"x");
    let mut batch = WriteBatch::new();
    batch.delete(&b"synced"[..]);
    store.write(batch, false).expect("write");
    assert_eq!(store.unsynced_batches(), 3);
    assert_eq!(get(&store, b"synced"), None);

    store.crash();
    assert_eq!(store.unsynced_batches(), 0);
    assert_eq!(keys(&all(&store)), vec![b"synced".to_vec()]);
}

#[test]
fn mem_sync_makes_every_earlier_write_durable() {
    let store = MemStore::new();
    put(&store, b"a", b"1");
    put(&store, b"b", b"2");
    store.sync().expect("sync");
    assert_eq!(store.unsynced_batches(), 0);
    store.crash();
    assert_eq!(keys(&all(&store)), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn mem_synced_write_makes_earlier_unsynced_writes_durable() {
    let store = MemStore::new();
    put(&store, b"a", b"1");
    put_all(&store, &[b"b"]);
    store.crash();
    assert_eq!(keys(&all(&store)), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn mem_crash_keeping_keeps_a_prefix_of_unsynced_batches() {
    let store = MemStore::new();
    put(&store, b"a", b"1");
    put(&store, b"a", b"2");
    put(&store, b"b", b"3");
    store.crash_keeping(2);
    assert_eq!(all(&store), vec![(b"a".to_vec(), b"2".to_vec())]);

    // Past the number of unsynced batches, it keeps them all.
    put(&store, b"c", b"4");
    store.crash_keeping(10);
    assert_eq!(keys(&all(&store)), vec![b"a".to_vec(), b"c".to_vec()]);
}

#[test]
fn mem_crash_is_seen_through_every_clone() {
    let node = MemStore::new();
    let simulator = node.clone();
    put(&node, b"a", b"1");
    simulator.crash();
    assert_eq!(get(&node, b"a"), None);
}

#[test]
fn mem_empty_batch_is_not_counted_as_unsynced() {
    let store = MemStore::new();
    store.write(WriteBatch::new(), false).expect("write");
    assert_eq!(store.unsynced_batches(), 0);
}

#[test]
fn mem_failing_write_applies_nothing() {
    let store = MemStore::new();
    put_all(&store, &[b"a", b"b"]);
    put(&store, b"unsynced", b"x");
    store.set_fail_writes(true);

    let mut batch = WriteBatch::new();
    batch.put(&b"c"[..], &b"c"[..]);
    batch.delete(&b"a"[..]);
    batch.delete_range(&b""[..], &b"z"[..]);
    for sync in [false, true] {
        let error = store.write(batch.clone(), sync).expect_err("writes fail");
        assert!(matches!(error, StorageError::WriteFailed(_)), "{error:?}");
    }
    let error = store.sync().expect_err("sync fails");
    assert!(matches!(error, StorageError::WriteFailed(_)), "{error:?}");
    assert_eq!(
        keys(&all(&store)),
        vec![b"a".to_vec(), b"b".to_vec(), b"unsynced".to_vec()]
    );
    assert_eq!(store.unsynced_batches(), 1);

    // The failed sync made nothing durable; a crash still loses the unsynced write. Reads
    // keep working while writes fail.
    store.crash();
    assert_eq!(keys(&all(&store)), vec![b"a".to_vec(), b"b".to_vec()]);

    store.set_fail_writes(false);
    store.write(batch, true).expect("writes work again");
    assert!(all(&store).is_empty());
}

/// Steps for the crash model: writes, syncs, partial crashes and failing disks.
#[derive(Debug, Clone)]
enum CrashStep {
    Write { ops: Vec<BatchOp>, sync: bool },
    Sync,
    CrashKeeping(usize),
    FailWrites(bool),
}

fn crash_step() -> impl Strategy<Value = CrashStep> {
    prop_oneof![
        6 => (prop::collection::vec(op(), 0..4), any::<bool>())
            .prop_map(|(ops, sync)| CrashStep::Write { ops, sync }),
        1 => Just(CrashStep::Sync),
        2 => (0usize..4).prop_map(CrashStep::CrashKeeping),
        1 => any::<bool>().prop_map(CrashStep::FailWrites),
    ]
}

proptest! {
    /// A crash keeps exactly the synced state plus a prefix of the unsynced batches.
    #[test]
    fn mem_crash_keeps_the_synced_state_and_a_prefix(
        steps in prop::collection::vec(crash_step(), 1..40),
    ) {
        let store = MemStore::new();
        let mut durable = BTreeMap::new();
        let mut unsynced: Vec<Vec<BatchOp>> = Vec::new();
        let mut failing = false;
        for step in &steps {
            match step {
                CrashStep::Write { ops, sync } => {
                    let result = store.write(batch_of(ops), *sync);
                    prop_assert_eq!(result.is_err(), failing);
                    if !failing {
                        if !ops.is_empty() {
                            unsynced.push(ops.clone());
                        }
                        if *sync {
                            unsynced.drain(..).for_each(|ops| model_apply(&mut durable, &ops));
                        }
                    }
                }
                CrashStep::Sync => {
                    prop_assert_eq!(store.sync().is_err(), failing);
                    if !failing {
                        unsynced.drain(..).for_each(|ops| model_apply(&mut durable, &ops));
                    }
                }
                CrashStep::CrashKeeping(n) => {
                    store.crash_keeping(*n);
                    let keep = (*n).min(unsynced.len());
                    unsynced.drain(..keep).for_each(|ops| model_apply(&mut durable, &ops));
                    unsynced.clear();
                }
                CrashStep::FailWrites(fail) => {
                    store.set_fail_writes(*fail);
                    failing = *fail;
                }
            }
            let mut visible = durable.clone();
            unsynced.iter().for_each(|ops| model_apply(&mut visible, ops));
            prop_assert_eq!(store.unsynced_batches(), unsynced.len());
            prop_assert_eq!(all(&store), model_scan(&visible, &[], &[0xff; 8], usize::MAX));
        }
    }
}

// ---------------------------------------------------------------------------------------
// RocksStore: reopening and the start-up checks.

#[cfg(feature = "rocksdb")]
mod rocks_store {
    use std::fs;
    use std::path::Path;

    use super::super::rocks::{FORMAT_KEY, META_CF, WRITTEN_BY_KEY};
    use super::super::{RocksStore, FORMAT_NUMBER, FORMAT_VERSION};
    use super::*;

    fn open_error(path: &Path) -> StorageError {
        let error = RocksStore::open(path).expect_err("the open must fail");
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "the error names the path: {message}"
        );
        error
    }

    #[test]
    fn rocks_store_blocks() {
        let fixture = RocksFixture::open();
        assert!(fixture.store().blocks());
    }

    #[test]
    fn reopen_keeps_synced_writes() {
        let mut fixture = RocksFixture::open();
        put_all(fixture.store(), &[b"a", b"b", b"c", b"d"]);
        put(fixture.store(), b"e", b"later");
        fixture.store().sync().expect("sync");
        let mut batch = WriteBatch::new();
        batch.delete_range(&b"b"[..], &b"d"[..]);
        fixture.store().write(batch, true).expect("write");

        fixture.restart();
        assert_eq!(
            all(fixture.store()),
            vec![
                (b"a".to_vec(), b"a".to_vec()),
                (b"d".to_vec(), b"d".to_vec()),
                (b"e".to_vec(), b"later".to_vec()),
            ]
        );
    }

    #[test]
    fn open_creates_missing_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/store");
        let store = RocksStore::open(&path).expect("open");
        assert_eq!(store.path(), path);
        assert!(path.join("CURRENT").is_file());
    }

    #[test]
    fn open_accepts_an_empty_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        RocksStore::open(dir.path()).expect("open");
    }

    #[test]
    fn new_store_hides_its_format_marker() {
        let fixture = RocksFixture::open();
        assert_eq!(
            fixture
                .store()
                .scan(&[], &[0xff; 64], usize::MAX)
                .expect("scan"),
            vec![]
        );
    }

    #[test]
    fn a_second_open_of_an_open_store_fails_with_an_open_error() {
        let fixture = RocksFixture::open();
        let error = open_error(&fixture.path());
        match error {
            StorageError::Open { path, reason } => {
                assert_eq!(path, fixture.path());
                assert!(reason.to_lowercase().contains("lock"), "{reason}");
            }
            other => panic!("expected Open, got {other:?}"),
        }
        // The first handle is unharmed.
        put(fixture.store(), b"a", b"1");
        assert_eq!(get(fixture.store(), b"a"), Some(b"1".to_vec()));
    }

    #[test]
    fn open_refuses_a_non_empty_directory_without_a_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("notes.txt"), "someone's data").expect("write a file");
        let error = open_error(dir.path());
        assert!(
            matches!(error, StorageError::NotKeelData { .. }),
            "{error:?}"
        );
        // Nothing was created beside it.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn open_refuses_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("file");
        fs::write(&path, "").expect("write a file");
        let error = open_error(&path);
        assert!(
            matches!(error, StorageError::NotKeelData { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn open_refuses_a_rocksdb_database_keel_did_not_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = rocksdb::DB::open_default(dir.path()).expect("create a foreign database");
            db.put(b"their-key", b"their-value").expect("put");
        }
        let error = open_error(dir.path());
        assert!(
            matches!(error, StorageError::NotKeelData { .. }),
            "{error:?}"
        );

        // Not even when empty: without Keel's column family it is not Keel's.
        let empty = tempfile::tempdir().expect("tempdir");
        drop(rocksdb::DB::open_default(empty.path()).expect("create a foreign database"));
        let error = open_error(empty.path());
        assert!(
            matches!(error, StorageError::NotKeelData { .. }),
            "{error:?}"
        );
    }

    /// Opens the database at `path` the way a foreign tool would, with Keel's column family.
    fn open_raw(path: &Path) -> rocksdb::DB {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        rocksdb::DB::open_cf(&options, path, ["default", META_CF]).expect("open raw")
    }

    /// Replaces the format marker of the closed store at `path` with `marker`.
    fn stamp(path: &Path, marker: &[u8], written_by: &[u8]) {
        let db = open_raw(path);
        let meta = db.cf_handle(META_CF).expect("meta column family");
        db.put_cf(meta, FORMAT_KEY, marker).expect("put");
        db.put_cf(meta, WRITTEN_BY_KEY, written_by).expect("put");
    }

    #[test]
    fn open_refuses_a_newer_format_and_says_who_wrote_it() {
        let fixture = RocksFixture::open();
        let path = fixture.path();
        drop(fixture.store);
        stamp(&path, b"keel-store-999", b"9.9.9 (commit abc)");
        let error = open_error(&path);
        match &error {
            StorageError::Newer {
                found,
                expected,
                written_by,
                ..
            } => {
                assert_eq!(*found, 999);
                assert_eq!(*expected, FORMAT_NUMBER);
                assert_eq!(written_by, "keel 9.9.9 (commit abc)");
            }
            other => panic!("expected Newer, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("newer Keel"), "{message}");
        assert!(message.contains(crate::VERSION), "{message}");
        // Refused, not rewritten: the marker is still the newer one.
        assert!(matches!(open_error(&path), StorageError::Newer { .. }));
    }

    #[test]
    fn open_refuses_a_marker_it_does_not_know() {
        for marker in [&b"keel-store-0"[..], b"keel-store-x", b"someone-else"] {
            let fixture = RocksFixture::open();
            let path = fixture.path();
            drop(fixture.store);
            stamp(&path, marker, b"?");
            match open_error(&path) {
                StorageError::Incompatible {
                    found, expected, ..
                } => {
                    assert_eq!(found.as_bytes(), marker);
                    assert_eq!(expected, FORMAT_VERSION);
                }
                other => panic!("expected Incompatible for {marker:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn open_records_the_version_that_wrote_the_store() {
        let fixture = RocksFixture::open();
        let path = fixture.path();
        drop(fixture.store);
        stamp(&path, FORMAT_VERSION.as_bytes(), b"an older keel");
        drop(RocksStore::open(&path).expect("open"));
        let db = open_raw(&path);
        let meta = db.cf_handle(META_CF).expect("meta column family");
        let written_by = db.get_cf(meta, WRITTEN_BY_KEY).expect("get");
        assert_eq!(written_by.as_deref(), Some(crate::VERSION.as_bytes()));
    }

    #[test]
    fn open_finishes_a_creation_interrupted_before_the_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(open_raw(dir.path()));
        let store = RocksStore::open(dir.path()).expect("open finishes the creation");
        put_all(&store, &[b"a"]);
        drop(store);
        let store = RocksStore::open(dir.path()).expect("reopen");
        assert_eq!(keys(&all(&store)), vec![b"a".to_vec()]);
    }

    #[test]
    fn open_refuses_data_without_a_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = open_raw(dir.path());
            db.put(b"their-key", b"their-value").expect("put");
        }
        let error = open_error(dir.path());
        assert!(
            matches!(error, StorageError::NotKeelData { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn open_reports_a_corrupt_database() {
        let fixture = RocksFixture::open();
        let path = fixture.path();
        drop(fixture.store);
        fs::write(path.join("CURRENT"), "MANIFEST-999999\n").expect("corrupt CURRENT");
        let error = open_error(&path);
        assert!(matches!(error, StorageError::Open { .. }), "{error:?}");
    }
}
