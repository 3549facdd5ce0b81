//! The `keel` binary as an operator runs it: `--help`, `--version`, `passwd`, `check-config`,
//! and `serve` refusing what it must not start on.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use keel::auth::PasswordFile;

fn keel(args: &[&str]) -> Output {
    keel_with_stdin(args, "")
}

/// Runs `keel` with `stdin` piped in (so never a terminal) and `RUST_LOG` unset.
fn keel_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the keel binary runs");
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("keel finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn help_lists_the_subcommands() {
    let out = keel(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["serve", "passwd", "check-config", "cert"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let serve_help = text(&keel(&["serve", "--help"]).stdout);
    for flag in [
        "--config",
        "--listen",
        "--ws-listen",
        "--http-listen",
        "--data-dir",
        "--node-id",
        "--cluster-listen",
        "--peers",
        "--join",
        "--cluster-insecure",
    ] {
        assert!(
            serve_help.contains(flag),
            "{flag} missing from:\n{serve_help}"
        );
    }
}

#[test]
fn passwd_writes_a_file_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");

    let out = keel(&["passwd", path(&file), "alice", "--password", "s3cret"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("\"alice\" added"),
        "{}",
        text(&out.stderr)
    );
    // Without --password, a piped password is read as one line.
    let out = keel_with_stdin(&["passwd", path(&file), "bob"], "hunter2\n");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let users = PasswordFile::load(&file).unwrap();
    assert!(users.verify("alice", b"s3cret"));
    assert!(users.verify("bob", b"hunter2"));
    assert!(!users.verify("alice", b"hunter2"));

    let out = keel(&["passwd", path(&file), "alice", "--password", "new"]);
    assert!(
        text(&out.stderr).contains("updated"),
        "{}",
        text(&out.stderr)
    );
    let out = keel(&["passwd", "--delete", path(&file), "bob"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let users = PasswordFile::load(&file).unwrap();
    assert!(users.verify("alice", b"new"));
    assert!(!users.contains("bob"));
}

#[test]
fn passwd_refuses_what_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let out = keel(&["passwd", path(&file), "a:b", "--password", "pw"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid user name"),
        "{}",
        text(&out.stderr)
    );
    let out = keel_with_stdin(&["passwd", path(&file), "alice"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("password is empty"),
        "{}",
        text(&out.stderr)
    );
    let out = keel(&["passwd", "--delete", path(&file), "alice"]);
    assert!(!out.status.success());
    assert!(!file.exists());
}

#[test]
fn check_config_names_the_problem_in_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keel.toml");

    std::fs::write(&file, "[mqtt]\nrecieve_maximum = 10\n").unwrap();
    let out = keel(&["check-config", path(&file)]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("keel.toml"), "{stderr}");
    assert!(stderr.contains("recieve_maximum"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");

    std::fs::write(&file, "[mqtt]\nreceive_maximum = 0\n").unwrap();
    let out = keel(&["check-config", path(&file)]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("keel.toml") && stderr.contains("mqtt.receive_maximum"),
        "{stderr}"
    );
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keel.toml");
    std::fs::write(&file, "node_id = 3\n[listeners]\nws = \"\"\n").unwrap();
    let out = keel(&["check-config", path(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("node_id = 3"), "{stdout}");
    assert!(stdout.contains("ws = \"\""), "{stdout}");
    assert!(
        stdout.contains("receive_maximum = 256"),
        "defaults are printed too: {stdout}"
    );
}

#[test]
fn the_example_configuration_checks() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/keel.example.toml");
    let out = keel(&["check-config", example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The production example (`contrib/keel.toml`) checks once the files it names exist, made
/// the way its comments say (`keel passwd`, `keel cert`).
#[test]
fn the_production_example_checks_with_the_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path();
    let cluster = etc.join("cluster");
    let run = |args: &[&str]| {
        let out = keel(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    };
    run(&["cert", "create-ca", "--dir", path(&cluster)]);
    run(&[
        "cert",
        "create-node",
        "--node-id",
        "1",
        "--host",
        "10.0.0.11",
        "--dir",
        path(&cluster),
    ]);
    // Any certificate and key serve for the clients' listeners here.
    std::fs::copy(cluster.join("node-1.pem"), etc.join("server.pem")).unwrap();
    std::fs::copy(cluster.join("node-1.key"), etc.join("server.key")).unwrap();
    run(&[
        "passwd",
        path(&etc.join("passwd")),
        "device-1",
        "--password",
        "pw",
    ]);
    std::fs::write(
        etc.join("acl.toml"),
        "[[rule]]\npermission = \"allow\"\ntopics = [\"devices/%u/#\"]\n",
    )
    .unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/keel.toml")).unwrap();
    assert!(
        example.contains("\"/etc/keel/"),
        "the example names its files in /etc/keel"
    );
    let config = etc.join("keel.toml");
    std::fs::write(
        &config,
        example.replace("\"/etc/keel/", &format!("\"{}/", path(etc))),
    )
    .unwrap();
    let out = keel(&["check-config", path(&config)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("allow_anonymous = false"), "{printed}");
    assert!(
        !printed.contains("replace-with"),
        "the API key is redacted: {printed}"
    );
}

#[test]
fn serve_refuses_malformed_flags() {
    let out = keel(&["serve", "--peers", "1@a:7000,oops"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid peer \"oops\""),
        "{}",
        text(&out.stderr)
    );
    let out = keel(&["serve", "--config", "/nonexistent/keel.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent/keel.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = keel(&["--version"]);
    assert!(out.status.success());
    let version = text(&out.stdout);
    assert!(
        version.starts_with(&format!("keel {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // Built from this checkout: the commit is HEAD's (when git is there to say so).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Some(head) = head.ok().filter(|head| head.status.success()) {
        let head = text(&head.stdout);
        assert!(
            version.contains(&format!("(commit {})", head.trim())),
            "{version} is not HEAD {head}"
        );
    }
}

/// A data directory stamped by a newer Keel with a store format this build does not know:
/// `keel serve` must refuse it, say why, and leave it as it was.
#[cfg(feature = "rocksdb")]
#[test]
fn serve_refuses_a_data_directory_of_a_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let marker = format!("keel-store-{}", keel::storage::FORMAT_NUMBER + 1);
    let stamp = |db: &rocksdb::DB| {
        let meta = db
            .cf_handle("keel_meta")
            .expect("Keel's meta column family");
        db.put_cf(meta, b"format", marker.as_bytes()).unwrap();
        db.put_cf(meta, b"written_by", b"99.0.0 (commit future)")
            .unwrap();
    };
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, &data, ["default", "keel_meta"]).unwrap();
        stamp(&db);
        db.put(b"some-future-layout", b"value").unwrap();
    }
    let out = keel(&[
        "serve",
        "--data-dir",
        path(&data),
        "--listen",
        "127.0.0.1:0",
        "--ws-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("written by a newer Keel"), "{stderr}");
    assert!(stderr.contains("keel 99.0.0 (commit future)"), "{stderr}");
    assert!(stderr.contains(&format!(
        "store format {}",
        keel::storage::FORMAT_NUMBER + 1
    )));
    // Left as it was: the marker still names the newer format.
    let db = rocksdb::DB::open_cf(
        &rocksdb::Options::default(),
        &data,
        ["default", "keel_meta"],
    )
    .unwrap();
    let meta = db.cf_handle("keel_meta").unwrap();
    assert_eq!(
        db.get_cf(meta, b"format").unwrap().as_deref(),
        Some(marker.as_bytes())
    );
}
