//! Build-time work of the `keel` package:
//! - compiles `proto/cluster.proto` into the gRPC client, server and messages of `keel::grpc`;
//! - finds the system RocksDB library that the `rocksdb` feature links, or stops the build
//!   with one line saying what to install;
//! - records the git commit for `keel --version`.
//!
//! protox parses the proto file in pure Rust, so building Keel needs no `protoc` (nor does the
//! fuzz workspace, which builds the library too).

use std::io;
use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    if let Err(message) = find_system_rocksdb() {
        // One line, shown by cargo under "failed to run custom build command".
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    record_git_commit();
    if let Err(error) = compile_proto() {
        eprintln!("error: cannot compile proto/cluster.proto: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn compile_proto() -> io::Result<()> {
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    let descriptors =
        protox::compile(["proto/cluster.proto"], ["proto"]).map_err(io::Error::other)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The generated `ClusterClient::connect` would dial with tonic's own TCP connector,
        // past the `Net` seam; callers build channels with `keel::grpc::connect` instead.
        .build_transport(false)
        // Payloads as `bytes::Bytes`: a received blob is sliced out of the HTTP/2 frame
        // without a copy.
        .bytes(".keel.cluster")
        .compile_fds(descriptors)
}

/// librocksdb-sys links a prebuilt RocksDB when `ROCKSDB_LIB_DIR` is set (`.cargo/config.toml`
/// sets it) and compiles RocksDB's C++ sources only with `ROCKSDB_COMPILE=1`. The folder it is
/// given is only a search path: this finds where this system keeps the library (pkg-config,
/// else the C compiler's own search path) and adds that folder, so no distribution's layout is
/// written down anywhere. Without the library the link would fail much later with a linker
/// message; this says what to install instead.
fn find_system_rocksdb() -> Result<(), String> {
    for var in ["ROCKSDB_COMPILE", "ROCKSDB_LIB_DIR", "ROCKSDB_STATIC"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let linked = std::env::var_os("CARGO_FEATURE_ROCKSDB").is_some();
    let compiled = std::env::var("ROCKSDB_COMPILE").is_ok_and(|v| v == "1" || v == "true");
    if !linked || compiled {
        return Ok(());
    }
    // A folder the user named that holds the library needs nothing more.
    if let Ok(dir) = std::env::var("ROCKSDB_LIB_DIR") {
        if has_rocksdb(Path::new(&dir)) {
            return Ok(());
        }
    }
    if let Some(dir) = pkg_config_libdir().or_else(compiler_libdir) {
        println!("cargo:rustc-link-search=native={dir}");
        return Ok(());
    }
    Err(
        "Keel links the system RocksDB library and none was found: install it (Debian/Ubuntu: \
         apt-get install librocksdb-dev libclang-dev; Fedora: dnf install rocksdb-devel \
         clang-devel; macOS: brew install rocksdb), set ROCKSDB_LIB_DIR to the folder that \
         holds librocksdb, or build RocksDB from source with ROCKSDB_COMPILE=1 (slow)"
            .to_string(),
    )
}

fn has_rocksdb(dir: &Path) -> bool {
    ["librocksdb.so", "librocksdb.dylib", "librocksdb.a"]
        .iter()
        .any(|name| dir.join(name).exists())
}

/// The library folder pkg-config gives for `rocksdb`, if it knows one that holds the library.
fn pkg_config_libdir() -> Option<String> {
    let dir = command_output("pkg-config", &["--variable=libdir", "rocksdb"])?;
    has_rocksdb(Path::new(&dir)).then_some(dir)
}

/// The folder in which the C compiler's linker finds `librocksdb`, if it does.
fn compiler_libdir() -> Option<String> {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    for name in ["librocksdb.so", "librocksdb.dylib"] {
        // Prints the full path when the file is on its search path, the bare name otherwise.
        let found = command_output(&compiler, &[&format!("-print-file-name={name}")])?;
        let path = Path::new(&found);
        if path.is_absolute() && path.exists() {
            return path.parent().map(|dir| dir.display().to_string());
        }
    }
    None
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// `KEEL_GIT_COMMIT` for `keel --version`: the commit the binary was built from, or `unknown`
/// outside a git checkout (a source tarball): the build never fails for want of git.
fn record_git_commit() {
    let commit = command_output("git", &["rev-parse", "--short=12", "HEAD"]);
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=KEEL_GIT_COMMIT={commit}");
    // Run again when HEAD moves (a commit, a checkout). `--git-path` finds each file where it
    // really is: in a linked worktree HEAD is the worktree's own, while branch refs and
    // packed-refs live in the common git directory. Only files that exist are named: cargo
    // reruns a script on every build when a named file is missing.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(head_ref) = command_output("git", &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(head_ref);
    }
    for file in watched {
        let Some(path) = command_output("git", &["rev-parse", "--git-path", &file]) else {
            continue;
        };
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
