//! [`RocksStore`]: the [`KvStore`] on RocksDB, in the node's data directory.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    ColumnFamilyDescriptor, DBCompressionType, DBRecoveryMode, Direction, IteratorMode, Options,
    ReadOptions, WriteOptions, DB, DEFAULT_COLUMN_FAMILY_NAME,
};

use super::{BatchOp, KeyValue, KvStore, StorageError, WriteBatch};

/// The on-disk format this build reads and writes, stored as the format marker
/// (`keel-store-<n>`). A change to the layout of the data that an older build would misread
/// gets the next number; a build refuses a number above its own ([`StorageError::Newer`]).
pub const FORMAT_VERSION: &str = "keel-store-1";

/// The number in [`FORMAT_VERSION`].
pub const FORMAT_NUMBER: u32 = 1;

/// What precedes the number in a format marker.
const FORMAT_PREFIX: &str = "keel-store-";

/// The column family that holds the format marker. It lives apart from the data (in the
/// default column family) so that no key a caller writes or scans can collide with it.
pub(super) const META_CF: &str = "keel_meta";

/// The key of the format marker in [`META_CF`].
pub(super) const FORMAT_KEY: &[u8] = b"format";

/// The key, in [`META_CF`], of the version of the Keel that last opened the store
/// ([`crate::VERSION`]): named when a build meets a format it does not know.
pub(super) const WRITTEN_BY_KEY: &[u8] = b"written_by";

/// One RocksDB database at a path, holding Keel's keys in its default column family.
///
/// Writes go through the WAL; `sync = true` and [`sync`](KvStore::sync) fsync it. Every call
/// may block on disk I/O ([`blocks`](KvStore::blocks) is true).
///
/// [`open`](RocksStore::open) starts on a missing or empty directory (creating the database
/// and its format marker) or on a Keel store of this format, and fails with a clear error
/// otherwise. RocksDB locks the directory, so one store is open at a time, even within a
/// process. Clones share the open database, which closes when the last clone is dropped.
#[derive(Clone)]
pub struct RocksStore {
    /// Shared so that the Raft log and the state machine can each hold a handle, and a
    /// `spawn_blocking` closure can own one.
    inner: Arc<Rocks>,
}

struct Rocks {
    db: DB,
    /// Where the database lives, for error messages.
    path: PathBuf,
}

/// What [`RocksStore::open`] found at the path.
enum Found {
    /// Nothing, or an empty directory: a new store is created.
    Nothing,
    /// A RocksDB database (a `CURRENT` file), Keel's or not.
    Database,
}

impl RocksStore {
    /// Opens the store at `path`, creating it (and the directory) if there is nothing there.
    ///
    /// Refuses to start, never silently starting empty, when the path holds something else:
    /// files that are not a RocksDB database or a RocksDB database without Keel's marker
    /// ([`StorageError::NotKeelData`]), a store of a newer format ([`StorageError::Newer`]) or
    /// of another ([`StorageError::Incompatible`]), or a database RocksDB cannot open: corrupt, or
    /// locked by another process or another open handle ([`StorageError::Open`]).
    pub fn open(path: &Path) -> Result<RocksStore, StorageError> {
        let db = match inspect(path)? {
            Found::Nothing => create(path)?,
            Found::Database => open_existing(path)?,
        };
        Ok(RocksStore {
            inner: Arc::new(Rocks {
                db,
                path: path.to_path_buf(),
            }),
        })
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn read_error(&self, error: rocksdb::Error) -> StorageError {
        StorageError::ReadFailed(format!("{}: {error}", self.inner.path.display()))
    }

    fn write_error(&self, error: rocksdb::Error) -> StorageError {
        StorageError::WriteFailed(format!("{}: {error}", self.inner.path.display()))
    }
}

/// The options of the database and of each column family. Few, each for a reason; RocksDB's
/// defaults otherwise.
fn options() -> Options {
    let mut options = Options::default();
    // No compression. Values are small encoded Raft entries and snapshots, so it would save
    // little and cost CPU the broker needs; and a database written with a codec cannot be
    // read by a librocksdb built without it (Debian's has snappy/lz4/zstd, a bundled build of
    // the crate without features has none), so the data directory stays portable.
    options.set_compression_type(DBCompressionType::None);
    // 16 MiB memtables instead of 64 MiB: Raft appends are small and the log is purged behind
    // snapshots, so this bounds memory per node and the WAL to replay after a crash.
    options.set_write_buffer_size(16 << 20);
    // Bounded file descriptors (RocksDB's default keeps every table file open): the broker's
    // connections need them more, and the database stays small.
    options.set_max_open_files(256);
    // Bound RocksDB's own diagnostic log (`LOG`, `LOG.old.*`) in the data directory.
    options.set_keep_log_file_num(4);
    options.set_max_log_file_size(4 << 20);
    // Replay the WAL up to the first torn or corrupt record, keeping a consistent prefix. A
    // machine crash can only tear the unsynced tail, which the contract allows to lose.
    options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    options
}

/// Every column family with the same options. RocksDB needs each existing one named at open,
/// and the crate would give any named one (the default too) RocksDB's default options.
fn descriptors<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<ColumnFamilyDescriptor> {
    names
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, options()))
        .collect()
}

fn inspect(path: &Path) -> Result<Found, StorageError> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(error) => return Err(open_error(path, format!("cannot read it: {error}"))),
    };
    if !metadata.is_dir() {
        return Err(not_keel_data(path, "it is not a directory"));
    }
    if path.join("CURRENT").is_file() {
        return Ok(Found::Database);
    }
    let mut entries = fs::read_dir(path)
        .map_err(|error| open_error(path, format!("cannot list the directory: {error}")))?;
    match entries.next() {
        None => Ok(Found::Nothing),
        Some(Ok(_)) => Err(not_keel_data(
            path,
            "the directory is not empty and holds no RocksDB database (no CURRENT file)",
        )),
        Some(Err(error)) => Err(open_error(
            path,
            format!("cannot list the directory: {error}"),
        )),
    }
}

fn create(path: &Path) -> Result<DB, StorageError> {
    fs::create_dir_all(path)
        .map_err(|error| open_error(path, format!("cannot create the directory: {error}")))?;
    let mut options = options();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_error_if_exists(true);
    let db = DB::open_cf_descriptors(
        &options,
        path,
        descriptors([DEFAULT_COLUMN_FAMILY_NAME, META_CF]),
    )
    .map_err(|error| open_error(path, error.into_string()))?;
    write_marker(&db, path)?;
    Ok(db)
}

fn open_existing(path: &Path) -> Result<DB, StorageError> {
    let options = options();
    let names =
        DB::list_cf(&options, path).map_err(|error| open_error(path, error.into_string()))?;
    if !names.iter().any(|name| name == META_CF) {
        return Err(not_keel_data(
            path,
            "a RocksDB database without Keel's format marker",
        ));
    }
    let db = DB::open_cf_descriptors(
        &options,
        path,
        descriptors(names.iter().map(String::as_str)),
    )
    .map_err(|error| open_error(path, error.into_string()))?;
    let meta = db
        .cf_handle(META_CF)
        .expect("every listed column family was opened");
    let marker = db
        .get_cf(meta, FORMAT_KEY)
        .map_err(|error| open_error(path, format!("cannot read the format marker: {error}")))?;
    match marker {
        Some(found) if found == FORMAT_VERSION.as_bytes() => {
            write_marker(&db, path)?;
            Ok(db)
        }
        Some(found) => Err(unknown_format(&db, path, &found)),
        // `create` makes the column family before it writes the marker. A crash between the
        // two leaves exactly this: our column family, no marker, no data. Finish the job.
        None if names.len() == 2 && is_empty(&db, path)? => {
            write_marker(&db, path)?;
            Ok(db)
        }
        None => Err(not_keel_data(
            path,
            "a RocksDB database with data but without Keel's format marker",
        )),
    }
}

/// The error for a marker other than [`FORMAT_VERSION`]: [`StorageError::Newer`] when it
/// names a higher format number, [`StorageError::Incompatible`] otherwise.
fn unknown_format(db: &DB, path: &Path, found: &[u8]) -> StorageError {
    let found = String::from_utf8_lossy(found).into_owned();
    let number = found
        .strip_prefix(FORMAT_PREFIX)
        .and_then(|n| n.parse::<u32>().ok());
    match number {
        Some(number) if number > FORMAT_NUMBER => {
            let meta = db
                .cf_handle(META_CF)
                .expect("every listed column family was opened");
            let written_by = match db.get_cf(meta, WRITTEN_BY_KEY) {
                Ok(Some(version)) => format!("keel {}", String::from_utf8_lossy(&version)),
                _ => "a version that did not say which".to_string(),
            };
            StorageError::Newer {
                path: path.to_path_buf(),
                found: number,
                expected: FORMAT_NUMBER,
                written_by,
            }
        }
        _ => StorageError::Incompatible {
            path: path.to_path_buf(),
            found,
            expected: FORMAT_VERSION.to_owned(),
        },
    }
}

/// Writes the format marker and this build's version ([`WRITTEN_BY_KEY`]) durably, then
/// flushes them to a table file: with two column families RocksDB keeps a WAL file until
/// every family with writes in it has flushed, and the marker's family gets no other write
/// that would flush it. Done at creation and at every open, so the version that last wrote
/// the store is the one recorded.
fn write_marker(db: &DB, path: &Path) -> Result<(), StorageError> {
    let meta = db
        .cf_handle(META_CF)
        .expect("the database was opened with the marker's column family");
    let mut write_options = WriteOptions::default();
    write_options.set_sync(true);
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(meta, FORMAT_KEY, FORMAT_VERSION);
    batch.put_cf(meta, WRITTEN_BY_KEY, crate::VERSION);
    db.write_opt(batch, &write_options)
        .and_then(|()| db.flush_cf(meta))
        .map_err(|error| open_error(path, format!("cannot write the format marker: {error}")))
}

/// Whether the default column family (Keel's data) holds no key.
fn is_empty(db: &DB, path: &Path) -> Result<bool, StorageError> {
    match db.iterator(IteratorMode::Start).next() {
        None => Ok(true),
        Some(Ok(_)) => Ok(false),
        Some(Err(error)) => Err(open_error(path, error.into_string())),
    }
}

fn open_error(path: &Path, reason: String) -> StorageError {
    StorageError::Open {
        path: path.to_path_buf(),
        reason,
    }
}

fn not_keel_data(path: &Path, reason: &str) -> StorageError {
    StorageError::NotKeelData {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

impl KvStore for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner
            .db
            .get(key)
            .map_err(|error| self.read_error(error))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let mut read_options = ReadOptions::default();
        // The bound lets RocksDB stop at `end` without reading past it.
        read_options.set_iterate_upper_bound(end);
        let entries = self
            .inner
            .db
            .iterator_opt(IteratorMode::From(start, Direction::Forward), read_options);
        // The iterator reads from an implicit snapshot, so a scan sees whole batches only.
        let mut found = Vec::new();
        for entry in entries.take(limit) {
            let (key, value) = entry.map_err(|error| self.read_error(error))?;
            debug_assert!(start <= &*key && &*key < end, "scan left its range");
            found.push((key.into_vec(), value.into_vec()));
        }
        Ok(found)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                BatchOp::Put { key, value } => rocks_batch.put(key, value),
                BatchOp::Delete { key } => rocks_batch.delete(key),
                // An empty or inverted range deletes nothing (the contract); RocksDB may
                // reject an inverted one, so it never sees it.
                BatchOp::DeleteRange { start, end } if start < end => {
                    rocks_batch.delete_range(start, end)
                }
                BatchOp::DeleteRange { .. } => {}
            }
        }
        if rocks_batch.is_empty() {
            return if sync { self.sync() } else { Ok(()) };
        }
        // The WAL is on (RocksDB's default, never disabled here): durability rests on it.
        let mut write_options = WriteOptions::default();
        write_options.set_sync(sync);
        self.inner
            .db
            .write_opt(rocks_batch, &write_options)
            .map_err(|error| self.write_error(error))
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.inner
            .db
            .flush_wal(true)
            .map_err(|error| self.write_error(error))
    }

    fn blocks(&self) -> bool {
        true
    }
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.inner.path)
            .finish()
    }
}
