//! Reloading a running node's configuration (SIGHUP and `POST /api/v1/reload`), the real
//! binary: a good file takes effect without dropping connections (an ACL reaches connected
//! clients at once, anonymous access ends for new ones), a bad file is refused with the
//! reason and the configuration in force stays.

use crate::common;

use std::time::Duration;

use common::http;
use common::process::{path_str, KeelProcess, CONFIG};
use common::raw::RawClient;
use keel::codec::{Protocol, QoS, ReasonCode};

/// Subscribes to `filter` on a fresh packet id; the SUBACK's code.
async fn subscribe(client: &mut RawClient, id: &mut u16, filter: &str) -> ReasonCode {
    *id += 1;
    client.subscribe(*id, filter, QoS::AtMostOnce).await[0]
}

#[tokio::test]
async fn a_reload_takes_effect_without_dropping_connections_and_a_bad_file_changes_nothing() {
    let mut node = KeelProcess::with(Vec::new());
    node.spawn();
    node.wait_ready().await;
    let admin = node.http.expect("admin API");
    let dir = node.config_file().parent().unwrap().to_path_buf();
    let acl = dir.join("acl.toml");
    std::fs::write(
        &acl,
        "[[rule]]\npermission = \"deny\"\naction = \"subscribe\"\ntopics = [\"secret/#\"]\n\n\
         [[rule]]\npermission = \"allow\"\ntopics = [\"#\"]\n",
    )
    .unwrap();
    let mut id = 0;
    let mut client = RawClient::connected(node.addr, Protocol::V5, "resident").await;
    assert_eq!(
        subscribe(&mut client, &mut id, "secret/a").await,
        ReasonCode::GRANTED_QOS_0
    );

    // SIGHUP with an ACL added: the connected client is judged by it at once.
    let with_acl = format!("{CONFIG}\n[auth]\nacl_file = \"{}\"\n", path_str(&acl));
    std::fs::write(node.config_file(), &with_acl).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &node.pid().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while subscribe(&mut client, &mut id, "secret/b").await != ReasonCode::NotAuthorized {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        subscribe(&mut client, &mut id, "open/x").await,
        ReasonCode::GRANTED_QOS_0
    );

    // A file that does not parse: refused with the reason, the ACL in force stays.
    std::fs::write(node.config_file(), "[mqtt\nbroken").unwrap();
    let refused = http::request(admin, "POST", "/api/v1/reload", &[], "").await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("keel.toml"));
    assert_eq!(
        subscribe(&mut client, &mut id, "secret/c").await,
        ReasonCode::NotAuthorized
    );

    // No more anonymous clients, and a larger queue bound (which needs a restart).
    let passwd = dir.join("passwd");
    keel::cli::set_password(&passwd, "alice", b"pw").unwrap();
    let closed = format!(
        "{}allow_anonymous = false\npassword_file = \"{}\"\n",
        with_acl.replace("queue_max = 10000", "queue_max = 20000"),
        path_str(&passwd)
    );
    std::fs::write(node.config_file(), closed).unwrap();
    let answer = http::request(admin, "POST", "/api/v1/reload", &[], "").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let notes = answer.json()["needs_restart"].to_string();
    assert!(notes.contains("[mqtt]"), "{notes}");
    let (_, refused) =
        RawClient::connect(node.addr, common::raw::connect(Protocol::V5, "newcomer")).await;
    assert_eq!(refused.reason_code, ReasonCode::NotAuthorized);
    // The resident client was never dropped.
    client.ping().await;
}
