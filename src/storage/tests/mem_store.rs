//! MemStore: crash semantics and injected failures.

use super::model::{model_apply, model_scan, op};
use super::*;

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
