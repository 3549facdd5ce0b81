//! The admin HTTP API end to end: every endpoint of a node built from a configuration,
//! bad requests answered 4xx with a JSON error, the API key and basic auth, the OpenAPI
//! description matching the routes, and `/metrics` read by an independent Prometheus text
//! parser. MQTT clients are rumqttc's.

use crate::common;

use std::net::SocketAddr;

use common::http::{self, Response};
use common::{v3, TestBroker};
use keel::config::Config;
use rumqttc::QoS;

const API_KEY: &str = "0123456789abcdef-test-key";

/// A node with the admin API on, an API key, and `admin` (password "pw") as a basic-auth
/// user. The temporary directory must outlive the node.
async fn broker() -> (TestBroker, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    keel::cli::set_password(&passwd, "admin", b"pw").unwrap();
    let mut config = Config::default();
    config.auth.password_file = Some(passwd);
    config.admin.api_key = Some(API_KEY.into());
    config.admin.users = vec!["admin".into()];
    config.durability.store = keel::config::StoreKind::Memory;
    config.mqtt.sys_interval_secs = 0;
    config.validate().unwrap();
    let settings = keel::startup::settings(&config).unwrap();
    let broker = TestBroker::start(settings).await;
    let admin = broker.admin.expect("an admin listener");
    (broker, admin, dir)
}

async fn call(admin: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    let bearer = format!("Bearer {API_KEY}");
    http::request(admin, method, path, &[("authorization", &bearer)], body).await
}

async fn get(admin: SocketAddr, path: &str) -> Response {
    call(admin, "GET", path, "").await
}

/// A 4xx answer with a JSON error naming what is wrong.
fn assert_client_error(response: &Response, status: u16, mentions: &str) {
    assert_eq!(response.status, status, "{response:?}");
    let error = response.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(mentions),
        "{error:?} should mention {mentions:?}"
    );
}

#[tokio::test]
async fn without_credentials_only_health_is_open() {
    let (_broker, admin, _dir) = broker().await;
    assert_eq!(http::get(admin, "/healthz").await.status, 200);
    let denied = http::get(admin, "/api/v1/clients").await;
    assert_client_error(&denied, 401, "credentials");
    assert!(denied.header("www-authenticate").is_some());
    let wrong = http::request(admin, "GET", "/metrics", &[("x-api-key", "wrong")], "").await;
    assert_eq!(wrong.status, 401);
    let key = http::request(admin, "GET", "/metrics", &[("x-api-key", API_KEY)], "").await;
    assert_eq!(key.status, 200);
    // Basic auth: a listed user with the password of the password file.
    let basic = |user_pass: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    let good = basic("admin:pw");
    let ok = http::request(
        admin,
        "GET",
        "/api/v1/cluster",
        &[("authorization", &good)],
        "",
    )
    .await;
    assert_eq!(ok.status, 200);
    let bad = basic("admin:nope");
    let refused = http::request(
        admin,
        "GET",
        "/api/v1/cluster",
        &[("authorization", &bad)],
        "",
    )
    .await;
    assert_eq!(refused.status, 401);
}

#[tokio::test]
async fn every_operation_the_openapi_description_lists_exists() {
    let (_broker, admin, _dir) = broker().await;
    let spec = get(admin, "/api/v1/openapi.json").await.json();
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 12, "{paths:?}");
    for (path, operations) in paths {
        let concrete = path
            .replace("{id}", "99")
            .replace("{client_id}", "nobody")
            .replace("{topic}", "no/such/topic");
        for method in operations.as_object().expect("operations").keys() {
            let response = call(admin, &method.to_uppercase(), &concrete, "").await;
            let fallback = response.status == 404 && response.body.contains("no such endpoint");
            assert!(!fallback, "{method} {path} is documented but not routed");
        }
    }
    assert_client_error(
        &get(admin, "/api/v1/nothing").await,
        404,
        "no such endpoint",
    );
}

#[tokio::test]
async fn clients_sessions_and_subscriptions_are_listed_a_page_at_a_time() {
    let (broker, admin, _dir) = broker().await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut options = v3::persistent(&broker, &format!("c{i}"));
        options.set_credentials("admin", "pw");
        let (mut client, _) = v3::connect_with(options).await;
        client
            .subscribe(&format!("t/{i}/#"), QoS::AtLeastOnce)
            .await;
        clients.push(client);
    }
    let page = get(admin, "/api/v1/clients?page=2&limit=2").await.json();
    assert_eq!(page["meta"]["total"], 5);
    assert_eq!(page["clients"].as_array().unwrap().len(), 2);
    let last = get(admin, "/api/v1/clients?page=3&limit=2").await.json();
    assert_eq!(last["clients"].as_array().unwrap().len(), 1);
    assert_client_error(&get(admin, "/api/v1/clients?limit=0").await, 400, "limit");
    assert_client_error(&get(admin, "/api/v1/clients?page=x").await, 400, "");

    let one = get(admin, "/api/v1/clients/c3").await.json();
    assert_eq!(one["durable"], true);
    assert_eq!(one["subscriptions"], 1);
    assert_client_error(&get(admin, "/api/v1/clients/nobody").await, 404, "nobody");

    let session = get(admin, "/api/v1/sessions/c1").await.json();
    assert_eq!(session["connected"], true);
    assert_eq!(session["subscriptions"][0]["filter"], "t/1/#");

    let subs = get(admin, "/api/v1/subscriptions?client_id=c4")
        .await
        .json();
    assert_eq!(subs["meta"]["total"], 1);
    assert_eq!(subs["subscriptions"][0]["filter"], "t/4/#");
    let all = get(admin, "/api/v1/subscriptions").await.json();
    assert_eq!(all["meta"]["total"], 5);
    let paged = get(admin, "/api/v1/subscriptions?page=2&limit=2")
        .await
        .json();
    assert_eq!(
        paged["subscriptions"].as_array().map(Vec::len),
        Some(2),
        "{paged}"
    );

    // Kicking a client closes its connection; its durable session stays.
    assert_eq!(
        call(admin, "DELETE", "/api/v1/clients/c0", "").await.status,
        200
    );
    clients.remove(0).closed().await;
    broker.wait_offline("c0").await;
    let session = get(admin, "/api/v1/sessions/c0").await.json();
    assert_eq!(session["connected"], false);
}

#[tokio::test]
async fn publishing_over_http_reaches_subscribers_and_retained_messages_can_be_managed() {
    let (broker, admin, _dir) = broker().await;
    let mut options = v3::options(&broker, "sub");
    options.set_credentials("admin", "pw");
    let (mut sub, _) = v3::connect_with(options).await;
    sub.subscribe("news/#", QoS::ExactlyOnce).await;

    for (qos, payload) in [(0, "zero"), (1, "one"), (2, "two")] {
        let body = format!(r#"{{"topic": "news/a", "payload": "{payload}", "qos": {qos}}}"#);
        let answer = call(admin, "POST", "/api/v1/publish", &body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let got = sub.next_publish().await;
        assert_eq!(&got.payload[..], payload.as_bytes());
    }
    let binary = r#"{"topic": "news/bin", "payload": "AAEC/w==", "encoding": "base64", "qos": 1, "retain": true}"#;
    assert_eq!(
        call(admin, "POST", "/api/v1/publish", binary).await.status,
        200
    );
    assert_eq!(&sub.next_publish().await.payload[..], &[0, 1, 2, 255]);
    let text = r#"{"topic": "news/text", "payload": "hello", "qos": 1, "retain": true}"#;
    assert_eq!(
        call(admin, "POST", "/api/v1/publish", text).await.status,
        200
    );
    sub.next_publish().await;

    let listed = get(admin, "/api/v1/retained?topic=news/%2B").await.json();
    assert_eq!(listed["meta"]["total"], 2, "{listed}");
    let first = get(admin, "/api/v1/retained?limit=1").await.json();
    assert_eq!(
        first["retained"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let one = get(admin, "/api/v1/retained/news/text").await.json();
    assert_eq!(one["payload"], "hello");
    let bin = get(admin, "/api/v1/retained/news/bin").await.json();
    assert_eq!(bin["payload_base64"], "AAEC/w==");
    assert_eq!(
        call(admin, "DELETE", "/api/v1/retained/news/text", "")
            .await
            .status,
        200
    );
    assert_client_error(
        &get(admin, "/api/v1/retained/news/text").await,
        404,
        "news/text",
    );
    assert_client_error(
        &call(admin, "DELETE", "/api/v1/retained/news/text", "").await,
        404,
        "news/text",
    );

    for (body, mentions) in [
        (r#"{"topic": "a/#", "payload": "x"}"#, "topic name"),
        (r#"{"topic": "a", "qos": 3}"#, "qos 3"),
        (
            r#"{"topic": "a", "payload": "!!", "encoding": "base64"}"#,
            "payload",
        ),
        (r#"{"payload": "no topic"}"#, "topic"),
        ("not json", "expected"),
    ] {
        let answer = call(admin, "POST", "/api/v1/publish", body).await;
        assert_client_error(&answer, 400, mentions);
    }
    assert_client_error(
        &get(admin, "/api/v1/retained?topic=a/%23/b").await,
        400,
        "filter",
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_that_a_parser_reads() {
    let (broker, admin, _dir) = broker().await;
    let mut options = v3::options(&broker, "m");
    options.set_credentials("admin", "pw");
    let (mut client, _) = v3::connect_with(options).await;
    client.subscribe("m/#", QoS::AtLeastOnce).await;
    client
        .publish_acked("m/1", QoS::AtLeastOnce, false, "x")
        .await;
    client.next_publish().await;
    let text = get(admin, "/metrics").await.body;
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    // The sum over a family's samples (their labels apart).
    let value = |name: &str| {
        let samples: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .collect();
        assert!(!samples.is_empty(), "no {name} in {text}");
        samples.iter().sum::<f64>()
    };
    assert_eq!(value("keel_connections"), 1.0);
    assert!(value("keel_messages_received_total") >= 1.0);
    assert!(value("keel_messages_sent_total") >= 1.0);
    assert_eq!(value("keel_raft_leader"), 1.0);
    assert!(value("keel_bytes_received_total") > 0.0);
    assert!(value("keel_process_resident_memory_bytes") > 1e6);
    assert_eq!(value("keel_limit_hits_total"), 0.0);
    let qos1 = scrape
        .samples
        .iter()
        .find(|s| s.metric == "keel_messages_received_total" && s.labels.get("qos") == Some("1"))
        .expect("received at QoS 1");
    assert!(matches!(qos1.value, prometheus_parse::Value::Counter(v) if v >= 1.0));
}

/// The events of a trace, as `GET /api/v1/trace/{client_id}` gives them.
async fn trace_events(admin: SocketAddr, client_id: &str) -> Vec<serde_json::Value> {
    let trace = get(admin, &format!("/api/v1/trace/{client_id}")).await;
    assert_eq!(trace.status, 200, "{trace:?}");
    trace.json()["events"].as_array().expect("events").clone()
}

/// Waits until the trace of `client_id` has `count` events of `kind`.
async fn await_events(admin: SocketAddr, client_id: &str, kind: &str, count: usize) {
    common::within(&format!("{count} {kind} events of {client_id}"), async {
        loop {
            let events = trace_events(admin, client_id).await;
            if events.iter().filter(|e| e["kind"] == kind).count() >= count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
}

/// What the traced test does as clients: `dev` (traced) subscribes, publishes to itself and
/// leaves; `other` does the same, untraced; then `dev` is refused with a wrong password.
async fn talk_and_be_refused(addr: std::net::SocketAddr) {
    use common::raw::{self, RawClient};
    use keel::codec::{MqttString, Packet, Protocol, QoS as KeelQoS, ReasonCode};

    // The traced client subscribes, publishes to itself and leaves; another client does the
    // same, untraced.
    for client_id in ["dev", "other"] {
        let mut client = RawClient::connected(addr, Protocol::V5, client_id).await;
        client.subscribe(1, "t/#", KeelQoS::AtLeastOnce).await;
        let publish = raw::publish("t/1", KeelQoS::AtLeastOnce, 2, b"hello");
        client.send(Packet::Publish(publish)).await;
        for _ in 0..2 {
            match client.expect_packet().await {
                Packet::PubAck(_) => {}
                Packet::Publish(p) => {
                    let id = p.qos_pid.packet_id().expect("QoS 1").get();
                    client.send(Packet::PubAck(raw::reply(id))).await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        client.send(raw::disconnect(ReasonCode::Success)).await;
        client.expect_closed().await;
    }
    // Refused: a user name with the wrong password.
    let mut refused = raw::connect(Protocol::V5, "dev");
    refused.username = Some(MqttString::new("admin").unwrap());
    refused.password = Some(bytes::Bytes::from_static(b"wrong"));
    let (_, connack) = RawClient::connect(addr, refused).await;
    assert_eq!(connack.reason_code, ReasonCode::BadUserNameOrPassword);
}

#[tokio::test]
async fn a_client_trace_records_its_packets_and_refusals_until_stopped() {
    let (broker, admin, _dir) = broker().await;
    let started = call(admin, "POST", "/api/v1/trace/dev", "").await;
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(started.json()["started"], true);
    let again = call(admin, "POST", "/api/v1/trace/dev", "").await;
    assert_eq!(
        (again.status, again.json()["started"].clone()),
        (200, false.into())
    );
    let listed = get(admin, "/api/v1/trace").await.json();
    assert_eq!(listed["traces"][0]["client_id"], "dev", "{listed}");
    assert_eq!(listed["clients_max"], 16);

    talk_and_be_refused(broker.addr).await;
    await_events(admin, "dev", "closed", 2).await;

    let events = trace_events(admin, "dev").await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "CONNECT",
        "CONNACK",
        "SUBSCRIBE",
        "SUBACK",
        "PUBLISH",
        "PUBACK",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    assert_eq!(kinds.first(), Some(&"CONNECT"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"closed"), "{kinds:?}");
    let inbound = events
        .iter()
        .find(|e| e["kind"] == "PUBLISH" && e["direction"] == "in")
        .expect("the client's PUBLISH");
    assert_eq!(inbound["topic"], "t/1");
    assert_eq!(inbound["qos"], 1);
    assert_eq!(inbound["packet_id"], 2);
    assert_eq!(inbound["payload_bytes"], 5);
    assert!(inbound["size_bytes"].as_u64() > Some(5));
    assert!(inbound.get("payload").is_none(), "no payload unless asked");
    let outbound = events
        .iter()
        .find(|e| e["kind"] == "PUBLISH" && e["direction"] == "out");
    assert!(outbound.is_some(), "the delivery to it: {events:?}");
    let connacks: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["kind"] == "CONNACK").collect();
    assert_eq!(connacks.len(), 2);
    assert_eq!(connacks[0]["reasons"], serde_json::json!([0]));
    assert_eq!(
        connacks[1]["reasons"],
        serde_json::json!([0x86]),
        "the refusal"
    );
    for connect in events.iter().filter(|e| e["kind"] == "CONNECT") {
        let detail = connect["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("\"dev\""), "only dev is traced: {detail}");
    }
    // Events are numbered; ?since= gives the newer ones only.
    let last = events.last().unwrap()["seq"].as_u64().unwrap();
    let newer = get(admin, &format!("/api/v1/trace/dev?since={}", last - 2))
        .await
        .json();
    assert_eq!(newer["events"].as_array().map(Vec::len), Some(2), "{newer}");
    assert_eq!(newer["last_seq"], last);

    let metrics = get(admin, "/metrics").await.body;
    assert!(metrics.contains("keel_traced_clients 1\n"), "{metrics}");

    // Stopped: gone, and nothing more is recorded.
    assert_eq!(
        call(admin, "DELETE", "/api/v1/trace/dev", "").await.status,
        200
    );
    assert_client_error(&get(admin, "/api/v1/trace/dev").await, 404, "not traced");
    assert_client_error(
        &call(admin, "DELETE", "/api/v1/trace/dev", "").await,
        404,
        "not traced",
    );
    assert_eq!(
        get(admin, "/api/v1/trace").await.json()["traces"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn a_trace_keeps_payloads_when_asked_and_bad_trace_requests_get_4xx() {
    use common::raw::{self, RawClient};
    use keel::codec::{Packet, Protocol, QoS as KeelQoS};

    let (broker, admin, _dir) = broker().await;
    let body = r#"{"payload": true}"#;
    assert_eq!(
        call(admin, "POST", "/api/v1/trace/loud", body).await.status,
        201
    );
    let mut client = RawClient::connected(broker.addr, Protocol::V5, "loud").await;
    let publish = raw::publish("t", KeelQoS::AtMostOnce, 0, b"secret");
    client.send(Packet::Publish(publish)).await;
    client.ping().await;
    await_events(admin, "loud", "PINGRESP", 1).await;
    let events = trace_events(admin, "loud").await;
    let publish = events
        .iter()
        .find(|e| e["kind"] == "PUBLISH")
        .expect("PUBLISH");
    assert_eq!(publish["payload"], "secret");

    for (method, path, body, status, mentions) in [
        ("POST", "/api/v1/trace/x", "not json", 400, "body"),
        (
            "POST",
            "/api/v1/trace/x",
            r#"{"payloads": 1}"#,
            400,
            "unknown field",
        ),
        ("POST", "/api/v1/trace/a%00b", "", 400, "not a client id"),
        ("GET", "/api/v1/trace/loud?since=x", "", 400, ""),
        ("GET", "/api/v1/trace/nobody", "", 404, "not traced"),
    ] {
        let answer = call(admin, method, path, body).await;
        assert_client_error(&answer, status, mentions);
    }
    // At most trace_clients_max (16) clients are traced at once.
    for n in 1..16 {
        let path = format!("/api/v1/trace/c{n}");
        assert_eq!(call(admin, "POST", &path, "").await.status, 201, "{n}");
    }
    let full = call(admin, "POST", "/api/v1/trace/one-too-many", "").await;
    assert_client_error(&full, 409, "trace_clients_max");
}
