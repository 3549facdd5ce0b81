//! RocksStore: reopening and the start-up checks.

use std::fs;
use std::path::Path;

use super::super::{RocksStore, FORMAT_NUMBER, FORMAT_VERSION};
use super::*;
use crate::storage::rocks::{FORMAT_KEY, META_CF, WRITTEN_BY_KEY};

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
