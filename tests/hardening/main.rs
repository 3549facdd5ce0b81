//! What an attacker tried against the administrative and cluster surfaces (issue 16), replayed
//! against the real `keel` binary: each test reproduces one finding and checks that the node
//! refuses and keeps serving.

#[path = "../common/mod.rs"]
mod common;
mod mtls;
mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::http;
use common::link::Link;
use common::process::{free_port, KeelProcess, StartOutcome};
use common::raw;
use common::raw::RawClient;
use common::TestBroker;
use keel::codec::{Packet, QoS};
use keel::codec::{Protocol, ReasonCode};
use keel::grpc::proto::{Blob, JoinReply, JoinRequest};
use keel::grpc::{cluster_client, connect, ChannelConfig, PeerTarget, PeerTls, PeerTlsFiles};
use keel::net::TokioNet;

/// The longest a refused membership change may take (the reachability check's deadline is
/// 3 s; an unreachable address on loopback is refused at once).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster as the node's admin API shows it.
async fn cluster(admin: SocketAddr) -> serde_json::Value {
    let response = http::get(admin, "/api/v1/cluster").await;
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

/// The ids in the node's membership.
async fn member_ids(admin: SocketAddr) -> Vec<u64> {
    let view = cluster(admin).await;
    let nodes = view["nodes"].as_array().expect("a node list");
    nodes.iter().filter_map(|n| n["id"].as_u64()).collect()
}

/// `POST /api/v1/cluster/nodes` with `body`, within [`REFUSAL_TIMEOUT`].
async fn add_node(admin: SocketAddr, body: &str) -> http::Response {
    let call = http::request(admin, "POST", "/api/v1/cluster/nodes", &[], body);
    tokio::time::timeout(REFUSAL_TIMEOUT, call)
        .await
        .expect("a membership change is answered, not left hanging")
}

/// The node went on serving: it still accepts MQTT clients, and after a restart on the same
/// data directory it starts and serves again (the data directory is usable) with itself as
/// the only member.
async fn assert_still_serves(node: &mut KeelProcess) {
    let admin = node.http.expect("an admin listener");
    assert_eq!(member_ids(admin).await, [1], "{}", node.stderr_tail(30));
    node.kill();
    node.spawn();
    match node.watch_start().await {
        StartOutcome::Serving => {}
        outcome => panic!(
            "the node no longer starts: {outcome:?}\n{}",
            node.stderr_tail(30)
        ),
    }
    assert_eq!(member_ids(admin).await, [1]);
}

/// Finding 1, default configuration (no cluster listener): one request made an unreachable
/// node a voter, and the node never served again, not even after a restart.
#[tokio::test]
async fn a_node_without_a_cluster_listener_adds_no_node() {
    let mut node = KeelProcess::with(Vec::new());
    node.spawn();
    node.wait_ready().await;
    let admin = node.http.unwrap();
    let response = add_node(admin, r#"{"id": 2, "addr": "127.0.0.1:1"}"#).await;
    assert_eq!(response.status, 409, "{response:?}");
    assert!(
        response.body.contains("no cluster listener"),
        "{response:?}"
    );
    for garbage in [
        r#"{"id": 2, "addr": "not an address"}"#,
        r#"{"id": 2, "addr": "host:0"}"#,
        r#"{"id": 2, "addr": ""}"#,
        r#"{"id": 0, "addr": "127.0.0.1:7000"}"#,
    ] {
        let response = add_node(admin, garbage).await;
        assert_eq!(response.status, 400, "{garbage}: {response:?}");
    }
    assert_still_serves(&mut node).await;
}

/// A node with a cluster listener: the flags that make it a cluster of one, and its cluster
/// address.
fn clustered() -> (KeelProcess, SocketAddr) {
    let cluster = free_port();
    let flags = vec![
        "--cluster-listen".into(),
        cluster.to_string(),
        "--peers".into(),
        format!("1@{cluster}"),
        "--cluster-insecure".into(),
    ];
    (KeelProcess::with(flags), cluster)
}

/// Finding 1 with a cluster listener: an unreachable node, and an address where another node
/// (here: this one) answers, are refused with why, and nothing changes.
#[tokio::test]
async fn a_node_that_does_not_answer_as_itself_is_not_added() {
    let (mut node, cluster_addr) = clustered();
    node.spawn();
    node.wait_ready().await;
    let admin = node.http.unwrap();
    let response = add_node(admin, r#"{"id": 2, "addr": "127.0.0.1:1"}"#).await;
    assert_eq!(response.status, 409, "{response:?}");
    assert!(response.body.contains("not reachable"), "{response:?}");
    // Port 1 of another name for this host: nothing answers there either.
    let response = add_node(admin, r#"{"id": 2, "addr": "localhost:1"}"#).await;
    assert_eq!(response.status, 409, "{response:?}");
    // This node's own cluster address under another id.
    let other_name = format!("localhost:{}", cluster_addr.port());
    let body = format!(r#"{{"id": 2, "addr": "{other_name}"}}"#);
    let response = add_node(admin, &body).await;
    assert_eq!(response.status, 409, "{response:?}");
    assert!(response.body.contains("answers as node 1"), "{response:?}");
    assert_still_serves(&mut node).await;
}

/// Finding 2: a stranger's hand-made gRPC `Join` for an unreachable node 99 made it a voter.
/// Without TLS between nodes (`insecure`), the join is still checked: node 99 must answer at
/// its address as node 99.
#[tokio::test]
async fn a_strangers_join_for_a_node_that_is_not_there_is_refused() {
    let (mut node, cluster_addr) = clustered();
    node.spawn();
    node.wait_ready().await;
    let config = ChannelConfig::default();
    let channel = connect(TokioNet, cluster_addr.to_string(), &config)
        .await
        .expect("the cluster listener accepts");
    let mut client = cluster_client(channel, &config);
    let join = JoinRequest {
        node_id: 99,
        addr: "127.0.0.1:1".into(),
    };
    let reply = tokio::time::timeout(REFUSAL_TIMEOUT, client.join(join))
        .await
        .expect("answered")
        .expect("a reply")
        .into_inner();
    assert!(!reply.ok, "{reply:?}");
    assert!(reply.error.contains("not reachable"), "{reply:?}");
    assert_still_serves(&mut node).await;
}

/// A node asked to serve the admin API where other hosts reach it, without credentials,
/// refuses to start and says why (the default address is loopback: `config`'s unit tests).
#[tokio::test]
async fn an_open_admin_api_is_only_served_on_loopback() {
    let mut node = KeelProcess::new();
    node.http = Some(SocketAddr::from(([0, 0, 0, 0], free_port().port())));
    node.spawn();
    match node.watch_start().await {
        StartOutcome::Exited(status) => assert!(!status.success()),
        outcome => panic!("an open admin API on 0.0.0.0 was served: {outcome:?}"),
    }
    let said = node.stderr();
    assert!(
        said.contains("listeners.http") && said.contains("api_key"),
        "{said}"
    );
}

/// Polls `/healthz` until it answers `status`; false if it never did within 10 s.
async fn health_becomes(admin: SocketAddr, status: u16) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        // The admin listener may not be bound yet (http::get fails the test on a refusal).
        if tokio::net::TcpStream::connect(admin).await.is_ok() {
            let probe = tokio::time::timeout(Duration::from_secs(2), http::get(admin, "/healthz"));
            if probe.await.is_ok_and(|r| r.status == status) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Finding 6: `/healthz` said ok, and CONNECTs hung, on a node without a cluster listener
/// whose membership named an unreachable voter. The admin API no longer makes that state
/// (finding 1), so this test makes it the way the old membership change did, through Raft
/// directly, on a node in this process.
#[tokio::test]
async fn health_fails_when_a_node_alone_loses_its_quorum() {
    let settings = keel::server::ServerSettings {
        http_listen: Some("127.0.0.1:0".into()),
        ..TestBroker::settings()
    };
    let broker = TestBroker::start(settings).await;
    let admin = broker.admin.unwrap();
    assert!(health_becomes(admin, 200).await);
    let raft = broker.raft.clone();
    let unreachable = openraft::BasicNode::new("127.0.0.1:1");
    raft.add_learner(2, unreachable, false)
        .await
        .expect("a learner");
    // Never completes: the joint configuration needs node 2 to commit.
    let voters = std::collections::BTreeSet::from([2]);
    let change = tokio::spawn(async move {
        let _ = raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(voters), false)
            .await;
    });
    assert!(health_becomes(admin, 503).await, "/healthz never failed");
    let connect = raw::connect(Protocol::V5, "hopeful");
    let (_link, connack) = Link::connect(broker.addr, connect)
        .await
        .expect("a CONNACK");
    assert_eq!(connack.reason_code, ReasonCode::ServerUnavailable);
    change.abort();
}

/// The data directory of a two-voter cluster started again without its cluster listener
/// can reach no voter: the node refuses to start at once and says why (it waited 30 s for a
/// leadership it could not get, then blamed "not enough for a quorum").
#[tokio::test]
async fn a_clustered_data_directory_started_alone_is_refused_with_why() {
    let (cluster, absent) = (free_port(), free_port());
    let mut node = KeelProcess::with(vec![
        "--cluster-listen".into(),
        cluster.to_string(),
        "--peers".into(),
        format!("1@{cluster},2@{absent}"),
        "--cluster-insecure".into(),
    ]);
    let admin = node.http.unwrap();
    node.spawn();
    assert!(health_becomes(admin, 503).await, "{}", node.stderr_tail(20));
    node.kill();
    node.set_extra(Vec::new());
    node.spawn();
    let started = tokio::time::Instant::now();
    match node.watch_start().await {
        StartOutcome::Exited(status) => assert!(!status.success()),
        outcome => panic!("{outcome:?}\n{}", node.stderr_tail(20)),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let said = node.stderr();
    assert!(said.contains("without a cluster listener"), "{said}");
}

/// Finding 5: the admin API published a retained message to the empty topic, which every
/// `#` subscriber then got as a PUBLISH with a zero-length topic (a protocol error for its
/// client). Every topic the API takes follows the MQTT rules.
#[tokio::test]
async fn the_admin_api_takes_only_topics_mqtt_allows() {
    let mut node = KeelProcess::with(Vec::new());
    node.spawn();
    node.wait_ready().await;
    let admin = node.http.unwrap();
    for topic in ["", "a/+", "a/#", "nul\\u0000"] {
        let body = format!(r#"{{"topic": "{topic}", "payload": "x", "qos": 1, "retain": true}}"#);
        let response = http::request(admin, "POST", "/api/v1/publish", &[], &body).await;
        assert_eq!(response.status, 400, "{topic:?}: {response:?}");
        assert!(response.body.contains("not a topic name"), "{response:?}");
    }
    let body = r#"{"topic": "ok", "payload": "x", "qos": 1, "retain": true}"#;
    let response = http::request(admin, "POST", "/api/v1/publish", &[], body).await;
    assert_eq!(response.status, 200, "{response:?}");
    let listed = http::get(admin, "/api/v1/retained").await.json();
    let topics: Vec<&str> = listed["retained"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["topic"].as_str())
        .collect();
    assert_eq!(topics, ["ok"]);
    let response = http::request(admin, "DELETE", "/api/v1/retained/a%2F%2B", &[], "").await;
    assert_eq!(response.status, 400, "{response:?}");
}

/// The value of one sample of `/metrics` on a node, named with its labels.
async fn sample(admin: SocketAddr, name: &str) -> u64 {
    let text = http::get(admin, "/metrics").await.body;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// `keel_limit_hits_total` of one limit on a node.
async fn limit_hits(admin: SocketAddr, limit: &str) -> u64 {
    sample(
        admin,
        &format!("keel_limit_hits_total{{limit=\"{limit}\"}}"),
    )
    .await
}

/// Subscribes `client` to `count` distinct filters of about 60 KB; the reason codes.
async fn subscribe_long_filters(client: &mut RawClient, tag: &str, count: u16) -> Vec<ReasonCode> {
    let mut codes = Vec::new();
    for i in 0..count {
        let filter = format!("{tag}/{i}/{}", "x".repeat(60_000));
        codes.extend(client.subscribe(i + 1, &filter, QoS::AtMostOnce).await);
    }
    codes
}

/// Finding 4: subscriptions had no byte bound (3 anonymous clients × 1,000 filters × 60 KB
/// took a node from 29 MB to 712 MB). Each session's filters are bounded (1 MiB by default),
/// and so are the node's over every session.
#[tokio::test]
async fn subscriptions_are_bounded_in_bytes() {
    let mut node = KeelProcess::with(Vec::new());
    let config = format!(
        "{}node_subscription_bytes_max = 2050000\n",
        common::process::CONFIG
    );
    std::fs::write(node.config_file(), config).unwrap();
    node.spawn();
    node.wait_ready().await;
    let admin = node.http.unwrap();
    let mut first = RawClient::connected(node.addr, Protocol::V5, "greedy-1").await;
    let codes = subscribe_long_filters(&mut first, "a", 20).await;
    let granted = codes.iter().filter(|c| **c == ReasonCode::Success).count();
    // 17 filters of 60 KB fit in 1 MiB, the 18th does not.
    assert_eq!(granted, 17, "{codes:?}");
    assert!(codes[17..].iter().all(|c| *c == ReasonCode::QuotaExceeded));
    assert_eq!(limit_hits(admin, "subscription_bytes_max").await, 3);
    // A second session fills the node's bound (2.05 MB); a third gets nothing.
    let mut second = RawClient::connected(node.addr, Protocol::V5, "greedy-2").await;
    subscribe_long_filters(&mut second, "b", 17).await;
    let mut third = RawClient::connected(node.addr, Protocol::V5, "greedy-3").await;
    let codes = subscribe_long_filters(&mut third, "c", 3).await;
    assert!(
        codes.iter().all(|c| *c == ReasonCode::QuotaExceeded),
        "{codes:?}"
    );
    assert!(limit_hits(admin, "node_subscription_bytes_max").await >= 3);
}

// ---------------------------------------------------------------------------------------------
// The admin listener's bounds, start-up, concurrent changes

/// Finding 3: the admin listener had no deadlines and no cap (20,000 idle connections took
/// every file the process could open). An idle connection is closed after
/// `header_timeout_secs`; at `connections_max` the longest-idle one makes room for a new one.
#[tokio::test]
async fn idle_admin_connections_are_closed_and_capped() {
    use tokio::io::AsyncReadExt;
    let mut node = KeelProcess::with(Vec::new());
    let config = format!(
        "{}[admin]\nconnections_max = 4\nheader_timeout_secs = 1\n",
        common::process::CONFIG
    );
    std::fs::write(node.config_file(), config).unwrap();
    node.spawn();
    node.wait_ready().await;
    let admin = node.http.unwrap();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    // The cap is reached; a request still gets through, and the oldest idle one goes.
    let health = http::get(admin, "/healthz").await;
    assert_eq!(health.status, 200);
    let mut byte = [0u8; 1];
    let first = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut byte)).await;
    assert!(
        matches!(first, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest idle connection stays open"
    );
    // The others are closed once their head is a second late.
    for stream in &mut idle[1..] {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "an idle connection stays open"
        );
    }
    assert!(limit_hits(admin, "admin_connections_max").await >= 1);
    assert!(limit_hits(admin, "admin_header_timeout_secs").await >= 3);
}

/// Finding 7: a listener that could not be bound made a start-up thread panic
/// (`JoinError::Cancelled`, 4 of 20 runs) and the error blamed the data directory. Listeners
/// are bound before anything else starts now, and the error names the address.
#[tokio::test]
async fn an_address_in_use_stops_the_start_with_that_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    for _ in 0..5 {
        let mut node = KeelProcess::new();
        node.addr = addr;
        node.spawn();
        match node.watch_start().await {
            StartOutcome::Exited(status) => assert!(!status.success()),
            outcome => panic!("{outcome:?}"),
        }
        let said = node.stderr();
        assert!(said.contains(&format!("cannot listen on {addr}")), "{said}");
        assert!(
            !said.contains("panicked") && !said.contains("data directory"),
            "{said}"
        );
    }
}

/// Finding 7: a membership change asked for while another runs was answered 500. It is
/// refused with 409 and why; the first goes on to its own answer.
#[tokio::test]
async fn a_second_membership_change_meanwhile_gets_409() {
    let (mut node, _cluster) = clustered();
    node.spawn();
    node.wait_ready().await;
    let admin = node.http.unwrap();
    // A "node" that accepts connections and never answers: the first change waits for it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let body = format!(r#"{{"id": 2, "addr": "{silent_addr}"}}"#);
    let first = tokio::spawn(async move { add_node(admin, &body).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = add_node(admin, r#"{"id": 3, "addr": "127.0.0.1:1"}"#).await;
    assert_eq!(second.status, 409, "{second:?}");
    assert!(second.body.contains("in progress"), "{second:?}");
    let first = first.await.unwrap();
    assert_eq!(first.status, 409, "{first:?}");
    assert!(first.body.contains("not reachable"), "{first:?}");
    assert_still_serves(&mut node).await;
}
