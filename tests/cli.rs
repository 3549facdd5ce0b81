//! The `keel` binary as an operator runs it: `--help`, `passwd`, `check-config`.

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
