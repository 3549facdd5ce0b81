//! The model test: random steps on a store and on a `BTreeMap`, compared at every read.

use super::*;

/// How many random sequences each store runs. Each RocksDB case creates a database on disk,
/// so it runs fewer.
pub(super) trait ModelCases {
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
pub(super) enum Step {
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
pub(super) fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![0x00u8, 0x01, 0x7f, 0x80, 0xff]),
        0..3,
    )
}

pub(super) fn op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        4 => (key(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(key, value)| BatchOp::Put { key, value }),
        2 => key().prop_map(|key| BatchOp::Delete { key }),
        1 => (key(), key()).prop_map(|(start, end)| BatchOp::DeleteRange { start, end }),
    ]
}

pub(super) fn step() -> impl Strategy<Value = Step> {
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
pub(super) fn model_apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, ops: &[BatchOp]) {
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

pub(super) fn model_scan(
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

pub(super) fn check_against_model<F: Fixture>(steps: &[Step]) -> Result<(), TestCaseError> {
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
